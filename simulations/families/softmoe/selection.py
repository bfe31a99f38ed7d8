"""Which experts to keep per input at inference: P3's Algorithm 1 and its random baseline.

Algorithm 1 (no labels, no training): sum each expert's column of the combine matrix C(X) over tokens
and keep the k experts with the LARGEST sums. P3's batched pseudocode sorts ascending and takes the first
k, which would keep the smallest: a slip in the listing; the prose and the results keep the largest.
"""

from __future__ import annotations

import torch


def combine_column_sums(combine: torch.Tensor) -> torch.Tensor:
    """Per-expert importance [..., n]: the combine weights [..., n_tokens, n] summed over tokens."""
    return combine.sum(dim=-2)


def algorithm1_mask(combine: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean keep-mask [..., n] with True on the k experts of largest combine column sum, per input."""
    scores = combine_column_sums(combine)
    return _top_k_mask(scores, k)


def random_mask(shape: tuple[int, ...], k: int, generator: torch.Generator, device=None) -> torch.Tensor:
    """Boolean keep-mask of `shape` (last axis: experts) with k experts drawn uniformly per input."""
    scores = torch.rand(shape, generator=generator).to(device)
    return _top_k_mask(scores, k)


def _top_k_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    n = scores.shape[-1]
    if not 1 <= k <= n:
        raise ValueError(f"k: expected 1 <= k <= {n}, got {k}")
    idx = scores.topk(k, dim=-1, largest=True).indices
    return torch.zeros_like(scores, dtype=torch.bool).scatter_(-1, idx, True)
