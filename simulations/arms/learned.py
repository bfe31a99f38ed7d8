"""The learned router: the model's own router (simulations.router.Router: linear scores, top-k selection
and the model's gate family, softmax by default, sigmoid, uniform or head by the grid's `gate` axis), with
its training options: a learning-rate multiple, a load-balancing loss and logit jitter."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from simulations import streams
from simulations.arms.base import BundleView, Gating, Points, RouterKind, register_router
from simulations.config_schema import Number, setting
from simulations.moe import TopKMoE
from simulations.selection import ranks


@dataclass(frozen=True)
class LearnedSettings:
    """router_lr_mult: its learning rate as a multiple of the bundle's; balance_loss: the weight of the
    load-balancing loss; router_noise: the sd of the N(0, .) jitter on its logits in training steps."""

    router_lr_mult: float = setting(1.0, Number(positive=True), since=1.0)
    balance_loss: float = setting(0.0, Number(), since=0.0)
    router_noise: float = setting(0.0, Number(), since=0.0)


@register_router
class Learned(RouterKind):
    """The estimator-facing methods (`probs`, `gates_on`, `k`, `straight_through`, `route`,
    `aux_loss`) are what simulations.estimators read of a router that takes them. It trains the router
    weight and, under a gate family with a gate head ("head"), the head (`router.gate_weight`, absent
    otherwise)."""

    name = "learned"
    label = "learned router"
    order = 0
    primary = True
    trains = ("router.weight", "router.gate_weight")
    uses_gate = True
    learns_through_gates = True
    takes_estimator = True
    Settings = LearnedSettings

    def __init__(self, model: TopKMoE, data: BundleView, settings: Any, seeds: list[tuple[int, ...]]) -> None:
        super().__init__(model, data, settings, seeds)
        self._jitter_streams = streams.generators(seeds, "router_noise")

    def probs(self, split: str, points: Points = slice(None), training: bool = False) -> torch.Tensor:
        """The router's scores p [M, T, n] on a split's points (the gate family's; `training`: with the
        training jitter), differentiable: what an estimator samples from and gates with."""
        x = self.inputs(split, points)
        return self.model.router.scores(x, self._jitter(split, points, x) if training else None)

    def inputs(self, split: str, points: Points = slice(None)) -> torch.Tensor:
        """What the router reads of a split's points, [M, n, d_in + d_context]."""
        return self.data.split(split)[0][:, points]

    def gates_on(self, p: torch.Tensor, selected: torch.Tensor, split: str, points: Points = slice(None),
                 k: int | None = None) -> torch.Tensor:
        """The model's gates [M, T, n] on a selection `selected` from scores p of a split's points (a
        gate head reads its values off them), at k (default the model's own). Detached scores give gates
        whose only gradient is the gate head's, where the family has one."""
        return self.model.router.gates(p, selected, k, x=self.inputs(split, points))

    @property
    def k(self) -> torch.Tensor:
        """Each model's k, [M] long."""
        return self.model.router.k_per_model

    @property
    def straight_through(self) -> bool:
        """Whether its scores reach the gates only through a straight-through term (uniform: 1 / k
        whatever the scores; head: values from its gate head), so an estimator that trains the selection
        its own way gates on detached scores; softmax and sigmoid gate values are the scores'."""
        return self.model.router.family.straight_through

    def route(self, split: str, points: Points = slice(None), training: bool = False) -> Gating:
        x = self.inputs(split, points)
        return self.model.router.route(x, noise=self._jitter(split, points, x) if training else None)

    def _jitter(self, split: str, points: Points, x: torch.Tensor) -> torch.Tensor | None:
        """The training jitter [M, T, n] on the logits of a split's points x, N(0, router_noise^2) (None
        at router_noise 0): model m's from its own stream, for its own points only (0 on padding:
        simulations.streams.per_point)."""
        if self.settings.router_noise <= 0:
            return None
        valid = self.data.valid(split, points)
        T = self.model.n_experts
        noise = streams.per_point(self._jitter_streams, valid, (T,), x.dtype, "normal", 0.0)  # [M, n, T]
        return (self.settings.router_noise * noise).transpose(1, 2).to(x.device)

    def aux_loss(self, gating: Gating, split: str, points: Points) -> torch.Tensor | None:
        """The load-balancing loss weighted by `balance_loss` (None at weight 0)."""
        if self.settings.balance_loss > 0:
            stats = self.model.router.stats(gating.probs, gating.selected)
            return self.settings.balance_loss * stats.load_balancing_loss
        return None

    def gates_by_k(self, split: str, points: Points) -> Iterator[torch.Tensor]:
        """The top-k experts of one sort for every k (topk_mask's rule: ties go to the lower index),
        gated by the model's rule at that k."""
        p = self.probs(split, points)
        rank = ranks(p, 1)  # [M, T, n]: each expert's place
        for j in range(self.model.n_experts):
            yield self.gates_on(p, rank <= j, split, points, k=j + 1)

    def lr_mult(self) -> float:
        return self.settings.router_lr_mult
