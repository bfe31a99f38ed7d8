"""Tests of simulations.moe.TopKMoE: every impl against the loop reference (outputs and gradients),
the gating rule itself (ties, renormalization) against hand computations, model independence and the
init. The router alone: tests/simulations/test_router.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import functional_call

from simulations.moe import TopKMoE
from simulations.router import RENORMALIZE
from simulations.selection import topk_mask

PARAMS = ("router.weight", "w1", "b1", "w2", "b2")
FAST_IMPLS = ("dense", "sparse")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def run_impl(moe: TopKMoE, x: torch.Tensor, impl: str):
    """Output, RouterStats and gradients (of every parameter and of x) of one impl."""
    moe.impl = impl
    moe.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_(True)
    y, stats = moe(x, return_stats=True)
    # A generic loss that weights every output differently, plus the load-balancing loss.
    w = torch.linspace(-1.0, 2.0, y.numel(), dtype=y.dtype, device=y.device).view_as(y)
    ((w * y).sum() + (y**2).sum() + stats.load_balancing_loss.sum()).backward()
    grads = {n: moe.get_parameter(n).grad.clone() for n in PARAMS}
    grads["x"] = x.grad.clone()
    return y.detach(), stats, grads


def assert_matches_reference(moe: TopKMoE, x: torch.Tensor, impls=FAST_IMPLS, atol=1e-5) -> None:
    y_ref, st_ref, g_ref = run_impl(moe, x, "reference")
    for impl in impls:
        y, st, g = run_impl(moe, x, impl)
        torch.testing.assert_close(y, y_ref, atol=atol, rtol=1e-5)
        assert torch.equal(st.fraction, st_ref.fraction), impl
        torch.testing.assert_close(st.load_balancing_loss, st_ref.load_balancing_loss, atol=atol, rtol=1e-5)
        for name, ref in g_ref.items():
            torch.testing.assert_close(g[name], ref, atol=atol, rtol=1e-5)


# (M, N, T, k, d_in, d_hidden, d_out)
SHAPES = [
    (1, 1, 1, 1, 1, 1, 1),
    (3, 17, 5, 1, 4, 6, 1),
    (2, 9, 4, 2, 3, 5, 2),
    (4, 20, 6, 6, 3, 4, 3),  # k = T
    (2, 33, 8, 7, 5, 3, 1),  # k close to T: the selection drops losers instead of picking winners
    (3, 12, 8, 3, 2, 7, 1),
]


@pytest.mark.parametrize("renormalize", RENORMALIZE)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "M{}N{}T{}k{}d{}h{}o{}".format(*s))
def test_impls_match_reference(shape, renormalize):
    M, N, T, k, d, h, o = shape
    moe = TopKMoE(M, T, d, h, o, k=k, renormalize=renormalize, seed=sum(shape))
    x = torch.randn(M, N, d, generator=torch.Generator().manual_seed(1))
    assert_matches_reference(moe, x)


@pytest.mark.parametrize("renormalize", RENORMALIZE)
def test_per_model_k_matches_reference(renormalize):
    M, N, T = 6, 15, 6
    moe = TopKMoE(M, T, 3, 4, 2, k=torch.tensor([1, 2, 6, 3, 1, 5]), renormalize=renormalize, seed=3)
    x = torch.randn(M, N, 3, generator=torch.Generator().manual_seed(2))
    assert_matches_reference(moe, x)


@pytest.mark.parametrize("temperature", [0.25, 4.0])
def test_temperature_matches_reference_and_equals_a_scaled_router(temperature):
    """softmax(x W / tau): every impl matches the loop reference, and the layer equals one with the
    router weights divided by tau (same outputs; the router gradient scales by 1 / tau)."""
    M, N, T, d = 3, 25, 6, 4
    hot = TopKMoE(M, T, d, 5, 2, k=torch.tensor([1, 2, 4]), seed=7, temperature=temperature)
    x = torch.randn(M, N, d, generator=torch.Generator().manual_seed(3), dtype=hot.router.weight.dtype)
    assert_matches_reference(hot, x)
    plain = TopKMoE(M, T, d, 5, 2, k=torch.tensor([1, 2, 4]), seed=7)
    with torch.no_grad():
        plain.router.weight.div_(temperature)
    y_hot, _, g_hot = run_impl(hot, x, "dense")
    y_plain, _, g_plain = run_impl(plain, x, "dense")
    torch.testing.assert_close(y_hot, y_plain, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(g_hot["router.weight"], g_plain["router.weight"] / temperature, atol=1e-5,
                               rtol=1e-4)
    with pytest.raises(ValueError, match="temperature must be a number > 0"):
        TopKMoE(1, 2, 1, 1, k=1, temperature=0)


@given(
    M=st.integers(1, 4), N=st.integers(1, 24), T=st.integers(1, 9), d=st.integers(1, 5),
    h=st.integers(1, 6), o=st.integers(1, 3), renormalize=st.sampled_from(RENORMALIZE),
    per_model=st.booleans(), tie=st.sampled_from([None, "zero", "dup"]), data=st.data(),
)
@settings(max_examples=40, deadline=None)
@pytest.mark.slow
def test_hypothesis_sweep(M, N, T, d, h, o, renormalize, per_model, tie, data):
    if per_model:
        k = torch.tensor(data.draw(st.lists(st.integers(1, T), min_size=M, max_size=M)))
    else:
        k = data.draw(st.integers(1, T))
    seed = data.draw(st.integers(0, 2**31))
    moe = TopKMoE(M, T, d, h, o, k=k, renormalize=renormalize, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    if tie is None:
        x = torch.randn(M, N, d, generator=gen)
    else:  # exactly representable values, so equal router columns give exactly equal logits
        x = torch.randint(-4, 5, (M, N, d), generator=gen).float() / 4
        with torch.no_grad():
            if tie == "zero":
                moe.router.weight.zero_()
            else:
                w = moe.router.weight
                w.copy_(torch.randint(-2, 3, w.shape, generator=gen).float() / 2)
                moe.router.weight[..., T - 1] = moe.router.weight[..., 0]
    assert_matches_reference(moe, x)


@pytest.mark.parametrize("impl", ["reference", *FAST_IMPLS])
def test_ties_go_to_the_lower_expert_index(impl):
    M, N, T, d = 2, 7, 6, 3
    moe = TopKMoE(M, T, d, 4, k=torch.tensor([2, 4]), impl=impl, seed=0)
    with torch.no_grad():
        moe.router.weight.zero_()
    x = torch.randn(M, N, d)
    stats = moe(x, return_stats=True)[1]
    expected = torch.zeros(M, T)
    expected[0, :2] = 1 / 2
    expected[1, :4] = 1 / 4
    assert torch.equal(stats.fraction, expected)
    # Duplicated columns: expert 4 copies expert 1, and equals it in p for every token.
    moe.router.k = 1
    with torch.no_grad():
        moe.router.weight.fill_(-10.0)
        moe.router.weight[..., 1] = moe.router.weight[..., 4] = torch.tensor([1.0, 2.0, 3.0])
    x = torch.rand(M, N, d) + 0.5  # positive, so experts 1 and 4 have the top logit
    frac = moe(x, return_stats=True)[1].fraction
    assert torch.equal(frac[:, 1], torch.ones(M)) and torch.equal(frac[:, 4], torch.zeros(M))


def _experts(moe: TopKMoE, x: torch.Tensor) -> torch.Tensor:
    """All experts' outputs [M, N, T, d_out], written directly from the definition."""
    h = torch.relu(torch.einsum("mnd,mtdh->mnth", x, moe.w1) + moe.b1[:, None])
    return torch.einsum("mnth,mtho->mnto", h, moe.w2) + moe.b2[:, None]


