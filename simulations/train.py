"""The bundle trainer: many same-shape `TopKMoE` students trained at once, each on its own data.

Models in a bundle may differ in k, init seed, task instance and training-set size (shorter sets are
padded and masked). The loss is the sum over models of each model's own mean squared error, so each
model's gradient is exactly its own; Adam is elementwise, and gradients are clipped per model, so no
model's update depends on another's. Every `eval_every` steps each model's validation MSE is checked:
a model that has not improved for `patience` checks is stopped and reset to its best checkpoint; a
model whose training loss turns NaN/inf is flagged diverged. Stopped and diverged models are frozen
(their parameters are restored after every optimizer step) while the others go on.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from simulations.moe import TopKMoE
from simulations.tasks import CompositionalTask, sample_cached


@dataclass(frozen=True)
class TrainSettings:
    lr: float = 0.01
    max_steps: int = 1500
    eval_every: int = 25
    patience: int = 8
    clip_norm: float = 1.0


@dataclass
class BundleData:
    """Stacked per-model data; `mask_train[i, :n_i]` is True for model i's n_i training points."""

    x_train: torch.Tensor  # [M, N, d]
    y_train: torch.Tensor  # [M, N, 1]
    mask_train: torch.Tensor  # [M, N] bool
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_id: torch.Tensor
    y_id: torch.Tensor
    x_ood: torch.Tensor
    y_ood: torch.Tensor
    target_var: torch.Tensor  # [M]


def make_bundle_data(tasks: list[CompositionalTask], n_train: list[int], n_val: int, n_test: int,
                     dtype: torch.dtype, device: torch.device | str) -> BundleData:
    """Draw every model's splits (shared across models and bundles with the same task: sample_cached)
    and stack them."""
    n_max = max(n_train)

    def stack(split: str, sizes: list[int], n_pad: int) -> tuple[torch.Tensor, torch.Tensor]:
        xs = np.zeros((len(tasks), n_pad, tasks[0].spec.d_in))
        ys = np.zeros((len(tasks), n_pad, 1))
        for i, (task, n) in enumerate(zip(tasks, sizes, strict=True)):
            x, y = sample_cached(task, split, n)
            xs[i, :n], ys[i, :n, 0] = x, y
        return (torch.as_tensor(xs, dtype=dtype, device=device),
                torch.as_tensor(ys, dtype=dtype, device=device))

    x_tr, y_tr = stack("train", n_train, n_max)
    mask = torch.arange(n_max, device=device)[None, :] < torch.tensor(n_train, device=device)[:, None]
    x_val, y_val = stack("val", [n_val] * len(tasks), n_val)
    x_id, y_id = stack("test_id", [n_test] * len(tasks), n_test)
    x_ood, y_ood = stack("test_ood", [n_test] * len(tasks), n_test)
    tv = torch.tensor([t.target_var for t in tasks], dtype=dtype, device=device)
    return BundleData(x_tr, y_tr, mask, x_val, y_val, x_id, y_id, x_ood, y_ood, tv)


def init_model(n_experts: int, d_in: int, width: int, ks: list[int], init_seeds: list[int], impl: str,
               renormalize: str, dtype: torch.dtype, device: torch.device | str) -> TopKMoE:
    """A bundle whose model i is initialised exactly as `TopKMoE(1, ..., seed=init_seeds[i])`.

    Models sharing an init seed (e.g. a sweep over k) therefore start from the same weights, whatever
    bundle they are in.
    """
    model = TopKMoE(len(ks), n_experts, d_in, width, k=torch.tensor(ks), impl=impl,
                    renormalize=renormalize, dtype=dtype, seed=0)
    singles: dict[int, TopKMoE] = {}
    with torch.no_grad():
        for i, s in enumerate(init_seeds):
            if s not in singles:
                singles[s] = TopKMoE(1, n_experts, d_in, width, k=1, dtype=dtype, seed=s)
            for name, p in model.named_parameters():
                p[i].copy_(getattr(singles[s], name)[0])
    return model.to(device)


