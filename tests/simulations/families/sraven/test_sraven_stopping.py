"""Early stopping of the SRAVEN trainer (patience, val_every, min_delta) and the learning curves it
stores: the stopping rule and best checkpoints on synthetic accuracies, a bundle that stops at the
first check it can, and the grid's curves tables (written, loaded, removed by --overwrite, absent
without early stopping); the defaults change nothing (tests/simulations/test_pins.py, the reference
slices)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from simulations import grid, results
from simulations.config import load_config
from simulations.families.sraven import ModelSpec, SravenSettings, family, train_bundle
from simulations.families.sraven.cli import main
from simulations.families.sraven.train import _Stopping

TINY = {"name": "tiny", "k": [1, 2], "n_rules": [2], "seeds": [0, 1], "n_experts": 4, "d_model": 8,
        "d_expert": 4, "n_heads": 2, "n_blocks": 1, "steps": 30, "batch": 8, "n_eval": 32,
        "tokens": "column", "max_models_per_bundle": 2, "device": "cpu", "workers": 1}


def test_stopping_rule_and_best_checkpoints_on_synthetic_accuracies():
    st = SravenSettings(steps=1000, patience=2, val_every=10, min_delta=0.05)
    param = torch.zeros(2, 3)
    stop = _Stopping([param], st)
    # model 0 keeps rising by more than min_delta; model 1 peaks at the second check, then drifts
    accs = [(0.1, 0.5), (0.2, 0.6), (0.3, 0.58), (0.4, 0.62), (0.5, 0.6)]
    for i, acc in enumerate(accs):
        param.fill_(float(i))  # the parameters at check i
        stop.check(np.array(acc), [param], step=10 * i)
        stop.freeze([param])
    # model 1: rose at checks 0 and 1 only (0.62 - 0.6 <= 0.05), so stopped after 2 more, at step 30
    assert stop.stopped.tolist() == [False, True]
    assert stop.stop_step.tolist() == [1000, 30]
    assert stop.best_step.tolist() == [40, 30]  # its best accuracy (0.62) came at its stopping check
    assert param[1].tolist() == [3.0] * 3 and param[0].tolist() == [4.0] * 3  # frozen at its best
    param.fill_(9.0)
    stop.freeze([param], every=True)  # the end: every model back at its best
    assert param[:, 0].tolist() == [4.0, 3.0]


def test_a_bundle_stops_when_every_model_has_stopped():
    specs = [ModelSpec(k=k, n_rules=2, seed=0) for k in (1, 2)]
    st = SravenSettings(steps=200, batch=8, n_eval=32, d_model=8, d_expert=4, n_heads=2, n_blocks=1,
                        tokens="column", patience=1, val_every=5, min_delta=1.0, k_eval=False)
    rows = train_bundle(specs, st)  # no accuracy can rise by 1.0: both stop at the second check
    assert rows["steps_run"].tolist() == [5, 5] and rows["stopped_early"].all()
    assert rows["best_step"].isin([0, 5]).all() and rows["val_feat_acc_best"].between(0, 1).all()
    history = rows.attrs["history"]
    assert sorted(history["step"].unique()) == [0, 5]
    assert {"feat_acc_val", "acc_val", "ce_val"} <= set(history.columns)
    assert rows["min_delta"].eq(1.0).all()
    plain = train_bundle(specs, SravenSettings(steps=3, batch=8, n_eval=32, d_model=8, d_expert=4, n_heads=2,
                                               n_blocks=1, k_eval=False))
    assert "min_delta" not in plain.columns and "steps_run" not in plain.columns


@pytest.fixture(scope="module")
def stopped_store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stopping")
    cfg = tmp / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({**TINY, "patience": 2, "val_every": 10, "estimator": ["pathwise", "score"],
                                   "score_samples": 2}))
    out = tmp / "store"
    assert main(["--config", str(cfg), "--out", str(out), "--no-progress"]) == 0
    return cfg, out


def test_the_grid_stores_the_curves_of_every_model(stopped_store):
    _, out = stopped_store
    rows = results.load(out)
    assert len(rows) == 8 and set(rows["estimator"]) == {"pathwise", "score"}
    assert not any(c.startswith(results.CURVE_PREFIX) for c in rows.columns)
    curves = results.load_curves(out)
    assert len(list(out.glob(results.CURVES_GLOB))) == len(list(out.glob(results.BUNDLE_GLOB))) == 4
    for (_, _), g in curves.groupby(["cell_id", "seed"]):
        assert g["step"].is_monotonic_increasing and g["step"].iloc[0] == 0
        stop = g["steps_run"].iloc[0]
        assert stop in set(g["step"]) and g["step"].iloc[-1] >= stop  # the bundle runs to its last stop
        # frozen at its best checkpoint: every later check gives the values of the check it was taken at
        best = g[g["step"] == g["best_step"].iloc[0]].iloc[0]
        for _, later in g[g["step"] > stop].iterrows():
            assert later["ce_val"] == best["ce_val"] and later["ce_ood"] == best["ce_ood"]
    assert {"feat_acc_val", "feat_acc_ood", "acc_id", "train_ce", "estimator"} <= set(curves.columns)


def test_overwrite_removes_the_curves_and_plain_grids_write_none(stopped_store, tmp_path):
    cfg, out = stopped_store
    plain = tmp_path / "plain.yaml"
    plain.write_text(yaml.safe_dump(TINY))
    copy = tmp_path / "copy"
    assert main(["--config", str(plain), "--out", str(copy), "--no-progress"]) == 0
    assert not list(copy.glob(results.CURVES_GLOB)) and results.load_curves(copy).empty
    for f in out.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    assert main(["--config", str(plain), "--out", str(copy), "--overwrite", "--no-progress"]) == 0
    assert not list(copy.glob(results.CURVES_GLOB))


def test_dry_run_times_each_estimator_apart(stopped_store, tmp_path, capsys, monkeypatch):
    """The estimators' steps cost differently: the estimate times one bundle per estimator."""
    cfg, _ = stopped_store
    out = tmp_path / "planned"
    assert main(["--config", str(cfg), "--out", str(out), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "models: 8" in text and "estimated time" in text and not out.exists()
    groups = []
    monkeypatch.setattr(family, "_estimate_group", lambda b, *_: groups.append(b) or 1.0)
    bundles = grid.make_bundles(load_config(cfg, family="sraven"), "cpu")
    assert family.estimate_seconds(bundles) == 2.0  # one estimate per estimator's bundles
    assert [sorted({m.cell["estimator"] for b in g for m in b.models}) for g in groups] == [["pathwise"],
                                                                                           ["score"]]
