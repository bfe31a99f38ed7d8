"""The batched expert kernel of TopKMoE: 2-layer ReLU experts over a bundle's (model, expert) pairs.

`expert_mlp` runs expert (i, j) of every model on the rows each `ExpertChunk` gives it, as batched
GEMMs; `dense_chunks` (every expert on all of its model's tokens, the dense impl) and `sparse_plan`
(only the routed rows of a selection, packed per (model, expert) group by `sparse_chunks`, the sparse
impl) plan those chunks. Its own autograd Function, so that the backward does only the work the layer
needs (see _ExpertMLP).

What a chunk computes is fixed by its shapes: a GEMM's rows do not depend on the rows beside them,
but the backward's GEMMs and sums reduce over a group's padded rows, and MKL blocks such reductions by
their length, so each group's padded size (`cap`, set by the plan and CHUNK_BYTES_CPU) decides the
last bits of the weight gradients. The grid's stored rows depend on them: the packing can be made
faster (how it is bookkept, gathered, batched), but not different, without moving those rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.autograd.function import once_differentiable

# Bytes of hidden activations per chunk of expert_mlp on CPU: the chunk stays in cache between its
# forward GEMMs (and is recomputed in the backward), while the Python loop over chunks stays short. It
# also sets the sparse groups' padded sizes, hence the rounding of their gradients (module docstring).
CHUNK_BYTES_CPU = 1 << 21
CHUNK_BYTES_GPU = 1 << 30  # GPUs want few, large launches
# Hidden activations of one expert_mlp call up to this size are kept for the backward instead of being
# recomputed (measured on the quick preset's bundles, 2-core CPU: 10-25% less expert time).
KEEP_HIDDEN_BYTES = 1 << 26


@dataclass(frozen=True)
class ExpertChunk:
    """One batched call of expert_mlp: `groups` (a slice of the plan's (model, expert) pairs: the M*T
    pairs in order, or those of expert_mlp's `order`) each run on `cap` rows. The rows come from
    x_rows[inputs]: `cap` consecutive rows per group (sparse packing), or, with `shared` = T, the same
    `cap` rows for all T experts of a model (dense: inputs then indexes models). The outputs fill rows
    `outputs` of the [R, d_out] result."""

    groups: slice
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
    def forward(ctx, x_rows, w1, b1, w2, b2, chunks, n_rows, keep_hidden, order):
        O = w2.shape[-1]
        out = x_rows.new_empty(n_rows, O)
        weights = _plan_weights(w1, b1, w2, b2, order)
        hidden = []
        for c in chunks:
            w1_c, w2_c, b2_c = (w[c.groups] for w in weights)
            side = _side_by_side(c, w1_c, w2_c)
            h = _hidden(x_rows, c, w1_c, side)
            if side:
                _shared_output(h, w2_c, b2_c, out[c.outputs], c)
            else:
                torch.baddbmm(b2_c, h, w2_c, out=out[c.outputs].view(-1, c.cap, O))
            if keep_hidden:
                hidden.append(h)
        ctx.chunks, ctx.weights, ctx.hidden, ctx.order = chunks, weights, hidden, order
        ctx.save_for_backward(x_rows, w1, b1, w2, b2)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        x_rows, w1, b1, w2, b2 = ctx.saved_tensors
        d, O = w1.shape[-2], w2.shape[-1]
        grad_out = grad_out.contiguous()
        need_x = ctx.needs_input_grad[0]
        gx = torch.zeros_like(x_rows) if need_x else None
        # Gradients in plan order, each chunk writing its own slice: [w1; b1], w2, b2.
        grads = [torch.empty_like(w) for w in ctx.weights]
        # The kept activations are overwritten below (sign_), so a second backward recomputes them.
        hidden, ctx.hidden = ctx.hidden or [None] * len(ctx.chunks), []
        for c, h in zip(ctx.chunks, hidden, strict=True):
            w1_c, w2_c, _ = (w[c.groups] for w in ctx.weights)
            g_w1, g_w2, g_b2 = (g[c.groups] for g in grads)
            side = _side_by_side(c, w1_c, w2_c)
            if h is None:
                h = _hidden(x_rows, c, w1_c, side)
            g_c = grad_out[c.outputs].view(-1, c.cap, O)
            torch.sum(g_c, 1, keepdim=True, out=g_b2)
            if side and O == 1 and not need_x:
                _shared_weight_grads(x_rows, c, g_c, h, w2_c, g_w1, g_w2)
                continue
            if side:  # the per-(model, expert) layout of the generic code below
                h = _per_group(h, c)
            w2_t = w2_c.transpose(1, 2)
            # Layouts chosen so that no [cap, H]-sized operand is transposed (that would cost a copy).
            g_w2.copy_(torch.bmm(g_c.transpose(1, 2), h).transpose(1, 2))
            if O == 1 and not need_x:
                relu_grad = h.sign_()  # h >= 0, so this is 1 where the pre-activation was > 0
                torch.bmm((_chunk_inputs(x_rows, c) * g_c).transpose(1, 2), relu_grad, out=g_w1).mul_(w2_t)
                continue
            gh = g_c * w2_t if O == 1 else torch.bmm(g_c, w2_t)  # a broadcast beats a K=1 GEMM
            gh = torch.ops.aten.threshold_backward(gh, h, 0)  # as torch.relu's backward
            x_c = _chunk_inputs(x_rows, c)
            torch.bmm(x_c.transpose(1, 2), gh, out=g_w1)
            if need_x:
                gx_c = torch.bmm(gh, w1_c.transpose(1, 2))
                if c.shared:
                    gx_c = gx_c.view(-1, c.shared, c.cap, d + 1).sum(1)
                gx[c.inputs] += gx_c.reshape(gx[c.inputs].shape)
        return (gx, *_unplan_grads(grads, w1, b1, w2, b2, ctx.order), None, None, None, None)


def _plan_weights(w1, b1, w2, b2, order: torch.Tensor | None) -> list[torch.Tensor]:
    """The weights of the plan's (model, expert) pairs (all M*T in order, or those of `order`): [w1; b1]
    as [P, d_in + 1, H] (b1 meets the inputs' ones column), w2 as [P, H, d_out] and b2 as [P, 1,
    d_out]; a chunk's are the slices at its groups."""
    d, H = w1.shape[-2:]
    G, O = w1.shape[0] * w1.shape[1], w2.shape[-1]
    weights = [w1.reshape(G, d, H), b1.reshape(G, 1, H), w2.reshape(G, H, O), b2.reshape(G, 1, O)]
    if order is not None:
        weights = [w.index_select(0, order) for w in weights]
    return [torch.cat(weights[:2], dim=1), *weights[2:]]


def _unplan_grads(grads: list[torch.Tensor], w1, b1, w2, b2, order: torch.Tensor | None):
    """The plan-order gradients ([w1; b1], w2, b2) as those of w1, b1, w2 and b2; pairs outside the plan
    (no rows routed to them) get zeros."""
    d = w1.shape[-2]
    g_w1b, g_w2, g_b2 = grads
    parts = [(g_w1b[:, :d], w1), (g_w1b[:, d], b1), (g_w2, w2), (g_b2, b2)]
    if order is None:
        return [g.reshape(w.shape) for g, w in parts]
    # Every pair is written when the plan holds them all (no zero fill then).
    new = torch.empty_like if len(order) == w1.shape[0] * w1.shape[1] else torch.zeros_like
    return [new(w).view(-1, *g.shape[1:]).index_copy_(0, order, g).view_as(w) for g, w in parts]


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
                         w2_c: torch.Tensor, g_w1: torch.Tensor, g_w2: torch.Tensor) -> None:
    """grad [w1; b1] into g_w1 [n_groups, d_in + 1, H] and grad w2 into g_w2 [n_groups, H, 1] of a dense
    chunk with d_out = 1, g [n_groups, cap, 1] the output gradient, h [n_models, cap, T * H]
    (consumed)."""
    x = x_rows[c.inputs]
    n, T, d1 = x.shape[0], c.shared, x.shape[-1]
    H = h.shape[-1] // T
    g_side = g.view(n, T, c.cap)
    # grad w2 of expert t: g_t^T @ h_t, the diagonal blocks of one GEMM per model.
    gw2 = torch.bmm(g_side, h).view(n, T, T, H).diagonal(dim1=1, dim2=2)  # [n, H, T]
    g_w2.copy_(gw2.permute(0, 2, 1).reshape(n * T, H, 1))
    # h >= 0, so its sign is 1 where the pre-activation was > 0; taken in h's own layout (contiguous,
    # vectorised), then laid out per (model, expert).
    relu_grad = torch.empty(n, T, c.cap, H, dtype=h.dtype, device=h.device)
    relu_grad.copy_(h.sign_().view(n, c.cap, T, H).transpose(1, 2))
    # (x * g)^T per expert, formed transposed so the product runs along contiguous rows.
    xg_t = torch.empty(n, T, d1, c.cap, dtype=x.dtype, device=x.device)
    torch.mul(x.transpose(1, 2).contiguous().unsqueeze(1), g_side.unsqueeze(2), out=xg_t)
    torch.bmm(xg_t.view(n * T, d1, c.cap), relu_grad.view(n * T, c.cap, H), out=g_w1)
    g_w1.mul_(w2_c.transpose(1, 2))


