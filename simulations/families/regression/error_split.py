"""The error split of a learned router (docs/tasks.md, "The error split"; columns in docs/store.md).

A learned-router model's excess error over the oracle has two routing parts: which experts it selects,
and what gate values it gives them. Each trained model is evaluated twice more on the ID and OOD test
splits, without retraining, each time changing one of the two:
- oracle selection, own gates (`nmse_oracle_selection_*`): per point, the experts mapped to an active
  skill of that point, picked round-robin as the oracle picks replicas (the best expert of each active
  skill by the model's own router probability, skills in the teacher's score order, then the second best
  of each, ...) until k are picked or none is left, gated by the model's own rule (`Router.gates`) on
  that selection; a point none of whose experts maps to an active skill gets no expert (prediction 0);
- own selection, equal gates (`nmse_equal_gates_*`): the router kind's own top-k, every selected
  expert gated 1 / (number selected).
`misrouted_share_*` is the share of points whose selected experts (mapped to skills) miss at least one
active skill: 1 by construction at k < s.

Experts map to skills as the expert kind knows them (`ExpertsKind.skill_of_expert`: the teacher's
skills), else by the co-activation map on the training split (`simulations.routing.skill_map`, the
map the routing measures use). Only router kinds that learn their router have a split: NaN for the rest.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch

from simulations import arms, routing
from simulations.gating import Gating
from simulations.moe import TopKMoE
from simulations.selection import ranks


class Student(Protocol):
    """What the split reads of a bundle's student (the trainer's `Student`, whose module imports this
    one): its model, data and the bundle's router and expert kinds, and its gating, expert outputs and
    teacher ranks per split (computed once in its final evaluation)."""

    model: TopKMoE
    data: arms.BundleView
    router: arms.RouterKind
    experts: arms.ExpertsKind

    def gating(self, split: str, points: slice) -> Gating: ...

    def outputs(self, split: str, points: slice) -> torch.Tensor: ...

    def skill_ranks(self, split: str, points: slice) -> torch.Tensor: ...

    def active_skills(self, split: str) -> torch.Tensor: ...

SPLITS = ("id", "ood")
MEASURES = ("nmse_oracle_selection", "nmse_equal_gates", "misrouted_share")
COLUMNS = tuple(f"{m}_{split}" for m in MEASURES for split in SPLITS)


def learns_router(student: Student) -> bool:
    """Whether the bundle's router kind trains the model's router (the models that have an error split)."""
    return "router.weight" in student.router.trains


def expert_skills(student: Student, learned_map: torch.Tensor) -> torch.Tensor:
    """The expert -> skill map [M, T] of the error split: the expert kind's own where it knows it, else
    `learned_map` (the co-activation map of the training split; -1: an expert mapped to no skill)."""
    known = student.experts.skill_of_expert(student.data.z["train"].shape[-1])
    return learned_map if known is None else known.to(learned_map)


def oracle_selection(p: torch.Tensor, mapping: torch.Tensor, z: torch.Tensor, s: torch.Tensor,
                     k: torch.Tensor, teacher_ranks: torch.Tensor | None = None) -> torch.Tensor:
    """Bool [M, T, n]: the oracle's round-robin selection among the model's own experts (module
    docstring). p [M, T, n] router probabilities, mapping [M, T] expert -> skill (-1: none), z [M, n, S]
    teacher scores, s [M] (or [M, n] per point, a mixed-complexity task) and k [M]; `teacher_ranks`: the
    skills' ranks in z (`routing.skill_ranks(z)`) where the caller has them."""
    M, T, n = p.shape
    S = z.shape[-1]
    rank = routing.skill_ranks(z) if teacher_ranks is None else teacher_ranks  # [M, n, S]: 0 = largest
    skill = mapping.clamp_min(0).unsqueeze(1).expand(M, n, T)
    rank_of = rank.gather(2, skill)  # [M, n, T]: each expert's skill's rank (unmapped: masked below)
    s_ = s.to(p.device).view(M, -1, 1)  # [M, 1, 1] or per point [M, n, 1]
    eligible = (mapping >= 0).unsqueeze(1) & (rank_of < s_)
    # place of each expert among the experts of its skill, by p (ties to the lower index): its place in
    # the order by (skill, place by p) less the number of experts of lower skills (ranks, no T x T)
    by_p = ranks(p, 1).transpose(1, 2)  # [M, n, T]
    label = torch.where(mapping < 0, S, mapping)  # [M, T]; unmapped experts last
    by_skill = ranks(label.unsqueeze(1) * T + by_p, -1, descending=False)
    counts = torch.nn.functional.one_hot(label, S + 1).sum(1)  # [M, S + 1]
    before = (counts.cumsum(1) - counts).gather(1, label).unsqueeze(1)  # experts of lower skills
    key = torch.where(eligible, (by_skill - before) * s_ + rank_of, T * (T + 1))
    place = ranks(key, -1, descending=False)
    return (eligible & (place < k.to(p.device).view(M, 1, 1))).transpose(1, 2)


