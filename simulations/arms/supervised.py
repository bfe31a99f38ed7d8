"""The supervised router: the learned router also trained towards the teacher's active sets
(routing.supervision_target), a ceiling for learned routing; its gates and experts are learned as the
learned router's are."""

from __future__ import annotations

from typing import Any

import torch

from simulations import routing
from simulations.arms.base import BundleView, Gating, Points, register_router
from simulations.arms.learned import Learned
from simulations.moe import TopKMoE

WEIGHT = 1.0  # weight of the cross-entropy to the targets in the training loss


@register_router
class Supervised(Learned):
    name = "supervised"
    label = "supervised router"
    order = 3
    needs_replicas = True
    primary = False
    takes_estimator = False
    learns_through_gates = False  # its cross-entropy to the targets trains it at every k

    def __init__(self, model: TopKMoE, data: BundleView, settings: Any, seeds: list[tuple[int, ...]]) -> None:
        super().__init__(model, data, settings, seeds)
        self.target = routing.supervision_target(data.z["train"], data.levels("train"), model.n_experts)

    def aux_loss(self, gating: Gating, split: str, points: Points) -> torch.Tensor | None:
        """The learned router's term plus WEIGHT x the cross-entropy [M] from the router's (unjittered)
        probabilities to its targets, over the valid training points."""
        if split != "train":
            raise ValueError(f"router supervision uses the training split's targets, not {split!r}")
        balance = super().aux_loss(gating, split, points)
        p = self.probs(split, points)
        logp = p.clamp_min(torch.finfo(p.dtype).tiny).log()
        ce = -(self.target[:, :, points] * logp).sum(1)  # [M, n]
        mask = self.data.mask_train[:, points]
        supervision = WEIGHT * (ce * mask).sum(1) / mask.sum(1)
        return supervision if balance is None else balance + supervision
