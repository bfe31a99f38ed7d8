"""`python -m fits.optimal_k` on a SRAVEN store: the mapping onto the generic cells, recovery of a planted
law of k* against R with its CIs, the skipped regression-only parts, and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sraven_fixtures import sraven_rows, write_sraven_store

from fits.data import FitInputError, check_results, load_results
from fits.families import FAMILIES
from fits.optimal_k import main
from simulations.families.sraven.schema import SRAVEN_METRICS


def _fit(store, out, *args):
    assert main([str(store), "--out", str(out), *args]) == 0
    return json.loads((out / "optimal_k.json").read_text())


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root = tmp_path_factory.mktemp("sraven")
    store = write_sraven_store(sraven_rows(b=0.8), root / "store")
    return store, _fit(store, root / "fits", "--bootstrap", "1000")


def test_recovers_the_planted_exponent_within_its_cis(planted):
    _, doc = planted
    exp = doc["law"]["exponents"]["complexity"]
    assert exp["fitted"] and exp["n_levels"] == 6
    for ci in (exp["ci95"], exp["ci95_bootstrap"]):
        assert ci[0] < 0.8 < ci[1], ci
        assert ci[1] - ci[0] < 0.4, ci  # informative, not merely wide
    # one steps x batch and one d_expert: those exponents are dropped, and the fit says so
    assert not doc["law"]["exponents"]["n_train"]["fitted"] and not doc["law"]["exponents"]["width"]["fitted"]
    assert any("n_train has one level" in n for n in doc["notes"])
    cells = pd.DataFrame(doc["cells"])
    assert cells["complexity"].tolist() == [2, 3, 4, 5, 6, 8]
    assert (cells["n_train"] == 600 * 64).all() and (cells["width"] == 32).all()
    assert doc["n_censored"] == 0 and doc["n_diverged_rows"] == 1


def test_records_the_family_the_error_and_what_was_skipped(planted):
    _, doc = planted
    assert doc["family"] == "sraven" and doc["metric"] == "error_ood" and doc["error"] == "1 - acc_ood"
    assert doc["mapping"]["complexity"].startswith("n_rules")
    assert set(doc["skipped"]) == {"theory_comparison", "theory_fit", "joint_surface", "by_router"}
    assert doc["by_router"] is None
    assert doc["theory_comparison"] == {"available": False, "reason": doc["skipped"]["theory_comparison"]}
    assert not doc["joint_surface"]["fitted"] and not doc["theory_fit"]["fitted"]
    assert not doc["k_eval"]["available"]  # the planted store has no k_eval table
    assert "no k_eval table" in doc["k_eval"]["reason"]


def test_a_flat_law_gives_an_exponent_near_zero(tmp_path):
    """Negative control: k* = 3 at every R; the exponent's CI holds 0 and excludes the other fixture's 0.8."""
    store = write_sraven_store(sraven_rows(a=3.0, b=0.0, rng_seed=3), tmp_path / "store")
    exp = _fit(store, tmp_path / "fits", "--bootstrap", "300")["law"]["exponents"]["complexity"]
    assert exp["ci95"][0] < 0 < exp["ci95"][1] and exp["ci95"][1] < 0.8


@pytest.mark.parametrize("metric", list(SRAVEN_METRICS))
def test_every_metric_is_one_minus_its_accuracy(planted, metric):
    store, _ = planted
    df = load_results(store)
    col = SRAVEN_METRICS[metric]
    acc = FAMILIES["sraven"].error_of[col].removeprefix("1 - ")
    np.testing.assert_allclose(df[col], 1 - df[acc])


def test_other_metric_and_censoring(planted, tmp_path):
    """--metric feat_id fits the per-feature error; a law that puts k* beyond T censors every cell,
    counted, and no law is fitted."""
    store, _ = planted
    doc = _fit(store, tmp_path / "f", "--metric", "feat_id", "--bootstrap", "50")
    assert doc["metric"] == "error_feat_id" and doc["error"] == "1 - feat_acc_id"
    high = write_sraven_store(sraven_rows(a=20.0, b=0.0, slope=0.001), tmp_path / "high")
    doc = _fit(high, tmp_path / "g", "--bootstrap", "50")
    assert doc["n_censored"] == 6 and doc["law"] is None
    assert all(c["censored"] == "high" for c in doc["cells"])


def test_fixed_training_set_is_the_cell_size(tmp_path):
    rows = sraven_rows(rules=(2, 4), n_seeds=2).assign(n_train=5000.0)
    df = check_results(rows)
    assert (df["n_train"] == 5000).all() and (df["problems_seen"] == 600 * 64).all()
    pd.testing.assert_frame_equal(check_results(df), df)  # mapping twice changes nothing


def test_family_from_rows_or_manifest(tmp_path):
    rows = sraven_rows(rules=(2, 4), n_seeds=2)
    assert load_results(write_sraven_store(rows, tmp_path / "a", manifest=False))["family"].eq("sraven").all()
    no_column = write_sraven_store(rows.drop(columns="family"), tmp_path / "b")
    assert load_results(no_column)["complexity"].tolist() == rows["n_rules"].astype(float).tolist()
    mismatch = write_sraven_store(rows.assign(family="regression"), tmp_path / "c")
    with pytest.raises(FitInputError, match="says family 'sraven' but the rows say 'regression'"):
        load_results(mismatch)


def _bad(args, tmp_path, capsys, match):
    out = tmp_path / "never"
    assert main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err, err
    assert not out.exists()


def test_unknown_metric_lists_the_familys_values(planted, tmp_path, capsys):
    store, _ = planted
    _bad([str(store), "--metric", "mse"], tmp_path, capsys,
         "unknown metric 'mse': allowed values are ood, id, train, feat_ood, feat_id (sraven results)")


def test_store_lacking_columns(tmp_path, capsys):
    rows = sraven_rows(rules=(2, 4), n_seeds=2).drop(columns=["acc_ood", "n_rules"])
    store = write_sraven_store(rows, tmp_path / "r")
    _bad([str(store)], tmp_path, capsys, "sraven results table lacks required column(s): n_rules, acc_ood")


def test_unknown_family_and_mixed_settings(tmp_path, capsys):
    rows = sraven_rows(rules=(2, 4), n_seeds=2)
    odd = write_sraven_store(rows, tmp_path / "odd")
    (odd / "manifest.json").write_text(json.dumps({"family": "vision"}))
    _bad([str(odd)], tmp_path, capsys, "unknown family 'vision': allowed values are regression, sraven")
    # same problems seen (600 x 64 = 300 x 128) but other settings: the cells repeat, and it says which
    mixed = pd.concat([rows, rows.assign(steps=300, batch=128, bundle_id="other")], ignore_index=True)
    _bad([str(write_sraven_store(mixed, tmp_path / "mixed"))], tmp_path, capsys, "steps, batch vary")


def test_accuracy_at_the_floor_is_flagged(tmp_path):
    """Every model of R = 8 at 0 % OOD accuracy (as at CPU scale): a flat curve, noted, censored low, and
    out of the law."""
    rows = sraven_rows()
    rows.loc[rows["n_rules"] == 8, "acc_ood"] = 0.0
    doc = _fit(write_sraven_store(rows, tmp_path / "store"), tmp_path / "fits", "--bootstrap", "100")
    flat = [n for n in doc["notes"] if "same seed-mean error at every k" in n]
    assert len(flat) == 1 and flat[0].startswith("1 cell(s)") and "complexity=8," in flat[0]
    cell = next(c for c in doc["cells"] if c["complexity"] == 8)
    assert cell["censored"] == "low" and doc["law"]["n_cells"] == 5
