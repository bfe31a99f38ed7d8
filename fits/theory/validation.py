"""Testing the fitted risk bound: held-out prediction, misspecification and a free-form comparison.

Out of sample: leave one level of s, m and h out in turn and predict the held-out curves and k*.
Misspecification: the bound's k* can never exceed ceil(s T / S) (nor lie strictly between 1 and s),
whatever its constants; cells whose measured k* does are counted (`outside_bound`), not fitted around.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from fits.curve import fit_curves
from fits.theory.bound_model import CELL, Design, bound_curves, bound_parts
from fits.theory.calibration import fit_points, resampled_means


def _argmin_k(points: pd.DataFrame, y: np.ndarray) -> pd.Series:
    """Integer argmin over the tested k of each cell (ties -> smaller k)."""
    d = points[[*CELL, "k"]].assign(y=y).sort_values([*CELL, "k"])
    return d.loc[d.groupby(CELL, sort=True)["y"].idxmin()].set_index(CELL)["k"]


def heldout(d: Design, n_starts: int = 12) -> pd.DataFrame:
    """Leave one level of s, m and h out in turn: refit on the rest, predict the held-out cells.

    One row per held-out cell and fold: `rmse_log` of the predicted log-loss curve, measured and predicted
    k*, and two baselines: a constant k* (median measured k* of the training cells, rounded) and the
    rule k* = s r (r = T / S replicas per skill: the oracle's cap, which needs no fit)."""
    pts = d.points
    meas = _argmin_k(pts, pts["y"].to_numpy())
    rows = []
    for factor in ("complexity", "n_train", "width"):
        levels = np.sort(pts[factor].unique())
        if len(levels) < 2:
            continue
        for level in levels:
            held = (pts[factor] == level).to_numpy()
            train_cells = meas[meas.index.get_level_values(factor) != level]
            fit = fit_points(d, np.flatnonzero(~held), 0, 0, n_starts)
            hp = pts[held].reset_index(drop=True)
            pred = bound_curves(hp, fit.params, d.task)["total"].to_numpy()
            kpred = _argmin_k(hp, pred)
            const = float(np.round(np.median(train_cells))) if len(train_cells) else np.nan
            kind = "extrapolation" if level in (levels[0], levels[-1]) else "interpolation"
            for key, g in hp.assign(pred=pred).groupby(CELL, sort=True):
                err = np.log(g["y"].to_numpy()) - np.log(g["pred"].to_numpy())
                km = float(meas.loc[key])
                cell = dict(zip(CELL, key, strict=True))
                rule = cell["complexity"] * cell["n_experts"] / d.task["n_skills"]
                rows.append(cell | {
                    "factor": factor, "level": level, "kind": kind,
                    "rmse_log": float(np.sqrt(np.mean(err**2))),
                    "k_star_measured": km, "k_star_pred": float(kpred.loc[key]), "k_star_constant": const,
                    "within_1": abs(float(kpred.loc[key]) - km) <= 1,
                    "within_1_constant": abs(const - km) <= 1,
                    "k_star_rule": rule, "within_1_rule": abs(rule - km) <= 1,
                })
    return pd.DataFrame(rows)


def heldout_summary(h: pd.DataFrame) -> dict:
    """Pooled and per-factor summaries of `heldout`."""
    if h.empty:
        return {"available": False, "reason": "no factor has 2 or more levels"}
    by = {f: {"rmse_log": float(np.sqrt(np.mean(g["rmse_log"] ** 2))),
              "share_within_1": float(g["within_1"].mean()),
              "share_within_1_constant": float(g["within_1_constant"].mean()),
              "share_within_1_rule": float(g["within_1_rule"].mean()), "n_cells": len(g)}
          for f, g in h.groupby("factor", sort=False)}
    return {"available": True, "rmse_log": float(np.sqrt(np.mean(h["rmse_log"] ** 2))),
            "share_within_1": float(h["within_1"].mean()),
            "share_within_1_constant": float(h["within_1_constant"].mean()),
            "share_within_1_rule": float(h["within_1_rule"].mean()),
            "n_predictions": len(h), "by_factor": by}


def producible_k_star(cells: pd.DataFrame, task: dict) -> list[set[int]]:
    """The integer k* the bound produces in each cell over wide grids of its constants (h0 from 0.01 to
    1000, beta from 0.1 to 8, est_weight from 0 to 10; the floor never moves k*): what it can explain."""
    import theory  # lazily (sympy, ~1.5 s): the fits without the theory (--no-theory) never pay it

    h0 = np.geomspace(1e-2, 1e3, 31)[:, None, None]
    beta = np.array([0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0])[None, :, None]
    lam = np.r_[1e-12, np.geomspace(1e-6, 10.0, 22)][None, None, :]
    out = []
    for r in cells.itertuples(index=False):
        ks = theory.optimal_k(r.complexity, r.n_train, r.width, r.n_experts, h0=h0, beta=beta,
                              est_weight=lam, d=task["d"], n_skills=task["n_skills"],
                              split=task["split"], holdout_frac=task["holdout_frac"])
        out.append({int(v) for v in np.unique(ks)})
    return out


def _cell_matrix(points: pd.DataFrame):
    """(cells frame, (n_cells, K) position of each point, tested ks): to turn per-point vectors into
    per-cell curves (inf where a k is untested)."""
    cells = points[CELL].drop_duplicates().sort_values(CELL).reset_index(drop=True)
    ks = np.sort(points["k"].unique())
    ci = pd.MultiIndex.from_frame(cells).get_indexer(pd.MultiIndex.from_frame(points[CELL]))
    kj = np.searchsorted(ks, points["k"].to_numpy())
    return cells, ci, kj, ks


def _curves(values: np.ndarray, ci, kj, n_cells: int, n_k: int) -> np.ndarray:
    """Per-point values (..., n_points) as per-cell curves (..., n_cells, n_k); inf where absent."""
    out = np.full(values.shape[:-1] + (n_cells, n_k), np.inf)
    out[..., ci, kj] = np.where(np.isfinite(values), values, np.inf)
    return out


def seed_contrasts(d: Design, producible: list[set[int]] | None = None) -> pd.DataFrame:
    """Per cell and seed, the contrasts `outside_bound` tests (positive: the data do what the bound
    cannot): `above_max`, L(k_max) - mean over k > k_max of L(k); `between_1_and_s`, L(1) - mean over
    1 < k < s of L(k) (`vs` = "k=1") and L(s) - that mean (`vs` = "k=s"), where the bound never puts k*
    inside (1, s). Tidy: cell keys, seed, test, vs, contrast."""
    pts = d.points
    cells, ci, kj, ks = _cell_matrix(pts)
    nc, nk = len(cells), len(ks)
    if producible is None:
        producible = producible_k_star(cells, d.task)
    seeds = _curves(d.values.T, ci, kj, nc, nk)  # (n_seeds, n_cells, n_k), inf where absent
    seeds = np.where(np.isfinite(seeds), seeds, np.nan)
    rows = []
    for c in range(nc):
        key = cells.iloc[c].to_dict()
        s, kmax = key["complexity"], max(producible[c])
        j_max, beyond = np.searchsorted(ks, kmax), ks > kmax
        if j_max < nk and ks[j_max] == kmax and beyond.any():
            with np.errstate(invalid="ignore"):
                v = seeds[:, c, j_max] - np.nanmean(seeds[:, c, beyond], axis=1)
            rows += [key | {"seed": sd, "test": "above_max", "vs": "k=k_max", "contrast": x}
                     for sd, x in zip(d.seeds, v, strict=True)]
        mid = (ks > 1) & (ks < s)
        if mid.any() and 1 in ks and s in ks and not any(1 < k < s for k in producible[c]):
            with np.errstate(invalid="ignore"):
                inner = np.nanmean(seeds[:, c, mid], axis=1)
            for vs, j in (("k=1", 0), ("k=s", np.searchsorted(ks, s))):
                rows += [key | {"seed": sd, "test": "between_1_and_s", "vs": vs, "contrast": x}
                         for sd, x in zip(d.seeds, seeds[:, c, j] - inner, strict=True)]
    return pd.DataFrame(rows, columns=[*CELL, "seed", "test", "vs", "contrast"])


def _by_cell(con: pd.DataFrame, test: str, cells: pd.DataFrame):
    sub = con[con["test"] == test]
    groups = {k: g for k, g in sub.groupby(CELL)}
    return [groups.get(tuple(r), sub.iloc[:0]) for r in cells[CELL].itertuples(index=False)]


def _one_sided(g: pd.DataFrame) -> float:
    """One-sided t test over seeds that the mean contrast is positive (NaN with < 2 seeds)."""
    x = g["contrast"].to_numpy(float)
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return np.nan
    if np.ptp(x) == 0:  # identical contrasts in every seed: no spread, the sign decides
        return 0.0 if x[0] > 0 else 1.0
    return float(stats.ttest_1samp(x, 0.0, alternative="greater").pvalue)


def pooled_outside(d: Design, by: tuple[str, ...] = ("complexity",)) -> pd.DataFrame:
    """The contrasts of `seed_contrasts` averaged per seed over the cells of each group of `by` (and
    over the whole arm: `group` = "all"), then one one-sided t test over seeds per group and test: with
    few seeds a single cell has little power, a group of cells more. Under the bound every cell's
    contrast is <= 0 in expectation, so is their mean."""
    con = seed_contrasts(d)
    rows = []
    groups = [("all", con)] + [(f"{'/'.join(by)}={k if len(by) > 1 else k[0]}", g)
                               for k, g in con.groupby(list(by))]
    for name, g in groups:
        for (test, vs), h in g.groupby(["test", "vs"]):
            per_seed = h.groupby("seed")["contrast"].mean()
            rows.append({"group": name, "test": test, "vs": vs, "n_cells": h.groupby(CELL).ngroups,
                         "mean_contrast": float(per_seed.mean()),
                         "p_value": _one_sided(per_seed.to_frame("contrast"))})
        b = [r for r in rows if r["group"] == name and r["test"] == "between_1_and_s"]
        if len(b) == 2:  # inside (1, s) needs both contrasts positive: the test's p is the larger one
            rows.append({"group": name, "test": "between_1_and_s", "vs": "both", "n_cells": b[0]["n_cells"],
                         "mean_contrast": min(r["mean_contrast"] for r in b),
                         "p_value": max(r["p_value"] for r in b)})
    return pd.DataFrame(rows, columns=["group", "test", "vs", "n_cells", "mean_contrast", "p_value"])


def outside_bound(d: Design, params: dict, n_boot: int = 200, seed: int = 0,
                  alpha: float = 0.05) -> pd.DataFrame:
    """Per cell: is the measured curve one the bound cannot produce, whatever its constants?

    `k_star_max_bound` is the largest k* the bound produces (`producible_k_star`); beyond it the bound is
    nondecreasing in k (its approximation term is flat there, its estimation term increasing). One
    pre-specified contrast per cell, a one-sided paired t test over seeds (a seed's runs share data
    across k): `above_max_p` tests that the mean loss over the tested k above k_star_max_bound is lower
    than the loss at k_star_max_bound. Where the bound never puts k* strictly between 1 and s (T >= S,
    out of distribution), it is concave on [1, s], so every loss inside lies above min(L(1), L(s));
    `between_p` tests that the mean loss over 1 < k < s is lower than both (the larger of the two p
    values). `above_max` / `between_1_and_s`: p below `alpha` per cell; `*_holm`: the same with Holm's
    correction over the arm's cells (the count to read: about alpha of the cells pass per cell by
    chance). Also: the measured k* (argmin of the seed
    mean) with its seed-cluster 95 % interval, and the bound's k* at the fitted constants."""
    pts = d.points
    cells, ci, kj, ks = _cell_matrix(pts)
    nc, nk = len(cells), len(ks)
    mean = _curves(pts["y"].to_numpy(), ci, kj, nc, nk)
    meas = ks[np.argmin(mean, axis=1)]
    lo = hi = meas.astype(float)
    yb = resampled_means(d.values, n_boot, seed)
    if len(yb):
        draws = ks[np.argmin(_curves(yb, ci, kj, nc, nk), axis=2)]
        lo, hi = (np.quantile(draws, q, axis=0, method="inverted_cdf") for q in (0.025, 0.975))
    total = bound_curves(pts, params, d.task)["total"].to_numpy()
    fitted = ks[np.argmin(_curves(total, ci, kj, nc, nk), axis=1)]
    producible = producible_k_star(cells, d.task)
    kmax = np.array([max(p) for p in producible])
    con = seed_contrasts(d, producible)
    p_above = [_one_sided(g) for g in _by_cell(con, "above_max", cells)]
    p_between = [max(_one_sided(g[g["vs"] == "k=1"]), _one_sided(g[g["vs"] == "k=s"])) if len(g) else np.nan
                 for g in _by_cell(con, "between_1_and_s", cells)]
    out = cells.copy()
    out["k_star"], out["k_star_ci_low"], out["k_star_ci_high"] = meas.astype(float), lo, hi
    out["k_star_bound"], out["k_star_max_bound"] = fitted.astype(float), kmax
    out["above_max_p"], out["between_p"] = p_above, p_between
    out["above_max"] = out["above_max_p"] < alpha
    out["between_1_and_s"] = out["between_p"] < alpha
    # the same across the arm's cells as one family (Holm): what a reader should count
    for col in ("above_max", "between_1_and_s"):
        pv = out["above_max_p" if col == "above_max" else "between_p"].to_numpy(float)
        ok = np.isfinite(pv)
        flag = np.zeros(len(pv), bool)
        if ok.any():
            flag[ok] = multipletests(pv[ok], alpha=alpha, method="holm")[0]
        out[f"{col}_holm"] = flag
    return out


def gaussian_aic(resid: np.ndarray, n_params: int) -> float:
    """AIC of a Gaussian model of the log residuals (same response for every model compared)."""
    n = len(resid)
    rss = max(float(np.sum(resid**2)), 1e-300)
    return n * math.log(rss / n) + n * (1 + math.log(2 * math.pi)) + 2 * n_params


def free_form_aic(d: Design) -> dict:
    """AIC of fits.curve's free-form curve L = c + a k^-p + b k fitted per cell (4 parameters a cell),
    on the same log seed-mean losses as the bound."""
    resid, n_cells, n_bad = [], 0, 0
    for _, g in d.points.groupby(CELL, sort=True):
        g = g.sort_values("k")
        k, y = g["k"].to_numpy(), g["y"].to_numpy()
        if len(k) < 5:
            continue
        fc = fit_curves(k, g["n_experts"].iloc[0], y[None, :], np.ones((1, len(k))))
        c, a, b = fc["coef"][0]
        pred = c + a * k ** (-fc["p"][0]) + b * k
        n_bad += int((pred <= 0).sum())
        resid.append(np.log(y) - np.log(np.clip(pred, 1e-12, None)))
        n_cells += 1
    if not resid:
        return {"aic": np.nan, "n_params": 0, "n_cells": 0}
    r = np.concatenate(resid)
    return {"aic": gaussian_aic(r, 4 * n_cells), "n_params": 4 * n_cells, "n_cells": n_cells,
            "n_points": len(r), "n_nonpositive_predictions": n_bad}


def estimation_k_share(d: Design) -> float:
    """Median over cells of E(k=1) / E(k=T): the share of the estimation term that does not vary with k
    (why est_weight is nearly collinear with the floor)."""
    first = d.points.groupby(CELL)["k"].transform("min") == d.points["k"]
    last = d.points.groupby(CELL)["k"].transform("max") == d.points["k"]
    _, e = bound_parts(d.points, d.task, 2.0, 1.0)
    lo = pd.Series(e[first.to_numpy()], index=pd.MultiIndex.from_frame(d.points.loc[first, CELL]))
    hi = pd.Series(e[last.to_numpy()], index=pd.MultiIndex.from_frame(d.points.loc[last, CELL]))
    return float(np.median(lo / hi))
