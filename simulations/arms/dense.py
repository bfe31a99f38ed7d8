"""The dense reference: the first k experts with gate 1, a dense MLP of width k h (no routing)."""

from __future__ import annotations

from simulations.arms.base import RouterKind, register_router


@register_router
class Dense(RouterKind):
    name = "dense"
    label = "dense MLP, width k h"
    order = 9
    routes = False
