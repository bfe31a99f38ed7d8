"""The regime summary (fits.regime, block `regime`) on planted rows whose answers are known, the block
inside `python -m fits.optimal_k`, `python -m fits.regime` over a sweep, and the figure reading it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from figure_fixtures import fixture_rows, write_regime_store, write_store

from figures import Inputs
from figures.regime_map import data as figure_data
from fits import blocks
from fits.data import load_results
from fits.gate_map import gate_map
from fits.optimal_k import main as fits_main
from fits.regime import COLUMNS, main, regime_table, store_name, sweep_table

KS = [1, 2, 4, 8]


def _rows(router: str, curve: dict[int, float], s: int = 2, seeds=(0, 1, 2)) -> list[dict]:
    """One arm's rows: ID NMSE curve[k] (1 % higher per seed), route-free baseline 0.5, recall 0.1 k
    (chance 0.05 k), gate mass 0.1 k + 0.05 (chance 0.02 k); seed 2's k = 8 run diverged."""
    out = []
    for seed in seeds:
        for k in KS:
            nmse = curve[k] * (1 + 0.01 * seed)
            out.append({"router": router, "experts": "learned", "seed": seed, "k": k, "complexity": s,
                        "n_train": 2000, "width": 8, "n_experts": 16, "task": "compositional",
                        "diverged": seed == 2 and k == 8, "test_nmse_id": nmse, "test_nmse_ood": 2 * nmse,
                        "rel_nmse_id": nmse / 0.5, "routing_recall": 0.1 * k,
                        "routing_recall_baseline": 0.05 * k, "routing_gate_mass": 0.1 * k + 0.05,
                        "routing_gate_mass_baseline": 0.02 * k})
    return out


def test_the_summary_reads_recall_at_s_and_the_error_at_k_star_off_known_curves():
    rows = pd.DataFrame(_rows("learned", {1: 0.9, 2: 0.6, 4: 0.3, 8: 0.01})
                        + _rows("oracle", {1: 0.5, 2: 0.1, 4: 0.2, 8: 0.3}))
    table = regime_table(rows, "base")
    assert list(table.columns) == COLUMNS and (table["variant"] == "base").all()
    got = table.set_index("arm")
    learned, oracle = got.loc["learned"], got.loc["oracle"]
    # the learned arm's k = 8 minimum holds for seeds 0 and 1 (seed 2 diverged there): k* = 8
    assert learned["k_star"] == 8 and oracle["k_star"] == 2
    np.testing.assert_allclose(learned["best_nmse_id"], np.mean([0.01, 0.0101]))
    np.testing.assert_allclose(learned["best_rel_nmse_id"], np.mean([0.01, 0.0101]) / 0.5)
    np.testing.assert_allclose(learned["routing_recall_at_k_star"], 0.8)
    np.testing.assert_allclose(learned["routing_recall_baseline_at_k_star"], 0.4)
    np.testing.assert_allclose(oracle["best_rel_nmse_id"], np.mean([0.1, 0.101, 0.102]) / 0.5)
    for arm in (learned, oracle):  # read at k = s = 2, every seed
        np.testing.assert_allclose([arm["routing_recall_at_s"], arm["routing_recall_baseline_at_s"],
                                    arm["routing_gate_mass_at_s"], arm["routing_gate_mass_baseline_at_s"]],
                                   [0.2, 0.1, 0.25, 0.04])
    assert learned["n_seeds"] == oracle["n_seeds"] == 3
    assert (learned["router"], learned["experts"]) == ("learned", "learned")


def test_the_summary_is_the_gate_maps_analysis():
    """Same cells, arms, k* and best error as the gate map of the same rows: one analysis, read twice."""
    rows = pd.DataFrame(_rows("learned", {1: 0.9, 2: 0.6, 4: 0.3, 8: 0.4}, s=4)
                        + _rows("oracle", {1: 0.5, 2: 0.1, 4: 0.1, 8: 0.1}, s=4))
    table, gm = regime_table(rows, "v"), gate_map(rows, n_boot=0)
    pd.testing.assert_series_equal(table["k_star"], gm["k_star_id"], check_names=False)
    pd.testing.assert_series_equal(table["best_nmse_id"], gm["best_nmse_id"])
    pd.testing.assert_series_equal(table["routing_recall_at_s"], gm["recall_at_s"], check_names=False)
    assert list(table["arm"]) == list(gm["arm"])


def test_without_routed_rows_the_summary_is_empty_with_its_columns():
    rows = pd.DataFrame(_rows("dense", {1: 0.9, 2: 0.6, 4: 0.3, 8: 0.4}))
    table = regime_table(rows, "v")
    assert table.empty and list(table.columns) == COLUMNS


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A store with routing controls (the figure fixture's arms) and its fits."""
    root = tmp_path_factory.mktemp("regime")
    store = write_store(fixture_rows(), root / "quick")
    assert fits_main([str(store), "--out", str(root / "fits"), "--bootstrap", "20", "--no-surface",
                      "--no-theory"]) == 0
    return store, root / "fits"


def test_the_block_writes_the_stores_summary(fitted):
    store, fits = fitted
    assert "regime" in blocks.by_name()
    written = pd.read_parquet(fits / "regime.parquet")
    expected = regime_table(load_results(store), store_name(store))
    pd.testing.assert_frame_equal(written, expected, check_dtype=False)
    assert set(written["variant"]) == {"quick"}
    assert set(written["arm"]) == {"learned", "oracle", "teacher_experts"}
    doc = json.loads((fits / "optimal_k.json").read_text())
    assert doc["regime"]["available"] and doc["regime"]["variant"] == "quick"
    assert "## Regime: where the routed arms find the skills" in (fits / "report.md").read_text()


def test_the_figure_reads_the_blocks_table_one_row_per_arm(fitted):
    _, fits = fitted
    df = figure_data(Inputs(regime=fits))
    assert set(df["row"]) == {"quick learned m=1000", "quick learned m=4000", "quick oracle m=1000",
                              "quick oracle m=4000", "quick teacher_experts m=1000",
                              "quick teacher_experts m=4000"}
    np.testing.assert_allclose(df["recall_above_chance"],
                               df["routing_recall_at_s"] - df["routing_recall_baseline_at_s"])


def test_a_store_without_routing_controls_skips_the_block(tmp_path):
    rows = fixture_rows().drop(columns=["routing_recall"])
    store = write_store(rows[rows["router"] == "learned"], tmp_path / "plain")
    assert fits_main([str(store), "--out", str(tmp_path / "fits"), "--bootstrap", "0", "--no-surface",
                      "--no-theory"]) == 0
    doc = json.loads((tmp_path / "fits" / "optimal_k.json").read_text())
    assert doc["regime"] == {"available": False, "reason": "the store has no routing controls"}
    assert not (tmp_path / "fits" / "regime.parquet").exists()


def test_the_cli_stacks_a_sweeps_variants(tmp_path, capsys):
    sweep = write_regime_store(tmp_path / "sweep")
    assert main([str(sweep), "--out", str(tmp_path / "fits")]) == 0
    written = pd.read_parquet(tmp_path / "fits" / "regime.parquet")
    pd.testing.assert_frame_equal(written, sweep_table(sweep))
    assert set(written["variant"]) == {"base", "teacher-experts"}
    assert set(written.loc[written["variant"] == "teacher-experts", "experts"]) == {"teacher"}
    printed = capsys.readouterr().out
    assert "teacher-experts" in printed and "regime.parquet" in printed


def test_the_cli_refuses_a_sweep_without_stores_in_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "--out", str(tmp_path / "fits")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no regime results under")
    assert not (tmp_path / "fits").exists()
