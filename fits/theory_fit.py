"""The risk bound calibrated to the data: fit its free constants, say what the fit cannot pin down, and
test it out of sample.

Model (the toolkit's bound, `theory.risk_bound_value`, plus an additive floor for label noise, which the
bound leaves out):

    L(k; s, m, h, T) = floor + A(k; s, h, T; h0, beta) + est_weight * E(m, T, k, d, h)

A is our approximation bound (`theory.approximation_bound_value`), E P2's Theorem 1 with our R_m and d_N
(`theory.instantiated_estimation_bound`, [0, 1]-loss units; est_weight converts and absorbs looseness).
E does not depend on the constants, so it is computed once. The fit is `fits.surface.fit_surface`:
Huber loss on log residuals of seed-mean losses, multi-start L-BFGS-B over log constants, and CIs from
a seed-cluster bootstrap (the same seeds drawn for every point, as in `fits.cells`).

What the fit cannot identify is reported, not hidden: the bootstrap correlation of the log constants,
profiles of the objective for each constant, and an `identified` flag per constant. Out of sample:
leave one level of s, m and h out in turn and predict the held-out curves and k*. Misspecification:
the bound's k* can never exceed ceil(s T / S) (nor lie strictly between 1 and s), whatever its
constants; cells whose measured k* does are counted (`outside_bound`), not fitted around.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from fits.cells import seed_resample_counts
from fits.curve import fit_curves
from fits.surface import SurfaceFit, SurfaceModel, fit_surface

#: The router arms fitted separately when the store has a `router` column; other values are ignored.
ROUTER_ARMS = ("learned", "oracle")
#: The fitted constants, in the order of the raw parameter vector (each fitted as its log).
CONSTANTS = ("h0", "beta", "est_weight", "floor")
#: `--metric` choice of `fits.optimal_k` -> normalized column (the bound is in units of Var y).
NMSE = {"ood": "test_nmse_ood", "id": "test_nmse_id", "train": "train_nmse"}
CELL = ["complexity", "n_train", "width", "n_experts"]
FORM = "L = floor + A(k; s, h, T | h0, beta) + est_weight * E_P2(m, T, k, d, h)"

_BOUNDS = {
    "h0": (1e-3, 1e4),
    "beta": (0.05, 8.0),
    "est_weight": (1e-8, 1e3),
    "floor": (1e-6, 10.0),
}
_GRID = {
    "h0": np.log([0.5, 2.0, 8.0, 32.0]),
    "beta": np.log([0.5, 1.0, 2.0]),
    "est_weight": np.log([1e-3, 1e-2, 1e-1]),
    "floor": np.log([0.01, 0.1]),
}
#: deviance (Laplace approximation of the L1-like Huber objective) at the 95 % level for one constant
PROFILE_CUT = stats.chi2.ppf(0.95, 1)
#: a constant whose 95 % bootstrap interval spans more than this factor counts as not pinned down
WIDE_FACTOR = 10.0
#: bootstrap correlation of log constants above which two constants are reported as collinear
COLLINEAR = 0.9


class TheoryFitError(ValueError):
    """The data cannot support the fit (too few points, no usable rows); the message says why."""


@dataclass
class Design:
    """The points of one fit: `points` (one row per cell and k, with the seed mean `y`), `values`
    (n_points, n_seeds) per-seed losses (NaN where missing), the theory's task arguments."""

    points: pd.DataFrame
    values: np.ndarray
    seeds: np.ndarray
    task: dict
    metric: str
    notes: list[str] = field(default_factory=list)


def metric_column(results: pd.DataFrame, metric: str) -> str:
    """The normalized loss column for `metric`: a column name, or a `fits.optimal_k` choice."""
    col = NMSE.get(metric, metric)
    if col not in results.columns:
        allowed = ", ".join(sorted(set(NMSE) | set(NMSE.values())))
        raise TheoryFitError(f"metric: column {col!r} is not in the results (allowed: {allowed})")
    return col


