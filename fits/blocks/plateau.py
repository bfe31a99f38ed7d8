"""Block `plateau`: for a store with learning curves (SRAVEN with early stopping), whether each model
ended at its plateau (`fits.plateau`: stopped early, its per-feature OOD accuracy within 0.02 of its
own plateau), per estimator and R; writes `plateau.parquet` (one row per model)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fits.blocks.context import FitContext
from fits.plateau import MODEL_COLUMNS, TABLE, TOLERANCE, group_table, model_table
from fits.summary import markdown_table
from simulations.results import CURVES_GLOB, load_curves

NAME = "plateau"
TITLE = "Plateau: did the models finish learning?"


def skipped(reason: str) -> dict:
    return {"available": False, "reason": reason}


def applies(ctx: FitContext) -> str | None:
    path = Path(ctx.options.results)
    if not path.is_dir() or not any(path.glob(CURVES_GLOB)):
        return "the store records no learning curves (SRAVEN with early stopping: patience > 0)"
    return None


def run(ctx: FitContext) -> dict:
    curves = ctx.options.select(load_curves(ctx.options.results))
    curves = curves[~curves["diverged"].astype(bool)]
    models = model_table(curves, ctx.store)
    return {"available": True, "tolerance": TOLERANCE,
            "share_at_plateau": float(models["at_plateau"].mean()),
            "groups": group_table(models).to_dict(orient="records"),
            "models": models.to_dict(orient="records")}


def report(value: dict) -> str:
    if not value.get("available"):
        return f"Not available: {value.get('reason')}\n"
    groups = pd.DataFrame(value["groups"])
    return (f"Per-feature OOD accuracy (`fits.plateau`): a model is at its plateau when it stopped early, "
            f"its curve rose by at most {value['tolerance']} over its last `patience` checks (least-squares "
            f"trend) and its final checkpoint is within {value['tolerance']} of the best its curve reached. "
            f"Shares are over models; at plateau overall: {value['share_at_plateau']:.2f}. One row per model "
            f"in `{TABLE}`.\n\n" + markdown_table(groups.round(3)) + "\n")


def summary(value: dict) -> str | None:
    if not value.get("available"):
        return None
    return f"plateau: {value['share_at_plateau']:.2f} of the models ended at their plateau (fits.plateau)"


def tables(ctx: FitContext, value: dict) -> dict[str, pd.DataFrame]:
    if not value.get("available"):
        return {}
    return {TABLE: pd.DataFrame(value["models"], columns=list(MODEL_COLUMNS))}
