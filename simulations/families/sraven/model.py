"""A bundle of M small pre-LayerNorm transformers whose feed-forward layers are top-k MoEs.

Every weight carries a leading model axis M (attention included), so one forward/backward trains M
independent models, each with its own k. Layout of one model:

    x = onehot(value) @ embed + row[r] + col[c] + slot[s] (+ query for query tokens)   (learned,
        factorised positions: grid row r, grid column c and feature slot s of the token's panel)
    for each block:  x = x + Attn(LN(x));  x = x + TopKMoE(LN(x))   (T experts, each a 2-layer MLP)
    logits = LN(x)[query positions] @ head + head_bias     (F query tokens x V values)

F features per panel and V values (`n_features`, `n_values`: 4 and 8 by default, the generator's
settings, simulations.families.sraven.tasks). Inputs (`tokens="value"`, the default): the 8 visible
panels as 8F tokens (32 at F = 4; panel-major, slot-minor), each the one-hot of its value, then F query
tokens whose input is zero plus a learned query vector, at the 9th panel's position (row 3, column 3,
slots 0..F-1). Attention is bidirectional softmax attention
over all 9F tokens. `tokens="column"` (a variant): one token per (column c, slot s), 3F in all, the sum
over rows r of a per-row embedding of the value at (r, c, s) (row 3 of column 3, the unknown, has its
own learned embedding) plus column and slot embeddings; the F tokens of column 3 are the queries.

`forward(..., k=j)` runs every MoE at k = j instead of each model's own k (inference-time k), through
its router's `route(k=...)` (simulations.router.Router), never changing the models' k.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from simulations.moe import TopKMoE
from simulations.router import RouterStats

from .tasks import N_FEATURES, N_VALUES

# A training estimator's pass through one MoE layer: (layer, inputs [M, N, d]) -> (outputs, stats).
MoeRoute = Callable[[TopKMoE, torch.Tensor], tuple[torch.Tensor, RouterStats]]
N_CONTEXT = 8 * N_FEATURES  # tokens of the 8 visible panels (at the default F; an instance's n_context)
TOKENS = ("value", "column")  # tokenisations of the panels (see the module docstring)


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1, dtype=np.uint64)[0] >> 1)


def _uniform(gen: torch.Generator, shape: tuple[int, ...], fan_in: int, dtype) -> torch.Tensor:
    bound = 1.0 / math.sqrt(fan_in)
    return torch.rand(shape, generator=gen, dtype=dtype).mul_(2 * bound).sub_(bound)


def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Per-model LayerNorm: x [M, ..., d], weight and bias [M, d]."""
    shape = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
    return F.layer_norm(x, x.shape[-1:]) * weight.view(shape) + bias.view(shape)


