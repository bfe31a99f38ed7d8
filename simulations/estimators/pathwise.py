"""The pathwise estimator: the gradient of the task loss through the router kind's own gates on its own
top-k selection (what every store before the estimator axis trained with). Selected logits learn only
through the gate values, unselected ones not at all: a wrong expert that has been selected settles at
an interior gate optimum instead of being evicted (docs/tasks.md, "Estimators")."""

from __future__ import annotations

import torch

from simulations.estimators.base import Batch, Estimator, register_estimator


@register_estimator
class Pathwise(Estimator):
    name = "pathwise"
    label = "pathwise"
    order = 0
    through_gates = True

    def loss(self, batch: Batch) -> torch.Tensor:
        router, experts = self.student.router, self.student.experts
        gating = router.route(batch.split, batch.points, training=True)
        loss = batch.mean(batch.point_loss(experts.combine(gating, batch.split, batch.points)))
        return self.plus_aux(loss, gating, batch)
