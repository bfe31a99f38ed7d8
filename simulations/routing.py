"""Routing controls and routing measures for the compositional task (docs/tasks.md, "Controls").

Experts of the oracle and teacher-expert arms come in r = T / S replicas per skill: expert
e = rep * S + j is replica `rep` of skill j, so the first S experts are one copy of every skill.

- `oracle_gates`: the oracle router of the theory's modular student (assumption A2, docs/theory.md).
  The active skills A(x) (the s largest teacher scores) are ranked by score; selection is round-robin:
  replica 0 of each active skill in score order, then replica 1, and so on, until k experts are picked
  or all s * r replicas of active skills are. Each active skill's total gate is 1 / s, split evenly
  over its selected replicas, so at k = q * s every selected expert has gate 1 / k (uniform) and the
  prediction is an equally weighted sum over skills, as the target is. For k < s the last s - k
  skills get no expert; for k > s * r the remaining k - s * r slots go unused (gate 0: replicas of
  inactive skills would only misroute), so those k behave exactly like k = s * r.
- `dense_gates`: the first k experts with gate 1 each, for every input: a dense MLP of width k * h
  (a reference row without routing; at k = T it is matched to the MoE's total parameters).
- `supervision_target`: what a supervised router is trained towards (a ceiling for learned routing):
  each active skill gets probability 1 / s, spread over its r replicas with weights halving from one
  replica to the next, so a top-k router that matches it picks replica 0 of every active skill before
  any second replica, in the oracle's round-robin order (equal weights would leave the replicas tied,
  and top-s would often take two replicas of one skill). The student's router is linear without a
  bias, so it can rank the skills by the teacher's scores (z = U^T x) but not hold every replica 0
  above every replica 1: in practice it routes by skill at k = s r, not at k = s (docs/tasks.md).
- `skill_map` and `routing_measures`: how well a router finds the teacher's skills, for any T, S, k.
"""

from __future__ import annotations

import torch

from simulations.selection import ranks


def skill_ranks(z: torch.Tensor) -> torch.Tensor:
    """[..., S] teacher scores -> [..., S] rank of each skill (0 = largest score; ties: lower index),
    long."""
    return ranks(z, -1).long()


def active_skills(z: torch.Tensor, s: torch.Tensor, ranks: torch.Tensor | None = None) -> torch.Tensor:
    """Bool [M, N, S]: the teacher's active set A(x) (the s[m] largest scores) of every point; s may
    also be per point, [M, N] (a mixed-complexity task: each point's own s). `ranks`: skill_ranks(z),
    where the caller has them."""
    ranks = skill_ranks(z) if ranks is None else ranks
    return ranks < (s.view(-1, 1, 1) if s.dim() == 1 else s.unsqueeze(-1))


def oracle_gates(z: torch.Tensor, s: torch.Tensor, k: torch.Tensor, n_experts: int) -> torch.Tensor:
    """The oracle's gates [M, T, N] from teacher scores z [M, N, S], complexities s [M] (or per point,
    [M, N]) and k [M].

    T must be a multiple of S (r = T / S replicas per skill); see the module docstring for the rule."""
    M, N, S = z.shape
    if n_experts % S:
        raise ValueError(f"the oracle needs n_experts to be a multiple of n_skills={S}, got {n_experts}")
    r = n_experts // S
    s_ = (s.view(M, 1, 1, 1) if s.dim() == 1 else s.view(M, 1, N, 1)).to(z.device)
    k_ = k.view(M, 1, 1, 1).to(z.device)
    rank = skill_ranks(z).unsqueeze(1)  # [M, 1, N, S]
    rep = torch.arange(r, device=z.device).view(1, r, 1, 1)
    position = rep * s_ + rank  # place in the round-robin order, for active skills
    chosen = (rank < s_) & (position < k_)  # [M, r, N, S]
    per_skill = chosen.sum(1, keepdim=True).clamp_min(1)
    gates = chosen.to(z.dtype) / (s_.to(z.dtype) * per_skill.to(z.dtype))
    # expert e = rep * S + j; contiguous also at r = 1, where the reshape would be a strided view
    return gates.permute(0, 1, 3, 2).reshape(M, n_experts, N).contiguous()


