"""Prediction against measurement: the calibrated bound's k* written before the grid
(docs/reference/predictions/, fits.predictions) beside the measured k* of the same cells.

Per source of the bound's constants and per measured cell: the predicted k* with its interval, the
measured argmin and k enough with their seed-cluster bootstrap intervals, and whether each lies in the
other's interval. A cell is matched on (s, m, h, T) at fixed width, or (s, m, k h, T) at fixed active
width (a store with `active_width`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from fits.cells import CellFits

COLUMNS = ["source", "arm", "fixed", "complexity", "n_train", "width", "k_star_pred", "k_star_lo",
           "k_star_hi", "k_star", "k_star_ci_low", "k_star_ci_high", "k_enough", "k_enough_ci_low",
           "k_enough_ci_high", "pred_in_measured_ci", "measured_in_pred_interval"]


def read_predictions(path: str | Path) -> tuple[pd.DataFrame, int]:
    """(the predicted cells, the number of experts they were made for)."""
    path = Path(path)
    design = json.loads((path / "provenance.json").read_text())["design"]
    return pd.read_csv(path / "cells.csv"), int(design["n_experts"])


def compare(cf: CellFits, predicted: pd.DataFrame, n_experts: int, fixed: str) -> pd.DataFrame:
    """One row per source and measured cell that the predictions cover (see module doc)."""
    cells = cf.cells[cf.cells["n_experts"] == n_experts]
    pred = predicted[predicted["fixed"] == fixed].rename(columns={"width_or_active_width": "width"})
    keys = ["complexity", "n_train", "width"]
    merged = cells.astype({k: float for k in keys}).merge(pred.astype({k: float for k in keys}), on=keys)
    if merged.empty:
        return pd.DataFrame(columns=COLUMNS)
    lo, hi = (np.array([ci[i] for ci in merged["k_star_ci"]], float) for i in (0, 1))
    elo, ehi = (np.array([ci[i] for ci in merged["k_enough_ci"]], float) for i in (0, 1))
    out = merged.assign(k_star_ci_low=lo, k_star_ci_high=hi, k_enough_ci_low=elo, k_enough_ci_high=ehi)
    out["pred_in_measured_ci"] = (out["k_star_pred"] >= lo) & (out["k_star_pred"] <= hi)
    out["measured_in_pred_interval"] = out["k_star"].between(out["k_star_lo"], out["k_star_hi"])
    return out[COLUMNS].sort_values(["source", *keys]).reset_index(drop=True)


def agreement(table: pd.DataFrame) -> pd.DataFrame:
    """Per source: cells, and the shares of cells where each lies in the other's interval."""
    return table.groupby("source").agg(
        cells=("k_star", "size"), pred_in_measured_ci=("pred_in_measured_ci", "mean"),
        measured_in_pred_interval=("measured_in_pred_interval", "mean")).reset_index()
