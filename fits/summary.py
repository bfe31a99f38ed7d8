"""Formatting shared by the fits' outputs: JSON-ready values, the law as optimal_k.json has it, and the
number and table formats of report.md."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from fits.law import LawFit


def clean(x):
    """JSON-ready: numpy scalars to Python, NaN to null, tuples to lists."""
    if isinstance(x, dict):
        return {str(k): clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple | np.ndarray):
        return [clean(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def law_summary(law: LawFit) -> dict:
    """The law as the JSON contract has it (exponents with estimate, se, ci95) plus the extras."""
    exps = {}
    for r in law.exponents.itertuples():
        exps[r.factor] = {
            "estimate": r.estimate,
            "se": r.se,
            "ci95": [r.ci_low, r.ci_high],
            "ci95_bootstrap": [r.boot_ci_low, r.boot_ci_high],
            "n_levels": r.n_levels,
            "fitted": r.factor in law.factors,
        }
    return {
        "exponents": exps,
        "intercept": law.intercept,
        # what a consumer needs to draw the law's confidence band without refitting (fits.law.law_band)
        "params": law.result.params.to_dict(),
        "cov_params": law.result.cov_params().to_numpy().tolist(),
        "use_t": bool(law.result.use_t),
        "df_resid": float(law.result.df_resid),
        "r2": law.r2,
        "aic": law.aic,
        "bic": law.bic,
        "n_cells": law.n_cells,
        "method": law.method,
        "k_source": law.k_source,
        "alternatives": law.alternatives.to_dict(orient="records"),
        "leave_one_level_out": law.lolo.to_dict(orient="records"),
        "diagnostics": law.diagnostics,
        "notes": law.notes,
    }


def fmt(x, nd=2):
    """A number with `nd` decimals; "-" for a missing or non-finite one."""
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{nd}f}"


def ci_text(ci, nd=2):
    """An interval as "[lo, hi]"; "-" unless both ends are finite."""
    return "-" if not all(math.isfinite(v) for v in ci) else f"[{fmt(ci[0], nd)}, {fmt(ci[1], nd)}]"


def k_step_text(ks) -> str:
    """One step of a k grid in log k, as "x" or "x-y" (smallest to largest adjacent step)."""
    logs = np.diff(np.log(np.unique(np.asarray(ks, dtype=float))))
    if len(logs) == 0:
        return "-"
    lo, hi = fmt(logs.min()), fmt(logs.max())
    return lo if lo == hi else f"{lo}-{hi}"


def interval_text(estimate: float, ci, ks=None, nd=2) -> str:
    """An interval as ci_text writes it, or, where it has zero width or the estimate sits at one of its
    ends (a seed bootstrap of a discrete estimand on a coarse k grid), "not resolvable at this grid"
    with one k step of `ks` in log k: the interval cannot say how uncertain the estimate is."""
    lo, hi = ci
    if all(math.isfinite(v) for v in (estimate, lo, hi)) and (
            math.isclose(lo, hi, abs_tol=1e-9) or math.isclose(estimate, lo, abs_tol=1e-9)
            or math.isclose(estimate, hi, abs_tol=1e-9)):
        step = "" if ks is None else f" (one k step = {k_step_text(ks)} in log k)"
        return f"not resolvable at this grid{step}"
    return ci_text(ci, nd)


def markdown_table(df: pd.DataFrame) -> str:
    """A DataFrame as a Markdown table, values as str() writes them."""
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)
