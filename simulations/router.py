"""The router of the batched top-k MoE layer (simulations.moe.TopKMoE): M independent linear routers
with their selection settings (k per model, temperature, gate family, renormalize), apart from the
experts and the combine step (the megablocks pattern: router, experts and combine are separate pieces).

Everything works in the [M, T, N] layout (models, experts, tokens): reductions over the T experts then
run along a strided axis and vectorise over the N tokens, much faster than reducing a short last axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from simulations.gates import GateFamily, gate_family
from simulations.gating import Gating
from simulations.selection import topk_mask

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


class Router(nn.Module):
    """M linear routers over T experts: logits l = u @ weight[m] / temperature per model m and token u,
    scores p = the gate family's (softmax by default), the top-k of p kept per token (ties: the lower
    expert index), gates on the kept experts by the family's rule.

    weight: the initial weights [M, d_in + d_context, T] (the layer draws them, with its experts', from
    one generator per model); the parameter `weight` holds them. Inputs u are [M, N, d_in + d_context]:
    x followed by a context c the router alone reads (d_context = 0: u = x).
    k: an int or a LongTensor [M] (one k per model), reassignable (validated to 1 <= k <= T); every
    method taking `k` gates at that k instead, leaving the router's own unchanged (inference-time k).
    temperature > 0 divides the logits (below 1 sharpens the router). gate: a name in
    simulations.gates.GATES (`family` is its class). renormalize: when kept scores are divided by their
    sum, "k>1" (only models whose k > 1: at k = 1 a renormalized gate is the constant 1 and the router
    would get no gradient), "always" or "never"; unused by a family that does not renormalize (uniform).
    All four can be reassigned (validated; a family with a gate head only where the router has one);
    `k_per_model` is k as a LongTensor [M], `k_mean` its mean. gate_weight: the initial weights of a
    gate head [M, d_in + d_context, T], the parameter `gate_weight`, for a family whose gate values come
    from one ("head": values sigmoid(u @ gate_weight[m]) on the selection); None (the parameter is
    absent from the parameters and the state dict) otherwise.

    The decision: `logits(x)`, `scores(x, noise)`, `route(x, k, noise) -> Gating`; on any selection
    `gates(p, selected, k, x)` (x: the inputs, read by a gate head, `head_values(x)`); its statistics
    `stats(p, selected) -> RouterStats`. Nothing here draws random numbers: a training-time jitter is
    the caller's (`noise`), so it controls the streams.
    """

    def __init__(self, weight: torch.Tensor, k: int | torch.Tensor, d_context: int = 0,
                 temperature: float = 1.0, gate: str = "softmax", renormalize: str = "k>1",
                 gate_weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.n_models, width, self.n_experts = weight.shape
        self.d_in, self.d_context = width - d_context, d_context
        self.weight = nn.Parameter(weight)
        if gate_weight is not None and gate_weight.shape != weight.shape:
            raise ValueError(f"gate_weight must have the router weight's shape {tuple(weight.shape)}, "
                             f"got {tuple(gate_weight.shape)}")
        # Registered (None) without a head, so the parameter set and state dict stay those of the others.
        self.register_parameter("gate_weight", None if gate_weight is None else nn.Parameter(gate_weight))
        self.temperature, self.gate, self.renormalize = temperature, gate, renormalize
        self.register_buffer("_k_vec", torch.empty(self.n_models, dtype=torch.long, device=weight.device),
                             persistent=False)
        self.k = k

    # ---------------------------------------------------------------- settings
    @property
    def temperature(self) -> float:
        """What the logits are divided by: a number > 0."""
        return self._temperature

    @temperature.setter
    def temperature(self, value: float) -> None:
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0):
            raise ValueError(f"temperature must be a number > 0, got {value!r}")
        self._temperature = float(value)

    @property
    def gate(self) -> str:
        """The gate family's name: one of simulations.gates.GATES."""
        return self.family.name

    @gate.setter
    def gate(self, value: str) -> None:
        family = gate_family(value)
        if family.head and self.gate_weight is None:
            raise ValueError(f"gate {value!r} needs a gate head: build the router with its gate_weight "
                             f"(TopKMoE(gate={value!r}) draws one)")
        self.family: type[GateFamily] = family

    @property
    def renormalize(self) -> str:
        """When kept scores are divided by their sum: one of RENORMALIZE."""
        return self._renormalize

    @renormalize.setter
    def renormalize(self, value: str) -> None:
        if value not in RENORMALIZE:
            raise ValueError(f"renormalize must be one of {RENORMALIZE}, got {value!r}")
        self._renormalize = value

    @property
    def k(self) -> int | torch.Tensor:
        """Experts kept per token: an int (all models) or a LongTensor [M] (one per model)."""
        return self._k

    @k.setter
    def k(self, value: int | torch.Tensor) -> None:
        self._k_vec.copy_(self._k_vector(value))
        self._k = self._k_vec.clone() if isinstance(value, torch.Tensor) else int(value)
        self._k_min, self._k_max = int(self._k_vec.min()), int(self._k_vec.max())
        self.k_mean = float(self._k_vec.float().mean())  # kept as a float: the layer's impl="auto" reads it

    @property
    def k_per_model(self) -> torch.Tensor:
        """Each model's k, a LongTensor [M] on the router's device."""
        return self._k_vec

    def _k_vector(self, value: int | torch.Tensor) -> torch.Tensor:
        """A valid k (an int or an integer tensor [M] in 1..T) as a LongTensor [M] on the router's device."""
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
        """(k per model [M], its min, its max): the router's own k (None), or `k`."""
        if k is None:
            return self._k_vec, self._k_min, self._k_max
        k_vec = self._k_vector(k)
        return k_vec, int(k_vec.min()), int(k_vec.max())

    def renormalized(self, k: int | torch.Tensor | None = None) -> torch.Tensor:
        """Bool [M]: which models divide their kept scores by their sum at k (default their own)."""
        return self._renormalized(self._k_of(k)[0])

    def _renormalized(self, k_vec: torch.Tensor) -> torch.Tensor:
        if self.renormalize == "always":
            return torch.ones_like(k_vec, dtype=torch.bool)
        if self.renormalize == "never":
            return torch.zeros_like(k_vec, dtype=torch.bool)
        return k_vec > 1

    # ---------------------------------------------------------------- routing
    def check_input(self, x: torch.Tensor) -> None:
        """ValueError unless x is [M, N, d_in + d_context]."""
        width = self.d_in + self.d_context
        if x.dim() != 3 or x.shape[0] != self.n_models or x.shape[2] != width:
            what = f"d_in={self.d_in}" if not self.d_context else \
                f"d_in + d_context={self.d_in} + {self.d_context}"
            raise ValueError(f"x must have shape [n_models={self.n_models}, N, {what}], got {tuple(x.shape)}")

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The logits [M, T, N] of inputs x [M, N, d_in + d_context], divided by the temperature."""
        self.check_input(x)
        logits = torch.bmm(self.weight.transpose(1, 2), x.transpose(1, 2))
        return logits / self.temperature if self.temperature != 1.0 else logits

    def scores(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """The scores p [M, T, N] the top-k selects on: the gate family's of the logits (softmax over the
        experts, or independent sigmoids for "sigmoid"), differentiable. `noise` [M, T, N], when given,
        is added to the logits first (a training-time jitter the caller draws)."""
        logits = self.logits(x)
        return self.family.scores(logits if noise is None else logits + noise, dim=1)

    def route(self, x: torch.Tensor, k: int | torch.Tensor | None = None,
              noise: torch.Tensor | None = None) -> Gating:
        """The router's decision on x: the top-k of its scores (`scores(x, noise)`) at k (default its own)
        and their gates (differentiable through the scores), each [M, T, N]."""
        p = self.scores(x, noise)
        selected = topk_mask(p, *self._k_of(k))
        return Gating(selected, self.gates(p, selected, k, x=x), p)

    def gates(self, p: torch.Tensor, selected: torch.Tensor, k: int | torch.Tensor | None = None,
              x: torch.Tensor | None = None) -> torch.Tensor:
        """[M, T, N] gates on any selection `selected` (bool [M, T, N]) of scores p by the gate family's
        rule (GateFamily.gates) at k, default the router's own: kept p, renormalized per model where it
        applies, zeros elsewhere (gate "uniform": 1 / the number selected, straight-through). A family
        with a gate head ("head") gates by its values on the inputs x [M, N, d_in + d_context] that p
        came from (`head_values`; required for it, unused by the others)."""
        k_vec = self._k_of(k)[0]
        if self.family.head:
            if x is None:
                raise ValueError(f"gate {self.gate!r} reads its gate values off the inputs: pass x")
            return self.family.head_gates(p, self.head_values(x), selected, k_vec, self._renormalized(k_vec))
        return self.family.gates(p, selected, k_vec, self._renormalized(k_vec))

    def head_values(self, x: torch.Tensor) -> torch.Tensor:
        """The gate head's values h = sigmoid(x @ gate_weight) [M, T, N] of inputs x [M, N, d_in +
        d_context] (no temperature: the head learns its own scale); only for a family with a head."""
        if self.gate_weight is None:
            raise ValueError(f"gate {self.gate!r} has no gate head")
        self.check_input(x)
        return torch.sigmoid(torch.bmm(self.gate_weight.transpose(1, 2), x.transpose(1, 2)))

    def stats(self, p: torch.Tensor, selected: torch.Tensor) -> RouterStats:
        """Per-model statistics (RouterStats) of scores p and their selection `selected`, [M, T, N]."""
        counts = selected.sum(2, dtype=p.dtype)  # [M, T]
        fraction = counts / counts.sum(-1, keepdim=True)
        mean_prob = p.mean(2)
        return RouterStats(fraction, mean_prob, self.n_experts * (fraction * mean_prob).sum(-1))

    def extra_repr(self) -> str:
        k = self._k if isinstance(self._k, int) else f"per-model[{self.n_models}]"
        return (f"n_models={self.n_models}, n_experts={self.n_experts}, d_in={self.d_in}"
                + (f", d_context={self.d_context}" if self.d_context else "")
                + f", k={k}, temperature={self.temperature:g}, gate={self.gate!r}, "
                  f"renormalize={self.renormalize!r}")