def supervision_target(z: torch.Tensor, s: torch.Tensor, n_experts: int) -> torch.Tensor:
    """Router targets [M, T, N] from teacher scores z [M, N, S] and complexities s [M] (or per point,
    [M, N]): each of the s
    active skills of a point gets 1 / s, split over its r replicas (expert e = rep * S + j) in
    proportion to 2^-rep; inactive skills get 0 (see the module docstring)."""
    M, N, S = z.shape
    if n_experts % S:
        raise ValueError(f"a supervised router needs n_experts to be a multiple of n_skills={S}, "
                         f"got {n_experts}")
    r = n_experts // S
    active = active_skills(z, s.to(z.device)).to(z.dtype).transpose(1, 2)  # [M, S, N]
    weight = 0.5 ** torch.arange(r, dtype=z.dtype, device=z.device)
    weight = (weight / weight.sum()).repeat_interleave(S).view(1, n_experts, 1)  # expert e = rep * S + j
    per = s.to(z.device, z.dtype).view(M, 1, 1) if s.dim() == 1 else s.to(z.device, z.dtype).view(M, 1, N)
    return active.repeat(1, r, 1) * weight / per


def dense_gates(k: torch.Tensor, n_experts: int, n_points: int, dtype: torch.dtype) -> torch.Tensor:
    """Gates [M, T, N] = 1 for the first k[m] experts of model m on every point, 0 elsewhere."""
    on = torch.arange(n_experts, device=k.device).view(1, -1, 1) < k.view(-1, 1, 1)
    return on.to(dtype).expand(-1, -1, n_points).contiguous()


def skill_map(gates: torch.Tensor, active: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Many-to-one map expert -> skill [M, T] from gate-weighted co-activation over the (valid) points:
    each expert goes to the skill j with the largest association c_ej^2 / (G_e n_j), with c_ej the gate
    mass of expert e on points where j is active, G_e its total gate mass and n_j the points where j is
    active (P(j | e) * P(e | j), gate-weighted); -1 for an expert that never gets a positive gate.
    Lift alone (P(j | e) / P(j)) ties when a skill only ever appears beside another; weighting by the
    gate rather than by selection keeps the map informative when k = T selects every expert.
    gates [M, T, N], active bool [M, N, S], valid bool [M, N]."""
    g = gates.detach().to(torch.float64)
    a = active.to(torch.float64)
    if valid is not None:
        g = g * valid.unsqueeze(1)
        a = a * valid.unsqueeze(-1)
    co = torch.bmm(g, a)  # [M, T, S]
    mass = g.sum(2)
    mapping = (co.square() / a.sum(1).clamp_min(1).unsqueeze(1)).argmax(-1)  # G_e is constant in j
    return torch.where(mass > 0, mapping, torch.full_like(mapping, -1))


def routing_measures(selected: torch.Tensor, gates: torch.Tensor, active: torch.Tensor,
                     mapping: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per model [M]: skill recall (mean over points of the share of the active skills that some
    selected expert maps to) and gate mass on active skills (share of the total gate on experts mapped
    to an active skill). selected bool and gates [M, T, N], active bool [M, N, S], mapping [M, T]."""
    S = active.shape[-1]
    g = gates.detach().to(torch.float64)
    # unmapped experts (-1) go to an extra class that is then dropped: they count for no skill
    onehot = torch.nn.functional.one_hot(torch.where(mapping < 0, S, mapping), S + 1)[..., :S].to(g.dtype)
    a = active.to(torch.float64)
    covered = torch.bmm(selected.to(torch.float64).transpose(1, 2), onehot) > 0  # [M, N, S]
    recall = ((covered & active).sum(-1) / active.sum(-1).clamp_min(1)).mean(1)
    on_active = (torch.bmm(g.transpose(1, 2), onehot) * a).sum(-1)  # [M, N]
    mass = (on_active / g.sum(1).clamp_min(1e-300)).mean(1)
    return recall, mass
