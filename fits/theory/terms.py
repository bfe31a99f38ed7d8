"""Each term of the risk bound against the data on its own (the oracle router arm).

* Approximation: the oracle arm's **test** error at the largest m (not train error: these models
  interpolate), against `theory.approximation_bound_value` under the fitted constants (plus the fitted
  floor, the label noise the bound leaves out): the hinge at k = s, the decay in k/s, the width floor.
* Estimation: the excess test error over that approximation level, L(k; m) - L(k; m_max), as learning
  curves in m for each k, against the same difference of the whole calibrated bound and against its
  complexity term est_weight * E(m, k). Read it as the realized excess error against the bound's
  complexity term: local slopes in log m and log k are compared, not levels.

Both return tidy DataFrames; when the store lacks what they need (no `router` column, no oracle arm,
fewer than 4 levels of m) they return an empty frame with the right columns and the reason in
`df.attrs["unavailable"]`, and never raise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fits.theory.bound_model import NMSE, bound_curves, task_arguments
from simulations.arms import reference

MIN_M_LEVELS = 4
#: The router kind whose rows the terms are checked on: the reference arm (routing given, as in the
#: theory's modular student).
ARM = reference().router.name

APPROX_COLUMNS = ["complexity", "width", "n_experts", "n_train", "k", "k_over_s", "region", "measured",
                  "measured_se", "n_seeds", "approximation_bound", "floor", "bound_plus_floor"]
ESTIMATION_COLUMNS = ["complexity", "width", "n_experts", "k", "n_train", "measured_excess",
                      "bound_excess", "complexity_term"]
SLOPE_COLUMNS = ["complexity", "width", "n_experts", "direction", "k", "n_train", "measured_slope",
                 "bound_slope", "term_slope"]
SUMMARY_COLUMNS = ["complexity", "width", "n_experts", "feature", "measured", "bound", "n_points"]


def empty(columns, reason: str) -> pd.DataFrame:
    df = pd.DataFrame(columns=columns)
    df.attrs["unavailable"] = reason
    return df


def oracle_rows(results: pd.DataFrame, metric: str = "test_nmse_id", min_m_levels: int = 1):
    """(rows of the oracle arm without diverged runs, metric column), or (None, reason)."""
    col = NMSE.get(metric, metric)
    if "router" not in results.columns:
        return None, f"needs the {ARM} arm: the results have no `router` column"
    df = results[results["router"].astype(str) == ARM]
    if df.empty:
        return None, f"needs the {ARM} arm: no rows with router == {ARM!r}"
    if col not in df.columns:
        return None, f"metric column {col!r} is not in the results"
    if "diverged" in df.columns:
        df = df[~df["diverged"].fillna(False).astype(bool)]
    df = df[np.isfinite(df[col].to_numpy(float))]
    n_m = df["n_train"].nunique()
    if n_m < min_m_levels:
        return None, f"needs the {ARM} arm with >= {min_m_levels} levels of m (it has {n_m})"
    return df, col


def _seed_means(df: pd.DataFrame, col: str) -> pd.DataFrame:
    keys = ["complexity", "width", "n_experts", "n_train", "k"]
    g = df.groupby(keys)[col]
    out = g.mean().rename("measured").to_frame()
    out["measured_se"] = g.std(ddof=1) / np.sqrt(g.count())
    out["n_seeds"] = g.count()
    return out.reset_index()


def approximation_terms(results: pd.DataFrame, params: dict, metric: str = "test_nmse_id") -> pd.DataFrame:
    """The oracle arm's test error at the largest m, per (s, h, T, k), next to the approximation bound at
    the fitted constants (`params`: h0, beta, est_weight, floor). `region`: "k<=s" (the linear part
    before the hinge), "decay" (s < k < sT/S), "floor" (k >= sT/S, no more replicas)."""
    df, col = oracle_rows(results, metric)
    if df is None:
        return empty(APPROX_COLUMNS, col)
    task = task_arguments(df, col)
    top = df[df["n_train"] == df["n_train"].max()]
    out = _seed_means(top, col)
    b = bound_curves(out, params, task)
    out["k_over_s"] = out["k"] / out["complexity"]
    edge = out["complexity"] * out["n_experts"] / task["n_skills"]
    out["region"] = np.where(out["k"] <= out["complexity"], "k<=s",
                             np.where(out["k"] < edge, "decay", "floor"))
    out["approximation_bound"] = b["approximation"].to_numpy()
    out["floor"] = params["floor"]
    out["bound_plus_floor"] = out["approximation_bound"] + out["floor"]
    return out[APPROX_COLUMNS].reset_index(drop=True)


def _slope(x, y) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    return float(np.polyfit(x[ok], y[ok], 1)[0]) if ok.sum() >= 2 and np.ptp(x[ok]) > 0 else np.nan


def approximation_summary(terms: pd.DataFrame, params: dict) -> pd.DataFrame:
    """Per (s, h, T): the three features of the approximation bound, measured against bound.
    `hinge_slope`: slope of the loss in k on k <= s (bound: -(1 - eps(h))/s); `decay_exponent`: slope of
    log(loss - floor) in log(k/s) on the decay region (bound: -beta where eps is unsaturated);
    `floor_level`: mean loss on k >= sT/S (bound: floor + eps(h T/S))."""
    if terms.empty:
        return empty(SUMMARY_COLUMNS, terms.attrs.get("unavailable", "no data"))
    rows = []
    for (s, h, T), g in terms.groupby(["complexity", "width", "n_experts"]):
        key = {"complexity": s, "width": h, "n_experts": T}
        lin = g[g["region"] == "k<=s"]
        if len(lin) >= 2:
            k = lin["k"].to_numpy()
            rows.append(key | {"feature": "hinge_slope", "measured": _slope(k, lin["measured"].to_numpy()),
                               "bound": _slope(k, lin["approximation_bound"].to_numpy()),
                               "n_points": len(lin)})
        dec = g[(g["k"] >= s) & (g["region"] != "floor")]
        if len(dec) >= 2:
            x = np.log(dec["k_over_s"].to_numpy())
            net = dec["measured"].to_numpy() - params["floor"]
            y = _log_positive(net)
            rows.append(key | {"feature": "decay_exponent", "measured": _slope(x, y),
                               "bound": _slope(x, _log_positive(dec["approximation_bound"].to_numpy())),
                               "n_points": len(dec)})
        flo = g[g["region"] == "floor"]
        if len(flo):
            rows.append(key | {"feature": "floor_level", "measured": float(flo["measured"].mean()),
                               "bound": float(flo["bound_plus_floor"].mean()), "n_points": len(flo)})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def estimation_terms(results: pd.DataFrame, params: dict, metric: str = "test_nmse_id") -> pd.DataFrame:
    """Per (s, h, T, k) and each m below the largest: the measured excess L(k; m) - L(k; m_max) (seed
    means of the oracle arm), the same difference of the calibrated bound (`bound_excess`) and the
    bound's complexity term est_weight * E(m, k) (`complexity_term`)."""
    df, col = oracle_rows(results, metric, MIN_M_LEVELS)
    if df is None:
        return empty(ESTIMATION_COLUMNS, col)
    task = task_arguments(df, col)
    means = _seed_means(df, col)
    b = bound_curves(means, params, task)
    means["total"], means["complexity_term"] = b["total"].to_numpy(), b["estimation"].to_numpy()
    keys = ["complexity", "width", "n_experts", "k"]
    top = means[means["n_train"] == means["n_train"].max()].set_index(keys)
    top = top[["measured", "total"]].add_suffix("_top")
    rest = means[means["n_train"] < means["n_train"].max()].join(top, on=keys)
    rest["measured_excess"] = rest["measured"] - rest["measured_top"]
    rest["bound_excess"] = rest["total"] - rest["total_top"]
    return rest[ESTIMATION_COLUMNS].sort_values(keys + ["n_train"]).reset_index(drop=True)


