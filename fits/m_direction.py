"""Which way k moves as the data grow: per level of s and h, the slope of log k on log m and the steps
between neighbouring levels of m (towards s, away from s, unchanged), for each discrete estimand.

The pooled b_m of a law mixes levels that move in opposite directions or not at all; these rows say
where a move comes from (issue: a headline "k moves towards s as m grows" the tables contradicted)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

GROUP = ["complexity", "width", "n_experts"]


def step_direction(a: float, b: float, s: float) -> str:
    """A step of k from a to b as m grows, relative to s: "towards", "away" or "unchanged"."""
    if a == b:
        return "unchanged"
    return "towards" if abs(math.log(b / s)) < abs(math.log(a / s)) else "away"


def direction_in_m(cells: pd.DataFrame, estimands: tuple[str, ...] = ("k_enough", "k_star")) -> list[dict]:
    """One row per estimand and (s, h, T) with at least two levels of m: `slope` (OLS of log k on log m
    over the levels), `towards`, `away`, `unchanged` (counts of steps), `n_levels`."""
    rows = []
    for est in estimands:
        for key, g in cells.groupby(GROUP, sort=True):
            g = g.sort_values("n_train")
            ks = g[est].to_numpy(float)
            if len(g) < 2 or not np.isfinite(ks).all():
                continue
            steps = [step_direction(a, b, key[0]) for a, b in zip(ks[:-1], ks[1:], strict=True)]
            slope = float(np.polyfit(np.log(g["n_train"].to_numpy(float)), np.log(ks), 1)[0])
            rows.append(dict(zip(GROUP, key, strict=True)) | {
                "estimand": est, "n_levels": len(g), "slope": slope,
                **{d: steps.count(d) for d in ("towards", "away", "unchanged")}})
    return rows
