"""The single-skill data design and the teacher router start: the s = 1 share replaces exactly its
points, the warm-up phase trains at k = 1 and hands the models back at their own k, the teacher start
routes to the teacher's active skills before any training, and the settings hash only when used."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from simulations.config import ConfigError, load_config
from simulations.families.regression import family
from simulations.families.regression import train as tr
from simulations.families.regression.task_registry import make_task
from simulations.families.regression.tasks import TaskSpec
from simulations.grid import cells
from simulations.selection import topk_mask

BASE = {"task": "contextual", "n_skills": 4, "d_in": 4, "d_context": 4, "teacher_width": 8, "complexity": [2],
        "n_experts": [8], "k": [2], "n_train": [64], "width": [4], "seeds": [0], "lr": 0.01, "max_steps": 10,
        "eval_every": 5, "n_val": 32, "n_test": 64, "device": "cpu"}


def _tasks(s: int):
    return [make_task(TaskSpec(4, s, 4, teacher_width=8, seed=i, n_ref=4000, task="contextual", d_context=4))
            for i in (0, 1)]


def test_mix_in_replaces_the_first_points_by_the_other_tasks():
    data = tr.make_bundle_data(_tasks(2), [40, 40], 8, 8, torch.float64, "cpu", n_experts=8)
    single = tr.make_bundle_data(_tasks(1), [40, 40], 8, 8, torch.float64, "cpu", n_experts=8)
    mixed = tr.mix_in(data, single, [10, 0])
    assert torch.equal(mixed.x_train[0, :10], single.x_train[0, :10])
    assert torch.equal(mixed.y_train[0, 10:], data.y_train[0, 10:])
    assert torch.equal(mixed.x_train[1], data.x_train[1])
    assert torch.equal(mixed.expert_out["train"][0, :10], single.expert_out["train"][0, :10])
    assert mixed.levels("train")[0, :10].eq(1).all() and mixed.levels("train")[0, 10:].eq(2).all()
    assert torch.equal(mixed.x_id, data.x_id) and torch.equal(mixed.levels("id"), data.complexity)


def test_teacher_start_selects_the_active_skills_at_k_r_s():
    """Every replica scores its skill's teacher score: the top r s experts are the r replicas of the s
    active skills (T = 2S here), and with T = S the top s are the active skills."""
    tasks = _tasks(2)
    data = tr.make_bundle_data(tasks, [200, 200], 8, 8, torch.float64, "cpu")
    active = torch.stack([torch.as_tensor(t.active_mask(x.numpy(), np.full(200, 2)))
                          for t, x in zip(tasks, data.x_train, strict=True)]).transpose(1, 2)  # [M, S, N]
    for T, k in ((8, 4), (4, 2)):
        logits = torch.bmm(data.x_train, family.teacher_router(tasks, T, d_context=4).double())
        keep = topk_mask(torch.softmax(logits.transpose(1, 2), 1), torch.tensor([k, k]), k, k)
        assert torch.equal(keep, active.repeat(1, T // 4, 1))


def test_warm_up_trains_at_k_one_and_restores_each_models_k():
    data = tr.make_bundle_data(_tasks(2), [40, 40], 8, 8, torch.float64, "cpu")
    single = tr.make_bundle_data(_tasks(1), [40, 40], 8, 8, torch.float64, "cpu")
    runs = []
    for warm in (None, tr.WarmUp(single, 5)):
        model = tr.init_model(8, 4, 4, [2, 4], [0, 1], "dense", "k>1", torch.float64, "cpu", d_context=4)
        runs.append(tr.train_bundle(model, data, tr.TrainSettings(max_steps=4, eval_every=2), warm_up=warm))
        assert model.router.k.tolist() == [2, 4]
    assert not runs[0]["test_mse_id"].equals(runs[1]["test_mse_id"])


def test_the_settings_hash_only_when_used_and_refuse_a_mixed_task():
    default = {c["cell_id"] for c in cells(load_config(overrides=BASE))}
    for extra in ({"single_skill_steps": 5}, {"single_skill_share": 0.25}, {"router_init": "teacher"},
                  {"estimator": ["score"], "score_samples": 2}):
        assert not default & {c["cell_id"] for c in cells(load_config(overrides={**BASE, **extra}))}
    with pytest.raises(ConfigError, match=r"^single_skill_steps, single_skill_share: .*complexity_mix"):
        load_config(overrides={**BASE, "complexity": [2], "complexity_mix": [1, 2], "single_skill_steps": 5})
    with pytest.raises(ConfigError, match=r"^single_skill_share: expected a number in \[0, 1\)"):
        load_config(overrides={**BASE, "single_skill_share": 1.0})
    with pytest.raises(ConfigError, match=r"^router_init: expected one of random, teacher; got 'oracle'$"):
        load_config(overrides={**BASE, "router_init": "oracle"})


def test_a_grid_with_the_curriculum_runs_and_stores_it(tmp_path):
    from simulations import results
    from simulations.grid import run_grid

    cfg = load_config(overrides={**BASE, "single_skill_steps": 5, "single_skill_share": 0.25,
                                 "router_init": "teacher", "estimator": ["pathwise", "score"],
                                 "router": ["learned", "oracle"], "experts": ["learned", "teacher"]})
    summary = run_grid(cfg, tmp_path / "g", progress=False)
    assert not summary["failed"]
    rows = results.load(tmp_path / "g")
    assert len(rows) == 5  # the learned router x 2 expert kinds x 2 estimators, the oracle once
    assert set(rows["single_skill_steps"]) == {5} and set(rows["router_init"]) == {"teacher"}
    assert sorted(rows["estimator"].unique()) == ["pathwise", "score"]
