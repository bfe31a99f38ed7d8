"""Fits of a store with routing controls: one law per arm (`by_router`), tests of the complexity
exponent against 0 and 1, per-cell k* beside the theory's, and the inference-time-k block."""

from __future__ import annotations

import json

import pytest
from figure_fixtures import fixture_rows, write_store

from fits.k_eval import best_k_eval
from fits.optimal_k import main
from simulations.results import load_k_eval

pytestmark = pytest.mark.slow  # every test needs `fitted`, the full fits run on a fixture store


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("arms")
    results = write_store(fixture_rows(), root / "results")
    assert main([str(results), "--out", str(root / "fits"), "--bootstrap", "200", "--no-surface",
                 "--theory-bootstrap", "0"]) == 0
    return results, json.loads((root / "fits" / "optimal_k.json").read_text())


def test_one_block_per_top_k_arm_and_the_top_level_is_the_learned_arm(fitted):
    _, doc = fitted
    assert list(doc["by_router"]) == ["learned", "oracle", "teacher_experts"]  # dense rows are references
    assert doc["arm"] == "learned" and doc["law"] == doc["by_router"]["learned"]["law"]
    assert doc["by_router"]["oracle"]["law"]["k_source"] == "discrete"
    for block in doc["by_router"].values():
        exp = block["law"]["exponents"]["complexity"]
        assert exp["ci95"][0] < exp["estimate"] < exp["ci95"][1]
        assert exp["ci95_bootstrap"][0] <= exp["ci95_bootstrap"][1]
        # OOD fits leave out s = 1, which has no held-out combinations (fits.data.law_rows)
        assert {c["complexity"] for c in block["cells"]} == {2, 4, 8}
        assert all("k_star_theory" in c and "routing_recall_at_k_star" in c for c in block["cells"])


def test_planted_proportional_law_passes_b_s_1_and_fails_b_s_0(fitted):
    """The fixture plants k* proportional to s in every arm: b_s = 1 must stand, b_s = 0 must fall."""
    _, doc = fitted
    for name in ("learned", "oracle"):
        tests = doc["by_router"][name]["complexity_tests"]
        assert tests["b_s=1"]["p_value"] > 0.01 and tests["b_s=0"]["p_value"] < 1e-4, name
        assert abs(doc["by_router"][name]["affine_vs_power_law_delta_aic"]) < 10


def test_k_eval_finds_the_training_k_when_it_is_best(fitted):
    """The fixture's k_eval curves are lowest at the training k: every best k_eval must equal it."""
    results, doc = fitted
    block = doc["k_eval"]
    assert block["available"] and {r["arm"] for r in block["by_complexity"]} == {
        "learned", "oracle", "teacher_experts"}
    for row in block["by_complexity"]:
        assert row["equal"] == 1.0 and row["equal_ci"] == [1.0, 1.0]
    cells, _ = best_k_eval(load_k_eval(results), n_boot=0)
    assert (cells["best_k_eval"] == cells["k_train"]).all() and cells["train_k_is_best"].all()
