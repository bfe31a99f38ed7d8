"""Soft MoE layer (P3): against a plain per-model, per-input reference; routing facts; masks; Algorithm 1."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from simulations.families.softmoe import SoftMoE, algorithm1_mask, combine_column_sums, random_mask

M, B, T, D, N, H = 3, 5, 4, 3, 6, 7


def reference(layer: SoftMoE, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """P3's definition written out for one model and one input at a time."""
    outs = []
    for m in range(layer.n_models):
        per_input = []
        for b in range(x.shape[1]):
            X = x[m, b]  # n_tokens x d
            logits = X @ layer.phi[m]
            dispatch, combine = torch.softmax(logits, dim=0), torch.softmax(logits, dim=1)
            slots = dispatch.T @ X
            rows = []
            for j in range(layer.n_experts):
                y = torch.relu(slots[j] @ layer.w1[m, j] + layer.b1[m, j]) @ layer.w2[m, j] + layer.b2[m, j]
                rows.append(y if mask is None else y * mask[m, b, j])
            per_input.append(combine @ torch.stack(rows))
        outs.append(torch.stack(per_input))
    return torch.stack(outs)


def make(n_models=M, n=N, h=H, seed=0) -> SoftMoE:
    return SoftMoE(D, n, h, n_models=n_models, seed=seed, dtype=torch.float64)


def tokens(seed=1, n_models=M, batch=B) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n_models, batch, T, D, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("with_mask", [False, True])
def test_outputs_and_gradients_match_reference(with_mask):
    layer = make()
    x = tokens().requires_grad_(True)
    keep = torch.rand(M, B, N, generator=torch.Generator().manual_seed(2)) < 0.5
    mask = keep.double() if with_mask else None
    probe = torch.randn(M, B, T, D, generator=torch.Generator().manual_seed(3), dtype=torch.float64)

    out = layer(x, mask)
    ref = reference(layer, x, mask)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)

    params = [x, *layer.parameters()]
    grads = torch.autograd.grad((out * probe).sum(), params)
    ref_grads = torch.autograd.grad((ref * probe).sum(), params)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12)


def test_shared_input_broadcasts_over_models():
    layer = make()
    x = tokens(n_models=1)[0]
    torch.testing.assert_close(layer(x), layer(x.expand(M, *x.shape)))


def test_routing_normalisation():
    routed = make().forward_full(tokens())
    torch.testing.assert_close(routed.dispatch.sum(dim=2), torch.ones(M, B, N, dtype=torch.float64))
    torch.testing.assert_close(routed.combine.sum(dim=3), torch.ones(M, B, T, dtype=torch.float64))
    assert (routed.dispatch > 0).all() and (routed.combine > 0).all()


def test_slots_and_expert_outputs_rebuild_the_output():
    layer, x = make(), tokens()
    routed = layer.forward_full(x)
    slots = layer.slots(x, routed.dispatch)
    hidden = torch.relu(torch.einsum("mbnd,mndh->mbnh", slots, layer.w1) + layer.b1[:, None])
    torch.testing.assert_close(routed.hidden, hidden)
    y = layer.expert_outputs(routed.hidden)
    torch.testing.assert_close(routed.out, routed.combine @ y)


def test_model_axis_is_independent_and_init_reproducible():
    bundle = make(n_models=3, seed=10)
    alone = make(n_models=1, seed=12)
    for name, p in alone.named_parameters():
        torch.testing.assert_close(getattr(bundle, name)[2:3], p)
    x = tokens()
    torch.testing.assert_close(bundle(x)[2:3], alone(x[2:3]))
    assert not torch.equal(bundle.phi[0], bundle.phi[1])
    with pytest.raises(ValueError, match="seed"):
        SoftMoE(D, N, H, n_models=2, seed=[1, 2, 3])


def test_single_expert_structure():
    """n = 1 (P3's Theorem 1 setting): combine is all ones, so every token receives the same vector, the
    expert applied to the dispatch-weighted token average."""
    layer = make(n=1)
    x = tokens()
    routed = layer.forward_full(x)
    torch.testing.assert_close(routed.combine, torch.ones(M, B, T, 1, dtype=torch.float64))
    w = torch.softmax(torch.einsum("mbtd,md->mbt", x, layer.phi[:, :, 0]), dim=2)
    average = torch.einsum("mbt,mbtd->mbd", w, x)
    expected = torch.relu(torch.einsum("mbd,mdh->mbh", average, layer.w1[:, 0]) + layer.b1[:, None, 0])
    expected = torch.einsum("mbh,mhd->mbd", expected, layer.w2[:, 0]) + layer.b2[:, None, 0]
    torch.testing.assert_close(routed.out, expected[:, :, None].expand(-1, -1, T, -1))


