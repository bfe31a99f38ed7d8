"""The dense straight-through estimator (DenseMixer, Yao et al. 2025): the forward pass is the router
kind's own top-k mixture; the router's gradient is that of the dense mixture of all T experts weighted
by the router's scores, sum_j p_j E_j(x), so every logit, selected or not, learns from its expert's
output. The experts learn from the top-k forward as usual (the unselected ones run, but get no gradient),
and so does a gate head (gate "head": its values are no scores, so the dense mixture cannot train it)."""

from __future__ import annotations

import torch

from simulations.estimators.base import Batch, Estimator, register_estimator


@register_estimator
class DenseSTE(Estimator):
    name = "dense_ste"
    label = "dense straight-through"
    order = 2

    def loss(self, batch: Batch) -> torch.Tensor:
        router, experts = self.student.router, self.student.experts
        gating = router.route(batch.split, batch.points, training=True)
        outputs = experts.outputs(batch.split, batch.points)  # [M, T, n, 1]
        # gates on the detached scores: no gradient but a gate head's (gate "head"), the forward's values
        gates = router.gates_on(gating.probs.detach(), gating.selected, batch.split, batch.points)
        hard = (gates.unsqueeze(-1) * outputs).sum(1)
        dense = (gating.probs.unsqueeze(-1) * outputs.detach()).sum(1)
        return self.plus_aux(batch.mean(batch.point_loss(hard + (dense - dense.detach()))), gating, batch)
