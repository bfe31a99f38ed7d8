"""Router and expert kinds: the base classes, the two registries and the arms they make.

A kind is a class whose class attributes say what the fits and figures need to know about it (its name,
label, order, whether it routes, where its k* comes from) and whose methods say how a bundle of students
of that kind gates, trains and evaluates: the regression trainer builds one instance of the bundle's router
kind (bound to the bundle's model, data, its own settings and the models' seeds) and one of its expert
kind (bound to the model and data) and asks them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import pandas as pd
import torch

from simulations.config_schema import NoSettings, gathered
from simulations.estimators import DEFAULT_ESTIMATOR, ESTIMATORS
from simulations.gates import GATES, gate_family
from simulations.gating import Gating, Points
from simulations.moe import TopKMoE
from simulations.registry import lookup, register

DEFAULT_GATE = GATES[0]  # softmax: the gate of every store written before the gate families

ROUTERS: dict[str, type[RouterKind]] = {}
EXPERTS: dict[str, type[ExpertsKind]] = {}


class BundleView(Protocol):
    """What a kind reads of a bundle's data (the regression trainer's BundleData, whose module imports
    this package)."""

    mask_train: torch.Tensor  # [M, N] bool: each model's training points
    complexity: torch.Tensor | None  # [M]: s of each model's task
    z: dict[str, torch.Tensor]  # split -> teacher scores [M, N, S]
    expert_out: dict[str, torch.Tensor]  # split -> the teacher's skills as experts [M, N, T]

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]: ...

    def levels(self, split: str, points: Points = slice(None)) -> torch.Tensor | None:
        """The s of a split's points: [M, n] for a mixed-complexity task, else each model's s [M]."""
        ...

    def valid(self, split: str, points: Points = slice(None)) -> torch.Tensor:
        """Bool [M, n]: which of a split's points are each model's own (the training split is padded)."""
        ...


class RouterKind:
    """How a student chooses its experts and their gates.

    Class attributes (what fits and figures read):
    name: the config value (`router: [...]`) and the stored `router` column.
    label: the name figures print.
    order: the arm's place in fits and figures (smaller first).
    routes: False where k is not a routing choice (the dense MLP: k is its width), so the arm has no
        k*, no routing measures and no inference-time-k curve.
    needs_replicas: n_experts must be a multiple of n_skills (r replicas of each skill).
    k_source: the k* estimator the fits use for this arm (None: the CLI's --k-source).
    k_star_note: what fixes its k* by construction rather than by the data, for figures to print beside
        its k* (None: nothing does).
    trains: the TopKMoE parameters it trains (by name: "router.weight", ...), of those the model has (the
        gate head "router.gate_weight" exists only under a gate family with one, "head").
    uses_gate: its gates are the model's own gate family's (TopKMoE `gate`), so the grid's `gate` axis
        varies it; a kind with other gates (fixed ones) has its cells once, at gate "softmax".
    learns_through_gates: its router learns only through the gates' effect on the task loss (no loss of
        its own), so where a gate is the constant 1 it gets no gradient under an estimator that learns
        through the gates (`frozen_at`).
    takes_estimator: the grid's `estimator` axis varies how it learns its top-k selection
        (simulations.estimators); every other kind trains with the pathwise estimator.
    Settings: its own settings, a frozen dataclass of `simulations.config_schema.setting`s (a subclass
        may extend its parent's); the config's `routers` section gathers every kind's (`settings_fields`),
        so their names are unique across kinds.

    An instance is one bundle's router, bound to the bundle's model (its `router`, a
    simulations.router.Router, is what a learned kind trains), data, its own settings (built from the
    cell's flat values) and `seeds` (one tuple of ints per model: the generators of a kind that draws,
    simulations.streams). `route` gates (in training, with its jitter), `aux_loss` is its term of the
    training loss, `gates_by_k` gates at every k = 1..T (inference-time k), `lr_mult` scales its
    parameters' learning rate.
    """

    name: ClassVar[str]
    label: ClassVar[str]
    order: ClassVar[int]
    routes: ClassVar[bool] = True
    needs_replicas: ClassVar[bool] = False
    k_source: ClassVar[str | None] = None
    k_star_note: ClassVar[str | None] = None
    primary: ClassVar[bool] = False  # the arm the toolkit's question is about (learned router)
    reference: ClassVar[bool] = False  # routing given, not learned: the theory's modular student
    trains: ClassVar[tuple[str, ...]] = ()
    uses_gate: ClassVar[bool] = False
    learns_through_gates: ClassVar[bool] = False
    takes_estimator: ClassVar[bool] = False
    Settings: ClassVar[type] = NoSettings

    @classmethod
    def frozen_at(cls, k: int, gate: str, renormalize: str, estimator: str = DEFAULT_ESTIMATOR) -> bool:
        """Whether a model of this kind at `k` gets no router gradient: one selected expert whose
        softmax or sigmoid gate is renormalized to the constant 1 (`renormalize: always`; the default
        "k>1" keeps the raw probability at k = 1, and a straight-through family, `uniform` or `head`,
        passes the selection a gradient whatever its values), under an estimator that learns through the
        gates alone."""
        family = gate_family(gate)
        return (cls.learns_through_gates and ESTIMATORS[estimator].through_gates and k == 1
                and family.renormalizes and not family.straight_through and renormalize == "always")

    def __init__(self, model: TopKMoE, data: BundleView, settings: Any, seeds: list[tuple[int, ...]]) -> None:
        self.model, self.data, self.settings, self.seeds = model, data, settings, seeds

    def route(self, split: str, points: Points = slice(None), training: bool = False) -> Gating:
        """The gating of a split's points at the model's k (`training`: as in a training step)."""
        raise NotImplementedError

    def aux_loss(self, gating: Gating, split: str, points: Points) -> torch.Tensor | None:
        """Its weighted term [M] of the training loss on the gated points, or None (no term)."""
        return None

    def gates_by_k(self, split: str, points: Points) -> Iterator[torch.Tensor]:
        """The gates [M, T, n] of a split's points at k = 1, 2, ..., T in turn (the model's own k
        unchanged); asked only of kinds that route."""
        raise NotImplementedError

    def lr_mult(self) -> float:
        """Its parameters' learning rate as a multiple of the bundle's."""
        return 1.0


class ExpertsKind:
    """What the experts are.

    Class attributes (what fits, figures and the config read):
    name: the config value (`experts: [...]`) and the stored `experts` column.
    arm_name, label, order: its arm's name, printed name and place (see `Arm`), where it is not the
        default expert kind (whose arms are named and ordered by their router).
    routers: the router kinds it pairs with (None: every one).
    needs_replicas: n_experts must be a multiple of n_skills.
    needs_expert_out: its bundles' data carry the teacher-expert outputs (`BundleData.expert_out`).
    trains: the TopKMoE parameters it trains.

    An instance is one bundle's experts (bound to its model and data): `combine` weighs them by a
    gating, `outputs` gives every expert's output (to regate them at every k).
    """

    name: ClassVar[str]
    arm_name: ClassVar[str]
    label: ClassVar[str]
    order: ClassVar[int]
    routers: ClassVar[tuple[str, ...] | None] = None
    needs_replicas: ClassVar[bool] = False
    needs_expert_out: ClassVar[bool] = False
    default: ClassVar[bool] = False  # the expert kind whose arms are named by their router
    trains: ClassVar[tuple[str, ...]] = ()

    def __init__(self, model: TopKMoE, data: BundleView) -> None:
        self.model, self.data = model, data

    def combine(self, gating: Gating, split: str, points: Points,
                outputs: Callable[[], torch.Tensor] | None = None) -> torch.Tensor:
        """Predictions [M, n, 1] on a split's points: the gate-weighted sum of the selected experts.
        `outputs`: where the caller keeps them, the experts' outputs there (`outputs(split, points)`),
        for a kind that would otherwise run every expert again."""
        raise NotImplementedError

    def outputs(self, split: str, points: Points) -> torch.Tensor:
        """Every expert's output on a split's points, [M, T, n, 1]."""
        raise NotImplementedError

    def lr_mult(self) -> float:
        """Its parameters' learning rate as a multiple of the bundle's."""
        return 1.0

    def skill_of_expert(self, n_skills: int) -> torch.Tensor | None:
        """The skill each expert is, [M, T] long, where the kind knows it (the teacher's skills as
        experts); None where it must be inferred from the routing (`simulations.routing.skill_map`)."""
        return None


def register_router(cls: type[RouterKind]) -> type[RouterKind]:
    return register(ROUTERS, cls, "router kind")


def settings_fields() -> list[tuple[str, type, dataclasses.Field]]:
    """Every registered router kind's own settings as (name, type, field) triples, in registration order
    (the config's `routers` section); TypeError if two kinds name a setting alike."""
    return gathered(cls.Settings for cls in ROUTERS.values())


def register_experts(cls: type[ExpertsKind]) -> type[ExpertsKind]:
    return register(EXPERTS, cls, "expert kind")


def router(name: str) -> type[RouterKind]:
    """The router kind `name`; ValueError naming the allowed values otherwise."""
    return lookup(ROUTERS, "router", name)


def experts(name: str) -> type[ExpertsKind]:
    """The expert kind `name`; ValueError naming the allowed values otherwise."""
    return lookup(EXPERTS, "experts", name)


@dataclass(frozen=True)
class Arm:
    """One (router kind, expert kind) pair, for a router kind that uses the model's gates
    (`RouterKind.uses_gate`) its gate family (`simulations.gates.GATES`), and for one that takes
    estimators (`RouterKind.takes_estimator`) its estimator (`simulations.estimators`). Its name is the
    router's with the default experts, else the expert kind's arm name (e.g. "teacher_experts", followed
    by "/<router>" for a router other than the kind's first), then "-<gate>" for a gate family other
    than softmax and "-<estimator>" for an estimator other than pathwise (e.g. "learned-uniform-score")."""

    router: type[RouterKind]
    experts: type[ExpertsKind]
    gate: str = DEFAULT_GATE
    estimator: str = DEFAULT_ESTIMATOR

    def _suffix(self, sep: str, gate_text: str, estimator_text: str) -> str:
        gate = "" if self.gate == DEFAULT_GATE else sep + gate_text
        return gate + ("" if self.estimator == DEFAULT_ESTIMATOR else sep + estimator_text)

    @property
    def name(self) -> str:
        if self.experts.default:
            base = self.router.name
        else:
            first = self.experts.routers is None or self.router.name == self.experts.routers[0]
            base = self.experts.arm_name if first else f"{self.experts.arm_name}/{self.router.name}"
        return base + self._suffix("-", self.gate, self.estimator)

    @property
    def label(self) -> str:
        if self.experts.default:
            base = self.router.label
        else:
            first = self.experts.routers is None or self.router.name == self.experts.routers[0]
            base = self.experts.label if first else f"{self.experts.label}, {self.router.label}"
        return base + self._suffix(", ", f"{self.gate} gates", ESTIMATORS[self.estimator].label)

    @property
    def order(self) -> float:
        n_est = len(ESTIMATORS)
        within = (GATES.index(self.gate) * n_est + ESTIMATORS[self.estimator].order) / (len(GATES) * n_est)
        if self.experts.default:
            return self.router.order + within
        routers = self.experts.routers or (self.router.name,)
        return self.experts.order + (routers.index(self.router.name) + within) / len(routers)

    @property
    def routes(self) -> bool:
        return self.router.routes

    @property
    def k_source(self) -> str | None:
        return self.router.k_source

    @property
    def k_star_note(self) -> str | None:
        return self.router.k_star_note


def arm(router_name: str, experts_name: str, gate: str = DEFAULT_GATE,
        estimator: str = DEFAULT_ESTIMATOR) -> Arm:
    """The arm of a (router, experts, gate, estimator) tuple; ValueError if it does not exist (a gate
    family other than softmax exists only for router kinds that use the model's gates, an estimator
    other than pathwise only for kinds that take estimators)."""
    r, e = router(router_name), experts(experts_name)
    if e.routers is not None and r.name not in e.routers:
        raise ValueError(f"experts: {e.name!r} pairs with the {' or '.join(e.routers)} router only; "
                         f"got router {r.name!r}")
    if gate not in _gates_of(r):
        raise ValueError(f"gate: the {r.name} router takes {', '.join(_gates_of(r))}; got {gate!r}")
    if estimator not in estimators_of(r):
        raise ValueError(f"estimator: the {r.name} router takes {', '.join(estimators_of(r))}; "
                         f"got {estimator!r}")
    return Arm(r, e, gate, estimator)


def estimators_of(r: type[RouterKind]) -> tuple[str, ...]:
    """The estimators a router kind trains with: every registered one for a kind that takes them, else
    the pathwise one alone."""
    return tuple(ESTIMATORS) if r.takes_estimator else (DEFAULT_ESTIMATOR,)


def _gates_of(r: type[RouterKind]) -> tuple[str, ...]:
    return GATES if r.uses_gate else (DEFAULT_GATE,)


def arms() -> list[Arm]:
    """Every arm that exists, in the order fits and figures show them."""
    out = [Arm(r, e, g, est) for r in ROUTERS.values() for e in EXPERTS.values()
           if e.routers is None or r.name in e.routers for g in _gates_of(r) for est in estimators_of(r)]
    return sorted(out, key=lambda a: a.order)


def arm_named(name: str) -> Arm:
    """The arm called `name` (see `Arm.name`); ValueError naming the allowed values otherwise."""
    by_name = {a.name: a for a in arms()}
    if name not in by_name:
        raise ValueError(f"arm: expected one of {', '.join(by_name)}; got {name!r}")
    return by_name[name]


#: The columns of a results row that name its arm; a store without them is all primary arm, a store
#: without `gate` (written before the gate families) all softmax, one without `estimator` all pathwise.
ARM_COLUMNS = ("router", "experts", "gate", "estimator")


def arm_names(df: pd.DataFrame) -> pd.Series:
    """Each row's arm name (`Arm.name`), from its `router` and `experts` columns; the primary arm's for
    every row of a table without them. ValueError naming the allowed pairs for a pair that is no arm."""
    if not {"router", "experts"} <= set(df.columns):
        return pd.Series(primary().name, index=df.index)
    names = {(a.router.name, a.experts.name, a.gate, a.estimator): a.name for a in arms()}
    gates = df["gate"].fillna(DEFAULT_GATE) if "gate" in df.columns else [DEFAULT_GATE] * len(df)
    ests = df["estimator"].fillna(DEFAULT_ESTIMATOR) if "estimator" in df.columns else \
        [DEFAULT_ESTIMATOR] * len(df)
    pairs = list(zip(df["router"], df["experts"], gates, ests, strict=True))
    unknown = sorted({"/".join(p) for p in pairs if p not in names}, key=str)
    if unknown:
        allowed = ", ".join("/".join(p) for p in names)
        raise ValueError(f"router/experts/gate/estimator: unknown arm(s) {', '.join(unknown)}: allowed "
                         f"values are {allowed}")
    return pd.Series([names[p] for p in pairs], index=df.index)


def primary_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of the primary arm (every row of a table without arm columns), reindexed from 0."""
    return df[arm_names(df) == primary().name].reset_index(drop=True)


def primary() -> Arm:
    """The arm the toolkit's question is about: the learned router with learned experts."""
    return next(a for a in arms() if a.router.primary and a.experts.default and a.gate == DEFAULT_GATE
                and a.estimator == DEFAULT_ESTIMATOR)


def reference() -> Arm:
    """The arm whose routing is given (the theory's modular student), with learned experts."""
    return next(a for a in arms() if a.router.reference and a.experts.default and a.gate == DEFAULT_GATE
                and a.estimator == DEFAULT_ESTIMATOR)
