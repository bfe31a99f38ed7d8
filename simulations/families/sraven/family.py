"""The SRAVEN family: cells, bundles and rows of `python -m simulations.families.sraven` (docs/sraven.md).

A cell is (k, n_rules R, distinct, estimator, permute and every model/training setting); `cell_id`
hashes it with "family": "sraven", so it can never equal a regression cell. All cells share one model
shape; models of one estimator may share a bundle, ordered by (distinct, R, seed, k), so that the k
sweep of one (R, seed) sits in one bundle where it fits: those models share one problem stream (drawn
once per step) and one init. Every row follows the store contract in docs/store.md ("SRAVEN stores").
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
import torch

from simulations.config_schema import build, cell_fields, flat, grouping, stable_hash, without_since
from simulations.families import SRAVEN, Family
from simulations.provenance import device_name
from simulations.results import CURVE_PREFIX

from .config import SravenConfig, validate
from .train import ModelSpec, SravenSettings, train_bundle


def cells(config: SravenConfig) -> list[dict[str, Any]]:
    """Every cell as a canonical dict including its `cell_id` (seeds excluded): the family, the flat
    names of the problems', training and model settings, and one value per axis."""
    values = flat(config)
    shared = {"family": "sraven", **{f: values[f] for f in cell_fields(SravenConfig)}}
    out = []
    for estimator in config.axes.estimator:
        for distinct in config.axes.distinct:
            for n_rules in config.axes.n_rules:
                for k in config.ks():
                    cell = {**shared, "n_rules": n_rules, "distinct": distinct, "k": k,
                            "estimator": estimator}
                    # settings at the value older stores implied stay out of the id (config_schema `since`)
                    out.append({"cell_id": stable_hash(without_since(SravenConfig, cell)), **cell})
    return out


group = grouping(SravenConfig)  # the estimator: one bundle per estimator (one model shape for the whole grid)


def order(spec) -> tuple:
    d = spec.cell["distinct"]
    return -1 if d is None else d, spec.cell["n_rules"], spec.seed, spec.cell["k"]


def label(bundle) -> str:
    rs = sorted({m.cell["n_rules"] for m in bundle.models})
    seeds = sorted({m.seed for m in bundle.models})
    return f"{bundle.bundle_id} (R={','.join(map(str, rs))}, seeds={','.join(map(str, seeds))}, " \
           f"{len(bundle.models)} models)"


def _specs(bundle) -> list[ModelSpec]:
    return [ModelSpec(k=m.cell["k"], n_rules=m.cell["n_rules"], seed=m.seed, distinct=m.cell["distinct"],
                      permute=m.cell["permute"]) for m in bundle.models]


def _settings(bundle, **changes) -> SravenSettings:
    return build(SravenSettings, {**bundle.models[0].cell, **changes})


def train(bundle) -> pd.DataFrame:
    """Train one bundle on its device and return its rows (the store contract's columns)."""
    device = torch.device(bundle.device)
    rows = train_bundle(_specs(bundle), _settings(bundle), device=device)
    history = rows.attrs.pop("history", None)  # with early stopping: the curves, kept as list columns
    rows = rows.drop(columns=["eval_every", "k_eval"])  # trainer switches; the k_eval arrays are kept
    if history is not None:
        per_model = history.sort_values(["model", "step"], kind="stable").groupby("model")
        for name in history.columns.drop("model"):
            rows[f"{CURVE_PREFIX}{name}"] = [g[name].to_numpy() for _, g in per_model]
    rows.insert(0, "cell_id", [m.cell["cell_id"] for m in bundle.models])
    rows.insert(0, "family", "sraven")
    rows["impl"] = bundle.models[0].cell["impl"]
    # None means "any" / "fresh problems": NaN in a float column, so every bundle has the same types
    rows["distinct"] = rows["distinct"].astype(float)
    rows["n_train"] = rows["n_train"].astype(float)
    rows["bundle_id"] = bundle.bundle_id
    extra = {**bundle.provenance, "device": device_name(device), "config_hash": bundle.config_hash}
    for key, value in extra.items():
        rows[key] = value
    return rows


def estimate_seconds(bundles: list, n_steps: int = 3, n_eval: int = 64) -> float:
    """Seconds to train `bundles` one after another, timed on their device per estimator (their costs per
    step differ): its largest bundle trains 1 and 1 + n_steps steps evaluating n_eval problems per
    split (after a warm-up run); the step time scales with the steps (the cap `steps` with early
    stopping: every model trained to it), the rest (set-up, evaluation) with n_eval and, with early
    stopping, with the number of checks; bundles scale with their models."""
    by_estimator: dict[str, list] = {}
    for b in bundles:
        by_estimator.setdefault(b.models[0].cell["estimator"], []).append(b)
    return sum(_estimate_group(group, n_steps, n_eval) for group in by_estimator.values())


def _estimate_group(bundles: list, n_steps: int, n_eval: int) -> float:
    big = max(bundles, key=lambda b: len(b.models))
    device = torch.device(big.device)
    if device.type == "cpu" and big.threads > 0:
        torch.set_num_threads(big.threads)
    specs, first = _specs(big), big.models[0].cell
    small = min(n_eval, first["n_eval"])

    def timed(steps: int, **changes) -> float:
        t0 = time.perf_counter()
        train_bundle(specs, _settings(big, steps=steps, n_eval=small, **changes), device=device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    timed(1, patience=0)  # warm-up (caches, kernels)
    t_one = timed(1, patience=0)
    t_more = timed(1 + n_steps, patience=0)
    per_step = max(t_more - t_one, 0.0) / n_steps
    rest = max(t_one - per_step, 0.0) * first["n_eval"] / small
    per_bundle = per_step * first["steps"] + rest
    if first["patience"]:  # early stopping: a check (3 evaluations) every val_every steps and at the end
        per_check = max(timed(1 + n_steps, val_every=1) - t_more, 0.0) / (n_steps + 2)
        per_bundle += per_check * first["n_eval"] / small * (first["steps"] // first["val_every"] + 1)
    return per_bundle * sum(len(b.models) for b in bundles) / len(big.models)


FAMILY = Family(
    name=SRAVEN, config_cls=SravenConfig, validate=validate, presets="simulations.families.sraven",
    default_preset="quick", cells=cells, group=group, order=order, train=train,
    estimate=estimate_seconds, label=label, out_prefix="sraven-",
)
