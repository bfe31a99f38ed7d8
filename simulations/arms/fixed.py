"""Fixed gates: the shared base of router kinds whose gates are a given function of each point and k
(oracle, dense). Nothing of the router is trained; the gates at the model's k are computed once per
split, on first use."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from simulations.arms.base import BundleView, Gating, Points, RouterKind
from simulations.moe import TopKMoE


class FixedGates(RouterKind):
    """A router kind that gates by `gates(split, points, k)`; its selection is the positive gates."""

    def __init__(self, model: TopKMoE, data: BundleView, settings: Any, seeds: list[tuple[int, ...]]) -> None:
        super().__init__(model, data, settings, seeds)
        self._at_model_k: dict[str, torch.Tensor] = {}

    def gates(self, split: str, points: Points, k: torch.Tensor) -> torch.Tensor:
        """The gates [M, T, n] of a split's points at k [M]."""
        raise NotImplementedError

    def route(self, split: str, points: Points = slice(None), training: bool = False) -> Gating:
        if split not in self._at_model_k:
            self._at_model_k[split] = self.gates(split, slice(None), self.model.router.k_per_model)
        g = self._at_model_k[split][:, :, points]
        return Gating(g > 0, g)

    def gates_by_k(self, split: str, points: Points) -> Iterator[torch.Tensor]:
        k = self.model.router.k_per_model
        for j in range(self.model.n_experts):
            yield self.gates(split, points, torch.full_like(k, j + 1))
