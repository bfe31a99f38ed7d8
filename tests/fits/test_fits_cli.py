"""`python -m fits.optimal_k`: outputs, robustness, bad input (one line, non-zero exit, nothing written)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from fits.optimal_k import main
from fits.synthetic import PlantedLaw, planted_results

ROOT = Path(__file__).resolve().parents[2]


def _store(path: Path, df: pd.DataFrame) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for seed, part in df.groupby("seed"):
        part.to_parquet(path / f"bundle-seed{seed}.parquet", index=False)
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    df = planted_results(n_seeds=3, diverged_frac=0.03, rng_seed=7)
    return _store(tmp_path_factory.mktemp("results") / "quick", df)


def _run_module(args, **kw):
    # One BLAS thread, as threadpoolctl gives the fitters when installed: on a busy 2-core machine
    # multi-threaded OpenBLAS makes the surface fit's tiny L-BFGS-B steps 10-70x slower.
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "fits.optimal_k", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, **kw)


@pytest.mark.slow
def test_cli_writes_the_contract(store, tmp_path):
    out = tmp_path / "fits"
    run = _run_module([str(store), "--out", str(out), "--bootstrap", "2000", "--surface-bootstrap", "20"])
    assert run.returncode == 0, run.stderr
    printed = run.stdout
    assert "Law of k*" in printed and "k*_cont" in printed and "diverged row(s) excluded" in printed
    assert sorted(p.name for p in out.iterdir()) == [
        "bound_curves.parquet", "cells.csv", "kstar_arms.parquet", "law_band.parquet", "optimal_k.json",
        "report.md", "theory_terms.parquet"]
    doc = json.loads((out / "optimal_k.json").read_text())
    assert len(doc["cells"]) == 16
    for cell in doc["cells"]:
        assert {"complexity", "n_train", "width", "n_experts", "k_star", "k_star_ci", "censored"} <= set(cell)
        assert sum(cell["p_argmin"].values()) == pytest.approx(1.0)
    law = doc["law"]
    for f in ("complexity", "n_train", "width"):
        assert {"estimate", "se", "ci95"} <= set(law["exponents"][f])
        lo, hi = law["exponents"][f]["ci95"]
        assert lo < law["exponents"][f]["estimate"] < hi
    assert {"r2", "aic", "bic", "n_cells"} <= set(law) and law["n_cells"] >= 10
    assert "theory_comparison" in doc and doc["joint_surface"]["fitted"]
    assert doc["n_diverged_rows"] > 0
    cells = pd.read_csv(out / "cells.csv")
    assert len(cells) == 16 and {"k_star", "k_star_ci_low", "k_star_cont"} <= set(cells.columns)
    assert "## Law" in (out / "report.md").read_text()


@pytest.mark.slow
def test_cli_one_seed_and_all_censored_run_with_clear_notes(tmp_path, capsys):
    one = _store(tmp_path / "one", planted_results(n_seeds=1, rng_seed=1))
    assert main([str(one), "--out", str(tmp_path / "o1"), "--no-surface"]) == 0
    printed = capsys.readouterr().out
    assert "one seed only: no bootstrap possible" in printed
    doc = json.loads((tmp_path / "o1" / "optimal_k.json").read_text())
    assert doc["n_bootstrap"] == 0 and doc["cells"][0]["k_star_ci"] == [None, None]

    cens = _store(tmp_path / "cens", planted_results(law=PlantedLaw(b0=-6.0), n_seeds=2))
    assert main([str(cens), "--out", str(tmp_path / "o2"), "--bootstrap", "50", "--no-surface"]) == 0
    doc = json.loads((tmp_path / "o2" / "optimal_k.json").read_text())
    assert doc["law"] is None and "law not fitted: 0 usable cell(s)" in doc["law_not_fitted_reason"]
    assert all(c["censored"] == "low" for c in doc["cells"])


def _bad(args, tmp_path, capsys, match):
    out = tmp_path / "never"
    assert main([*args, "--out", str(out)]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err, err
    assert not out.exists()


def test_missing_path(tmp_path, capsys):
    _bad([str(tmp_path / "nope")], tmp_path, capsys, "does not exist")


def test_wrong_columns(tmp_path, capsys):
    store = _store(tmp_path / "r", planted_results(n_seeds=2).drop(columns=["test_mse_ood", "k"]))
    _bad([str(store)], tmp_path, capsys, "lacks required column(s): k, test_mse_ood")


def test_empty_table(tmp_path, capsys):
    store = _store(tmp_path / "r", planted_results(n_seeds=1))
    for f in store.iterdir():
        pd.read_parquet(f).iloc[:0].to_parquet(f)
    _bad([str(store)], tmp_path, capsys, "no rows")


def test_unknown_metric_and_options(store, tmp_path, capsys):
    _bad(
        [str(store), "--metric", "loss"],
        tmp_path,
        capsys,
        "unknown metric 'loss': allowed values are ood, id, train",
    )
    _bad([str(store), "--method", "gls"], tmp_path, capsys, "allowed values are wls, ols, hc3")
    _bad([str(store), "--bootstrap", "-1"], tmp_path, capsys, "--bootstrap must be >= 0")
    _bad([str(store), "--bootstrap", "many"], tmp_path, capsys, "invalid int value")


@pytest.mark.slow
def test_module_entry_point_other_metric_and_bad_path(store, tmp_path):
    run = _run_module([str(store), "--out", str(tmp_path / "f"), "--metric", "id", "--no-surface"])
    assert run.returncode == 0, run.stderr
    assert json.loads((tmp_path / "f" / "optimal_k.json").read_text())["metric"] == "test_mse_id"
    bad = _run_module([str(tmp_path / "missing"), "--out", str(tmp_path / "g")])
    assert bad.returncode != 0 and bad.stderr.strip().startswith("error: results path")
    assert len(bad.stderr.strip().splitlines()) == 1 and not (tmp_path / "g").exists()


def test_rows_of_two_grids_mixed_are_refused(tmp_path, capsys):
    df = planted_results(n_seeds=2)
    mixed = pd.concat([df, df.assign(renormalize=False)], ignore_index=True)
    store = _store(tmp_path / "r", mixed)
    _bad([str(store)], tmp_path, capsys, "renormalize vary")
