"""The gate family "head": a gate head of its own (router.gate_weight), decoupled from the selection.

Its gates by hand (the softmax family's selection, the head's sigmoid values renormalized over it), the
parameter set of every other family unchanged (no gate head, the same draws), the router's
straight-through gradient (uniform's), gradients reaching the head and the router under every estimator,
and what the head can represent that fixed or score-tied gates cannot: on a fixed selection of k = 3
experts of which 2 are right, gates [1/2, 1/2, ~0]. The fast paths against the loop reference are
`tests/simulations/test_gates.py`'s (every family in GATES).
"""

from __future__ import annotations

import pytest
import torch

from simulations import arms, estimators
from simulations.families.regression.tasks import CompositionalTask, TaskSpec
from simulations.families.regression.train import Student, TrainSettings, init_model, make_bundle_data
from simulations.gates import GATES
from simulations.moe import TopKMoE
from simulations.router import RENORMALIZE
from simulations.selection import topk_mask

KS = torch.tensor([1, 2, 6, 3, 1, 5])  # per-model k (M = 6, T = 6)


def model(gate: str, renormalize: str = "k>1", k=KS, seed: int = 3, **kw) -> TopKMoE:
    return TopKMoE(len(k), 6, 3, 4, 2, k=k, gate=gate, renormalize=renormalize, seed=seed, **kw)


def inputs(moe: TopKMoE, n: int = 15, seed: int = 2) -> torch.Tensor:
    return torch.randn(moe.n_models, n, moe.d_in, generator=torch.Generator().manual_seed(seed))


