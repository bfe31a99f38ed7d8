"""The top_p router: experts in descending probability until their cumulative probability reaches top_p,
at most k_max and at least one (ties: the lower index), gated by the model's own rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from simulations.arms.top_p import top_p_mask
from simulations.config_schema import build
from simulations.families.regression import train as tr
from simulations.families.regression.tasks import CompositionalTask, TaskSpec


def chosen(p: list[float], top_p: float, k_max: int) -> set[int]:
    probs = torch.tensor(p, dtype=torch.float64).view(1, -1, 1)
    mask = top_p_mask(probs, top_p, torch.tensor([k_max]))
    return set(torch.nonzero(mask[0, :, 0]).flatten().tolist())


@pytest.mark.parametrize("top_p, k_max, expected", [
    (0.5, 4, {1}),  # 0.5 reaches 0.5 exactly: one expert
    (0.75, 4, {1, 3}),  # 0.5 + 0.25
    (0.76, 4, {0, 1, 3}),  # a third needed; 0 and 2 tie at 0.125: the lower index
    (1.0, 4, {0, 1, 2, 3}),
    (1.0, 2, {1, 3}),  # the k_max cap
    (0.01, 4, {1}),  # at least one
    (0.01, 1, {1}),
])
def test_hand_worked_selection(top_p, k_max, expected):
    assert chosen([0.125, 0.5, 0.125, 0.25], top_p, k_max) == expected


def test_ties_go_to_the_lower_index():
    assert chosen([0.25] * 4, 0.5, 4) == {0, 1}
    assert chosen([0.25] * 4, 0.6, 4) == {0, 1, 2}


def _reference(p: np.ndarray, top_p: float, k_max: int) -> np.ndarray:
    """One point's selection by a plain loop (p float64, T values)."""
    order = sorted(range(len(p)), key=lambda e: (-p[e], e))
    keep, total = np.zeros(len(p), bool), 0.0
    for e in order[:k_max]:
        if keep.any() and total >= top_p:
            break
        keep[e], total = True, total + p[e]
    return keep


def test_batched_selection_equals_a_per_point_loop():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 8, 200, generator=gen, dtype=torch.float64)
    logits[:, :, :50] = logits[:, :, :50].round()  # some exact ties
    p = torch.softmax(logits, dim=1)
    k = torch.tensor([1, 3, 8])
    mask = top_p_mask(p, 0.6, k)
    for m in range(3):
        for n in range(200):
            want = _reference(p[m, :, n].numpy(), 0.6, int(k[m]))
            assert mask[m, :, n].numpy().tolist() == want.tolist(), (m, n)
    used = mask.sum(1)
    assert (used >= 1).all() and (used <= k.view(3, 1)).all() and used[2].float().std() > 0


def _student(router: str = "top_p", **options) -> tr.Student:
    """A bundle's student of the given router kind; `options`: flat settings (the kind's own and the
    training settings)."""
    tasks = [CompositionalTask(TaskSpec(4, 2, 4, teacher_width=8, seed=t, n_ref=2000)) for t in (0, 1)]
    data = tr.make_bundle_data(tasks, [48, 48], 16, 40, torch.float64, "cpu")
    model = tr.init_model(8, 4, 4, [2, 5], [0, 1], "dense", "k>1", torch.float64, "cpu")
    return tr.Student(model, data, build(tr.TrainSettings, {"router": router, **options}), options)


def test_route_gates_by_the_models_rule_and_gates_by_k_matches_at_the_models_k():
    student = _student(top_p=0.4)
    gating = student.router.route("id")
    x = student.data.x_id
    router = student.model.router
    p = router.scores(x)
    assert torch.equal(gating.selected, top_p_mask(p, 0.4, router.k_per_model))
    torch.testing.assert_close(gating.gates, router.gates(p, gating.selected))
    torch.testing.assert_close(gating.gates.sum(1), torch.ones(2, x.shape[1], dtype=x.dtype))  # renormalized
    by_k = list(student.router.gates_by_k("id", slice(None)))
    assert len(by_k) == 8
    for m, k in enumerate((2, 5)):
        torch.testing.assert_close(by_k[k - 1][m], gating.gates[m])
    assert ((by_k[0] > 0).sum(1) == 1).all()  # k_max = 1: one expert, gate 1


def test_entropy_loss_is_off_by_default_and_weighted_when_on():
    off = _student()
    gating = off.router.route("train", slice(None), training=True)
    assert off.router.aux_loss(gating, "train", slice(None)) is None
    on = _student(top_p_entropy=0.5)
    gating = on.router.route("train", slice(None), training=True)
    term = on.router.aux_loss(gating, "train", slice(None))
    p = gating.probs
    want = 0.5 * (-(p * p.log()).sum(1)).mean(1)
    torch.testing.assert_close(term, want)


def test_train_bundle_reports_mean_experts_within_one_and_k_max():
    student = _student(top_p=0.5, max_steps=10, eval_every=5, lr=0.01)
    rows = tr.train_bundle(student.model, student.data, student.settings)
    assert ((rows["mean_experts_id"] >= 1) & (rows["mean_experts_id"] <= rows.index.map({0: 2, 1: 5}))).all()
    fixed = _student("learned", max_steps=10, eval_every=5)
    rows = tr.train_bundle(fixed.model, fixed.data, fixed.settings)
    assert rows["mean_experts_id"].tolist() == [2.0, 5.0]
    assert "mean_experts_by_s" not in rows.columns  # an unmixed task has no per-level column
