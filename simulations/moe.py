"""Batched top-k Mixture-of-Experts: many small, independent MoE regressors trained at once.

Every weight carries a leading model axis M, so one forward/backward trains a whole bundle of models
(e.g. a sweep over k or seeds). Models never interact: model i's output and loss depend only on
model i's slices of the parameters.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.autograd.function import once_differentiable

IMPLS = ("auto", "dense", "sparse", "reference")
# impl="auto" picks "sparse" when T >= ratio * mean(k) and the bundle holds >= AUTO_MIN_TOKENS tokens.
AUTO_MIN_RATIO_CPU = 3.0
AUTO_MIN_RATIO_CUDA = 4.0
AUTO_MIN_TOKENS = 16384
RENORMALIZE = ("k>1", "always", "never")
# Gate families (TopKMoE `gate`): how router logits become selection scores and gates.
GATES = ("softmax", "sigmoid", "uniform")


@dataclass
class RouterStats:
    """Per-model router statistics of one batch (never pooled across models).

    fraction: [M, T] share of the k*N token-expert assignments that went to each expert (rows sum to 1).
    mean_prob: [M, T] mean router probability P_j over the N tokens (differentiable).
    load_balancing_loss: [M] Switch-style loss T * sum_j fraction_j * mean_prob_j (differentiable
        through mean_prob; 1.0 when routing is perfectly balanced).
    """

    fraction: torch.Tensor
    mean_prob: torch.Tensor
    load_balancing_loss: torch.Tensor


def _model_seed(seed: int, i: int) -> int:
    # Model i's init depends only on (seed, i): bundles of different sizes share their first models.
    return int(np.random.SeedSequence([seed, i]).generate_state(1, dtype=np.uint64)[0] >> 1)


# Bytes of hidden activations per chunk of expert_mlp on CPU: the chunk stays in cache between its
# forward GEMMs (and is recomputed in the backward), while the Python loop over chunks stays short.
CHUNK_BYTES_CPU = 1 << 21
CHUNK_BYTES_GPU = 1 << 30  # GPUs want few, large launches
# Hidden activations of one expert_mlp call up to this size are kept for the backward instead of being
# recomputed (measured on the quick preset's bundles, 2-core CPU: 10-25% less expert time).
KEEP_HIDDEN_BYTES = 1 << 26


@dataclass(frozen=True)
class ExpertChunk:
    """One batched call of expert_mlp: `groups` (a slice or LongTensor over the M*T (model, expert)
    pairs) each run on `cap` rows. The rows come from x_rows[inputs]: `cap` consecutive rows per group
    (sparse packing), or, with `shared` = T, the same `cap` rows for all T experts of a model (dense:
    inputs then indexes models). The outputs fill rows `outputs` of the [R, d_out] result."""

    groups: slice | torch.Tensor
    inputs: slice
    outputs: slice
    cap: int
    shared: int = 0


class _ExpertMLP(torch.autograd.Function):
    """Batched 2-layer ReLU experts over a list of ExpertChunk. Inputs carry a trailing ones column,
    so the layer-1 bias rides in the GEMM.

    The hidden activations (the layer's largest tensor) are kept for the backward while all of them
    fit in KEEP_HIDDEN_BYTES (the grid's small bundles: the backward then skips the recomputation and
    the expanded copy of the inputs it needs); larger ones are not stored, and the backward recomputes
    them chunk by chunk. Either way the same values enter the same operations. With d_out = 1 the
    backward also never forms the hidden gradient: for one expert,
    grad [w1; b1] = (x * g)^T @ relu'(pre) * w2^T, with g the output gradient.
    """

    @staticmethod
    def forward(ctx, x_rows, w1, b1, w2, b2, chunks, n_rows, keep_hidden):
        O = w2.shape[-1]
        out = x_rows.new_empty(n_rows, O)
        weights = [_chunk_weights(w1, b1, w2, b2, c.groups) for c in chunks]
        hidden = []
        for c, (w1_c, w2_c, b2_c) in zip(chunks, weights, strict=True):
            side = _side_by_side(c, w1_c, w2_c)
            h = _hidden(x_rows, c, w1_c, side)
            if side:
                _shared_output(h, w2_c, b2_c, out[c.outputs], c)
            else:
                torch.baddbmm(b2_c, h, w2_c, out=out[c.outputs].view(-1, c.cap, O))
            if keep_hidden:
                hidden.append(h)
        ctx.chunks, ctx.weights, ctx.hidden = chunks, weights, hidden
        ctx.save_for_backward(x_rows, w1, b1, w2, b2)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        x_rows, w1, b1, w2, b2 = ctx.saved_tensors
        G, d = w1.shape[0] * w1.shape[1], w1.shape[-2]
        O = w2.shape[-1]
        grad_out = grad_out.contiguous()
        need_x = ctx.needs_input_grad[0]
        gx = torch.zeros_like(x_rows) if need_x else None
        # Groups no chunk covers (no tokens routed to them) keep a zero gradient.
        gw1, gb1, gw2, gb2 = (torch.zeros_like(w).view(G, -1) for w in (w1, b1, w2, b2))
        # The kept activations are overwritten below (sign_), so a second backward recomputes them.
        hidden, ctx.hidden = ctx.hidden or [None] * len(ctx.chunks), []
        for c, (w1_c, w2_c, _), h in zip(ctx.chunks, ctx.weights, hidden, strict=True):
            side = _side_by_side(c, w1_c, w2_c)
            if h is None:
                h = _hidden(x_rows, c, w1_c, side)
            g_c = grad_out[c.outputs].view(-1, c.cap, O)
            if side and O == 1 and not need_x:
                gw2_c, gw = _shared_weight_grads(x_rows, c, g_c, h, w2_c)
                _put(gw2, c.groups, gw2_c)
                _put(gb2, c.groups, g_c.sum(1))
                _put(gw1, c.groups, gw[:, :-1])
                _put(gb1, c.groups, gw[:, -1])
                continue
            if side:  # the per-(model, expert) layout of the generic code below
                h = _per_group(h, c)
            if need_x or O != 1:
                x_c = _chunk_inputs(x_rows, c)
            w2_t = w2_c.transpose(1, 2)
            # Layouts chosen so that no [cap, H]-sized operand is transposed (that would cost a copy).
            _put(gw2, c.groups, torch.bmm(g_c.transpose(1, 2), h).transpose(1, 2))
            _put(gb2, c.groups, g_c.sum(1))
            if O == 1 and not need_x:
                relu_grad = h.sign_()  # h >= 0, so this is 1 where the pre-activation was > 0
                gw = torch.bmm((_chunk_inputs(x_rows, c) * g_c).transpose(1, 2), relu_grad).mul_(w2_t)
            else:
                gh = g_c * w2_t if O == 1 else torch.bmm(g_c, w2_t)  # a broadcast beats a K=1 GEMM
                gh = torch.ops.aten.threshold_backward(gh, h, 0)  # as torch.relu's backward
                gw = torch.bmm(x_c.transpose(1, 2), gh)
                if need_x:
                    gx_c = torch.bmm(gh, w1_c.transpose(1, 2))
                    if c.shared:
                        gx_c = gx_c.view(-1, c.shared, c.cap, d + 1).sum(1)
                    gx[c.inputs] += gx_c.reshape(gx[c.inputs].shape)
            _put(gw1, c.groups, gw[:, :-1])
            _put(gb1, c.groups, gw[:, -1])
        return gx, gw1.view_as(w1), gb1.view_as(b1), gw2.view_as(w2), gb2.view_as(b2), None, None, None


def _chunk_weights(w1, b1, w2, b2, groups: slice | torch.Tensor):
    """One chunk's weights: [w1; b1] as [n, d_in + 1, H] (b1 meets the inputs' ones column), w2 as
    [n, H, d_out] and b2 as [n, 1, d_out]."""
    d, H = w1.shape[-2:]
    G, O = w1.shape[0] * w1.shape[1], w2.shape[-1]

    def take(w: torch.Tensor, *shape: int) -> torch.Tensor:
        w = w.reshape(G, *shape)
        return w[groups] if isinstance(groups, slice) else w.index_select(0, groups)

    return torch.cat([take(w1, d, H), take(b1, 1, H)], dim=1), take(w2, H, O), take(b2, 1, O)


def _put(dst: torch.Tensor, groups: slice | torch.Tensor, value: torch.Tensor) -> None:
    value = value.reshape(value.shape[0], -1)
    if isinstance(groups, slice):
        dst[groups] = value
    else:
        dst.index_copy_(0, groups, value)


def _chunk_inputs(x_rows: torch.Tensor, c: ExpertChunk) -> torch.Tensor:
    """[n_groups, cap, d_in + 1] inputs of one chunk (a copy of cache size where rows are shared)."""
    x = x_rows[c.inputs]
    if c.shared:
        x = x.unsqueeze(1).expand(-1, c.shared, -1, -1)
    return x.reshape(-1, c.cap, x_rows.shape[-1])


# Dense chunks (every expert of a model on all its rows) run "side by side": one GEMM per model against
# all its experts' weights at once, [d_in + 1, T * H] for layer 1 and the block-diagonal [T * H, T * O]
# for layer 2, instead of T small GEMMs per model on T copies of its rows. Every output is the same dot
# product, and with this torch's CPU GEMMs bit-identical to the per-(model, expert) form (the added
# terms of layer 2 are exact zeros); bench/grid.py checks it end to end by comparing the grid's rows with
# those of the per-expert implementation. The hidden activations stay in the model's [cap, T * H] layout.
def _side_by_side(c: ExpertChunk, w1_c: torch.Tensor, w2_c: torch.Tensor) -> bool:
    """Whether a chunk runs side by side: dense, with per-expert GEMMs big enough that torch's CPU bmm
    gives them to BLAS too (it runs products under 400 multiply-adds in its own loop, whose rounding
    the side-by-side GEMMs would not reproduce)."""
    d1, (H, O) = w1_c.shape[-2], w2_c.shape[-2:]
    return c.shared > 0 and c.cap * H * min(O, d1) >= 400


def _hidden(x_rows: torch.Tensor, c: ExpertChunk, w1_c: torch.Tensor, side: bool) -> torch.Tensor:
    """relu(inputs @ [w1; b1]) of one chunk: [n_groups, cap, H], or side by side [n_models, cap,
    T * H]."""
    if not side:
        return torch.bmm(_chunk_inputs(x_rows, c), w1_c).clamp_min_(0)
    x = x_rows[c.inputs]
    n, T, (d1, H) = x.shape[0], c.shared, w1_c.shape[-2:]
    side_by_side = w1_c.view(n, T, d1, H).transpose(1, 2).reshape(n, d1, T * H)
    return torch.bmm(x, side_by_side).clamp_min_(0)


def _per_group(h: torch.Tensor, c: ExpertChunk) -> torch.Tensor:
    """A dense chunk's hidden activations [n_models, cap, T * H] as [n_models * T, cap, H]."""
    n, T = h.shape[0], c.shared
    return h.view(n, c.cap, T, -1).transpose(1, 2).reshape(n * T, c.cap, -1)


