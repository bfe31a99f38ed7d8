"""SRAVEN learning curves: train the models of one setting and record, every E steps, whole-problem and
per-feature accuracy (and cross-entropy) on the ID and OOD sets, as one tidy table.

    python -m simulations.families.sraven.curves --out DIR [--preset NAME | --config FILE]
        [--set FIELD=VALUE ...] [--k 2 ...] [--estimator pathwise score ...] [--n-rules 2 8 ...]
        [--seeds 0 ...] [--steps N] [--eval-every E] [--n-eval N] [--device auto|cpu|cuda] [--threads N]
        [--run gpu] [--label TEXT] [--overwrite]

The setting is a SRAVEN grid config (a preset, quick by default, or a file) with `--set` overrides; the
flags --k, --estimator, --n-rules, --seeds, --steps, --n-eval, --device and --threads override its
fields of those names (every estimator's models train apart; the curves' `estimator` column says
which). With early stopping on (`--set patience=P`), the models are checked every `val_every` steps
instead of E and the curves add the validation split `val`.
`--run gpu` starts from the GPU learning-curve run of issue 22 (the paper preset's model, k = 2,
R in {2, 8}, 20,000 steps, evaluation every 500 steps, on CUDA); the other flags still override it.
Writes DIR/curves.parquet (one row per model, evaluation step and split: acc, feat_acc, ce, and the
mean training CE since the previous evaluation), DIR/rows.parquet (the trainer's final row per model)
and DIR/manifest.json (config, hash, command, device, versions, wall time, "complete"), atomically and
together; the curves so far are rewritten at every evaluation (manifest "complete": false, no rows
yet), so a run that is stopped keeps them. Bad input: a one-line error, exit status 2, nothing
written. docs/sraven.md, "Learning curves".
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from simulations import cli
from simulations.atomic import staged_files
from simulations.config import load_config, preset_names
from simulations.config_schema import ConfigError, build, flat
from simulations.driver import resolve_device
from simulations.provenance import device_name, provenance

from .config import SravenConfig
from .train import ModelSpec, SravenSettings, train_bundle

#: Named starting points (`--run`): a preset, overrides and the evaluation interval.
RUNS: dict[str, dict[str, Any]] = {
    "gpu": {"preset": "paper", "eval_every": 500,
            "set": {"k": [2], "n_rules": [2, 8], "seeds": [0], "steps": 20000, "device": "cuda"}},
}
FILES = ("curves.parquet", "rows.parquet", "manifest.json")
SPLITS = ("id", "ood", "val")  # val: the early-stopping checks' problems (with patience only)
METRICS = ("acc", "feat_acc", "ce")


def build_parser() -> argparse.ArgumentParser:
    p = cli.OneLineParser(prog="python -m simulations.families.sraven.curves",
                          description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="output directory")
    names = preset_names(__package__)
    cli.add_preset(p, names, "quick", help=f"SRAVEN preset to start from: {', '.join(names)} (default: "
                   "quick, or --run's)")
    cli.add_config(p, "quick")
    p.add_argument("--run", choices=sorted(RUNS), help="a named run to start from (see the docstring)")
    cli.add_set(p)
    p.add_argument("--k", type=int, nargs="+", help="training k (config field k)")
    p.add_argument("--estimator", nargs="+", help="how the routers learn: pathwise (default), dense_ste, "
                   "score (config field estimator; several: one curve set each)")
    p.add_argument("--n-rules", type=int, nargs="+", help="rule pool sizes R (config field n_rules)")
    p.add_argument("--seeds", type=int, nargs="+", help="seeds (config field seeds)")
    p.add_argument("--steps", type=int, help="training steps")
    p.add_argument("--n-eval", type=int, help="problems per evaluation split")
    p.add_argument("--eval-every", type=int, help="evaluate every E steps (default 100, --run's own)")
    p.add_argument("--device", help="auto, cpu or cuda")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: the config's)")
    p.add_argument("--label", default="", help="a name for this setting, stored in every row")
    p.add_argument("--overwrite", action="store_true", help="replace curves already in --out")
    return p


def load(args: argparse.Namespace) -> tuple[SravenConfig, int]:
    """The run's config and evaluation interval from the parsed flags (ConfigError on bad input)."""
    run = RUNS[args.run] if args.run else {}
    if args.preset and args.config:
        raise ConfigError("config: pass --preset or --config, not both")
    overrides = dict(run.get("set", {}))
    overrides |= cli.overrides(args)
    for field in ("k", "estimator", "n_rules", "seeds", "steps", "n_eval", "device", "threads"):
        if getattr(args, field) is not None:  # each flag sets the config field of its name
            overrides[field] = getattr(args, field)
    preset = args.preset or (None if args.config else run.get("preset"))
    config = load_config(args.config, overrides, family="sraven", preset_name=preset)
    every = args.eval_every if args.eval_every is not None else run.get("eval_every", 100)
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ConfigError(f"eval-every: expected an integer >= 1, got {every!r}")
    return config, every


