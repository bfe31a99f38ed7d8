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

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from simulations import arms, estimators, routing
from simulations.config_schema import build
from simulations.families.regression import error_split
from simulations.families.regression.config import TrainingConfig
from simulations.families.regression.tasks import CompositionalTask, sample_cached
from simulations.gating import Gating
from simulations.moe import TopKMoE
from simulations.per_model import clip_grads, copy_models


@dataclass(frozen=True)
class TrainSettings(TrainingConfig):
    """Optimisation settings and the bundle's arm (docs/tasks.md, "Controls").

    router, experts: a router kind and an expert kind of the arms registry (simulations.arms: each
    kind's module says how it gates or what its experts are), a pair that makes an arm; estimator: how
    the router learns its selection (simulations.estimators). A router kind's and an estimator's own
    settings are their own (`Student`'s `options`).
    The optimisation settings and their defaults are the grid config's training section
    (simulations.families.regression.config.TrainingConfig); this adds the bundle's arm."""

    router: str = arms.primary().router.name
    experts: str = arms.primary().experts.name
    estimator: str = estimators.DEFAULT_ESTIMATOR  # how the router learns its selection

    def __post_init__(self) -> None:
        arms.arm(self.router, self.experts, estimator=self.estimator)  # ValueError naming the allowed values


@dataclass
class BundleData:
    """Stacked per-model data; `mask_train[i, :n_i]` is True for model i's n_i training points."""

    x_train: torch.Tensor  # [M, N, d] (the task's points: d = d_in + d_context for the contextual task)
    y_train: torch.Tensor  # [M, N, 1]
    mask_train: torch.Tensor  # [M, N] bool
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_id: torch.Tensor
    y_id: torch.Tensor
    x_ood: torch.Tensor
    y_ood: torch.Tensor
    target_var: torch.Tensor  # [M]
    complexity: torch.Tensor | None = None  # [M] long: s of each model's task
    z: dict[str, torch.Tensor] = field(default_factory=dict)  # split -> teacher scores [M, N, S]
    # split -> the teacher's skills as frozen experts [M, N, T] (an expert kind that needs_expert_out):
    # expert e = rep * S + j outputs (s * g_j(x) - mean_G) / sd_G, so s of them with gates 1 / s give
    # the target
    expert_out: dict[str, torch.Tensor] = field(default_factory=dict)
    # split -> each point's own s [M, N] long, for mixed-complexity tasks only (empty otherwise: every
    # point has its model's s, `complexity`)
    complexity_points: dict[str, torch.Tensor] = field(default_factory=dict)

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")

    def levels(self, split: str, points: slice | torch.Tensor = slice(None)) -> torch.Tensor | None:
        """The s of a split's points: [M, n] per point for a mixed-complexity task, else the models'
        s [M] (`complexity`), which the routing functions broadcast over the points."""
        if split in self.complexity_points:
            return self.complexity_points[split][:, points]
        return self.complexity

    def valid(self, split: str, points: slice | torch.Tensor = slice(None)) -> torch.Tensor:
        """Bool [M, n]: which of a split's points are each model's own: `mask_train` on the (padded)
        training split, every point elsewhere."""
        if split == "train":
            return self.mask_train[:, points]
        x = self.split(split)[0]
        return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)[:, points]


