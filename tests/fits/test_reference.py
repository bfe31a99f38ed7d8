"""The reference results in docs/reference/ (fits.snapshot): each parses, its provenance names the preset
that made it (same config hash), and its cells and arms match that preset's design."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from simulations import grid
from simulations.arms import arm
from simulations.config import load_config

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "reference"
TEACHER = {"experts": ["teacher"], "width": [4]}
# directory -> (preset file, --set overrides, metric): how `make law` / `make standard` made it
DESIGNS = {
    "law": ("configs/law.yaml", {}, "id"),
    "law-ood": ("configs/law.yaml", {}, "ood"),
    "law-teacher": ("configs/law.yaml", TEACHER, "id"),
    "law-teacher-ood": ("configs/law.yaml", TEACHER, "ood"),
    "standard": ("configs/standard.yaml", {}, "ood"),
    "active-compute": ("configs/active_compute.yaml", {}, "id"),
}
# directory -> (preset file, --set overrides): how `make estimators` made it (ID metric, no theory fit)
ESTIMATOR_DESIGNS = {
    "estimators": ("configs/estimators.yaml", {}),
    "estimators-compositional": ("configs/estimators.yaml", {"task": "compositional"}),
    "estimators-single-skill": ("configs/estimators_single_skill.yaml", {}),
    "estimators-teacher-init": ("configs/estimators.yaml", {"router_init": "teacher",
                                                            "estimator": ["pathwise", "score"],
                                                            "complexity": [2, 4], "k": [2, 4, 8]}),
    "gate_values": ("configs/gate_values.yaml", {}),
}


def test_every_reference_directory_is_a_known_design():
    known = {**DESIGNS, **ESTIMATOR_DESIGNS}
    assert sorted(p.name for p in REFERENCE.iterdir() if p.is_dir()) == sorted(known)


@pytest.mark.parametrize("name", sorted(DESIGNS))
def test_a_reference_result_matches_its_preset(name):
    path, overrides, metric = DESIGNS[name]
    ref = REFERENCE / name
    prov = json.loads((ref / "provenance.json").read_text())
    doc = json.loads((ref / "optimal_k.json").read_text())
    cells = pd.read_csv(ref / "cells.csv")
    assert (ref / "report.md").read_text().startswith("# Optimal k per cell and the law of k*")
    config = load_config(ROOT / path, overrides)
    manifest = prov["manifest"]
    assert manifest["config_hash"] == config.config_hash()
    assert prov["wall_s"] > 0 and prov["machine"]["cpu_count"] >= 1 and len(manifest["git_commit"]) == 40
    assert doc["metric"] == f"test_mse_{metric}"
    n_models = len(grid.cells(config)) * len(config.axes.seeds)
    assert doc["n_rows"] == n_models
    # the top-level cells: the primary arm's, over the preset's levels (an OOD fit leaves out the
    # levels without held-out combinations: s = 1 here)
    axes = config.axes
    levels = [s for s in axes.complexity if metric == "id" or s > 1]
    assert sorted(cells["complexity"].unique()) == levels
    assert sorted(cells["n_train"].unique()) == sorted(axes.n_train)
    assert sorted(cells["width"].unique()) == sorted(axes.width)  # the active width under width_rule: active
    assert len(cells) == len(levels) * len(axes.n_train) * len(axes.width) * len(axes.n_experts)
    assert set(doc["by_router"]) == {arm(r, e, g).name for r, e in axes.arms() for g in axes.gates_for(r)}
    for block in doc["by_router"].values():
        assert set(block["laws_by_estimand"]) == {"enough", "discrete", "one_se", "enough_2"}


def estimator_map(name: str) -> pd.DataFrame:
    """The estimator map of a reference result (its optimal_k.json's `gate_map` block)."""
    doc = json.loads((REFERENCE / name / "optimal_k.json").read_text())
    return pd.DataFrame(doc["gate_map"]["rows"])


@pytest.mark.parametrize("name", sorted(ESTIMATOR_DESIGNS))
def test_an_estimator_reference_matches_its_preset(name):
    """Made from its preset (same config hash, every model), and its estimator map has a row per routed
    arm of the preset and complexity, each over all the preset's seeds."""
    path, overrides = ESTIMATOR_DESIGNS[name]
    ref = REFERENCE / name
    prov = json.loads((ref / "provenance.json").read_text())
    config = load_config(ROOT / path, overrides)
    assert prov["manifest"]["config_hash"] == config.config_hash()
    assert prov["wall_s"] > 0 and len(prov["manifest"]["git_commit"]) == 40
    doc = json.loads((ref / "optimal_k.json").read_text())
    assert doc["n_rows"] == len(grid.cells(config)) * len(config.axes.seeds)
    table = estimator_map(name)
    axes = config.axes
    arms = {arm(r, e, g, est) for r, e in axes.arms() for g in axes.gates_for(r)
            for est in axes.estimators_for(r)}
    assert set(table["arm"]) == {a.name for a in arms if a.routes}
    assert len(table) == len(set(table["arm"])) * len(axes.complexity) * len(axes.n_train)
    assert (table["n_seeds"] == len(axes.seeds)).all()


def _row(name: str, experts: str, estimator: str, s: int, n_train: int) -> pd.Series:
    t = estimator_map(name)
    hit = t[(t["router"] == "learned") & (t["experts"] == experts) & (t["estimator"] == estimator)
            & (t["complexity"] == s) & (t["n_train"] == n_train)]
    assert len(hit) == 1
    return hit.iloc[0]


def test_the_readme_states_the_estimator_maps_numbers():
    """The README's paragraph on the estimator map says what docs/reference/estimators* hold."""
    readme = " ".join((ROOT / "README.md").read_text().split())

    def pair(name, experts, estimator, n_train, col="recall_at_s"):
        return " and ".join(f"{_row(name, experts, estimator, s, n_train)[col]:.2f}" for s in (2, 4))

    assert f"recall at k = s {pair('estimators', 'teacher', 'score', 2000)} at s = 2 and 4, against " \
           f"{pair('estimators', 'teacher', 'pathwise', 2000)} with the pathwise" in readme
    assert f"(score function {pair('estimators', 'learned', 'score', 2000)})" in readme
    phase = [_row("estimators-single-skill", "learned", "score", s, 8000) for s in (2, 4)]
    ratios = " and ".join(f"{r['ratio_id']:.2f} [{r['ratio_id_lo']:.2f}, {r['ratio_id_hi']:.2f}]"
                          for r in phase)
    assert f"recall {phase[0]['recall_at_s']:.2f} and {phase[1]['recall_at_s']:.2f}, best ID error {ratios}" \
           in readme
    control = pair("estimators-single-skill", "learned", "pathwise", 8000)
    assert f"pathwise gradient reaches recall {control}" in readme
