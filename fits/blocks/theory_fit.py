"""Block `theory_fit`: the risk bound calibrated per router arm (`fits.theory.analysis`), on the students the
bound describes (the default expert kind: learned experts); writes the bound's curves and its term checks
for the figures (`fits.theory.tables`)."""

from __future__ import annotations

import pandas as pd

from fits.blocks.context import FitContext
from fits.summary import clean
from fits.theory.analysis import theory_fit_block
from fits.theory.report import markdown
from fits.theory.tables import bound_table, terms_table
from simulations.arms import primary

NAME = "theory_fit"
TITLE = "Theory fit: the calibrated risk bound"


def skipped(reason: str) -> dict:
    return {"fitted": False, "reason": reason}


def applies(ctx: FitContext) -> str | None:
    return "--no-theory" if ctx.options.no_theory else None


def run(ctx: FitContext) -> dict:
    store = ctx.store
    learned = primary().experts.name
    modular = store[store["experts"] == learned] if "experts" in store.columns else store
    opts = ctx.options
    return theory_fit_block(modular, opts.metric, opts.theory_bootstrap, opts.seed)


def report(value: dict) -> str:
    return markdown(clean(value))


def summary(value: dict) -> str | None:
    if not value.get("fitted"):
        return None
    rounded = {k: round(v["estimate"], 4) for k, v in value["params"].items()}
    return f"Calibrated risk bound: {rounded}"


def tables(ctx: FitContext, value: dict) -> dict[str, pd.DataFrame]:
    if not value.get("fitted"):
        return {}
    return {"bound_curves.parquet": bound_table(ctx.store, value),
            "theory_terms.parquet": terms_table(ctx.store, value)}
