"""The regression family: the compositional task's grid (docs/tasks.md), as the grid driver runs it.

A cell is one point of the grid (task fields, complexity, n_experts, k, n_train, width and the training
settings); `cell_id` hashes its canonical form. Models of equal shape (n_experts, width, d_in) and arm
share bundles, ordered so that neighbours in n_train share one (little compute goes to padding).

Every random number of a model comes from (seed, cell): the task instance and its data from
(seed, task fields, complexity), the student's init from (seed, n_experts, width, d_in), so all k of
one (seed, task) start from the same weights and see the same data (a paired comparison across k).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import torch

from simulations import arms
from simulations.config_schema import build, cell_fields, flat, grouping, stable_hash, without_since
from simulations.families import REGRESSION, Family
from simulations.families.regression.config import (
    CurriculumConfig,
    GridConfig,
    StudentConfig,
    TaskConfig,
    validate,
)
from simulations.families.regression.task_registry import has_context, make_task
from simulations.families.regression.tasks import CompositionalTask, TaskSpec
from simulations.families.regression.train import (
    TrainSettings,
    WarmUp,
    init_model,
    make_bundle_data,
    mix_in,
    train_bundle,
)
from simulations.provenance import device_name


def cells(config: GridConfig) -> list[dict[str, Any]]:
    """Every cell of the grid as a canonical dict including its `cell_id` (seeds excluded): the flat
    names of the task, training and student settings and one value per axis. Settings added later hash
    only when they leave the value older stores implied (their `since`), so those stores keep their ids.
    A router kind that does not use the model's gates gets its cells once, at gate "softmax"
    (AxesConfig.gates_for), one that takes no estimators once, at "pathwise" (AxesConfig.estimators_for).
    Under `width_rule: active` a width value is the active width k h: the cell's `width` is its experts'
    (width / k) and `active_width` the value (a key only such cells have)."""
    values = flat(config)
    shared = {f: values[f] for f in cell_fields(GridConfig)}
    axes = config.axes
    active = config.student.width_rule == "active"
    out = []
    for router, experts, gate, est in ((r, e, g, est) for r, e in axes.arms() for g in axes.gates_for(r)
                                       for est in axes.estimators_for(r)):
        for T in axes.n_experts:
            for h in axes.width:
                for s in axes.complexity:
                    for m in axes.n_train:
                        for k in axes.ks_for(T):
                            cell = {**shared, "router": router, "experts": experts, "n_experts": T,
                                    "width": h, "complexity": s, "n_train": m, "k": k, "gate": gate,
                                    "estimator": est}
                            if active:  # h is the active width k h: each expert gets h / k
                                cell |= {"width": h // k, "active_width": h}
                            out.append({"cell_id": stable_hash(without_since(GridConfig, cell)), **cell})
    return out


group = grouping(GridConfig)  # models of equal shape and arm may share a bundle


def order(spec) -> tuple:
    """Neighbours in n_train share a bundle, so little compute goes to padding."""
    return spec.cell["n_train"], spec.cell["complexity"], spec.seed, spec.cell["k"]


def label(bundle) -> str:
    c = bundle.models[0].cell
    arm = "" if arms.arm(c["router"], c["experts"]) == arms.primary() else \
        f", router={c['router']}, experts={c['experts']}"
    gate = "" if c["gate"] == "softmax" else f", gate={c['gate']}"
    return f"{bundle.bundle_id} (T={c['n_experts']}, h={c['width']}{arm}{gate}, {len(bundle.models)} models)"


def _init_seed(seed: int, cell: dict[str, Any]) -> int:
    key = [seed, cell["n_experts"], cell["width"], cell["d_in"]]
    return int(np.random.SeedSequence(key).generate_state(1, dtype=np.uint64)[0] >> 1)


@lru_cache(maxsize=64)
def _task(spec: TaskSpec) -> CompositionalTask:
    return make_task(spec)


def task_spec(cell: dict[str, Any], seed: int, complexity: int | None = None) -> TaskSpec:
    """The task instance of one model: the cell's task settings, its complexity (or `complexity`: the
    same task at another s, with the same skills and teacher router) and the seed."""
    s = cell["complexity"] if complexity is None else complexity
    return TaskSpec(**asdict(build(TaskConfig, cell)), complexity=s, seed=seed)


def teacher_router(tasks: list[CompositionalTask], n_experts: int, d_context: int) -> torch.Tensor:
    """Router weights [M, width, T] whose logits are the teacher's scores z = U^T x (or U^T c for the
    contextual task, read from the context columns): every replica e = rep * S + j of skill j scores
    z_j. The top k = r s experts are then all r replicas of the s active skills, the teacher's selection;
    with one replica per skill (T = S) so is the top s. A linear router without a bias cannot rank every
    replica 0 above every replica 1 for all inputs, so at r > 1 and k = s the start is not the teacher's
    (the replicas of the strongest skills come first)."""
    out = []
    for task in tasks:
        U = torch.as_tensor(task.U)  # [d_in or d_context, S]
        w = torch.zeros(task.spec.d_in + d_context, n_experts, dtype=U.dtype)
        w[task.spec.d_in if d_context else 0:, :] = U[:, torch.arange(n_experts) % U.shape[1]]
        out.append(w)
    return torch.stack(out)


def d_context(cell: dict[str, Any]) -> int:
    """Width of the context the student's router reads besides x: the cell's d_context for a task that
    has one (the contextual task), 0 for the others (the compositional task)."""
    return cell["d_context"] if has_context(cell["task"]) else 0


def train(bundle) -> pd.DataFrame:
    """Train one bundle and return its rows (one per model)."""
    device = torch.device(bundle.device)
    first = bundle.models[0].cell
    student = build(StudentConfig, first)
    curriculum = build(CurriculumConfig, first)
    dtype = getattr(torch, student.dtype)
    tasks = [_task(task_spec(m.cell, m.seed)) for m in bundle.models]
    # the route-free baselines first: their 20,000-point test draws then serve the test splits
    baselines = {"route_free_nmse": [t.route_free_nmse for t in tasks],
                 "route_free_nmse_ood": [t.route_free_nmse_ood for t in tasks]}
    n_train = [m.cell["n_train"] for m in bundle.models]
    expert_out = first["n_experts"] if arms.experts(first["experts"]).needs_expert_out else None
    data = make_bundle_data(tasks, n_train, first["n_val"], first["n_test"], dtype, device,
                            n_experts=expert_out)
    warm_up = None
    if curriculum.single_skill_steps or curriculum.single_skill_share:
        singles = [_task(task_spec(m.cell, m.seed, complexity=1)) for m in bundle.models]
        single_data = make_bundle_data(singles, n_train, 1, 1, dtype, device, n_experts=expert_out)
        if curriculum.single_skill_share:
            data = mix_in(data, single_data, [round(curriculum.single_skill_share * m) for m in n_train])
        if curriculum.single_skill_steps:
            warm_up = WarmUp(single_data, curriculum.single_skill_steps)
    ks, init_seeds = [m.cell["k"] for m in bundle.models], [_init_seed(m.seed, m.cell) for m in bundle.models]
    model = init_model(first["n_experts"], first["d_in"], first["width"], ks, init_seeds, student.impl,
                       student.renormalize, dtype, device, router_temperature=student.router_temperature,
                       router_init_scale=student.router_init_scale, gate=first["gate"],
                       d_context=d_context(first))
    if student.router_init == "teacher":
        with torch.no_grad():
            weight = model.router.weight
            weight.copy_(teacher_router(tasks, first["n_experts"], d_context(first)).to(weight)
                         * student.router_init_scale)
    metrics = train_bundle(model, data, build(TrainSettings, first), options=first, seeds=init_seeds,
                           warm_up=warm_up)
    cols = pd.DataFrame([{**m.cell, "seed": m.seed} for m in bundle.models])
    if "complexity_mix" in cols:  # a list setting, stored as text ("1,2,4"; "" when off)
        cols["complexity_mix"] = [",".join(map(str, mix)) for mix in cols["complexity_mix"]]
    cols["n_heldout_combos"] = [len(t.heldout) for t in tasks]
    for name, values in baselines.items():
        cols[name] = values
    rows = pd.concat([cols, metrics], axis=1)
    # the share of the route-free baseline's error left, each split's by its own (docs/store.md)
    for split, base in (("id", "route_free_nmse"), ("ood", "route_free_nmse_ood")):
        rows[f"rel_nmse_{split}"] = rows[f"test_nmse_{split}"] / rows[base]
    rows["bundle_id"] = bundle.bundle_id
    extra = {**bundle.provenance, "device": device_name(device), "config_hash": bundle.config_hash}
    for key, value in extra.items():
        rows[key] = value
    return rows


def _work(bundle) -> float:
    """Relative cost of a bundle: models x padded points x expert parameters x steps (a single-skill
    phase's included)."""
    c = bundle.models[0].cell
    n = max(m.cell["n_train"] for m in bundle.models) + c["n_val"] / c["eval_every"]
    steps = c["max_steps"] + c["single_skill_steps"]
    return len(bundle.models) * n * c["n_experts"] * c["width"] * (c["d_in"] + 2) * steps


def _step_kind(bundle) -> tuple[str, str, str]:
    """What sets the cost of a bundle's step beyond its work: its router, expert kind and estimator."""
    c = bundle.models[0].cell
    return c["router"], c["experts"], c["estimator"]


def estimate_seconds(bundles: list, n_steps: int = 10) -> float:
    """Upper bound (no early stopping): per kind of step (router, experts, estimator), time `n_steps`
    steps of its largest bundle with its own settings, and scale by work."""
    groups: dict[tuple, list] = {}
    for b in bundles:
        groups.setdefault(_step_kind(b), []).append(b)
    return sum(_estimate_group(group, n_steps) for group in groups.values())


def _estimate_group(bundles: list, n_steps: int) -> float:
    big = max(bundles, key=_work)
    if torch.device(big.device).type == "cpu" and big.threads > 0:
        torch.set_num_threads(big.threads)
    first = big.models[0].cell
    dtype = getattr(torch, first["dtype"])
    tasks = [_task(task_spec(m.cell, 0)) for m in big.models]
    expert_out = first["n_experts"] if arms.experts(first["experts"]).needs_expert_out else None
    data = make_bundle_data(tasks, [m.cell["n_train"] for m in big.models], first["n_val"], 1, dtype,
                            big.device, n_experts=expert_out)
    model = init_model(first["n_experts"], first["d_in"], first["width"], [m.cell["k"] for m in big.models],
                       [0] * len(big.models), first["impl"], first["renormalize"], dtype, big.device,
                       gate=first["gate"], d_context=d_context(first))
    state = {name: p.detach().clone() for name, p in model.named_parameters()}
    settings = build(TrainSettings, first)

    def timed(steps: int) -> float:
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(state[name])
        t0 = time.perf_counter()
        train_bundle(model, data, dataclasses.replace(settings, max_steps=steps, eval_every=10**9),
                     options=first)
        return time.perf_counter() - t0

    timed(1)  # warm-up
    t_eval = timed(0)  # the evaluations alone (validation, train and test metrics)
    per_step = max(timed(n_steps) - t_eval, 0.0) / n_steps
    steps = first["max_steps"] + first["single_skill_steps"]
    per_bundle = per_step * steps + t_eval * (1 + first["max_steps"] / first["eval_every"])
    return per_bundle * sum(_work(b) for b in bundles) / _work(big)


FAMILY = Family(
    name=REGRESSION, config_cls=GridConfig, validate=validate, presets="simulations.families.regression",
    default_preset="quick",
    cells=cells, group=group, order=order, train=train,
    estimate=estimate_seconds, label=label, estimate_is_bound=True,
)
