"""Shared fixtures: a tiny grid config that trains in seconds."""

from __future__ import annotations

import pytest

TINY = {
    "name": "tiny", "n_skills": 4, "d_in": 4, "teacher_width": 8, "noise": 0.1, "holdout_frac": 0.25,
    "complexity": [1, 2], "n_experts": [4], "k": [1, 2], "n_train": [32, 64], "width": [4], "seeds": [0, 1],
    "lr": 0.01, "max_steps": 30, "eval_every": 10, "patience": 2, "n_val": 32, "n_test": 64,
    "max_models_per_bundle": 4, "device": "cpu", "router": ["learned"], "experts": ["learned"],
}


@pytest.fixture
def tiny_raw() -> dict:
    """A tiny grid as a plain mapping: 8 cells x 2 seeds = 16 models in 4 bundles."""
    return dict(TINY)


@pytest.fixture
def one_thread():
    """One torch thread: on 2 cores shared with other jobs, two threads contend and run ~10x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
