"""Routing controls and measures: the oracle against the teacher's active sets, the expert -> skill map,
recall and gate mass with their chance baselines, and the arms end to end in a tiny grid."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from grid_fixtures import ARMS

from simulations import grid, results, routing
from simulations.config import ConfigError
from simulations.families.regression.config import validate
from simulations.families.regression.tasks import CompositionalTask, TaskSpec
from simulations.moe import TopKMoE

S = 4


def teacher(s: int, seed: int = 0) -> CompositionalTask:
    return CompositionalTask(TaskSpec(S, s, 4, teacher_width=8, seed=seed, n_ref=4000))


def expected_gates(task: CompositionalTask, x: np.ndarray, k: int, T: int) -> np.ndarray:
    """The documented oracle rule, written point by point from the teacher's own active sets."""
    s, r = task.spec.complexity, T // S
    z = task.scores(x)
    out = np.zeros((T, len(x)))
    for n, active in enumerate(task.active_sets(x)):
        ranked = sorted(active, key=lambda j: -z[n, j])  # active skills, best score first
        picks = [rep * S + j for rep in range(r) for j in ranked][:k]
        for e in picks:
            out[e, n] = 1.0 / (s * sum(1 for p in picks if p % S == e % S))
    return out


@pytest.mark.parametrize("s", [1, 2, 3])
@pytest.mark.parametrize("T", [4, 8, 12])
def test_oracle_selects_replicas_of_the_teachers_active_skills(s, T):
    task = teacher(s)
    x, _ = task.sample("train", 200)
    ks = torch.arange(1, T + 1)
    z = torch.as_tensor(task.scores(x)).expand(T, -1, -1)
    gates = routing.oracle_gates(z, torch.full((T,), s), ks, T)
    assert gates.is_contiguous()  # at T = S (r = 1) too: the sparse layer views them flat
    gates = gates.numpy()
    for i, k in enumerate(ks.tolist()):
        np.testing.assert_allclose(gates[i], expected_gates(task, x, k, T), rtol=0, atol=1e-15)
        # every point gets min(k, s) skills' worth of gate; at k = q * s the gates are uniform 1 / k
        np.testing.assert_allclose(gates[i].sum(0), min(k, s) / s)
        if k % s == 0 and k <= s * T // S:
            assert set(np.unique(gates[i])) == {0.0, 1.0 / k}


def test_oracle_needs_replicas():
    with pytest.raises(ValueError, match="multiple of n_skills"):
        routing.oracle_gates(torch.zeros(1, 3, 4), torch.tensor([1]), torch.tensor([1]), 6)


def test_measures_recover_the_oracle_and_show_chance_for_permuted_inputs():
    s, T = 2, 8
    task = teacher(s)
    x, _ = task.sample("train", 3000)
    ks = torch.tensor([1, 2, 3, 4, 8])
    M = len(ks)
    z = torch.as_tensor(task.scores(x)).expand(M, -1, -1)
    sv = torch.full((M,), s)
    gates = routing.oracle_gates(z, sv, ks, T)
    active = routing.active_skills(z, sv)
    np.testing.assert_array_equal(active[0].numpy(), _active_np(task, x))
    mapping = routing.skill_map(gates, active)
    # every expert of an active-skill replica that is ever used maps to its own skill
    used = mapping >= 0
    assert torch.equal(mapping[used], (torch.arange(T).expand(M, -1) % S)[used])
    recall, mass = routing.routing_measures(gates > 0, gates, active, mapping)
    np.testing.assert_allclose(recall.numpy(), np.minimum(ks.numpy(), s) / s)
    np.testing.assert_allclose(mass.numpy(), 1.0)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    recall_b, mass_b = routing.routing_measures(gates[:, :, perm] > 0, gates[:, :, perm], active, mapping)
    # chance: permuted routing is independent of the active set, so the expected gate mass is
    # sum_j (share of the gate on skill j) * P(j active)
    assert (recall_b < recall - 0.2).all()
    per_expert = gates.sum(2) / gates.sum((1, 2))[:, None]  # [M, T]
    share = torch.stack([(per_expert * (mapping == j)).sum(1) for j in range(S)], 1)
    chance = (share * active.double().mean(1)).sum(1)
    np.testing.assert_allclose(mass_b.numpy(), chance.numpy(), atol=0.02)


def _active_np(task: CompositionalTask, x: np.ndarray) -> np.ndarray:
    out = np.zeros((len(x), S), dtype=bool)
    np.put_along_axis(out, task.active_sets(x), True, axis=1)
    return out


def test_skill_map_uses_gates_when_every_expert_is_selected():
    """At k = T the selection says nothing; gate weights still do."""
    task = teacher(1)
    x, _ = task.sample("train", 2000)
    z = torch.as_tensor(task.scores(x))[None]
    active = routing.active_skills(z, torch.tensor([1]))
    soft = torch.softmax(4 * z, dim=-1).transpose(1, 2)  # a router that prefers the active skill
    gates = torch.cat([soft, soft], dim=1)  # T = 2S, every expert selected
    mapping = routing.skill_map(gates, active)
    assert torch.equal(mapping[0], torch.arange(2 * S) % S)


