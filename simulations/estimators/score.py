"""The score-function estimator: the selection is a Plackett-Luce sample of k experts (Gumbel-top-k on
the router's log-scores), `score_samples` samples per point; the experts and the gate values learn
pathwise on each sample, the selection by REINFORCE on the ranked sample's log-probability with a
leave-one-out baseline (RLOO: each sample's baseline is the mean loss of the other samples of the same
point; with one sample, the model's mean loss over the batch). Gates are the model's gate family on the
sampled set (uniform: exactly 1 / k, with no pathwise term: the selection learns by the score alone;
head: its gate head learns pathwise, the selection by the score alone). The experts run once, densely,
and each sample regates them."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from simulations.config_schema import IntAtLeast, setting
from simulations.estimators import plackett_luce
from simulations.estimators.base import Batch, Estimator, register_estimator
from simulations.gating import Gating


@dataclass(frozen=True)
class ScoreSettings:
    score_samples: int = setting(4, IntAtLeast(), since=4)  # samples per point (RLOO needs >= 2)


@register_estimator
class Score(Estimator):
    name = "score"
    label = "score function"
    order = 1
    Settings = ScoreSettings

    def loss(self, batch: Batch) -> torch.Tensor:
        router, experts = self.student.router, self.student.experts
        p = router.probs(batch.split, batch.points, training=True)  # [M, T, n]
        outputs = experts.outputs(batch.split, batch.points)  # [M, T, n, 1]
        log_w = plackett_luce.log_weights(p)
        n_samples = self.settings.score_samples
        draws = self.exponential(n_samples, batch, p)
        order, valid = plackett_luce.gumbel_topk(log_w, draws, router.k)
        selected = plackett_luce.selection_mask(order, valid, p.shape[1])  # [n_samples, M, T, n]
        log_prob = plackett_luce.log_prob(log_w, order, valid)  # [n_samples, M, n]
        scores = p.detach() if router.straight_through else p
        gates = torch.stack([router.gates_on(scores, sel, batch.split, batch.points) for sel in selected])
        losses = batch.point_loss((gates.unsqueeze(-1) * outputs).sum(2))  # [n_samples, M, n]
        if n_samples > 1:
            baseline = (losses.sum(0, keepdim=True) - losses) / (n_samples - 1)
        else:
            baseline = batch.mean(losses[0]).view(1, -1, 1)
        advantage = (losses - baseline).detach()
        task = torch.stack([batch.mean(v) for v in losses]).mean(0)
        surrogate = torch.stack([batch.mean(v) for v in advantage * log_prob]).mean(0)
        return self.plus_aux(task + surrogate, Gating(selected[0], gates[0], p), batch)