def estimation_slopes(terms: pd.DataFrame) -> pd.DataFrame:
    """Local slopes of log excess between adjacent levels of m (at each k) and of k (at each m), for the
    measured excess, the bound's excess and its complexity term; `k`/`n_train` give the lower end of
    the step. Non-positive measured excess gives a NaN slope (its log is undefined)."""
    if terms.empty:
        return empty(SLOPE_COLUMNS, terms.attrs.get("unavailable", "no data"))
    rows = []
    cols = ("measured_excess", "bound_excess", "complexity_term")
    for (s, h, T), g in terms.groupby(["complexity", "width", "n_experts"]):
        key = {"complexity": s, "width": h, "n_experts": T}
        for direction, along, fixed in (("m", "n_train", "k"), ("k", "k", "n_train")):
            for f, sub in g.groupby(fixed):
                sub = sub.sort_values(along)
                x = np.log(sub[along].to_numpy(float))
                logs = {c: np.log(np.where(sub[c] > 0, sub[c], np.nan)) for c in cols}
                for i in range(len(sub) - 1):
                    dx = x[i + 1] - x[i]
                    sl = {c: (logs[c][i + 1] - logs[c][i]) / dx for c in cols}
                    loc = {"k": f, "n_train": sub[along].iloc[i]} if direction == "m" else \
                        {"k": sub[along].iloc[i], "n_train": f}
                    rows.append(key | {"direction": direction} | loc | {
                        "measured_slope": sl["measured_excess"], "bound_slope": sl["bound_excess"],
                        "term_slope": sl["complexity_term"]})
    return pd.DataFrame(rows, columns=SLOPE_COLUMNS)


def terms_block(results: pd.DataFrame, params: dict | None, metric: str = "test_nmse_id") -> dict:
    """JSON-ready summary of both term checks (or why they are unavailable)."""
    if params is None:
        return {"available": False, "reason": f"needs the {ARM} arm's fitted constants"}
    approx = approximation_terms(results, params, metric)
    if approx.empty:
        return {"available": False, "reason": approx.attrs["unavailable"]}
    out = {"available": True,
           "approximation": approximation_summary(approx, params).to_dict(orient="records")}
    est = estimation_terms(results, params, metric)
    if est.empty:
        out["estimation"] = {"available": False, "reason": est.attrs["unavailable"]}
    else:
        sl = estimation_slopes(est)
        med = sl.groupby("direction")[["measured_slope", "bound_slope", "term_slope"]].median()
        out["estimation"] = {"available": True, "median_slopes": med.to_dict(orient="index"),
                             "n_nonpositive_excess": int((est["measured_excess"] <= 0).sum()),
                             "n_points": len(est)}
    return out


def _log_positive(v: np.ndarray) -> np.ndarray:
    """log where v > 0, NaN elsewhere (a fitted bound of exactly 0 has no log-slope)."""
    return np.log(np.where(v > 0, v, np.nan))
