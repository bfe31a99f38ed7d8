"""The error split (simulations.families.regression.error_split): a student given the oracle's routing
gets the oracle's error from all three evaluations and misroutes no point; a wrong router misroutes and
gains from the oracle's selection; arms without a learned router get NaN. And the route-free baseline of
the OOD split, which the OOD relative errors divide by."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from grid_fixtures import ARMS

from simulations import grid, routing
from simulations.families.regression import error_split
from simulations.families.regression.config import validate
from simulations.families.regression.tasks import CompositionalTask, TaskSpec
from simulations.families.regression.train import TrainSettings, init_model, make_bundle_data, train_bundle

S, D = 4, 4


def _tasks(s: int, n: int) -> list[CompositionalTask]:
    return [CompositionalTask(TaskSpec(S, s, D, teacher_width=8, seed=i, n_ref=4000)) for i in range(n)]


def _bundle(s: int, router: list[torch.Tensor], temperature: float = 1.0):
    """Teacher experts (T = S, k = s) behind the given routers, one model each, evaluated untrained
    (max_steps = 0), with the oracle arm's NMSE on the same experts: its gates are 1 / s on the active
    skills, so it predicts the clean target."""
    tasks = _tasks(s, len(router))
    data = make_bundle_data(tasks, [64] * len(tasks), 32, 400, torch.float64, "cpu", n_experts=S)
    model = init_model(S, D, 4, [s] * len(tasks), list(range(len(tasks))), "dense", "k>1", torch.float64,
                       "cpu", router_temperature=temperature)
    with torch.no_grad():
        model.router.weight.copy_(torch.stack(router))
    rows = train_bundle(model, data, TrainSettings(router="learned", experts="teacher", max_steps=0))
    oracle = {}
    for split in ("id", "ood"):
        g = routing.oracle_gates(data.z[split], data.complexity, torch.full((len(tasks),), s), S)
        pred = torch.einsum("mtn,mnt->mn", g, data.expert_out[split])
        mse = (pred - data.split(split)[1].squeeze(-1)).square().mean(1)
        oracle[split] = (mse / data.target_var).numpy()
    return rows, oracle, tasks


def _teacher_router(task: CompositionalTask, c: float = 1.0) -> torch.Tensor:
    return c * torch.as_tensor(task.U)  # scores x @ U: the student's top-s is the teacher's active set


@pytest.mark.parametrize("s", [1, 2, 3])
def test_the_oracles_routing_gives_the_oracles_error_and_no_misrouting(s):
    tasks = _tasks(s, 2)
    rows, oracle, _ = _bundle(s, [_teacher_router(t, c) for t, c in zip(tasks, (1.0, 5.0), strict=True)])
    for split in ("id", "ood"):
        np.testing.assert_array_equal(rows[f"misrouted_share_{split}"], 0.0)
        # the same selection with the model's own gates is the row itself
        np.testing.assert_allclose(rows[f"nmse_oracle_selection_{split}"], rows[f"test_nmse_{split}"],
                                   rtol=1e-12)
        # its selection with equal gates is the oracle (gates 1 / s on the active skills; up to rounding,
        # which the small error left, the noise, magnifies)
        np.testing.assert_allclose(rows[f"nmse_equal_gates_{split}"], oracle[split], rtol=1e-6)
        # the oracle predicts the clean target: what is left is the noise
        np.testing.assert_allclose(oracle[split], 0.01 / 1.01, rtol=0.25)


def test_with_equal_gate_values_all_three_are_the_oracles_error():
    """A router hot enough to keep the teacher's order but so cold its probabilities are near uniform
    (temperature 1e4) gates its top-s nearly 1 / s: the row's own error is then the oracle's too."""
    s = 2
    tasks = _tasks(s, 2)
    rows, oracle, _ = _bundle(s, [_teacher_router(t) for t in tasks], temperature=1e4)
    for split in ("id", "ood"):
        for col in (f"test_nmse_{split}", f"nmse_oracle_selection_{split}", f"nmse_equal_gates_{split}"):
            np.testing.assert_allclose(rows[col], oracle[split], rtol=1e-3)
        np.testing.assert_array_equal(rows[f"misrouted_share_{split}"], 0.0)


def test_a_wrong_router_misroutes_and_the_oracles_selection_beats_it():
    s = 2
    tasks = _tasks(s, 2)
    routers = [-_teacher_router(tasks[0]), torch.as_tensor(tasks[1].U[:, [1, 2, 3, 0]])]  # reversed, shifted
    rows, oracle, _ = _bundle(s, routers)
    for split in ("id", "ood"):
        assert (rows[f"misrouted_share_{split}"] > 0.5).all()
        assert (rows[f"nmse_oracle_selection_{split}"] < rows[f"test_nmse_{split}"]).all()
        assert (rows[f"nmse_equal_gates_{split}"] > oracle[split]).all()


def test_k_below_s_misroutes_every_point():
    s = 3
    tasks = [CompositionalTask(TaskSpec(S, s, D, teacher_width=8, seed=0, n_ref=4000))]
    data = make_bundle_data(tasks, [64], 32, 100, torch.float64, "cpu", n_experts=S)
    model = init_model(S, D, 4, [2], [0], "dense", "k>1", torch.float64, "cpu")
    with torch.no_grad():
        model.router.weight.copy_(_teacher_router(tasks[0]).unsqueeze(0))
    rows = train_bundle(model, data, TrainSettings(router="learned", experts="teacher", max_steps=0))
    assert rows["misrouted_share_id"].iloc[0] == 1.0


def test_oracle_selection_is_round_robin_over_the_skills_experts():
    """Two experts per skill (T = 2 S): the best of each active skill by p first (skills in the teacher's
    score order), then the second best; unmapped experts and inactive skills are never picked."""
    p = torch.tensor([0.05, 0.3, 0.1, 0.2, 0.15, 0.1, 0.05, 0.05]).view(1, 8, 1)
    mapping = torch.tensor([[0, 1, 2, 3, 0, 1, 2, -1]])
    z = torch.tensor([[[3.0, 2.0, 1.0, 0.0]]])  # skills 0, 1 active at s = 2, 0 ranked first
    want = {1: [4], 2: [4, 1], 3: [4, 1, 0], 4: [4, 1, 0, 5], 6: [4, 1, 0, 5]}
    for k, experts in want.items():
        got = error_split.oracle_selection(p, mapping, z, torch.tensor([2]), torch.tensor([k]))
        assert sorted(got[0, :, 0].nonzero().flatten().tolist()) == sorted(experts), k


def test_every_learned_router_row_has_the_split_and_the_others_nan():
    cfg = validate({**ARMS, "complexity": [2], "k": [2]})
    rows = pd.concat([grid.run_bundle(b) for b in grid.make_bundles(cfg, "cpu")], ignore_index=True)
    learned = rows["router"] == "learned"
    assert learned.any() and (~learned).any()
    for col in error_split.COLUMNS:
        assert rows.loc[learned, col].notna().all(), col
        assert rows.loc[~learned, col].isna().all(), col
    for split in ("id", "ood"):
        assert rows.loc[learned, f"misrouted_share_{split}"].between(0, 1).all()
    # relative errors divide by the baseline of their own split
    np.testing.assert_allclose(rows.rel_nmse_id, rows.test_nmse_id / rows.route_free_nmse)
    np.testing.assert_allclose(rows.rel_nmse_ood, rows.test_nmse_ood / rows.route_free_nmse_ood)
    assert (rows.route_free_nmse_ood != rows.route_free_nmse).all()


def test_route_free_baseline_on_ood_is_the_id_fit_on_ood_points():
    """route_free_nmse_ood: the mix fitted on the ID points, evaluated on OOD ones (a fresh ID sample
    where no combination is held out, so it is then about the ID value)."""
    task = CompositionalTask(TaskSpec(S, 2, D, teacher_width=8, seed=0, n_ref=4000))
    assert task.heldout
    x, y = task.sample("test_id", 20_000)
    design = np.column_stack([np.ones(len(y)), task.skills(x)])
    coef = np.linalg.lstsq(design, y, rcond=None)[0]
    xo, yo = task.sample("test_ood", 20_000)
    want = np.mean((yo - np.column_stack([np.ones(len(yo)), task.skills(xo)]) @ coef) ** 2) / task.target_var
    assert task.route_free_nmse_ood == pytest.approx(want, rel=1e-12)
    assert task.route_free_nmse_ood != task.route_free_nmse
    single = CompositionalTask(TaskSpec(S, 1, D, teacher_width=8, seed=0, n_ref=4000))
    assert not single.heldout
    assert single.route_free_nmse_ood == pytest.approx(single.route_free_nmse, rel=0.05)
