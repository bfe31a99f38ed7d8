"""Top-k selection of TopKMoE: each model's k largest router scores per token, with a fixed tie rule
(the lower expert index wins), for a per-model k.
"""

from __future__ import annotations

import functools

import torch


def topk_mask(p: torch.Tensor, k: torch.Tensor, k_min: int, k_max: int) -> torch.Tensor:
    """Bool [M, T, N]: for each (model m, token n) the k[m] largest p[m, :, n]; among equal p the lower
    expert index is kept (torch.topk promises no tie rule, so the rule is built here).

    p >= 0 (router probabilities), so the integer view of its float32 bits orders like p; with the
    expert index packed below it, every key is unique, so "the k largest keys" is one well-defined set
    with no tie handling: the keys are sorted (a sorting network on CPU, see _sorted_keys), each
    model's k-th largest key is read off, and every key at or above it is kept. float64 (whose bits do
    not leave room for the index) uses a stable sort instead.
    """
    M, T, N = p.shape
    p = p.detach()
    if p.dtype == torch.float64:
        order = torch.sort(p, dim=1, descending=True, stable=True).indices  # ties: lower index first
        keep = torch.arange(T, device=p.device).view(1, T, 1) < k.view(M, 1, 1)
        return torch.zeros_like(p, dtype=torch.bool).scatter_(1, order, keep.expand_as(order))
    # [T, M, N] layout: each expert's keys are one contiguous [M, N] block, the unit the network works on.
    bits = p.float().permute(1, 0, 2).view(torch.int32)
    key = torch.add((T - 1 - torch.arange(T, device=p.device)).view(T, 1, 1), bits, alpha=T)  # int64
    ranked = _sorted_keys(key, k_max)
    kth = ranked.gather(0, (k - 1).view(1, M, 1).expand(1, M, N))  # [1, M, N]: model m's k[m]-th largest
    return (key >= kth).permute(1, 0, 2).contiguous()


def ranked_top(scores: torch.Tensor, k_max: int) -> torch.Tensor:
    """The k_max largest of scores [T, ...] (>= 0, experts first) in descending order, as expert indices
    [k_max, ...] (ties: the lower index first): topk_mask's keys and sorting network, read back as
    indices (several times faster than torch.topk along a short axis)."""
    T = scores.shape[0]
    if scores.dtype == torch.float64:
        return torch.sort(scores, dim=0, descending=True, stable=True).indices[:k_max]
    bits = scores.detach().float().reshape(T, -1).view(torch.int32)
    width = 1 << max(0, (T - 1).bit_length())  # the index in the low bits: read back with a mask
    key = torch.add((T - 1 - torch.arange(T, device=scores.device)).view(T, 1), bits, alpha=width)  # int64
    top = _sorted_keys(key.view(T, 1, -1), k_max).view(k_max, *scores.shape[1:])
    return (T - 1) - top.bitwise_and(width - 1)


def descending_ranks(p: torch.Tensor, dim: int) -> torch.Tensor:
    """Each entry's place along `dim` in the descending order of p (>= 0): 0 for the largest, ties to the
    lower index first; the inverse of a stable descending sort's permutation (long, p's shape). On CPU
    float32 from ranked_top's sorting network (about twice torch.sort's speed at T = 16), else a sort."""
    if p.dtype != torch.float32 or p.device.type != "cpu":
        order = torch.sort(p, dim=dim, descending=True, stable=True).indices
    else:
        order = ranked_top(p.movedim(dim, 0).contiguous(), p.shape[dim]).movedim(0, dim)
    places = torch.arange(p.shape[dim], device=p.device).view(-1, *[1] * (p.dim() - 1 - dim % p.dim()))
    return torch.empty_like(order).scatter_(dim, order, places.expand_as(order))


def _sorted_keys(key: torch.Tensor, k_max: int) -> torch.Tensor:
    """The first k_max of the unique keys [T, M, N] sorted descending along dim 0, [k_max, M, N].

    On CPU a sorting network over the T contiguous [M, N] blocks: O(T log^2 T) elementwise min/max of
    whole blocks, several times faster than torch.sort's per-row sorts of T elements, which is what the
    grid's small T and many (model, token) rows make it pay. Each comparator writes two fresh blocks
    (recycled buffers), so the keys are never copied. Elsewhere one torch.sort call."""
    if key.device.type != "cpu":
        return torch.sort(key, dim=0, descending=True).values[:k_max]
    rows = list(key.unbind(0))
    spare: list[torch.Tensor] = []
    fresh = set(range(len(rows)))  # positions still holding the caller's keys (never written to)
    for i, j in _selection_network(len(rows), k_max):
        hi = spare.pop() if spare else torch.empty_like(rows[i])
        lo = spare.pop() if spare else torch.empty_like(rows[i])
        torch.maximum(rows[i], rows[j], out=hi)
        torch.minimum(rows[i], rows[j], out=lo)
        spare.extend(rows[q] for q in (i, j) if q not in fresh)
        fresh -= {i, j}
        rows[i], rows[j] = hi, lo
    return torch.stack(rows[:k_max])


@functools.lru_cache(maxsize=256)
def _selection_network(n: int, k_max: int) -> tuple[tuple[int, int], ...]:
    """Comparators (i, j), i < j, that move the larger value to i, leaving positions 0..k_max-1 of n
    values sorted descending: Batcher's odd-even merge sort on the next power of two (comparators that
    touch the missing positions, imagined as -inf at the end, are no-ops and dropped), then pruned to
    the comparators whose outputs reach the first k_max positions."""
    size = 1 << max(0, (n - 1).bit_length())
    pairs: list[tuple[int, int]] = []

    def merge(lo: int, length: int, r: int) -> None:
        step = 2 * r
        if step < length:
            merge(lo, length, step)
            merge(lo + r, length, step)
            pairs.extend((i, i + r) for i in range(lo + r, lo + length - r, step))
        else:
            pairs.append((lo, lo + r))

    def sort(lo: int, length: int) -> None:
        if length > 1:
            sort(lo, length // 2)
            sort(lo + length // 2, length // 2)
            merge(lo, length, 1)

    sort(0, size)
    needed, kept = set(range(min(k_max, n))), []
    for i, j in reversed([(i, j) for i, j in pairs if j < n]):
        if i in needed or j in needed:  # a comparator feeds the outputs iff it writes a needed position
            needed |= {i, j}
            kept.append((i, j))
    return tuple(reversed(kept))
