"""Tests of the SRAVEN transformer bundle and its trainer: batched attention and the whole batched
model against per-model loop references (outputs and gradients), independence of the models, bundle
vs single-model init, determinism of train_bundle, and a tiny run that learns above chance."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from simulations.families.sraven import (
    ModelSpec,
    SravenSettings,
    SravenTransformer,
    sample,
    to_tokens,
    train_bundle,
)
from simulations.families.sraven.model import batched_attention, reference_attention


def _grads(fn, tensors):
    for t in tensors:
        t.grad = None
    out = fn()
    w = torch.linspace(-1.0, 2.0, out.numel(), dtype=out.dtype).view_as(out)
    ((w * out).sum() + out.square().sum()).backward()
    return out.detach(), [t.grad.clone() for t in tensors]


def test_batched_attention_matches_reference():
    g = torch.Generator().manual_seed(0)
    M, B, L, d, H = 3, 4, 7, 12, 3
    tensors = [torch.randn(*s, generator=g, dtype=torch.float64, requires_grad=True)
               for s in ((M, B, L, d), (M, d, 3 * d), (M, 3 * d), (M, d, d), (M, d))]
    out_b, g_b = _grads(lambda: batched_attention(*tensors, H), tensors)
    out_r, g_r = _grads(lambda: reference_attention(*tensors, H), tensors)
    torch.testing.assert_close(out_b, out_r, rtol=1e-10, atol=1e-10)
    for a, b in zip(g_b, g_r, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def _tokens(M: int, B: int, seed: int = 0) -> torch.Tensor:
    toks = [to_tokens(sample(B, 8, "train", seed=seed + m))[0] for m in range(M)]
    return torch.as_tensor(np.stack(toks))


@pytest.mark.parametrize("impl", ["dense", "sparse"])
def test_batched_model_matches_per_model_reference(impl):
    ks = [1, 3, 8]
    model = SravenTransformer(ks, [0, 1, 2], d_model=8, n_heads=2, n_blocks=2, d_expert=5, impl=impl,
                              dtype=torch.float64)
    params = [p for _, p in sorted(model.named_parameters())]
    x = _tokens(3, 5)
    out_b, g_b = _grads(lambda: model(x), params)
    out_r, g_r = _grads(lambda: model(x, reference=True), params)
    torch.testing.assert_close(out_b, out_r, rtol=1e-9, atol=1e-9)
    for (name, _), a, b in zip(sorted(model.named_parameters()), g_b, g_r, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9, msg=name)
        assert b.abs().sum() > 0 or name.endswith("router.weight"), name  # every weight is exercised


def test_models_are_independent_and_init_per_seed():
    model = SravenTransformer([2, 2, 5], [4, 5, 4], d_model=8, n_heads=2, d_expert=4, dtype=torch.float64)
    x = _tokens(3, 3)
    out = model(x)
    out[0].sum().backward()
    for name, p in model.named_parameters():
        assert p.grad[1:].abs().max() == 0, name  # model 0's loss does not reach models 1, 2
    single = SravenTransformer([5], [4], d_model=8, n_heads=2, d_expert=4, dtype=torch.float64)
    for (name, p), (_, q) in zip(model.named_parameters(), single.named_parameters(), strict=True):
        assert torch.equal(p[2], q[0]) and torch.equal(p[0], q[0]), name  # same seed, same init
    torch.testing.assert_close(single(x[2:]), out[2:].detach())


def test_bad_model_input():
    model = SravenTransformer([1, 2], [0, 1], d_model=8, n_heads=2, d_expert=4)
    with pytest.raises(ValueError, match="tokens"):
        model(torch.zeros(3, 2, 32, dtype=torch.long))
    with pytest.raises(ValueError, match="n_heads"):
        SravenTransformer([1], [0], d_model=10, n_heads=4)


@pytest.mark.parametrize("make, field", [
    (lambda: ModelSpec(k=0), "k"),
    (lambda: ModelSpec(k=9), "k"),
    (lambda: SravenSettings(steps=0), "steps"),
    (lambda: SravenSettings(n_train=0), "n_train"),
    (lambda: SravenSettings(lr=-1.0), "lr"),
])
def test_bad_settings(make, field):
    with pytest.raises(ValueError, match=field):
        make()


TINY = SravenSettings(steps=6, batch=8, n_eval=32, d_model=8, n_heads=2, d_expert=4)


def test_train_bundle_is_deterministic_and_tidy():
    specs = [ModelSpec(k=1, n_rules=3, seed=0), ModelSpec(k=2, n_rules=8, seed=1),
             ModelSpec(k=2, n_rules=8, seed=1, distinct=1)]
    a = train_bundle(specs, TINY).drop(columns="wall_s")
    b = train_bundle(specs, TINY).drop(columns="wall_s")
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 3 and a["k"].tolist() == [1, 2, 2]
    assert a["n_multisets_train"].tolist() == [11, 247, 8]
    assert a["n_multisets_ood"].tolist() == [4, 83, 0]
    assert math.isnan(a["acc_ood"][2]) and not a["acc_ood"][:2].isna().any()
    assert ((a["router_entropy"] > 0) & (a["router_entropy"] <= math.log(8) + 1e-9)).all()
    fixed = train_bundle(specs[:1], SravenSettings(**{**TINY.__dict__, "n_train": 16}))
    assert fixed["n_train"][0] == 16 and 0 <= fixed["feat_acc_train"][0] <= 1


@pytest.mark.slow
def test_tiny_run_learns_above_chance():
    """R = 2 (the easiest pool size): in 120 steps the per-feature accuracy rises well above chance
    (1/8), and without the feature permutation (the diagnostic variant) whole problems get solved."""
    settings = SravenSettings(steps=120, batch=32, n_eval=256, d_model=16, n_heads=2, d_expert=16, lr=1e-2)
    specs = [ModelSpec(k=1, n_rules=2, seed=0), ModelSpec(k=2, n_rules=2, seed=1),
             ModelSpec(k=2, n_rules=2, seed=1, permute=False)]
    df = train_bundle(specs, settings)
    assert (df["feat_acc_id"][:2] > 0.2).all(), df["feat_acc_id"].tolist()
    assert (df["ce_id"][:2] < math.log(8) - 0.2).all(), df["ce_id"].tolist()
    assert df["acc_id"][2] > 0.5, df["acc_id"].tolist()  # chance: 8 ** -4


pytestmark = pytest.mark.usefixtures("one_thread")