def test_fixed_gates_run_exactly_the_gated_experts():
    torch.manual_seed(0)
    M, T, N = 3, 8, 40
    moe = TopKMoE(M, T, 4, 5, k=2, dtype=torch.float64, seed=1)
    x = torch.randn(M, N, 4, dtype=torch.float64)
    gates = torch.rand(M, T, N, dtype=torch.float64) * (torch.rand(M, T, N) < 0.3)
    expected = torch.zeros(M, N, 1, dtype=torch.float64)
    for i in range(M):
        for j in range(T):
            h = torch.relu(x[i] @ moe.w1[i, j] + moe.b1[i, j])
            expected[i] += gates[i, j, :, None] * (h @ moe.w2[i, j] + moe.b2[i, j])
    for impl in ("dense", "sparse"):
        moe.impl = impl
        y = moe(x, gates=gates)
        torch.testing.assert_close(y, expected, rtol=1e-12, atol=1e-12)
        (g,) = torch.autograd.grad(y.sum(), moe.w1)
        assert moe.router.weight.grad is None and torch.isfinite(g).all()
    with pytest.raises(ValueError, match="gates must have shape"):
        moe(x, gates=gates[:, :, :5])


def test_route_free_baseline_reaches_the_noise_floor_when_every_skill_is_active():
    """s = S: the target is a fixed sum of all skills, so the best fixed mix leaves only the noise."""
    full = teacher(S)
    floor = full.spec.noise**2 / full.target_var
    assert full.route_free_nmse == pytest.approx(floor, rel=0.05)
    values = [teacher(s).route_free_nmse for s in (1, 2, 3)]
    assert values == sorted(values, reverse=True) and values[0] == pytest.approx(1 - 1 / S, abs=0.1)


@pytest.fixture(scope="module")
def arms_rows(tmp_path_factory):
    out = tmp_path_factory.mktemp("arms")
    grid.run_grid(validate(dict(ARMS)), out, progress=False)
    return results.load(out)


def test_every_arm_is_in_the_store_with_its_measures(arms_rows):
    df = arms_rows
    arms = set(zip(df.router, df.experts, strict=True))
    assert arms == {("learned", "learned"), ("oracle", "learned"), ("dense", "learned"),
                    ("learned", "teacher")}
    assert len(df) == 4 * 2 * 3
    oracle = df[df.router == "oracle"]
    assert (oracle.loc[oracle.k >= oracle.complexity, "routing_recall"] == 1).all()
    np.testing.assert_allclose(oracle.routing_gate_mass, 1.0)
    assert df.loc[df.router == "dense", "routing_recall"].isna().all()
    learned = df[df.router == "learned"]
    for col in results.ROUTING_COLUMNS:
        assert learned[col].between(0, 1).all()
    np.testing.assert_allclose(df.rel_nmse_id, df.test_nmse_id / df.route_free_nmse)
    assert df.route_free_nmse.between(0, 1).all()


def test_teacher_arm_trains_only_the_router():
    cfg = validate({**ARMS, "router": ["learned"], "experts": ["teacher"], "complexity": [1], "k": [2]})
    (bundle,) = grid.make_bundles(cfg, "cpu")
    rows = grid.run_bundle(bundle)
    assert rows.experts.eq("teacher").all() and np.isfinite(rows.test_mse_id).all()
    # k = s with a perfect router would give the noise floor; the stored error is at most the untrained one
    assert (rows.test_nmse_id < 1.5).all() and not math.isnan(rows.routing_recall.iloc[0])


@pytest.mark.parametrize("override, message", [
    ({"router": ["learned", "magic"]}, "router: expected a non-empty list"),
    ({"experts": "frozen"}, "experts: expected"),
    ({"router": ["oracle"], "experts": ["learned"], "n_experts": [6]}, "n_experts: the oracle router need"),
    ({"router": ["learned"], "n_experts": [6]}, "n_experts: teacher's skills as experts need"),
    ({"balance_loss": -1}, "balance_loss: expected a number >= 0"),
    ({"router_lr_mult": 0}, "router_lr_mult: expected a number > 0"),
    ({"router_temperature": 0}, "router_temperature: expected a number > 0"),
    ({"router_init_scale": -0.5}, "router_init_scale: expected a number >= 0"),
])
def test_bad_control_settings_are_one_line_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        validate({**ARMS, **override})