def router_arms(results: pd.DataFrame) -> list[str]:
    """The router arms present (in ROUTER_ARMS order); empty when the store has no `router` column."""
    if "router" not in results.columns:
        return []
    present = set(results["router"].dropna().astype(str))
    return [a for a in ROUTER_ARMS if a in present]


def task_arguments(results: pd.DataFrame, metric: str) -> dict:
    """d, n_skills, holdout_frac read off the results (single-valued) and split from the metric."""
    kw = {"split": "ood" if "ood" in metric else "id", "d": 8, "n_skills": 8, "holdout_frac": 0.25}
    for col, name, cast in (("d_in", "d", int), ("n_skills", "n_skills", int),
                            ("holdout_frac", "holdout_frac", float)):
        if col in results.columns:
            vals = results[col].dropna().unique()
            if len(vals) > 1:
                raise TheoryFitError(f"{col}: the bound needs one value per fit, found {sorted(vals)}")
            if len(vals):
                kw[name] = cast(vals[0])
    return kw


def design(results: pd.DataFrame, metric: str = "test_nmse_id", router: str | None = None) -> Design:
    """Seed-mean losses per (cell, k) of one router arm (all rows when `router` is None)."""
    col = metric_column(results, metric)
    df = results
    notes = []
    if router is not None:
        df = df[df["router"].astype(str) == router]
    if "diverged" in df.columns:
        n_div = int(df["diverged"].fillna(False).astype(bool).sum())
        df = df[~df["diverged"].fillna(False).astype(bool)]
        if n_div:
            notes.append(f"{n_div} diverged row(s) excluded")
    df = df[np.isfinite(df[col].to_numpy(float)) & (df[col].to_numpy(float) > 0)]
    if df.empty:
        raise TheoryFitError(f"no usable rows for {col}" + (f" in router arm {router!r}" if router else ""))
    task = task_arguments(df, col)
    if df["complexity"].max() > task["n_skills"]:
        raise TheoryFitError("complexity: the bound needs s <= n_skills in every row")
    wide = df.pivot_table(index=[*CELL, "k"], columns="seed", values=col, aggfunc="mean")
    values = wide.to_numpy(float)
    points = wide.index.to_frame(index=False).astype(float)
    points["y"] = np.nanmean(values, axis=1)
    points["n_seeds"] = np.isfinite(values).sum(axis=1)
    return Design(points, values, wide.columns.to_numpy(), task, col, notes)


def _bound_parts(points: pd.DataFrame, task: dict, h0, beta):
    """(A, E): the approximation bound at (h0, beta) and P2's instantiated bound (units of [0, 1] loss)."""
    import theory

    k, s, m, h, T = (points[c].to_numpy(float) for c in ("k", "complexity", "n_train", "width", "n_experts"))
    a = theory.approximation_bound_value(k, s, h, T, n_skills=task["n_skills"], h0=h0, beta=beta,
                                         split=task["split"], holdout_frac=task["holdout_frac"])
    e = theory.instantiated_estimation_bound(m, T, k, task["d"], h)
    return np.asarray(a, float), np.asarray(e, float)


def bound_curves(points: pd.DataFrame, params: dict, task: dict) -> pd.DataFrame:
    """The calibrated bound's parts at `points` (columns complexity, n_train, width, n_experts, k):
    `approximation` (A), `estimation` (est_weight * E), `floor` and `total` = their sum."""
    a, e = _bound_parts(points, task, params["h0"], params["beta"])
    out = points[[*CELL, "k"]].copy()
    out["approximation"], out["estimation"] = a, params["est_weight"] * e
    out["floor"] = params["floor"]
    out["total"] = out["floor"] + out["approximation"] + out["estimation"]
    return out


