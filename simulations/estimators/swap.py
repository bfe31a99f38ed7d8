"""Counterfactual local search (the gate-fitting step of EM, Makkuva et al. 2019, with the E-step a
local search): for each training point, the loss of every single swap of a selected expert i for an
unselected one j under the current experts (j takes i's gate value), and the best of these sets and the
current one is the router's target; the router fits it by the Plackett-Luce log-likelihood of the
target set ranked by the router's current scores, weighted `swap_weight`. Experts and gate values learn
pathwise on the router's own top-k (uniform gates: no pathwise term; head: the gate head alone, the
selection by the membership loss alone)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from simulations.config_schema import Number, setting
from simulations.estimators import plackett_luce
from simulations.estimators.base import Batch, Estimator, register_estimator

CHUNK = 512  # points per chunk of the swap search ([M, T, T, chunk] candidates at once)


@dataclass(frozen=True)
class SwapSettings:
    swap_weight: float = setting(1.0, Number(positive=True), since=1.0)  # weight of the membership loss


def best_swap(selected: torch.Tensor, gates: torch.Tensor, outputs: torch.Tensor, residual: torch.Tensor
              ) -> torch.Tensor:
    """Bool [M, T, n]: per point, the selection after the single swap (selected i -> unselected j, j
    taking i's gate) that lowers the squared error most, or the selection itself where none lowers it.
    selected bool and gates [M, T, n], outputs [M, T, n] (every expert's), residual y - prediction [M, n]."""
    M, T, n = selected.shape
    target = selected.clone()
    for start in range(0, n, CHUNK):
        sl = slice(start, start + CHUNK)
        sel, g, o, r = selected[:, :, sl], gates[:, :, sl], outputs[:, :, sl], residual[:, sl]
        # new residual of swap (i, j): r - g_i (o_j - o_i), candidates [M, i, j, n]
        new = (r.unsqueeze(1).unsqueeze(1) - g.unsqueeze(2) * (o.unsqueeze(1) - o.unsqueeze(2))).square()
        allowed = sel.unsqueeze(2) & ~sel.unsqueeze(1)
        new = torch.where(allowed, new, torch.full_like(new, torch.inf)).flatten(1, 2)  # [M, T * T, n]
        best, at = new.min(1)
        better = best < r.square()
        i, j = at // T, at % T
        rows = target[:, :, sl]
        drop = torch.nn.functional.one_hot(i, T).transpose(1, 2).bool() & better.unsqueeze(1)
        add = torch.nn.functional.one_hot(j, T).transpose(1, 2).bool() & better.unsqueeze(1)
        target[:, :, sl] = (rows & ~drop) | add
    return target


@register_estimator
class Swap(Estimator):
    name = "swap"
    label = "swap search"
    order = 3
    Settings = SwapSettings

    def loss(self, batch: Batch) -> torch.Tensor:
        router, experts = self.student.router, self.student.experts
        gating = router.route(batch.split, batch.points, training=True)
        outputs = experts.outputs(batch.split, batch.points)  # [M, T, n, 1]
        gates = gating.gates if not router.straight_through else \
            router.gates_on(gating.probs.detach(), gating.selected, batch.split, batch.points)
        pred = (gates.unsqueeze(-1) * outputs).sum(1)
        with torch.no_grad():
            residual = (batch.y - pred).squeeze(-1)
            target = best_swap(gating.selected, gating.gates, outputs.squeeze(-1), residual)
        p = gating.probs
        log_w = plackett_luce.log_weights(p)
        # the target set ranked by the router's current scores (members first, ties to the lower index)
        rank_key = torch.where(target, p.detach(), torch.full_like(p, -1.0))
        order = torch.topk(rank_key, int(router.k.max()), dim=1, sorted=True).indices
        valid = torch.arange(order.shape[1], device=p.device).view(1, -1, 1) < router.k.view(-1, 1, 1)
        membership = -plackett_luce.log_prob(log_w, order, valid)  # [M, n]
        loss = batch.mean(batch.point_loss(pred)) + self.settings.swap_weight * batch.mean(membership)
        return self.plus_aux(loss, gating, batch)
