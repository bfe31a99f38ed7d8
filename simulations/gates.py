"""Gate families of TopKMoE (`TopKMoE(gate=...)`): how router logits become the scores p the top-k
selects on, and how the selected experts' gates follow from p.

A family is one class registered with `register_gate`; the layer looks it up by name (`gate_family`)
and asks it for the scores, the batched gates and the per-model gates of its loop reference. `GATES`
lists the names in registration order (softmax, sigmoid, uniform, head): they are stored in results
and hashed, so a name never changes and a new family is appended.
"""

from __future__ import annotations

from typing import ClassVar

import torch

GATE_FAMILIES: dict[str, type[GateFamily]] = {}
GATES: tuple[str, ...] = ()


class GateFamily:
    """A gate family: stateless, its rules are classmethods. The logits l = x @ router / temperature
    (per model and token) come in; `scores` makes p of them, `gates` the gates of a whole bundle on a
    selection and `reference_gates` those of one model, written out again for the loop reference the
    tests compare against.

    The rule given here (the "softmax" and "sigmoid" families): the selected p, divided by their sum
    per model where `renormalize` applies; a renormalized k = 1 gate is the constant 1.
    """

    name: ClassVar[str]
    #: Whether the layer's `renormalize` setting applies (and with it the constant-1 gate at k = 1, which
    #: gives the router no gradient).
    renormalizes: ClassVar[bool] = True
    #: Whether the gate values are fixed by the selection alone (then only a straight-through term, if
    #: any, carries the scores' gradient, and an estimator has no gate values to learn pathwise).
    fixed_values: ClassVar[bool] = False
    #: Whether the scores reach the gates only through a straight-through term (exactly 0 in the forward:
    #: the selection's surrogate gradient), so an estimator with its own gradient for the selection
    #: gates on detached scores (uniform, head).
    straight_through: ClassVar[bool] = False
    #: Whether the gate values come from a gate head of their own (the router's `gate_weight`): then
    #: the router asks `head_gates` / `reference_head_gates`, with the head's values, instead of `gates` /
    #: `reference_gates`.
    head: ClassVar[bool] = False

    @classmethod
    def scores(cls, logits: torch.Tensor, dim: int) -> torch.Tensor:
        """The scores p (>= 0, as the top-k selection needs) of router logits whose experts lie along
        `dim`."""
        raise NotImplementedError

    @classmethod
    def gates(cls, p: torch.Tensor, mask: torch.Tensor, k: torch.Tensor, renorm: torch.Tensor
              ) -> torch.Tensor:
        """[M, T, N] gates on the selection `mask` (bool [M, T, N]) of scores p [M, T, N], for models at
        k (LongTensor [M]) of which `renorm` (bool [M]) renormalize: kept p, divided by their sum where
        renorm holds, zeros elsewhere.

        A renormalized k = 1 gate is the constant 1, written as such so the router gets exactly no
        gradient (p / p would leak rounding-level gradients)."""
        g = p * mask
        if bool(renorm.any()):
            total = g.sum(1, keepdim=True)
            if not bool(renorm.all()):  # the others divide by exactly 1 (the same values and gradients)
                total = torch.where(renorm[:, None, None], total, torch.ones_like(total))
            g = g / total
            constant = renorm & (k == 1)
            if bool(constant.any()):
                g = torch.where(constant[:, None, None], mask.to(p.dtype), g)
        return g

    @classmethod
    def reference_gates(cls, p: torch.Tensor, keep: torch.Tensor, k: int, renorm: bool) -> torch.Tensor:
        """One model's [N, T] gates on its selection `keep` (bool [N, T]) of scores p [N, T], at k,
        renormalized if `renorm`: the rule of `gates`, per model and independent of it."""
        g = torch.where(keep, p, torch.zeros_like(p))
        if renorm:
            g = g / g.sum(-1, keepdim=True)
        return g


def register_gate(cls: type[GateFamily]) -> type[GateFamily]:
    """Register a gate family under its `name` (appended to GATES)."""
    global GATES
    if cls.name in GATE_FAMILIES:
        raise ValueError(f"gate family {cls.name!r} is registered twice")
    GATE_FAMILIES[cls.name] = cls
    GATES = tuple(GATE_FAMILIES)
    return cls


def gate_family(name: str) -> type[GateFamily]:
    """The gate family `name`; ValueError naming the allowed values otherwise."""
    if name not in GATES:
        raise ValueError(f"gate must be one of {GATES}, got {name!r}")
    return GATE_FAMILIES[name]


