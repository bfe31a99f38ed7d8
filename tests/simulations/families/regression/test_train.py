"""The bundle trainer: models are independent, early stopping and divergence freeze only their model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from simulations.families.regression.tasks import CompositionalTask, TaskSpec
from simulations.families.regression.train import (
    BundleData,
    TrainSettings,
    init_model,
    make_bundle_data,
    train_bundle,
)
from simulations.per_model import clip_grads

SETTINGS = TrainSettings(lr=0.01, max_steps=40, eval_every=10, patience=100, clip_norm=1.0)


def bundle(ks, seeds, n_train, task_seeds=None, s=2):
    task_seeds = task_seeds or [0] * len(ks)
    tasks = [CompositionalTask(TaskSpec(4, s, 4, teacher_width=8, seed=t, n_ref=5000)) for t in task_seeds]
    data = make_bundle_data(tasks, n_train, 32, 64, torch.float64, "cpu")
    model = init_model(4, 4, 4, ks, seeds, "dense", "k>1", torch.float64, "cpu")
    return model, data


def select(data: BundleData, idx: list[int], n: int) -> BundleData:
    """Models idx of a bundle, training set cut to n points (what a solo bundle would hold)."""
    def pick(t, train):
        return t[idx][:, :n] if train else t[idx]

    fields = {name: {split: pick(v, split == "train") for split, v in t.items()} if isinstance(t, dict)
              else pick(t, name in ("x_train", "y_train", "mask_train")) for name, t in vars(data).items()}
    return BundleData(**fields)


def test_each_model_trains_as_if_alone():
    """Bundle of 3 (different k, seed, task and padded data size) vs. the same models one by one."""
    model, data = bundle([1, 2, 3], [5, 6, 7], [40, 64, 20], task_seeds=[0, 1, 2])
    together = train_bundle(model, data, SETTINGS)
    for i, (k, seed, n) in enumerate([(1, 5, 40), (2, 6, 64), (3, 7, 20)]):
        solo_model = init_model(4, 4, 4, [k], [seed], "dense", "k>1", torch.float64, "cpu")
        solo = train_bundle(solo_model, select(data, [i], n), SETTINGS)
        for col in ("train_mse", "val_mse", "test_mse_id", "test_mse_ood"):
            assert together[col][i] == pytest.approx(solo[col][0], rel=1e-9, abs=1e-12)


def test_training_reduces_error_and_reports_normalised_metrics():
    model, data = bundle([2, 2], [0, 1], [64, 64])
    with torch.no_grad():
        before = ((model(data.x_train) - data.y_train) ** 2).mean().item()
    df = train_bundle(model, data, TrainSettings(lr=0.01, max_steps=60, eval_every=10, patience=100))
    assert (df.train_mse < before).all()
    np.testing.assert_allclose(df.test_nmse_id, df.test_mse_id / df.target_var)
    assert (df.steps == 60).all() and not df.early_stopped.any() and not df.diverged.any()
    assert ((df.router_entropy > 0) & (df.router_entropy <= math.log(4) + 1e-9)).all()


def test_diverged_model_is_flagged_frozen_and_does_not_touch_the_others():
    model, data = bundle([1, 2, 2], [0, 1, 2], [32, 32, 32])
    clean = train_bundle(*bundle([1, 2, 2], [0, 1, 2], [32, 32, 32]), SETTINGS)
    data.y_train[1, 3, 0] = math.inf  # model 1's loss is inf from step 0
    df = train_bundle(model, data, SETTINGS)
    assert df.diverged.tolist() == [False, True, False]
    assert df.loc[1, ["train_mse", "test_mse_id", "test_mse_ood", "val_mse"]].isna().all()
    assert df.steps[1] == 0
    for i in (0, 2):
        assert df.test_mse_id[i] == pytest.approx(clean.test_mse_id[i], rel=1e-9)


def test_early_stopping_freezes_at_best_checkpoint():
    model, data = bundle([2, 2], [0, 1], [16, 64])
    df = train_bundle(model, data, TrainSettings(lr=0.05, max_steps=400, eval_every=5, patience=3))
    stopped = df[df.early_stopped]
    assert len(stopped) >= 1 and (stopped.steps < 400).all()
    # the reported val MSE is the one of the parameters the model ended with
    with torch.no_grad():
        val_now = ((model(data.x_val) - data.y_val) ** 2).mean(dim=(1, 2)).numpy()
    np.testing.assert_allclose(df.val_mse, val_now, rtol=1e-9)


def test_gradient_clipping_is_per_model():
    p = torch.nn.Parameter(torch.zeros(3, 2, 2))
    p.grad = torch.stack([torch.full((2, 2), v) for v in (0.1, 10.0, 100.0)])
    clip_grads([p], clip=1.0)
    norms = p.grad.flatten(1).norm(dim=1)
    assert norms.tolist() == pytest.approx([0.2, 1.0, 1.0])


def test_init_depends_on_seed_not_on_bundle():
    a = init_model(4, 4, 4, [1, 2, 3], [9, 9, 3], "auto", "k>1", torch.float32, "cpu")
    b = init_model(4, 4, 4, [4], [9], "auto", "k>1", torch.float32, "cpu")
    for name, p in a.named_parameters():
        assert torch.equal(p[0], p[1]) and torch.equal(p[0], b.get_parameter(name)[0])
        assert not torch.equal(p[0], p[2])