def _masked_mse(pred: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-model MSE [M] (over the masked points when a mask is given)."""
    err = (pred - y).squeeze(-1).square()
    if mask is None:
        return err.mean(1)
    return (err * mask).sum(1) / mask.sum(1)


@torch.no_grad()
def _evaluate(model: TopKMoE, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None,
              chunk: int = 4096) -> torch.Tensor:
    """Per-model MSE on a full split, in chunks of points to bound memory."""
    total = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for start in range(0, x.shape[1], chunk):
        sl = slice(start, start + chunk)
        err = (model(x[:, sl]) - y[:, sl]).squeeze(-1).square()
        total += (err * mask[:, sl]).sum(1) if mask is not None else err.sum(1)
    return total / (mask.sum(1) if mask is not None else x.shape[1])


@torch.no_grad()
def _router_entropy(model: TopKMoE, x: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of each model's load: the share of token-expert assignments per expert."""
    f = model.router_stats(x).fraction
    return -(torch.where(f > 0, f * f.log(), torch.zeros_like(f))).sum(-1)


def _per_model_clip(params: list[torch.Tensor], clip: float) -> None:
    sq = sum(p.grad.square().flatten(1).sum(1) for p in params)
    scale = (clip / (sq.sqrt() + 1e-12)).clamp(max=1.0)
    for p in params:
        p.grad.mul_(scale.view(-1, *([1] * (p.dim() - 1))))


def _where_models(sel: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(sel.view(-1, *([1] * (a.dim() - 1))), a, b)


@torch.no_grad()
def _copy_models(dst: list[torch.Tensor], src: list[torch.Tensor], sel: torch.Tensor) -> None:
    """dst[i] = src[i] for the selected models; nothing to do (and no copy made) when none is."""
    if bool(sel.all()):
        torch._foreach_copy_(dst, src)
    elif bool(sel.any()):
        for d, s in zip(dst, src, strict=True):
            d.copy_(_where_models(sel, s, d))


def train_bundle(model: TopKMoE, data: BundleData, settings: TrainSettings) -> pd.DataFrame:
    """Train every model of the bundle; one row of metrics per model, in model order."""
    t0 = time.perf_counter()
    params = [p for _, p in sorted(model.named_parameters())]
    opt = torch.optim.Adam(params, lr=settings.lr, foreach=True)  # same bits as the per-tensor loop
    M, dev = model.n_models, data.x_train.device
    best = [p.detach().clone() for p in params]
    best_val = torch.full((M,), math.inf, dtype=data.x_train.dtype, device=dev)
    bad_evals = torch.zeros(M, dtype=torch.long, device=dev)
    stopped = torch.zeros(M, dtype=torch.bool, device=dev)
    diverged = torch.zeros(M, dtype=torch.bool, device=dev)
    steps = torch.full((M,), settings.max_steps, dtype=torch.long, device=dev)

    for step in range(settings.max_steps + 1):
        if step % settings.eval_every == 0 or step == settings.max_steps:
            val = _evaluate(model, data.x_val, data.y_val)
            running = ~(stopped | diverged)
            improved = running & (val < best_val)
            best_val = torch.where(improved, val, best_val)
            bad_evals = torch.where(improved, 0, bad_evals + running.long())
            _copy_models(best, params, improved)
            newly = running & (bad_evals >= settings.patience)
            steps = torch.where(newly, step, steps)
            stopped |= newly
            if step == settings.max_steps or bool((stopped | diverged).all()):
                break
        frozen = stopped | diverged
        opt.zero_grad(set_to_none=False)
        loss = _masked_mse(model(data.x_train), data.y_train, data.mask_train)
        bad = ~torch.isfinite(loss) & ~frozen
        steps = torch.where(bad, step, steps)
        diverged |= bad
        frozen = stopped | diverged
        torch.where(frozen, torch.zeros_like(loss), loss).sum().backward()
        for p in params:
            p.grad.nan_to_num_(0.0, 0.0, 0.0)
        _per_model_clip(params, settings.clip_norm)
        opt.step()
        _copy_models(params, best, frozen)

    with torch.no_grad():  # every model ends at its best validation checkpoint
        for p, b in zip(params, best, strict=True):
            p.copy_(b)
        nan = torch.full_like(best_val, math.nan)

        def metric(v: torch.Tensor) -> np.ndarray:
            return torch.where(diverged, nan, v).cpu().double().numpy()

        train = metric(_evaluate(model, data.x_train, data.y_train, data.mask_train))
        val = metric(best_val)
        test_id = metric(_evaluate(model, data.x_id, data.y_id))
        test_ood = metric(_evaluate(model, data.x_ood, data.y_ood))
        entropy = metric(_router_entropy(model, data.x_id))
    tv = data.target_var.cpu().double().numpy()
    wall = time.perf_counter() - t0
    return pd.DataFrame({
        "train_mse": train, "val_mse": val, "test_mse_id": test_id, "test_mse_ood": test_ood,
        "train_nmse": train / tv, "test_nmse_id": test_id / tv, "test_nmse_ood": test_ood / tv,
        "target_var": tv, "diverged": diverged.cpu().numpy(),
        "early_stopped": (stopped & ~diverged).cpu().numpy(), "steps": steps.cpu().numpy(),
        "router_entropy": entropy, "wall_s": np.full(M, wall / M),
    })
