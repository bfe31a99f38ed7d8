"""How the SRAVEN transformer's routers learn their top-k selection: the regression grid's estimator axis
(simulations.estimators, docs/tasks.md "Estimators") on the MoE transformer, every MoE layer alike.

- `pathwise` (the default; every store before the axis): the loss's gradient through each layer's gates
  on its own top-k.
- `dense_ste` (DenseMixer): each layer's forward is its own top-k mixture; its router's gradient is that
  of the dense mixture sum_j p_j E_j(h) with the experts' outputs held fixed, so unselected experts'
  logits learn too.
- `score`: each layer's selection is a Plackett-Luce sample of k experts per token (Gumbel-top-k on the
  log-scores); experts and gate values learn pathwise on the sample, the selections by REINFORCE: a
  problem's cross-entropy times the log-probability of every sampled selection of its tokens in every
  layer, with a leave-one-out baseline over `score_samples` copies of the batch (one sample each).
- `swap` is not offered: its counterfactual search needs a loss per token, and this loss is per problem.

Evaluation is each layer's greedy top-k whatever the estimator (estimators change how a router learns,
never how it routes). The sampling draws come from one CPU generator per model, seeded by the model's
own (seed, R, k), so a model's draws do not depend on its bundle or device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from simulations.estimators import DEFAULT_ESTIMATOR, plackett_luce
from simulations.estimators import ESTIMATORS as ALL_ESTIMATORS
from simulations.moe import TopKMoE
from simulations.router import RouterStats

from .model import SravenTransformer, _seed

__all__ = ["DEFAULT_ESTIMATOR", "ESTIMATORS", "ScoreRoute", "StepLoss", "dense_ste"]

# those of simulations.estimators a transformer takes (swap: no loss per token), in the registry's order
ESTIMATORS = tuple(name for name in ALL_ESTIMATORS if name in ("pathwise", "dense_ste", "score"))
_SCORE_STREAM = 0x5C0E  # the score estimator's own stream of a model's seeds


def dense_ste(moe: TopKMoE, h: torch.Tensor) -> tuple[torch.Tensor, RouterStats]:
    """One MoE layer under the dense straight-through estimator: the top-k mixture forward, the dense
    mixture's gradient for the router (gates on detached scores, so the top-k forward trains only the
    experts)."""
    router = moe.router
    gating = router.route(h)
    outputs = moe.expert_outputs(h)  # [M, T, N, d]
    gates = router.gates(gating.probs.detach(), gating.selected)
    hard = (gates.unsqueeze(-1) * outputs).sum(1)
    dense = (gating.probs.unsqueeze(-1) * outputs.detach()).sum(1)
    return hard + (dense - dense.detach()), router.stats(gating.probs, gating.selected)


class ScoreRoute:
    """One training pass under the score function: every MoE layer samples its selection per token and
    keeps the sample's log-probability [M, N] in `log_probs` (one per layer, in order)."""

    def __init__(self, generators: list[torch.Generator]) -> None:
        self.generators = generators
        self.log_probs: list[torch.Tensor] = []

    def __call__(self, moe: TopKMoE, h: torch.Tensor) -> tuple[torch.Tensor, RouterStats]:
        router = moe.router
        p = router.scores(h)  # [M, T, N]
        M, T, N = p.shape
        u = torch.stack([torch.rand(T * N, generator=g, dtype=p.dtype) for g in self.generators])
        draws = u.view(M, T, N).clamp_min_(torch.finfo(p.dtype).tiny).log_().neg_().to(p.device)  # Exp(1)
        log_w = plackett_luce.log_weights(p)
        order, valid = plackett_luce.gumbel_topk(log_w, draws, router.k_per_model)
        selected = plackett_luce.selection_mask(order, valid, T)
        self.log_probs.append(plackett_luce.log_prob(log_w, order, valid))
        return moe.mix(h, router.gates(p, selected), selected), router.stats(p, selected)


class StepLoss:
    """A bundle's training loss under one estimator: `(model, tokens, targets) -> (ce [M], loss [M])`,
    ce each model's mean cross-entropy (what the trainer reports), loss what it differentiates (ce, the
    estimator's own term and `balance` times the load-balancing losses summed over layers)."""

    def __init__(self, name: str, balance: float, seeds: list[tuple[int, ...]], score_samples: int = 4
                 ) -> None:
        if name not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {', '.join(ESTIMATORS)}, got {name!r}")
        self.name, self.balance, self.samples = name, balance, score_samples
        self.generators = [torch.Generator().manual_seed(_seed(*s, _SCORE_STREAM)) for s in seeds] \
            if name == "score" else []

    def __call__(self, model: SravenTransformer, x: torch.Tensor, y: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.name == "score":
            return self._score(model, x, y)
        M = x.shape[0]
        logits, stats = model(x, return_stats=True, route=dense_ste if self.name == "dense_ste" else None)
        ce = F.cross_entropy(logits.flatten(0, 2), y.flatten(), reduction="none").view(M, -1).mean(1)
        return ce, ce + self.balance * sum(s.load_balancing_loss for s in stats)

    def _score(self, model: SravenTransformer, x: torch.Tensor, y: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        M, B = x.shape[:2]
        S = self.samples
        route = ScoreRoute(self.generators)
        logits, stats = model(x.repeat(1, S, 1), return_stats=True, route=route)  # sample s: rows s*B..
        per_problem = F.cross_entropy(logits.flatten(0, 2), y.repeat(1, S, 1).flatten(), reduction="none")
        per_problem = per_problem.view(M, S, B, -1).mean(-1)  # [M, S, B]
        log_prob = sum(lp.view(M, S, B, -1).sum(-1) for lp in route.log_probs)  # [M, S, B]
        if S > 1:  # leave-one-out: each sample's baseline is the other samples' mean on the same problem
            baseline = (per_problem.sum(1, keepdim=True) - per_problem) / (S - 1)
        else:
            baseline = per_problem.mean((1, 2), keepdim=True)
        advantage = (per_problem - baseline).detach()
        ce = per_problem.mean((1, 2))
        surrogate = (advantage * log_prob).mean((1, 2))
        return ce, ce + surrogate + self.balance * sum(s.load_balancing_loss for s in stats)
