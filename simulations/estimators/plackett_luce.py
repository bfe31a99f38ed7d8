"""Plackett-Luce selections of k of T experts: sampling without replacement by Gumbel-top-k, and the
log-probability of a ranked selection (what the score-function estimator differentiates).

With positive weights w_1..w_T, a ranked selection (i_1, ..., i_k) has probability
prod_j w_{i_j} / (W - w_{i_1} - ... - w_{i_{j-1}}), W = sum w; adding independent Gumbel noise to
log w and taking the k largest draws exactly such a sample (Kool et al. 2019). Everything works in the
[M, T, n] layout of the router (experts on dim -2), with one k per model.
"""

from __future__ import annotations

import torch

from simulations.selection import ranked_top


def log_weights(p: torch.Tensor) -> torch.Tensor:
    """log w of router scores p >= 0, a zero score at the smallest positive float (so its log is finite
    and its expert merely never drawn first)."""
    return p.clamp_min(torch.finfo(p.dtype).tiny).log()


def gumbel_topk(log_w: torch.Tensor, exponential: torch.Tensor, k: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """A ranked sample of k[m] experts per (model m, point): (order [..., M, k_max, n] long, the experts
    in the order drawn; valid [M, k_max, 1] bool, which of the k_max places model m uses). log_w
    [M, T, n] log-weights, `exponential` [..., M, T, n] Exp(1) draws (leading sample axes allowed):
    -log of an Exp(1) draw is a Gumbel draw, so the sample is the k largest log_w - log(E), or of the
    same order, w / E."""
    k_max = int(k.max())
    w = (log_w.detach() - log_w.detach().amax(-2, keepdim=True)).exp()
    keys = (w / exponential).movedim(-2, 0)  # experts first, as the selection network wants them
    order = ranked_top(keys, k_max).movedim(0, -2)
    valid = torch.arange(k_max, device=k.device).view(1, k_max, 1) < k.view(-1, 1, 1)
    return order, valid


def selection_mask(order: torch.Tensor, valid: torch.Tensor, n_experts: int) -> torch.Tensor:
    """Bool [..., M, T, n]: the experts of a ranked selection (its valid places)."""
    shape = (*order.shape[:-2], n_experts, order.shape[-1])  # [..., M, T, n]
    mask = torch.zeros(shape, dtype=torch.bool, device=order.device)
    return mask.scatter_(-2, order, valid.expand_as(order))


def log_prob(log_w: torch.Tensor, order: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """log P(order) [..., M, n] under Plackett-Luce with log-weights log_w [M, T, n] (differentiable in
    log_w), summed over each model's valid places."""
    shift = log_w.amax(-2, keepdim=True).detach()
    w = (log_w - shift).exp()  # weights scaled to at most 1: the ratios are unchanged
    lead = order.shape[: order.dim() - w.dim()]  # sample axes
    taken = w.expand(*lead, *w.shape).gather(-2, order)  # [..., M, k_max, n]
    before = taken.cumsum(-2) - taken  # weight drawn before each place
    left = (w.sum(-2, keepdim=True) - before).clamp_min(torch.finfo(w.dtype).tiny)
    terms = (log_w - shift).expand(*lead, *w.shape).gather(-2, order) - left.log()
    return (terms * valid).sum(-2)
