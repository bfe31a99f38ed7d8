"""The plateau test (fits.plateau, block `plateau`) recovers which synthetic curves were flat, and
`--where` selects a store's rows: one estimator of a SRAVEN store that holds two, checked end to end on a
tiny early-stopped grid, with one-line errors for a bad selection."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from fits.data import FitInputError
from fits.fit_parser import parse_options
from fits.optimal_k import main as fits_main
from fits.options import FitOptions
from fits.plateau import TOLERANCE, group_table, model_table
from simulations.families.sraven.cli import main as grid_main


def _curve(cell: str, levels: np.ndarray, stop: int, stopped: bool, final: float, every: int = 100):
    steps = np.arange(len(levels)) * every
    curve = pd.DataFrame({"cell_id": cell, "seed": 0, "step": steps, "feat_acc_ood": levels})
    meta = {"estimator": "score", "n_rules": 4, "k": 2, "steps_run": stop, "best_step": stop,
            "stopped_early": stopped, "patience": 5, "val_every": every}
    return curve.assign(**meta), {"cell_id": cell, "seed": 0, "feat_acc_ood": final}


def test_plateau_recovers_which_synthetic_curves_were_flat():
    rise = np.linspace(0.2, 0.9, 21)
    flat = np.r_[np.linspace(0.2, 0.8, 10), np.full(11, 0.8)]
    cases = {  # name: (curve, stop, stopped early, final, at plateau?)
        "flat": (flat, 2000, True, 0.8, True),
        "capped": (rise, 2000, False, 0.9, False),  # still rising at the cap
        "early_but_rising": (np.r_[flat[:15], 0.8 + 0.02 * np.arange(1, 7)], 2000, True, 0.92, False),
        "far_from_best": (flat, 2000, True, 0.8 - 2 * TOLERANCE, False),
    }
    parts = [_curve(name, c, stop, stopped, final) for name, (c, stop, stopped, final, _) in cases.items()]
    curves = pd.concat([p[0] for p in parts], ignore_index=True)
    rows = pd.DataFrame([p[1] for p in parts])
    table = model_table(curves, rows).set_index("cell_id")
    assert len(table) == len(cases)
    for cell, (_, _, _, _, expect) in cases.items():
        assert bool(table.loc[cell, "at_plateau"]) is expect, cell
    flat_row = table.loc["flat"]
    assert abs(flat_row["rise"]) < 1e-12 and flat_row["gap"] == 0
    summary = group_table(table)
    assert summary["models"].tolist() == [4] and summary["at_plateau"].tolist() == [0.25]


def test_where_selects_rows_and_refuses_bad_selections():
    df = pd.DataFrame({"estimator": ["pathwise", "score", "score"], "k": [1, 2, 3]})
    assert FitOptions(where=("estimator=score",)).select(df)["k"].tolist() == [2, 3]
    assert FitOptions(where=("estimator=score", "k=3")).select(df)["k"].tolist() == [3]
    with pytest.raises(FitInputError, match="no column 'arm'"):
        FitOptions(where=("arm=x",)).select(df)
    with pytest.raises(FitInputError, match="found: pathwise, score"):
        FitOptions(where=("estimator=swap",)).select(df)
    with pytest.raises(FitInputError, match="FIELD=VALUE"):
        FitOptions(where=("estimator",)).check()
    assert parse_options(["--where", "estimator=score", "--where", "k=2"]).where == ("estimator=score", "k=2")
    assert parse_options([]).where == ()


@pytest.fixture(scope="module")
def two_estimator_store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("where")
    cfg = tmp / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({
        "name": "tiny", "k": [1, 2], "n_rules": [2, 3], "seeds": [0, 1, 2], "n_experts": 4, "d_model": 8,
        "d_expert": 4, "n_heads": 2, "n_blocks": 1, "steps": 20, "batch": 8, "n_eval": 32, "tokens": "column",
        "estimator": ["pathwise", "score"], "score_samples": 2, "patience": 1, "val_every": 10,
        "max_models_per_bundle": 2, "device": "cpu", "workers": 1}))
    out = tmp / "store"
    assert grid_main(["--config", str(cfg), "--out", str(out), "--no-progress"]) == 0
    return out


def test_fits_of_one_estimator_read_only_its_rows(two_estimator_store, tmp_path, capsys):
    out = tmp_path / "fits"
    assert fits_main([str(two_estimator_store), "--out", str(out), "--where", "estimator=score",
                      "--bootstrap", "20", "--metric", "feat_ood"]) == 0
    doc = json.loads((out / "optimal_k.json").read_text())
    assert doc["where"] == ["estimator=score"] and doc["n_rows"] == 12
    assert doc["plateau"]["available"] and {g["estimator"] for g in doc["plateau"]["groups"]} == {"score"}
    assert doc["k_eval"]["available"]
    assert "rows where estimator=score" in (out / "report.md").read_text()
    plateau = pd.read_parquet(out / "plateau.parquet")
    assert len(plateau) == 12 and set(plateau["estimator"]) == {"score"}
    capsys.readouterr()
    bad = tmp_path / "bad"
    assert fits_main([str(two_estimator_store), "--out", str(bad), "--where", "estimator=swap"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "estimator" in err[0] and not bad.exists()
