"""Shared fixtures: a tiny grid config that trains in seconds."""

from __future__ import annotations

import pytest
from grid_fixtures import TINY


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
