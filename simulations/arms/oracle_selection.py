"""Oracle selection with learned gates: the oracle's experts (routing.oracle_gates: replicas of the
teacher's active skills, round-robin) gated by the model's own gate family on that selection, so only
the gate values (and the experts) learn. It isolates the gate values from the selection: beside the
oracle (the same selection, gates fixed at 1 / s per skill) and the learned router (both learned)."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from simulations import routing
from simulations.arms.base import Gating, Points, register_router
from simulations.arms.learned import Learned


@register_router
class OracleSelection(Learned):
    name = "oracle_select"
    label = "oracle selection, learned gates"
    order = 5
    needs_replicas = True
    primary = False
    takes_estimator = False  # its selection is given: there is nothing for an estimator to sample
    # As the oracle's: flat past k = s r by construction (the surplus slots stay empty).
    k_source = "discrete"
    k_star_note = "its error is flat past k = s r by construction"

    def _selection(self, split: str, points: Points, k: torch.Tensor) -> torch.Tensor:
        z = self.data.z[split][:, points]
        return routing.oracle_gates(z, self.data.levels(split, points), k, self.model.n_experts) > 0

    def route(self, split: str, points: Points = slice(None), training: bool = False) -> Gating:
        p = self.probs(split, points, training)
        selected = self._selection(split, points, self.model.router.k_per_model)
        return Gating(selected, self.gates_on(p, selected, split, points), p)

    def gates_by_k(self, split: str, points: Points) -> Iterator[torch.Tensor]:
        p = self.probs(split, points)
        for j in range(self.model.n_experts):
            k = torch.full_like(self.model.router.k_per_model, j + 1)
            yield self.gates_on(p, self._selection(split, points, k), split, points, k=j + 1)
