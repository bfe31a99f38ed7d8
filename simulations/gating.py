"""A router's decision on some points: which experts run and with what gates (what a router kind's
`route` returns and an estimator samples), and how points of a split are named."""

from __future__ import annotations

from dataclasses import dataclass

import torch

Points = slice | torch.Tensor  # which points of a split: a slice, or an index tensor (a permutation)


@dataclass(frozen=True)
class Gating:
    """One gating decision on some points: the selected experts and their gates, each [M, T, n], and
    the router probabilities they came from (None for a router without them)."""

    selected: torch.Tensor
    gates: torch.Tensor
    probs: torch.Tensor | None = None
