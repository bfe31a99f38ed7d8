"""Inference-time k: every trained model evaluated at each k_eval = 1..T, stored as a long table beside
the bundle files, consistent with the rows at k_eval = k_train, and resumable with them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from grid_fixtures import ARMS

from simulations import grid, results
from simulations.config_schema import build
from simulations.families.regression import family as reg
from simulations.families.regression import train as tr
from simulations.families.regression.config import validate


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    out = tmp_path_factory.mktemp("keval")
    grid.run_grid(validate({**ARMS, "experts": ["learned"]}), out, progress=False)
    return out


def test_one_row_per_cell_seed_and_k_eval(store):
    rows, long = results.load(store), results.load_k_eval(store)
    assert len(results.bundle_files(store)) == len(list(store.glob(results.K_EVAL_GLOB)))
    assert len(long) == len(rows) * 8 and not long.duplicated(["cell_id", "seed", "k_eval"]).any()
    assert set(long["k_eval"]) == set(range(1, 9))
    assert "k_eval_mse_id" not in rows.columns  # the arrays live in the long table only


def test_k_eval_at_the_training_k_is_the_stored_test_error(store):
    long = results.load_k_eval(store)
    same = long[(long.k_eval == long.k) & (long.router != "dense")]
    assert len(same) == len(results.load(store).query("router != 'dense'"))
    rows = results.load(store).set_index(["cell_id", "seed"])
    stored = rows.loc[list(zip(same.cell_id, same.seed, strict=True))]
    np.testing.assert_allclose(same["test_mse_id"], stored["test_mse_id"], rtol=1e-6)
    np.testing.assert_allclose(same["test_mse_ood"], stored["test_mse_ood"], rtol=1e-6)
    assert long.loc[long.router == "dense", "test_mse_id"].isna().all()


def test_oracle_at_k_eval_past_s_times_r_is_flat(store):
    """The oracle leaves slots past s * r unused, so every k_eval >= s * r gives the same predictions."""
    long = results.load_k_eval(store)
    oracle = long[long.router == "oracle"]
    r = 8 // 4
    for (_, _), g in oracle.groupby(["cell_id", "seed"]):
        tail = g[g.k_eval >= g.complexity * r]["test_mse_id"].to_numpy()
        assert np.ptp(tail) == 0.0


def test_overwrite_removes_the_k_eval_files_too(store, tmp_path):
    cfg = validate({**ARMS, "experts": ["learned"], "router": ["learned"], "complexity": [1], "k": [1]})
    grid.run_grid(cfg, tmp_path, progress=False)
    assert list(tmp_path.glob(results.K_EVAL_GLOB))
    cfg2 = validate({**ARMS, "experts": ["learned"], "router": ["oracle"], "complexity": [1], "k": [1]})
    grid.run_grid(cfg2, tmp_path, overwrite=True, progress=False)
    long = results.load_k_eval(tmp_path)
    assert set(long["router"]) == {"oracle"}


@pytest.mark.parametrize("renormalize", ["k>1", "never", "always"])
def test_k_eval_curves_equal_a_full_evaluation_at_every_k(renormalize):
    """k_eval_curves runs the experts once and regates them per k_eval; it must give what evaluating
    the model at each k does (every arm, every gating rule, in chunks smaller than a split)."""
    cfg = validate({**ARMS, "router": ["learned", "oracle", "supervised"], "experts": ["learned", "teacher"],
                    "renormalize": renormalize, "max_steps": 20})
    for bundle in grid.make_bundles(cfg, "cpu"):
        first, models = bundle.models[0].cell, bundle.models
        data = tr.make_bundle_data([reg._task(reg.task_spec(m.cell, m.seed)) for m in models],
                                [m.cell["n_train"] for m in models], first["n_val"], first["n_test"],
                                torch.float32, "cpu",
                                n_experts=first["n_experts"] if first["experts"] == "teacher" else None)
        ks, seeds = [m.cell["k"] for m in models], [reg._init_seed(m.seed, m.cell) for m in models]
        model = tr.init_model(first["n_experts"], first["d_in"], first["width"], ks, seeds, first["impl"],
                              renormalize, torch.float32, "cpu")
        student = tr.Student(model, data, build(tr.TrainSettings, first))
        k_train = model.router.k_per_model.clone()
        fast = tr.k_eval_curves(student, chunk=25)
        # the model's k is untouched
        assert torch.equal(model.router.k_per_model, k_train) and model.router.k.tolist() == ks
        for j in range(model.n_experts):
            model.router.k = j + 1
            at_k = tr.Student(model, data, student.settings)  # fixed gates are computed at the model's k
            for split in ("id", "ood"):
                np.testing.assert_allclose(fast[split][:, j], tr._evaluate(at_k, split).double().numpy(),
                                           rtol=1e-5, err_msg=f"{bundle.name} {split} k_eval={j + 1}")


@pytest.mark.parametrize("router", ["learned", "oracle"])
def test_k_eval_curves_never_set_the_models_k(router, monkeypatch):
    """Gating at another k is an argument (Router.route / gates k=...), never a change of the router's
    k: an evaluation that set it would leave a model at the wrong k if it raised half way."""
    tasks = [reg._task(reg.TaskSpec(4, s, 4, teacher_width=8, seed=0)) for s in (1, 2)]
    data = tr.make_bundle_data(tasks, [32, 32], 16, 40, torch.float32, "cpu")
    model = tr.init_model(8, 4, 4, [2, 4], [0, 1], "dense", "k>1", torch.float32, "cpu")
    student = tr.Student(model, data, tr.TrainSettings(router=router))

    def refuse(self, value):
        raise AssertionError(f"k_eval_curves set router.k = {value!r}")

    monkeypatch.setattr(type(model.router), "k", property(type(model.router).k.fget, refuse))
    curves = tr.k_eval_curves(student, chunk=16)
    assert np.isfinite(curves["id"]).all() and curves["id"].shape == (2, 8)
