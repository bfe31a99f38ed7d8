"""The expert kinds: trained ReLU experts, and the teacher's own skills as frozen experts."""

from __future__ import annotations

from simulations.arms.base import ExpertsKind, register_experts


@register_experts
class LearnedExperts(ExpertsKind):
    name = "learned"
    arm_name = "learned"
    label = "learned experts"
    order = 0
    default = True


@register_experts
class TeacherExperts(ExpertsKind):
    name = "teacher"
    arm_name = "teacher_experts"
    label = "teacher experts"
    order = 2
    routers = ("learned",)
    needs_replicas = True
