"""The estimator base class, its registry and the batch a training step hands it.

An estimator owns one thing: the training loss [M] of a bundle's student on a batch, built from the
per-point loss of whatever gatings it chooses to try (its own sample), so that its gradient trains the
experts, the gate values and the selection the way the estimator says. Evaluation is the router kind's
own greedy top-k whatever the estimator: estimators change how a router learns, never how it routes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch

from simulations import streams
from simulations.config_schema import NoSettings, gathered
from simulations.gating import Gating, Points
from simulations.registry import lookup, register

ESTIMATORS: dict[str, type[Estimator]] = {}
DEFAULT_ESTIMATOR = "pathwise"  # the gradient of every store written before the estimator axis


@dataclass(frozen=True)
class Batch:
    """The points of one training step: a split's `points`, their targets y [M, n, 1] and which are
    valid per model (`mask` [M, n] bool; None: all)."""

    split: str
    points: Points
    y: torch.Tensor
    mask: torch.Tensor | None = None

    def point_loss(self, pred: torch.Tensor) -> torch.Tensor:
        """Squared error per point [..., M, n] of predictions [..., M, n, 1] (sample axes allowed)."""
        return (pred - self.y).squeeze(-1).square()

    def valid(self, n_models: int, n: int) -> torch.Tensor:
        """Bool [M, n]: each model's own points of the batch (all of them without a mask)."""
        if self.mask is None:
            return torch.ones(n_models, n, dtype=torch.bool, device=self.y.device)
        return self.mask

    def mean(self, per_point: torch.Tensor) -> torch.Tensor:
        """Each model's mean [M] over its valid points of a per-point quantity [M, n]."""
        if self.mask is None:
            return per_point.mean(1)
        return (per_point * self.mask).sum(1) / self.mask.sum(1)


class RouterView(Protocol):
    """What an estimator reads of a router kind that takes estimators (simulations.arms.learned)."""

    k: torch.Tensor  # [M] each model's k
    # its scores reach the gates only straight-through (uniform, head): an estimator that trains the
    # selection its own way gates on detached scores (a gate head, if any, still learns pathwise)
    straight_through: bool

    def route(self, split: str, points: Points, training: bool = False) -> Gating: ...

    def probs(self, split: str, points: Points, training: bool = False) -> torch.Tensor: ...

    def gates_on(self, p: torch.Tensor, selected: torch.Tensor, split: str, points: Points) -> torch.Tensor:
        """Its gates on a selection from scores p of a split's points (a gate head reads them)."""
        ...

    def aux_loss(self, gating: Gating, split: str, points: Points) -> torch.Tensor | None: ...


class ExpertsView(Protocol):
    """What an estimator reads of an expert kind (simulations.arms)."""

    def combine(self, gating: Gating, split: str, points: Points) -> torch.Tensor: ...

    def outputs(self, split: str, points: Points) -> torch.Tensor: ...


class StudentView(Protocol):
    """What an estimator reads of the bundle's student (the regression trainer's `Student`)."""

    router: RouterView
    experts: ExpertsView


class Estimator:
    """How a training step's loss trains a router's selection.

    Class attributes: name (the config value `estimator: [...]` and the stored `estimator` column), label
    (what figures print), order (its place in fits and figures), Settings (a frozen dataclass whose
    fields are `simulations.config_schema.setting`s: the config's `estimators` section gathers them, so
    their names are unique across estimators), and through_gates: the router learns only through the
    gates' effect on the task loss (so a gate that is the constant 1 gives it no gradient).

    An instance is bound to one bundle's student; `seeds` (one tuple of ints per model) seed the
    generators of an estimator that samples, so a model's draws do not depend on the bundle it is in.
    """

    name: ClassVar[str]
    label: ClassVar[str]
    order: ClassVar[int]
    Settings: ClassVar[type] = NoSettings
    through_gates: ClassVar[bool] = False

    def __init__(self, student: StudentView, settings: Any, seeds: list[tuple[int, ...]]) -> None:
        self.student, self.settings, self.seeds = student, settings, seeds
        self._generators: list[torch.Generator] | None = None

    def loss(self, batch: Batch) -> torch.Tensor:
        """The training loss [M] on `batch` (each model's own: model i's gradient is its own)."""
        raise NotImplementedError

    def plus_aux(self, loss: torch.Tensor, gating: Gating, batch: Batch) -> torch.Tensor:
        """`loss` [M] plus the router kind's own term on `gating` (load balancing, ...), where it has one."""
        aux = self.student.router.aux_loss(gating, batch.split, batch.points)
        return loss if aux is None else loss + aux

    def exponential(self, n_samples: int, batch: Batch, like: torch.Tensor) -> torch.Tensor:
        """Exp(1) draws [n_samples, M, T, n] for the batch's points (as -log U, faster than torch's
        exponential_), model m's from its own stream (seeded by its seeds and this estimator's name), for
        its own points only (simulations.streams.per_point)."""
        if self._generators is None:
            self._generators = streams.generators(self.seeds, self.name)
        M, T, n = like.shape
        u = streams.per_point(self._generators, batch.valid(M, n), (n_samples, T), like.dtype, "uniform", 1.0)
        return u.clamp_min_(torch.finfo(like.dtype).tiny).log_().neg_().permute(2, 0, 3, 1).to(like.device)


def register_estimator(cls: type[Estimator]) -> type[Estimator]:
    return register(ESTIMATORS, cls, "estimator")


def estimator(name: str) -> type[Estimator]:
    """The estimator `name`; ValueError naming the allowed values otherwise."""
    return lookup(ESTIMATORS, "estimator", name)


def settings_fields() -> list[tuple[str, type, dataclasses.Field]]:
    """Every registered estimator's settings as (name, type, field) triples, in registration order (the
    config's `estimators` section); TypeError if two estimators name a setting alike."""
    return gathered(cls.Settings for cls in ESTIMATORS.values())
