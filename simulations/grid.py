"""`python -m simulations.grid`: train a grid of batched models and store one row per (cell, seed).

The grids' command line: the regression grid of top-k MoE students (simulations.families.regression,
`--preset NAME`: the presets in that package's presets/) by default, and SRAVEN's
(`python -m simulations.families.sraven`) with its family passed in. It parses and validates everything,
then describes (`--dry-run`) or runs the grid with the shared driver (simulations.driver: bundles,
executors, the store, `--resume`). The driver's names are re-exported here, where tests, bench/grid.py
and older scripts import them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from simulations.cli import OneLineParser, add_config_options, overrides
from simulations.config import load_config, parse_seeds, preset_names
from simulations.config_schema import ConfigError
from simulations.driver import (
    DELAY_ENV,
    Bundle,
    ModelSpec,
    cells,
    check_resumable,
    estimate_seconds,
    make_bundles,
    plan,
    resolve_device,
    run_bundle,
    run_grid,
)
from simulations.families import DEFAULT, Family, get_family
from simulations.ray_executor import RayExecutor  # cheap: Ray itself is imported when one is built

__all__ = ["DELAY_ENV", "Bundle", "ConfigError", "ModelSpec", "build_parser", "cells", "check_resumable",
           "config_from_args", "estimate_seconds", "load_config", "main", "make_bundles", "plan",
           "print_plan", "resolve_device", "run_bundle", "run_grid"]


def build_parser(fam: Family | None = None, prog: str = "python -m simulations.grid",
                 description: str | None = None) -> argparse.ArgumentParser:
    """The CLI of a family's grid (the regression grid's by default): `--preset` (the family's presets),
    `--config`, `--set` and the driver's options."""
    fam = fam or get_family(DEFAULT)
    p = OneLineParser(prog=prog, description=description or __doc__.split("\n")[0])
    add_config_options(p, preset_names(fam.presets), fam.default_preset)
    p.add_argument("--out", help=f"results directory (default: results/{fam.out_prefix}<name>/)")
    p.add_argument("--resume", action="store_true", help="continue a store: skip the (cell, seed) rows "
                   "already stored; its settings must match (axes may gain values)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing results directory")
    p.add_argument("--device", help="auto, cpu or cuda (overrides the config)")
    p.add_argument("--dry-run", action="store_true", help="print cells, models, bundles and a time estimate")
    p.add_argument("--seeds", help="N (seeds 0..N-1), A:B or A,B,C")
    p.add_argument("--executor", default="local", help="local or ray")
    p.add_argument("--workers", type=int, help="local executor: bundles trained at once in separate "
                   "processes (overrides the config's workers)")
    p.add_argument("--address", default="auto", help="Ray cluster address (executor ray)")
    p.add_argument("--gpus-per-bundle", type=float, default=0.0, help="GPUs per bundle (executor ray)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def config_from_args(args: argparse.Namespace, fam: Family):
    """The config a parsed grid command line asks for (ConfigError on a bad one)."""
    changes = overrides(args)
    if args.seeds is not None:
        changes["seeds"] = parse_seeds(args.seeds)
    if args.device is not None:
        changes["device"] = args.device
    if args.workers is not None:
        changes["workers"] = args.workers
    return load_config(args.config, changes, family=fam.name, preset_name=args.preset)


def print_plan(p: dict, device: str) -> None:
    """The dry run's two lines: what would train, and how long it would take."""
    print(f"cells: {p['cells']}  models: {p['models']} (skipping {p['skipped']} stored)  "
          f"bundles: {p['bundles']}  device: {device}")
    if p["bound"]:
        print(f"estimated time: at most {p['seconds']:.0f} s (without early stopping)")
    else:
        serial, w = p["seconds"] * p["workers"], p["workers"]
        print(f"estimated time: {serial:.0f} s one bundle after another on {device}"
              + (f", about {p['seconds']:.0f} s with {w} workers" if w > 1 else ""))


def main(argv: list[str] | None = None, family: str = DEFAULT, parser=None) -> int:
    """The CLI of `family`'s grid: parse, validate everything, then run or (--dry-run) describe it."""
    fam = get_family(family)
    args = (parser or build_parser(fam)).parse_args(argv)
    try:
        config = config_from_args(args, fam)
        if args.executor not in ("local", "ray"):
            raise ConfigError(f"executor: expected one of local, ray; got {args.executor!r}")
        if args.gpus_per_bundle < 0:
            raise ConfigError(f"gpus-per-bundle: expected a number >= 0, got {args.gpus_per_bundle}")
        gpus = args.gpus_per_bundle if args.executor == "ray" else None
        device = resolve_device(config.runtime.device, gpus)
        out = Path(args.out or f"results/{fam.out_prefix}{config.runtime.name}")
        if args.dry_run:
            print_plan(plan(config, device, out, args.resume), device)
            return 0
        executor = None
        if args.executor == "ray":
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
    sys.exit(main())
