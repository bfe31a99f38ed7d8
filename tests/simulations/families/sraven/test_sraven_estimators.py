"""The estimator axis on the SRAVEN transformer (simulations.families.sraven.estimators): the dense
straight-through forward is the top-k forward, its gradient reaches every expert's router logit; the
score function samples k experts per token with Plackett-Luce frequencies (Monte-Carlo against the
closed form at k = 1), keeps models independent and draws per model; both train; bad names are refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from simulations.config import load_config
from simulations.config_schema import ConfigError
from simulations.families.sraven import (
    ModelSpec,
    SravenSettings,
    SravenTransformer,
    sample,
    to_tokens,
    train_bundle,
)
from simulations.families.sraven.estimators import ScoreRoute, StepLoss, dense_ste
from simulations.grid import cells
from simulations.moe import TopKMoE


def _tokens(M: int, B: int, seed: int = 0) -> torch.Tensor:
    return torch.as_tensor(np.stack([to_tokens(sample(B, 4, "train", seed=seed + m))[0] for m in range(M)]))


def _targets(M: int, B: int, seed: int = 0) -> torch.Tensor:
    return torch.as_tensor(np.stack([to_tokens(sample(B, 4, "train", seed=seed + m))[1] for m in range(M)]))


def _model(ks, seeds, blocks=1):
    return SravenTransformer(ks, seeds, d_model=8, n_heads=2, n_blocks=blocks, d_expert=4,
                             dtype=torch.float64)


def test_dense_ste_forward_is_the_top_k_forward_and_trains_every_router_logit():
    model = _model([1, 2], [0, 1])
    x, y = _tokens(2, 6), _targets(2, 6)
    torch.testing.assert_close(model(x, route=dense_ste), model(x), rtol=0, atol=1e-12)
    grads = {}
    for name in ("pathwise", "dense_ste"):
        model.zero_grad()
        StepLoss(name, 0.0, [(0,), (1,)])(model, x, y)[1].sum().backward()
        grads[name] = {n: p.grad.clone() for n, p in model.named_parameters()}
    # one block: the experts learn from the same top-k mixture, the routers from another gradient
    torch.testing.assert_close(grads["dense_ste"]["blocks.0.moe.w2"], grads["pathwise"]["blocks.0.moe.w2"])
    assert not torch.allclose(grads["dense_ste"]["blocks.0.moe.router.weight"],
                              grads["pathwise"]["blocks.0.moe.router.weight"])
    # at k = 1 every logit's column of the router weight learns (the dense mixture reaches all 8)
    assert (grads["dense_ste"]["blocks.0.moe.router.weight"][0].abs().sum(0) > 0).all()


def test_score_samples_k_experts_per_token_with_plackett_luce_frequencies():
    """At k = 1 a Plackett-Luce draw picks expert j with probability p_j: the Monte-Carlo frequencies
    over 20,000 tokens with one input match the router's softmax within 4 standard errors."""
    torch.manual_seed(0)
    moe = TopKMoE(2, 4, 3, 2, d_out=3, k=torch.tensor([1, 3]), dtype=torch.float64, seed=0)
    with torch.no_grad():
        moe.router.weight.mul_(4.0)  # unequal scores
    n = 20000
    h = torch.randn(2, 1, 3, dtype=torch.float64).expand(2, n, 3).contiguous()
    route = ScoreRoute([torch.Generator().manual_seed(s) for s in (1, 2)])
    captured = {}

    def mix(x, gates, selected, outputs=None):
        captured["selected"] = selected
        return x.new_zeros(x.shape[0], x.shape[1], 3)

    moe.mix = mix
    route(moe, h)
    selected = captured["selected"]
    assert (selected.sum(1) == torch.tensor([1, 3]).view(2, 1)).all()
    p = moe.router.scores(h)[0, :, 0].detach()
    freq = selected[0].double().mean(1)
    se = (p * (1 - p) / n).sqrt()
    assert ((freq - p).abs() < 4 * se + 1e-12).all(), (freq, p)
    assert route.log_probs[0].shape == (2, n) and torch.isfinite(route.log_probs[0]).all()


def test_score_keeps_models_independent_and_draws_per_model():
    model = _model([2, 2, 3], [4, 5, 4])
    x, y = _tokens(3, 4), _targets(3, 4)
    ce, loss = StepLoss("score", 0.01, [(4, 4, 2), (5, 4, 2), (4, 4, 3)], score_samples=2)(model, x, y)
    loss[0].backward()
    for name, p in model.named_parameters():
        assert p.grad[1:].abs().max() == 0, name  # model 0's loss reaches no other model
    assert ce.shape == loss.shape == (3,)
    # model 0's draws are its own: the same in a bundle of one (same seed tuple, same init)
    alone = _model([2], [4])
    r_bundle, r_alone = ScoreRoute(StepLoss("score", 0, [(4, 4, 2), (5, 4, 2), (4, 4, 3)]).generators), \
        ScoreRoute(StepLoss("score", 0, [(4, 4, 2)]).generators)
    model(x, route=r_bundle)
    alone(x[:1], route=r_alone)
    torch.testing.assert_close(r_bundle.log_probs[0][0], r_alone.log_probs[0][0], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("estimator", ["dense_ste", "score"])
def test_each_estimator_trains_a_bundle_deterministically(estimator):
    specs = [ModelSpec(k=k, n_rules=2, seed=0) for k in (1, 2)]
    st = SravenSettings(steps=40, batch=16, n_eval=64, d_model=16, d_expert=16, n_blocks=1,
                        estimator=estimator, score_samples=2, tokens="column", k_eval=False, eval_every=40)
    a, b = train_bundle(specs, st), train_bundle(specs, st)
    assert a.drop(columns="wall_s").equals(b.drop(columns="wall_s"))
    assert (a["estimator"] == estimator).all()
    history = a.attrs["history"]
    first, last = history[history["step"] == 0], history[history["step"] == 40]
    assert (last["ce_id"].to_numpy() < first["ce_id"].to_numpy()).all()  # it learns


def test_the_estimator_axis_keeps_ids_and_refuses_bad_names():
    base = load_config(family="sraven", preset_name="quick")
    same = load_config(family="sraven", preset_name="quick", overrides={"estimator": "pathwise"})
    assert [c["cell_id"] for c in cells(base)] == [c["cell_id"] for c in cells(same)]
    two = load_config(family="sraven", preset_name="quick", overrides={"estimator": ["pathwise", "score"]})
    ids = [c["cell_id"] for c in cells(two)]
    assert len(ids) == 2 * len(cells(base)) == len(set(ids))
    with pytest.raises(ConfigError, match="estimator"):
        load_config(family="sraven", preset_name="quick", overrides={"estimator": "swap"})
    with pytest.raises(ValueError, match="estimator"):
        SravenSettings(estimator="swap")
