"""The law of k* on the grids the k* figures draw, written by the fits as `law_band.parquet` so that the
figures read the band instead of computing it.

A panel shows k* along one law factor (x), one series per level of another (series), the third (held)
at one level and T at the most common value among those cells; each series level's curve is N_CURVE
points log-spaced over the x levels tested there. Every such curve of the primary arm's cells is
written: each ordered (x, series) pair, each held level, each series level.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from fits.data import LAW_FACTORS
from fits.law import law_band

N_CURVE = 60  # points on each law curve
COLUMNS = ["x", "series", "held", "held_level", "series_level", "n_experts", "point", "x_value", "k_star",
           "ci_lo", "ci_hi"]


def law_band_table(cells: pd.DataFrame, law: dict | None) -> pd.DataFrame:
    """The law's k* and 95 % band (`fits.law.law_band`, from the law block of optimal_k.json) on every
    curve a k* panel of `cells` (the per-cell fits) can draw; no rows when no law was fitted."""
    parts = []
    for x, series in itertools.permutations(LAW_FACTORS, 2) if law is not None else ():
        held = next(f for f in LAW_FACTORS if f not in (x, series))
        for v in np.sort(cells[held].unique()):
            at = cells[cells[held] == v]
            t = int(at["n_experts"].mode().max())
            at = at[at["n_experts"] == t]
            for level in np.sort(at[series].unique()):
                xs = np.sort(at.loc[at[series] == level, x].unique())
                grid = pd.DataFrame({x: np.geomspace(xs.min(), xs.max(), N_CURVE) if len(xs) > 1 else xs})
                grid[series] = level
                grid[held] = v
                grid["n_experts"] = t
                band = law_band(law, grid)
                parts.append(pd.DataFrame({
                    "x": x, "series": series, "held": held, "held_level": float(v),
                    "series_level": float(level), "n_experts": t, "point": np.arange(len(band)),
                    "x_value": band[x].to_numpy(float), "k_star": band["k_star"].to_numpy(),
                    "ci_lo": band["ci_lo"].to_numpy(), "ci_hi": band["ci_hi"].to_numpy()}))
    if not parts:
        return pd.DataFrame(columns=COLUMNS).astype({c: float for c in COLUMNS[3:]})
    return pd.concat(parts, ignore_index=True)[COLUMNS]