def head_values(moe: TopKMoE, x: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(torch.einsum("mnd,mdt->mtn", x, moe.router.gate_weight))


@pytest.mark.parametrize("renormalize", RENORMALIZE)
def test_head_gates_by_hand(renormalize):
    """The selection is the softmax family's (the same weights: the head is drawn after every other
    weight), the gates the head's sigmoid values on it, renormalized where renormalize applies ("always"
    at k = 1: the constant 1)."""
    head, soft = model("head", renormalize), model("softmax", renormalize)
    for name, p in soft.named_parameters():
        assert torch.equal(p, head.get_parameter(name)), name
    x = inputs(head)
    got, want = head.router.route(x), soft.router.route(x)
    assert torch.equal(got.probs, want.probs) and torch.equal(got.selected, want.selected)
    h = head_values(head, x) * got.selected
    renorm = {"k>1": KS > 1, "always": torch.ones(6, dtype=torch.bool),
              "never": torch.zeros(6, dtype=torch.bool)}[renormalize]
    for i in range(6):
        expect = h[i] / h[i].sum(0, keepdim=True) if renorm[i] else h[i]
        torch.testing.assert_close(got.gates[i], expect, atol=1e-6, rtol=1e-6)
        if renorm[i] and KS[i] == 1:
            assert torch.equal(got.gates[i].detach(), got.selected[i].float())


def test_no_other_family_has_a_gate_head():
    """Every other family keeps its parameter set and state dict (no gate head); the head needs the
    inputs to gate and a router built with one."""
    for gate in GATES:
        moe = model(gate)
        names = {n for n, _ in moe.named_parameters()}
        assert ("router.gate_weight" in names) == (gate == "head")
        assert ("router.gate_weight" in moe.state_dict()) == (gate == "head")
    assert set(model("softmax").state_dict()) == {"router.weight", "w1", "b1", "w2", "b2"}
    moe = model("head")
    x = inputs(moe)
    p = moe.router.scores(x)
    with pytest.raises(ValueError, match="reads its gate values off the inputs"):
        moe.router.gates(p, topk_mask(p, KS, 1, 6))
    plain = model("softmax")
    with pytest.raises(ValueError, match="needs a gate head"):
        plain.router.gate = "head"
    moe.router.gate = "softmax"  # a router with a head may gate by another family
    assert torch.equal(moe.router.route(x).gates, plain.router.route(x).gates)


def test_the_router_learns_straight_through_and_the_head_by_its_values():
    """For any loss linear in the gates, the router's gradient is the uniform family's (the selected
    softmax probabilities' backward), whatever the head's values; the head gets its own gradient."""
    x = inputs(model("head"))
    c = torch.randn(6, 6, 15, generator=torch.Generator().manual_seed(9))
    grads = {}
    for gate in ("head", "uniform"):
        moe = model(gate, renormalize="never")
        (c * moe.router.route(x).gates).sum().backward()
        grads[gate] = moe.router.weight.grad
        if gate == "head":
            assert moe.router.gate_weight.grad.abs().flatten(1).sum(1).min() > 0
    torch.testing.assert_close(grads["head"], grads["uniform"], atol=1e-6, rtol=1e-6)
    assert grads["head"].abs().flatten(1).sum(1).min() > 0


@pytest.mark.parametrize("estimator", list(estimators.ESTIMATORS))
def test_every_estimator_trains_the_head_and_the_selection(estimator):
    """One training loss per estimator (the learned router, k = 1, 2, 3): the gate head and the router
    weights of every model get a gradient (the head through the gate values; the router by the
    estimator's own rule: straight-through for pathwise)."""
    task = CompositionalTask(TaskSpec(4, 2, 4, teacher_width=8, seed=0, n_ref=4000))
    data = make_bundle_data([task] * 3, [64] * 3, 32, 64, torch.float64, "cpu")
    moe = init_model(4, 4, 4, [1, 2, 3], [0, 1, 2], "dense", "k>1", torch.float64, "cpu", gate="head")
    student = Student(moe, data, TrainSettings(estimator=estimator))
    assert "router.gate_weight" in dict(student.trainable())
    student.training_loss().sum().backward()
    for name in ("router.gate_weight", "router.weight"):
        per_model = moe.get_parameter(name).grad.abs().flatten(1).sum(1)
        assert (per_model > 1e-8).all(), (name, per_model)


def test_the_head_reaches_one_over_s_on_a_selection_where_uniform_cannot():
    """A fixed selection of k = 3 of T = 6 experts (the router's weights zero: every token ties, the
    lower indices win), of which experts 0 and 1 are right: the target is their mean. Training the head
    alone, its gates reach [1/2, 1/2, ~0] (on average over the tokens: where the experts nearly agree
    the loss barely sees the gates, and those converge slowest) and the loss ~0 while the selection
    stays put; uniform gates are 1/3 each (a third of the wrong expert stays), and softmax's are the
    selecting logits' own (here 1/3 each: moving them moves the selection). The inputs lie in one
    orthant, so a head without a bias can switch expert 2 off on all of them."""
    moe = TopKMoE(1, 6, 3, 4, 4, k=3, gate="head", seed=0, impl="dense")
    x = torch.randn(1, 256, 3, generator=torch.Generator().manual_seed(1)).abs() + 0.1
    with torch.no_grad():
        moe.router.weight.zero_()
        y = moe.expert_outputs(x)[:, :2].mean(1)  # [1, N, 1]
        selected = moe.router.route(x).selected
    assert selected[0, :3].all() and not selected[0, 3:].any()
    uniform_loss = (moe.mix(x, selected / 3.0, selected) - y).square().mean()
    optimizer = torch.optim.Adam([moe.router.gate_weight], lr=0.1)
    for _ in range(400):
        optimizer.zero_grad()
        loss = (moe(x) - y).square().mean()
        loss.backward()
        optimizer.step()
    gating = moe.router.route(x)
    assert torch.equal(gating.selected, selected)
    gates = gating.gates.detach()[0, :3]  # [3, N]
    assert gates[2].mean() < 0.02 and gates[2].max() < 0.25, gates[2]
    assert (gates[:2] - 0.5).abs().mean() < 0.02, gates[:2]
    assert uniform_loss > 1e-3 and loss < 2e-3 * uniform_loss, (loss, uniform_loss)


@pytest.mark.parametrize("impl", ["dense", "sparse"])
def test_a_renormalized_k1_head_gate_is_1_and_the_router_still_learns(impl):
    """renormalize "always" at k = 1: the gate is the constant 1 (the head gets exactly no gradient), but
    the straight-through term still trains the router, so such a model is not frozen (the fits keep
    its k = 1 rows)."""
    moe = model("head", "always", k=torch.tensor([1, 1, 1]), seed=5)
    moe.impl = impl
    moe(inputs(moe)).square().sum().backward()
    assert torch.equal(moe.router.gate_weight.grad, torch.zeros_like(moe.router.gate_weight))
    assert (moe.router.weight.grad.abs().flatten(1).sum(1) > 1e-6).all()
    learned = arms.router("learned")
    assert not learned.frozen_at(1, "head", "always", "pathwise")
    assert learned.frozen_at(1, "softmax", "always", "pathwise")
