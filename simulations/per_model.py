"""Operations on the parameters of a bundle, whose every tensor has a leading model axis M: what the
trainers of every family do to one model's slice without touching the others' (gradient clipping per
model, copying some models' parameters from a checkpoint)."""

from __future__ import annotations

import torch


def clip_grads(params: list[torch.Tensor], clip: float) -> None:
    """Scale each model's gradient to an L2 norm of at most `clip`, over all its parameters that have a
    gradient (a parameter the loss did not reach is left out)."""
    params = [p for p in params if p.grad is not None]
    sq = sum(p.grad.square().flatten(1).sum(1) for p in params)
    scale = (clip / (sq.sqrt() + 1e-12)).clamp(max=1.0)
    for p in params:
        p.grad.mul_(scale.view(-1, *([1] * (p.dim() - 1))))


def where_models(sel: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a for the models `sel` (bool [M]), b for the others (tensors with a leading model axis)."""
    return torch.where(sel.view(-1, *([1] * (a.dim() - 1))), a, b)


@torch.no_grad()
def copy_models(dst: list[torch.Tensor], src: list[torch.Tensor], sel: torch.Tensor) -> None:
    """dst[i] = src[i] for the models `sel` (bool [M], on any device); nothing to do (and no copy made)
    when none is selected."""
    sel = sel.to(dst[0].device)
    if bool(sel.all()):
        torch._foreach_copy_(dst, src)
    elif bool(sel.any()):
        for d, s in zip(dst, src, strict=True):
            d.copy_(where_models(sel, s, d))