@pytest.mark.parametrize("impl", FAST_IMPLS)
def test_gating_semantics_by_hand(impl):
    M, N, T, d = 3, 11, 5, 4
    x = torch.randn(M, N, d)
    moe = TopKMoE(M, T, d, 6, 2, k=T, renormalize="never", impl=impl, seed=4)
    p = torch.softmax(x @ moe.router.weight, dim=-1)
    experts = _experts(moe, x)
    # k = T, never renormalized: the full softmax mixture.
    torch.testing.assert_close(moe(x), torch.einsum("mnt,mnto->mno", p, experts), atol=1e-5, rtol=1e-5)
    # k = 1 under "k>1": the top expert scaled by its probability; under "always": the top expert alone,
    # and the router gets no gradient (the reason "k>1" is the default).
    moe.router.k = 1
    top = p.argmax(-1, keepdim=True)
    top_out = experts.gather(2, top[..., None].expand(M, N, 1, 2)).squeeze(2)
    torch.testing.assert_close(moe(x), p.gather(-1, top) * top_out, atol=1e-5, rtol=1e-5)
    moe.router.renormalize = "always"
    y = moe(x)
    torch.testing.assert_close(y, top_out, atol=1e-5, rtol=1e-5)
    (router_grad,) = torch.autograd.grad(y.sum(), moe.router.weight)
    assert torch.equal(router_grad, torch.zeros_like(router_grad))
    # k = 2 renormalized: the two kept probabilities divided by their sum.
    moe.router.k, moe.router.renormalize = 2, "k>1"
    top2 = torch.topk(p, 2, dim=-1)  # random inputs: no ties, so topk's order is the rule's order
    gate = top2.values / top2.values.sum(-1, keepdim=True)
    picked = experts.gather(2, top2.indices[..., None].expand(M, N, 2, 2))  # [M, N, 2 kept, d_out]
    expected = (gate[..., None] * picked).sum(2)
    torch.testing.assert_close(moe(x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("impl", FAST_IMPLS)
def test_gradcheck_float64(impl):
    """The hand-written backward of the expert kernel against finite differences, independent of the
    reference implementation."""
    M, N, T, d, h, o = 2, 5, 4, 3, 4, 2
    moe = TopKMoE(M, T, d, h, o, k=torch.tensor([1, 3]), impl=impl, dtype=torch.float64, seed=7)
    x = torch.randn(M, N, d, dtype=torch.float64, requires_grad=True)
    params = {n: p.detach().clone().requires_grad_(True) for n, p in moe.named_parameters()}

    def f(x, *values):
        return functional_call(moe, dict(zip(params, values, strict=True)), (x,))

    assert torch.autograd.gradcheck(f, (x, *params.values()), eps=1e-6, atol=1e-6, fast_mode=True)
    # d_out = 1 takes a separate backward path when x needs no gradient.
    moe1 = TopKMoE(M, T, d, h, 1, k=2, impl=impl, dtype=torch.float64, seed=8)
    params1 = {n: p.detach().clone().requires_grad_(True) for n, p in moe1.named_parameters()}

    def f1(*values):
        return functional_call(moe1, dict(zip(params1, values, strict=True)), (x.detach(),))

    assert torch.autograd.gradcheck(f1, tuple(params1.values()), eps=1e-6, atol=1e-6, fast_mode=True)


@pytest.mark.parametrize("impl", ["reference", *FAST_IMPLS])
def test_models_are_independent(impl):
    M, N, T = 4, 13, 5
    moe = TopKMoE(M, T, 3, 4, k=torch.tensor([1, 2, 5, 3]), impl=impl, seed=5)
    x = torch.randn(M, N, 3)
    for i in range(M):
        moe.zero_grad(set_to_none=True)
        y, stats = moe(x, return_stats=True)
        (y[i].pow(2).sum() + stats.load_balancing_loss[i]).backward()
        for name in PARAMS:
            g = moe.get_parameter(name).grad
            others = torch.cat([g[:i], g[i + 1 :]])
            assert torch.equal(others, torch.zeros_like(others)), (name, i)
            assert g[i].abs().sum() > 0, (name, i)


@pytest.mark.parametrize("impl", FAST_IMPLS)
def test_bundle_trains_like_models_alone(impl):
    M, N, T, d, h = 3, 16, 4, 3, 5
    ks = torch.tensor([1, 2, 4])
    gen = torch.Generator().manual_seed(9)
    x, target = torch.randn(M, N, d, generator=gen), torch.randn(M, N, 1, generator=gen)

    def train(model, x, target):
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(5):
            opt.zero_grad()
            ((model(x) - target) ** 2).mean(dim=(1, 2)).sum().backward()
            opt.step()

    bundle = TopKMoE(M, T, d, h, k=ks, impl=impl, seed=2)
    alone = []
    for i in range(M):
        single = TopKMoE(1, T, d, h, k=int(ks[i]), impl=impl, seed=123)
        with torch.no_grad():
            for name in PARAMS:
                single.get_parameter(name).copy_(bundle.get_parameter(name)[i : i + 1])
        alone.append(single)
    train(bundle, x, target)
    for i, single in enumerate(alone):
        train(single, x[i : i + 1], target[i : i + 1])
        for name in PARAMS:
            torch.testing.assert_close(bundle.get_parameter(name)[i : i + 1], single.get_parameter(name),
                                       atol=1e-6, rtol=1e-6)
    assert not torch.equal(bundle.w1, TopKMoE(M, T, d, h, seed=2).w1)  # training moved the weights


def test_init_reproducible_and_bounded():
    a, b = TopKMoE(3, 4, 5, 6, 2, seed=11), TopKMoE(3, 4, 5, 6, 2, seed=11)
    for name in PARAMS:
        assert torch.equal(a.get_parameter(name), b.get_parameter(name))
    assert not torch.equal(a.w1, TopKMoE(3, 4, 5, 6, 2, seed=12).w1)
    # Model i's init depends on (seed, i) only, not on the bundle size.
    big = TopKMoE(5, 4, 5, 6, 2, seed=11)
    assert torch.equal(big.w2[:3], a.w2)
    fan_in = {"router.weight": 5, "w1": 5, "b1": 5, "w2": 6, "b2": 6}
    shapes = {"router.weight": (3, 5, 4), "w1": (3, 4, 5, 6), "b1": (3, 4, 6), "w2": (3, 4, 6, 2),
              "b2": (3, 4, 2)}
    for name in PARAMS:
        p = a.get_parameter(name)
        assert isinstance(p, torch.nn.Parameter) and p.shape == shapes[name]
        assert p.abs().max() <= 1 / math.sqrt(fan_in[name])


def test_init_draws_router_w1_b1_w2_b2_from_one_generator_per_model():
    """The draws of every store: per model one generator seeded from (seed, i), U(-1/sqrt(fan_in), ..)
    in the order router, w1, b1, w2, b2; the trainer sees the parameters sorted by name (b1, b2,
    router.weight, w1, w2: the order of the layer before it had a router module)."""
    M, T, d, c, h, o = 2, 4, 3, 2, 5, 2
    moe = TopKMoE(M, T, d, h, o, seed=7, d_context=c)
    for i in range(M):
        seed = int(np.random.SeedSequence([7, i]).generate_state(1, np.uint64)[0] >> 1)
        gen = torch.Generator().manual_seed(seed)
        for name, shape, fan_in in (("router.weight", (d + c, T), d + c), ("w1", (T, d, h), d),
                                    ("b1", (T, h), d), ("w2", (T, h, o), h), ("b2", (T, o), h)):
            bound = 1 / math.sqrt(fan_in)
            want = torch.rand(shape, generator=gen).mul_(2 * bound).sub_(bound)
            assert torch.equal(moe.get_parameter(name)[i], want), (name, i)
    assert [n for n, _ in sorted(moe.named_parameters())] == ["b1", "b2", "router.weight", "w1", "w2"]


def test_k_validation_and_setter():
    moe = TopKMoE(2, 4, 3, 3, k=2, seed=0)
    for bad in (0, 5, -1):
        with pytest.raises(ValueError, match=r"k must satisfy 1 <= k <= n_experts=4"):
            moe.router.k = bad
    with pytest.raises(ValueError, match=r"k must satisfy 1 <= k <= n_experts=4"):
        moe.router.k = torch.tensor([1, 5])
    with pytest.raises(ValueError, match=r"k as a tensor must have shape \[n_models=2\]"):
        moe.router.k = torch.tensor([1, 2, 3])
    with pytest.raises(ValueError, match=r"^k must be an int"):
        moe.router.k = 1.5
    with pytest.raises(ValueError, match=r"^k must be an int"):
        moe.router.k = torch.tensor([1.0, 2.0])
    with pytest.raises(ValueError, match=r"k must satisfy"):
        TopKMoE(2, 4, 3, 3, k=7)
    moe.router.k = torch.tensor([4, 1])
    assert moe.router.k.tolist() == [4, 1]
    moe.router.k = 3
    assert moe.router.k == 3
    with pytest.raises(ValueError, match="impl must be one of"):
        TopKMoE(2, 4, 3, 3, impl="fast")
    with pytest.raises(ValueError, match="impl must be one of"):
        moe.impl = "fast"
    with pytest.raises(ValueError, match="renormalize must be one of"):
        moe.router.renormalize = "k>2"
    with pytest.raises(ValueError, match="renormalize must be one of"):
        TopKMoE(2, 4, 3, 3, renormalize="sometimes")
    with pytest.raises(ValueError, match=r"x must have shape \[n_models=2, N, d_in=3\]"):
        moe(torch.randn(3, 5, 3))


def test_auto_rule():
    # sparse once T >= 3 * mean(k) and the bundle holds >= 16384 tokens (M * N); dense otherwise.
    assert TopKMoE(64, 8, 3, 3, k=2, seed=0).resolved_impl(512) == "sparse"
    assert TopKMoE(64, 8, 3, 3, k=4, seed=0).resolved_impl(512) == "dense"
    assert TopKMoE(4, 8, 3, 3, k=2, seed=0).resolved_impl(512) == "dense"  # 2048 tokens: too few
    per_model = TopKMoE(64, 8, 3, 3, k=torch.tensor([1, 8] * 32), seed=0)  # mean k = 4.5
    assert per_model.resolved_impl(512) == "dense"
    per_model.router.k = torch.tensor([1, 3] * 32)  # mean k = 2
    assert per_model.resolved_impl(512) == "sparse"
    assert TopKMoE(64, 32, 3, 3, k=4, impl="dense", seed=0).resolved_impl(512) == "dense"


def test_float64_matches_reference_with_ties():
    M, N, T = 3, 14, 6
    moe = TopKMoE(M, T, 3, 4, 2, k=torch.tensor([1, 3, 5]), dtype=torch.float64, seed=12)
    x = torch.randint(-4, 5, (M, N, 3)).double() / 4
    with torch.no_grad():
        moe.router.weight.copy_(torch.randint(-2, 3, moe.router.weight.shape).double() / 2)
        moe.router.weight[..., 4] = moe.router.weight[..., 1]
    assert_matches_reference(moe, x, atol=1e-10)


@needs_cuda
@pytest.mark.cuda
@pytest.mark.parametrize("impl", FAST_IMPLS)
def test_cuda_matches_cpu_reference(impl):
    M, N, T, d, h, o = 3, 40, 6, 4, 5, 2
    cpu = TopKMoE(M, T, d, h, o, k=torch.tensor([1, 3, 6]), seed=10)
    gpu = TopKMoE(M, T, d, h, o, k=torch.tensor([1, 3, 6]), seed=10, device="cuda")
    x = torch.randn(M, N, d)
    y_ref, st_ref, g_ref = run_impl(cpu, x, "reference")
    y, st, g = run_impl(gpu, x.cuda(), impl)
    torch.testing.assert_close(y.cpu(), y_ref, atol=1e-4, rtol=1e-4)
    assert torch.equal(st.fraction.cpu(), st_ref.fraction)
    for name, ref in g_ref.items():
        torch.testing.assert_close(g[name].cpu(), ref, atol=1e-4, rtol=1e-4)


def _topk_by_definition(p: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """The k[m] largest p[m, :, n], ties to the lower index, by a stable sort of -p (the rule itself)."""
    order = torch.sort(-p.double(), dim=1, stable=True).indices
    positions = torch.arange(p.shape[1]).view(1, -1, 1).expand_as(order)
    rank = torch.empty_like(order).scatter_(1, order, positions)
    return rank < k.view(-1, 1, 1)


@pytest.mark.parametrize("T", [1, 2, 3, 5, 8, 13, 16, 17, 32])
def test_topk_mask_is_the_rule_for_every_k_and_tie(T):
    gen = torch.Generator().manual_seed(T)
    M, N = 9, 23
    p = torch.softmax(torch.randn(M, T, N, generator=gen), dim=1)
    p[:, :, ::3] = torch.round(p[:, :, ::3] * 4) / 4  # many exact ties
    p[0, :, 0] = 0.0
    for k in (torch.randint(1, T + 1, (M,), generator=gen), torch.full((M,), max(1, T // 3)),
              torch.arange(M) % T + 1):
        mask = topk_mask(p, k, int(k.min()), int(k.max()))
        assert torch.equal(mask, _topk_by_definition(p, k))


def test_dense_side_by_side_matches_reference():
    # Big enough (N * d_hidden >= 400) for the dense impl's side-by-side GEMMs.
    moe = TopKMoE(3, 5, 4, 8, k=torch.tensor([1, 2, 5]), seed=2)
    x = torch.randn(3, 64, 4, generator=torch.Generator().manual_seed(3))
    assert_matches_reference(moe, x, impls=("dense",))
    grads = {}
    for impl in ("reference", "dense"):  # without a gradient for x: the backward's own d_out = 1 path
        moe.impl = impl
        moe.zero_grad(set_to_none=True)
        (moe(x) ** 2).sum().backward()
        grads[impl] = [moe.get_parameter(n).grad.clone() for n in PARAMS]
    for a, b in zip(grads["dense"], grads["reference"], strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
