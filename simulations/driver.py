"""The grid driver every grid family shares: train a grid of batched models and store one row per
(cell, seed).

A family (simulations.families) gives the cells and trains a bundle; the driver groups models into
bundles of at most `max_models_per_bundle`, runs them with an executor (in-process, worker processes or
Ray) and writes each bundle's rows atomically when it finishes, so `--resume` continues a killed run with
exactly the rows an uninterrupted run has. Nothing here depends on the task: the grids' command line is
simulations.grid (the regression grid's, which SRAVEN's reuses).

Test hook: the environment variable MOE_SPARSITY_BUNDLE_DELAY (seconds) makes every bundle sleep that
long after training, so tests can kill a run between two bundles.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from simulations import results
from simulations.config_schema import ConfigError, resume_conflict, stable_hash
from simulations.executors import LocalExecutor, ProcessExecutor
from simulations.families import DEFAULT, family_of, get_family
from simulations.provenance import provenance, tree_state

DELAY_ENV = "MOE_SPARSITY_BUNDLE_DELAY"


def cells(config) -> list[dict[str, Any]]:
    """Every cell of a config's grid (its family's cells), each with its `cell_id`; seeds excluded."""
    return family_of(config).cells(config)


@dataclass
class ModelSpec:
    cell: dict[str, Any]
    seed: int

    @property
    def key(self) -> tuple[str, int]:
        return self.cell["cell_id"], self.seed


@dataclass
class Bundle:
    """Everything one worker needs to train a group of same-shape models (picklable): the family is
    named, so a spawned or Ray worker finds its trainer by importing it."""

    bundle_id: str
    models: list[ModelSpec]
    device: str
    config_hash: str
    threads: int = 1
    provenance: dict[str, str] = field(default_factory=dict)
    family: str = DEFAULT

    @property
    def name(self) -> str:
        return get_family(self.family).label(self)


def make_bundles(config, device: str, skip: set[tuple[str, int]] = frozenset()) -> list[Bundle]:
    """Group the grid's models into bundles (the family's groups, in its order), at most
    `max_models_per_bundle` each.

    Bundles are formed from the full grid first and only then filtered by `skip`, so a resumed run
    trains the same bundles (hence the same bits) as an uninterrupted one.
    """
    fam = family_of(config)
    groups: dict[tuple, list[ModelSpec]] = {}
    for cell in fam.cells(config):
        for seed in config.axes.seeds:
            groups.setdefault(fam.group(cell), []).append(ModelSpec(cell, seed))
    prov = provenance()
    bundles = []
    for specs in groups.values():
        specs.sort(key=fam.order)
        size = config.runtime.max_models_per_bundle
        for start in range(0, len(specs), size):
            chunk = specs[start:start + size]
            bid = stable_hash(sorted(m.key for m in chunk), n=12)
            todo = [m for m in chunk if m.key not in skip]
            if todo:
                bundles.append(Bundle(bid, todo, device, config.config_hash(), config.runtime.threads, prov,
                                      fam.name))
    return bundles


def run_bundle(bundle: Bundle) -> pd.DataFrame:
    """Train one bundle with its family's trainer and return its rows (one per model); top-level so
    executors can pickle it."""
    if torch.device(bundle.device).type == "cpu" and bundle.threads > 0:
        # Small batched matmuls: one thread is about as fast as two on a quiet machine and many
        # times faster on a busy one (spinning OpenMP threads contend for the cores).
        torch.set_num_threads(bundle.threads)
    rows = get_family(bundle.family).train(bundle)
    delay = float(os.environ.get(DELAY_ENV, "0") or 0)
    if delay > 0:
        time.sleep(delay)
    return rows


def resolve_device(name: str, gpus_per_bundle: float | None = None) -> str:
    """The device bundles train on. `gpus_per_bundle` is None when bundles run in this process; under a
    scheduler (Ray) it is each task's GPU share, and the device follows it rather than the driver's own
    hardware, since Ray does not hide GPUs from tasks that asked for none."""
    if gpus_per_bundle is not None:
        if name == "auto":
            return "cuda" if gpus_per_bundle > 0 else "cpu"
        if name == "cuda" and gpus_per_bundle <= 0:
            raise ConfigError("device: cuda with --executor ray needs --gpus-per-bundle > 0; "
                              "allowed: auto, cpu")
        return name
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda is not available on this machine; allowed here: auto, cpu")
    return name


def estimate_seconds(bundles: list[Bundle]) -> float:
    """Seconds to train `bundles` one after another (their family's estimate, timed on their device)."""
    return get_family(bundles[0].family).estimate(bundles) if bundles else 0.0


def _prepare_out(out: Path, resume: bool, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out: {out} exists and is not a directory")
    if out.exists() and any(out.iterdir()) and not (resume or overwrite):
        raise ConfigError(f"out: {out} is not empty; pass --resume to continue it "
                          "or --overwrite to replace it")
    if overwrite and out.exists():  # delete only what a grid writes, never other files
        for f in [*results.bundle_files(out), *out.glob(results.K_EVAL_GLOB), *out.glob(".bundle-*.tmp"),
                  *out.glob(".keval-*.tmp"), *out.glob(results.EXPERTS_GLOB), *out.glob(".experts-*.tmp"),
                  *out.glob(results.CURVES_GLOB), *out.glob(".curves-*.tmp"),
                  out / results.MANIFEST]:
            f.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def check_resumable(config, out: Path) -> None:
    """Refuse (ConfigError, one line naming the field) to resume the store at `out` with `config` unless
    it holds the same family and the same settings, but for runtime settings and axes that gain values
    (config_schema.resume_conflict): one store never mixes two settings' rows."""
    if not results.bundle_files(out):
        return  # no rows yet: nothing to mix with
    fam, manifest = family_of(config), results.read_manifest(out) or {}
    stored = manifest.get("family", DEFAULT)
    if stored != fam.name:  # never mix two families' rows in one store
        raise ConfigError(f"out: {out} holds a {stored} store; a {fam.name} grid cannot resume it "
                          "(choose another --out)")
    why = resume_conflict(config, manifest["config"]) if "config" in manifest else None
    if why:
        raise ConfigError(f"{why} (resuming {out})")


def run_grid(config, out: str | Path, resume: bool = False, overwrite: bool = False,
             executor=None, device: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Run (or continue) a grid of any family (GridConfig, SravenConfig, ...); returns a summary with
    `models`, `bundles`, `failed` (bundle names)."""
    fam = family_of(config)
    out = Path(out)
    device = resolve_device(device or config.runtime.device, getattr(executor, "gpus_per_bundle", None))
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite: pass at most one of them")
    _prepare_out(out, resume, overwrite)
    if resume:
        check_resumable(config, out)
    skip = results.done_keys(out) if resume else set()
    bundles = make_bundles(config, device, skip)
    # Every run that wrote to the store (a resume appends), so a reference can tell a store made in
    # one clean commit from one resumed across commits or from a dirty tree (fits.references). A
    # resume with nothing left to train leaves the store as it was.
    stored = results.read_manifest(out) if resume else None
    if stored is None or bundles:
        prov, state = provenance(), tree_state()
        started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        this_run = {"git_commit": prov["git_commit"], **state, "started": started}
        results.write_manifest(out, {"family": fam.name, "config": config.to_dict(),
                                     "config_hash": config.config_hash(), "device": device, **prov,
                                     **state, "runs": [*(stored or {}).get("runs", []), this_run]})
    total = sum(len(b.models) for b in bundles)
    failed: list[str] = []
    bar = tqdm(total=total, unit="model", desc=f"{fam.out_prefix}{config.runtime.name}", disable=not progress)

    def on_result(bundle: Bundle, rows: pd.DataFrame) -> None:
        results.write_bundle(out, bundle.bundle_id, rows, fam.required_columns)
        bar.update(len(bundle.models))

    def on_error(bundle: Bundle, exc: BaseException) -> None:
        failed.append(bundle.name)
        bar.write(f"bundle {bundle.name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)

    t0 = time.perf_counter()
    if executor is None:
        executor = ProcessExecutor(config.runtime.workers) if config.runtime.workers > 1 else LocalExecutor()
    executor.run(run_bundle, bundles, on_result, on_error)
    bar.close()
    return {"models": total, "bundles": len(bundles), "skipped": len(skip), "failed": failed,
            "wall_s": time.perf_counter() - t0}


def plan(config, device: str, out: Path, resume: bool) -> dict[str, Any]:
    """What a run would do: `cells`, `models` to train, `skipped` (stored), `bundles`, `seconds` (the
    family's estimate spread over the workers; an upper bound where `bound`, without early stopping)."""
    skip = set()
    if resume and out.is_dir():
        check_resumable(config, out)
        skip = results.done_keys(out)
    bundles = make_bundles(config, device, skip)
    fam = family_of(config)
    workers = 1 if fam.estimate_is_bound else min(config.runtime.workers, max(len(bundles), 1))
    return {"cells": len(cells(config)), "models": sum(len(b.models) for b in bundles), "skipped": len(skip),
            "bundles": len(bundles), "seconds": estimate_seconds(bundles) / workers, "workers": workers,
            "bound": fam.estimate_is_bound}