def test_default_arm_keeps_the_cell_ids_of_earlier_stores():
    """Stores from before the controls hashed cells and configs without the new fields: the learned
    arm at default router settings must hash exactly as they did; every other arm must differ. The
    fields those stores lacked and the runtime fields are spelled out here, as they were then."""
    from simulations.config import stable_hash

    later = ("router", "experts", "router_lr_mult", "balance_loss", "router_noise",
                      "router_temperature", "router_init_scale", "gate")
    later += ("task", "d_context")  # the contextual task's settings
    later += ("complexity_mix", "top_p", "top_p_entropy")  # adaptive k (docs/tasks.md)
    later += ("width_rule",)  # fixed active compute (docs/tasks.md)
    later += ("estimator", "score_samples", "swap_weight", "single_skill_steps", "single_skill_share",
              "router_init")  # the estimators (docs/tasks.md)
    runtime = ("name", "device", "max_models_per_bundle", "threads", "workers")

    every_arm = validate(dict(ARMS))
    for cell in grid.cells(every_arm):
        before = stable_hash({k: v for k, v in cell.items() if k not in later and k != "cell_id"})
        assert (cell["cell_id"] == before) == ((cell["router"], cell["experts"]) == ("learned", "learned"))
    learned = validate({**ARMS, "router": ["learned"], "experts": ["learned"]})
    old = {k: v for k, v in learned.to_dict().items() if k not in runtime and k not in later}
    assert learned.config_hash() == stable_hash(old) != every_arm.config_hash()


def test_router_init_scale_and_temperature_reach_the_model():
    """router_init_scale multiplies the initial router (0: uniform probabilities, so a k = 1 model sends
    every point to expert 0 at the start) and router_temperature divides the logits; both are learned-
    router settings that change the cell id only away from their default."""
    from simulations.families.regression.train import init_model

    base = init_model(8, 3, 2, [1, 2], [5, 5], "dense", "k>1", torch.float32, "cpu")
    scaled = init_model(8, 3, 2, [1, 2], [5, 5], "dense", "k>1", torch.float32, "cpu",
                        router_temperature=2.0, router_init_scale=0.5)
    torch.testing.assert_close(scaled.router.weight, 0.5 * base.router.weight)
    assert scaled.router.temperature == 2.0 and torch.equal(scaled.w1, base.w1)
    zero = init_model(8, 3, 2, [1, 1], [5, 6], "dense", "k>1", torch.float32, "cpu", router_init_scale=0.0)
    gating = zero.router.route(torch.randn(2, 10, 3))
    p, mask = gating.probs, gating.selected
    torch.testing.assert_close(p, torch.full_like(p, 1 / 8))
    assert mask[:, 0].all() and not mask[:, 1:].any()
    default = validate({**ARMS, "router": ["learned"], "experts": ["learned"]})
    changed = validate({**ARMS, "router": ["learned"], "experts": ["learned"], "router_temperature": 0.5})
    ids = {c["cell_id"] for c in grid.cells(default)}
    assert ids.isdisjoint(c["cell_id"] for c in grid.cells(changed))
    assert all(c["router_temperature"] == 0.5 for c in grid.cells(changed))


@pytest.mark.parametrize("s, T", [(1, 4), (2, 8), (3, 12)])
def test_supervision_target_covers_the_replicas_of_active_skills_in_round_robin_order(s, T):
    task = teacher(s)
    x, _ = task.sample("train", 100)
    z = torch.as_tensor(task.scores(x)).unsqueeze(0)
    target = routing.supervision_target(z, torch.tensor([s]), T)[0].numpy()  # [T, N]
    np.testing.assert_allclose(target.sum(0), 1.0, rtol=1e-12)
    active = routing.active_skills(z, torch.tensor([s]))[0].numpy()  # [N, S]
    for e in range(T):
        np.testing.assert_array_equal(target[e] > 0, active[:, e % S])
    r = T // S
    halving = 0.5 ** np.arange(r) / (0.5 ** np.arange(r)).sum()
    for rep in range(r):  # replica rep of an active skill: 2^-rep / sum, of the skill's 1 / s
        block = target[rep * S:(rep + 1) * S]
        np.testing.assert_allclose(block[block > 0], halving[rep] / s)
    with pytest.raises(ValueError, match="multiple of n_skills"):
        routing.supervision_target(z, torch.tensor([s]), T + 1)


@pytest.mark.slow
def test_supervised_router_routes_by_skill_at_k_equal_2s():
    """The ceiling control: the same student with its router also trained towards the teacher's active
    sets puts its top 2s = s r experts on the active skills' replicas (recall and gate mass near 1, well
    above chance and above the plain learned router's gate mass)."""
    cfg = validate({**ARMS, "router": ["learned", "supervised"], "experts": ["learned"], "complexity": [2],
                    "k": [4], "n_train": [400], "max_steps": 300, "patience": 100, "lr": 0.02})
    rows = pd.concat([grid.run_bundle(b) for b in grid.make_bundles(cfg, "cpu")], ignore_index=True)
    r = rows.set_index("router")
    assert r.loc["supervised", "routing_recall"] > 0.95, r.routing_recall.to_dict()
    assert r.loc["supervised", "routing_recall"] > r.loc["supervised", "routing_recall_baseline"] + 0.3
    assert r.loc["supervised", "routing_gate_mass"] > r.loc["learned", "routing_gate_mass"] + 0.05