def make_bundle_data(tasks: list[CompositionalTask], n_train: list[int], n_val: int, n_test: int,
                     dtype: torch.dtype, device: torch.device | str, n_experts: int | None = None
                     ) -> BundleData:
    """Draw every model's splits (shared across models and bundles with the same task: sample_cached)
    and stack them, with the teacher's scores of every point; with `n_experts`, also the teacher-expert
    outputs (r = T / S replicas of each skill)."""
    n_max = max(n_train)
    z: dict[str, torch.Tensor] = {}
    expert_out: dict[str, torch.Tensor] = {}
    levels: dict[str, torch.Tensor] = {}
    mixed = any(t.spec.complexity_mix for t in tasks)

    def stack(split: str, name: str, sizes: list[int], n_pad: int) -> tuple[torch.Tensor, torch.Tensor]:
        xs = np.zeros((len(tasks), n_pad, tasks[0].input_width))  # u = x, or [x, c] (contextual)
        ys = np.zeros((len(tasks), n_pad, 1))
        ss = np.stack([np.full(n_pad, t.spec.complexity) for t in tasks])  # padding: the model's s
        for i, (task, n) in enumerate(zip(tasks, sizes, strict=True)):
            if mixed:
                x, y, ss[i, :n] = sample_cached(task, split, n, levels=True)
            else:
                x, y = sample_cached(task, split, n)
            xs[i, :n], ys[i, :n, 0] = x, y
        if mixed:
            levels[name] = torch.as_tensor(ss, dtype=torch.long, device=device)
        # Teacher quantities from the float64 inputs, so the oracle sees exactly the teacher's A(x).
        z[name] = torch.as_tensor(np.stack([t.scores(x) for t, x in zip(tasks, xs, strict=True)]),
                                  dtype=dtype, device=device)
        if n_experts is not None:
            expert_out[name] = torch.as_tensor(
                np.stack([t.skill_experts(x, n_experts, *([s] if mixed else []))
                          for t, x, s in zip(tasks, xs, ss, strict=True)]),
                dtype=dtype, device=device)
        return (torch.as_tensor(xs, dtype=dtype, device=device),
                torch.as_tensor(ys, dtype=dtype, device=device))

    x_tr, y_tr = stack("train", "train", n_train, n_max)
    mask = torch.arange(n_max, device=device)[None, :] < torch.tensor(n_train, device=device)[:, None]
    x_val, y_val = stack("val", "val", [n_val] * len(tasks), n_val)
    x_id, y_id = stack("test_id", "id", [n_test] * len(tasks), n_test)
    x_ood, y_ood = stack("test_ood", "ood", [n_test] * len(tasks), n_test)
    tv = torch.tensor([t.target_var for t in tasks], dtype=dtype, device=device)
    s = torch.tensor([t.spec.complexity for t in tasks], device=device)
    return BundleData(x_tr, y_tr, mask, x_val, y_val, x_id, y_id, x_ood, y_ood, tv, s, z, expert_out, levels)


