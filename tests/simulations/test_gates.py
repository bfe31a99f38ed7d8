"""Gate families of TopKMoE (`gate`: softmax, sigmoid, uniform, head): every fast impl against the per-model
loop reference (outputs and gradients, per-model k with k = 1 among them), each family's rule against a
hand computation, the router's gradient at k = 1, the uniform family's exact 1/k gates and its
straight-through estimator, the softmax family unchanged, and the registry (a new family is one
registered class: here a toy family defined in this test runs every impl)."""

from __future__ import annotations

import pytest
import torch

from simulations import gates
from simulations.gates import GATES
from simulations.moe import TopKMoE
from simulations.router import RENORMALIZE
from simulations.selection import topk_mask

PARAMS = ("router.weight", "w1", "b1", "w2", "b2")
IMPLS = ("dense", "sparse", "reference")
KS = torch.tensor([1, 2, 6, 3, 1, 5])  # per-model k, k = 1 twice (M = 6, T = 6)


def model(gate: str, renormalize: str = "k>1", k=KS, seed: int = 3, **kw) -> TopKMoE:
    return TopKMoE(len(k) if isinstance(k, torch.Tensor) else 3, 6, 3, 4, 2, k=k, gate=gate,
                   renormalize=renormalize, seed=seed, **kw)


def inputs(moe: TopKMoE, n: int = 15, seed: int = 2) -> torch.Tensor:
    return torch.randn(moe.n_models, n, moe.d_in, generator=torch.Generator().manual_seed(seed))