@register_gate
class SoftmaxGates(GateFamily):
    """"softmax" (the default): p = softmax(l) over the experts, a distribution over them."""

    name = "softmax"

    @classmethod
    def scores(cls, logits: torch.Tensor, dim: int) -> torch.Tensor:
        return torch.softmax(logits, dim=dim)


@register_gate
class SigmoidGates(GateFamily):
    """"sigmoid" (the DeepSeek-V3 form): scores p = sigmoid(l), each in (0, 1) and independent of the
    others (not a distribution over experts). The default renormalize "k>1" leaves k = 1 gates raw,
    sigmoid(l), so the router learns at k = 1 too; "always" makes k = 1 the constant 1 (no router
    gradient); "never" keeps raw sigmoids at every k."""

    name = "sigmoid"

    @classmethod
    def scores(cls, logits: torch.Tensor, dim: int) -> torch.Tensor:
        return torch.sigmoid(logits)


@register_gate
class UniformGates(SoftmaxGates):
    """"uniform": selection by p = softmax(l), forward gates exactly 1 / k on the selected (as the
    oracle's), `renormalize` unused. The selection learns by a straight-through estimator:
    gates = sel / k + sel * (p - stop_grad(p)), so the backward is that of the softmax gates p on the
    selected experts (the gradient reaches every logit through the full softmax, at k = 1 too)."""

    name = "uniform"
    renormalizes = False
    fixed_values = True
    straight_through = True

    @classmethod
    def gates(cls, p: torch.Tensor, mask: torch.Tensor, k: torch.Tensor, renorm: torch.Tensor
              ) -> torch.Tensor:
        """1 / (the number selected) on each token's selected experts, exactly, in the forward; the term
        sel * (p - p.detach()) is exactly 0 but carries p's gradient. Any selection works (a token with
        none selected gets zeros), so k is read off the mask."""
        sel = mask.to(p.dtype)
        return sel / sel.sum(1, keepdim=True).clamp_min(1) + sel * (p - p.detach())

    @classmethod
    def reference_gates(cls, p: torch.Tensor, keep: torch.Tensor, k: int, renorm: bool) -> torch.Tensor:
        return torch.where(keep, 1.0 / k + (p - p.detach()), torch.zeros_like(p))


@register_gate
class HeadGates(SoftmaxGates):
    """"head": selection and gate values decoupled. The selection is the top k of p = softmax(l) of the
    router logits, as for "softmax"; the gate values come from a gate head of their own (the router's
    `gate_weight` [M, d, T], as its `weight`): h = sigmoid(x @ gate_weight) on the selected experts,
    divided by their sum where `renormalize` applies (a renormalized k = 1 gate is the constant 1). A
    selected expert's h can saturate at ~0, so with s right experts among k >= s selected the gates can
    be 1 / s on them and ~0 on the rest. The head learns pathwise through the gate values; the selection
    learns, as uniform's, by the straight-through term sel * (p - stop_grad(p)), exactly 0 in the
    forward, whose backward is that of gating by the selected softmax probabilities."""

    name = "head"
    straight_through = True
    head = True

    @classmethod
    def gates(cls, p: torch.Tensor, mask: torch.Tensor, k: torch.Tensor, renorm: torch.Tensor
              ) -> torch.Tensor:
        raise TypeError("gate 'head' reads its values off its gate head: use head_gates (Router.gates "
                        "with the inputs x)")

    @classmethod
    def reference_gates(cls, p: torch.Tensor, keep: torch.Tensor, k: int, renorm: bool) -> torch.Tensor:
        raise TypeError("gate 'head' reads its values off its gate head: use reference_head_gates")

    @classmethod
    def head_gates(cls, p: torch.Tensor, h: torch.Tensor, mask: torch.Tensor, k: torch.Tensor,
                   renorm: torch.Tensor) -> torch.Tensor:
        """[M, T, N] gates on the selection `mask` of scores p: the base rule (`GateFamily.gates`) on the
        head's values h [M, T, N] in (0, 1), plus the straight-through term mask * (p - stop_grad(p))."""
        return GateFamily.gates(h, mask, k, renorm) + mask.to(p.dtype) * (p - p.detach())

    @classmethod
    def reference_head_gates(cls, p: torch.Tensor, h: torch.Tensor, keep: torch.Tensor, k: int,
                             renorm: bool) -> torch.Tensor:
        """One model's [N, T] gates (`head_gates`'s rule, per model): kept h, renormalized if `renorm`,
        plus the straight-through term on the kept p."""
        g = torch.where(keep, h, torch.zeros_like(h))
        if renorm:
            g = g / g.sum(-1, keepdim=True)
        return g + torch.where(keep, p - p.detach(), torch.zeros_like(p))