def mix_in(data: BundleData, other: BundleData, counts: list[int]) -> BundleData:
    """`data` with the first counts[i] training points of model i replaced by the first counts[i] of
    `other` (the same models and training-set sizes on another task: its inputs, targets, teacher scores,
    teacher-expert outputs and s); the other splits are `data`'s. Each training point then has its own s."""
    dev = data.x_train.device
    take = torch.arange(data.x_train.shape[1], device=dev)[None, :] < \
        torch.tensor(counts, device=dev)[:, None]

    def mixed(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.where(take.view(*take.shape, *[1] * (a.dim() - 2)), b, a)

    train = {"z": mixed(data.z["train"], other.z["train"]),
             "levels": torch.where(take, other.complexity[:, None], data.complexity[:, None])}
    if data.expert_out:
        train["expert_out"] = mixed(data.expert_out["train"], other.expert_out["train"])
    return dataclasses.replace(
        data, x_train=mixed(data.x_train, other.x_train), y_train=mixed(data.y_train, other.y_train),
        z={**data.z, "train": train["z"]},
        complexity_points={**data.complexity_points, "train": train["levels"]},
        expert_out={**data.expert_out, **({"train": train["expert_out"]} if data.expert_out else {})})


def init_model(n_experts: int, d_in: int, width: int, ks: list[int], init_seeds: list[int], impl: str,
               renormalize: str, dtype: torch.dtype, device: torch.device | str,
               router_temperature: float = 1.0, router_init_scale: float = 1.0, gate: str = "softmax",
               d_context: int = 0) -> TopKMoE:
    """A bundle whose model i is initialised exactly as `TopKMoE(1, ..., seed=init_seeds[i])`, its
    router's initial weights then multiplied by `router_init_scale` (0: a uniform router at the start);
    `gate` is the bundle's gate family (the router's `gate`; the initial weights do not depend on it).
    `d_context` > 0: the inputs carry a context of that width after x, read by the router only.

    Models sharing an init seed (e.g. a sweep over k) therefore start from the same weights, whatever
    bundle they are in.
    """
    model = TopKMoE(len(ks), n_experts, d_in, width, k=torch.tensor(ks), impl=impl,
                    renormalize=renormalize, dtype=dtype, seed=0, temperature=router_temperature, gate=gate,
                    d_context=d_context)
    singles: dict[int, TopKMoE] = {}
    with torch.no_grad():
        for i, s in enumerate(init_seeds):
            if s not in singles:
                singles[s] = TopKMoE(1, n_experts, d_in, width, k=1, dtype=dtype, seed=s, d_context=d_context,
                                     gate=gate)
            for name, p in model.named_parameters():
                p[i].copy_(singles[s].get_parameter(name)[0])
        if router_init_scale != 1.0:
            model.router.weight.mul_(router_init_scale)
    return model.to(device)


class Student:
    """How one bundle's models predict a split, per its arm (TrainSettings.router / experts /
    estimator): the bundle's router kind gates (`router`), its expert kind combines the experts by those
    gates (`experts`), its estimator makes the training loss (`estimator`); all are instances of
    simulations.arms and simulations.estimators classes, bound to this bundle. `options`: the flat
    settings (a cell) the router kind and the estimator read their own from (their `Settings`; defaults
    where absent); `seeds`: one per model, for the router kind's and the estimator's draws (default: the
    model index), and `stream` which of their streams (the main phase 0, a warm-up 1)."""

    def __init__(self, model: TopKMoE, data: BundleData, settings: TrainSettings,
                 options: Mapping[str, Any] | None = None, seeds: list[int] | None = None, stream: int = 0):
        self.model, self.data, self.settings = model, data, settings
        seeds = [(s, stream) for s in (range(model.n_models) if seeds is None else seeds)]
        kind = arms.router(settings.router)
        self.router = kind(model, data, build(kind.Settings, options or {}), seeds)
        self.experts = arms.experts(settings.experts)(model, data)
        est = estimators.estimator(settings.estimator)
        self.estimator = est(self, build(est.Settings, options or {}), seeds)
        self._memo: dict | None = None  # while frozen: what the final evaluation computes once

    def trainable(self) -> list[tuple[str, torch.nn.Parameter]]:
        """(name, parameter) pairs the arm trains, sorted by name."""
        names = {*self.router.trains, *self.experts.trains}
        return [(n, p) for n, p in sorted(self.model.named_parameters()) if n in names]

    def param_groups(self, lr: float) -> list[dict]:
        """Adam's parameter groups: the trainable parameters by learning rate (lr times their kind's
        `lr_mult`), in name order; one group when every multiple is 1."""
        by_mult: dict[float, list[torch.nn.Parameter]] = {}
        for name, p in self.trainable():
            kind = self.router if name in self.router.trains else self.experts
            by_mult.setdefault(kind.lr_mult(), []).append(p)
        return [{"params": ps} if mult == 1.0 else {"params": ps, "lr": lr * mult}
                for mult, ps in by_mult.items()]

    @contextlib.contextmanager
    def frozen(self) -> Iterator[Student]:
        """Within it the weights must not change, and each split's gating, expert outputs and teacher
        ranks on a range of points are computed once: the final evaluation's measures share them (the
        same values as computing them again)."""
        self._memo = {}
        try:
            yield self
        finally:
            self._memo = None

    def _once(self, what: str, split: str, points: arms.Points, make: Callable[[], Any]) -> Any:
        if self._memo is None or not isinstance(points, slice):
            return make()
        key = (what, split, *points.indices(self.data.split(split)[0].shape[1]))
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    def gating(self, split: str, points: arms.Points = slice(None)) -> Gating:
        """The router kind's greedy gating of a split's points (all of them, a slice, or an index tensor
        such as a permutation)."""
        return self._once("gating", split, points, lambda: self.router.route(split, points))

    def route(self, split: str, points: arms.Points = slice(None)) -> tuple[torch.Tensor, torch.Tensor]:
        """(selection mask, gates), each [M, T, n], on a split's points (see `gating`)."""
        gating = self.gating(split, points)
        return gating.selected, gating.gates

    def outputs(self, split: str, points: arms.Points = slice(None)) -> torch.Tensor:
        """Every expert's output [M, T, n, 1] on a split's points (the expert kind's)."""
        return self._once("outputs", split, points, lambda: self.experts.outputs(split, points))

    def skill_ranks(self, split: str, points: arms.Points = slice(None)) -> torch.Tensor:
        """[M, n, S] each skill's rank in the teacher's scores of a split's points (0 = largest)."""
        return self._once("ranks", split, points, lambda: routing.skill_ranks(self.data.z[split][:, points]))

    def active_skills(self, split: str) -> torch.Tensor:
        """Bool [M, n, S]: the teacher's active set of each of a split's points."""
        return self._once("active", split, slice(None),
                          lambda: routing.active_skills(self.data.z[split], self.data.levels(split),
                                                        ranks=self.skill_ranks(split)))

    def __call__(self, split: str, sl: slice = slice(None)) -> torch.Tensor:
        """Predictions [M, n, 1] on a split's points (the router kind's greedy gating); frozen, from the
        kept expert outputs where the combine step runs every expert anyway."""
        kept = None if self._memo is None else (lambda: self.outputs(split, sl))
        return self.experts.combine(self.gating(split, sl), split, sl, kept)

    def training_loss(self) -> torch.Tensor:
        """Each model's training loss [M] on its training points, as the estimator makes it."""
        data = self.data
        return self.estimator.loss(estimators.Batch("train", slice(None), data.y_train, data.mask_train))


@torch.no_grad()
def _evaluate(student: Student, split: str, mask: torch.Tensor | None = None, chunk: int = 4096
              ) -> torch.Tensor:
    """Per-model MSE on a full split, in chunks of points to bound memory."""
    x, y = student.data.split(split)
    total = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for start in range(0, x.shape[1], chunk):
        sl = slice(start, start + chunk)
        err = (student(split, sl) - y[:, sl]).squeeze(-1).square()
        total += (err * mask[:, sl]).sum(1) if mask is not None else err.sum(1)
    return total / (mask.sum(1) if mask is not None else x.shape[1])


@torch.no_grad()
def _router_entropy(student: Student) -> torch.Tensor:
    """Entropy (nats) of each model's load on the ID test split: the share of gated token-expert
    assignments per expert."""
    counts = student.route("id")[0].sum(2, dtype=student.data.x_id.dtype)
    f = counts / counts.sum(-1, keepdim=True)
    return -(torch.where(f > 0, f * f.log(), torch.zeros_like(f))).sum(-1)


@torch.no_grad()
def learned_skill_map(student: Student) -> torch.Tensor:
    """Expert -> skill map [M, T] from gate-weighted co-activation on the training split
    (`routing.skill_map`; -1: an expert that never gets a positive gate); asked only of kinds that route."""
    data = student.data
    return routing.skill_map(student.route("train")[1], student.active_skills("train"), data.mask_train)


@torch.no_grad()
def routing_report(student: Student, seed: int = 0, mapping: torch.Tensor | None = None
                   ) -> dict[str, torch.Tensor]:
    """Routing measures per model on the ID test split (docs/store.md): experts are mapped to skills
    from co-activation on the training split (`learned_skill_map`, or `mapping` when the caller has it);
    the baseline routes inputs permuted across points (so they carry no information about each point's
    active set). NaN for an arm that does not route."""
    data = student.data
    M = data.x_id.shape[0]
    if not student.router.routes:
        nan = torch.full((M,), math.nan, dtype=torch.float64)
        return {"routing_recall": nan, "routing_gate_mass": nan, "routing_recall_baseline": nan,
                "routing_gate_mass_baseline": nan}
    active = student.active_skills("id")
    mapping = learned_skill_map(student) if mapping is None else mapping
    recall, mass = routing.routing_measures(*student.route("id"), active, mapping)
    perm = torch.randperm(data.x_id.shape[1], generator=torch.Generator().manual_seed(seed))
    base = student.route("id", perm.to(data.x_id.device))
    recall_b, mass_b = routing.routing_measures(*base, active, mapping)
    return {"routing_recall": recall, "routing_gate_mass": mass, "routing_recall_baseline": recall_b,
            "routing_gate_mass_baseline": mass_b}


@torch.no_grad()
def experts_used(student: Student) -> dict[str, np.ndarray]:
    """How many experts each model's router selects per ID test input (docs/store.md): {"mean" [M]},
    and for a mixed-complexity task {"by_s" [M, S]}: the mean over the inputs of each level s = 1..S
    (column s - 1; NaN for levels the task does not have). NaN for an arm that does not route."""
    data, M = student.data, student.data.x_id.shape[0]
    S = data.z["id"].shape[-1] if data.z else 0
    if not student.router.routes:
        out = {"mean": np.full(M, np.nan)}
        return out | ({"by_s": np.full((M, S), np.nan)} if "id" in data.complexity_points else {})
    used = student.route("id")[0].sum(1).double()  # [M, N]
    out = {"mean": used.mean(1).cpu().numpy()}
    if "id" in data.complexity_points:
        s = data.complexity_points["id"].to(used.device)
        at = s.unsqueeze(-1) == torch.arange(1, S + 1, device=used.device)  # [M, N, S]
        count = at.sum(1).double()
        total = (used.unsqueeze(-1) * at).sum(1)
        out["by_s"] = torch.where(count > 0, total / count.clamp_min(1), math.nan).cpu().numpy()
    return out


@torch.no_grad()
def k_eval_curves(student: Student, chunk: int = 4096) -> dict[str, np.ndarray]:
    """Inference-time k: each trained model evaluated at every k_eval = 1..T without retraining, with
    its router kind's gating at k_eval (`RouterKind.gates_by_k`; the model's own k is left alone).
    Returns {"id", "ood"}: MSE [M, T] (column j is k_eval = j + 1); NaN for an arm that does not route
    (whose k is not a routing choice, e.g. a dense MLP's width). The experts run once per chunk of
    points and their outputs are recombined with each k_eval's gates, so T values of k cost about one
    forward pass, not T."""
    T, M = student.model.n_experts, student.model.n_models
    if not student.router.routes:
        nan = np.full((M, T), np.nan)
        return {"id": nan, "ood": nan.copy()}
    out = {}
    for split in ("id", "ood"):
        x, y = student.data.split(split)
        total = torch.zeros(M, T, dtype=x.dtype, device=x.device)
        for start in range(0, x.shape[1], chunk):
            sl = slice(start, start + chunk)
            experts = student.outputs(split, sl)  # [M, T, n, 1]
            for j, gates in enumerate(student.router.gates_by_k(split, sl)):
                pred = (gates.unsqueeze(-1) * experts).sum(1)
                total[:, j] += (pred - y[:, sl]).squeeze(-1).square().sum(1)
        out[split] = (total / x.shape[1]).cpu().double().numpy()
    return out


def _finite_grads(params: list[torch.Tensor]) -> None:
    """Non-finite gradient entries set to 0; a parameter the loss did not reach gets a zero gradient."""
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        p.grad.nan_to_num_(0.0, 0.0, 0.0)


@dataclass(frozen=True)
class WarmUp:
    """A first training phase (docs/tasks.md, "A single-skill phase"): `steps` Adam steps at k = 1 on
    other data of the same models (the task at s = 1), with no early stopping, before the usual training
    goes on from the weights and optimizer state it leaves (one run whose data changes)."""

    data: BundleData
    steps: int


def _update(opt: torch.optim.Optimizer, params: list[torch.Tensor], loss: torch.Tensor, frozen: torch.Tensor,
            clip_norm: float) -> None:
    """One optimizer step on the loss [M] of the models not `frozen` (a frozen model's loss counts 0),
    with non-finite gradient entries zeroed and each model's gradient clipped to `clip_norm`."""
    torch.where(frozen, torch.zeros_like(loss), loss).sum().backward()
    _finite_grads(params)
    clip_grads(params, clip_norm)
    opt.step()


def _warm_up(model: TopKMoE, settings: TrainSettings, warm_up: WarmUp, opt: torch.optim.Optimizer,
             options: Mapping[str, Any] | None, seeds: list[int] | None) -> None:
    """Run a WarmUp phase on the bundle's models in place, with the main phase's optimizer (a model
    whose loss turns non-finite stops learning there; the main phase then flags it diverged)."""
    student = Student(model, warm_up.data, settings, options, seeds, stream=1)
    params = [p for _, p in student.trainable()]
    own_k = model.router.k
    model.router.k = 1
    for _ in range(warm_up.steps):
        opt.zero_grad(set_to_none=False)
        loss = student.training_loss()
        _update(opt, params, loss, ~torch.isfinite(loss), settings.clip_norm)
    model.router.k = own_k


@dataclass
class _Progress:
    """Each model's state through training: its best checkpoint and validation MSE, evaluations
    without improvement, whether it stopped early or diverged, and the step it ended at."""

    best: list[torch.Tensor]
    best_val: torch.Tensor
    bad_evals: torch.Tensor
    stopped: torch.Tensor
    diverged: torch.Tensor
    steps: torch.Tensor

    @classmethod
    def start(cls, params: list[torch.Tensor], settings: TrainSettings) -> _Progress:
        M, like = params[0].shape[0], params[0]
        dtype, dev = like.dtype, like.device
        return cls([p.detach().clone() for p in params], torch.full((M,), math.inf, dtype=dtype, device=dev),
                   torch.zeros(M, dtype=torch.long, device=dev), torch.zeros(M, dtype=torch.bool, device=dev),
                   torch.zeros(M, dtype=torch.bool, device=dev),
                   torch.full((M,), settings.max_steps, dtype=torch.long, device=dev))

    @property
    def frozen(self) -> torch.Tensor:
        return self.stopped | self.diverged

    def validate(self, val: torch.Tensor, params: list[torch.Tensor], step: int, patience: int) -> None:
        """Keep the improved models' checkpoints; stop those `patience` checks without improvement."""
        running = ~self.frozen
        improved = running & (val < self.best_val)
        self.best_val = torch.where(improved, val, self.best_val)
        self.bad_evals = torch.where(improved, 0, self.bad_evals + running.long())
        copy_models(self.best, params, improved)
        newly = running & (self.bad_evals >= patience)
        self.steps = torch.where(newly, step, self.steps)
        self.stopped |= newly


def _train(student: Student, params: list[torch.Tensor], opt: torch.optim.Optimizer,
           settings: TrainSettings) -> _Progress:
    """The main phase: Adam steps with validation every `eval_every` steps and early stopping; the
    models are left at their last step (their best checkpoints in the returned progress)."""
    progress = _Progress.start(params, settings)
    for step in range(settings.max_steps + 1):
        if step % settings.eval_every == 0 or step == settings.max_steps:
            progress.validate(_evaluate(student, "val"), params, step, settings.patience)
            if step == settings.max_steps or bool(progress.frozen.all()):
                break
        frozen = progress.frozen
        opt.zero_grad(set_to_none=False)
        loss = student.training_loss()
        bad = ~torch.isfinite(loss) & ~frozen
        progress.steps = torch.where(bad, step, progress.steps)
        progress.diverged |= bad
        _update(opt, params, loss, progress.frozen, settings.clip_norm)
        copy_models(params, progress.best, progress.frozen)
    return progress


@torch.no_grad()
def _final_metrics(student: Student, progress: _Progress) -> tuple[dict[str, Any], dict[str, Any]]:
    """The trained bundle's metric columns (docs/store.md), NaN for diverged models: (one value per
    model, one array per model). The student is frozen, so the measures share each split's gating,
    expert outputs and teacher ranks."""
    data, diverged = student.data, progress.diverged
    nan = torch.full_like(progress.best_val, math.nan)
    gone = diverged.cpu().numpy()

    def metric(v: torch.Tensor) -> np.ndarray:
        return torch.where(diverged, nan, v.to(nan)).cpu().double().numpy()

    def per_model(v: np.ndarray) -> np.ndarray:
        return np.where(gone.reshape(-1, *[1] * (v.ndim - 1)), np.nan, v)

    with student.frozen():
        train = metric(_evaluate(student, "train", data.mask_train))
        test_id, test_ood = metric(_evaluate(student, "id")), metric(_evaluate(student, "ood"))
        mapping = learned_skill_map(student) if student.router.routes else None  # computed once
        measures = {name: metric(v) for name, v in routing_report(student, mapping=mapping).items()}
        if mapping is not None:
            mapping = error_split.expert_skills(student, mapping)
        parts = {n: metric(v) for n, v in error_split.error_split(student, mapping).items()}
        k_eval = {split: per_model(v) for split, v in k_eval_curves(student).items()}
        used = {name: per_model(v) for name, v in experts_used(student).items()}
        entropy = metric(_router_entropy(student))
    tv = data.target_var.cpu().double().numpy()
    return {
        "train_mse": train, "val_mse": metric(progress.best_val), "test_mse_id": test_id,
        "test_mse_ood": test_ood, "train_nmse": train / tv, "test_nmse_id": test_id / tv,
        "test_nmse_ood": test_ood / tv, "target_var": tv, "diverged": gone,
        "early_stopped": (progress.stopped & ~diverged).cpu().numpy(), "steps": progress.steps.cpu().numpy(),
        "router_entropy": entropy, **measures, **parts,
    }, {
        # one array of T MSEs per model; the store moves them to its k_eval table (simulations.results)
        "k_eval_mse_id": list(k_eval["id"]), "k_eval_mse_ood": list(k_eval["ood"]),
        "mean_experts_id": used["mean"],
        # mixed complexity: one array of S per-level means per model; the store moves them to its
        # experts-by-s table (simulations.results)
        **({"mean_experts_by_s": list(used["by_s"])} if "by_s" in used else {}),
    }


def train_bundle(model: TopKMoE, data: BundleData, settings: TrainSettings,
                 options: Mapping[str, Any] | None = None, seeds: list[int] | None = None,
                 warm_up: WarmUp | None = None) -> pd.DataFrame:
    """Train every model of the bundle; one row of metrics per model, in model order. `options` and
    `seeds`: see Student; `warm_up`: a first phase on other data (None: none)."""
    t0 = time.perf_counter()
    student = Student(model, data, settings, options, seeds)
    params = [p for _, p in student.trainable()]
    # foreach: the same bits as the per-tensor loop
    opt = torch.optim.Adam(student.param_groups(settings.lr), lr=settings.lr, foreach=True)
    if warm_up is not None and warm_up.steps > 0:
        _warm_up(model, settings, warm_up, opt, options, seeds)
    progress = _train(student, params, opt, settings)
    with torch.no_grad():  # every model ends at its best validation checkpoint
        for p, b in zip(params, progress.best, strict=True):
            p.copy_(b)
    scores, lists = _final_metrics(student, progress)
    wall = np.full(model.n_models, (time.perf_counter() - t0) / model.n_models)
    return pd.DataFrame({**scores, "wall_s": wall, **lists})
