"""Block `k_eval`: inference-time k from the store's k_eval table (`fits.k_eval`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fits.blocks.context import FitContext
from fits.k_eval import k_eval_block, k_eval_markdown
from simulations.results import load_k_eval

NAME = "k_eval"
TITLE = "Inference-time k"


def skipped(reason: str) -> dict:
    return {"available": False, "reason": reason}


def applies(ctx: FitContext) -> str | None:
    if ctx.options.metric not in ctx.family.k_eval_metrics:
        return (f"inference-time k has no {ctx.options.metric!r} metric for {ctx.family.name} stores "
                f"(one of {', '.join(ctx.family.k_eval_metrics)})")
    return None


def run(ctx: FitContext) -> dict:
    """The family's k_eval table (mapped onto the generic table as the rows are: SRAVEN error = 1 -
    accuracy at k_eval) and its error column for the run's --metric."""
    opts, fam = ctx.options, ctx.family
    metric = fam.k_eval_metrics[opts.metric]
    long = load_k_eval(opts.results) if Path(opts.results).is_dir() else pd.DataFrame()
    if not long.empty:
        long = opts.select(long)
    if fam.to_generic is not None and not long.empty:
        long = fam.to_generic(long)
    return k_eval_block(long, metric, opts.bootstrap, opts.seed)


def report(value: dict) -> str:
    return k_eval_markdown(value)
