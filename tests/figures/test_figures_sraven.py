"""The SRAVEN figures (`sraven_accuracy`, `sraven_kstar`) from a synthetic SRAVEN store and the fits run
on it: their tables hold what the store and the fits say, and bad or missing inputs give one line."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from figure_fixtures import fixture_rows, write_store
from sraven_fixtures import RULES, T, sraven_rows, write_sraven_store

from figures import Inputs, main, sraven_accuracy, sraven_kstar
from fits.optimal_k import main as fits_main


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    root = tmp_path_factory.mktemp("sraven_figures")
    store = write_sraven_store(sraven_rows(), root / "sraven")
    assert fits_main([str(store), "--out", str(root / "fits"), "--bootstrap", "200"]) == 0
    return store, root / "fits"


@pytest.fixture(scope="module")
def inputs(good):
    return Inputs(sraven=good[0], sraven_fits=good[1])


def test_accuracy_table_is_the_seed_mean_per_r_and_k(inputs):
    df = sraven_accuracy.data(inputs)
    assert len(df) == 2 * 2 * len(RULES) * T  # (OOD, ID) x (problem, feature) x R x k
    raw = sraven_rows()
    for (panel, level), part in df.groupby(["panel", "level"]):
        col = sraven_accuracy.PANELS[panel][level]
        expect = raw[~raw["diverged"]].groupby(["n_rules", "k"])[col].mean()
        got = part.set_index(["n_rules", "k"])["mean"]
        np.testing.assert_allclose(got.loc[expect.index], expect)
        assert (part["chance"] == (8.0 ** -4 if level == "acc" else 1 / 8)).all()
    assert df["n_nan"].sum() == 4  # the one diverged model, in each of the four panels
    assert (df["ci_lo"] <= df["mean"]).all() and (df["mean"] <= df["ci_hi"]).all()


def test_ringed_k_is_the_fits_k_star(inputs):
    """The best k of the OOD whole-problem curve (highest accuracy) is the fits' k* (lowest 1 - acc_ood)."""
    df = sraven_accuracy.data(inputs)
    best = df[(df["panel"] == "OOD") & (df["level"] == "acc") & df["is_best"]].set_index("n_rules")["k"]
    cells = pd.DataFrame(inputs.sraven_fits["cells"]).set_index("complexity")["k_star"]
    assert len(best) == len(cells) == len(RULES)
    for r, k in best.items():
        assert cells[float(r)] == k


def test_kstar_table_has_the_cells_and_the_law(inputs):
    df = sraven_kstar.data(inputs)
    doc = inputs.sraven_fits
    pts = df[df["kind"] == "measured"]
    assert pts["n_rules"].tolist() == list(map(float, RULES))
    cells = pd.DataFrame(doc["cells"])
    np.testing.assert_allclose(pts["k_star"], cells["k_star_cont"])
    assert set(df["kind"]) == {"measured", "law"}  # no theory curve for SRAVEN
    law = df[df["kind"] == "law"]
    slope = np.polyfit(np.log(law["n_rules"]), np.log(law["k_star"]), 1)[0]
    b = doc["law"]["exponents"]["complexity"]
    assert slope == pytest.approx(b["estimate"], rel=1e-6) == pytest.approx(df["b_R"].iloc[0])
    assert [df["b_R_ci_lo"].iloc[0], df["b_R_ci_hi"].iloc[0]] == pytest.approx(b["ci95"])
    assert [df["b_R_boot_lo"].iloc[0], df["b_R_boot_hi"].iloc[0]] == pytest.approx(b["ci95_bootstrap"])
    assert (df["metric"] == "1 - acc_ood").all()


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


@pytest.mark.slow
def test_missing_inputs_name_their_commands(good, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--sraven", str(tmp_path / "none"), "--sraven-fits", str(tmp_path / "nofits"),
                 "--out", str(out), "--only", "sraven_kstar"]) == 2
    err = _one_line(capsys)
    assert err.startswith(f"figures: cannot draw sraven_kstar: missing {tmp_path / 'none'} "
                          "(run: python -m simulations.families.sraven); missing")
    assert err.endswith("(run: python -m fits.optimal_k results/sraven-quick --out results/fits-sraven)")
    assert main(["--sraven", str(good[0]), "--sraven-fits", str(tmp_path / "nofits"), "--out", str(out),
                 "--only", "sraven_accuracy"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [f"sraven_accuracy.{e}" for e in ("csv", "pdf", "png")]


@pytest.mark.slow
def test_wrong_or_stale_inputs_are_refused(good, tmp_path, capsys):
    store, fits = good
    regression = write_store(fixture_rows(), tmp_path / "regression")
    assert fits_main([str(regression), "--out", str(tmp_path / "rfits"), "--bootstrap", "0", "--no-surface",
                      "--no-theory"]) == 0
    lacking = write_sraven_store(sraven_rows().drop(columns=["acc_ood"]), tmp_path / "lacking")
    cases = [
        (store, tmp_path / "rfits", "sraven_kstar", "holds fits of regression results, not SRAVEN"),
        (regression, fits, "sraven_accuracy", "is not a SRAVEN store"),
        (lacking, fits, "sraven_accuracy", "lacks required column(s): acc_ood"),
    ]
    for sraven, sraven_fits, figure, expected in cases:
        out = tmp_path / "out"
        assert main(["--sraven", str(sraven), "--sraven-fits", str(sraven_fits), "--out", str(out),
                     "--only", figure]) == 2
        assert expected in _one_line(capsys)
        assert not out.exists()
    doc = json.loads((fits / "optimal_k.json").read_text())
    assert doc["family"] == "sraven"


def test_kstar_figure_without_a_law(good, tmp_path):
    """All cells censored, no law: the cells are still drawn, the law rows are NaN."""
    store, fits = good
    shutil.copytree(fits, tmp_path / "fits")
    path = tmp_path / "fits" / "optimal_k.json"
    doc = json.loads(path.read_text())
    doc["law"] = None
    path.write_text(json.dumps(doc))
    out = tmp_path / "out"
    assert main(["--sraven", str(store), "--sraven-fits", str(tmp_path / "fits"), "--out", str(out),
                 "--only", "sraven_kstar"]) == 0
    df = pd.read_csv(out / "sraven_kstar.csv")
    assert df.loc[df["kind"] == "law", "k_star"].isna().all() and df["b_R"].isna().all()
    assert df.loc[df["kind"] == "measured", "k_star"].notna().all()