def test_single_expert_cannot_separate_theorem1_family():
    """P3's proof, case Phi_1 > 0, simulated: A = a(e11 - e21) and B = a e11 give expert inputs (and so
    layer outputs) that merge as a grows, while ||A|| - ||B|| = (sqrt 2 - 1) a grows; matches the symbolic
    limits in theory.softmoe."""
    softmoe_theory = pytest.importorskip("theory.softmoe")
    fam = softmoe_theory.FAMILIES[0]
    limits = softmoe_theory.family_limits(fam)
    assert all(g == 0 for g in limits["input_gap"])

    layer = SoftMoE(2, 1, 4, n_models=1, seed=0, dtype=torch.float64)
    with torch.no_grad():
        layer.phi.copy_(torch.tensor([[[0.7], [-0.3]]], dtype=torch.float64))
    gaps, target_gaps = [], []
    for a in (5.0, 20.0, 80.0):
        A = torch.tensor([[a, 0.0], [-a, 0.0]], dtype=torch.float64)
        Bx = torch.tensor([[a, 0.0], [0.0, 0.0]], dtype=torch.float64)
        x = torch.stack([A, Bx])[None]
        with torch.no_grad():
            out = layer(x)[0]
        gaps.append(float((out[0] - out[1]).abs().max()))
        target_gaps.append(float(A.norm() - Bx.norm()))
    assert gaps[-1] < 1e-8 < gaps[0]
    np.testing.assert_allclose(target_gaps, (math.sqrt(2) - 1) * np.array([5.0, 20.0, 80.0]))
    symbolic = float(limits["target_gap"].subs(softmoe_theory.a, 80.0))
    assert symbolic == pytest.approx(target_gaps[-1])


def test_mask_semantics():
    layer, x = make(), tokens()
    ones = torch.ones(M, B, N, dtype=torch.float64)
    torch.testing.assert_close(layer(x, ones), layer(x))
    torch.testing.assert_close(layer(x, ones[0].bool()), layer(x))  # [B, n] broadcasts over models
    assert layer(x, torch.zeros(M, B, N)).abs().max() == 0
    # Dropping expert j removes exactly C[:, j] Y~_j: no renormalisation of the combine weights.
    routed = layer.forward_full(x)
    y = layer.expert_outputs(routed.hidden)
    keep = ones.clone()
    keep[:, :, 2] = 0
    dropped = routed.combine[..., 2:3] * y[:, :, None, 2]
    torch.testing.assert_close(layer(x, keep), routed.out - dropped)
    with pytest.raises(ValueError, match="mask"):
        layer(x, torch.ones(M, B, N + 1))


def test_algorithm1_keeps_largest_column_sums():
    # Column sums over 2 tokens: expert 0 -> 0.2, 1 -> 0.9, 2 -> 0.5, 3 -> 0.4
    combine = torch.tensor([[0.1, 0.5, 0.3, 0.1], [0.1, 0.4, 0.2, 0.3]])
    torch.testing.assert_close(combine_column_sums(combine), torch.tensor([0.2, 0.9, 0.5, 0.4]))
    assert algorithm1_mask(combine, 2).tolist() == [False, True, True, False]  # not the smallest (0, 3)
    assert algorithm1_mask(combine, 1).tolist() == [False, True, False, False]
    assert algorithm1_mask(combine, 4).all()
    with pytest.raises(ValueError, match="k"):
        algorithm1_mask(combine, 0)


def test_algorithm1_agrees_with_theory_softmoe():
    softmoe_theory = pytest.importorskip("theory.softmoe")
    routed = make().forward_full(tokens(batch=50))
    for k in (1, 2, 3, 5):
        ours = algorithm1_mask(routed.combine, k).numpy()
        idx = softmoe_theory.algorithm1_select(routed.combine.detach().numpy(), k)
        theirs = np.zeros_like(ours)
        np.put_along_axis(theirs, idx, True, axis=-1)
        np.testing.assert_array_equal(ours, theirs)
    # And the masked layer output equals theory's C(X) Y^.
    layer, x = make(), tokens()
    routed = layer.forward_full(x)
    y = layer.expert_outputs(routed.hidden).detach().numpy()
    expected = softmoe_theory.algorithm1_output(routed.combine.detach().numpy(), y, 2)
    got = layer(x, algorithm1_mask(routed.combine, 2)).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_random_mask_draws_k_per_input_reproducibly():
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a, b = random_mask((2, 400, 8), 3, g1), random_mask((2, 400, 8), 3, g2)
    assert torch.equal(a, b)
    assert (a.sum(dim=-1) == 3).all()
    freq = a.double().mean(dim=(0, 1))  # each expert kept with probability 3/8
    assert (freq - 3 / 8).abs().max() < 0.06


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu():
    cpu = SoftMoE(D, N, H, n_models=M, seed=0)
    gpu = SoftMoE(D, N, H, n_models=M, seed=0, device="cuda")
    x = tokens().float()
    keep = algorithm1_mask(cpu.forward_full(x).combine, 2)
    torch.testing.assert_close(gpu(x.cuda(), keep.cuda()).cpu(), cpu(x, keep), rtol=1e-4, atol=1e-5)
