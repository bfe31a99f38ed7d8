"""TopKMoE with a context (d_context > 0): the router reads [x, c], the experts x alone."""

from __future__ import annotations

import pytest
import torch

from simulations.moe import TopKMoE

M, T, D, C, H = 2, 6, 3, 4, 5


def model(impl: str = "dense", d_context: int = C) -> TopKMoE:
    return TopKMoE(M, T, D, H, k=2, impl=impl, dtype=torch.float64, seed=3, d_context=d_context)


def inputs(seed: int = 0, n: int = 40) -> torch.Tensor:
    return torch.randn(M, n, D + C, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_shapes_and_the_default_is_todays_model():
    m = model()
    assert m.router.weight.shape == (M, D + C, T) and m.w1.shape == (M, T, D, H)
    bound = 1 / (D + C) ** 0.5  # fan_in of the router is d_in + d_context
    assert m.router.weight.abs().max() <= bound and m.router.weight.abs().max() > 0.8 * bound
    plain, zero = TopKMoE(M, T, D, H, seed=3), TopKMoE(M, T, D, H, seed=3, d_context=0)
    for name, p in plain.named_parameters():
        assert torch.equal(p, zero.get_parameter(name))
    with pytest.raises(ValueError, match="d_in \\+ d_context=3 \\+ 4"):
        m(torch.zeros(M, 5, D))
    with pytest.raises(ValueError, match="d_context"):
        TopKMoE(M, T, D, H, d_context=-1)


@pytest.mark.parametrize("impl", ["dense", "sparse", "reference"])
def test_experts_ignore_the_context_and_the_router_reads_it(impl):
    m, u = model(impl), inputs()
    other = u.clone()
    other[..., D:] = inputs(1)[..., D:]
    assert torch.equal(m.expert_outputs(u), m.expert_outputs(other))
    gating = m.router.route(u)
    mask, gates = gating.selected, gating.gates
    mask_c = m.router.route(other).selected
    assert not torch.equal(mask, mask_c)  # the context changes the routing ...
    with torch.no_grad():  # ... and, at fixed gates, nothing else
        assert torch.equal(m(u, gates=gates), m(other, gates=gates))
    # the fast impls agree with the reference loop
    torch.testing.assert_close(m(u), model("reference")(u))


def test_router_gradient_reaches_the_context_rows_and_experts_get_none_from_c():
    m, u = model(), inputs().requires_grad_(True)
    m(u).square().sum().backward()
    assert m.router.weight.grad[:, D:].abs().sum() > 0
    assert u.grad[..., D:].abs().sum() > 0  # only through the router
    mm, uu = model(), inputs().requires_grad_(True)
    gates = mm.router.route(uu).gates
    mm(uu, gates=gates.detach()).square().sum().backward()
    assert torch.equal(uu.grad[..., D:], torch.zeros_like(uu.grad[..., D:]))
