"""Seed statistics shared by the figures: mean and t-based confidence interval per group."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

LEVEL = 0.95


def seed_summary(df: pd.DataFrame, by: list[str], value: str, level: float = LEVEL) -> pd.DataFrame:
    """Per group of `by`: mean of `value` over seeds with a Student-t `level` CI.

    NaN values (diverged runs) are left out of the mean and counted in `n_nan`; a group with fewer
    than two finite values gets a NaN interval rather than a made-up one.
    """
    grouped = df.groupby(by, sort=True)[value]
    out = grouped.agg(mean="mean", sd="std", n="count", n_total="size").reset_index()
    out["n_nan"] = out.pop("n_total") - out["n"]
    n = out["n"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        half = stats.t.ppf(0.5 + level / 2, n - 1) * out["sd"].to_numpy() / np.sqrt(n)
    half = np.where(n >= 2, half, np.nan)
    out["ci_lo"] = out["mean"] - half
    out["ci_hi"] = out["mean"] + half
    return out.drop(columns="sd")
