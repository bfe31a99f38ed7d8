"""The smooth shape of loss against k used for the continuous k*, fitted in batches.

Shape (the trade-off the theory balances: an approximation error falling in k, an estimation error
rising in k):

    L(k) = c + a * k**(-p) + b * e(k)

a k^-p is the theory's approximation decay for k >= s (eps(k h / s) = (h0 s / (k h))^beta). For e(k)
two shapes are offered: `"linear"` (e = k, the default) and `"p2"` (e = sqrt(k (1 + log(T/k))), the
k-dependence of P2's bound at fixed m). P2's shape flattens at k = T (its slope log(T/k) vanishes there),
so it cannot rise near T: on the quick grid's real curves it put k* on the edge in 13 of 16 cells (median
R^2 0.95), against 1 of 16 (median R^2 0.975) for the linear term. For a fixed exponent p the model is
linear in (c, a, b), so many curves (every bootstrap resample of a cell) are fitted at once by weighted
least squares over a grid of p, keeping the best p per curve.
The continuous k* is the argmin of the fitted curve on a fine log grid over the tested range of k;
an argmin on that grid's edge means the fit put k* outside the tested range (censored).
"""

from __future__ import annotations

import numpy as np

SHAPES = ("linear", "p2")
P_GRID = np.geomspace(0.25, 4.0, 33)  # 8 per octave: holds 0.25, 0.5, 1, 2, 4 exactly
N_FINE = 400


def estimation_shape(k, n_experts, shape="linear"):
    """e(k): k (`"linear"`) or sqrt(k (1 + log(T/k))) (`"p2"`, the k-dependence of P2's bound)."""
    k = np.asarray(k, dtype=float)
    if shape == "linear":
        return k
    if shape == "p2":
        return np.sqrt(k * (1.0 + np.log(n_experts / k)))
    raise ValueError(f"unknown shape {shape!r}: allowed values are {', '.join(SHAPES)}")


def _estimation_slope(k, n_experts, shape):
    k = np.asarray(k, dtype=float)
    if shape == "linear":
        return np.ones_like(k)
    return np.log(n_experts / k) / (2.0 * estimation_shape(k, n_experts, "p2"))


def loss_curve(k, n_experts, c, a, b, p, shape="linear"):
    """L(k) = c + a k^-p + b e(k)."""
    k = np.asarray(k, dtype=float)
    return c + a * k ** (-p) + b * estimation_shape(k, n_experts, shape)


def coefficient_a_for_minimum(k_star, n_experts, b, p, shape="linear"):
    """The approximation coefficient a that makes k* a stationary point of `loss_curve` (1 < k* < T).

    Setting dL/dk = 0: a p k^(-p-1) = b e'(k). With the linear e it is the minimum for any k*; with
    P2's e it is a minimum only up to a p-dependent limit (about 6.3 for p = 1 at T = 16).
    """
    k_star = np.asarray(k_star, dtype=float)
    return b * _estimation_slope(k_star, n_experts, shape) * k_star ** (p + 1.0) / p


def _design(k, n_experts, p_grid, shape):
    k = np.asarray(k, dtype=float)
    ones = np.ones((len(p_grid), len(k)))
    approx = k[None, :] ** (-p_grid[:, None])
    est = np.broadcast_to(estimation_shape(k, n_experts, shape), approx.shape)
    return np.stack([ones, approx, est], axis=-1)  # (P, K, 3)


def fit_curves(k, n_experts, means, weights, p_grid=P_GRID, shape="linear"):
    """Fit the smooth shape to many loss curves over the same k values at once.

    `means` and `weights` have shape (B, K): B curves (NaN where a k has no data; give it weight 0).
    Returns a dict of arrays of length B: `k_star` (continuous argmin over the tested range),
    `at_edge` (argmin on the edge of that range), `p`, `r2` (weighted R^2 of the fit), and `coef` (B, 3)
    for (c, a, b). Curves with fewer than 4 usable k values get NaN.
    """
    k = np.asarray(k, dtype=float)
    w = np.where(np.isfinite(means), np.asarray(weights, dtype=float), 0.0)
    y = np.where(w > 0, means, 0.0)
    X = _design(k, n_experts, p_grid, shape)
    xtwx = np.einsum("bk,pki,pkj->bpij", w, X, X)
    xtwy = np.einsum("bk,pki->bpi", w * y, X)
    ridge = 1e-10 * np.trace(xtwx, axis1=-2, axis2=-1)[..., None, None] * np.eye(3) + 1e-300 * np.eye(3)
    coef = np.linalg.solve(xtwx + ridge, xtwy[..., None])[..., 0]  # (B, P, 3)
    pred = np.einsum("pki,bpi->bpk", X, coef)
    sse = np.einsum("bk,bpk->bp", w, (y[:, None, :] - pred) ** 2)
    best = np.argmin(sse, axis=1)
    rows = np.arange(len(best))
    coef_best = coef[rows, best]

    fine = np.geomspace(k.min(), k.max(), N_FINE)
    curve = np.einsum("bgi,bi->bg", _design(fine, n_experts, p_grid, shape)[best], coef_best)
    idx = np.argmin(curve, axis=1)

    wsum = w.sum(axis=1)
    ybar = np.divide((w * y).sum(axis=1), wsum, out=np.zeros_like(wsum), where=wsum > 0)
    sst = (w * (y - ybar[:, None]) ** 2).sum(axis=1)
    r2 = 1.0 - np.divide(sse[rows, best], sst, out=np.full_like(sst, np.nan), where=sst > 0)

    ok = (w > 0).sum(axis=1) >= 4
    nan = np.full(len(best), np.nan)
    return {
        "k_star": np.where(ok, fine[idx], nan),
        "at_edge": ok & ((idx == 0) | (idx == N_FINE - 1)),
        "p": np.where(ok, p_grid[best], nan),
        "r2": np.where(ok, r2, nan),
        "coef": np.where(ok[:, None], coef_best, np.nan),
    }
