"""The calibrated risk bound (fits.theory: bound_model, calibration, validation, analysis) and its
term-by-term checks (fits.theory.terms), on curves planted by the bound itself on the quick grid's design."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import theory
from fits.synthetic import planted_bound_results
from fits.theory import analysis as tf
from fits.theory import bound_model as bm
from fits.theory import calibration as bf
from fits.theory import terms as tt
from fits.theory import validation as bv

TRUE = {"h0": 3.0, "beta": 1.2, "est_weight": 0.02, "floor": 0.05}


@pytest.fixture(scope="module")
def planted():
    return planted_bound_results(TRUE, n_seeds=3, rng_seed=0)


@pytest.mark.parametrize("split", ["id", "ood"])
def test_model_is_the_theory_risk_bound_plus_floor(planted, split):
    d = bm.design(planted, f"test_nmse_{split}")
    p = d.points
    args = [p[c].to_numpy(float) for c in ("k", "complexity", "n_train", "width", "n_experts")]
    for h0, beta in ((0.5, 1.0), (3.0, 1.2), (40.0, 0.5)):
        ref = theory.risk_bound_value(*args, h0=h0, beta=beta, est_weight=0.03, split=split, d=8, n_skills=8)
        got = bm.bound_curves(p, {"h0": h0, "beta": beta, "est_weight": 0.03, "floor": 0.1}, d.task)
        np.testing.assert_allclose(got["total"], ref + 0.1, rtol=1e-12)
        a = bm._Approximation(p, d.task)(h0, beta)[0]
        np.testing.assert_allclose(a, got["approximation"], rtol=1e-12)


@pytest.mark.slow
def test_planted_constants_are_recovered_within_their_cis():
    # 6 seeds: with 3, a seed-cluster bootstrap has 10 distinct resamples and under-covers (docs/fits.md);
    # 4 draws, since a 95 % interval misses its truth in one draw of twenty
    covered = dict.fromkeys(TRUE, 0)
    for draw in range(4):
        df = planted_bound_results(TRUE, n_seeds=6, rng_seed=draw)
        fit = bf.fit_risk_bound(df, "test_nmse_id", n_boot=100, seed=draw)
        assert set(fit.params) == set(bm.CONSTANTS) == set(fit.ci)
        assert fit.convergence["n_at_best"] >= 2
        for name, true in TRUE.items():
            lo, hi = fit.ci[name]
            covered[name] += lo <= true <= hi
            assert abs(np.log(fit.params[name] / true)) < 0.25, (name, fit.params[name])
    assert min(covered.values()) >= 3, covered


@pytest.mark.slow
def test_saturated_width_rate_is_flagged_not_identified():
    # h0 = 200 puts eps = min(1, .) at 1 for every width of the design: A = 1 whatever h0 and beta are
    df = planted_bound_results(TRUE | {"h0": 200.0}, n_seeds=3, rng_seed=1)
    block = tf.analyse(df, "test_nmse_id", n_boot=30, lolo=False)
    assert not block["params"]["h0"]["identified"]
    assert not block["params"]["beta"]["identified"]
    assert any("h0 not pinned down" in n for n in block["notes"])
    json.dumps(block)  # JSON-ready after the CLI's cleaning of NaN; here only types matter


@pytest.mark.slow
def test_planted_bound_is_never_outside_itself_and_a_dip_beyond_its_reach_is(planted):
    d = bm.design(planted, "test_nmse_id")
    out = bv.outside_bound(d, TRUE)
    assert not out["above_max_holm"].any() and not out["between_1_and_s_holm"].any()
    assert out["above_max"].sum() <= 3  # per-cell tests at 5 %: P(>= 4 of 16 by chance) < 1 %
    # the bound cannot put k* above ceil(s T / S): 2, 4, 8, 12 for s = 1, 2, 4, 6 at T = 16, S = 8
    np.testing.assert_array_equal(out.groupby("complexity")["k_star_max_bound"].max(), [2, 4, 8, 12])
    pooled = bv.pooled_outside(d).set_index(["group", "test", "vs"])["p_value"]
    assert (pooled.xs("above_max", level="test") > 0.05).all()
    assert (pooled.xs("both", level="vs") > 0.05).all()
    # a dip at k = 5..9 for s = 1 (k* near 7, as the learned arm of the quick grid shows) is outside
    dipped = planted.copy()
    dipped.loc[(dipped["complexity"] == 1) & dipped["k"].between(5, 9), "test_nmse_id"] *= 0.6
    d = bm.design(dipped, "test_nmse_id")
    out = bv.outside_bound(d, TRUE)
    assert out.loc[out["complexity"] == 1, "above_max"].all()
    pooled = bv.pooled_outside(d).set_index(["group", "test"])["p_value"]
    assert pooled[("complexity=1.0", "above_max")] < 0.05
    assert pooled[("complexity=2.0", "above_max")] > 0.05


@pytest.mark.slow
def test_heldout_predictions_of_planted_curves(planted):
    h = bv.heldout(bm.design(planted, "test_nmse_id"), n_starts=4)
    assert len(h) == 16 * 3  # every cell held out once per factor
    s = bv.heldout_summary(h)
    assert s["rmse_log"] < 0.1
    assert s["share_within_1"] > s["share_within_1_constant"]


@pytest.mark.slow
def test_free_form_has_more_parameters_and_the_block_has_the_contract(planted):
    block = tf.theory_fit_block(planted, "id", n_boot=20)
    for key in ("params", "aic", "free_form_aic", "heldout", "outside_bound", "terms"):
        assert key in block
    assert set(block["params"]) == set(bm.CONSTANTS)
    assert {"estimate", "ci95"} <= set(block["params"]["h0"])
    assert block["free_form"]["n_params"] == 64
    assert not block["terms"]["available"] and "oracle" in block["terms"]["reason"]


@pytest.mark.slow
def test_router_arms_fitted_separately_and_other_arms_ignored():
    oracle = planted_bound_results(TRUE, n_seeds=3, router="oracle", rng_seed=2)
    learned = planted_bound_results(TRUE | {"est_weight": 0.05}, n_seeds=3, router="learned", rng_seed=3)
    dense = oracle.assign(router="dense", test_nmse_id=9.0)
    block = tf.theory_fit_block(pd.concat([oracle, learned, dense]), "id", n_boot=10)
    assert set(block["by_router"]) == {"learned", "oracle"}
    assert block["primary_router"] == "oracle" and block["router"] == "oracle"
    est = {a: b["params"]["est_weight"]["estimate"] for a, b in block["by_router"].items()}
    assert est["learned"] > 1.5 * est["oracle"]
    assert block["terms"]["available"] and not block["terms"]["estimation"]["available"]


def test_term_checks_on_a_planted_oracle_arm():
    true = TRUE | {"est_weight": 0.002}
    df = planted_bound_results(true, n_trains=(150, 500, 2000, 8000, 32000), noise=0.01, seed_noise=0.0,
                               router="oracle", rng_seed=4)
    approx = tt.approximation_terms(df, true)
    assert (approx["n_train"] == 32000).all() and len(approx) == 8 * 16
    summ = tt.approximation_summary(approx, true)
    decay = summ[summ["feature"] == "decay_exponent"]
    np.testing.assert_allclose(decay["measured"], -true["beta"], atol=0.15)
    hinge = summ[summ["feature"] == "hinge_slope"]
    np.testing.assert_allclose(hinge["measured"], hinge["bound"], rtol=0.15)
    est = tt.estimation_terms(df, true)
    assert len(est) == 8 * 16 * 4 and set(est["n_train"]) == {150, 500, 2000, 8000}
    sl = tt.estimation_slopes(est)
    m = sl[(sl["direction"] == "m") & (sl["n_train"] <= 500)]
    np.testing.assert_allclose(m["measured_slope"].median(), m["bound_slope"].median(), atol=0.15)


def test_term_checks_say_what_is_missing(planted):
    for df, fn in ((planted, tt.approximation_terms), (planted, tt.estimation_terms)):
        out = fn(df, TRUE)
        assert out.empty and "oracle" in out.attrs["unavailable"]
    two_m = planted.assign(router="oracle")
    assert not tt.approximation_terms(two_m, TRUE).empty
    est = tt.estimation_terms(two_m, TRUE)
    assert est.empty and ">= 4 levels of m" in est.attrs["unavailable"]
    assert tt.estimation_slopes(est).empty


@pytest.mark.slow
def test_optimal_k_writes_the_theory_fit_block_and_report_section(planted, tmp_path, monkeypatch):
    from fits import fit_pipeline, optimal_k

    monkeypatch.setattr(fit_pipeline, "load_results", lambda path: planted)
    doc = optimal_k.run(["store", "--out", str(tmp_path), "--bootstrap", "20", "--no-surface",
                         "--theory-bootstrap", "10", "--metric", "id"])
    block = json.loads((tmp_path / "optimal_k.json").read_text())["theory_fit"]
    assert block == doc["theory_fit"] and block["fitted"] and block["metric"] == "test_nmse_id"
    assert set(block["params"]) == set(bm.CONSTANTS)
    for key in ("aic", "free_form_aic", "heldout", "outside_bound"):
        assert block[key] is not None
    assert "## Theory fit" in (tmp_path / "report.md").read_text()
    doc = optimal_k.run(["store", "--out", str(tmp_path / "b"), "--bootstrap", "0", "--no-surface",
                         "--no-theory"])
    assert doc["theory_fit"] == {"fitted": False, "reason": "--no-theory"}
    assert optimal_k.main(["store", "--out", str(tmp_path / "c"), "--theory-bootstrap", "-1"]) == 2
    assert not (tmp_path / "c").exists()


def test_term_figures_draw_an_oracle_arm(tmp_path):
    from types import SimpleNamespace

    import figures.theory_fit as fig_fit
    import figures.theory_terms as fig_terms
    from fits.data import check_results
    from fits.theory.tables import bound_table, terms_table

    true = TRUE | {"est_weight": 0.01}
    df = check_results(planted_bound_results(true, n_trains=(150, 500, 2000, 8000), router="oracle"))
    arm = {"fitted": True, "router": "oracle", "metric": "test_nmse_id",
           "task": {"split": "id", "d": 8, "n_skills": 8, "holdout_frac": 0.25},
           "params": {n: {"estimate": v} for n, v in true.items()}}
    doc = {"theory_fit": arm | {"primary_router": "oracle", "by_router": {"oracle": arm}}}
    tables = {"bound_curves.parquet": bound_table(df, doc["theory_fit"]),
              "theory_terms.parquet": terms_table(df, doc["theory_fit"])}
    inputs = SimpleNamespace(results=df, fits=doc, path=lambda name: tmp_path / name,
                             table=lambda name, rel: tables[rel])
    terms = fig_terms.data(inputs)
    assert (terms["status"] == "ok").all() and set(terms["panel"]) == {"approximation", "estimation"}
    curves = fig_fit.data(inputs)
    np.testing.assert_allclose(curves["total"], curves["approximation"] + curves["estimation"])
    for module, frame in ((fig_terms, terms), (fig_fit, curves)):
        fig = module.plot(frame)
        assert sum(len(ax.lines) for ax in fig.axes) > 10
