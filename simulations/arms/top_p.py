"""The top-p router (adaptive k, Huang et al. 2024, arXiv 2403.07652): the learned router's
probabilities, but each input takes its experts in descending order of probability until their
cumulative probability reaches `top_p`, at most k_max (the cell's k) and at least one, so the number of
experts per input is the router's choice. Gates follow the model's own gate rule on that selection
(`Router.gates` at k_max), so a renormalized gate sums to 1 over the selected experts.

Training options are the learned router's (learning-rate multiple, load balancing, logit jitter) plus
Huang et al.'s dynamic loss: `top_p_entropy` x the mean entropy of the router probabilities over the
valid training points (0 by default: off), which sharpens the probabilities; without it a flat router
would always need k_max experts to pass the threshold.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from simulations.arms.base import Gating, Points, register_router
from simulations.arms.learned import Learned, LearnedSettings
from simulations.config_schema import Number, UnitInterval, setting


def top_p_mask(p: torch.Tensor, top_p: float, k_max: torch.Tensor) -> torch.Tensor:
    """Bool [M, T, N]: for each (model m, point n) the experts taken in descending order of p[m, :, n]
    (ties: the lower index first, as topk_mask) while the cumulative probability of those taken before
    is below `top_p`, at most k_max[m] of them; the first is always taken (at least one expert)."""
    M, T, _ = p.shape
    p = p.detach()
    ordered, order = torch.sort(p, dim=1, descending=True, stable=True)
    before = torch.cat([torch.zeros_like(ordered[:, :1]), ordered.cumsum(1)[:, :-1]], dim=1)
    place = torch.arange(T, device=p.device).view(1, T, 1)
    keep = (before < top_p) & (place < k_max.view(M, 1, 1).to(p.device))
    keep[:, 0] = True
    return torch.zeros_like(p, dtype=torch.bool).scatter_(1, order, keep)


@dataclass(frozen=True)
class TopPSettings(LearnedSettings):
    """The learned router's, plus top_p: the cumulative-probability threshold; top_p_entropy: the weight
    of the entropy ("dynamic") loss on the router probabilities."""

    top_p: float = setting(0.5, UnitInterval(), since=0.5)
    top_p_entropy: float = setting(0.0, Number(), since=0.0)


@register_router
class TopP(Learned):
    name = "top_p"
    label = "top-p router"
    order = 4
    primary = False
    takes_estimator = False  # its selection is not a top-k: the estimators sample top-k sets
    Settings = TopPSettings

    def route(self, split: str, points: Points = slice(None), training: bool = False) -> Gating:
        p = self.probs(split, points, training)
        mask = top_p_mask(p, self.settings.top_p, self.model.router.k_per_model)
        return Gating(mask, self.gates_on(p, mask, split, points), p)

    def aux_loss(self, gating: Gating, split: str, points: Points) -> torch.Tensor | None:
        """The learned router's load-balancing term plus `top_p_entropy` x the mean entropy [M] of the
        router probabilities over the valid training points (None when both are off)."""
        balance = super().aux_loss(gating, split, points)
        if self.settings.top_p_entropy <= 0:
            return balance
        p = gating.probs
        entropy = -(p * p.clamp_min(torch.finfo(p.dtype).tiny).log()).sum(1)  # [M, n]
        mask = self.data.valid(split, points)
        term = self.settings.top_p_entropy * (entropy * mask).sum(1) / mask.sum(1)
        return term if balance is None else balance + term

    def gates_by_k(self, split: str, points: Points) -> Iterator[torch.Tensor]:
        """The top-p selection with k_max = 1, 2, ..., T in turn, gated by the model's rule at that k."""
        p = self.probs(split, points)
        for j in range(self.model.n_experts):
            k = torch.full_like(self.model.router.k_per_model, j + 1)
            yield self.gates_on(p, top_p_mask(p, self.settings.top_p, k), split, points, k=j + 1)
