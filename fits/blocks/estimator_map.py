"""Block `estimator_map`: per arm and s, recall at k = s against chance, the best error against the
oracle's, the error split, the share of the routing gain and the cost per step (`fits.estimator_map`);
writes `estimator_map.parquet` for the figure of that name. Runs on stores with the estimator axis."""

from __future__ import annotations

import pandas as pd

from fits.blocks.context import FitContext
from fits.estimator_map import estimator_map
from fits.summary import markdown_table

NAME = "estimator_map"
TITLE = "Estimator map: which estimator composes"
TABLE = "estimator_map.parquet"
SHOWN = ("task", "n_train", "experts", "estimator", "complexity", "recall_at_s", "recall_chance_at_s",
         "ratio_id", "ratio_id_lo", "ratio_id_hi", "ratio_ood", "nmse_oracle_selection_id",
         "nmse_equal_gates_id", "misrouted_share_id", "best_share_id", "ms_per_step")


def skipped(reason: str) -> dict:
    return {"available": False, "reason": reason}


def applies(ctx: FitContext) -> str | None:
    if "estimator" not in ctx.store.columns:
        return "the store has no estimator axis (written before it: every router pathwise)"
    if "routing_recall" not in ctx.store.columns:
        return "the store has no routing controls"
    return None


def run(ctx: FitContext) -> dict:
    table = estimator_map(ctx.store, ctx.options.bootstrap, ctx.options.seed)
    return {"available": True, "rows": table.to_dict(orient="records")}


def report(value: dict) -> str:
    if not value.get("available"):
        return f"Not available: {value.get('reason')}\n"
    table = pd.DataFrame(value["rows"])
    shown = table[[c for c in SHOWN if c in table.columns]]
    return ("Per cell, expert kind, estimator and s (seed means; intervals: seed-cluster bootstrap 95 %): "
            "routing recall at k = s and its chance, the best ID NMSE over k relative to the oracle's (and "
            "OOD), at the ID argmin the error split (oracle selection with own gates, own selection with "
            "equal gates, share of inputs missing an active skill), the share of the routing gain at the "
            f"best k, and wall milliseconds per training step. All columns in `{TABLE}`.\n\n"
            + markdown_table(shown.round(3)) + "\n")


def tables(ctx: FitContext, value: dict) -> dict[str, pd.DataFrame]:
    return {TABLE: pd.DataFrame(value["rows"])}
