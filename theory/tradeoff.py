"""The risk bound = our approximation bound + lambda * P2's instantiated estimation bound, and k*.

THE TOOLKIT'S OWN DERIVATION (P1's closed form was not available). Structure of the trade-off (smooth
family, split="ood", T >= S):

* On 1 <= k <= s the approximation term is linear in k and the estimation term is concave in k
  (d^2/dk^2 < 0), so the risk is concave there: no minimum strictly inside (1, s); k* is 1 or >= s.
* On s <= k <= sT/S (only when T > S: replicas of a skill's expert) the approximation decays like
  (h_0 s / (k h))^beta and a smooth interior minimum can exist: stationarity
      beta (h_0 s / h)^beta k^(-beta-1) = lambda * 2 d_N log(T/k) / sqrt(2 m Q(k)),
      Q(k) = 2 d_N k (1 + log(T/k)) + d_N log(2m) + log(4/delta),   d_N = (d + 1) T.
  With Q frozen at a point k_0 this is solved by Lambert W (branch -1):
      k = T exp(W_{-1}(-(beta+1) K / (c T^(beta+1))) / (beta+1)),  K = beta (h_0 s/h)^beta,
      c = 2 lambda d_N / sqrt(2 m Q(k_0));
  iterating k_0 <- k converges to the exact stationary point (no closed form with Q(k) itself).
* Beyond k = sT/S the approximation is flat (floor eps(h T/S)) and the estimation grows: k* <= ceil(sT/S).
Hence k* = 1 (estimation dominates), k* = s (the hinge: exactly proportional to s), k* in (s, sT/S)
(smooth: grows with m, falls with h) or k* = sT/S (the floor kink).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import sympy as sp

from . import symbols as sy
from ._numeric import as_count, as_float, choice, compile_expr, maybe_scalar
from .approximation import (
    FAMILIES,
    SPLITS,
    approximation_bound,
    approximation_decay,
    approximation_id,
    approximation_ideal,
    n_train_combos,
)
from .estimation import instantiated_bound, natarajan_topk

#: The risk bound (smooth family, modular student): approximation + lambda * instantiated estimation.
risk_bound = approximation_bound + sy.lam * instantiated_bound

_EXPRS = {
    ("ood", "smooth"): approximation_bound,
    ("id", "smooth"): approximation_id,
    ("ood", "ideal"): approximation_ideal,
    ("id", "ideal"): approximation_ideal,
}
_ARGS = (sy.k, sy.s, sy.h, sy.T, sy.S, sy.h0, sy.beta, sy.m, sy.d, sy.C, sy.delta, sy.B_a, sy.B_w, sy.lam,
         sy.N_c)

# --- the smooth region s <= k <= sT/S ----------------------------------------------------------------
#: The risk on the decay interval, where every term is differentiable in k.
risk_decay_region = approximation_decay + sy.lam * instantiated_bound
#: dR/dk on the decay interval: zero at a smooth interior k*.
stationarity = sp.diff(risk_decay_region, sy.k)
_curvature = sp.diff(stationarity, sy.k)
#: Elasticities of the stationary k* by the implicit function theorem: -x (dR_k/dx) / (k dR_k/dk).
elasticity_exprs = {name: -x * sp.diff(stationarity, x) / (sy.k * _curvature)
                    for name, x in (("complexity", sy.s), ("n_train", sy.m), ("width", sy.h))}

_Q = 2 * natarajan_topk * sy.k * (1 + sp.log(sy.T / sy.k)) + natarajan_topk * sp.log(2 * sy.m) \
    + sp.log(4 / sy.delta)
k0 = sp.Symbol("k_0", positive=True)
_K = sy.beta * (sy.h0 * sy.s / sy.h) ** sy.beta
_c = 2 * sy.lam * natarajan_topk / sp.sqrt(2 * sy.m * _Q.subs(sy.k, k0))
#: The frozen-Q stationarity equation's solution (Lambert W, branch -1: the minimum, not the maximum).
_z = -(sy.beta + 1) * _K / (_c * sy.T ** (sy.beta + 1))
lambert_w_k = sy.T * sp.exp(sp.LambertW(_z, -1) / (sy.beta + 1))
#: ... and the equation it solves: K k^(-beta-1) = c log(T/k).
frozen_stationarity = _K * sy.k ** (-sy.beta - 1) - _c * sp.log(sy.T / sy.k)


class _Params:
    """Validated keyword arguments shared by the numeric functions (one place for names and defaults)."""

    def __init__(self, d=8, n_skills=8, h0=2.0, beta=1.0, C=1.0, delta=0.05, B_a=1.0, B_w=1.0,
                 est_weight=1.0, split="ood", holdout_frac=0.25, family="smooth"):
        self.d = as_count("d", d)
        self.S = as_count("n_skills", n_skills)
        self.h0 = as_float("h0", h0)
        self.beta = as_float("beta", beta)
        self.C = as_float("C", C)
        self.delta = as_float("delta", delta, upper=1.0 - 1e-12)
        self.B_a = as_float("B_a", B_a)
        self.B_w = as_float("B_w", B_w)
        self.lam = as_float("est_weight", est_weight, positive=False, lower=0.0)
        self.split = choice("split", split, SPLITS)
        self.family = choice("family", family, FAMILIES)
        self.rho = as_float("holdout_frac", holdout_frac, positive=False, lower=0.0, upper=1.0)


def _grid_args(s, m, h, T, p: _Params):
    ss = as_float("s", s, lower=1.0)
    mm = as_float("m", m)
    hh = as_float("h", h)
    TT = as_count("T", T)
    if np.any(ss > p.S):
        raise ValueError(f"s: expected 1 <= s <= n_skills ({p.S}), got {s!r}")
    return ss, mm, hh, TT


def _parts(k, s, m, h, T, p: _Params):
    """(approximation, lambda * estimation) as arrays; inputs already validated."""
    key = (p.split, p.family)
    approx = compile_expr(f"approx_{key}", _ARGS, _EXPRS[key])
    est = compile_expr("est_inst", _ARGS, instantiated_bound)
    nc = n_train_combos(s, p.S, p.rho) if p.split == "id" else 1.0
    args = (k, s, h, T, p.S, p.h0, p.beta, m, p.d, p.C, p.delta, p.B_a, p.B_w, p.lam, nc)
    return approx(*args) + 0.0 * k, p.lam * est(*args)


def _risk(k, s, m, h, T, p: _Params):
    key = (p.split, p.family)
    fn = compile_expr(f"risk_{key}", _ARGS, _EXPRS[key] + sy.lam * instantiated_bound)
    nc = n_train_combos(s, p.S, p.rho) if p.split == "id" else 1.0
    return fn(k, s, h, T, p.S, p.h0, p.beta, m, p.d, p.C, p.delta, p.B_a, p.B_w, p.lam, nc)


_KW_DOC = """Keyword arguments (defaults are the grid's task and placeholders for fitted constants):
    d=8 (input dimension), n_skills=8 (S), h0=2.0 and beta=1.0 (per-skill width rate
    eps(H) = min(1, (h0/H)^beta)), C=1.0 and delta=0.05 (P2's Lipschitz constant and confidence),
    B_a=1.0 and B_w=1.0 (expert norm bounds), est_weight=1.0 (lambda: estimation term's weight in the
    risk, absorbs the [0,1]-loss vs MSE scale), split="ood"|"id", holdout_frac=0.25 (rho, for "id"),
    family="smooth"|"ideal"."""


def risk_bound_value(k, s, m, h, T, **kw):
    """Approximation + est_weight * instantiated estimation bound at (k, s, m, h, T), broadcasting."""
    p = _Params(**kw)
    ss, mm, hh, TT = _grid_args(s, m, h, T, p)
    kk = as_float("k", k, lower=1.0)
    if np.any(kk > TT):
        raise ValueError("k: expected 1 <= k <= T (number of experts), got some k > T")
    return maybe_scalar(np.asarray(_risk(kk, ss, mm, hh, TT, p)))


def optimal_k(s, m, h, T, **kw):
    """Exact integer argmin of the risk bound over k = 1..T (ties -> smaller k); an integer array."""
    p = _Params(**kw)
    ss, mm, hh, TT = _grid_args(s, m, h, T, p)
    shape = np.broadcast_shapes(ss.shape, mm.shape, hh.shape, TT.shape, *(
        np.shape(getattr(p, n)) for n in ("d", "S", "h0", "beta", "C", "delta", "B_a", "B_w", "lam")))
    kmax = int(TT.max())
    ks = np.arange(1, kmax + 1, dtype=float).reshape((kmax,) + (1,) * len(shape))
    risk = _risk(np.minimum(ks, TT), ss, mm, hh, TT, p)
    risk = np.where(ks <= TT, np.broadcast_to(risk, (kmax,) + shape), np.inf)
    return maybe_scalar(np.argmin(risk, axis=0) + 1)


def tradeoff_table(s, m, h, T, **kw) -> pd.DataFrame:
    """Tidy table, one row per (k, s, m, h, T) over the product of the given values and k = 1..T.

    Columns: k, complexity, n_train, width, n_experts, approximation, estimation (already multiplied by
    est_weight, so total = approximation + estimation), total, is_optimal (k is the exact integer
    argmin of total for its (s, m, h, T); ties -> smaller k).
    """
    p = _Params(**kw)
    grids = [np.atleast_1d(x).ravel() for x in _grid_args(s, m, h, T, p)]
    S_, M_, H_, T_ = (g.ravel() for g in np.meshgrid(*grids, indexing="ij"))
    reps = T_.astype(int)
    cell = np.repeat(np.arange(S_.size), reps)
    k = np.concatenate([np.arange(1, t + 1) for t in reps]).astype(float)
    approx, est = _parts(k, S_[cell], M_[cell], H_[cell], T_[cell], p)
    df = pd.DataFrame({"k": k.astype(int), "complexity": S_[cell], "n_train": M_[cell], "width": H_[cell],
                       "n_experts": T_[cell].astype(int), "approximation": approx, "estimation": est})
    df["total"] = df["approximation"] + df["estimation"]
    best = df.groupby(cell, sort=False)["total"].transform("min")
    first = (df["total"] == best).groupby(cell).cumsum() == 1
    df["is_optimal"] = (df["total"] == best) & first
    return df


def interior_conditions(s, m, h, T, **kw) -> pd.DataFrame:
    """The sufficient conditions for 1 < k* < T (T >= S), next to the exact integer k*.

    Columns: complexity, n_train, width, n_experts, k_star, above_one (s >= 2, T >= S and
    lambda (E(2) - E(1)) < (1 - eps(h))/s: then k* > 1), below_T (ceil(s T/S) < T: then k* < T, since
    k* <= ceil(s T/S) always), interior (1 < k* < T). One row per broadcast point; scalar keywords.
    """
    p = _Params(**kw)
    ss, mm, hh, TT = (np.ravel(x) for x in np.broadcast_arrays(*_grid_args(s, m, h, T, p)))
    est = compile_expr("est_inst", _ARGS, instantiated_bound)

    def e(k):
        return est(k, ss, hh, TT, p.S, p.h0, p.beta, mm, p.d, p.C, p.delta, p.B_a, p.B_w, p.lam, 1.0)

    eps_h = np.minimum(1.0, (p.h0 / hh) ** p.beta)
    k_star = optimal_k(ss, mm, hh, TT, **kw)
    return pd.DataFrame({
        "complexity": ss, "n_train": mm, "width": hh, "n_experts": TT, "k_star": k_star,
        "above_one": (ss >= 2) & (TT >= p.S) & (TT >= 2) & (p.lam * (e(2.0) - e(1.0)) < (1 - eps_h) / ss),
        "below_T": np.ceil(ss * TT / p.S - 1e-9) < TT,
        "interior": (k_star > 1) & (k_star < TT)})


def ideal_optimal_k(s, m, T, **kw):
    """Closed form of k* for the idealized family (hinge, T >= S): s if
    lambda (E(s) - E(1)) < 1 - 1/s else 1, E the instantiated estimation bound (h cancels)."""
    p = _Params(**kw)
    ss, mm, _, TT = _grid_args(s, m, 1.0, T, p)
    if np.any(TT < p.S):
        raise ValueError("T: the closed form needs T >= n_skills")
    est = compile_expr("est_inst", _ARGS, instantiated_bound)

    def e(k):
        return est(k, ss, 1.0, TT, p.S, p.h0, p.beta, mm, p.d, p.C, p.delta, p.B_a, p.B_w, p.lam, 1.0)

    gain = p.lam * (e(ss) - e(1.0))
    return maybe_scalar(np.where(gain < 1 - 1 / ss, ss, 1.0).astype(int))


def lambert_w_optimum(s, m, h, T, k_init=None, iterations=1, **kw):
    """Stationary k of the decay region by the frozen-Q Lambert W formula, Q re-frozen `iterations` times.

    iterations=1 with k_init=None (Q frozen at k = s) is the one-step closed form; more iterations
    converge to the exact stationary point. NaN where the equation has no real solution (no smooth
    minimum: the argument of W_{-1} is below -1/e).
    """
    from scipy.special import lambertw  # lazily: scipy adds ~1 s to `import theory`, needed only here

    p = _Params(**kw)
    ss, mm, hh, TT = _grid_args(s, m, h, T, p)
    kk = ss if k_init is None else as_float("k_init", k_init)
    dN = (p.d + 1) * TT
    big_k = p.beta * (p.h0 * ss / hh) ** p.beta
    for _ in range(iterations):
        q = 2 * dN * kk * (1 + np.log(TT / kk)) + dN * np.log(2 * mm) + np.log(4 / p.delta)
        c = 2 * p.lam * dN / np.sqrt(2 * mm * q)
        z = -(p.beta + 1) * big_k / (c * TT ** (p.beta + 1))
        w = np.where(z >= -np.exp(-1.0), lambertw(np.maximum(z, -np.exp(-1.0)), -1).real, np.nan)
        kk = TT * np.exp(w / (p.beta + 1))
    return maybe_scalar(np.asarray(kk))


def continuous_optimum(s, m, h, T, grid=513, **kw) -> pd.DataFrame:
    """Argmin over real k in [1, T] of the smooth-family OOD risk, with its regime.

    Candidates: the kinks 1, s, min(sT/S, T), T, and the stationary point of the decay region found by
    bisection on dR/dk around the best of a `grid`-point scan. Returns a DataFrame (one row per
    broadcast point) with columns complexity, n_train, width, n_experts, k_star, regime.
    """
    kw = dict(kw, split="ood", family="smooth")
    p = _Params(**kw)
    ss, mm, hh, TT = (np.ravel(x) for x in np.broadcast_arrays(*_grid_args(s, m, h, T, p)))
    t = np.linspace(0.0, 1.0, grid)[:, None]
    kg = 1.0 + (TT - 1.0) * t
    cap = np.minimum(ss * TT / p.S, TT)
    kinks = np.stack([np.ones_like(ss), np.minimum(ss, TT), np.maximum(cap, 1.0), TT])
    rk = _risk(kinks, ss, mm, hh, TT, p)
    rg = _risk(kg, ss, mm, hh, TT, p)
    j = np.argmin(rg, axis=0)
    cols = np.arange(ss.size)
    # bracket of the scan's best point, clipped to the decay interval [s, sT/S]
    lo = np.maximum(kg[np.maximum(j - 1, 0), cols], np.minimum(ss, TT))
    hi = np.minimum(kg[np.minimum(j + 1, grid - 1), cols], cap)
    dr = compile_expr("stationarity", _ARGS, stationarity)

    def slope(x):
        return dr(x, ss, hh, TT, p.S, p.h0, p.beta, mm, p.d, p.C, p.delta, p.B_a, p.B_w, p.lam, 1.0)

    ok = (lo < hi) & (slope(lo) < 0) & (slope(hi) > 0)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        neg = slope(mid) < 0
        lo, hi = np.where(neg, mid, lo), np.where(neg, hi, mid)
    k_smooth = 0.5 * (lo + hi)
    ok &= p.h0 * ss / (k_smooth * hh) < 1  # the decay formula holds only where eps(k h / s) < 1
    r_smooth = np.where(ok, _risk(k_smooth, ss, mm, hh, TT, p), np.inf)
    allr = np.vstack([rk, r_smooth[None]])
    # ties -> the first candidate (smaller k among kinks); the smooth point only wins strictly
    best = np.argmin(allr, axis=0)
    allk = np.vstack([kinks, k_smooth[None]])
    regime_of = np.array(["k=1", "k=s", "k=sT/S", "k=T", "smooth"])
    regime = regime_of[best]
    k_star = allk[best, cols]
    regime = np.where((regime != "smooth") & np.isclose(k_star, TT), "k=T", regime)
    regime = np.where((regime != "k=1") & np.isclose(k_star, 1.0), "k=1", regime)
    return pd.DataFrame({"complexity": ss, "n_train": mm, "width": hh, "n_experts": TT,
                         "k_star": k_star, "regime": regime})


def predicted_elasticities(s, m, h, T, **kw) -> dict:
    """d log k*/d log s, d log k*/d log m, d log k*/d log h of the continuous k* (smooth family, OOD).

    Keys "complexity", "n_train", "width". At a kink the exact one-sided values are used: k* = s and
    k* = sT/S give (1, 0, 0) (k* moves with s only), k* = 1 or T gives (0, 0, 0); at a smooth interior
    k* the implicit-function formulas `elasticity_exprs` are evaluated. Floats for scalar inputs.
    See `continuous_optimum` for k* itself and its regime.
    """
    opt = continuous_optimum(s, m, h, T, **kw)
    p = _Params(**dict(kw, split="ood", family="smooth"))
    regime = opt["regime"].to_numpy()
    args = (opt["k_star"].to_numpy(), opt["complexity"].to_numpy(), opt["width"].to_numpy(),
            opt["n_experts"].to_numpy(), p.S, p.h0, p.beta, opt["n_train"].to_numpy(), p.d, p.C, p.delta,
            p.B_a, p.B_w, p.lam, 1.0)
    shape = np.broadcast_shapes(*(np.shape(x) for x in (s, m, h, T)))
    out = {}
    for name, expr in elasticity_exprs.items():
        smooth = compile_expr(f"elasticity_{name}", _ARGS, expr)(*args)
        kink = 1.0 if name == "complexity" else 0.0
        val = np.where(regime == "smooth", smooth,
                       np.where(np.isin(regime, ["k=s", "k=sT/S"]), kink, 0.0))
        out[name] = maybe_scalar(np.asarray(val, dtype=float).reshape(shape))
    return out


for _f in (risk_bound_value, optimal_k, tradeoff_table, predicted_elasticities, continuous_optimum,
           ideal_optimal_k, lambert_w_optimum, interior_conditions):
    _f.__doc__ = (_f.__doc__ or "") + "\n\n    " + _KW_DOC
