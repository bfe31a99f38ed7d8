"""The reference results in docs/reference/ (fits.references): each is one of the registered fits, parses,
was made by its preset at one clean commit (same config hash, every model), and its cells and arms match
that preset's design."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from fits.references import NOT_MADE_CLEAN, REFERENCES, Fit, registered_fits
from simulations import grid
from simulations.arms import arm
from simulations.families import SRAVEN

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "reference"
FITS = registered_fits()
ESTIMATOR_FITS = sorted(f.name for f in REFERENCES["estimators"].fits)
# the regression fits whose top-level cells are the primary arm's over the preset's axes
DESIGN_FITS = sorted(n for n, (f, g) in FITS.items() if g.family == "regression" and n not in ESTIMATOR_FITS
                     and n != "adaptive" and (REFERENCE / n).is_dir())


def metric_of(f: Fit) -> str:
    return f.args[f.args.index("--metric") + 1] if "--metric" in f.args else "ood"


PREDICTIONS = "predictions"  # fits.predictions: the bound's k*, written before the measurement; not a fit
MADE = sorted(p.name for p in REFERENCE.iterdir() if p.is_dir() and p.name != PREDICTIONS)
CLEAN = sorted(set(FITS) - set(NOT_MADE_CLEAN))


def test_every_reference_directory_is_a_registered_fit_and_every_clean_fit_has_one():
    assert set(MADE) <= set(FITS) and set(CLEAN) <= set(MADE) and set(NOT_MADE_CLEAN) <= set(FITS)


def test_a_fit_listed_as_not_made_clean_is_absent_or_predates_the_record_of_runs():
    """The list cannot hide a reference made by `make reference`: what stands there has no runs."""
    for name in NOT_MADE_CLEAN:
        ref = REFERENCE / name
        if ref.is_dir():
            assert "runs" not in json.loads((ref / "provenance.json").read_text())["manifest"], name


@pytest.mark.parametrize("name", MADE)
def test_a_reference_was_made_by_its_preset_with_every_model(name):
    f, g = FITS[name]
    ref = REFERENCE / name
    prov = json.loads((ref / "provenance.json").read_text())
    config = g.config()
    assert prov["manifest"]["config_hash"] == config.config_hash() and prov["wall_s"] > 0
    doc = json.loads((ref / "optimal_k.json").read_text())
    where = [a.split("=", 1) for a, flag in zip(f.args[1:], f.args, strict=False) if flag == "--where"]
    fitted = [c for c in grid.cells(config) if all(str(c[k]) == v for k, v in where)]  # its rows (--where)
    assert doc["n_rows"] == len(fitted) * len(config.axes.seeds) and doc.get("where", []) == [
        f"{k}={v}" for k, v in where]
    assert (ref / "report.md").is_file() and (ref / "cells.csv").is_file()
    if config.family == SRAVEN and config.training.patience:  # trained to a plateau: its curves are shipped
        curves = pd.read_csv(ref / "curves.csv")
        assert curves.groupby(["cell_id", "seed"]).ngroups == doc["n_rows"]  # the fit's models
        assert curves["step"].min() == 0 and curves["feat_acc_ood"].between(0, 1).all()
    if (ref / "means.csv").exists():
        means = pd.read_csv(ref / "means.csv")
        assert len(means) == len(grid.cells(config)) and (means["n_seeds"] == len(config.axes.seeds)).all()


@pytest.mark.parametrize("name", CLEAN)
def test_a_reference_was_made_at_one_clean_commit(name):
    f, g = FITS[name]
    prov = json.loads((REFERENCE / name / "provenance.json").read_text())
    manifest = prov["manifest"]
    assert prov["command"] == g.command() and prov["machine"]["cpu_count"] >= 1
    runs = manifest["runs"]
    assert runs and all(r["git_clean"] is True for r in runs)
    assert {r["git_commit"] for r in runs} == {manifest["git_commit"]} and len(manifest["git_commit"]) == 40
    assert len(prov["fits_commit"]) == 40 and (REFERENCE / name / "means.csv").is_file()


@pytest.mark.parametrize("name", DESIGN_FITS)
def test_a_reference_matches_its_presets_design(name):
    """The top-level cells are the primary arm's over the preset's levels (an OOD fit leaves out the
    levels without held-out combinations: s = 1), and every arm has its laws."""
    f, g = FITS[name]
    ref = REFERENCE / name
    doc = json.loads((ref / "optimal_k.json").read_text())
    cells = pd.read_csv(ref / "cells.csv")
    assert (ref / "report.md").read_text().startswith("# Optimal k per cell and the law of k*")
    config, metric = g.config(), metric_of(f)
    assert doc["metric"] == f"test_mse_{metric}"
    axes = config.axes
    levels = [s for s in axes.complexity if metric == "id" or s > 1]
    assert sorted(cells["complexity"].unique()) == levels
    assert sorted(cells["n_train"].unique()) == sorted(axes.n_train)
    assert sorted(cells["width"].unique()) == sorted(axes.width)  # the active width under width_rule: active
    assert len(cells) == len(levels) * len(axes.n_train) * len(axes.width) * len(axes.n_experts)
    arms = {arm(r, e, g) for r, e in axes.arms() for g in axes.gates_for(r)}
    assert set(doc["by_router"]) == {a.name for a in arms if a.routes}  # a dense arm has no k to fit
    for block in doc["by_router"].values():
        assert set(block["laws_by_estimand"]) == {"enough", "discrete", "one_se", "enough_2"}


def estimator_map(name: str) -> pd.DataFrame:
    """The estimator map of a reference result (its optimal_k.json's `gate_map` block)."""
    doc = json.loads((REFERENCE / name / "optimal_k.json").read_text())
    return pd.DataFrame(doc["gate_map"]["rows"])


@pytest.mark.parametrize("name", [n for n in ESTIMATOR_FITS if (REFERENCE / n).is_dir()])
def test_an_estimator_map_has_every_routed_arm(name):
    """A row per routed arm of the preset and complexity, each over all the preset's seeds."""
    axes = FITS[name][1].config().axes
    table = estimator_map(name)
    arms = {arm(r, e, g, est) for r, e in axes.arms() for g in axes.gates_for(r)
            for est in axes.estimators_for(r)}
    assert set(table["arm"]) == {a.name for a in arms if a.routes}
    assert len(table) == len(set(table["arm"])) * len(axes.complexity) * len(axes.n_train)
    assert (table["n_seeds"] == len(axes.seeds)).all()
