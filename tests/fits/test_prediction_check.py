"""Block `prediction_check`: a prediction directory beside a planted store gives, per cell, the predicted
and the measured k* and whether each lies in the other's interval; without --predictions it is skipped."""

from __future__ import annotations

import json

import pandas as pd

from fits.optimal_k import main
from fits.synthetic import planted_results


def _predictions(path, cells: pd.DataFrame, n_experts: int, k_pred: float):
    path.mkdir()
    pred = cells[["complexity", "n_train", "width"]].drop_duplicates().rename(
        columns={"width": "width_or_active_width"})
    pred = pred.assign(fixed="h", k_star_pred=k_pred, k_star_lo=k_pred, k_star_hi=k_pred, source="planted",
                       arm="x")
    pred.to_csv(path / "cells.csv", index=False)
    (path / "provenance.json").write_text(json.dumps({"design": {"n_experts": n_experts}}))
    return path


def test_a_prediction_is_held_against_every_measured_cell(tmp_path):
    df = planted_results(n_seeds=3, rng_seed=7)
    store = tmp_path / "store"
    store.mkdir()
    df.to_parquet(store / "bundle-a.parquet", index=False)
    n_experts = int(df["n_experts"].iloc[0])
    preds = _predictions(tmp_path / "pred", df, n_experts, k_pred=1.0)
    out = tmp_path / "fits"
    assert main([str(store), "--out", str(out), "--bootstrap", "50", "--no-surface", "--no-theory",
                 "--predictions", str(preds)]) == 0
    doc = json.loads((out / "optimal_k.json").read_text())
    block = doc["prediction_check"]
    cells = pd.DataFrame(block["cells"])
    assert len(cells) == len(doc["cells"]) == block["agreement"][0]["cells"]
    # a predicted k* of 1 lies in a measured interval only where that interval reaches 1, and a measured
    # k* lies in the prediction's zero-width interval only where it is 1
    assert (cells["pred_in_measured_ci"] == (cells["k_star_ci_low"] <= 1)).all()
    assert (cells["measured_in_pred_interval"] == (cells["k_star"] == 1)).all()
    assert (out / "prediction_check.parquet").is_file() and "Predicted against measured" in (
        out / "report.md").read_text()
    main([str(store), "--out", str(tmp_path / "plain"), "--bootstrap", "20", "--no-surface", "--no-theory"])
    plain = json.loads((tmp_path / "plain" / "optimal_k.json").read_text())
    assert plain["prediction_check"] == {"available": False, "reason": "no --predictions directory given"}
