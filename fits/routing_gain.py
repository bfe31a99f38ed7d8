"""The share of the routing gain each row realizes (docs/store.md, "Routing-gain share").

Routing can gain at most the distance from the route-free baseline (the best fixed mix of the true
skills: no routing at all) to the oracle router's best error. For every row of every arm and each test
split, share = (baseline - nmse) / (baseline - oracle_best): 1 reaches the oracle's best k, 0 is no better
than the route-free mix, negative is worse than it. All on one split: the baseline is the row's
route-free NMSE of that split (`route_free_nmse`, `route_free_nmse_ood`) and oracle_best the oracle
arm's smallest test NMSE over k on that split, for the same seed, task settings, complexity, n_train,
width and n_experts. NaN where the store has no such oracle row or no baseline for the split (stores
from before `route_free_nmse_ood` have no OOD baseline), and for diverged rows.
"""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pandas as pd

from fits.data import CELL_KEYS, arm_names
from simulations.arms import reference
from simulations.families.regression.config import TaskConfig

#: split -> (the row's test NMSE, the route-free NMSE of the same split)
SPLITS = {"id": ("test_nmse_id", "route_free_nmse"), "ood": ("test_nmse_ood", "route_free_nmse_ood")}
TASK_SETTINGS = tuple(f.name for f in fields(TaskConfig))
VALUES = ["nmse", "baseline", "oracle_best", "share"]


def match_keys(rows: pd.DataFrame) -> list[str]:
    """What a row shares with the oracle rows it is measured against: seed, the task settings the store
    has, and the cell's factors."""
    return ["seed", *(c for c in TASK_SETTINGS if c in rows.columns), *CELL_KEYS]


def routing_gain_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (store row, split): arm, router, experts, the match keys, k, split and VALUES (see
    the module docstring). Empty (with these columns) for a store without test NMSEs."""
    keys = match_keys(rows)
    ident = ["arm", *(c for c in ("router", "experts") if c in rows.columns)]
    columns = [*ident, *keys, "k", "split", *VALUES]
    rows = rows.assign(arm=arm_names(rows).to_numpy())
    oracle = rows["arm"] == reference().name
    parts = []
    for split, (metric, base) in SPLITS.items():
        if metric not in rows.columns:
            continue
        nmse = rows[metric].astype(float).where(~rows["diverged"].astype(bool))
        part = rows[[*ident, *keys, "k"]].assign(split=split, nmse=nmse.to_numpy())
        part["baseline"] = rows[base].astype(float).to_numpy() if base in rows.columns else np.nan
        best = (part[oracle.to_numpy()].groupby(keys, dropna=False)["nmse"].min()
                .rename("oracle_best").reset_index())
        part = part.merge(best, on=keys, how="left")
        with np.errstate(invalid="ignore", divide="ignore"):
            part["share"] = (part["baseline"] - part["nmse"]) / (part["baseline"] - part["oracle_best"])
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, ignore_index=True)[columns]


def best_share_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per (arm, split, complexity): the share at each cell's best k (the largest seed-mean share over
    k), averaged over the cells (n_train, width, n_experts), with the number of cells that have one."""
    out_cols = ["arm", "split", "complexity", "best_share", "n_cells"]
    t = table[np.isfinite(table["share"])]
    if t.empty:
        return pd.DataFrame(columns=out_cols)
    cell = ["arm", "split", *CELL_KEYS]
    curve = t.groupby([*cell, "k"])["share"].mean().reset_index()
    best = curve.groupby(cell)["share"].max().reset_index()
    out = best.groupby(["arm", "split", "complexity"])["share"].agg(best_share="mean", n_cells="size")
    return out.reset_index()[out_cols]
