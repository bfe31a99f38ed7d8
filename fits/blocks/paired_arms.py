"""Block `paired_arms`: every arm's best error against the primary arm's, paired by seed in each cell
(`fits.paired_arms`); writes `paired_arms.parquet`."""

from __future__ import annotations

import pandas as pd

from fits.blocks.context import FitContext
from fits.data import metric_column
from fits.paired_arms import COLUMNS, paired_arm_tests
from fits.summary import markdown_table

NAME = "paired_arms"
TITLE = "Paired tests between arms"
TABLE = "paired_arms.parquet"


def skipped(reason: str) -> dict:
    return {"available": False, "reason": reason}


def applies(ctx: FitContext) -> str | None:
    return None if len(ctx.arms) > 1 else "the store has one routed arm"


def run(ctx: FitContext) -> dict:
    return {"available": True, "reference": ctx.primary,
            "rule": "per cell and seed, each arm's error at its own seed-mean argmin k; paired t-test over "
                    "seeds of (arm - reference), 95 % t interval, and the Wilcoxon signed-rank p-value",
            "tests": paired_arm_tests(ctx.arms, metric_column(ctx.options.metric, ctx.family.name),
                                      ctx.primary).to_dict(orient="records")}


def report(value: dict) -> str:
    if not value.get("available"):
        return f"Not available: {value.get('reason')}\n"
    table = pd.DataFrame(value["tests"])
    return (f"Against `{value['reference']}`: {value['rule']}. A negative difference: the arm's best error "
            f"is lower.\n\n" + markdown_table(table.drop(columns="reference").round(4)) + "\n")


def tables(ctx: FitContext, value: dict) -> dict[str, pd.DataFrame]:
    return {TABLE: pd.DataFrame(value["tests"], columns=COLUMNS)}