def _block_diagonal(w: torch.Tensor, T: int) -> torch.Tensor:
    """[n * T, a, b] -> [n, T * a, T * b] with model i's T matrices on the diagonal."""
    G, a, b = w.shape
    eye = torch.eye(T, dtype=w.dtype, device=w.device).view(1, T, 1, T, 1)
    return (w.view(G // T, T, a, 1, b) * eye).view(G // T, T * a, T * b)


def _shared_output(h: torch.Tensor, w2_c: torch.Tensor, b2_c: torch.Tensor, out: torch.Tensor,
                   c: ExpertChunk) -> None:
    """Layer 2 of a dense chunk into out [n_groups * cap, O] (rows ordered by (model, expert, token)):
    h @ w2 + b2 per expert, as one GEMM per model with the block-diagonal w2."""
    n, T, O = h.shape[0], c.shared, w2_c.shape[-1]
    y = torch.bmm(h, _block_diagonal(w2_c, T)).view(n, c.cap, T, O)
    torch.add(y.transpose(1, 2), b2_c.view(n, T, 1, O), out=out.view(n, T, c.cap, O))


def _shared_weight_grads(x_rows: torch.Tensor, c: ExpertChunk, g: torch.Tensor, h: torch.Tensor,
                         w2_c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """grad w2 [n_groups, H, 1] and grad [w1; b1] [n_groups, d_in + 1, H] of a dense chunk with d_out = 1,
    g [n_groups, cap, 1] the output gradient, h [n_models, cap, T * H] (consumed)."""
    x = x_rows[c.inputs]
    n, T, d1 = x.shape[0], c.shared, x.shape[-1]
    H = h.shape[-1] // T
    g_side = g.view(n, T, c.cap)
    # grad w2 of expert t: g_t^T @ h_t, the diagonal blocks of one GEMM per model.
    gw2 = torch.bmm(g_side, h).view(n, T, T, H).diagonal(dim1=1, dim2=2)  # [n, H, T]
    gw2 = gw2.permute(0, 2, 1).reshape(n * T, H, 1)
    # h >= 0, so its sign is 1 where the pre-activation was > 0; taken in h's own layout (contiguous,
    # vectorised), then laid out per (model, expert).
    relu_grad = torch.empty(n, T, c.cap, H, dtype=h.dtype, device=h.device)
    relu_grad.copy_(h.sign_().view(n, c.cap, T, H).transpose(1, 2))
    # (x * g)^T per expert, formed transposed so the product runs along contiguous rows.
    xg_t = torch.empty(n, T, d1, c.cap, dtype=x.dtype, device=x.device)
    torch.mul(x.transpose(1, 2).contiguous().unsqueeze(1), g_side.unsqueeze(2), out=xg_t)
    gw = torch.bmm(xg_t.view(n * T, d1, c.cap), relu_grad.view(n * T, c.cap, H))
    return gw2, gw.mul_(w2_c.transpose(1, 2))


def with_ones(x: torch.Tensor) -> torch.Tensor:
    """x [..., d] -> [..., d + 1] with a trailing column of ones (the input format of expert_mlp)."""
    return torch.cat([x, x.new_ones(*x.shape[:-1], 1)], dim=-1)


def expert_mlp(x_rows, w1, b1, w2, b2, chunks: list[ExpertChunk], n_rows: int) -> torch.Tensor:
    """Run expert (i, j) = relu(x @ w1[i, j] + b1[i, j]) @ w2[i, j] + b2[i, j] on the rows each chunk
    gives it; x_rows carries a trailing ones column (see with_ones). Returns [n_rows, d_out]."""
    n_hidden = sum(_size(c.groups) * c.cap for c in chunks) * w1.shape[-1]
    keep_hidden = torch.is_grad_enabled() and n_hidden * x_rows.element_size() <= KEEP_HIDDEN_BYTES
    return _ExpertMLP.apply(x_rows, w1, b1, w2, b2, chunks, n_rows, keep_hidden)


def _size(groups: slice | torch.Tensor) -> int:
    return groups.stop - groups.start if isinstance(groups, slice) else groups.numel()


def _chunk_budget(x: torch.Tensor) -> int:
    return (CHUNK_BYTES_CPU if x.device.type == "cpu" else CHUNK_BYTES_GPU) // x.element_size()


def dense_chunks(M: int, T: int, N: int, H: int, x: torch.Tensor) -> list[ExpertChunk]:
    """Every expert on all N tokens of its model, in chunks of whole models."""
    step = max(1, _chunk_budget(x) // max(1, T * N * H))
    G = M * T
    return [
        ExpertChunk(slice(m * T, min(G, (m + step) * T)), slice(m, m + step),
                    slice(m * T * N, min(G, (m + step) * T) * N), N, shared=T)
        for m in range(0, M, step)
    ]


def sparse_chunks(counts: list[int], H: int, x: torch.Tensor) -> tuple[list[ExpertChunk], list[int], int]:
    """Pack (model, expert) groups of `counts` rows: groups sorted by size, chunks padded to their own
    largest group, so a skewed router costs little padding. Returns the chunks, each group's first row
    (groups with no rows get none) and the number of rows."""
    budget = _chunk_budget(x)
    order = sorted((n, g) for g, n in enumerate(counts) if n > 0)
    base = [0] * len(counts)
    chunks, row, i = [], 0, 0
    while i < len(order):
        j = i + 1  # grow the chunk while its padded hidden activations fit the budget
        while j < len(order) and (j + 1 - i) * order[j][0] * H <= budget:
            j += 1
        cap, ids = order[j - 1][0], [g for _, g in order[i:j]]
        for r, g in enumerate(ids):
            base[g] = row + r * cap
        rows = slice(row, row + (j - i) * cap)
        chunks.append(ExpertChunk(torch.tensor(ids, device=x.device), rows, rows, cap))
        row, i = rows.stop, j
    return chunks, base, row


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


class TopKMoE(nn.Module):
    """M independent top-k MoE regressors with T two-layer ReLU experts each.

    Expert j of model i: ``relu(x @ w1[i, j] + b1[i, j]) @ w2[i, j] + b2[i, j]``.

    Gating (per model, per token): ``p = softmax(x @ router / temperature)`` over the T experts
    (``temperature`` 1 by default; below 1 sharpens the router, above 1 softens it); the k largest p are
    kept, ties broken deterministically (the lower expert index wins); the kept p are divided by their
    sum when ``renormalize`` applies; the output is the gate-weighted sum of the kept experts' outputs.
    ``renormalize``: "k>1" (default) renormalizes only models whose k > 1 (at k = 1 a renormalized
    gate is the constant 1 and the router would get no gradient), decided per model when k is a
    per-model tensor; "always"; "never".

    ``gate`` chooses the gate family (GATES; logits l = x @ router / temperature, per model and token):
      - "softmax" (default): as above, p = softmax(l).
      - "sigmoid": scores p = sigmoid(l), each in (0, 1) and independent of the others; the k largest
        are kept and, where ``renormalize`` applies, divided by their sum (the DeepSeek-V3 form). The
        default "k>1" leaves k = 1 gates raw, sigmoid(l), so the router learns at k = 1 too; "always"
        makes k = 1 the constant 1 (no router gradient); "never" keeps raw sigmoids at every k.
      - "uniform": selection by p = softmax(l), forward gates exactly 1 / k on the selected (as the
        oracle's), ``renormalize`` unused. The selection learns by a straight-through estimator:
        gates = sel / k + sel * (p - stop_grad(p)), so the backward is that of the softmax gates p on
        the selected experts (the gradient reaches every logit through the full softmax, at k = 1 too).
    ``p`` (route's first output, the load-balancing statistics) is the family's score: softmax for
    "softmax" and "uniform", the sigmoids for "sigmoid" (then not a distribution over experts).

    ``k`` is an int or a LongTensor [M] (one k per model, so one bundle can hold a k sweep); it can be
    reassigned after construction (validated to 1 <= k <= T). ``route(x, k=j)`` gates at another k
    without changing the model's (inference-time k).

    Router statistics per model (never pooled across models): ``forward(x, return_stats=True)``
    returns ``(y, RouterStats)``; ``router_stats(x)`` returns the RouterStats alone.

    Implementations (the same selection exactly, the same outputs and gradients up to float rounding;
    ``impl`` picks one and can be reassigned):
      - "dense": every expert on every token, combined with a masked gate tensor (static shapes,
        batched matmuls over the flattened (model, expert) axis).
      - "sparse": only the selected (model, expert, token) triples: packed per (model, expert)
        group, groups sorted by size and run in cache-sized batched matmuls, each padded only to its
        own largest group (a collapsed router costs little padding).
      - "reference": a plain Python loop over models and experts (for tests).
      - "auto": "sparse" when T / mean(k) >= 3 and the bundle has M * N >= 16384 tokens, else
        "dense" (measured on a 2-core CPU: sparse's cost grows with k, dense's does not, and they
        cross near T / k = 2; on small batches sparse's fixed bookkeeping loses). On CUDA the same rule
        with T / mean(k) >= 4 (not measured: sparse pays host syncs for its packing plan).
    Both fast impls share the expert kernel (expert_mlp): the layer-1 bias rides in the GEMM via a
    ones column, the hidden activations are recomputed in the backward instead of stored, and it is
    differentiable once (no double backward).

    Init, like nn.Linear: every weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in =
    d_in for ``router``, ``w1``, ``b1`` and d_hidden for ``w2``, ``b2`` (the router has no bias).
    Values come from a CPU torch.Generator seeded per model from (seed, model index), so the same seed
    gives the same weights on every device, and model i's weights do not depend on n_models.
    ``seed=None`` draws the seed from torch's global generator.

    ``d_context`` > 0 (a contextual task): inputs are [M, N, d_in + d_context], x followed by a context
    c; the router reads all of it (its weight is [M, d_in + d_context, T], fan_in d_in + d_context) and
    the experts read x = [..., :d_in] only, so c can change which experts run but never what they
    compute. With d_context = 0 (the default) the init draws are exactly those of a model without it.
    """

    def __init__(
        self,
        n_models: int,
        n_experts: int,
        d_in: int,
        d_hidden: int,
        d_out: int = 1,
        k: int | torch.Tensor = 2,
        impl: str = "auto",
        renormalize: str = "k>1",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        seed: int | None = None,
        temperature: float = 1.0,
        gate: str = "softmax",
        d_context: int = 0,
    ) -> None:
        super().__init__()
        if not (isinstance(temperature, (int, float)) and not isinstance(temperature, bool)
                and temperature > 0):
            raise ValueError(f"temperature must be a number > 0, got {temperature!r}")
        self.temperature = float(temperature)
        for name, value in (("n_models", n_models), ("n_experts", n_experts), ("d_in", d_in),
                            ("d_hidden", d_hidden), ("d_out", d_out)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(d_context, int) or isinstance(d_context, bool) or d_context < 0:
            raise ValueError(f"d_context must be an int >= 0, got {d_context!r}")
        self.d_context = d_context
        self.n_models, self.n_experts = n_models, n_experts
        self.d_in, self.d_hidden, self.d_out = d_in, d_hidden, d_out
        self.impl, self.renormalize, self.gate = impl, renormalize, gate
        dtype = dtype if dtype is not None else torch.get_default_dtype()
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        self.seed = seed

        M, T = n_models, n_experts
        shapes = {
            "router": ((d_in + d_context, T), d_in + d_context),
            "w1": ((T, d_in, d_hidden), d_in),
            "b1": ((T, d_hidden), d_in),
            "w2": ((T, d_hidden, d_out), d_hidden),
            "b2": ((T, d_out), d_hidden),
        }
        values: dict[str, list[torch.Tensor]] = {name: [] for name in shapes}
        for i in range(M):
            gen = torch.Generator().manual_seed(_model_seed(seed, i))
            for name, (shape, fan_in) in shapes.items():
                bound = 1.0 / math.sqrt(fan_in)
                u = torch.rand(shape, generator=gen, dtype=dtype)
                values[name].append(u.mul_(2 * bound).sub_(bound))
        for name, chunks in values.items():
            setattr(self, name, nn.Parameter(torch.stack(chunks).to(device)))
        self.register_buffer("_k_vec", torch.empty(M, dtype=torch.long, device=device), persistent=False)
        self.k = k

    # ---------------------------------------------------------------- settings
    @property
    def impl(self) -> str:
        """Which implementation forward() uses: one of IMPLS."""
        return self._impl

    @impl.setter
    def impl(self, value: str) -> None:
        if value not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS}, got {value!r}")
        self._impl = value

    @property
    def renormalize(self) -> str:
        """When kept probabilities are divided by their sum: one of RENORMALIZE."""
        return self._renormalize

    @renormalize.setter
    def renormalize(self, value: str) -> None:
        if value not in RENORMALIZE:
            raise ValueError(f"renormalize must be one of {RENORMALIZE}, got {value!r}")
        self._renormalize = value

    @property
    def gate(self) -> str:
        """The gate family: one of GATES (see the class docstring)."""
        return self._gate

    @gate.setter
    def gate(self, value: str) -> None:
        if value not in GATES:
            raise ValueError(f"gate must be one of {GATES}, got {value!r}")
        self._gate = value

    @property
    def k(self) -> int | torch.Tensor:
        """Experts kept per token: an int (all models) or a LongTensor [M] (one per model)."""
        return self._k

    @k.setter
    def k(self, value: int | torch.Tensor) -> None:
        self._k_vec.copy_(self._k_vector(value))
        self._k = self._k_vec.clone() if isinstance(value, torch.Tensor) else int(value)
        self._k_min, self._k_max = int(self._k_vec.min()), int(self._k_vec.max())
        self._k_mean = float(self._k_vec.float().mean())

    def _k_vector(self, value: int | torch.Tensor) -> torch.Tensor:
        """A valid k (an int or an integer tensor [M] in 1..T) as a LongTensor [M] on the model's device."""
        M, T = self.n_models, self.n_experts
        if isinstance(value, torch.Tensor):
            if value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool:
                raise ValueError(f"k must be an int or an integer tensor [n_models={M}], got {value.dtype}")
            if value.shape != (M,):
                raise ValueError(f"k as a tensor must have shape [n_models={M}], got {tuple(value.shape)}")
            lo, hi = int(value.min()), int(value.max())
            if lo < 1 or hi > T:
                raise ValueError(f"k must satisfy 1 <= k <= n_experts={T}, got values in [{lo}, {hi}]")
            return value.detach().to(device=self._k_vec.device, dtype=torch.long)
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise ValueError(f"k must be an int or a LongTensor [n_models], got {type(value).__name__}")
        if not 1 <= int(value) <= T:
            raise ValueError(f"k must satisfy 1 <= k <= n_experts={T}, got {int(value)}")
        return torch.full_like(self._k_vec, int(value))

    def _k_of(self, k: int | torch.Tensor | None) -> tuple[torch.Tensor, int, int]:
        """(k per model [M], its min, its max): the model's own k (None), or `k` to gate at another k
        without changing the model (inference-time k)."""
        if k is None:
            return self._k_vec, self._k_min, self._k_max
        k_vec = self._k_vector(k)
        return k_vec, int(k_vec.min()), int(k_vec.max())

    def _renorm_mask(self, k_vec: torch.Tensor | None = None) -> torch.Tensor:
        """Bool [M]: which models divide their kept probabilities by their sum (at k_vec, default the
        model's own k)."""
        k_vec = self._k_vec if k_vec is None else k_vec
        if self.renormalize == "always":
            return torch.ones_like(k_vec, dtype=torch.bool)
        if self.renormalize == "never":
            return torch.zeros_like(k_vec, dtype=torch.bool)
        return k_vec > 1

    def resolved_impl(self, n_tokens: int | None = None) -> str:
        """The implementation forward() runs on batches of n_tokens tokens per model ("auto" resolved
        by T / mean k, the bundle's token count and the device; see the class docstring)."""
        if self.impl != "auto":
            return self.impl
        min_ratio = AUTO_MIN_RATIO_CUDA if self.w1.device.type == "cuda" else AUTO_MIN_RATIO_CPU
        enough_tokens = n_tokens is None or self.n_models * n_tokens >= AUTO_MIN_TOKENS
        return "sparse" if self.n_experts >= min_ratio * self._k_mean and enough_tokens else "dense"

    # ---------------------------------------------------------------- gating
    # Gating works in a [M, T, N] layout: reductions over the T experts then run along a strided
    # axis and vectorise over the N tokens, which is much faster than reducing a short last axis.
    def _probs(self, x: torch.Tensor, logit_noise: float = 0.0) -> torch.Tensor:
        """Router scores p, [M, T, N]: the gate family's (softmax over the experts, or independent
        sigmoids for gate "sigmoid"); `logit_noise` > 0 adds N(0, logit_noise^2) jitter to the
        router logits (a training-time exploration aid, drawn from torch's global generator)."""
        logits = torch.bmm(self.router.transpose(1, 2), x.transpose(1, 2))
        if self.temperature != 1.0:
            logits = logits / self.temperature
        if logit_noise > 0:
            logits = logits + logit_noise * torch.randn_like(logits)
        if self.gate == "sigmoid":
            return torch.sigmoid(logits)
        return torch.softmax(logits, dim=1)

    def route(self, x: torch.Tensor, logit_noise: float = 0.0, k: int | torch.Tensor | None = None
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The router's decision on x [M, N, d_in]: probabilities p, the top-k mask and the gates, each
        [M, T, N] (gates differentiable through p). `k` (an int or LongTensor [M]) gates at that k
        instead of the model's own, leaving the model unchanged."""
        self._check_input(x)
        p = self._probs(x, logit_noise)
        mask = topk_mask(p, *self._k_of(k))
        return p, mask, self._gates(p, mask, k)

    def _gates(self, p: torch.Tensor, mask: torch.Tensor, k: int | torch.Tensor | None = None
               ) -> torch.Tensor:
        """[M, T, N] gate weights on the selection `mask` by the gate family's rule: kept p (softmax
        or sigmoid scores, renormalized per model where it applies at k, default the model's own k),
        zeros elsewhere; for gate "uniform" see _uniform_gates.

        A renormalized k = 1 gate is the constant 1, written as such so the router gets exactly no
        gradient (p / p would leak rounding-level gradients)."""
        if self.gate == "uniform":
            return self._uniform_gates(p, mask)
        k_vec = self._k_of(k)[0]
        g = p * mask
        renorm = self._renorm_mask(k_vec)
        if bool(renorm.all()):
            g = g / g.sum(1, keepdim=True)
        elif bool(renorm.any()):
            g = torch.where(renorm[:, None, None], g / g.sum(1, keepdim=True), g)
        if bool(renorm.any()):
            constant = renorm & (k_vec == 1)
            if bool(constant.any()):
                g = torch.where(constant[:, None, None], mask.to(p.dtype), g)
        return g

    @staticmethod
    def _uniform_gates(p: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Gate "uniform": 1 / (the number selected) on each token's selected experts, exactly, in the
        forward; straight-through in the backward, as if the gates were the selected p (the term
        sel * (p - p.detach()) is exactly 0 but carries p's gradient). Any selection works (a token
        with none selected gets zeros), so k is read off the mask."""
        sel = mask.to(p.dtype)
        return sel / sel.sum(1, keepdim=True).clamp_min(1) + sel * (p - p.detach())

    def _check_input(self, x: torch.Tensor) -> None:
        width = self.d_in + self.d_context
        if x.dim() != 3 or x.shape[0] != self.n_models or x.shape[2] != width:
            what = f"d_in={self.d_in}" if not self.d_context else \
                f"d_in + d_context={self.d_in} + {self.d_context}"
            raise ValueError(f"x must have shape [n_models={self.n_models}, N, {what}], got {tuple(x.shape)}")

    def expert_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """What the experts read of inputs x [..., d_in + d_context]: x[..., :d_in] (the context is the
        router's alone); x itself when d_context = 0."""
        return x[..., : self.d_in] if self.d_context else x

    # ---------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor, return_stats: bool = False, gates: torch.Tensor | None = None,
                logit_noise: float = 0.0):
        """x [M, N, d_in] -> y [M, N, d_out]; with return_stats, (y, RouterStats).

        `gates` [M, T, N], when given, replaces the router (a fixed routing such as an oracle's): the
        experts with a positive gate run, weighted by it, and the router gets no gradient; router
        statistics are then unavailable. `logit_noise`: see `route`."""
        self._check_input(x)
        impl = self.resolved_impl(x.shape[1])
        if gates is not None:
            if return_stats:
                raise ValueError("return_stats needs the learned router; it is unavailable with fixed gates")
            if gates.shape != (self.n_models, self.n_experts, x.shape[1]):
                raise ValueError(f"gates must have shape [n_models, n_experts, N] = "
                                 f"{[self.n_models, self.n_experts, x.shape[1]]}, got {list(gates.shape)}")
            return self.mix(x, gates, gates > 0)
        if impl == "reference":
            y, p, mask = self._forward_reference(x)
        else:
            p = self._probs(x, logit_noise)
            mask = topk_mask(p, self._k_vec, self._k_min, self._k_max)
            y = self.mix(x, self._gates(p, mask), mask)
        if not return_stats:
            return y
        return y, self._stats(p, mask)

    def mix(self, x: torch.Tensor, gates: torch.Tensor, selected: torch.Tensor) -> torch.Tensor:
        """y [M, N, d_out]: the `selected` experts [M, T, N] (bool) run on x [M, N, d_in] and summed,
        weighted by `gates` [M, T, N] (gradients flow to the gates). The gating half of `forward` is
        `route`; a caller with its own gates (a fixed router, gating at another k) combines them here."""
        if self.resolved_impl(x.shape[1]) == "sparse":
            return self._sparse(x, gates, selected)
        return self._dense(x, gates)

    def router_stats(self, x: torch.Tensor) -> RouterStats:
        """Per-model router statistics of batch x (see RouterStats); differentiable like forward's."""
        self._check_input(x)
        p = self._probs(x)
        return self._stats(p, topk_mask(p, self._k_vec, self._k_min, self._k_max))

    def _stats(self, p: torch.Tensor, mask: torch.Tensor) -> RouterStats:
        counts = mask.sum(2, dtype=p.dtype)  # [M, T]
        fraction = counts / counts.sum(-1, keepdim=True)
        mean_prob = p.mean(2)
        return RouterStats(fraction, mean_prob, self.n_experts * (fraction * mean_prob).sum(-1))

    def expert_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """Every expert's output on every token, [M, T, N, d_out] (the dense path's expert pass)."""
        x = self.expert_inputs(x)
        M, N, _ = x.shape
        T = self.n_experts
        chunks = dense_chunks(M, T, N, self.d_hidden, x)
        out = expert_mlp(with_ones(x), self.w1, self.b1, self.w2, self.b2, chunks, M * T * N)
        return out.view(M, T, N, self.d_out)

    def _dense(self, x: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
        return (gates.unsqueeze(-1) * self.expert_outputs(x)).sum(1)

    def _sparse(self, x: torch.Tensor, gates: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.expert_inputs(x)
        M, N, d = x.shape
        T, O = self.n_experts, self.d_out
        # Selected (model, expert, token) triples, in (model, expert, token) order.
        m_idx, e_idx, n_idx = mask.nonzero(as_tuple=True)
        group = m_idx * T + e_idx
        counts = mask.sum(-1).flatten()
        chunks, base, n_rows = sparse_chunks(counts.tolist(), self.d_hidden, x)
        starts = counts.cumsum(0) - counts  # first triple of each group
        rank = torch.arange(group.numel(), device=x.device) - starts.index_select(0, group)
        dest = torch.tensor(base, device=x.device).index_select(0, group) + rank
        tokens = m_idx * N + n_idx
        # Padding rows read token 0 of the bundle: finite work whose outputs are never read.
        src = torch.zeros(n_rows, dtype=torch.long, device=x.device).index_copy_(0, dest, tokens)
        packed = with_ones(x.reshape(M * N, d)).index_select(0, src)
        out = expert_mlp(packed, self.w1, self.b1, self.w2, self.b2, chunks, n_rows)
        ys = out.index_select(0, dest) * gates.view(-1).index_select(0, group * N + n_idx).unsqueeze(-1)
        return x.new_zeros(M * N, O).index_add(0, tokens, ys).view(M, N, O)

    def _forward_reference(self, x: torch.Tensor):
        """Loop over models and experts; selection by numpy lexsort on (-p, expert index); each gate
        family's rule written out again here, per model, independent of the batched gating code."""
        M, N, _ = x.shape
        T = self.n_experts
        renorm = self._renorm_mask().tolist()
        ys, ps, masks = [], [], []
        for i in range(M):
            logits = x[i] @ self.router[i] / self.temperature
            p = torch.sigmoid(logits) if self.gate == "sigmoid" else torch.softmax(logits, dim=-1)
            pn = p.detach().cpu().double().numpy()
            idx = np.broadcast_to(np.arange(T), pn.shape)
            order = np.lexsort((idx, -pn), axis=-1)[:, : int(self._k_vec[i])]
            keep = np.zeros((N, T), dtype=bool)
            np.put_along_axis(keep, order, True, axis=-1)
            keep_t = torch.as_tensor(keep, device=x.device)
            if self.gate == "uniform":  # 1/k forward, the softmax's gradient backward
                k_i = int(self._k_vec[i])
                g = torch.where(keep_t, 1.0 / k_i + (p - p.detach()), torch.zeros_like(p))
            else:
                g = torch.where(keep_t, p, torch.zeros_like(p))
                if renorm[i]:
                    g = g / g.sum(-1, keepdim=True)
            y = x.new_zeros(N, self.d_out)
            for j in range(T):
                rows = keep_t[:, j].nonzero(as_tuple=True)[0]
                if rows.numel() == 0:
                    continue
                hj = torch.relu(self.expert_inputs(x[i, rows]) @ self.w1[i, j] + self.b1[i, j])
                yj = hj @ self.w2[i, j] + self.b2[i, j]
                y = y.index_add(0, rows, g[rows, j : j + 1] * yj)
            ys.append(y)
            ps.append(p)
            masks.append(keep_t)
        return torch.stack(ys), torch.stack(ps).transpose(1, 2), torch.stack(masks).transpose(1, 2)

    def extra_repr(self) -> str:
        k = self._k if isinstance(self._k, int) else f"per-model[{self.n_models}]"
        return (
            f"n_models={self.n_models}, n_experts={self.n_experts}, d_in={self.d_in}, "
            f"d_hidden={self.d_hidden}, d_out={self.d_out}, k={k}, impl={self.impl!r}, "
            f"renormalize={self.renormalize!r}, gate={self.gate!r}"
            + (f", d_context={self.d_context}" if self.d_context else "")
        )
