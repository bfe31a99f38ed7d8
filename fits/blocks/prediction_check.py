"""Block `prediction_check`: the predicted k* of `--predictions DIR` (fits.predictions, written before
the grid) against the primary arm's measured k* (`fits.prediction_check`); writes
`prediction_check.parquet` for the figure of the same name."""

from __future__ import annotations

import pandas as pd

from fits.blocks.context import FitContext
from fits.prediction_check import agreement, compare, read_predictions
from fits.summary import markdown_table

NAME = "prediction_check"
TITLE = "Predicted against measured k*"
TABLE = "prediction_check.parquet"


def skipped(reason: str) -> dict:
    return {"available": False, "reason": reason}


def applies(ctx: FitContext) -> str | None:
    return None if ctx.options.predictions else "no --predictions directory given"


def _table(ctx: FitContext) -> pd.DataFrame:
    predicted, n_experts = read_predictions(ctx.options.predictions)
    active = "active_width" in ctx.store.columns and ctx.store["active_width"].notna().any()
    return compare(ctx.fitted.cells, predicted, n_experts, "kh" if active else "h").assign(arm=ctx.primary)


def run(ctx: FitContext) -> dict:
    table = _table(ctx)
    return {"available": True, "predictions": str(ctx.options.predictions), "arm": ctx.primary,
            "agreement": agreement(table).to_dict(orient="records"), "cells": table.to_dict(orient="records")}


def report(value: dict) -> str:
    if not value.get("available"):
        return f"Not available: {value.get('reason')}\n"
    return (f"Predictions `{value['predictions']}` against the measured k* of `{value['arm']}`: the share of "
            "cells whose predicted k* lies in the measured argmin's bootstrap interval, and whose measured "
            "argmin lies in the prediction's interval.\n\n"
            + markdown_table(pd.DataFrame(value["agreement"]).round(3)) + "\n\nPer cell:\n\n"
            + markdown_table(pd.DataFrame(value["cells"]).drop(columns="arm")) + "\n")


def summary(value: dict) -> str | None:
    return "; ".join(f"prediction {r['source']}: predicted k* in the measured interval in "
                     f"{r['pred_in_measured_ci']:.0%} of {r['cells']} cells, measured in the predicted in "
                     f"{r['measured_in_pred_interval']:.0%}" for r in value.get("agreement", [])) or None


def tables(ctx: FitContext, value: dict) -> dict[str, pd.DataFrame]:
    return {TABLE: pd.DataFrame(value["cells"])} if value.get("available") else {}
