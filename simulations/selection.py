"""Top-k selection of TopKMoE: each model's k largest router scores per token, with a fixed tie rule
(the lower expert index wins), for a per-model k.
"""

from __future__ import annotations

import functools

import torch


def topk_mask(p: torch.Tensor, k: torch.Tensor, k_min: int, k_max: int) -> torch.Tensor:
    """Bool [M, T, N]: for each (model m, token n) the k[m] largest p[m, :, n]; among equal p the lower
    expert index is kept (torch.topk promises no tie rule, so the rule is built here).

    p >= 0 (router probabilities), so the integer view of its float32 bits orders like p. Ranked by
    (bits descending, expert index ascending), the k largest are every expert whose bits exceed the
    k-th largest bits value v, and then, of those equal to v, the lowest indices until k are kept. v
    is found by a tournament over the experts (_top_values, on the [M, N] blocks of p's own layout:
    no copy and no wider keys), and the selection is `bits >= v` whenever that keeps exactly k (no
    tie straddles the k-th place, the usual case); otherwise the tie is cut by the index. float64
    (whose bits do not fit int32) uses a stable sort instead.
    """
    M, T, N = p.shape
    p = p.detach()
    if p.dtype == torch.float64:
        order = torch.sort(p, dim=1, descending=True, stable=True).indices  # ties: lower index first
        keep = torch.arange(T, device=p.device).view(1, T, 1) < k.view(M, 1, 1)
        return torch.zeros_like(p, dtype=torch.bool).scatter_(1, order, keep.expand_as(order))
    bits = p.float().view(torch.int32)
    ranked = _top_values(bits.transpose(0, 1), k_max)  # [k_max, M, N]
    if k_min == k_max:
        kth = ranked[k_max - 1].unsqueeze(1)
    else:
        kth = ranked.gather(0, (k - 1).view(1, M, 1).expand(1, M, N)).transpose(0, 1)
    mask = bits >= kth  # [M, T, N]
    want = k.view(M, 1)
    taken = mask.sum(1)
    if bool((taken == want).all()):
        return mask
    # Ties at the k-th place: keep every expert above v, then the lowest indices of those equal to v.
    above = bits > kth
    tied = bits == kth
    room = (want - above.sum(1)).unsqueeze(1)
    return above | (tied & (tied.cumsum(1) <= room))


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


def ranks(values: torch.Tensor, dim: int, descending: bool = True) -> torch.Tensor:
    """Each entry's place along `dim` in the order of `values` (descending: 0 for the largest), ties to the
    lower index first: the inverse of a stable sort's permutation, uint8 for up to 256 places (else
    long). On CPU with up to PAIRWISE_MAX places, by comparing every pair of the places' contiguous blocks
    (T (T - 1) / 2 comparisons, about twice torch.sort's speed at T = 16); else from a stable sort."""
    T = values.shape[dim]
    if values.device.type != "cpu" or T > PAIRWISE_MAX:
        order = torch.sort(values, dim=dim, descending=descending, stable=True).indices
        tail = values.dim() - 1 - dim % values.dim()
        places = torch.arange(T, device=values.device).view(-1, *[1] * tail)
        out = torch.empty_like(order).scatter_(dim, order, places.expand_as(order))
        return out.to(torch.uint8) if T <= 256 else out
    v = values.movedim(dim, 0).contiguous().view(T, -1)
    out = torch.zeros(v.shape, dtype=torch.uint8, device=v.device)
    for e in range(T):
        for f in range(e + 1, T):
            f_first = v[f] > v[e] if descending else v[f] < v[e]  # a tie goes to e, the lower index
            out[e] += f_first
            out[f] += ~f_first
    return out.view(T, *values.movedim(dim, 0).shape[1:]).movedim(0, dim)


PAIRWISE_MAX = 16  # above it the T^2 / 2 small comparisons cost more than a sort


def _top_values(values: torch.Tensor, k_max: int) -> torch.Tensor:
    """The k_max largest of values [T, M, N] along dim 0, sorted descending, [k_max, M, N] (equal values
    are interchangeable here, so no tie rule is needed).

    A tournament on blocks of B = k_max rounded up to a power of two (T padded with the smallest value
    to a power of two): each block is sorted by a Batcher network, then blocks are merged in pairs,
    keeping the top B of each pair (max(a_i, b_{B-1-i}) is a bitonic sequence holding them, sorted by
    a bitonic merge). Every comparator acts on all blocks of its level at once, so a level is a few
    elementwise ops on whole [blocks, M, N] tensors, whatever T: a few dozen ops in all, where a
    network over single experts issues hundreds of small ones."""
    T = values.shape[0]
    size = 1 << max(0, (T - 1).bit_length())
    B = 1 << max(0, (k_max - 1).bit_length())
    if size > T:
        pad = values.new_full((size - T, *values.shape[1:]), torch.iinfo(values.dtype).min)
        values = torch.cat([values, pad])
    # cols[i]: position i of every block, [size // B, M, N].
    blocks = values.reshape(size // B, B, *values.shape[1:])
    cols = [blocks[:, i] for i in range(B)]
    for i, j in _sort_network(B):
        cols[i], cols[j] = torch.maximum(cols[i], cols[j]), torch.minimum(cols[i], cols[j])
    while cols[0].shape[0] > 1:
        cols = [torch.maximum(cols[i][0::2], cols[B - 1 - i][1::2]) for i in range(B)]
        step = B // 2
        while step:
            for i in range(B):
                if i & step == 0:
                    j = i + step
                    cols[i], cols[j] = torch.maximum(cols[i], cols[j]), torch.minimum(cols[i], cols[j])
            step //= 2
    return torch.stack([c[0] for c in cols[:k_max]])


@functools.lru_cache(maxsize=64)
def _sort_network(n: int) -> tuple[tuple[int, int], ...]:
    """Batcher's odd-even merge sort of n (a power of two) positions, larger values to the lower one."""
    return tuple(_selection_network(n, n)) if n > 1 else ()


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
