"""The oracle router: fixed gates from the teacher's active sets (routing.oracle_gates)."""

from __future__ import annotations

import torch

from simulations import routing
from simulations.arms.base import Points, register_router
from simulations.arms.fixed import FixedGates


@register_router
class Oracle(FixedGates):
    name = "oracle"
    label = "oracle router"
    order = 1
    needs_replicas = True
    reference = True
    # The oracle's curve is flat past k = s r by construction (docs/tasks.md): only the discrete argmin
    # of its curve is meaningful.
    k_source = "discrete"
    k_star_note = "its error is flat past k = s r by construction"

    def gates(self, split: str, points: Points, k: torch.Tensor) -> torch.Tensor:
        return routing.oracle_gates(self.data.z[split][:, points], self.data.levels(split, points), k,
                                    self.model.n_experts)