class _Approximation:
    """A(k; s, h, T | h0, beta) and its gradient in (log h0, log beta) at fixed points, in numpy.

    The same function as `theory.approximation_bound_value` (a test checks it), with the widths each
    point's eps is taken at precomputed, so that one evaluation inside the optimizer costs a few vector
    operations instead of a lambdified sympy call with input checks."""

    def __init__(self, points: pd.DataFrame, task: dict):
        from theory.approximation import n_train_combos

        k, s, h, T = (points[c].to_numpy(float) for c in ("k", "complexity", "width", "n_experts"))
        S = float(task["n_skills"])
        self.kappa = np.minimum(np.minimum(1.0, k / s), T / S)
        self.width_mod = np.maximum(1.0, np.minimum(k / s, T / S)) * h
        self.memo = np.zeros(len(k), bool)
        self.width_memo = np.ones(len(k))
        if task["split"] == "id":
            nc = n_train_combos(s, S, task["holdout_frac"])
            self.memo = nc <= T
            reps = np.minimum(k, np.maximum(1.0, np.floor(T / nc)))
            self.width_memo = reps * h / s

    @staticmethod
    def _eps(h0, beta, width):
        ratio = h0 / width
        raw = ratio**beta
        sat = raw >= 1.0
        eps = np.where(sat, 1.0, raw)
        d_h0 = np.where(sat, 0.0, beta * raw)
        d_beta = np.where(sat, 0.0, beta * np.log(ratio) * raw)
        return eps, d_h0, d_beta

    def __call__(self, h0: float, beta: float):
        """(A, dA/dlog h0, dA/dlog beta)."""
        e, dh, db = self._eps(h0, beta, self.width_mod)
        a, ja, jb = 1.0 - self.kappa * (1.0 - e), self.kappa * dh, self.kappa * db
        if self.memo.any():
            em, dhm, dbm = self._eps(h0, beta, self.width_memo)
            use = self.memo & (em < a)
            a, ja, jb = np.where(use, em, a), np.where(use, dhm, ja), np.where(use, dbm, jb)
        return a, ja, jb


def _model(points: pd.DataFrame, task: dict) -> SurfaceModel:
    """A SurfaceModel over point indices (X[:, 0]) with theta = log constants."""
    _, est = _bound_parts(points, task, 2.0, 1.0)
    approx = _Approximation(points, task)

    def predict(theta, X):
        idx = X[:, 0].astype(int)
        h0, beta, lam, floor = np.exp(theta)
        a, ja, jb = (v[idx] for v in approx(h0, beta))
        e = est[idx]
        total = floor + a + lam * e
        jac = np.stack([ja, jb, lam * e, np.full_like(e, floor)], axis=1)
        return np.log(total), jac / total[:, None]

    return SurfaceModel(CONSTANTS, predict, _GRID,
                        lambda th: {n: float(math.exp(v)) for n, v in zip(CONSTANTS, th, strict=True)})


def _log_bounds():
    return [(math.log(lo), math.log(hi)) for lo, hi in (_BOUNDS[n] for n in CONSTANTS)]


