"""Block `gate_map`: per arm and s, recall at k = s against chance, the best error against the oracle's,
k* and the error split at it, the share of the routing gain and the cost per step (`fits.gate_map`);
writes `gate_map.parquet` for the figures `gate_map` and `estimator_map`."""

from __future__ import annotations

import pandas as pd

from fits.blocks.context import FitContext
from fits.gate_map import gate_map
from fits.summary import markdown_table

NAME = "gate_map"
TITLE = "Gate map: where each arm composes"
TABLE = "gate_map.parquet"
SHOWN = ("task", "n_train", "arm", "complexity", "recall_at_s", "recall_chance_at_s", "k_star_id", "ratio_id",
         "ratio_id_lo", "ratio_id_hi", "ratio_ood", "nmse_id_at_k_star", "nmse_oracle_selection_id",
         "nmse_equal_gates_id", "misrouted_share_id", "best_share_id", "ms_per_step")


def skipped(reason: str) -> dict:
    return {"available": False, "reason": reason}


def applies(ctx: FitContext) -> str | None:
    if "router" not in ctx.store.columns or "routing_recall" not in ctx.store.columns:
        return "the store has no routing controls"
    return None


def run(ctx: FitContext) -> dict:
    table = gate_map(ctx.store, ctx.options.bootstrap, ctx.options.seed)
    return {"available": True, "rows": table.to_dict(orient="records")}


def report(value: dict) -> str:
    if not value.get("available"):
        return f"Not available: {value.get('reason')}\n"
    table = pd.DataFrame(value["rows"])
    shown = table[[c for c in SHOWN if c in table.columns]]
    return ("Per arm and s (seed means; intervals: seed-cluster bootstrap 95 %): routing recall at k = s "
            "and its permuted-input chance, the ID argmin k*, the best ID and OOD NMSE over k relative to "
            "the oracle's, and at k* the error split: own NMSE, with the oracle's selection and own gate "
            "values, with own selection and equal gates, and the share of inputs missing an active skill; "
            "the share of the routing gain at the best k (ID) and wall milliseconds per training step. "
            f"All columns in `{TABLE}`.\n\n" + markdown_table(shown.round(3)) + "\n")


def tables(ctx: FitContext, value: dict) -> dict[str, pd.DataFrame]:
    return {TABLE: pd.DataFrame(value["rows"])}