def routed(moe: TopKMoE, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The router's scores, selection and gates on x."""
    gating = moe.router.route(x)
    return gating.probs, gating.selected, gating.gates


def run(moe: TopKMoE, x: torch.Tensor, impl: str):
    """Output, load-balancing loss and gradients (every parameter and x) of one impl."""
    moe.impl = impl
    moe.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_(True)
    y, stats = moe(x, return_stats=True)
    w = torch.linspace(-1.0, 2.0, y.numel(), dtype=y.dtype).view_as(y)
    ((w * y).sum() + (y**2).sum() + stats.load_balancing_loss.sum()).backward()
    names = PARAMS + (("router.gate_weight",) if moe.router.gate_weight is not None else ())
    grads = {n: moe.get_parameter(n).grad.clone() for n in names}
    grads["x"] = x.grad.clone()
    return y.detach(), stats.load_balancing_loss.detach(), grads


def assert_fast_impls_match_the_reference(moe, x) -> None:
    """Outputs, load-balancing loss and gradients (a gate head's too) of the dense and sparse paths equal
    the loop's."""
    y_ref, lb_ref, g_ref = run(moe, x, "reference")
    for impl in ("dense", "sparse"):
        y, lb, g = run(moe, x, impl)
        torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(lb, lb_ref, atol=1e-5, rtol=1e-5)
        for name, ref in g_ref.items():
            torch.testing.assert_close(g[name], ref, atol=1e-5, rtol=1e-5, msg=f"{impl} {name}")


@pytest.mark.parametrize("renormalize", RENORMALIZE)
@pytest.mark.parametrize("gate", GATES)
def test_fast_impls_match_the_loop_reference(gate, renormalize):
    moe = model(gate, renormalize)
    x = inputs(moe)
    assert_fast_impls_match_the_reference(moe, x)


@pytest.mark.parametrize("gate", GATES)
def test_float64_matches_the_reference_on_a_larger_bundle(gate):
    """More tokens and experts than above (T = 8, k up to 7), float64: agreement to 1e-10."""
    k = torch.tensor([1, 7, 3, 1])
    moe = TopKMoE(4, 8, 5, 3, 1, k=k, gate=gate, seed=11, dtype=torch.float64)
    x = torch.randn(4, 40, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    y_ref, _, g_ref = run(moe, x, "reference")
    for impl in ("dense", "sparse"):
        y, _, g = run(moe, x, impl)
        torch.testing.assert_close(y, y_ref, atol=1e-10, rtol=1e-10)
        for name, ref in g_ref.items():
            torch.testing.assert_close(g[name], ref, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("gate", ["sigmoid", "uniform", "head"])
def test_the_router_learns_at_k1(gate, impl):
    """sigmoid (renormalize "k>1": raw sigmoid gates at k = 1), uniform and head (straight-through) give
    every k = 1 model a router gradient; a renormalized k = 1 gate (renormalize "always", softmax or
    sigmoid) is the constant 1 and gives none, exactly."""
    for g, renormalize, expect in ((gate, "k>1", True), ("softmax", "always", False),
                                   ("sigmoid", "always", False)):
        moe = model(g, renormalize, k=torch.tensor([1, 1, 1]), seed=5)
        moe.impl = impl
        x = inputs(moe)
        moe(x).square().sum().backward()
        per_model = moe.router.weight.grad.abs().flatten(1).sum(1)
        assert bool((per_model > 1e-6).all()) == expect, (g, per_model)
        if not expect and impl != "reference":  # the loop reference's p / p leaks rounding
            assert torch.equal(per_model, torch.zeros_like(per_model))


@pytest.mark.parametrize("impl", IMPLS)
def test_uniform_forward_gates_are_exactly_one_over_k(impl):
    moe = model("uniform", seed=8)
    x = inputs(moe)
    p, mask, gates = routed(moe, x)
    expected = mask.double() / KS.view(-1, 1, 1).double()
    assert torch.equal(gates.detach().double(), expected.to(gates.dtype).double())
    logits = torch.bmm(moe.router.weight.transpose(1, 2), x.transpose(1, 2))
    assert torch.equal(p, torch.softmax(logits, dim=1))
    moe.impl = impl
    with torch.no_grad():
        y = moe(x)
        moe.impl = "dense"
        y_fixed = moe(x, gates=expected.to(x.dtype))  # the same experts with fixed gates 1 / k
    torch.testing.assert_close(y, y_fixed, atol=1e-6, rtol=1e-6)


def test_uniform_straight_through_has_the_softmax_gates_gradient():
    """For any loss linear in the gates, d loss / d router of the uniform family equals that of the
    selected softmax probabilities (renormalize "never"): the documented estimator."""
    x = inputs(model("uniform"))
    c = torch.randn(6, 6, 15, generator=torch.Generator().manual_seed(9))
    grads = {}
    for gate in ("uniform", "softmax"):
        moe = model(gate, renormalize="never")
        p, mask, gates = routed(moe, x)
        (c * gates).sum().backward()
        grads[gate] = moe.router.weight.grad
    torch.testing.assert_close(grads["uniform"], grads["softmax"], atol=1e-6, rtol=1e-6)
    assert grads["uniform"].abs().flatten(1).sum(1).min() > 0


@pytest.mark.parametrize("renormalize", RENORMALIZE)
def test_sigmoid_gates_by_hand(renormalize):
    """Scores sigmoid(l), independent per expert; top-k of them; the kept ones divided by their sum
    where renormalize applies; "always" at k = 1 is the constant 1."""
    moe = model("sigmoid", renormalize)
    x = inputs(moe)
    p, mask, gates = routed(moe, x)
    logits = torch.bmm(moe.router.weight.transpose(1, 2), x.transpose(1, 2))
    assert torch.equal(p, torch.sigmoid(logits))
    assert torch.equal(mask, topk_mask(p, KS, 1, 6))
    kept = p * mask
    renorm = {"k>1": KS > 1, "always": torch.ones(6, dtype=torch.bool),
              "never": torch.zeros(6, dtype=torch.bool)}
    for i in range(6):
        want = kept[i] / kept[i].sum(0, keepdim=True) if renorm[renormalize][i] else kept[i]
        if renormalize == "always" and KS[i] == 1:
            assert torch.equal(gates[i], mask[i].float())
        torch.testing.assert_close(gates[i], want, atol=1e-6, rtol=1e-6)


def test_softmax_is_the_old_rule_bit_for_bit():
    """gate "softmax" (and the default) computes exactly the ops of the rule before gate families:
    p = softmax(router logits), top-k of p, kept p divided by their sum for k > 1, raw at k = 1."""
    moe, default = model("softmax"), TopKMoE(6, 6, 3, 4, 2, k=KS, seed=3)
    x = inputs(moe)
    p = torch.softmax(torch.bmm(moe.router.weight.transpose(1, 2), x.transpose(1, 2)), dim=1)
    mask = topk_mask(p, KS, 1, 6)
    kept = p * mask
    old = torch.where((KS > 1)[:, None, None], kept / kept.sum(1, keepdim=True), kept)
    for m in (moe, default):
        got_p, got_mask, got_gates = routed(m, x)
        assert torch.equal(got_p, p) and torch.equal(got_mask, mask) and torch.equal(got_gates, old)
        for impl in ("dense", "sparse"):
            m.impl = impl
            assert torch.equal(m(x), m.mix(x, old, mask))


@pytest.mark.parametrize("gate", GATES)
def test_gates_on_a_given_selection(gate):
    """router.gates(p, selection, k) is each family's rule on any selection (what other code asks for,
    e.g. a model's own gate values on the oracle's selection): zero off the selection."""
    moe = model(gate, k=3)
    x = inputs(moe)
    p = moe.router.scores(x)
    sel = torch.zeros_like(p, dtype=torch.bool)
    sel[:, :2] = True  # experts 0 and 1 for every token
    if gate == "uniform":
        sel[:, :, 0] = False  # token 0: nothing selected (softmax and sigmoid would divide 0 by 0)
    g = moe.router.gates(p, sel, k=2, x=x)
    assert torch.equal(g[~sel], torch.zeros_like(g[~sel]))
    picked = p[:, :2, 1:]  # tokens 1.. (token 0 is checked above for uniform)
    h = torch.sigmoid(torch.bmm(moe.router.gate_weight.transpose(1, 2), x.transpose(1, 2)))[:, :2, 1:] \
        if gate == "head" else None
    want = {"uniform": torch.full_like(picked, 0.5), "softmax": picked / picked.sum(1, keepdim=True),
            "sigmoid": picked / picked.sum(1, keepdim=True),
            "head": None if h is None else h / h.sum(1, keepdim=True)}[gate]
    torch.testing.assert_close(g[:, :2, 1:], want, atol=1e-6, rtol=1e-6)


def test_gate_validation_and_repr():
    with pytest.raises(ValueError, match="gate must be one of"):
        TopKMoE(1, 2, 2, 2, gate="bogus")
    moe = TopKMoE(1, 2, 2, 2, gate="sigmoid")
    assert moe.router.gate == "sigmoid" and "gate='sigmoid'" in repr(moe)
    with pytest.raises(ValueError, match="gate must be one of"):
        moe.router.gate = "relu"
    moe.router.gate = "uniform"
    assert moe.router.gate == "uniform"


def test_the_registry_keeps_the_stored_names_in_order():
    """The names are stored in results and hashed: these four, first, in this order (a new family is
    appended)."""
    assert GATES[:4] == ("softmax", "sigmoid", "uniform", "head") and GATES == tuple(gates.GATE_FAMILIES)
    assert all(gates.gate_family(name).name == name for name in GATES)
    with pytest.raises(ValueError, match="registered twice"):
        gates.register_gate(gates.GATE_FAMILIES["softmax"])
    allowed = r"\('softmax', 'sigmoid', 'uniform', 'head'\)"
    with pytest.raises(ValueError, match=f"gate must be one of {allowed}, got 'relu'") as err:
        gates.gate_family("relu")
    assert "\n" not in str(err.value)


class SquaredGates(gates.GateFamily):
    """A toy family: scores softmax(l)^2 (not a distribution), gated by the base class's rule."""

    name = "toy_squared"

    @classmethod
    def scores(cls, logits: torch.Tensor, dim: int) -> torch.Tensor:
        return torch.softmax(logits, dim=dim).square()


@pytest.fixture
def toy_gate():
    names = gates.GATES
    gates.register_gate(SquaredGates)
    try:
        yield SquaredGates
    finally:
        del gates.GATE_FAMILIES[SquaredGates.name]
        gates.GATES = names


@pytest.mark.parametrize("renormalize", RENORMALIZE)
def test_a_new_gate_family_is_one_registered_class(toy_gate, renormalize):
    """The toy family joins GATES and runs through TopKMoE's every impl: its scores, and the fast impls
    agree with the loop reference."""
    assert gates.GATES[-1] == "toy_squared" and gates.gate_family("toy_squared") is toy_gate
    moe = model("toy_squared", renormalize)
    assert moe.router.gate == "toy_squared" and "gate='toy_squared'" in repr(moe)
    x = inputs(moe)
    p, mask, _ = routed(moe, x)
    logits = torch.bmm(moe.router.weight.transpose(1, 2), x.transpose(1, 2))
    assert torch.equal(p, torch.softmax(logits, dim=1).square()) and torch.equal(mask, topk_mask(p, KS, 1, 6))
    assert_fast_impls_match_the_reference(moe, x)


def test_the_toy_family_is_gone_after_its_test():
    assert "toy_squared" not in gates.GATES and "toy_squared" not in gates.GATE_FAMILIES
    with pytest.raises(ValueError, match="gate must be one of"):
        model("toy_squared")
