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
    return None


def run(ctx: FitContext) -> dict:
    opts = ctx.options
    metric = "test_mse_ood" if opts.metric == "ood" else "test_mse_id"
    long = load_k_eval(opts.results) if Path(opts.results).is_dir() else pd.DataFrame()
    return k_eval_block(long, metric, opts.bootstrap, opts.seed)


def report(value: dict) -> str:
    return k_eval_markdown(value)
