"""A parametric scaling-law surface fitter in the style of Chinchilla's approach 3.

The model gives log L as a function of parameters theta (kept in log space where they are positive, e.g.
a = log A) and inputs X. The fit minimises the Huber loss (delta = 1e-3 by default) of the log residuals
log y - log L(theta, X) with L-BFGS-B, started from every point of a grid (or the best `n_starts` of it by
the starting objective), and reports how many starts reach the best optimum and the gradient norm there.
Confidence intervals come from a bootstrap over points, each resample refitted from the best optimum.

`fit_chinchilla(N, D, L)` is the Hoffmann et al. form L = E + A / N^alpha + B / D^beta written as
log L = LSE(a - alpha log N, b - beta log D, e), as in Epoch AI's replication (Besiroglu et al. 2024);
`load_chinchilla` reads Epoch's 245 extracted points (shipped as package data: fits/reference/, with its
provenance) and drops the 5 highest-loss ones as they did.
`fit_moe_loss` fits the joint loss surface L(k, s, m, h) of the toolkit's grid in the same way.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize, special
from threadpoolctl import threadpool_limits


@dataclass(frozen=True)
class SurfaceModel:
    """A log-loss model: `predict(theta, X) -> (log L (n,), d log L / d theta (n, p))`, a start grid per
    parameter, and `report(theta) -> dict` (the reported parameters, e.g. A = exp(a))."""

    names: tuple[str, ...]
    predict: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
    grid: Mapping[str, Sequence[float]]
    report: Callable[[np.ndarray], dict]


@dataclass
class SurfaceFit:
    """`params` and `ci` (name -> (low, high)) in reported units; `theta` the fitted raw parameters;
    `convergence` the multi-start report; `starts` one row per start; `boot` one row per resample."""

    params: dict
    ci: dict
    theta: np.ndarray
    objective: float
    convergence: dict
    starts: pd.DataFrame
    boot: pd.DataFrame


def lse_terms(terms: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]):
    """`predict` for log L = LSE over terms, given `terms(theta, X) -> (T (n, t), dT/dtheta (n, t, p))`."""

    def predict(theta, X):
        t, dt = terms(theta, X)
        w = np.exp(t - t.max(axis=1, keepdims=True))
        total = w.sum(axis=1)
        log_l = np.log(total) + t.max(axis=1)
        return log_l, np.einsum("nt,ntp->np", w / total[:, None], dt)

    return predict


def _objective(theta, model, X, logy, delta, weights):
    log_l, jac = model.predict(theta, X)
    r = logy - log_l
    f = np.sum(weights * special.huber(delta, r)) / delta
    # einsum, not @: a BLAS matvec here leaves OpenBLAS threads spinning against L-BFGS-B's own BLAS
    g = -np.einsum("n,np->p", weights * np.clip(r, -delta, delta), jac) / delta
    return f, g


def _minimise(theta0, model, X, logy, delta, weights, bounds):
    return optimize.minimize(
        _objective,
        theta0,
        args=(model, X, logy, delta, weights),
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 2000, "ftol": 1e-12, "gtol": 1e-8},
    )


def fit_surface(
    model: SurfaceModel,
    X: np.ndarray,
    y: np.ndarray,
    delta: float = 1e-3,
    n_starts: int | None = None,
    n_boot: int = 200,
    seed: int = 0,
    level: float = 0.95,
    bounds: Sequence[tuple[float | None, float | None]] | None = None,
    tol: float = 1e-6,
    y_boot: np.ndarray | None = None,
) -> SurfaceFit:
    """Fit `model` to points (X, y) by multi-start L-BFGS-B on the Huber loss of log residuals.

    `n_starts=None` starts from every grid point; otherwise from the `n_starts` grid points with the
    lowest starting objective. A start "reaches the best optimum" when its objective is within `tol`
    (relative) of the best. Bootstrap resamples of the points are refitted from the best optimum.
    `y_boot` (B, n), when given, replaces the point bootstrap: each row is a resampled y (e.g. seed-mean
    losses of a seed-cluster resample; NaN where a point has no data in that resample), refitted in turn.
    """
    # tiny L-BFGS-B steps are 10-100x slower with multi-threaded BLAS on a busy machine
    with threadpool_limits(1):
        return _fit_surface(model, X, y, delta, n_starts, n_boot, seed, level, bounds, tol, y_boot)


def _fit_surface(model, X, y, delta, n_starts, n_boot, seed, level, bounds, tol, y_boot=None) -> SurfaceFit:
    X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    if len(X) != len(y) or len(y) == 0 or not np.all(y > 0) or not np.all(np.isfinite(X)):
        raise ValueError("surface fit needs as many points in X as in y, all finite, and y > 0")
    logy, ones = np.log(y), np.ones(len(y))
    grid = np.array(list(itertools.product(*(model.grid[n] for n in model.names))), dtype=float)
    if n_starts is not None and n_starts < len(grid):
        f0 = np.array([_objective(t, model, X, logy, delta, ones)[0] for t in grid])
        grid = grid[np.argsort(f0)[:n_starts]]
    fits = [_minimise(t, model, X, logy, delta, ones, bounds) for t in grid]
    obj = np.array([f.fun for f in fits])
    best = int(np.nanargmin(obj))
    theta = fits[best].x
    at_best = np.abs(obj - obj[best]) <= tol * max(abs(obj[best]), 1e-12)
    starts = pd.DataFrame(grid, columns=[f"start_{n}" for n in model.names])
    for i, n in enumerate(model.names):
        starts[n] = [f.x[i] for f in fits]
    starts["objective"], starts["success"], starts["at_best"] = obj, [f.success for f in fits], at_best
    grad = _objective(theta, model, X, logy, delta, ones)[1]
    convergence = {
        "n_starts": len(fits),
        "n_success": int(sum(f.success for f in fits)),
        "n_at_best": int(at_best.sum()),
        "best_objective": float(obj[best]),
        "grad_norm": float(np.linalg.norm(grad)),
        "message": str(fits[best].message),
        "n_iterations": int(fits[best].nit),
    }

    rng = np.random.default_rng(seed)
    rows = []
    if y_boot is not None:
        y_boot = np.asarray(y_boot, dtype=float).reshape(-1, len(y))
        n_boot = len(y_boot)
    for b in range(n_boot):
        if y_boot is None:
            w, logy_b = np.bincount(rng.integers(0, len(y), len(y)), minlength=len(y)).astype(float), logy
        else:
            ok = np.isfinite(y_boot[b]) & (y_boot[b] > 0)
            w, logy_b = ok.astype(float), np.log(np.where(ok, y_boot[b], 1.0))
        f = _minimise(theta, model, X, logy_b, delta, w, bounds)
        rows.append(model.report(f.x) | {"success": bool(f.success)})
    boot = pd.DataFrame(rows)
    params = model.report(theta)
    q = [(1 - level) / 2, (1 + level) / 2]
    ci = {k: tuple(float(v) for v in np.quantile(boot[k], q)) if n_boot else (np.nan, np.nan) for k in params}
    convergence["boot_success_frac"] = float(boot["success"].mean()) if n_boot else np.nan
    return SurfaceFit(
        params=params,
        ci=ci,
        theta=theta,
        objective=float(obj[best]),
        convergence=convergence,
        starts=starts,
        boot=boot,
    )


# ---- Chinchilla: log L = LSE(a - alpha log N, b - beta log D, e) ----------------------------------

CHINCHILLA_GRID = {  # Hoffmann et al.'s initialisation grid
    "a": np.arange(0, 30, 5.0),
    "alpha": np.arange(0, 2.5, 0.5),
    "b": np.arange(0, 30, 5.0),
    "beta": np.arange(0, 2.5, 0.5),
    "e": np.arange(-1, 1.5, 0.5),
}
#: Epoch AI's refit of Chinchilla's approach 3 (Besiroglu et al. 2024), for comparison.
EPOCH_REFIT = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}


def _chinchilla_terms(theta, X):
    a, alpha, b, beta, e = theta
    log_n, log_d = X[:, 0], X[:, 1]
    t = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)], axis=1)
    dt = np.zeros((len(X), 3, 5))
    dt[:, 0, 0], dt[:, 0, 1] = 1.0, -log_n
    dt[:, 1, 2], dt[:, 1, 3] = 1.0, -log_d
    dt[:, 2, 4] = 1.0
    return t, dt


CHINCHILLA_MODEL = SurfaceModel(
    ("a", "alpha", "b", "beta", "e"),
    lse_terms(_chinchilla_terms),
    CHINCHILLA_GRID,
    lambda th: {
        "E": float(np.exp(th[4])),
        "A": float(np.exp(th[0])),
        "B": float(np.exp(th[2])),
        "alpha": float(th[1]),
        "beta": float(th[3]),
    },
)


def fit_chinchilla(
    N, D, L, delta: float = 1e-3, n_starts: int | None = 64, n_boot: int = 200, seed: int = 0
) -> SurfaceFit:
    """Fit L = E + A / N^alpha + B / D^beta (N parameters, D tokens) by Chinchilla's approach 3.

    Starts from the 64 best points of Hoffmann et al.'s 4,500-point grid by default (`n_starts=None`
    runs all of them: same optimum on Epoch's data, about 50x the time)."""
    X = np.column_stack([np.log(np.asarray(N, dtype=float)), np.log(np.asarray(D, dtype=float))])
    return fit_surface(CHINCHILLA_MODEL, X, L, delta=delta, n_starts=n_starts, n_boot=n_boot, seed=seed)


