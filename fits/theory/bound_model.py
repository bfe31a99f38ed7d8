"""The calibrated risk bound as a model: its constants, the points of one fit and the bound's parts.

Model (the toolkit's bound, `theory.risk_bound_value`, plus an additive floor for label noise, which the
bound leaves out):

    L(k; s, m, h, T) = floor + A(k; s, h, T; h0, beta) + est_weight * E(m, T, k, d, h)

A is our approximation bound (`theory.approximation_bound_value`), E P2's Theorem 1 with our R_m and d_N
(`theory.instantiated_estimation_bound`, [0, 1]-loss units; est_weight converts and absorbs looseness).
E does not depend on the constants, so it is computed once. `fits.theory.calibration` fits the constants,
`fits.theory.validation` tests the fitted bound, `fits.theory.analysis` assembles the JSON block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fits.surface import SurfaceModel

#: The fitted constants, in the order of the raw parameter vector (each fitted as its log).
CONSTANTS = ("h0", "beta", "est_weight", "floor")
#: `--metric` choice of `fits.optimal_k` -> normalized column (the bound is in units of Var y).
NMSE = {"ood": "test_nmse_ood", "id": "test_nmse_id", "train": "train_nmse"}
CELL = ["complexity", "n_train", "width", "n_experts"]
FORM = "L = floor + A(k; s, h, T | h0, beta) + est_weight * E_P2(m, T, k, d, h)"

#: The search range of each constant.
BOUNDS = {
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


def bound_parts(points: pd.DataFrame, task: dict, h0, beta):
    """(A, E): the approximation bound at (h0, beta) and P2's instantiated bound (units of [0, 1] loss)."""
    import theory  # lazily (sympy, ~1.5 s): the fits without the theory (--no-theory) never pay it


    k, s, m, h, T = (points[c].to_numpy(float) for c in ("k", "complexity", "n_train", "width", "n_experts"))
    a = theory.approximation_bound_value(k, s, h, T, n_skills=task["n_skills"], h0=h0, beta=beta,
                                         split=task["split"], holdout_frac=task["holdout_frac"])
    e = theory.instantiated_estimation_bound(m, T, k, task["d"], h)
    return np.asarray(a, float), np.asarray(e, float)


def bound_curves(points: pd.DataFrame, params: dict, task: dict) -> pd.DataFrame:
    """The calibrated bound's parts at `points` (columns complexity, n_train, width, n_experts, k):
    `approximation` (A), `estimation` (est_weight * E), `floor` and `total` = their sum."""
    a, e = bound_parts(points, task, params["h0"], params["beta"])
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
        from theory.approximation import n_train_combos  # lazily, as bound_parts: sympy costs ~1.5 s

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


def bound_model(points: pd.DataFrame, task: dict) -> SurfaceModel:
    """A SurfaceModel over point indices (X[:, 0]) with theta = log constants."""
    _, est = bound_parts(points, task, 2.0, 1.0)
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


def log_bounds():
    return [(math.log(lo), math.log(hi)) for lo, hi in (BOUNDS[n] for n in CONSTANTS)]
