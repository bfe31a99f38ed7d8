"""The Soft MoE layer of P3 (Chung et al. 2024), one slot per expert, with a leading model axis.

With logits L = X Phi (X: n_tokens x d, Phi: d x n):
  dispatch D = softmax of L over tokens (columns sum to 1), combine C = softmax of L over experts (rows sum
  to 1), slot inputs X~ = D^T X, expert outputs Y~_j = f_j(X~_j) (2-layer MLPs R^d -> R^d), output C Y~.
Every weight carries a leading model axis M, like `TopKMoE`, so M independent layers (seeds, or any
models of one shape) train in one batched call. An optional per-input expert mask zeroes rows of Y~ at
inference (P3's Algorithm 1 and its random baseline), without renormalising C.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn


class SoftMoEOutput(NamedTuple):
    """The layer output and the routing tensors it was built from (for selection and tests)."""

    out: torch.Tensor  # [M, B, t, d]
    dispatch: torch.Tensor  # [M, B, t, n], softmax over tokens
    combine: torch.Tensor  # [M, B, t, n], softmax over experts
    hidden: torch.Tensor  # [M, B, n, h], the experts' hidden activations on their slots


def model_seeds(seed: int | Sequence[int], n_models: int) -> list[int]:
    """One init seed per model: an int s gives s, s+1, ..., so model i of a bundle is reproducible alone."""
    if isinstance(seed, int):
        return [seed + i for i in range(n_models)]
    seeds = [int(s) for s in seed]
    if len(seeds) != n_models:
        raise ValueError(f"seed: expected an int or {n_models} seeds, got {len(seeds)}")
    return seeds


class SoftMoE(nn.Module):
    """M independent Soft MoE layers with n experts (one slot each) of hidden width h on d-dim tokens.

    Parameters: phi [M, d, n], w1 [M, n, d, h], b1 [M, n, h], w2 [M, n, h, d], b2 [M, n, d].
    Init: phi ~ N(0, 1/d); expert weights and biases ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) as nn.Linear;
    each model drawn on CPU from its own generator (see `model_seeds`), so init does not depend on the
    device or on the other models of the bundle.
    """

    def __init__(
        self,
        d: int,
        n_experts: int,
        hidden: int,
        n_models: int = 1,
        seed: int | Sequence[int] = 0,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        if min(d, n_experts, hidden, n_models) < 1:
            raise ValueError("d, n_experts, hidden and n_models must all be >= 1")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation: expected one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        self.d, self.n_experts, self.hidden, self.n_models = d, n_experts, hidden, n_models
        self.activation = activation
        per_model = [self._init_one(s) for s in model_seeds(seed, n_models)]
        for name in ("phi", "w1", "b1", "w2", "b2"):
            stacked = torch.stack([p[name] for p in per_model]).to(device=device, dtype=dtype)
            setattr(self, name, nn.Parameter(stacked))

    def _init_one(self, seed: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        d, n, h = self.d, self.n_experts, self.hidden

        def uniform(*shape: int, fan_in: int) -> torch.Tensor:
            bound = 1.0 / math.sqrt(fan_in)
            return (torch.rand(*shape, generator=g, dtype=torch.float64) * 2 - 1) * bound

        return {
            "phi": torch.randn(d, n, generator=g, dtype=torch.float64) / math.sqrt(d),
            "w1": uniform(n, d, h, fan_in=d),
            "b1": uniform(n, h, fan_in=d),
            "w2": uniform(n, h, d, fan_in=h),
            "b2": uniform(n, d, fan_in=h),
        }

    def route(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Dispatch and combine weights [M, B, t, n] for tokens x [M, B, t, d] (or [B, t, d])."""
        x = self._with_model_axis(x)
        logits = torch.einsum("mbtd,mdn->mbtn", x, self.phi)
        return logits.softmax(dim=2), logits.softmax(dim=3)

    def forward_full(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> SoftMoEOutput:
        """Forward pass returning the routing tensors too; `mask` [M, B, n] or [B, n], 1 = keep expert."""
        x = self._with_model_axis(x)
        dispatch, combine = self.route(x)
        # The slot X~_j = sum_t D_tj x_t enters W1_j linearly, so X~_j W1_j = sum_t D_tj (x_t W1_j): one
        # dense [B t, d] x [d, n h] product instead of n tiny per-expert ones (much faster for large n).
        m, b, t, d = x.shape
        n, h = self.n_experts, self.hidden
        w1 = self.w1.permute(0, 2, 1, 3).reshape(m, d, n * h)
        token_pre = torch.bmm(x.reshape(m, b * t, d), w1).view(m, b, t, n, h)
        pre = torch.einsum("mbtn,mbtnh->mbnh", dispatch, token_pre) + self.b1[:, None]
        hidden = _ACTIVATIONS[self.activation](pre)
        return SoftMoEOutput(self.combine_outputs(combine, hidden, mask), dispatch, combine, hidden)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Layer output [M, B, t, d] for tokens x [M, B, t, d] (or [B, t, d], shared by all models)."""
        return self.forward_full(x, mask).out

    def combine_outputs(self, combine: torch.Tensor, hidden: torch.Tensor,
                        mask: torch.Tensor | None = None) -> torch.Tensor:
        """C(X) Y~ with the masked rows of Y~ zeroed; Y~_j = hidden_j W2_j + b2_j is never materialised:
        sum_j C_tj Y~_j = sum_j (C_tj hidden_j) W2_j + C b2, again one dense product."""
        if mask is not None:
            combine = combine * self._check_mask(mask, combine.shape[1]).to(combine.dtype)[:, :, None, :]
        m, b, t, n = combine.shape
        mixed = (combine[..., None] * hidden[:, :, None]).reshape(m, b * t, n * self.hidden)
        out = torch.bmm(mixed, self.w2.reshape(m, n * self.hidden, self.d)).view(m, b, t, self.d)
        return out + torch.einsum("mbtn,mnd->mbtd", combine, self.b2)

    def slots(self, x: torch.Tensor, dispatch: torch.Tensor) -> torch.Tensor:
        """Slot inputs X~ = D^T X, [M, B, n, d] (for inspection; forward does not need them)."""
        return torch.einsum("mbtn,mbtd->mbnd", dispatch, self._with_model_axis(x))

    def expert_outputs(self, hidden: torch.Tensor) -> torch.Tensor:
        """Expert outputs Y~ [M, B, n, d] from the hidden activations (for inspection)."""
        return torch.einsum("mbnh,mnhd->mbnd", hidden, self.w2) + self.b2[:, None]

    def _with_model_axis(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(0).expand(self.n_models, *x.shape)
        if x.dim() != 4 or x.shape[0] != self.n_models or x.shape[-1] != self.d:
            raise ValueError(
                f"x: expected shape [{self.n_models}, B, n_tokens, {self.d}] or [B, n_tokens, {self.d}], "
                f"got {list(x.shape)}"
            )
        return x

    def _check_mask(self, mask: torch.Tensor, batch: int) -> torch.Tensor:
        if mask.dim() == 2:
            mask = mask.unsqueeze(0).expand(self.n_models, *mask.shape)
        expected = [self.n_models, batch, self.n_experts]
        if list(mask.shape) != expected:
            raise ValueError(f"mask: expected shape {expected} or {expected[1:]}, got {list(mask.shape)}")
        return mask

    def extra_repr(self) -> str:
        return (
            f"d={self.d}, n_experts={self.n_experts}, hidden={self.hidden}, n_models={self.n_models}, "
            f"activation={self.activation}"
        )


_ACTIVATIONS = {"relu": torch.relu, "gelu": nn.functional.gelu}