CHINCHILLA_CSV = "reference/chinchilla_svg_extracted.csv"  # package data of `fits`


def chinchilla_points() -> pd.DataFrame:
    """The 245 raw points as Epoch AI extracted them (the copy shipped in the package; see
    fits/reference/PROVENANCE.md)."""
    with resources.files("fits").joinpath(CHINCHILLA_CSV).open("rb") as fh:
        return pd.read_csv(fh)


def load_chinchilla(path: str | Path | None = None, drop_highest: int = 5) -> pd.DataFrame:
    """Epoch AI's extracted Chinchilla points as a DataFrame with N, D = FLOP / (6 N), L; the
    `drop_highest` highest-loss points are dropped (Epoch dropped 5 as outliers). Without `path`,
    the copy shipped in the package (`chinchilla_points`)."""
    raw = chinchilla_points() if path is None else pd.read_csv(path)
    missing = [c for c in ("Model Size", "Training FLOP", "loss") if c not in raw.columns]
    if missing:
        raise ValueError(f"{path or CHINCHILLA_CSV} lacks column(s) {', '.join(missing)}")
    df = pd.DataFrame(
        {"N": raw["Model Size"], "D": raw["Training FLOP"] / (6 * raw["Model Size"]), "L": raw["loss"]}
    )
    return df.sort_values("L").iloc[: len(df) - drop_highest].reset_index(drop=True)


