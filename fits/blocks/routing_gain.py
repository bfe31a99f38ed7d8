"""Block `routing_gain`: the share of the routing gain every row realizes, on each split
(`fits.routing_gain`); writes `routing_gain.parquet` for the figure of the same name."""

from __future__ import annotations

import pandas as pd

from fits.blocks.context import FitContext
from fits.routing_gain import best_share_summary, routing_gain_table
from fits.summary import markdown_table

NAME = "routing_gain"
TITLE = "Share of the routing gain"
TABLE = "routing_gain.parquet"


def skipped(reason: str) -> dict:
    return {"available": False, "reason": reason}


def applies(ctx: FitContext) -> str | None:
    if "router" not in ctx.store.columns:
        return "the store has no routing controls"
    if "route_free_nmse" not in ctx.store.columns:
        return "the store has no route-free baseline (route_free_nmse)"
    return None


def run(ctx: FitContext) -> dict:
    table = routing_gain_table(ctx.store)
    has_oracle = bool(table["oracle_best"].notna().any())
    summary = best_share_summary(table)
    return {"available": True, "has_oracle": has_oracle,
            "rule": "(route-free NMSE - NMSE) / (route-free NMSE - oracle's best NMSE over k), per seed, "
                    "task, complexity, n_train, width and n_experts, each split with its own baseline",
            "best_share": summary.to_dict(orient="records")}


def report(value: dict) -> str:
    if not value.get("available"):
        return f"Not available: {value.get('reason')}\n"
    if not value["has_oracle"]:
        return "No oracle rows in the store: the shares are NaN.\n"
    table = pd.DataFrame(value["best_share"])
    return (f"Share of the routing gain realized: {value['rule']}; 1 is the oracle's best k, 0 the "
            "route-free mix. Per arm, split and s: the share at each cell's best k (seed mean), averaged "
            f"over cells. All rows in `{TABLE}`.\n\n" + markdown_table(table.round(3)) + "\n")


def tables(ctx: FitContext, value: dict) -> dict[str, pd.DataFrame]:
    return {TABLE: routing_gain_table(ctx.store)}
