"""`python -m simulations.grid`: train the grid of top-k MoE students and store one row per (cell, seed).

A cell is one point of the grid (task fields, complexity, n_experts, k, n_train, width and the training
settings); `cell_id` hashes its canonical form. Models of equal shape (n_experts, width, d_in) are
grouped into bundles trained together (`simulations.train`); each bundle's rows are written atomically
when it finishes, so `--resume` continues a killed run with exactly the rows an uninterrupted run has.

Every random number of a model comes from (seed, cell): the task instance and its data from
(seed, task fields, complexity), the student's init from (seed, n_experts, width, d_in), so all k of
one (seed, task) start from the same weights and see the same data (a paired comparison across k).

Test hook: the environment variable MOE_SPARSITY_BUNDLE_DELAY (seconds) makes every bundle sleep that
long after training, so tests can kill a run between two bundles.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from simulations import results
from simulations.config import (
    ROUTER_INIT,
    ROUTER_SETTINGS,
    ConfigError,
    GridConfig,
    load_config,
    parse_override,
    parse_seeds,
    stable_hash,
    without_later_defaults,
)
from simulations.executors import LocalExecutor, ProcessExecutor
from simulations.provenance import device_name, provenance
from simulations.tasks import CompositionalTask, TaskSpec
from simulations.train import TrainSettings, init_model, make_bundle_data, train_bundle

TASK_FIELDS = ("n_skills", "d_in", "teacher_width", "noise", "holdout_frac")
TRAIN_FIELDS = ("lr", "max_steps", "eval_every", "patience", "clip_norm", *ROUTER_SETTINGS, *ROUTER_INIT,
                "n_val", "n_test")
SETTINGS_FIELDS = ("lr", "max_steps", "eval_every", "patience", "clip_norm", "router", "experts",
                   *ROUTER_SETTINGS)
DELAY_ENV = "MOE_SPARSITY_BUNDLE_DELAY"


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


@dataclass
class ModelSpec:
    cell: dict[str, Any]
    seed: int

    @property
    def key(self) -> tuple[str, int]:
        return self.cell["cell_id"], self.seed


@dataclass
class Bundle:
    """Everything one worker needs to train a group of same-shape models (picklable)."""

    bundle_id: str
    models: list[ModelSpec]
    device: str
    config_hash: str
    threads: int = 1
    provenance: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        c = self.models[0].cell
        arm = "" if (c["router"], c["experts"]) == ("learned", "learned") else \
            f", router={c['router']}, experts={c['experts']}"
        return f"{self.bundle_id} (T={c['n_experts']}, h={c['width']}{arm}, {len(self.models)} models)"


def make_bundles(config: GridConfig, device: str, skip: set[tuple[str, int]] = frozenset()) -> list[Bundle]:
    """Group the grid's models into bundles of equal shape and arm, at most `max_models_per_bundle` each.

    Bundles are formed from the full grid first and only then filtered by `skip`, so a resumed run
    trains the same bundles (hence the same bits) as an uninterrupted one.
    """
    groups: dict[tuple, list[ModelSpec]] = {}
    for cell in cells(config):
        for seed in config.seeds:
            key = (cell["n_experts"], cell["width"], cell["router"], cell["experts"])
            groups.setdefault(key, []).append(ModelSpec(cell, seed))
    prov = provenance()
    bundles = []
    for specs in groups.values():
        # Neighbours in n_train share a bundle, so little compute goes to padding.
        specs.sort(key=lambda m: (m.cell["n_train"], m.cell["complexity"], m.seed, m.cell["k"]))
        size = config.max_models_per_bundle
        for start in range(0, len(specs), size):
            chunk = specs[start:start + size]
            bid = stable_hash(sorted(m.key for m in chunk), n=12)
            todo = [m for m in chunk if m.key not in skip]
            if todo:
                bundles.append(Bundle(bid, todo, device, config.config_hash(), config.threads, prov))
    return bundles


def _init_seed(seed: int, cell: dict[str, Any]) -> int:
    key = [seed, cell["n_experts"], cell["width"], cell["d_in"]]
    return int(np.random.SeedSequence(key).generate_state(1, dtype=np.uint64)[0] >> 1)


@lru_cache(maxsize=64)
def _task(spec: TaskSpec) -> CompositionalTask:
    return CompositionalTask(spec)


def run_bundle(bundle: Bundle) -> pd.DataFrame:
    """Train one bundle and return its rows (one per model); top-level so executors can pickle it."""
    device = torch.device(bundle.device)
    if device.type == "cpu" and bundle.threads > 0:
        # Small batched matmuls: one thread is about as fast as two on a quiet machine and many
        # times faster on a busy one (spinning OpenMP threads contend for the cores).
        torch.set_num_threads(bundle.threads)
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
    delay = float(os.environ.get(DELAY_ENV, "0") or 0)
    if delay > 0:
        time.sleep(delay)
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


def _work(bundle: Bundle) -> float:
    """Relative cost of a bundle: models x padded points x expert parameters x steps."""
    c = bundle.models[0].cell
    n = max(m.cell["n_train"] for m in bundle.models) + c["n_val"] / c["eval_every"]
    return len(bundle.models) * n * c["n_experts"] * c["width"] * (c["d_in"] + 2) * c["max_steps"]


def estimate_seconds(bundles: list[Bundle], n_steps: int = 10) -> float:
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


def _prepare_out(out: Path, resume: bool, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out: {out} exists and is not a directory")
    if out.exists() and any(out.iterdir()) and not (resume or overwrite):
        raise ConfigError(f"out: {out} is not empty; pass --resume to continue it "
                          "or --overwrite to replace it")
    if overwrite and out.exists():  # delete only what a grid writes, never other files
        for f in [*results.bundle_files(out), *out.glob(results.K_EVAL_GLOB), *out.glob(".bundle-*.tmp"),
                  *out.glob(".keval-*.tmp"), out / results.MANIFEST]:
            f.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def run_grid(config: GridConfig, out: str | Path, resume: bool = False, overwrite: bool = False,
             executor=None, device: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Run (or continue) a grid; returns a summary with `models`, `bundles`, `failed` (bundle names)."""
    out = Path(out)
    device = resolve_device(device or config.device, getattr(executor, "gpus_per_bundle", None))
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite: pass at most one of them")
    _prepare_out(out, resume, overwrite)
    skip = results.done_keys(out) if resume else set()
    bundles = make_bundles(config, device, skip)
    results.write_manifest(out, {"config": config.to_dict(), "config_hash": config.config_hash(),
                                 "device": device, **provenance()})
    total = sum(len(b.models) for b in bundles)
    failed: list[str] = []
    bar = tqdm(total=total, unit="model", desc=f"grid {config.name}", disable=not progress)

    def on_result(bundle: Bundle, rows: pd.DataFrame) -> None:
        results.write_bundle(out, bundle.bundle_id, rows)
        bar.update(len(bundle.models))

    def on_error(bundle: Bundle, exc: BaseException) -> None:
        failed.append(bundle.name)
        bar.write(f"bundle {bundle.name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)

    t0 = time.perf_counter()
    if executor is None:
        executor = ProcessExecutor(config.workers) if config.workers > 1 else LocalExecutor()
    executor.run(run_bundle, bundles, on_result, on_error)
    bar.close()
    return {"models": total, "bundles": len(bundles), "skipped": len(skip), "failed": failed,
            "wall_s": time.perf_counter() - t0}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        self.exit(2, f"error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m simulations.grid", description=__doc__.split("\n")[0])
    p.add_argument("--config", help="YAML or TOML grid config (default: the built-in quick preset)")
    p.add_argument("--out", help="results directory (default: results/<name>/)")
    p.add_argument("--resume", action="store_true", help="skip the (cell, seed) rows already stored")
    p.add_argument("--overwrite", action="store_true", help="replace an existing results directory")
    p.add_argument("--device", help="auto, cpu or cuda (overrides the config)")
    p.add_argument("--dry-run", action="store_true", help="print cells, models, bundles and a time estimate")
    p.add_argument("--seeds", help="N (seeds 0..N-1), A:B or A,B,C")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override one config field (value read as YAML), e.g. --set max_steps=500")
    p.add_argument("--executor", default="local", help="local or ray")
    p.add_argument("--workers", type=int, help="local executor: bundles trained at once in separate "
                   "processes (overrides the config's workers; default 1)")
    p.add_argument("--address", default="auto", help="Ray cluster address (executor ray)")
    p.add_argument("--gpus-per-bundle", type=float, default=0.0, help="GPUs per bundle (executor ray)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        overrides = dict(parse_override(item) for item in args.set)
        if args.seeds is not None:
            overrides["seeds"] = parse_seeds(args.seeds)
        if args.device is not None:
            overrides["device"] = args.device
        if args.workers is not None:
            overrides["workers"] = args.workers
        config = load_config(args.config, overrides)
        if args.executor not in ("local", "ray"):
            raise ConfigError(f"executor: expected one of local, ray; got {args.executor!r}")
        if args.gpus_per_bundle < 0:
            raise ConfigError(f"gpus-per-bundle: expected a number >= 0, got {args.gpus_per_bundle}")
        device = resolve_device(config.device, args.gpus_per_bundle if args.executor == "ray" else None)
        out = Path(args.out or f"results/{config.name}")
        if args.dry_run:
            skip = results.done_keys(out) if args.resume and out.is_dir() else set()
            bundles = make_bundles(config, device, skip)
            n_models = sum(len(b.models) for b in bundles)
            print(f"cells: {len(cells(config))}  models: {n_models} (skipping {len(skip)} stored)  "
                  f"bundles: {len(bundles)}  device: {device}")
            print(f"estimated time: at most {estimate_seconds(bundles):.0f} s (without early stopping)")
            return 0
        executor = None
        if args.executor == "ray":
            from simulations.ray_executor import RayExecutor

            executor = RayExecutor(address=args.address, gpus_per_bundle=args.gpus_per_bundle)
        summary = run_grid(config, out, resume=args.resume, overwrite=args.overwrite, executor=executor,
                           device=device, progress=not args.no_progress)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rate = summary["models"] / summary["wall_s"] if summary["wall_s"] > 0 else float("nan")
    print(f"{summary['models']} models in {summary['bundles']} bundles, {summary['wall_s']:.1f} s "
          f"({rate:.2f} models/s); {summary['skipped']} already stored; results in {out}/")
    if summary["failed"]:
        print(f"error: {len(summary['failed'])} bundle(s) failed: {'; '.join(summary['failed'])}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    # Re-import so executors pickle simulations.grid.run_bundle, which Ray workers can import, not __main__'s.
    from simulations.grid import main as _main

    sys.exit(_main())