def with_ones(x: torch.Tensor) -> torch.Tensor:
    """x [..., d] -> [..., d + 1] with a trailing column of ones (the input format of expert_mlp)."""
    return torch.cat([x, x.new_ones(*x.shape[:-1], 1)], dim=-1)


def expert_mlp(x_rows, w1, b1, w2, b2, chunks: list[ExpertChunk], n_rows: int,
               order: torch.Tensor | None = None) -> torch.Tensor:
    """Run expert (i, j) = relu(x @ w1[i, j] + b1[i, j]) @ w2[i, j] + b2[i, j] on the rows each chunk
    gives it; x_rows carries a trailing ones column (see with_ones). The chunks' groups index the M*T
    (model, expert) pairs, or with `order` (a LongTensor of pairs) its positions: the pairs' weights are
    gathered once in that order and their gradients put back once. Returns [n_rows, d_out]."""
    n_hidden = sum((c.groups.stop - c.groups.start) * c.cap for c in chunks) * w1.shape[-1]
    keep_hidden = torch.is_grad_enabled() and n_hidden * x_rows.element_size() <= KEEP_HIDDEN_BYTES
    return _ExpertMLP.apply(x_rows, w1, b1, w2, b2, chunks, n_rows, keep_hidden, order)


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


def sparse_chunks(counts: np.ndarray, H: int, x: torch.Tensor
                  ) -> tuple[list[ExpertChunk], np.ndarray, np.ndarray, int]:
    """Pack (model, expert) groups of `counts` rows: groups sorted by size (then index), chunks padded to
    their own largest group, so a skewed router costs little padding. Returns the chunks (their groups
    index `order`), `order` (the groups with rows, in packing order), each group's first row (groups
    with no rows get none) and the number of rows."""
    budget = _chunk_budget(x)
    ids = np.flatnonzero(counts)
    ids = ids[np.argsort(counts[ids], kind="stable")]
    sizes = counts[ids]
    base = np.zeros(len(counts), dtype=np.int64)
    chunks, row, i = [], 0, 0
    while i < len(ids):
        # Grow the chunk while its padded hidden activations fit the budget: j is the first group past
        # i that would not fit (sizes ascend, so it lies within the `window` groups a budget can hold).
        window = sizes[i + 1 : i + 2 + budget // (int(sizes[i]) * H)]
        over = np.flatnonzero(np.arange(2, len(window) + 2) * window * H > budget)
        j = i + 1 + (int(over[0]) if over.size else len(window))
        cap = int(sizes[j - 1])
        base[ids[i:j]] = row + cap * np.arange(j - i)
        rows = slice(row, row + (j - i) * cap)
        chunks.append(ExpertChunk(slice(i, j), rows, rows, cap))
        row, i = rows.stop, j
    return chunks, ids, base, row


@dataclass(frozen=True)
class SparsePlan:
    """The packing of a selection's routed rows (routed row r: selected triple r in (model, expert,
    token) order) for expert_mlp: its `chunks`, `order` and `n_rows` (see sparse_chunks); `flat`, each
    routed row's index in the flattened [M, T, N]; `token`, its row model * N + token of the flattened
    inputs [M * N]; `dest`, its packed row; `src`, each packed row's input row (padding rows read row 0:
    finite work whose outputs are never read)."""

    chunks: list[ExpertChunk]
    order: torch.Tensor
    n_rows: int
    flat: torch.Tensor
    token: torch.Tensor
    dest: torch.Tensor
    src: torch.Tensor


def sparse_plan(mask: torch.Tensor, H: int, x: torch.Tensor) -> SparsePlan:
    """The SparsePlan of a selection `mask` [M, T, N] (bool), made on the host with numpy (whose nonzero
    is several times torch's on CPU; on CUDA the mask is copied over and the plan back)."""
    M, T, N = mask.shape
    flat = np.flatnonzero(mask.detach().cpu().numpy())
    # flat ascends, so group g's routed rows are flat[starts[g]:starts[g + 1]] (g = model * T + expert).
    groups = np.arange(M * T)
    starts = np.searchsorted(flat, np.append(groups, M * T) * N)
    counts = np.diff(starts)
    chunks, order, base, n_rows = sparse_chunks(counts, H, x)
    token = flat - np.repeat((groups - groups // T) * N, counts)  # model * N + token
    # Packed row: the group's first packed row + the routed row's rank within its group.
    dest = np.repeat(base - starts[:-1], counts) + np.arange(len(flat))
    src = np.zeros(n_rows, dtype=np.int64)
    src[dest] = token
    return SparsePlan(chunks, torch.from_numpy(order).to(x.device), n_rows,
                      *(torch.from_numpy(a).to(x.device) for a in (flat, token, dest, src)))
