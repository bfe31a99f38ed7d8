"""Teacher experts: the teacher's own skills as frozen experts behind a learned router (only the router
learns)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from simulations.arms.base import BundleView, ExpertsKind, Gating, Points, register_experts
from simulations.moe import TopKMoE


@register_experts
class TeacherExperts(ExpertsKind):
    """The teacher's skills, frozen and scaled (BundleData.expert_out: expert e = rep * S + j outputs
    (s g_j(x) - mean_G) / sd_G, so s of them with gates 1 / s give the target); only the router learns."""

    name = "teacher"
    arm_name = "teacher_experts"
    label = "teacher's skills as experts"
    order = 2
    routers = ("learned", "oracle_select")
    needs_replicas = True
    needs_expert_out = True

    def __init__(self, model: TopKMoE, data: BundleView) -> None:
        if not data.expert_out:
            raise ValueError("teacher experts need the bundle's teacher-expert outputs "
                             "(make_bundle_data(..., n_experts=T))")
        super().__init__(model, data)

    def combine(self, gating: Gating, split: str, points: Points,
                outputs: Callable[[], torch.Tensor] | None = None) -> torch.Tensor:
        return torch.einsum("mtn,mnt->mn", gating.gates, self.data.expert_out[split][:, points]).unsqueeze(-1)

    def outputs(self, split: str, points: Points) -> torch.Tensor:
        return self.data.expert_out[split][:, points].transpose(1, 2).unsqueeze(-1)

    def skill_of_expert(self, n_skills: int) -> torch.Tensor:
        """Expert e = rep * S + j is skill j, for every model."""
        T = self.model.n_experts
        skills = torch.arange(T, device=self.model.w1.device) % n_skills
        return skills.expand(self.model.n_models, T)
