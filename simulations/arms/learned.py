"""The learned router: linear scores, top-k selection and the model's gate family (TopKMoE.route: softmax
by default, sigmoid or uniform by the grid's `gate` axis), with its training options: a learning-rate
multiple, a load-balancing loss and logit jitter."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from simulations import routing
from simulations.arms.base import Gating, Points, RouterKind, register_router
from simulations.gates import gate_family


@register_router
class Learned(RouterKind):
    name = "learned"
    label = "learned router"
    order = 0
    primary = True
    trains = ("router",)
    uses_gate = True
    learns_through_gates = True
    takes_estimator = True

    def probs(self, split: str, points: Points = slice(None), training: bool = False) -> torch.Tensor:
        """The router's scores p [M, T, n] on a split's points (the gate family's; `training`: with the
        training jitter), differentiable: what an estimator samples from and gates with."""
        x = self.data.split(split)[0][:, points]
        self.model._check_input(x)
        return self.model._probs(x, self.settings.router_noise if training else 0.0)

    def gates_on(self, p: torch.Tensor, selected: torch.Tensor) -> torch.Tensor:
        """The model's gates [M, T, n] on a selection `selected` from scores p, at the model's k."""
        return self.model._gates(p, selected)

    @property
    def k(self) -> torch.Tensor:
        """Each model's k, [M] long."""
        return self.model._k_vec

    @property
    def learns_gate_values(self) -> bool:
        """Whether its gate values depend on the scores (softmax, sigmoid), so they can learn pathwise;
        uniform gates are 1 / k whatever the scores."""
        return not gate_family(self.model.gate).fixed_values

    def route(self, split: str, points: Points = slice(None), training: bool = False) -> Gating:
        x = self.data.split(split)[0][:, points]
        p, mask, gates = self.model.route(x, self.settings.router_noise if training else 0.0)
        return Gating(mask, gates, p)

    def aux_loss(self, gating: Gating, split: str, points: Points) -> torch.Tensor | None:
        """The load-balancing loss weighted by `balance_loss` (None at weight 0)."""
        if self.settings.balance_loss > 0:
            stats = self.model._stats(gating.probs, gating.selected)
            return self.settings.balance_loss * stats.load_balancing_loss
        return None

    def gates_by_k(self, split: str, points: Points) -> Iterator[torch.Tensor]:
        """The top-k experts of one sort for every k (topk_mask's rule: ties go to the lower index),
        gated by the model's rule at that k."""
        p = self.model._probs(self.data.split(split)[0][:, points])
        rank = routing.skill_ranks(p.transpose(1, 2)).transpose(1, 2)  # [M, T, n]: each expert's place
        for j in range(self.model.n_experts):
            yield self.model._gates(p, rank <= j, k=j + 1)

    def lr_mult(self) -> float:
        return self.settings.router_lr_mult
