"""Fitting the risk bound's free constants (`fits.theory.bound_model`) to seed-mean loss curves, and what the
fit cannot pin down.

The fit is `fits.surface.fit_surface`: Huber loss on log residuals of seed-mean losses, multi-start
L-BFGS-B over log constants, and CIs from a seed-cluster bootstrap (the same seeds drawn for every point,
as in `fits.cells`). What the fit cannot identify is reported, not hidden: the bootstrap correlation of
the log constants, profiles of the objective for each constant, and an `identified` flag per constant.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from fits.cells import seed_resample_counts
from fits.surface import SurfaceFit, SurfaceModel, fit_surface
from fits.theory.bound_model import BOUNDS, CONSTANTS, Design, TheoryFitError, bound_model, design, log_bounds

#: deviance (Laplace approximation of the L1-like Huber objective) at the 95 % level for one constant
PROFILE_CUT = stats.chi2.ppf(0.95, 1)
#: a constant whose 95 % bootstrap interval spans more than this factor counts as not pinned down
WIDE_FACTOR = 10.0
#: bootstrap correlation of log constants above which two constants are reported as collinear
COLLINEAR = 0.9


def resampled_means(values: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_points) seed-mean losses of seed-cluster resamples (same seeds for every point)."""
    if n_boot == 0 or values.shape[1] < 2:
        return np.empty((0, len(values)))
    counts = seed_resample_counts(values.shape[1], n_boot, np.random.default_rng(seed))
    has = np.isfinite(values)
    num = counts @ np.where(has, values, 0.0).T
    den = counts @ has.T.astype(float)
    return np.divide(num, den, out=np.full_like(num, np.nan), where=den > 0)


def fit_points(d: Design, idx: np.ndarray, n_boot: int, seed: int, n_starts: int = 12,
         y_boot: np.ndarray | None = None) -> SurfaceFit:
    pts = d.points.iloc[idx].reset_index(drop=True)
    model = bound_model(pts, d.task)
    X = np.arange(len(pts), dtype=float)[:, None]
    return fit_surface(model, X, pts["y"].to_numpy(), n_starts=n_starts, n_boot=n_boot, seed=seed,
                       bounds=log_bounds(), y_boot=y_boot)


def fit_risk_bound(results: pd.DataFrame, metric: str = "test_nmse_id", n_boot: int = 100, seed: int = 0,
                   router: str | None = None, n_starts: int = 12) -> SurfaceFit:
    """Fit h0, beta, est_weight and floor of the risk bound to seed-mean loss curves L(k; s, m, h, T).

    `.params` and `.ci` (95 %, seed-cluster bootstrap with `n_boot` resamples) use the keys of
    CONSTANTS. `router` selects one arm of a store with a `router` column.
    """
    d = design(results, metric, router)
    return fit_design(d, n_boot, seed, n_starts)


def fit_design(d: Design, n_boot: int, seed: int, n_starts: int = 12) -> SurfaceFit:
    if len(d.points) <= len(CONSTANTS):
        raise TheoryFitError(f"{len(d.points)} (cell, k) points: too few for {len(CONSTANTS)} constants")
    yb = resampled_means(d.values, n_boot, seed)
    return fit_points(d, np.arange(len(d.points)), n_boot, seed, n_starts, y_boot=yb if n_boot else None)


def profiles(d: Design, fit: SurfaceFit, span: float = 3.0, n: int = 7) -> pd.DataFrame:
    """Profile of the objective for each constant: fixed on a grid of log values (best +- offsets from
    0.01 to `span`, `n` each side, log-spaced), the others refitted. `deviance` = 2 (f - f_best) / b
    with b the mean |log residual| at the best fit (the
    Huber objective is nearly L1, so a Laplace likelihood); below PROFILE_CUT is inside a 95 % interval."""
    pts = d.points
    model = bound_model(pts, d.task)
    X = np.arange(len(pts), dtype=float)[:, None]
    y = pts["y"].to_numpy()
    b = max(fit.objective / len(pts), 1e-12)
    rows = []
    bounds = log_bounds()
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
        b_lo, b_hi = BOUNDS[name]
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
