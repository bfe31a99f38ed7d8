"""The regression family: the compositional task's grid (docs/tasks.md), as the grid driver runs it.

A cell is one point of the grid (task fields, complexity, n_experts, k, n_train, width and the training
settings); `cell_id` hashes its canonical form. Models of equal shape (n_experts, width, d_in) and arm
share bundles, ordered so that neighbours in n_train share one (little compute goes to padding).

Every random number of a model comes from (seed, cell): the task instance and its data from
(seed, task fields, complexity), the student's init from (seed, n_experts, width, d_in), so all k of
one (seed, task) start from the same weights and see the same data (a paired comparison across k).
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import torch

from simulations import results
from simulations.config import (
    ROUTER_INIT,
    ROUTER_SETTINGS,
    GridConfig,
    stable_hash,
    validate,
    without_later_defaults,
)
from simulations.families import Family
from simulations.families.regression.tasks import CompositionalTask, TaskSpec
from simulations.families.regression.train import TrainSettings, init_model, make_bundle_data, train_bundle
from simulations.provenance import device_name

TASK_FIELDS = ("n_skills", "d_in", "teacher_width", "noise", "holdout_frac")
TRAIN_FIELDS = ("lr", "max_steps", "eval_every", "patience", "clip_norm", *ROUTER_SETTINGS, *ROUTER_INIT,
                "n_val", "n_test")
SETTINGS_FIELDS = ("lr", "max_steps", "eval_every", "patience", "clip_norm", "router", "experts",
                   *ROUTER_SETTINGS)


def cells(config: GridConfig) -> list[dict[str, Any]]:
    """Every cell of the grid as a canonical dict including its `cell_id` (seeds excluded). Fields
    added later hash only when they leave their old default (config.LATER_DEFAULTS), so the cells of
    earlier stores keep their ids."""
    shared = {f: getattr(config, f) for f in (*TASK_FIELDS, *TRAIN_FIELDS, "renormalize", "impl", "dtype")}
    out = []
    for router, experts in config.arms():
        for T in config.n_experts:
            for h in config.width:
                for s in config.complexity:
                    for m in config.n_train:
                        for k in config.ks_for(T):
                            cell = {**shared, "router": router, "experts": experts, "n_experts": T,
                                    "width": h, "complexity": s, "n_train": m, "k": k}
                            out.append({"cell_id": stable_hash(without_later_defaults(cell)), **cell})
    return out


def group(cell: dict[str, Any]) -> tuple:
    """Models of equal shape and arm may share a bundle."""
    return cell["n_experts"], cell["width"], cell["router"], cell["experts"]


def order(spec) -> tuple:
    """Neighbours in n_train share a bundle, so little compute goes to padding."""
    return spec.cell["n_train"], spec.cell["complexity"], spec.seed, spec.cell["k"]


def label(bundle) -> str:
    c = bundle.models[0].cell
    arm = "" if (c["router"], c["experts"]) == ("learned", "learned") else \
        f", router={c['router']}, experts={c['experts']}"
    return f"{bundle.bundle_id} (T={c['n_experts']}, h={c['width']}{arm}, {len(bundle.models)} models)"


def _init_seed(seed: int, cell: dict[str, Any]) -> int:
    key = [seed, cell["n_experts"], cell["width"], cell["d_in"]]
    return int(np.random.SeedSequence(key).generate_state(1, dtype=np.uint64)[0] >> 1)


@lru_cache(maxsize=64)
def _task(spec: TaskSpec) -> CompositionalTask:
    return CompositionalTask(spec)


def train(bundle) -> pd.DataFrame:
    """Train one bundle and return its rows (one per model)."""
    device = torch.device(bundle.device)
    first = bundle.models[0].cell
    dtype = getattr(torch, first["dtype"])
    task_fields = ("n_skills", "complexity", "d_in", "teacher_width", "noise", "holdout_frac")
    tasks = [_task(TaskSpec(*(m.cell[f] for f in task_fields), seed=m.seed)) for m in bundle.models]
    data = make_bundle_data(tasks, [m.cell["n_train"] for m in bundle.models], first["n_val"],
                            first["n_test"], dtype, device,
                            n_experts=first["n_experts"] if first["experts"] == "teacher" else None)
    ks, init_seeds = [m.cell["k"] for m in bundle.models], [_init_seed(m.seed, m.cell) for m in bundle.models]
    model = init_model(first["n_experts"], first["d_in"], first["width"], ks, init_seeds, first["impl"],
                       first["renormalize"], dtype, device, **{f: first[f] for f in ROUTER_INIT})
    settings = TrainSettings(**{f: first[f] for f in SETTINGS_FIELDS})
    metrics = train_bundle(model, data, settings)
    cols = pd.DataFrame([{**m.cell, "seed": m.seed} for m in bundle.models])
    cols["n_heldout_combos"] = [len(t.heldout) for t in tasks]
    cols["route_free_nmse"] = [t.route_free_nmse for t in tasks]
    rows = pd.concat([cols, metrics], axis=1)
    for split in ("id", "ood"):  # the share of the route-free baseline's error left (docs/results.md)
        rows[f"rel_nmse_{split}"] = rows[f"test_nmse_{split}"] / rows["route_free_nmse"]
    rows["bundle_id"] = bundle.bundle_id
    extra = {**bundle.provenance, "device": device_name(device), "config_hash": bundle.config_hash}
    for key, value in extra.items():
        rows[key] = value
    return rows


def _work(bundle) -> float:
    """Relative cost of a bundle: models x padded points x expert parameters x steps."""
    c = bundle.models[0].cell
    n = max(m.cell["n_train"] for m in bundle.models) + c["n_val"] / c["eval_every"]
    return len(bundle.models) * n * c["n_experts"] * c["width"] * (c["d_in"] + 2) * c["max_steps"]


def estimate_seconds(bundles: list, n_steps: int = 10) -> float:
    """Upper bound (no early stopping): time `n_steps` steps of the largest bundle, scale by work."""
    if not bundles:
        return 0.0
    big = max(bundles, key=_work)
    if torch.device(big.device).type == "cpu" and big.threads > 0:
        torch.set_num_threads(big.threads)
    first = big.models[0].cell
    dtype = getattr(torch, first["dtype"])
    tasks = [_task(TaskSpec(first["n_skills"], m.cell["complexity"], first["d_in"], first["teacher_width"],
                            seed=0)) for m in big.models]
    data = make_bundle_data(tasks, [m.cell["n_train"] for m in big.models], first["n_val"], 1, dtype,
                            big.device)
    model = init_model(first["n_experts"], first["d_in"], first["width"], [m.cell["k"] for m in big.models],
                       [0] * len(big.models), first["impl"], first["renormalize"], dtype, big.device)
    state = {name: p.detach().clone() for name, p in model.named_parameters()}

    def timed(steps: int) -> float:
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(state[name])
        t0 = time.perf_counter()
        train_bundle(model, data, TrainSettings(max_steps=steps, eval_every=10**9))
        return time.perf_counter() - t0

    timed(1)  # warm-up
    t_eval = timed(0)  # the evaluations alone (validation, train and test metrics)
    per_step = max(timed(n_steps) - t_eval, 0.0) / n_steps
    per_bundle = per_step * first["max_steps"] + t_eval * (1 + first["max_steps"] / first["eval_every"])
    return per_bundle * sum(_work(b) for b in bundles) / _work(big)


FAMILY = Family(
    name="regression", config_cls=GridConfig, validate=validate, presets="simulations.families.regression",
    default_preset="quick",
    cells=cells, group=group, order=order, train=train, required_columns=results.REQUIRED_COLUMNS,
    estimate=estimate_seconds, label=label,
)