def covered_skills(selected: torch.Tensor, mapping: torch.Tensor, n_skills: int) -> torch.Tensor:
    """Bool [M, n, S]: the skills some selected expert maps to (unmapped experts cover none)."""
    onehot = torch.nn.functional.one_hot(torch.where(mapping < 0, n_skills, mapping), n_skills + 1)
    return torch.bmm(selected.to(torch.float64).transpose(1, 2), onehot[..., :n_skills].to(torch.float64)) > 0


@torch.no_grad()
def error_split(student: Student, mapping: torch.Tensor | None, chunk: int = 4096
                ) -> dict[str, torch.Tensor]:
    """{column: [M] float64} of COLUMNS for every model of the bundle (NaN for router kinds that do not
    learn their router). `mapping`: the expert -> skill map [M, T] (`expert_skills`; None for a kind
    that does not route). The experts run
    once per chunk of points and are regated, so both evaluations cost about one forward pass."""
    router, data = student.model.router, student.data
    M = router.n_models
    if mapping is None or not learns_router(student):
        return {c: torch.full((M,), math.nan, dtype=torch.float64) for c in COLUMNS}
    out = {}
    for split in SPLITS:
        x, y = data.split(split)
        z, S = data.z[split], data.z[split].shape[-1]
        active = student.active_skills(split)
        sums = {m: torch.zeros(M, dtype=torch.float64, device=x.device) for m in MEASURES}
        for start in range(0, x.shape[1], chunk):
            sl = slice(start, start + chunk)
            experts = student.outputs(split, sl)  # [M, T, n, 1]
            own = student.gating(split, sl).selected
            p = router.scores(x[:, sl])
            picked = oracle_selection(p, mapping, z[:, sl], data.levels(split, sl), router.k_per_model,
                                      student.skill_ranks(split, sl))
            gates = {"nmse_oracle_selection": router.gates(p, picked, x=x[:, sl]).nan_to_num(0.0),  # none: 0
                     "nmse_equal_gates": own / own.sum(1, keepdim=True).clamp_min(1)}
            for name, g in gates.items():
                pred = (g.to(experts.dtype).unsqueeze(-1) * experts).sum(1)
                sums[name] += (pred - y[:, sl]).squeeze(-1).double().square().sum(1)
            missed = (active[:, sl] & ~covered_skills(own, mapping, S)).any(-1)
            sums["misrouted_share"] += missed.sum(1, dtype=torch.float64)
        n, tv = x.shape[1], data.target_var.double()
        out[f"nmse_oracle_selection_{split}"] = sums["nmse_oracle_selection"] / n / tv
        out[f"nmse_equal_gates_{split}"] = sums["nmse_equal_gates"] / n / tv
        out[f"misrouted_share_{split}"] = sums["misrouted_share"] / n
    return {c: out[c].cpu() for c in COLUMNS}
