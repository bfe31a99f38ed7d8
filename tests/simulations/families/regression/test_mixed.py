"""Mixed complexity: each input's s drawn from `complexity_mix`, the target normalised per level, the
held-out combinations the union over levels, and the routing functions taking a per-point s."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from grid_fixtures import ARMS

from fits import optimal_k
from simulations import grid, results, routing
from simulations.config_schema import ConfigError
from simulations.families.regression import train as tr
from simulations.families.regression.config import validate
from simulations.families.regression.tasks import CompositionalTask, TaskSpec, _reference_sample

MIX = (1, 2, 4)


def mixed(seed: int = 0, n_ref: int = 20_000) -> CompositionalTask:
    return CompositionalTask(TaskSpec(8, 4, 8, teacher_width=16, seed=seed, n_ref=n_ref, complexity_mix=MIX))


def test_each_levels_clean_target_has_mean_0_and_variance_1_on_the_reference_sample():
    task = mixed()
    sp = task.spec
    x_ref = _reference_sample(task, sp.seed, sp.n_skills, sp.d_in, sp.teacher_width, sp.n_ref)[0]
    for s in MIX:
        y = task.clean_target_at(x_ref, np.full(len(x_ref), s))
        assert abs(y.mean()) < 1e-10 and y.var() == pytest.approx(1.0, rel=1e-10)
    # level s's target is the top-s skills' sum, as the unmixed task of that s has it
    plain = CompositionalTask(TaskSpec(8, 2, 8, teacher_width=16, seed=0, n_ref=20_000))
    np.testing.assert_allclose(task.clean_target_at(x_ref[:500], np.full(500, 2)),
                               plain.clean_target(x_ref[:500]))


def test_heldout_is_the_union_over_levels_and_each_point_is_split_by_its_own_level():
    task = mixed()
    union = [c for s in MIX for c in task.heldout_at(s)]
    assert list(task.heldout) == union and task.heldout_at(1) == () and len(task.heldout_at(2)) > 0
    assert task.heldout_at(4) == CompositionalTask(TaskSpec(8, 4, 8, teacher_width=16, n_ref=20_000)).heldout
    held = {frozenset(c) for c in task.heldout}
    for split, want in (("test_id", False), ("test_ood", True)):
        x, _, s = task.sample(split, 2000, levels=True)
        mask = task.active_mask(x, s)
        assert all((frozenset(np.flatnonzero(row)) in held) == want for row in mask)
        assert (mask.sum(1) == s).all()
    assert 1 not in set(task.sample("test_ood", 500, levels=True)[2])  # H_1 is empty


def test_levels_are_drawn_from_the_mix_deterministically_and_prefix_stable():
    a, b = mixed(seed=3), mixed(seed=3)
    x, y, s = a.sample("train", 3000, levels=True)
    assert set(s) == set(MIX)
    for part, whole in zip(b.sample("train", 700, levels=True), (x, y, s), strict=True):
        np.testing.assert_array_equal(part, whole[:700])
    np.testing.assert_array_equal(a.sample("train", 3000)[1], y)
    assert not np.array_equal(mixed(seed=4).sample("train", 100, levels=True)[2], s[:100])


def test_an_unmixed_task_draws_as_before_and_reports_its_own_s():
    task = CompositionalTask(TaskSpec(8, 2, 8, teacher_width=16, seed=0, n_ref=5000))
    x, y = task.sample("train", 300)
    x2, y2, s = task.sample("train", 300, levels=True)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert (s == 2).all()


def test_per_point_routing_functions_equal_the_per_model_ones_at_the_models_s():
    z = torch.randn(3, 50, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    s, k = torch.tensor([1, 2, 3]), torch.tensor([2, 3, 8])
    per_point = s.view(3, 1).expand(3, 50).contiguous()
    assert torch.equal(routing.active_skills(z, s), routing.active_skills(z, per_point))
    assert torch.equal(routing.oracle_gates(z, s, k, 8), routing.oracle_gates(z, per_point, k, 8))
    assert torch.equal(routing.supervision_target(z, s, 8), routing.supervision_target(z, per_point, 8))


def test_oracle_gates_on_teacher_experts_give_each_points_clean_target():
    task = mixed(n_ref=5000)
    data = tr.make_bundle_data([task], [200], 16, 300, torch.float64, "cpu", n_experts=16)
    s = data.complexity_points["id"]
    assert torch.equal(data.levels("id"), s) and data.levels("id", slice(0, 5)).shape == (1, 5)
    gates = routing.oracle_gates(data.z["id"], s, torch.tensor([16]), 16)
    pred = torch.einsum("mtn,mnt->mn", gates, data.expert_out["id"])[0].numpy()
    x = data.x_id[0].numpy()
    np.testing.assert_allclose(pred, task.clean_target_at(x, s[0].numpy()), atol=1e-10)
    assert (gates > 0).sum(1)[0].tolist() == (2 * s[0]).tolist()  # r = 2 replicas of each active skill


MIXED_GRID = {**ARMS, "n_skills": 4, "complexity": [4], "complexity_mix": [1, 2, 4], "n_experts": [8],
              "k": [4], "router": ["top_p", "learned", "oracle", "dense"], "experts": ["learned"],
              "top_p": 0.6, "seeds": [0, 1]}


@pytest.mark.parametrize("change, message", [
    ({"complexity": [2, 4]}, "complexity: with complexity_mix it must be"),
    ({"complexity": [2]}, "complexity: with complexity_mix it must be"),
    ({"complexity_mix": [1, 5]}, "complexity_mix: every level must be in 1..n_skills"),
    ({"complexity_mix": [1, 1, 4]}, "complexity_mix: expected distinct integers"),
    ({"complexity_mix": 4}, "complexity_mix: expected a list of integers"),
    ({"top_p": 0}, r"top_p: expected a number in \(0, 1\]"),
    ({"top_p": 1.5}, r"top_p: expected a number in \(0, 1\]"),
])
def test_config_errors_are_one_line_and_name_the_field(change, message):
    with pytest.raises(ConfigError, match=message) as err:
        validate({**MIXED_GRID, **change})
    assert "\n" not in str(err.value)


def test_a_mixed_top_p_grid_stores_mean_experts_by_level(tmp_path):
    grid.run_grid(validate(MIXED_GRID), tmp_path, progress=False)
    rows, long = results.load(tmp_path), results.load_experts_by_s(tmp_path)
    assert "mean_experts_by_s" not in rows.columns and set(rows["complexity_mix"]) == {"1,2,4"}
    routed = rows[rows.router != "dense"]
    assert routed["mean_experts_id"].between(1, 4).all()
    assert rows[rows.router == "dense"]["mean_experts_id"].isna().all()
    assert len(long) == len(routed) * 3 and set(long["s"]) == {1, 2, 4}
    oracle = long[long.router == "oracle"].groupby("s")["mean_experts_id"].mean()
    assert oracle.to_dict() == {1: 2.0, 2: 4.0, 4: 4.0}  # min(k, s r) with r = 2, k = 4
    assert (long[long.router == "learned"]["mean_experts_id"] == 4).all()
    assert len(list(tmp_path.glob(results.EXPERTS_GLOB))) == len(results.bundle_files(tmp_path))
    fits_out = tmp_path.parent / f"{tmp_path.name}-fits"
    doc = optimal_k.run([str(tmp_path), "--out", str(fits_out), "--bootstrap", "20", "--no-surface",
                         "--no-theory"])
    slopes = {r["arm"]: r["slope"] for r in doc["adaptive_k"]["slopes"]}
    assert slopes["oracle"] == pytest.approx(4 / 7) and slopes["learned"] == 0  # (2, 4, 4) on (1, 2, 4)
    assert "## Adaptive k: experts per input by s" in (fits_out / "report.md").read_text()
    grid.run_grid(validate({**MIXED_GRID, "router": ["oracle"]}), tmp_path, overwrite=True, progress=False)
    assert set(results.load_experts_by_s(tmp_path)["router"]) == {"oracle"}


def test_an_unmixed_grid_writes_no_experts_table(tmp_path):
    grid.run_grid(validate({**ARMS, "router": ["top_p"], "experts": ["learned"], "k": [2]}), tmp_path,
                  progress=False)
    assert not list(tmp_path.glob(results.EXPERTS_GLOB)) and results.load_experts_by_s(tmp_path).empty
    assert results.load(tmp_path)["mean_experts_id"].between(1, 2).all()


def test_the_contextual_tasks_levels_are_set_by_the_context():
    """On the contextual task the context sets each point's s (so the router can see it): the same
    contexts give the same levels whatever else is drawn, and on the ID stream every level occurs."""
    from simulations.families.regression.task_registry import make_task

    task = make_task(TaskSpec(n_skills=8, complexity=4, d_in=8, task="contextual", complexity_mix=(1, 2, 4),
                              seed=3, n_ref=4000))
    u, y, s = task.sample("train", 3000, levels=True)
    again = u.copy()
    again[:, : task.spec.d_in] = np.random.default_rng(0).standard_normal((len(u), task.spec.d_in))
    rng = np.random.default_rng(1)
    np.testing.assert_array_equal(task.draw_levels(u, rng), s)
    np.testing.assert_array_equal(task.draw_levels(again, rng), s)  # x plays no part
    assert set(np.unique(s)) == {1, 2, 4}
    for level in (1, 2, 4):  # each level's target is normalised on its own
        assert abs(y[s == level].var() - task.target_var) < 0.2
