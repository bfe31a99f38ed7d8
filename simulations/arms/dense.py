"""The dense reference: the first k experts with gate 1, a dense MLP of width k h (no routing)."""

from __future__ import annotations

import torch

from simulations import routing
from simulations.arms.base import Points, register_router
from simulations.arms.fixed import FixedGates


@register_router
class Dense(FixedGates):
    name = "dense"
    label = "dense MLP, width k h"
    order = 9
    routes = False

    def gates(self, split: str, points: Points, k: torch.Tensor) -> torch.Tensor:
        x = self.data.split(split)[0][:, points]
        return routing.dense_gates(k, self.model.n_experts, x.shape[1], x.dtype)
