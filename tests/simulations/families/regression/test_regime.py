"""The regime sweep: variants run as ordinary grids, resume, bad sweep files, and, end to end, the
fits' summary of it (`python -m fits.regime`, tested on its own in tests/fits/test_regime_block.py) and
its figure."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from fits.regime import main as regime_main
from simulations.config import ConfigError
from simulations.families.regression import regime

BASE = {"n_skills": 4, "d_in": 4, "teacher_width": 8, "complexity": [1, 2], "n_experts": [8], "k": [1, 2],
        "n_train": [48], "width": [4], "seeds": [0, 1], "lr": 0.01, "max_steps": 20, "eval_every": 10,
        "patience": 2, "n_val": 32, "n_test": 64, "device": "cpu", "router": ["learned"],
        "experts": ["learned"]}
SWEEP = {"base": BASE, "variants": [{"name": "base"}, {"name": "noise", "set": {"router_noise": 1.0}},
                                    {"name": "teacher", "set": {"experts": ["teacher"]}}]}


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    root = tmp_path_factory.mktemp("regime")
    path = root / "sweep.yaml"
    path.write_text(yaml.safe_dump(SWEEP))
    assert regime.main(["--config", str(path), "--out", str(root / "out"), "--no-progress"]) == 0
    return root, path


def test_every_variant_is_a_grid_and_the_fits_summarise_them(swept):
    root, _ = swept
    assert regime_main([str(root / "out"), "--out", str(root / "fits")]) == 0
    table = pd.read_parquet(root / "fits" / "regime.parquet")
    assert set(table["variant"]) == {"base", "noise", "teacher"}
    assert len(table) == 3 * 2  # one row per (variant, complexity); one arm and one m each
    assert set(table.loc[table.variant == "teacher", "experts"]) == {"teacher"}
    assert table["routing_recall_at_s"].between(0, 1).all() and (table["n_seeds"] == 2).all()
    assert table["k_star"].isin([1, 2]).all()


def test_a_rerun_resumes_instead_of_retraining(swept, capsys):
    root, path = swept
    before = {p: p.stat().st_mtime_ns for p in (root / "out").glob("*/bundle-*.parquet")}
    assert regime.main(["--config", str(path), "--out", str(root / "out"), "--only", "noise",
                        "--no-progress"]) == 0
    assert {p: p.stat().st_mtime_ns for p in (root / "out").glob("*/bundle-*.parquet")} == before
    printed = capsys.readouterr().out
    assert "noise" in printed and f"python -m fits.regime {root / 'out'}" in printed


@pytest.mark.slow
def test_the_regime_figure_draws_from_the_sweep(swept, tmp_path):
    from figures.cli import main

    root, _ = swept
    assert regime_main([str(root / "out"), "--out", str(tmp_path / "fits")]) == 0
    assert main(["--regime", str(tmp_path / "fits"), "--only", "regime_map", "--out", str(tmp_path)]) == 0
    df = pd.read_csv(tmp_path / "regime_map.csv")
    assert set(df["variant"]) == {"base", "noise", "teacher"}


@pytest.mark.parametrize("sweep, message", [
    ({"variants": [{"name": "a"}]}, "sweep: expected a mapping with 'base'"),
    ({"base": BASE, "variants": [{"name": "a b"}]}, "variants\\[0\\].name"),
    ({"base": BASE, "variants": [{"name": "a"}, {"name": "a"}]}, "variants\\[1\\].name"),
    ({"base": BASE, "variants": [{"name": "a", "set": {"router": ["magic"]}}]}, "router: expected"),
    ({"base": BASE, "variants": [{"name": "a", "sett": {}}]}, "variants\\[0\\]: expected"),
])
def test_bad_sweep_files_are_one_line_errors_and_nothing_runs(tmp_path, capsys, sweep, message):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    with pytest.raises(ConfigError, match=message):
        regime.load_sweep(path)
    assert regime.main(["--config", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and not (tmp_path / "out").exists()


def test_unknown_variant_is_refused(swept, capsys):
    _, path = swept
    assert regime.main(["--config", str(path), "--only", "nope"]) == 2
    assert "only: unknown variant 'nope'" in capsys.readouterr().err


def test_builtin_sweep_is_valid():
    names = [n for n, _ in regime.load_sweep()]
    assert names[0] == "base" and len(names) == len(set(names)) >= 8
