"""Batched top-k Mixture-of-Experts: many small, independent MoE regressors trained at once.

Every weight carries a leading model axis M, so one forward/backward trains a whole bundle of models
(e.g. a sweep over k or seeds). Models never interact: model i's output and loss depend only on
model i's slices of the parameters.

This module holds the layer (settings, routing, forward, the loop reference); it is built on three
modules below it: the batched expert kernel (simulations.expert_kernel), the top-k selection
(simulations.selection) and the gate families (simulations.gates).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from simulations.expert_kernel import dense_chunks, expert_mlp, sparse_chunks, with_ones
from simulations.gates import gate_family
from simulations.selection import topk_mask

IMPLS = ("auto", "dense", "sparse", "reference")
# impl="auto" picks "sparse" when T >= ratio * mean(k) and the bundle holds >= AUTO_MIN_TOKENS tokens.
AUTO_MIN_RATIO_CPU = 3.0
AUTO_MIN_RATIO_CUDA = 4.0
AUTO_MIN_TOKENS = 16384
RENORMALIZE = ("k>1", "always", "never")


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

    ``gate`` chooses the gate family, a name in simulations.gates.GATES whose class there holds its
    rule (logits l = x @ router / temperature, per model and token):
      - "softmax" (default): as above, p = softmax(l).
      - "sigmoid": scores p = sigmoid(l), independent per expert; the k largest are kept and, where
        ``renormalize`` applies, divided by their sum (the DeepSeek-V3 form).
      - "uniform": selection by p = softmax(l), forward gates exactly 1 / k on the selected (as the
        oracle's), ``renormalize`` unused; the selection learns by a straight-through estimator.
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
    Both fast impls share the expert kernel (simulations.expert_kernel.expert_mlp): the layer-1 bias
    rides in the GEMM via a ones column, the hidden activations are kept for the backward while small
    and recomputed in it otherwise, and it is differentiable once (no double backward).

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
        """The gate family's name: one of simulations.gates.GATES (see the class docstring)."""
        return self._gate_family.name

    @gate.setter
    def gate(self, value: str) -> None:
        self._gate_family = gate_family(value)

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
        return self._gate_family.scores(logits, dim=1)

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
        """[M, T, N] gate weights on the selection `mask` by the gate family's rule (GateFamily.gates) at
        k, default the model's own k: kept p, renormalized per model where it applies, zeros elsewhere
        (gate "uniform": 1 / the number selected, straight-through)."""
        k_vec = self._k_of(k)[0]
        return self._gate_family.gates(p, mask, k_vec, self._renorm_mask(k_vec))

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
        """Loop over models and experts; selection by numpy lexsort on (-p, expert index); the gate
        family's per-model rule (GateFamily.reference_gates), independent of the batched gating code."""
        M, N, _ = x.shape
        T = self.n_experts
        family = self._gate_family
        renorm = self._renorm_mask().tolist()
        ys, ps, masks = [], [], []
        for i in range(M):
            logits = x[i] @ self.router[i] / self.temperature
            p = family.scores(logits, dim=-1)
            k_i = int(self._k_vec[i])
            pn = p.detach().cpu().double().numpy()
            idx = np.broadcast_to(np.arange(T), pn.shape)
            order = np.lexsort((idx, -pn), axis=-1)[:, :k_i]
            keep = np.zeros((N, T), dtype=bool)
            np.put_along_axis(keep, order, True, axis=-1)
            keep_t = torch.as_tensor(keep, device=x.device)
            g = family.reference_gates(p, keep_t, k_i, renorm[i])
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
