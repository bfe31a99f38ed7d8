"""The tables the risk-bound figures draw, written by the fits beside optimal_k.json so that the figures
read them instead of evaluating the bound: `bound_curves.parquet` (the calibrated bound's parts at every
(cell, k) of each fitted router arm) and `theory_terms.parquet` (each term against the reference arm,
`fits.theory.terms`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fits.theory import terms as tt
from fits.theory.bound_model import CELL, bound_curves

BOUND_COLUMNS = ["router", *CELL, "k", "approximation", "estimation", "floor", "total"]
TERMS_COLUMNS = ["panel", "status", "complexity", "width", "n_experts", "n_train", "k", "measured", "bound",
                 "term"]


def fitted_arms(block: dict) -> dict:
    """{router arm (None without arms): its analysis} for the arms of a `theory_fit` block that were
    fitted."""
    arms = block.get("by_router") or {block.get("router"): block}
    return {arm: b for arm, b in arms.items() if b.get("fitted")}


def _params(b: dict) -> dict:
    return {n: v["estimate"] for n, v in b["params"].items()}


def bound_table(store: pd.DataFrame, block: dict) -> pd.DataFrame:
    """The calibrated bound's parts (`fits.theory.bound_model.bound_curves`) at every (cell, k) of each fitted
    arm's rows that did not diverge; `router` is "all" for a store without arms."""
    frames = [pd.DataFrame(columns=BOUND_COLUMNS)]
    for arm, b in fitted_arms(block).items():
        rows = store if arm is None else store[store["router"].astype(str) == arm]
        rows = rows[~rows["diverged"].astype(bool)]
        points = rows[[*CELL, "k"]].drop_duplicates().sort_values([*CELL, "k"]).reset_index(drop=True)
        frames.append(bound_curves(points, _params(b), b["task"]).assign(router=arm or "all"))
    return pd.concat(frames[1:] or frames, ignore_index=True)[BOUND_COLUMNS]


def terms_table(store: pd.DataFrame, block: dict) -> pd.DataFrame:
    """Both term checks against the reference arm in one tidy table: `panel` approximation (measured:
    test error at the largest m; bound: approximation bound + floor) or estimation (measured: realized
    excess over the largest m; bound: the bound's excess; term: its complexity term); a panel without
    data is one row whose `status` says why."""
    given = fitted_arms(block).get(tt.ARM)
    if given is None:
        reason = f"needs the {tt.ARM} arm" + ("" if "router" in store.columns
                                              else ": the results have no router column")
        approx, est = tt.empty(tt.APPROX_COLUMNS, reason), tt.empty(tt.ESTIMATION_COLUMNS, reason)
    else:
        approx = tt.approximation_terms(store, _params(given), given["metric"])
        est = tt.estimation_terms(store, _params(given), given["metric"])
    parts = []
    for panel, df, names in (("approximation", approx, {"bound_plus_floor": "bound"}),
                             ("estimation", est, {"measured_excess": "measured", "bound_excess": "bound",
                                                  "complexity_term": "term"})):
        if df.empty:
            parts.append(pd.DataFrame([{"panel": panel, "status": df.attrs.get("unavailable", "no data")}]))
        else:
            parts.append(df.rename(columns=names).assign(panel=panel, status="ok"))
    out = pd.concat(parts, ignore_index=True)
    for c in TERMS_COLUMNS:
        if c not in out.columns:
            out[c] = np.nan
    return out[TERMS_COLUMNS]
