"""Block `by_router`: every routed arm's per-cell k* and law (`fits.arm_fit.arm_block`), each arm's k*
from the estimator its router kind names (`simulations.arms`: `Arm.k_source`)."""

from __future__ import annotations

from fits.arm_fit import arm_block, fit_arm
from fits.blocks.context import FitContext
from simulations.arms import arm_named

NAME = "by_router"
TITLE = None


def skipped(reason: str) -> None:
    return None


def applies(ctx: FitContext) -> str | None:
    return None if "router" in ctx.store.columns else "the store has no routing controls"


def run(ctx: FitContext) -> dict:
    out = {}
    for name, part in ctx.arms.items():
        fit = ctx.fitted if name == ctx.primary else fit_arm(part, ctx.options, arm_named(name).k_source)
        out[name] = arm_block(part, *fit, ctx.options.metric)
    return out