# ---- The toolkit's joint loss surface L(k, s, m, h) ------------------------------------------------

MOE_GRID = {
    "e": (-3.0, -1.0),
    "a": (-3.0, 0.0),
    "gamma": (0.0, 1.0),
    "alpha": (0.5, 1.5),
    "b": (-4.0, -1.0),
    "beta": (0.5, 1.0),
    "mu": (0.0, 0.5),
    "nu": (0.0,),
}
MOE_NAMES = ("e", "a", "gamma", "alpha", "b", "beta", "mu", "nu")


def _moe_terms(theta, X):
    e, a, gamma, alpha, b, beta, mu, nu = theta
    log_k, log_s, log_m, log_h = X.T
    t = np.stack(
        [
            np.full_like(log_k, e),
            a + gamma * log_s - alpha * log_k,
            b + beta * log_k - mu * log_m + nu * log_h,
        ],
        axis=1,
    )
    dt = np.zeros((len(X), 3, 8))
    dt[:, 0, 0] = 1.0
    dt[:, 1, 1], dt[:, 1, 2], dt[:, 1, 3] = 1.0, log_s, -log_k
    dt[:, 2, 4], dt[:, 2, 5], dt[:, 2, 6], dt[:, 2, 7] = 1.0, log_k, -log_m, log_h
    return t, dt


def _moe_report(th):
    e, a, gamma, alpha, b, beta, mu, nu = (float(v) for v in th)
    return {
        "E": np.exp(e),
        "A": np.exp(a),
        "gamma": gamma,
        "alpha": alpha,
        "B": np.exp(b),
        "beta": beta,
        "mu": mu,
        "nu": nu,
        "k_exp_complexity": gamma / (alpha + beta),
        "k_exp_n_train": mu / (alpha + beta),
        "k_exp_width": -nu / (alpha + beta),
    }


MOE_MODEL = SurfaceModel(MOE_NAMES, lse_terms(_moe_terms), MOE_GRID, _moe_report)


def fit_moe_loss(
    curves: pd.DataFrame, delta: float = 1e-3, n_starts: int | None = 16, n_boot: int = 100, seed: int = 0
) -> SurfaceFit:
    """Joint fit of the seed-mean loss over (k, s, m, h):

        L = E + A s^gamma / k^alpha + B k^beta h^nu / m^mu

    (approximation error falling in k and rising in s; estimation error rising in k, falling in m). Its
    minimiser is k* = (alpha A s^gamma m^mu / (beta B h^nu))^(1 / (alpha + beta)), so the implied
    exponents of the law of k* are gamma, mu and -nu over (alpha + beta) (`k_exp_*` in `params`).
    `curves` is `CellFits.curves` (one row per cell and k, with `mean`); the bootstrap is over points.
    """
    d = curves[np.isfinite(curves["mean"]) & (curves["mean"] > 0)]
    X = np.log(d[["k", "complexity", "n_train", "width"]].to_numpy(dtype=float))
    bounds = [
        (None, None),
        (None, None),
        (None, None),
        (0.0, None),
        (None, None),
        (0.0, None),
        (None, None),
        (None, None),
    ]
    return fit_surface(
        MOE_MODEL,
        X,
        d["mean"].to_numpy(),
        delta=delta,
        n_starts=n_starts,
        n_boot=n_boot,
        seed=seed,
        bounds=bounds,
    )
