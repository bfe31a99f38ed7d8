"""Router and expert kinds: the base classes, the two registries and the arms they make.

A kind is a class whose class attributes say what the fits and figures need to know about it (its name,
label, order, whether it routes, where its k* comes from) and whose methods say how a bundle of students
of that kind gates, trains and evaluates (simulations.families.regression.train asks them; see each method).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

ROUTERS: dict[str, type[RouterKind]] = {}
EXPERTS: dict[str, type[ExpertsKind]] = {}


class RouterKind:
    """How a student chooses its experts and their gates.

    name: the config value (`router: [...]`) and the stored `router` column.
    label: the name figures print.
    order: the arm's place in fits and figures (smaller first).
    routes: False where k is not a routing choice (the dense MLP: k is its width), so the arm has no
        k*, no routing measures and no inference-time-k curve.
    needs_replicas: n_experts must be a multiple of n_skills (r replicas of each skill).
    k_source: the k* estimator the fits use for this arm (None: the CLI's --k-source).
    """

    name: ClassVar[str]
    label: ClassVar[str]
    order: ClassVar[int]
    routes: ClassVar[bool] = True
    needs_replicas: ClassVar[bool] = False
    k_source: ClassVar[str | None] = None
    primary: ClassVar[bool] = False  # the arm the toolkit's question is about (learned router)
    reference: ClassVar[bool] = False  # routing given, not learned: the theory's modular student


class ExpertsKind:
    """What the experts are.

    name: the config value (`experts: [...]`) and the stored `experts` column.
    arm_name, label, order: its arm's name, printed name and place (see `Arm`), where it is not the
        default expert kind (whose arms are named and ordered by their router).
    routers: the router kinds it pairs with (None: every one).
    needs_replicas: n_experts must be a multiple of n_skills.
    """

    name: ClassVar[str]
    arm_name: ClassVar[str]
    label: ClassVar[str]
    order: ClassVar[int]
    routers: ClassVar[tuple[str, ...] | None] = None
    needs_replicas: ClassVar[bool] = False
    default: ClassVar[bool] = False  # the expert kind whose arms are named by their router


def register_router(cls: type[RouterKind]) -> type[RouterKind]:
    if cls.name in ROUTERS:
        raise ValueError(f"router kind {cls.name!r} is registered twice")
    ROUTERS[cls.name] = cls
    return cls


def register_experts(cls: type[ExpertsKind]) -> type[ExpertsKind]:
    if cls.name in EXPERTS:
        raise ValueError(f"expert kind {cls.name!r} is registered twice")
    EXPERTS[cls.name] = cls
    return cls


def router(name: str) -> type[RouterKind]:
    """The router kind `name`; ValueError naming the allowed values otherwise."""
    if name not in ROUTERS:
        raise ValueError(f"router: expected one of {', '.join(ROUTERS)}; got {name!r}")
    return ROUTERS[name]


def experts(name: str) -> type[ExpertsKind]:
    """The expert kind `name`; ValueError naming the allowed values otherwise."""
    if name not in EXPERTS:
        raise ValueError(f"experts: expected one of {', '.join(EXPERTS)}; got {name!r}")
    return EXPERTS[name]


@dataclass(frozen=True)
class Arm:
    """One (router kind, expert kind) pair. Its name is the router's with the default experts, else the
    expert kind's arm name (e.g. "teacher_experts")."""

    router: type[RouterKind]
    experts: type[ExpertsKind]

    @property
    def name(self) -> str:
        return self.router.name if self.experts.default else self.experts.arm_name

    @property
    def label(self) -> str:
        return self.router.label if self.experts.default else self.experts.label

    @property
    def order(self) -> int:
        return self.router.order if self.experts.default else self.experts.order

    @property
    def routes(self) -> bool:
        return self.router.routes

    @property
    def k_source(self) -> str | None:
        return self.router.k_source


def arm(router_name: str, experts_name: str) -> Arm:
    """The arm of a (router, experts) pair; ValueError if the pair does not exist."""
    r, e = router(router_name), experts(experts_name)
    if e.routers is not None and r.name not in e.routers:
        raise ValueError(f"experts: {e.name!r} pairs with the {', '.join(e.routers)} router only; "
                         f"got router {r.name!r}")
    return Arm(r, e)


def arms() -> list[Arm]:
    """Every arm that exists, in the order fits and figures show them."""
    out = [Arm(r, e) for r in ROUTERS.values() for e in EXPERTS.values()
           if e.routers is None or r.name in e.routers]
    return sorted(out, key=lambda a: a.order)


def arm_named(name: str) -> Arm:
    """The arm called `name` (see `Arm.name`); ValueError naming the allowed values otherwise."""
    by_name = {a.name: a for a in arms()}
    if name not in by_name:
        raise ValueError(f"arm: expected one of {', '.join(by_name)}; got {name!r}")
    return by_name[name]


def primary() -> Arm:
    """The arm the toolkit's question is about: the learned router with learned experts."""
    return next(a for a in arms() if a.router.primary and a.experts.default)


def reference() -> Arm:
    """The arm whose routing is given (the theory's modular student), with learned experts."""
    return next(a for a in arms() if a.router.reference and a.experts.default)
