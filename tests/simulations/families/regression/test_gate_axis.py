"""The grid's `gate` axis: validation, old ids kept at the default, cells only for router kinds that use
the model's gates, bundles split by gate, and a student of each new family trained end to end (the
gate head with every estimator through the grid)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from grid_fixtures import ARMS, TINY

from fits.data import check_results
from simulations import arms, grid, results
from simulations.config_schema import ConfigError
from simulations.estimators import ESTIMATORS
from simulations.families.regression.config import validate
from simulations.families.regression.tasks import CompositionalTask, TaskSpec
from simulations.families.regression.train import TrainSettings, init_model, make_bundle_data, train_bundle


def test_a_bogus_gate_is_a_one_line_error_naming_the_field_and_values():
    with pytest.raises(ConfigError) as err:
        validate({**TINY, "gate": ["bogus"]})
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("gate:")
    assert all(g in msg for g in ("softmax", "sigmoid", "uniform"))


def test_the_default_gate_keeps_every_id():
    """gate: [softmax] (or the scalar) hashes cells and the config exactly as a config without it."""
    without = validate(dict(ARMS))
    for value in (["softmax"], "softmax"):
        cfg = validate({**ARMS, "gate": value})
        assert [c["cell_id"] for c in grid.cells(cfg)] == [c["cell_id"] for c in grid.cells(without)]
        assert cfg.config_hash() == without.config_hash()
    assert {c["gate"] for c in grid.cells(without)} == {"softmax"}


def test_only_router_kinds_that_use_the_gates_vary_by_it():
    raw = {**ARMS, "router": ["learned", "oracle"], "experts": ["learned"]}
    both = validate({**raw, "gate": ["softmax", "uniform"]})
    cells = grid.cells(both)
    by = {(r, g): [c["cell_id"] for c in cells if (c["router"], c["gate"]) == (r, g)]
          for r in ("learned", "oracle") for g in ("softmax", "uniform")}
    plain = grid.cells(validate(raw))
    n = len([c for c in plain if c["router"] == "learned"])
    assert len(by["learned", "softmax"]) == len(by["learned", "uniform"]) == n
    assert len(by["oracle", "softmax"]) == len([c for c in plain if c["router"] == "oracle"]) > 0
    assert by["oracle", "uniform"] == []
    assert by["learned", "softmax"] + by["oracle", "softmax"] == [c["cell_id"] for c in plain]
    assert not set(by["learned", "uniform"]) & set(by["learned", "softmax"])  # new ids for a new gate
    assert len({c["cell_id"] for c in cells}) == len(cells)
    # the axis is in the config hash once it leaves the default
    assert both.config_hash() != validate(raw).config_hash()
    # bundles never mix gates, and only the kinds that use the gates are told about it
    uses = [r.name for r in arms.ROUTERS.values() if r.uses_gate]
    assert uses == ["learned", "oracle_select", "supervised", "top_p"]
    for bundle in grid.make_bundles(both, "cpu"):
        assert len({m.cell["gate"] for m in bundle.models}) == 1


@pytest.mark.parametrize("gate", ["sigmoid", "uniform", "head"])
def test_a_student_of_each_family_trains(gate):
    """A tiny bundle (k = 1 and 2) of each new family: the model is built with the gate, the training
    error falls, and the k = 1 router moves (it has a gradient)."""
    task = CompositionalTask(TaskSpec(4, 2, 4, teacher_width=8, seed=0, n_ref=4000))
    data = make_bundle_data([task, task], [64, 64], 32, 64, torch.float64, "cpu")
    model = init_model(4, 4, 4, [1, 2], [0, 0], "dense", "k>1", torch.float64, "cpu", gate=gate)
    assert model.router.gate == gate
    router0 = model.router.weight.detach().clone()
    head0 = model.router.gate_weight.detach().clone() if gate == "head" else None
    with torch.no_grad():
        before = (model(data.x_train) - data.y_train).square().mean(1).squeeze(-1)
    rows = train_bundle(model, data, TrainSettings(lr=0.01, max_steps=80, eval_every=10, patience=100))
    assert not rows.diverged.any()
    assert (torch.tensor(rows.train_mse.to_numpy()) < 0.8 * before).all(), (rows.train_mse, before)
    assert (model.router.weight - router0).abs().flatten(1).sum(1).min() > 1e-3
    if gate == "head":  # the gate head learns too (k = 1: raw sigmoid gates under "k>1")
        assert (model.router.gate_weight - head0).abs().flatten(1).sum(1).min() > 1e-3


def test_the_grid_runs_a_gate_axis_and_stores_the_column(tmp_path):
    raw = {**TINY, "complexity": [1], "n_train": [32], "seeds": [0], "max_steps": 10,
           "gate": ["softmax", "sigmoid", "uniform"]}
    summary = grid.run_grid(validate(raw), tmp_path, progress=False)
    rows = results.load(tmp_path)
    assert summary is not None and sorted(rows["gate"].unique()) == ["sigmoid", "softmax", "uniform"]
    by_gate = rows.set_index(["gate", "k"])["train_mse"]
    assert by_gate["sigmoid"].tolist() != by_gate["softmax"].tolist() != by_gate["uniform"].tolist()
    # a gate family is part of the arm: the fits split the rows by it
    checked = check_results(rows)
    assert set(arms.arm_names(checked)) == {"learned", "learned-sigmoid", "learned-uniform"}
    assert arms.arm_named("learned-uniform") == arms.arm("learned", "learned", "uniform")


def test_the_grid_runs_the_gate_head_with_every_estimator(tmp_path):
    """gate "head" (appended to the axis) with the learned router and each estimator through the grid:
    finite rows, the gate and estimator stored, one arm each."""
    raw = {**TINY, "complexity": [2], "n_train": [32], "seeds": [0], "max_steps": 10, "gate": ["head"],
           "estimator": list(ESTIMATORS)}
    summary = grid.run_grid(validate(raw), tmp_path, progress=False)
    rows = results.load(tmp_path)
    assert summary is not None and set(rows["gate"]) == {"head"}
    assert set(rows["estimator"]) == set(ESTIMATORS) and len(rows) == 2 * len(ESTIMATORS)  # k = 1, 2
    assert not rows.diverged.any() and np.isfinite(rows.test_mse_id).all()
    names = {arms.arm("learned", "learned", "head", e).name for e in ESTIMATORS}
    assert set(arms.arm_names(check_results(rows))) == names
