"""Batched top-k Mixture-of-Experts: many small, independent MoE regressors trained at once.

Every weight carries a leading model axis M, so one forward/backward trains a whole bundle of models
(e.g. a sweep over k or seeds). Models never interact: model i's output and loss depend only on
model i's slices of the parameters.

This module holds the layer: its experts, the combine step, forward and the loop reference, composed
with its router (simulations.router: the router weight and the selection settings) as in megablocks,
router, experts and combine apart. Below it: the router, the batched expert kernel
(simulations.expert_kernel), and under the router the top-k selection (simulations.selection) and the
gate families (simulations.gates).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from simulations.expert_kernel import dense_chunks, expert_mlp, sparse_plan, with_ones
from simulations.gates import gate_family
from simulations.router import Router

IMPLS = ("auto", "dense", "sparse", "reference")
# impl="auto" picks "sparse" when T >= ratio * mean(k) and the bundle holds >= AUTO_MIN_TOKENS tokens.
AUTO_MIN_RATIO_CPU = 3.0
AUTO_MIN_RATIO_CUDA = 4.0
AUTO_MIN_TOKENS = 16384


def _model_seed(seed: int, i: int) -> int:
    # Model i's init depends only on (seed, i): bundles of different sizes share their first models.
    return int(np.random.SeedSequence([seed, i]).generate_state(1, dtype=np.uint64)[0] >> 1)


class TopKMoE(nn.Module):
    """M independent top-k MoE regressors with T two-layer ReLU experts each.

    Expert j of model i: ``relu(x @ w1[i, j] + b1[i, j]) @ w2[i, j] + b2[i, j]``.

    Gating is the layer's `router` (simulations.router.Router, built from ``k``, ``temperature``,
    ``gate``, ``renormalize`` and read or changed there afterwards: ``moe.router.k = 1``). Per model and
    token: ``p = softmax(x @ router.weight / temperature)`` over the T experts (the gate family's scores:
    sigmoids for "sigmoid"); the k largest p are kept, ties broken deterministically (the lower expert
    index wins); the kept p are divided by their sum when ``renormalize`` applies ("k>1", the default:
    only models whose k > 1); the output is the gate-weighted sum of the kept experts' outputs.
    ``gate`` names a family in simulations.gates.GATES: "softmax" (default), "sigmoid" (the DeepSeek-V3
    form), "uniform" (forward gates exactly 1 / k, learned by a straight-through estimator), "head"
    (the selection of "softmax", the gate values sigmoid(x @ router.gate_weight) of a gate head of their
    own, renormalized as sigmoid's; the selection learns straight-through as uniform's).
    ``k`` is an int or a LongTensor [M] (one k per model, so one bundle can hold a k sweep);
    ``router.route(x, k=j)`` gates at another k without changing the model's (inference-time k), and
    ``mix`` combines the experts by any gates.

    Router statistics per model (never pooled across models): ``forward(x, return_stats=True)``
    returns ``(y, RouterStats)``.

    Implementations (the same selection exactly, the same outputs and gradients up to float rounding;
    ``impl`` picks one and can be reassigned):
      - "dense": every expert on every token, combined with a masked gate tensor (static shapes,
        batched matmuls over the flattened (model, expert) axis).
      - "sparse": only the selected (model, expert, token) triples: packed per (model, expert)
        group (planned on the host, simulations.expert_kernel.sparse_plan), groups sorted by size and
        run in cache-sized batched matmuls, each padded only to its own largest group (a collapsed
        router costs little padding).
      - "reference": a plain Python loop over models and experts (for tests).
      - "auto": "sparse" when T / mean(k) >= 3 and the bundle has M * N >= 16384 tokens, else
        "dense". Measured on a 2-core CPU (one training step): sparse's cost grows with k, dense's
        does not; with the grid's narrow experts (d_hidden 4) they cross near T / k = 2.6, with wider
        ones (d_hidden 32, bench/layer.py's) sparse still takes 0.65x dense's time at T / k = 2; on
        small batches sparse's fixed bookkeeping loses. The rule stays at 3 because the grid's bundles
        resolve through it and the two impls round differently: moving it would move stored rows.
        On CUDA the same rule with T / mean(k) >= 4 (not measured: sparse pays host syncs for its
        packing plan).
    Both fast impls share the expert kernel (simulations.expert_kernel.expert_mlp): the layer-1 bias
    rides in the GEMM via a ones column, the hidden activations are kept for the backward while small
    and recomputed in it otherwise, and it is differentiable once (no double backward).

    Init, like nn.Linear: every weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in =
    d_in for ``router.weight``, ``w1``, ``b1`` and d_hidden for ``w2``, ``b2`` (the router has no bias).
    Values come from a CPU torch.Generator seeded per model from (seed, model index), drawn in the order
    router, w1, b1, w2, b2 (then, for gate "head" only, ``router.gate_weight``, fan_in as the router's),
    so the same seed gives the same weights on every device and whatever the gate, and model i's
    weights do not depend on n_models. ``seed=None`` draws the seed from torch's global generator.

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
        for name, value in (("n_models", n_models), ("n_experts", n_experts), ("d_in", d_in),
                            ("d_hidden", d_hidden), ("d_out", d_out)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(d_context, int) or isinstance(d_context, bool) or d_context < 0:
            raise ValueError(f"d_context must be an int >= 0, got {d_context!r}")
        self.d_context = d_context
        self.n_models, self.n_experts = n_models, n_experts
        self.d_in, self.d_hidden, self.d_out = d_in, d_hidden, d_out
        self.impl = impl
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
        if gate_family(gate).head:  # drawn last, so every other weight is the one without a head
            shapes["gate_weight"] = ((d_in + d_context, T), d_in + d_context)
        values: dict[str, list[torch.Tensor]] = {name: [] for name in shapes}
        for i in range(M):
            gen = torch.Generator().manual_seed(_model_seed(seed, i))
            for name, (shape, fan_in) in shapes.items():
                bound = 1.0 / math.sqrt(fan_in)
                u = torch.rand(shape, generator=gen, dtype=dtype)
                values[name].append(u.mul_(2 * bound).sub_(bound))
        stacked = {name: torch.stack(chunks).to(device) for name, chunks in values.items()}
        self.router = Router(stacked.pop("router"), k, d_context=d_context, temperature=temperature,
                             gate=gate, renormalize=renormalize, gate_weight=stacked.pop("gate_weight", None))
        for name, value in stacked.items():
            setattr(self, name, nn.Parameter(value))

    @property
    def impl(self) -> str:
        """Which implementation forward() uses: one of IMPLS."""
        return self._impl

    @impl.setter
    def impl(self, value: str) -> None:
        if value not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS}, got {value!r}")
        self._impl = value

    def resolved_impl(self, n_tokens: int | None = None) -> str:
        """The implementation forward() runs on batches of n_tokens tokens per model ("auto" resolved
        by T / mean k, the bundle's token count and the device; see the class docstring)."""
        if self.impl != "auto":
            return self.impl
        min_ratio = AUTO_MIN_RATIO_CUDA if self.w1.device.type == "cuda" else AUTO_MIN_RATIO_CPU
        enough_tokens = n_tokens is None or self.n_models * n_tokens >= AUTO_MIN_TOKENS
        return "sparse" if self.n_experts >= min_ratio * self.router.k_mean and enough_tokens else "dense"

    def expert_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """What the experts read of inputs x [..., d_in + d_context]: x[..., :d_in] (the context is the
        router's alone); x itself when d_context = 0."""
        return x[..., : self.d_in] if self.d_context else x

    # ---------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor, return_stats: bool = False, gates: torch.Tensor | None = None):
        """x [M, N, d_in] -> y [M, N, d_out]; with return_stats, (y, RouterStats).

        `gates` [M, T, N], when given, replaces the router (a fixed routing such as an oracle's): the
        experts with a positive gate run, weighted by it, and the router gets no gradient; router
        statistics are then unavailable."""
        self.router.check_input(x)
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
            gating = self.router.route(x)
            p, mask = gating.probs, gating.selected
            y = self.mix(x, gating.gates, mask)
        if not return_stats:
            return y
        return y, self.router.stats(p, mask)

    def mix(self, x: torch.Tensor, gates: torch.Tensor, selected: torch.Tensor,
            outputs: Callable[[], torch.Tensor] | None = None) -> torch.Tensor:
        """y [M, N, d_out]: the `selected` experts [M, T, N] (bool) run on x [M, N, d_in] and summed,
        weighted by `gates` [M, T, N] (gradients flow to the gates): the combine step. The gating half of
        `forward` is `router.route`; a caller with its own gates (a fixed router, gating at another k)
        combines them here. `outputs`, where the caller keeps `expert_outputs(x)`, gives them to the
        dense path instead of a second expert pass (the sparse path runs only the selected experts)."""
        if self.resolved_impl(x.shape[1]) == "sparse":
            return self._sparse(x, gates, selected)
        return (gates.unsqueeze(-1) * (self.expert_outputs(x) if outputs is None else outputs())).sum(1)

    def expert_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """Every expert's output on every token, [M, T, N, d_out] (the dense path's expert pass)."""
        x = self.expert_inputs(x)
        M, N, _ = x.shape
        T = self.n_experts
        chunks = dense_chunks(M, T, N, self.d_hidden, x)
        out = expert_mlp(with_ones(x), self.w1, self.b1, self.w2, self.b2, chunks, M * T * N)
        return out.view(M, T, N, self.d_out)

    def _sparse(self, x: torch.Tensor, gates: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.expert_inputs(x)
        M, N, d = x.shape
        plan = sparse_plan(mask, self.d_hidden, x)
        packed = with_ones(x.reshape(M * N, d)).index_select(0, plan.src)
        out = expert_mlp(packed, self.w1, self.b1, self.w2, self.b2, plan.chunks, plan.n_rows, plan.order)
        ys = out.index_select(0, plan.dest) * gates.view(-1).index_select(0, plan.flat).unsqueeze(-1)
        return x.new_zeros(M * N, self.d_out).index_add(0, plan.token, ys).view(M, N, self.d_out)

    def _forward_reference(self, x: torch.Tensor):
        """Loop over models and experts; selection by numpy lexsort on (-p, expert index); the gate
        family's per-model rule (GateFamily.reference_gates), independent of the batched gating code."""
        M, N, _ = x.shape
        T = self.n_experts
        router = self.router
        renorm = router.renormalized().tolist()
        ys, ps, masks = [], [], []
        for i in range(M):
            logits = x[i] @ router.weight[i] / router.temperature
            p = router.family.scores(logits, dim=-1)
            k_i = int(router.k_per_model[i])
            pn = p.detach().cpu().double().numpy()
            idx = np.broadcast_to(np.arange(T), pn.shape)
            order = np.lexsort((idx, -pn), axis=-1)[:, :k_i]
            keep = np.zeros((N, T), dtype=bool)
            np.put_along_axis(keep, order, True, axis=-1)
            keep_t = torch.as_tensor(keep, device=x.device)
            if router.family.head:
                h = torch.sigmoid(x[i] @ router.gate_weight[i])
                g = router.family.reference_head_gates(p, h, keep_t, k_i, renorm[i])
            else:
                g = router.family.reference_gates(p, keep_t, k_i, renorm[i])
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
        return (f"n_models={self.n_models}, n_experts={self.n_experts}, d_in={self.d_in}, "
                f"d_hidden={self.d_hidden}, d_out={self.d_out}, impl={self.impl!r}"
                + (f", d_context={self.d_context}" if self.d_context else ""))