def resampled_means(values: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_points) seed-mean losses of seed-cluster resamples (same seeds for every point)."""
    if n_boot == 0 or values.shape[1] < 2:
        return np.empty((0, len(values)))
    counts = seed_resample_counts(values.shape[1], n_boot, np.random.default_rng(seed))
    has = np.isfinite(values)
    num = counts @ np.where(has, values, 0.0).T
    den = counts @ has.T.astype(float)
    return np.divide(num, den, out=np.full_like(num, np.nan), where=den > 0)


def _fit(d: Design, idx: np.ndarray, n_boot: int, seed: int, n_starts: int = 12,
         y_boot: np.ndarray | None = None) -> SurfaceFit:
    pts = d.points.iloc[idx].reset_index(drop=True)
    model = _model(pts, d.task)
    X = np.arange(len(pts), dtype=float)[:, None]
    return fit_surface(model, X, pts["y"].to_numpy(), n_starts=n_starts, n_boot=n_boot, seed=seed,
                       bounds=_log_bounds(), y_boot=y_boot)


def fit_risk_bound(results: pd.DataFrame, metric: str = "test_nmse_id", n_boot: int = 100, seed: int = 0,
                   router: str | None = None, n_starts: int = 12) -> SurfaceFit:
    """Fit h0, beta, est_weight and floor of the risk bound to seed-mean loss curves L(k; s, m, h, T).

    `.params` and `.ci` (95 %, seed-cluster bootstrap with `n_boot` resamples) use the keys of
    CONSTANTS. `router` selects one arm of a store with a `router` column.
    """
    d = design(results, metric, router)
    return _fit_design(d, n_boot, seed, n_starts)


def _fit_design(d: Design, n_boot: int, seed: int, n_starts: int = 12) -> SurfaceFit:
    if len(d.points) <= len(CONSTANTS):
        raise TheoryFitError(f"{len(d.points)} (cell, k) points: too few for {len(CONSTANTS)} constants")
    yb = resampled_means(d.values, n_boot, seed)
    return _fit(d, np.arange(len(d.points)), n_boot, seed, n_starts, y_boot=yb if n_boot else None)


# ---- identifiability ------------------------------------------------------------------------------

def profiles(d: Design, fit: SurfaceFit, span: float = 3.0, n: int = 7) -> pd.DataFrame:
    """Profile of the objective for each constant: fixed on a grid of log values (best +- offsets from
    0.01 to `span`, `n` each side, log-spaced), the others refitted. `deviance` = 2 (f - f_best) / b
    with b the mean |log residual| at the best fit (the
    Huber objective is nearly L1, so a Laplace likelihood); below PROFILE_CUT is inside a 95 % interval."""
    pts = d.points
    model = _model(pts, d.task)
    X = np.arange(len(pts), dtype=float)[:, None]
    y = pts["y"].to_numpy()
    b = max(fit.objective / len(pts), 1e-12)
    rows = []
    bounds = _log_bounds()
    for j, name in enumerate(CONSTANTS):
        lo, hi = bounds[j]
        offsets = np.geomspace(0.01, span, n)
        for v in np.unique(np.clip(fit.theta[j] + np.r_[-offsets[::-1], 0.0, offsets], lo, hi)):
            grid = {c: (float(fit.theta[i]),) for i, c in enumerate(CONSTANTS)} | {name: (float(v),)}
            fixed = [(float(v), float(v)) if i == j else bd for i, bd in enumerate(bounds)]
            f = fit_surface(SurfaceModel(CONSTANTS, model.predict, grid, model.report), X, y, n_boot=0,
                            bounds=fixed)
            rows.append({"constant": name, "value": math.exp(v), "objective": f.objective,
                         "deviance": 2 * (f.objective - fit.objective) / b})
    out = pd.DataFrame(rows)
    out["deviance"] = out["deviance"].clip(lower=0.0)
    return out


def identifiability(fit: SurfaceFit, prof: pd.DataFrame) -> pd.DataFrame:
    """One row per constant: bootstrap CI, profile interval (NaN end where it stays open within the
    profiled range), collinear partners, whether the estimate sits on the edge of its search range, and
    `identified` (closed profile, a CI within WIDE_FACTOR, not on the edge)."""
    corr = boot_correlation(fit)
    rows = []
    for name in CONSTANTS:
        p = prof[prof["constant"] == name].sort_values("value")
        dev, vals = p["deviance"].to_numpy(), p["value"].to_numpy()
        inside = dev <= PROFILE_CUT
        open_lo, open_hi = bool(inside[0]), bool(inside[-1])
        best = int(np.argmin(dev))
        lo, hi = fit.ci.get(name, (np.nan, np.nan))
        # without a bootstrap (n_boot = 0) there is no CI: the profile and the edge decide alone
        wide = bool(np.isfinite(lo) and np.isfinite(hi) and not (lo > 0 and hi / lo <= WIDE_FACTOR))
        b_lo, b_hi = _BOUNDS[name]
        edge = bool(np.log(fit.params[name] / b_lo) < 1e-3 or np.log(b_hi / fit.params[name]) < 1e-3)
        partners = [] if corr.empty else [
            c for c in CONSTANTS if c != name and abs(corr.loc[name, c]) > COLLINEAR]
        rows.append({
            "constant": name,
            "estimate": fit.params[name],
            "ci_low": lo,
            "ci_high": hi,
            "profile_low": np.nan if open_lo else _crossing(vals, dev, best, -1),
            "profile_high": np.nan if open_hi else _crossing(vals, dev, best, +1),
            "profile_open": open_lo or open_hi,
            "ci_wide": wide,
            "at_search_bound": edge,
            "collinear_with": ",".join(partners),
            "identified": not (open_lo or open_hi or wide or edge),
        })
    return pd.DataFrame(rows)


def _crossing(vals, dev, start, step) -> float:
    """Where the profile deviance first crosses PROFILE_CUT walking from `start` by `step`, interpolated
    linearly in log value."""
    j = start
    while 0 <= j + step < len(dev) and dev[j + step] <= PROFILE_CUT:
        j += step
    if not 0 <= j + step < len(dev):
        return float(vals[j])
    a, b = dev[j], dev[j + step]
    w = (PROFILE_CUT - a) / (b - a) if b != a else 0.0
    return float(np.exp(np.log(vals[j]) + w * (np.log(vals[j + step]) - np.log(vals[j]))))


def boot_correlation(fit: SurfaceFit) -> pd.DataFrame:
    """Correlation matrix of the log constants over the bootstrap refits (empty without a bootstrap;
    NaN for a constant that never moved, e.g. one held on the edge of its search range)."""
    if fit.boot.empty:
        return pd.DataFrame()
    logs = np.log(fit.boot[list(CONSTANTS)].clip(lower=1e-300))
    return logs.corr()


# ---- prediction, misspecification, comparison -----------------------------------------------------

def _argmin_k(points: pd.DataFrame, y: np.ndarray) -> pd.Series:
    """Integer argmin over the tested k of each cell (ties -> smaller k)."""
    d = points[[*CELL, "k"]].assign(y=y).sort_values([*CELL, "k"])
    return d.loc[d.groupby(CELL, sort=True)["y"].idxmin()].set_index(CELL)["k"]


def heldout(d: Design, n_starts: int = 12) -> pd.DataFrame:
    """Leave one level of s, m and h out in turn: refit on the rest, predict the held-out cells.

    One row per held-out cell and fold: `rmse_log` of the predicted log-loss curve, measured and predicted
    k*, and the constant-k* baseline (median measured k* of the training cells, rounded)."""
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
            fit = _fit(d, np.flatnonzero(~held), 0, 0, n_starts)
            hp = pts[held].reset_index(drop=True)
            pred = bound_curves(hp, fit.params, d.task)["total"].to_numpy()
            kpred = _argmin_k(hp, pred)
            const = float(np.round(np.median(train_cells))) if len(train_cells) else np.nan
            kind = "extrapolation" if level in (levels[0], levels[-1]) else "interpolation"
            for key, g in hp.assign(pred=pred).groupby(CELL, sort=True):
                err = np.log(g["y"].to_numpy()) - np.log(g["pred"].to_numpy())
                km = float(meas.loc[key])
                rows.append(dict(zip(CELL, key, strict=True)) | {
                    "factor": factor, "level": level, "kind": kind,
                    "rmse_log": float(np.sqrt(np.mean(err**2))),
                    "k_star_measured": km, "k_star_pred": float(kpred.loc[key]), "k_star_constant": const,
                    "within_1": abs(float(kpred.loc[key]) - km) <= 1,
                    "within_1_constant": abs(const - km) <= 1,
                })
    return pd.DataFrame(rows)


def heldout_summary(h: pd.DataFrame) -> dict:
    """Pooled and per-factor summaries of `heldout`."""
    if h.empty:
        return {"available": False, "reason": "no factor has 2 or more levels"}
    by = {f: {"rmse_log": float(np.sqrt(np.mean(g["rmse_log"] ** 2))),
              "share_within_1": float(g["within_1"].mean()),
              "share_within_1_constant": float(g["within_1_constant"].mean()), "n_cells": len(g)}
          for f, g in h.groupby("factor", sort=False)}
    return {"available": True, "rmse_log": float(np.sqrt(np.mean(h["rmse_log"] ** 2))),
            "share_within_1": float(h["within_1"].mean()),
            "share_within_1_constant": float(h["within_1_constant"].mean()),
            "n_predictions": len(h), "by_factor": by}


def producible_k_star(cells: pd.DataFrame, task: dict) -> list[set[int]]:
    """The integer k* the bound produces in each cell over wide grids of its constants (h0 from 0.01 to
    1000, beta from 0.1 to 8, est_weight from 0 to 10; the floor never moves k*): what it can explain."""
    import theory

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


def max_bound_k_star(cells: pd.DataFrame, task: dict) -> np.ndarray:
    """The largest k* the bound can produce in each cell, whatever its constants (`producible_k_star`);
    ceil(s T / S) for the modular student with T >= S."""
    return np.array([max(ks) for ks in producible_k_star(cells, task)])


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
    _, e = _bound_parts(d.points, d.task, 2.0, 1.0)
    lo = pd.Series(e[first.to_numpy()], index=pd.MultiIndex.from_frame(d.points.loc[first, CELL]))
    hi = pd.Series(e[last.to_numpy()], index=pd.MultiIndex.from_frame(d.points.loc[last, CELL]))
    return float(np.median(lo / hi))


# ---- the whole analysis, JSON-ready ---------------------------------------------------------------

def analyse(results: pd.DataFrame, metric: str = "test_nmse_id", router: str | None = None,
            n_boot: int = 100, seed: int = 0, lolo: bool = True) -> dict:
    """Fit, identifiability, held-out prediction, misspecification and AIC for one arm (JSON-ready)."""
    d = design(results, metric, router)
    fit = _fit_design(d, n_boot, seed)
    prof = profiles(d, fit)
    ident = identifiability(fit, prof)
    r = np.log(d.points["y"].to_numpy()) - np.log(bound_curves(d.points, fit.params, d.task)["total"])
    ff = free_form_aic(d)
    out = outside_bound(d, fit.params, n_boot=max(n_boot, 200), seed=seed)
    pooled = pooled_outside(d)
    pooled = pooled[~pooled["vs"].isin(["k=1", "k=s"])].reset_index(drop=True)
    h = heldout(d) if lolo else pd.DataFrame()
    notes = list(d.notes)
    for row in ident.itertuples():
        if not row.identified:
            why = [w for w, flag in (("profile open", row.profile_open), ("CI wider than x10", row.ci_wide),
                                     ("estimate on the edge of its search range", row.at_search_bound))
                   if flag]
            notes.append(f"{row.constant} not pinned down by the data ({', '.join(why)})"
                         + (f"; collinear with {row.collinear_with}" if row.collinear_with else ""))
    n_above, n_between = int(out["above_max_holm"].sum()), int(out["between_1_and_s_holm"].sum())
    for row in pooled[pooled["p_value"] < 0.05].itertuples():
        notes.append(f"outside the bound ({row.group}, {row.test}): mean contrast {row.mean_contrast:.3g},"
                     f" one-sided p = {row.p_value:.3g} over seeds, {row.n_cells} cells pooled")
    notes.append(f"loss significantly lower above the largest k* the bound can produce in {n_above} of"
                 f" {len(out)} cells ({int(out['above_max'].sum())} before Holm's correction); strictly"
                 " between"
                 f" 1 and s (where the bound never puts k*) in {n_between}"
                 f" ({int(out['between_1_and_s'].sum())} before)")
    corr = boot_correlation(fit)
    return {
        "fitted": True,
        "router": router,
        "metric": d.metric,
        "form": FORM,
        "task": d.task,
        "params": {row.constant: {"estimate": row.estimate, "ci95": [row.ci_low, row.ci_high],
                                  "profile_ci95": [row.profile_low, row.profile_high],
                                  "identified": bool(row.identified), "collinear_with": row.collinear_with,
                                  "at_search_bound": bool(row.at_search_bound),
                                  "search_range": list(_BOUNDS[row.constant])}
                   for row in ident.itertuples()},
        "boot_correlation": corr.round(4).astype(object).where(corr.notna(), None).to_dict()
        if not corr.empty else None,
        "profiles": prof.to_dict(orient="records"),
        "convergence": fit.convergence,
        "n_points": len(d.points),
        "n_cells": int(d.points.groupby(CELL).ngroups),
        "n_bootstrap": n_boot,
        "rmse_log": float(np.sqrt(np.mean(r**2))),
        "aic": gaussian_aic(r.to_numpy(), len(CONSTANTS)),
        "n_params": len(CONSTANTS),
        "free_form_aic": ff["aic"],
        "free_form": ff,
        "estimation_k_share": estimation_k_share(d),
        "heldout": heldout_summary(h) | {"cells": h.to_dict(orient="records")} if lolo else None,
        "outside_bound": {"n_cells": len(out), "n_above_max": n_above, "n_between_1_and_s": n_between,
                          "n_above_max_uncorrected": int(out["above_max"].sum()),
                          "n_between_1_and_s_uncorrected": int(out["between_1_and_s"].sum()),
                          "n_k_star_ci_above_max": int((out["k_star_ci_low"]
                                                        > out["k_star_max_bound"]).sum()),
                          "pooled": pooled.to_dict(orient="records"),
                          "cells": out.to_dict(orient="records")},
        "notes": notes,
    }


def theory_fit_block(results: pd.DataFrame, metric: str = "id", n_boot: int = 100, seed: int = 0) -> dict:
    """The `theory_fit` block of optimal_k.json: one analysis per router arm (`by_router`) when the store
    has arms (the top level then mirrors the oracle arm, else the first), else one for all rows; `terms`
    holds the term-by-term checks (`fits.theory_terms`) on the oracle arm, or why they are unavailable."""
    from fits.theory_terms import terms_block

    try:
        col = metric_column(results, metric)
    except TheoryFitError as exc:
        return {"fitted": False, "reason": str(exc)}
    if col == "train_nmse":
        return {"fitted": False, "reason": "the risk bound is about test error; use --metric id or ood"}
    arms = router_arms(results)
    try:
        if not arms:
            return analyse(results, col, None, n_boot, seed) | {
                "terms": {"available": False, "reason": "needs the oracle arm: the results have no `router`"
                          " column"}}
        by = {}
        for arm in arms:
            try:
                by[arm] = analyse(results, col, arm, n_boot, seed)
            except ValueError as exc:  # TheoryFitError, or a theory input check: say why, keep the others
                by[arm] = {"fitted": False, "router": arm, "reason": str(exc).splitlines()[0]}
        primary = "oracle" if "oracle" in by else arms[0]
        oracle = by.get("oracle", {})
        terms = terms_block(results, {n: v["estimate"] for n, v in oracle["params"].items()}
                            if oracle.get("fitted") else None, col)
        return by[primary] | {"primary_router": primary, "by_router": by, "terms": terms}
    except ValueError as exc:
        return {"fitted": False, "reason": str(exc).splitlines()[0]}


def _fmt(x, nd=3):
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{nd}g}"


def markdown(block: dict) -> str:
    """The report.md section for a `theory_fit` block."""
    if not block.get("fitted"):
        return f"Not fitted: {block.get('reason')}\n"
    arms = block.get("by_router") or {block.get("router") or "all rows": block}
    parts = [f"Form: `{FORM}` (A: the toolkit's approximation bound; E: P2's Theorem 1 with the toolkit's"
             " R_m and d_N; floor: label noise, not in the bound). Huber loss on log seed-mean losses,"
             " seed-cluster bootstrap CIs.", ""]
    for arm, b in arms.items():
        parts += [f"### Router arm: {arm}", ""]
        if not b.get("fitted"):
            parts += [f"Not fitted: {b.get('reason')}", ""]
            continue
        parts += ["| constant | estimate | 95% CI (bootstrap) | 95% profile interval | identified |"
                  " collinear with |", "|---|---|---|---|---|---|"]
        for name, p in b["params"].items():
            parts.append(f"| {name} | {_fmt(p['estimate'])} | [{_fmt(p['ci95'][0])}, {_fmt(p['ci95'][1])}] |"
                         f" [{_fmt(p['profile_ci95'][0])}, {_fmt(p['profile_ci95'][1])}] |"
                         f" {'yes' if p['identified'] else 'NO'} | {p['collinear_with'] or '-'} |")
        ho = b.get("heldout") or {}
        ob = b["outside_bound"]
        parts += ["", f"- RMSE of log loss in sample: {_fmt(b['rmse_log'])}; AIC {_fmt(b['aic'], 5)}"
                  f" ({b['n_params']} parameters) against the free-form curves' {_fmt(b['free_form_aic'], 5)}"
                  f" ({b['free_form']['n_params']} parameters)",
                  f"- E(k=1)/E(k=T), median over cells: {_fmt(b['estimation_k_share'])} (the share of the"
                  " estimation term that does not vary with k)"]
        if ho.get("available"):
            parts.append(f"- Leave one level out: RMSE of log loss {_fmt(ho['rmse_log'])}; held-out k*"
                         f" within +-1 in {_fmt(100 * ho['share_within_1'], 3)} % of {ho['n_predictions']}"
                         f" predictions (constant k*: {_fmt(100 * ho['share_within_1_constant'], 3)} %)")
        parts.append(f"- Outside what the bound can produce (paired t tests over seeds, Holm over cells):"
                     f" loss lower above its largest possible k* in {ob['n_above_max']} of {ob['n_cells']}"
                     f" cells ({ob['n_above_max_uncorrected']} uncorrected); inside (1, s) in"
                     f" {ob['n_between_1_and_s']} ({ob['n_between_1_and_s_uncorrected']} uncorrected);"
                     " measured k*'s 95 % interval entirely above the bound's largest k* in"
                     f" {ob['n_k_star_ci_above_max']}")
        pooled = pd.DataFrame(ob.get("pooled", []))
        if len(pooled):
            parts += ["", "Pooled over cells (per seed, the mean contrast; one-sided t test over seeds):", "",
                      _table(pooled)]
        cells = pd.DataFrame(ob["cells"])
        if len(cells):
            bounds = zip(cells["k_star_ci_low"], cells["k_star_ci_high"], strict=True)
            cells = cells.assign(ci=[f"[{lo:g}, {hi:g}]" for lo, hi in bounds])
            parts += ["", _table(cells[["complexity", "n_train", "width", "n_experts", "k_star", "ci",
                                        "k_star_bound", "k_star_max_bound", "above_max_p", "above_max_holm",
                                        "between_p"]])]
        parts += ["", *[f"- note: {n}" for n in b["notes"]], ""]
    terms = block.get("terms") or {}
    parts += ["### Each term on its own (oracle arm)", ""]
    if not terms.get("available"):
        parts += [f"Not available: {terms.get('reason')}", ""]
    else:
        parts += [_table(pd.DataFrame(terms["approximation"])), ""]
        est = terms["estimation"]
        if est.get("available"):
            parts += ["Realized excess error against the bound's complexity term, median local slopes"
                      " (log excess per log m, per log k):", "",
                      _table(pd.DataFrame(est["median_slopes"]).T.reset_index(names="direction")), ""]
        else:
            parts += [f"Estimation: not available: {est.get('reason')}", ""]
    return "\n".join(parts)


def _table(df: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * df.shape[1]]
    lines += ["| " + " | ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in row) + " |"
              for row in df.itertuples(index=False)]
    return "\n".join(lines)
