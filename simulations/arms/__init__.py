"""The arms registry: every router kind and expert kind a student can have, and the arms they make.

An arm is a (router kind, expert kind) pair (docs/tasks.md, "Controls"), with the gate family and the
estimator where the router kind varies by them. Each kind is one class in one
module of this package, registered by `register_router` / `register_experts`; importing the package
imports every module in it, so a new kind is one new file here and no change to the trainer, fits or
figures (its own settings also touch the config's hash tests: docs/architecture.md, "Where a new thing
goes"). Trainer, fits and figures ask this registry (names, labels, which arms exist, where an arm's k
comes from, how a kind gates and trains) and spell no arm name themselves.

Public API: `ROUTERS`, `EXPERTS` (name -> kind class, registration order), `router(name)`,
`experts(name)`, `Arm`, `arm(router, experts)`, `arms()` (every arm, in figure and fit order),
`arm_named(name)`, `arm_names(rows)` (each results row's arm name; `ARM_COLUMNS` name it; `DEFAULT_GATE`
the gate family of rows without a `gate` column), `estimators_of(router kind)` (the estimators it trains
with, simulations.estimators),
`primary()` (the arm the toolkit's question is about) and `primary_rows(rows)`, `reference()` (the arm whose
routing is given: the theory's modular student), `settings_fields()` (every router kind's own settings,
the config's `routers` section); for writing a kind: `RouterKind` (with its `Settings`), `ExpertsKind`,
`Gating` (what a router's gating returns), `Points`, and the protocol `BundleView` (what a kind reads
of the bundle's data). No module of the package may be named as one of these (importing it would
replace the name).
"""

from __future__ import annotations

import pkgutil
from importlib import import_module

from simulations.arms.base import (
    ARM_COLUMNS,
    DEFAULT_GATE,
    EXPERTS,
    ROUTERS,
    Arm,
    BundleView,
    ExpertsKind,
    Gating,
    Points,
    RouterKind,
    arm,
    arm_named,
    arm_names,
    arms,
    estimators_of,
    experts,
    primary,
    primary_rows,
    reference,
    register_experts,
    register_router,
    router,
    settings_fields,
)

for _mod in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _mod.name != "base":
        import_module(f"{__name__}.{_mod.name}")

__all__ = ["ARM_COLUMNS", "DEFAULT_GATE", "EXPERTS", "ROUTERS", "Arm", "BundleView", "ExpertsKind", "Gating",
           "Points", "RouterKind", "arm", "arm_named", "arm_names", "arms", "estimators_of", "experts",
           "primary", "primary_rows", "reference", "register_experts", "register_router", "router",
           "settings_fields"]
