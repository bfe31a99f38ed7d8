"""The learned router: a softmax over linear scores, top-k selection, renormalized gates."""

from __future__ import annotations

from simulations.arms.base import RouterKind, register_router


@register_router
class Learned(RouterKind):
    name = "learned"
    label = "learned router"
    order = 0
    primary = True
