"""The oracle router: fixed gates from the teacher's active sets (routing.oracle_gates)."""

from __future__ import annotations

from simulations.arms.base import RouterKind, register_router


@register_router
class Oracle(RouterKind):
    name = "oracle"
    label = "oracle router"
    order = 1
    needs_replicas = True
    reference = True
    # The oracle's curve is flat past k = s r by construction (docs/tasks.md): only the discrete argmin
    # of its curve is meaningful.
    k_source = "discrete"
