"""selection.ranks: each entry's place in a stable sort, by pairwise comparisons (up to PAIRWISE_MAX
places) or a sort (more), equal to what torch.sort's inverse permutation gives, ties included."""

from __future__ import annotations

import pytest
import torch

from simulations.selection import PAIRWISE_MAX, ranks


def _sorted_places(x: torch.Tensor, dim: int, descending: bool) -> torch.Tensor:
    order = torch.sort(x, dim=dim, descending=descending, stable=True).indices
    return torch.argsort(order, dim=dim)


@pytest.mark.parametrize("T", [1, 2, 7, PAIRWISE_MAX, PAIRWISE_MAX + 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int64])
@pytest.mark.parametrize("descending", [True, False])
def test_ranks_are_a_stable_sorts_places(T, dtype, descending):
    g = torch.Generator().manual_seed(T)
    x = (torch.rand(5, T, 40, generator=g) * 4).to(dtype)  # many ties (ints 0..3, repeated floats)
    if dtype.is_floating_point:
        x = torch.where(torch.rand(x.shape, generator=g) < 0.3, x[:, :1], x)
    for dim in (1, -1):
        got = ranks(x, dim, descending)
        assert got.dtype == torch.uint8
        assert torch.equal(got.long(), _sorted_places(x, dim, descending))
