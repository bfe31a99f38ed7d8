"""Learned experts: the model's own two-layer ReLU experts, trained."""

from __future__ import annotations

from collections.abc import Callable

import torch

from simulations.arms.base import ExpertsKind, Gating, Points, register_experts


@register_experts
class LearnedExperts(ExpertsKind):
    """The model's own two-layer ReLU experts (TopKMoE.mix), trained."""

    name = "learned"
    arm_name = "learned"
    label = "learned experts"
    order = 0
    default = True
    trains = ("b1", "b2", "w1", "w2")

    def combine(self, gating: Gating, split: str, points: Points,
                outputs: Callable[[], torch.Tensor] | None = None) -> torch.Tensor:
        return self.model.mix(self.data.split(split)[0][:, points], gating.gates, gating.selected, outputs)

    def outputs(self, split: str, points: Points) -> torch.Tensor:
        return self.model.expert_outputs(self.data.split(split)[0][:, points])
