"""Block `joint_surface`: the joint fit of loss(k, s, m, h) over the primary arm's seed-mean curves
(`fits.surface.fit_moe_loss`), with point-bootstrap CIs."""

from __future__ import annotations

import numpy as np

from fits.blocks.context import FitContext
from fits.surface import fit_moe_loss

NAME = "joint_surface"
TITLE = None


def skipped(reason: str) -> dict:
    return {"fitted": False, "reason": reason}


def applies(ctx: FitContext) -> str | None:
    return "--no-surface" if ctx.options.no_surface else None


def run(ctx: FitContext) -> dict:
    curves = ctx.fitted.cells.curves
    curves = curves[np.isfinite(curves["mean"])]
    if len(curves) < 16:
        return {"fitted": False, "reason": f"{len(curves)} (cell, k) points: too few for 8 parameters"}
    n_boot = ctx.options.surface_bootstrap
    fit = fit_moe_loss(curves, n_boot=n_boot, seed=ctx.options.seed)
    return {
        "fitted": True,
        "form": "L = E + A s^gamma / k^alpha + B k^beta h^nu / m^mu",
        "params": fit.params,
        "ci95": fit.ci if n_boot else None,
        "convergence": fit.convergence,
        "n_points": len(curves),
    }
