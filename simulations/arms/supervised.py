"""The supervised router: the learned router also trained towards the teacher's active sets (a ceiling
for learned routing)."""

from __future__ import annotations

from simulations.arms.base import RouterKind, register_router


@register_router
class Supervised(RouterKind):
    name = "supervised"
    label = "supervised router"
    order = 3
    needs_replicas = True
