"""Tests of theory/: symbolic derivatives against finite differences, the integer argmin against brute
force, the closed forms against numeric optima of the continuous relaxation, and the public contract."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize_scalar

import theory
from theory import softmoe, tradeoff
from theory import symbols as sy
from theory.approximation import approximation_bound_value
from theory.estimation import estimation_bound_value, instantiated_estimation_bound

KW = {"d": 8, "n_skills": 8, "h0": 2.0, "beta": 1.0, "est_weight": 0.3}


def _num(expr, point):
    return float(sp.N(expr.subs(point)))


# --- P2 --------------------------------------------------------------------------------------------------
def test_estimation_matches_printed_formula():
    m, T, k, dN, Rm = 1000.0, 16.0, 3.0, 50.0, 0.2
    printed = 4 * 1.0 * Rm + 2 * np.sqrt((2 * k * dN * (1 + np.log(T / k)) + dN * np.log(2 * m)
                                          + np.log(4 / 0.05)) / (2 * m))
    assert estimation_bound_value(m, T, k, dN, Rm) == pytest.approx(printed, rel=1e-12)


def test_estimation_broadcasts_and_grows_in_k():
    k = np.arange(1, 17)[:, None]
    m = np.array([1e2, 1e4, 1e6])
    e = estimation_bound_value(m, 16, k, 100, 0.0)
    assert e.shape == (16, 3)
    assert np.all(np.diff(e, axis=0) > 0)
    assert np.all(np.diff(e, axis=1) < 0)


@pytest.mark.parametrize("wrt", ["k", "m", "h"])
def test_instantiated_derivative_vs_finite_difference(wrt):
    from theory.estimation import instantiated_bound
    rng = np.random.default_rng(1)
    sym = getattr(sy, wrt)
    deriv = sp.lambdify((sy.m, sy.T, sy.k, sy.d, sy.h, sy.C, sy.delta, sy.B_a, sy.B_w),
                        sp.diff(instantiated_bound, sym))
    for _ in range(20):
        pt = {"m": 10 ** rng.uniform(2, 5), "T": 16.0, "k": rng.uniform(1, 15), "d": 8.0,
              "h": rng.uniform(4, 64)}
        step = 1e-6 * pt[wrt]
        up, dn = dict(pt), dict(pt)
        up[wrt] += step
        dn[wrt] -= step
        fd = (instantiated_estimation_bound(**up) - instantiated_estimation_bound(**dn)) / (2 * step)
        exact = deriv(pt["m"], pt["T"], pt["k"], pt["d"], pt["h"], 1.0, 0.05, 1.0, 1.0)
        assert fd == pytest.approx(exact, rel=1e-5, abs=1e-10)


def test_instantiated_constants_and_clip_units():
    # R_m = 2 B_a B_w sqrt(h (d+1)/m), d_N = (d+1) T
    m, T, k, d, h = 500.0, 8, 2, 4, 16
    rm = 2 * 0.5 * 2.0 * np.sqrt(h * (d + 1) / m)
    direct = estimation_bound_value(m, T, k, (d + 1) * T, rm, C=1.0)
    assert instantiated_estimation_bound(m, T, k, d, h, B_a=0.5, B_w=2.0) == pytest.approx(direct)
    clipped = instantiated_estimation_bound(m, T, k, d, h, clip=3.0)
    assert clipped == pytest.approx(36 * estimation_bound_value(m, T, k, (d + 1) * T,
                                                                2 * np.sqrt(h * (d + 1) / m), C=1 / 3))


# --- approximation ---------------------------------------------------------------------------------------
def test_approximation_pieces():
    k = np.arange(1, 17.0)
    a = approximation_bound_value(k, 4, 8, 16, n_skills=8, h0=2.0, beta=1.0)
    eps = lambda width: min(1.0, 2.0 / width)  # noqa: E731
    expected = [1 - (kk / 4) * (1 - eps(8)) if kk <= 4 else eps(8 * min(kk / 4, 2)) for kk in k]
    np.testing.assert_allclose(a, expected)
    assert a[-1] == pytest.approx(eps(16))  # width- and T-dependent floor eps(h T/S)


def test_approximation_ideal_hinge_and_id_memorizing():
    k = np.arange(1, 9.0)
    np.testing.assert_allclose(approximation_bound_value(k, 3, 8, 8, family="ideal"),
                               np.maximum(0, 1 - k / 3))
    # s = S: one combination, a single expert can hold the whole sum in distribution: eps(h/s)
    id_ = approximation_bound_value(1, 8, 64, 8, split="id")
    ood = approximation_bound_value(1, 8, 64, 8, split="ood")
    assert id_ == pytest.approx(2.0 / (64 / 8))
    assert ood == pytest.approx(1 - (1 / 8) * (1 - 2.0 / 64))
    # s = 2 of 8: 21 training combinations > T = 16: no memorizing, id == ood
    assert approximation_bound_value(k, 2, 8, 16, split="id") == pytest.approx(
        approximation_bound_value(k, 2, 8, 16, split="ood"))


def test_n_train_combos_rule():
    from theory.approximation import n_train_combos
    assert n_train_combos(2, 8, 0.25) == 28 - 7
    assert n_train_combos(1, 8, 0.25) == 8  # s = 1: nothing held out
    assert n_train_combos(8, 8, 0.25) == 1
    assert n_train_combos(2, 3, 0.1) == 3  # rho * binom < 0.5


# --- trade-off ---------------------------------------------------------------------------------------------
def _brute_k(s, m, h, T, **kw):
    risks = [approximation_bound_value(k, s, h, T, n_skills=kw["n_skills"], h0=kw["h0"], beta=kw["beta"])
             + kw["est_weight"] * instantiated_estimation_bound(m, T, k, kw["d"], h) for k in range(1, T + 1)]
    return int(np.argmin(risks)) + 1


@pytest.mark.slow
def test_optimal_k_matches_brute_force_on_grid():
    ss, ms, hs, Ts = [1, 2, 3, 5, 8], [1e2, 1e3, 1e4, 1e5, 1e7], [2, 6, 32], [4, 8, 12, 24]
    got = theory.optimal_k(np.array(ss)[:, None, None, None], np.array(ms)[:, None, None],
                           np.array(hs, float)[:, None], np.array(Ts), **KW)
    assert got.shape == (5, 5, 3, 4) and got.dtype.kind == "i"
    for (i, s), (j, m), (a, h), (b, T) in itertools.product(*(list(enumerate(x)) for x in (ss, ms, hs, Ts))):
        assert got[i, j, a, b] == _brute_k(s, m, h, T, **KW), (s, m, h, T)


@settings(max_examples=40, deadline=None)
@given(s=st.integers(1, 8), logm=st.floats(2, 7), h=st.floats(1, 100), T=st.integers(1, 40),
       lam=st.floats(0.01, 3), split=st.sampled_from(["id", "ood"]))
def test_optimal_k_property(s, logm, h, T, lam, split):
    kw = dict(KW, est_weight=lam, split=split)
    risks = np.array([theory.risk_bound_value(k, s, 10**logm, h, T, **kw) for k in range(1, T + 1)])
    k_star = theory.optimal_k(s, 10**logm, h, T, **kw)
    assert 1 <= k_star <= T
    assert risks[k_star - 1] == risks.min()
    assert np.all(risks[: k_star - 1] > risks.min())  # ties -> smaller k


def test_tradeoff_table_contract():
    df = theory.tradeoff_table([2, 4], [1e3, 1e4], 16, [8, 12], **KW)
    assert list(df.columns) == ["k", "complexity", "n_train", "width", "n_experts", "approximation",
                                "estimation", "total", "is_optimal"]
    assert len(df) == 2 * 2 * (8 + 12)
    np.testing.assert_allclose(df["total"], df["approximation"] + df["estimation"])
    best = df[df["is_optimal"]]
    assert len(best) == 8  # one per (s, m, h, T)
    for row in best.itertuples():
        assert row.k == theory.optimal_k(row.complexity, row.n_train, row.width, row.n_experts, **KW)


def test_stationarity_and_curvature_vs_finite_difference():
    rng = np.random.default_rng(3)
    consts = {sy.S: 8, sy.h0: 2, sy.beta: 1.3, sy.d: 8, sy.C: 1, sy.delta: 0.05, sy.B_a: 1, sy.B_w: 1,
              sy.lam: 0.3}
    f = sp.lambdify((sy.k, sy.s, sy.m, sy.h, sy.T), tradeoff.stationarity.subs(consts))
    for _ in range(30):
        s, T, m, h = float(rng.integers(1, 5)), 32, 10 ** rng.uniform(2, 6), rng.uniform(16, 64)
        k = rng.uniform(s * 1.01, s * 3.9)  # inside the decay interval [s, s T/S] = [s, 4 s]
        step = 1e-6 * k
        risk = [theory.risk_bound_value(k + e, s, m, h, T, **dict(KW, beta=1.3)) for e in (step, -step)]
        assert (risk[0] - risk[1]) / (2 * step) == pytest.approx(f(k, s, m, h, T), rel=1e-5, abs=1e-9)


def test_lambert_w_fixed_point_matches_continuous_argmin():
    kw = dict(KW, est_weight=0.05)
    cases = [(s, m, h) for s in (1, 2, 3) for m in (1e3, 1e4, 1e5) for h in (8, 32)]
    n_smooth = 0
    T = 32
    for s, m, h in cases:
        res = minimize_scalar(lambda k, s=s, m=m, h=h: theory.risk_bound_value(k, s, m, h, T, **kw),
                              bounds=(s, s * T / 8), method="bounded", options={"xatol": 1e-10})
        opt = theory.continuous_optimum(s, m, h, T, **kw).iloc[0]
        if opt.regime != "smooth":
            continue
        n_smooth += 1
        assert opt.k_star == pytest.approx(res.x, rel=1e-5)
        fixed = tradeoff.lambert_w_optimum(s, m, h, T, iterations=100, **kw)
        assert fixed == pytest.approx(opt.k_star, rel=1e-8)
        one_step = tradeoff.lambert_w_optimum(s, m, h, T, iterations=1, **kw)
        assert one_step == pytest.approx(opt.k_star, rel=0.25)
    assert n_smooth >= 5


def test_ideal_closed_form_matches_brute_force():
    s, m, T = np.meshgrid([1, 2, 3, 5, 8], np.logspace(1.5, 6, 12), [8, 16], indexing="ij")
    for lam in (0.05, 0.5, 2.0):
        closed = tradeoff.ideal_optimal_k(s, m, T, est_weight=lam)
        brute = theory.optimal_k(s, m, 10.0, T, est_weight=lam, family="ideal")
        np.testing.assert_array_equal(closed, brute)
        assert set(np.unique(closed)) <= {1, 2, 3, 5, 8}


def test_elasticities_contract_and_values():
    el = theory.predicted_elasticities(3, 1e4, 16, 32, **KW)  # a smooth interior k* (about 3.75)
    assert set(el) == {"complexity", "n_train", "width"}
    assert all(isinstance(v, float) for v in el.values())
    assert el["complexity"] > 0.5 and el["n_train"] > 0 and el["width"] == pytest.approx(-el["complexity"])
    # at the hinge k* = s: only s moves k*
    opt = theory.continuous_optimum(4, 1e3, 32, 8, **KW).iloc[0]
    assert opt.regime == "k=s" and opt.k_star == 4
    assert theory.predicted_elasticities(4, 1e3, 32, 8, **KW) == {"complexity": 1.0, "n_train": 0.0,
                                                                   "width": 0.0}
    arr = theory.predicted_elasticities(np.array([2, 3]), np.array([[1e3], [1e4]]), 16, 32, **KW)
    assert arr["n_train"].shape == (2, 2)


def test_realistic_regime_has_interior_kstar_scaling_with_s():
    # default task (S = 8), T = 16 experts: k* interior and growing with s at moderate m
    ks = theory.optimal_k(np.array([1, 2, 3, 4]), 2e4, 16, 16, **KW)
    assert np.all(ks[1:] > 1) and np.all(ks < 16) and np.all(np.diff(ks) > 0)


@pytest.mark.parametrize(("call", "field"), [
    (lambda: theory.estimation_bound_value(100, 8, 9, 10, 0.1), "k"),
    (lambda: theory.estimation_bound_value(-1, 8, 2, 10, 0.1), "m"),
    (lambda: theory.estimation_bound_value(100, 8, 2, 10, 0.1, delta=2), "delta"),
    (lambda: theory.risk_bound_value(2, 9, 100, 8, 8), "s"),
    (lambda: theory.optimal_k(2, 100, 8, 2.5), "T"),
    (lambda: theory.optimal_k(2, 100, 8, 8, split="test"), "split"),
    (lambda: theory.approximation_bound_value(1, 2, 8, 8, family="exact"), "family"),
    (lambda: theory.optimal_k(2, "many", 8, 8), "m"),
])
def test_bad_input_names_the_field(call, field):
    with pytest.raises(ValueError, match=rf"^{field}: "):
        call()


# --- P3 ----------------------------------------------------------------------------------------------------
def test_p3_phi_positive_limits():
    r = softmoe.family_limits(softmoe.FAMILIES[0])
    assert r["dispatch_A"] == [1, 0] and r["dispatch_B"] == [1, 0]
    assert r["input_gap"] == [0, 0]
    assert sp.simplify(r["target_gap"] - (sp.sqrt(2) - 1) * sy.a) == 0
    assert float(r["gap_over_allowance"]) > 1


def test_algorithm1_keeps_largest_columns():
    comb = np.array([[0.5, 0.1, 0.4], [0.2, 0.1, 0.7]])  # column sums 0.7, 0.2, 1.1
    assert softmoe.algorithm1_select(comb, 2).tolist() == [2, 0]
    y = np.arange(6.0).reshape(3, 2)
    out = softmoe.algorithm1_output(comb, y, 2)
    np.testing.assert_allclose(out, comb @ np.array([[0, 1], [0, 0], [4, 5.0]]))
    batch = np.stack([comb, comb[:, ::-1]])
    assert softmoe.algorithm1_select(batch, 1).tolist() == [[2], [0]]
    with pytest.raises(ValueError, match="^k: "):
        softmoe.algorithm1_select(comb, 4)


# --- REPL and hygiene --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_repl_objects_are_sympy_and_print():
    from theory import approximation_bound, checks, estimation_bound, risk_bound
    for expr in (estimation_bound, approximation_bound, risk_bound):
        assert isinstance(expr, sp.Expr)
        assert sp.latex(expr) and str(expr)
    assert "log" in str(estimation_bound) and "d_N" in str(estimation_bound)
    assert _num(estimation_bound, {sy.C: 1, sy.R_m: 0, sy.d_N: 1, sy.k: 1, sy.T: 1, sy.m: 1,
                                   sy.delta: 4}) == pytest.approx(2 * np.sqrt((2 + np.log(2)) / 2))
    assert isinstance(checks.run_all(), pd.DataFrame)


def test_no_string_evaluation_in_theory():
    pattern = re.compile(r"\b(sympify|parse_expr|eval|exec)\s*\(|\bS\(\s*['\"]")
    for path in Path(theory.__file__).parent.glob("*.py"):
        assert not pattern.search(path.read_text()), path


def test_smooth_family_with_T_equal_S_is_one_or_s():
    # T = S: no replicas, the approximation is flat beyond s: k* = s iff
    # lambda (E(s) - E(1)) < (1 - 1/s)(1 - eps(h)), else 1
    s, m, h = np.meshgrid([2, 3, 5, 8], np.logspace(1.5, 6, 15), [3.0, 8.0, 40.0], indexing="ij")
    got = theory.optimal_k(s, m, h, 8, **KW)
    e = [instantiated_estimation_bound(m, 8, k, 8, h) for k in (1.0, s)]
    eps = np.minimum(1, 2.0 / h)
    expected = np.where(0.3 * (e[1] - e[0]) < (1 - 1 / s) * (1 - eps), s, 1)
    np.testing.assert_array_equal(got, expected)
    assert 0 < np.mean(got == s) < 1


def test_interior_conditions_and_regime_at_T():
    cond = theory.interior_conditions([2, 4, 8], [2e4], 16, 16, **KW)
    assert list(cond.columns) == ["complexity", "n_train", "width", "n_experts", "k_star", "above_one",
                                  "below_T", "interior"]
    assert cond["above_one"].tolist() == [True, True, True]
    assert cond["below_T"].tolist() == [True, True, False]  # s = S: ceil(sT/S) = T
    assert cond.loc[cond["above_one"] & cond["below_T"], "interior"].all()
    # s = S > T: k* = T, and nothing moves it locally
    assert theory.continuous_optimum(8, 1e5, 8, 4).regime.item() == "k=T"
    assert theory.predicted_elasticities(8, 1e5, 8, 4) == {"complexity": 0.0, "n_train": 0.0, "width": 0.0}
