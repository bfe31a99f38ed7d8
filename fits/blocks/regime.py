"""Block `regime`: per routed arm, s and m, routing recall and gate mass at k = s against chance, the
argmin k*, the best error relative to the route-free baseline and recall at k* (`fits.regime`, the gate
map's analysis read at those columns); writes `regime.parquet` for the figure `regime_map`, named after
the store (`python -m fits.regime` stacks a sweep's)."""

from __future__ import annotations

import pandas as pd

from fits.blocks.context import FitContext
from fits.blocks.gate_map import applies  # noqa: F401  (the same stores: those with routing controls)
from fits.regime import COLUMNS, TABLE, regime_table, store_name
from fits.summary import markdown_table

NAME = "regime"
TITLE = "Regime: where the routed arms find the skills"
SHOWN = ("task", "n_train", "arm", "complexity", "n_seeds", "routing_recall_at_s",
         "routing_recall_baseline_at_s", "routing_gate_mass_at_s", "k_star", "best_rel_nmse_id",
         "routing_recall_at_k_star")


def skipped(reason: str) -> dict:
    return {"available": False, "reason": reason}


def run(ctx: FitContext) -> dict:
    variant = store_name(ctx.options.results)
    table = regime_table(ctx.store, variant)
    return {"available": True, "variant": variant, "rows": table.to_dict(orient="records")}


def report(value: dict) -> str:
    if not value.get("available"):
        return f"Not available: {value.get('reason')}\n"
    table = pd.DataFrame(value["rows"], columns=COLUMNS)
    shown = table[[c for c in SHOWN if c in table.columns]]
    return (f"Store `{value['variant']}`, per arm, m and s (seed means, no intervals): routing recall at "
            "k = s and its permuted-input chance, gate mass at k = s, the ID argmin k*, the ID NMSE there "
            "relative to the route-free baseline, and recall at k*. All columns in "
            f"`{TABLE}` (`python -m fits.regime` stacks a sweep's stores).\n\n"
            + markdown_table(shown.round(3)) + "\n")


def tables(ctx: FitContext, value: dict) -> dict[str, pd.DataFrame]:
    return {TABLE: pd.DataFrame(value["rows"], columns=COLUMNS)}