def specs(config: SravenConfig) -> list[ModelSpec]:
    """Every model of the config, ordered as the grid orders them (distinct, R, seed, k)."""
    out = [ModelSpec(k=k, n_rules=r, seed=s, distinct=d, permute=config.problems.permute)
           for d in config.axes.distinct for r in config.axes.n_rules for s in config.axes.seeds
           for k in config.ks()]
    return sorted(out, key=lambda m: (-1 if m.distinct is None else m.distinct, m.n_rules, m.seed, m.k))


def tidy(history: pd.DataFrame, bundle: list[ModelSpec], batch: int) -> pd.DataFrame:
    """The trainer's history (one row per model and step) as one row per model, step and split."""
    parts = []
    for split in [s for s in SPLITS if f"acc_{s}" in history.columns]:
        part = history[["model", "step", "train_ce", "wall_s", *(f"{m}_{split}" for m in METRICS)]]
        parts.append(part.rename(columns={f"{m}_{split}": m for m in METRICS}).assign(split=split))
    long = pd.concat(parts, ignore_index=True)
    spec = pd.DataFrame([vars(m) for m in bundle]).rename_axis("model").reset_index()
    long = long.merge(spec, on="model").drop(columns="model")
    long["distinct"] = long["distinct"].astype(float)  # NaN: any, as in the store
    long["problems_seen"] = long["step"] * batch
    return long


def run(config: SravenConfig, every: int, label: str = "", out: Path | None = None
        ) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(curves, final rows, manifest) of every model of `config`, trained in bundles of at most
    max_models_per_bundle, one after another in this process. With `out`, the curves so far are written
    there at every evaluation (manifest "complete": false), so a run stopped early keeps its curves."""
    t0 = time.perf_counter()
    device = resolve_device(config.runtime.device)
    if device == "cpu" and config.runtime.threads > 0:
        torch.set_num_threads(config.runtime.threads)
    values = {**flat(config), "eval_every": every, "k_eval": False}
    runs = [(est, build(SravenSettings, {**values, "estimator": est})) for est in config.axes.estimator]
    models, size = specs(config), config.runtime.max_models_per_bundle
    hashed = config.config_hash()
    tags = {"label": label, "config_hash": hashed, "n_features": config.problems.n_features,
            "n_values": config.problems.n_values}  # every curve row: its setting and generator
    manifest = {"what": "sraven learning curves", "label": label, "config": flat(config),
                "config_hash": hashed, "eval_every": every, "command": sys.argv,
                "device": device_name(device), **provenance(), "n_models": len(models)}
    curves, rows = [], []

    def save(history: pd.DataFrame, bundle: list[ModelSpec], est: str, batch: int) -> None:
        part = pd.concat([*curves, tidy(history, bundle, batch).assign(estimator=est)], ignore_index=True)
        write(out, part.assign(**tags), None,
              manifest | {"complete": False, "wall_s": time.perf_counter() - t0})

    for (est, settings), start in itertools.product(runs, range(0, len(models), size)):
        bundle = models[start:start + size]
        hook = None if out is None else (lambda h, b=bundle, e=est, n=settings.batch: save(h, b, e, n))
        trained = train_bundle(bundle, settings, device=device, on_record=hook)
        curves.append(tidy(trained.attrs["history"], bundle, settings.batch).assign(estimator=est))
        rows.append(trained.drop(columns=["eval_every", "k_eval"]))
        rows[-1].attrs = {}  # the history is in `curves`
        last = curves[-1][curves[-1]["step"] == curves[-1]["step"].max()]
        print(last.pivot_table(index=["estimator", "n_rules", "seed", "k"], columns="split",
                               values=["feat_acc", "acc"]).round(3).to_string(), flush=True)
    curves_df = pd.concat(curves, ignore_index=True).assign(**tags)
    rows_df = pd.concat(rows, ignore_index=True).assign(label=label, config_hash=hashed)
    rows_df["distinct"] = rows_df["distinct"].astype(float)
    rows_df["n_train"] = rows_df["n_train"].astype(float)
    return curves_df, rows_df, manifest | {"complete": True, "wall_s": time.perf_counter() - t0}


def write(out: Path, curves: pd.DataFrame, rows: pd.DataFrame | None, manifest: dict) -> None:
    """The files, staged and renamed into place together (rows None: a partial run, curves so far)."""
    with staged_files(out) as stage:
        stage("curves.parquet", lambda tmp: curves.to_parquet(tmp, index=False))
        if rows is not None:
            stage("rows.parquet", lambda tmp: rows.to_parquet(tmp, index=False))
        stage("manifest.json", lambda tmp: Path(tmp).write_text(json.dumps(manifest, indent=2, default=str)))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    try:
        config, every = load(args)
        if (out / FILES[0]).exists() and not args.overwrite:
            raise ConfigError(f"out: {out} already holds curves; pass --overwrite or another --out")
        resolve_device(config.runtime.device)  # a missing CUDA device fails here, before any training
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    curves, rows, manifest = run(config, every, args.label, out)
    write(out, curves, rows, manifest)
    print(f"{manifest['n_models']} models, {manifest['wall_s']:.1f} s on {manifest['device']}; "
          f"curves in {out / FILES[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
