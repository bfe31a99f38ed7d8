"""The batched expert kernel of TopKMoE: 2-layer ReLU experts over a bundle's (model, expert) pairs.

`expert_mlp` runs expert (i, j) of every model on the rows each `ExpertChunk` gives it, as batched
GEMMs; `dense_chunks` (every expert on all of its model's tokens, the dense impl) and `sparse_chunks`
(only the routed rows, packed per (model, expert) group, the sparse impl) plan those chunks. Its own
autograd Function, so that the backward does only the work the layer needs (see _ExpertMLP).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.autograd.function import once_differentiable

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
