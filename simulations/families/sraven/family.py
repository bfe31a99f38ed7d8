"""The SRAVEN family: cells, bundles and rows of `python -m simulations.families.sraven` (docs/sraven.md).

A cell is (k, n_rules R, distinct, permute and every model/training setting); `cell_id` hashes it with
"family": "sraven", so it can never equal a regression cell. All cells share one model shape, so any of
them may share a bundle; models are ordered by (distinct, R, seed, k), so that the k sweep of one
(R, seed) sits in one bundle where it fits: those models share one problem stream (drawn once per
step) and one init. Every row follows the store contract in docs/store.md ("SRAVEN stores").
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
import torch

from simulations.config_schema import build, cell_fields, flat, grouping, stable_hash, without_since
from simulations.families import SRAVEN, Family
from simulations.provenance import device_name

from .config import SravenConfig, validate
from .train import ModelSpec, SravenSettings, train_bundle


def cells(config: SravenConfig) -> list[dict[str, Any]]:
    """Every cell as a canonical dict including its `cell_id` (seeds excluded): the family, the flat
    names of the problems', training and model settings, and one value per axis."""
    values = flat(config)
    shared = {"family": "sraven", **{f: values[f] for f in cell_fields(SravenConfig)}}
    out = []
    for distinct in config.axes.distinct:
        for n_rules in config.axes.n_rules:
            for k in config.ks():
                cell = {**shared, "n_rules": n_rules, "distinct": distinct, "k": k}
                # settings at the value older stores implied stay out of the id (config_schema `since`)
                out.append({"cell_id": stable_hash(without_since(SravenConfig, cell)), **cell})
    return out


group = grouping(SravenConfig)  # no setting is marked `group`: one model shape for the whole grid


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
    rows = rows.drop(columns=["eval_every", "k_eval"])  # trainer switches; the k_eval arrays are kept
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
    """Seconds to train `bundles` one after another, timed on their device: the largest bundle trains
    1 and 1 + n_steps steps evaluating n_eval problems per split (after a warm-up run); the step time
    scales with the steps, the rest (set-up, evaluation) with n_eval, and bundles with their models."""
    if not bundles:
        return 0.0
    big = max(bundles, key=lambda b: len(b.models))
    device = torch.device(big.device)
    if device.type == "cpu" and big.threads > 0:
        torch.set_num_threads(big.threads)
    specs, first = _specs(big), big.models[0].cell
    small = min(n_eval, first["n_eval"])

    def timed(steps: int) -> float:
        t0 = time.perf_counter()
        train_bundle(specs, _settings(big, steps=steps, n_eval=small), device=device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    timed(1)  # warm-up (caches, kernels)
    t_one = timed(1)
    per_step = max(timed(1 + n_steps) - t_one, 0.0) / n_steps
    rest = max(t_one - per_step, 0.0) * first["n_eval"] / small
    per_bundle = per_step * first["steps"] + rest
    return per_bundle * sum(len(b.models) for b in bundles) / len(big.models)


FAMILY = Family(
    name=SRAVEN, config_cls=SravenConfig, validate=validate, presets="simulations.families.sraven",
    default_preset="quick", cells=cells, group=group, order=order, train=train,
    estimate=estimate_seconds, label=label, out_prefix="sraven-",
)