def batched_attention(x: torch.Tensor, wqkv: torch.Tensor, bqkv: torch.Tensor, wo: torch.Tensor,
                      bo: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Multi-head softmax self-attention of M models at once: x [M, B, L, d], wqkv [M, d, 3d],
    bqkv [M, 3d], wo [M, d, d], bo [M, d] -> [M, B, L, d]. Model m uses only its own weights."""
    M, B, L, d = x.shape
    dh = d // n_heads
    qkv = torch.baddbmm(bqkv.unsqueeze(1), x.reshape(M, B * L, d), wqkv)  # [M, B*L, 3d]
    qkv = qkv.view(M, B, L, 3, n_heads, dh).permute(3, 0, 1, 4, 2, 5)  # [3, M, B, H, L, dh]
    q, k, v = (t.reshape(M * B, n_heads, L, dh) for t in qkv)
    o = F.scaled_dot_product_attention(q, k, v)  # [M*B, H, L, dh]
    o = o.view(M, B, n_heads, L, dh).permute(0, 1, 3, 2, 4).reshape(M, B * L, d)
    return torch.baddbmm(bo.unsqueeze(1), o, wo).view(M, B, L, d)


def reference_attention(x, wqkv, bqkv, wo, bo, n_heads: int) -> torch.Tensor:
    """The same as batched_attention, one model and one head at a time, written out (for tests)."""
    M, B, L, d = x.shape
    dh = d // n_heads
    outs = []
    for m in range(M):
        qkv = x[m] @ wqkv[m] + bqkv[m]  # [B, L, 3d]
        heads = []
        for h in range(n_heads):
            q = qkv[..., h * dh:(h + 1) * dh]
            k = qkv[..., d + h * dh:d + (h + 1) * dh]
            v = qkv[..., 2 * d + h * dh:2 * d + (h + 1) * dh]
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh), dim=-1)
            heads.append(att @ v)
        outs.append(torch.cat(heads, dim=-1) @ wo[m] + bo[m])
    return torch.stack(outs)


class Block(nn.Module):
    """Pre-LN block: x + Attn(LN(x)), then x + MoE(LN(x)); every weight has the model axis M."""

    def __init__(self, M: int, d: int, n_heads: int, moe: TopKMoE, dtype) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.ln1_w = nn.Parameter(torch.ones(M, d, dtype=dtype))
        self.ln1_b = nn.Parameter(torch.zeros(M, d, dtype=dtype))
        self.wqkv = nn.Parameter(torch.empty(M, d, 3 * d, dtype=dtype))
        self.bqkv = nn.Parameter(torch.empty(M, 3 * d, dtype=dtype))
        self.wo = nn.Parameter(torch.empty(M, d, d, dtype=dtype))
        self.bo = nn.Parameter(torch.empty(M, d, dtype=dtype))
        self.ln2_w = nn.Parameter(torch.ones(M, d, dtype=dtype))
        self.ln2_b = nn.Parameter(torch.zeros(M, d, dtype=dtype))
        self.moe = moe

    def forward(self, x: torch.Tensor, reference: bool = False, k: int | None = None,
                route: MoeRoute | None = None) -> tuple[torch.Tensor, RouterStats]:
        """k: gate the MoE at k experts (every model) instead of each model's own k; route: a training
        estimator's own pass through the MoE (simulations.families.sraven.estimators), given the layer and
        its inputs [M, N, d], instead of the layer's forward."""
        M, B, L, d = x.shape
        attn = reference_attention if reference else batched_attention
        x = x + attn(layer_norm(x, self.ln1_w, self.ln1_b), self.wqkv, self.bqkv, self.wo, self.bo,
                     self.n_heads)
        h = layer_norm(x, self.ln2_w, self.ln2_b).reshape(M, B * L, d)
        if route is not None:
            y, stats = route(self.moe, h)
        elif k is not None:
            if reference:
                raise ValueError("k (inference-time k) is not available with reference=True")
            gating = self.moe.router.route(h, k=k)
            y = self.moe.mix(h, gating.gates, gating.selected)
            stats = self.moe.router.stats(gating.probs, gating.selected)
        elif reference:
            impl, self.moe.impl = self.moe.impl, "reference"
            try:
                y, stats = self.moe(h, return_stats=True)
            finally:
                self.moe.impl = impl
        else:
            y, stats = self.moe(h, return_stats=True)
        return x + y.view(M, B, L, d), stats


class SravenTransformer(nn.Module):
    """M independent transformers (see the module docstring); model i has k = ks[i] and is initialised
    from init_seeds[i] alone, so models sharing a seed start from the same weights whatever their k
    and whatever bundle they are in.

    Init: linear weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)) as nn.Linear, token, position
    and query embeddings N(0, 1), LayerNorm weight 1 and bias 0; each MoE as `TopKMoE(1, ...)` with a
    seed derived from (init seed, block). `n_features` (F) and `n_values` (V) set the panels' shape; the
    weights are drawn in the same order whatever they are, so the defaults give the same weights as a
    model written for F = 4, V = 8 only.
    """

    def __init__(self, ks: list[int], init_seeds: list[int], d_model: int = 32, n_heads: int = 4,
                 n_blocks: int = 2, n_experts: int = 8, d_expert: int = 64, impl: str = "auto",
                 renormalize: str = "k>1", dtype: torch.dtype = torch.float32, tokens: str = "value",
                 n_features: int = N_FEATURES, n_values: int = N_VALUES) -> None:
        super().__init__()
        M = len(ks)
        if min(n_features, n_values) < 1:
            raise ValueError(f"n_features and n_values must be >= 1, got {n_features} and {n_values}")
        self.n_features, self.n_values, self.n_context = n_features, n_values, 8 * n_features
        Fn, V = n_features, n_values
        if tokens not in TOKENS:
            raise ValueError(f"tokens must be one of {', '.join(TOKENS)}, got {tokens!r}")
        self.tokens = tokens
        if M < 1 or len(init_seeds) != M:
            raise ValueError(f"ks and init_seeds must be non-empty and of equal length, got {M} and "
                             f"{len(init_seeds)}")
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be a multiple of n_heads={n_heads}")
        self.n_models, self.d_model, self.n_heads = M, d_model, n_heads
        d = d_model
        self.embed = nn.Parameter(torch.empty(M, V, d, dtype=dtype))
        self.pos_row = nn.Parameter(torch.empty(M, 3, d, dtype=dtype))
        self.pos_col = nn.Parameter(torch.empty(M, 3, d, dtype=dtype))
        self.pos_slot = nn.Parameter(torch.empty(M, Fn, d, dtype=dtype))
        self.query = nn.Parameter(torch.empty(M, d, dtype=dtype))
        self.blocks = nn.ModuleList(
            Block(M, d, n_heads, TopKMoE(M, n_experts, d, d_expert, d_out=d, k=torch.tensor(ks),
                                         impl=impl, renormalize=renormalize, dtype=dtype, seed=0), dtype)
            for _ in range(n_blocks))
        self.lnf_w = nn.Parameter(torch.ones(M, d, dtype=dtype))
        self.lnf_b = nn.Parameter(torch.zeros(M, d, dtype=dtype))
        self.head = nn.Parameter(torch.empty(M, d, V, dtype=dtype))
        self.head_b = nn.Parameter(torch.empty(M, V, dtype=dtype))
        if tokens == "column":  # per-row value embeddings; index V: the unknown 9th panel
            self.embed_rows = nn.Parameter(torch.empty(M, 3, V + 1, d, dtype=dtype))
        with torch.no_grad():
            for i, s in enumerate(init_seeds):
                self._init_model(i, int(s), n_experts, d_expert, dtype)
                if tokens == "column":  # its own stream: the shared weights equal the default's
                    gen = torch.Generator().manual_seed(_seed(int(s), 3))
                    self.embed_rows[i] = torch.randn(self.embed_rows.shape[1:], generator=gen, dtype=dtype)

    def _init_model(self, i: int, seed: int, n_experts: int, d_expert: int, dtype) -> None:
        d, V = self.d_model, self.n_values
        gen = torch.Generator().manual_seed(_seed(seed, 0))
        self.embed[i] = torch.randn(V, d, generator=gen, dtype=dtype)
        for p in (self.pos_row, self.pos_col, self.pos_slot, self.query):
            p[i] = torch.randn(p.shape[1:], generator=gen, dtype=dtype)
        self.head[i] = _uniform(gen, (d, V), d, dtype)
        self.head_b[i] = _uniform(gen, (V,), d, dtype)
        for b, block in enumerate(self.blocks):
            g = torch.Generator().manual_seed(_seed(seed, 1, b))
            block.wqkv[i] = _uniform(g, (d, 3 * d), d, dtype)
            block.bqkv[i] = _uniform(g, (3 * d,), d, dtype)
            block.wo[i] = _uniform(g, (d, d), d, dtype)
            block.bo[i] = _uniform(g, (d,), d, dtype)
            single = TopKMoE(1, n_experts, d, d_expert, d_out=d, k=1, dtype=dtype, seed=_seed(seed, 2, b))
            for name, p in block.moe.named_parameters():
                p[i] = single.get_parameter(name)[0]

    def positions(self) -> torch.Tensor:
        """[M, 9F, d]: row + column + slot embedding of each token (the queries sit at panel 9)."""
        panel = torch.arange(9, device=self.pos_row.device)
        pos = self.pos_row[:, panel // 3, None] + self.pos_col[:, panel % 3, None] + self.pos_slot[:, None]
        return pos.flatten(1, 2)  # panel-major, slot-minor: tokens 0..8F-1, then panel 9 = the queries

    @property
    def moes(self) -> list[TopKMoE]:
        return [b.moe for b in self.blocks]

    def embed_values(self, tokens: torch.Tensor) -> torch.Tensor:
        """[M, B, 9F, d]: the 8F value tokens then the F queries, with their positions (tokens="value")."""
        M, B, L = tokens.shape
        V = self.n_values
        onehot = F.one_hot(tokens, V).to(self.embed.dtype).view(M, B * L, V)
        x = torch.bmm(onehot, self.embed).view(M, B, L, -1)
        x = torch.cat([x, self.query[:, None, None, :].expand(M, B, self.n_features, -1)], dim=2)
        return x + self.positions().unsqueeze(1)

    def embed_columns(self, tokens: torch.Tensor) -> torch.Tensor:
        """[M, B, 3F, d]: one token per (column, slot), column-major, column 3's last (tokens="column")."""
        M, B, _ = tokens.shape
        Fn, V = self.n_features, self.n_values
        unknown = tokens.new_full((M, B, Fn), V)  # the 9th panel
        grid = torch.cat([tokens, unknown], dim=2).view(M, B, 3, 3, Fn)  # [M, B, r, c, s]
        onehot = F.one_hot(grid, V + 1).to(self.embed_rows.dtype)
        x = torch.einsum("mbrcsv,mrvd->mbcsd", onehot, self.embed_rows)
        x = x + self.pos_col[:, None, :, None] + self.pos_slot[:, None, None]
        return x.flatten(2, 3)

    def forward(self, tokens: torch.Tensor, return_stats: bool = False, reference: bool = False,
                k: int | None = None, route: MoeRoute | None = None):
        """tokens: LongTensor [M, B, 8F] (values 0..V-1 of the 8 visible panels, panel-major) ->
        logits [M, B, F, V] at the query positions; with return_stats also one RouterStats per block.
        reference=True runs the per-model loop reference of attention and of the MoE (for tests);
        k runs every MoE at k experts instead of each model's own (inference-time k); route, a training
        estimator's pass through each MoE layer (Block.forward)."""
        M, B, L = tokens.shape
        if M != self.n_models or L != self.n_context:
            raise ValueError(f"tokens must have shape [n_models={self.n_models}, B, {self.n_context}], "
                             f"got {tuple(tokens.shape)}")
        x = self.embed_columns(tokens) if self.tokens == "column" else self.embed_values(tokens)
        stats = []
        for block in self.blocks:
            x, s = block(x, reference=reference, k=k, route=route)
            stats.append(s)
        Fn = self.n_features
        q = layer_norm(x[:, :, -Fn:], self.lnf_w, self.lnf_b)  # [M, B, F, d]
        logits = torch.baddbmm(self.head_b.unsqueeze(1), q.reshape(M, B * Fn, -1), self.head)
        logits = logits.view(M, B, Fn, self.n_values)
        return (logits, stats) if return_stats else logits
