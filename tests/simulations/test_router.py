"""Tests of simulations.router.Router, the layer's router: its public API against the definitions
(logits, scores with a caller's jitter, route, gates on any selection), gating at another k without
changing its own, per-model statistics, and its settings' validation."""

from __future__ import annotations

import pytest
import torch

from simulations.gates import GATES, gate_family
from simulations.gating import Gating
from simulations.moe import TopKMoE
from simulations.router import RENORMALIZE, Router
from simulations.selection import topk_mask


def router(M: int = 3, T: int = 6, d: int = 4, k=None, **kw) -> Router:
    weight = torch.randn(M, d, T, generator=torch.Generator().manual_seed(1))
    if gate_family(kw.get("gate", "softmax")).head:  # a family with a gate head needs its weights
        kw["gate_weight"] = torch.randn(M, d, T, generator=torch.Generator().manual_seed(5))
    return Router(weight, torch.tensor([1, 2, 4]) if k is None else k, **kw)


def inputs(M: int = 3, n: int = 30, d: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.randn(M, n, d, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("gate", GATES)
def test_logits_scores_and_route_are_the_definitions(gate):
    r, x = router(temperature=0.5, gate=gate), inputs()
    logits = torch.einsum("mnd,mdt->mtn", x, r.weight) / 0.5
    torch.testing.assert_close(r.logits(x), logits)
    noise = torch.randn(logits.shape, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(r.scores(x), r.family.scores(logits, dim=1))
    torch.testing.assert_close(r.scores(x, noise), r.family.scores(logits + noise, dim=1))
    gating = r.route(x, noise=noise)
    assert isinstance(gating, Gating)
    assert torch.equal(gating.probs, r.scores(x, noise))
    assert torch.equal(gating.selected, topk_mask(gating.probs, r.k_per_model, 1, 4))
    assert torch.equal(gating.gates, r.gates(gating.probs, gating.selected, x=x))
    with pytest.raises(ValueError, match=r"x must have shape \[n_models=3, N, d_in=4\]"):
        r.scores(inputs(d=5))


@pytest.mark.parametrize("renormalize", RENORMALIZE)
@pytest.mark.parametrize("impl", ["dense", "sparse"])
def test_route_at_another_k_equals_setting_k_and_leaves_the_router_alone(renormalize, impl):
    """router.route(x, k=j) is what the model gates at k = j (an int or one k per model), and the
    router's own k stays as it was; the layer's mix with those gates is its forward."""
    M, N, T = 3, 40, 6
    moe = TopKMoE(M, T, 3, 4, k=torch.tensor([1, 2, 4]), impl=impl, renormalize=renormalize, seed=3)
    x = torch.randn(M, N, 3, generator=torch.Generator().manual_seed(0))
    other = TopKMoE(M, T, 3, 4, impl=impl, renormalize=renormalize, seed=3)
    for k in (1, 3, T, torch.tensor([2, 1, 5])):
        other.router.k = k
        got, want = moe.router.route(x, k=k), other.router.route(x)
        for field in ("selected", "gates", "probs"):
            assert torch.equal(getattr(got, field), getattr(want, field)), field
        assert moe.router.k.tolist() == [1, 2, 4] and moe.router.k_per_model.tolist() == [1, 2, 4]
        assert torch.equal(other.mix(x, want.gates, want.selected), other(x))
        assert torch.equal(moe.router.renormalized(k), other.router.renormalized())
    with pytest.raises(ValueError, match=r"k must satisfy 1 <= k <= n_experts=6"):
        moe.router.route(x, k=7)


def test_stats_per_model():
    M, N, T = 3, 40, 4
    r = router(M, T, 2, k=torch.tensor([1, 2, 4]))
    x = inputs(M, N, 2)
    gating = r.route(x)
    stats = r.stats(gating.probs, gating.selected)
    assert stats.fraction.shape == (M, T) and stats.load_balancing_loss.shape == (M,)
    torch.testing.assert_close(stats.fraction.sum(-1), torch.ones(M))
    p = torch.softmax(x @ r.weight, dim=-1)
    torch.testing.assert_close(stats.mean_prob, p.mean(1))
    # k = T routes every token to every expert: f_j = 1/T, so the loss is sum_j P_j = 1.
    torch.testing.assert_close(stats.fraction[2], torch.full((T,), 1 / T))
    torch.testing.assert_close(stats.load_balancing_loss[2], torch.tensor(1.0))
    # k = 1: f_j is the share of tokens whose argmax is j.
    f0 = torch.bincount(p[0].argmax(-1), minlength=T).float() / N
    torch.testing.assert_close(stats.fraction[0], f0)
    torch.testing.assert_close(stats.load_balancing_loss[0], T * (f0 * p[0].mean(0)).sum())
    # Never pooled: another model's inputs leave model 0's statistics unchanged.
    x2 = x.clone()
    x2[1:] = torch.randn(M - 1, N, 2)
    other = r.route(x2)
    other_stats = r.stats(other.probs, other.selected)
    assert torch.equal(other_stats.load_balancing_loss[0], stats.load_balancing_loss[0])
    # Differentiable towards the router (through the mean probabilities).
    (g,) = torch.autograd.grad(stats.load_balancing_loss.sum(), r.weight)
    assert g.abs().sum() > 0


def test_settings_are_validated_and_shown():
    r = router(k=2, gate="sigmoid", d_context=1)
    assert (r.n_models, r.n_experts, r.d_in, r.d_context) == (3, 6, 3, 1)
    assert "gate='sigmoid'" in repr(r) and "k=2" in repr(r) and "d_context=1" in repr(r)
    with pytest.raises(ValueError, match=r"x must have shape \[n_models=3, N, d_in \+ d_context=3 \+ 1\]"):
        r.logits(inputs(d=3))
    for name, bad, message in (("temperature", 0, "temperature must be a number > 0"),
                               ("temperature", True, "temperature must be a number > 0"),
                               ("gate", "relu", "gate must be one of"),
                               ("renormalize", "k>2", "renormalize must be one of"),
                               ("k", 7, r"k must satisfy 1 <= k <= n_experts=6")):
        with pytest.raises(ValueError, match=message):
            setattr(r, name, bad)
        with pytest.raises(ValueError, match=message):
            router(**{name: bad})
    r.temperature, r.gate, r.renormalize, r.k = 2, "uniform", "never", torch.tensor([1, 6, 3])
    assert (r.temperature, r.gate, r.renormalize) == (2.0, "uniform", "never")
    assert r.k_mean == pytest.approx(10 / 3) and not r.renormalized().any()
