"""`python -m simulations.families.regression.regime`: where do learned routers find the teacher's skills?
(docs/tasks.md)

A sweep is a base grid config plus named variants, each a few field overrides (data size, training
length, router learning rate, load-balancing loss, logit noise, renormalization, T / S, ...). Every
variant runs as an ordinary grid into OUT/<variant>/ (so it resumes, and its rows are the grid's), and
`regime_table` summarises each (variant, arm, complexity, n_train): routing recall and gate mass at
k = s, and recall at the seed-mean argmin k*, each beside its permuted-input chance level; the best test
NMSE and its ratio to the route-free baseline; and k*. The sweep file (YAML or TOML) holds `base` (grid
fields) and `variants` (a list of {name, set}); the built-in one is
simulations/families/regression/presets/regime.yaml.
"""

from __future__ import annotations

import argparse
import re
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from simulations import results
from simulations.config import read_file
from simulations.config_schema import ConfigError, flat_input
from simulations.families.regression.config import GridConfig, validate
from simulations.grid import resolve_device, run_grid

DEFAULT_OUT = Path("results/regime")
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def load_sweep(path: str | Path | None = None) -> list[tuple[str, dict[str, Any]]]:
    """The sweep's variants as (name, validated-able grid mapping) pairs, in file order."""
    if path is None:
        raw = yaml.safe_load(resources.files(__package__).joinpath("presets", "regime.yaml").read_text())
    else:
        raw = read_file(path)
    if not isinstance(raw, dict) or not isinstance(raw.get("base"), dict) \
            or not isinstance(raw.get("variants"), list) or not raw["variants"]:
        raise ConfigError("sweep: expected a mapping with 'base' (grid fields) and a non-empty "
                          "'variants' list")
    out, seen = [], set()
    for i, v in enumerate(raw["variants"]):
        if not isinstance(v, dict) or set(v) - {"name", "set"} or not isinstance(v.get("set", {}), dict):
            raise ConfigError(f"variants[{i}]: expected {{name: ..., set: {{field: value}}}}, got {v!r}")
        name = v.get("name")
        if not isinstance(name, str) or not _NAME.match(name) or name in seen:
            raise ConfigError(f"variants[{i}].name: expected a unique name of letters, digits, '.', '_', '-';"
                              f" got {name!r}")
        seen.add(name)
        mapping = {**flat_input(GridConfig, raw["base"]), **flat_input(GridConfig, v.get("set", {})),
                   "name": name}
        validate(mapping)  # every variant is checked before anything runs
        out.append((name, mapping))
    return out


def run_sweep(variants: list[tuple[str, dict[str, Any]]], out: str | Path, resume: bool = True,
              device: str | None = None, progress: bool = True) -> None:
    """Run every variant's grid into out/<name>/ (resuming what is stored)."""
    for name, mapping in variants:
        config = validate(mapping)
        run_grid(config, Path(out) / name, resume=resume, overwrite=not resume,
                 device=resolve_device(device or config.runtime.device), progress=progress)


def regime_table(out: str | Path, variants: list[str] | None = None) -> pd.DataFrame:
    """One row per (variant, router, experts, complexity, n_train): routing at k = s (seed means), the
    best seed-mean test NMSE and its ratio to the route-free baseline, and the argmin k."""
    out = Path(out)
    names = variants or sorted(p.name for p in out.iterdir() if p.is_dir() and results.bundle_files(p))
    frames = []
    for name in names:
        df = results.load(out / name)
        df = df[~df.diverged]
        keys = ["router", "experts", "complexity", "n_train"]
        curve = df.groupby([*keys, "k"], as_index=False)[
            ["test_nmse_id", "rel_nmse_id", *results.ROUTING_COLUMNS]].mean()
        at_s = curve[curve.k == curve.complexity].set_index(keys)[list(results.ROUTING_COLUMNS)]
        best = curve.loc[curve.groupby(keys)["test_nmse_id"].idxmin()].set_index(keys)
        table = pd.DataFrame({
            "k_star": best["k"], "best_nmse_id": best["test_nmse_id"],
            "best_rel_nmse_id": best["rel_nmse_id"], "routing_recall_at_k_star": best["routing_recall"],
            "routing_recall_baseline_at_k_star": best["routing_recall_baseline"],
        }).join(at_s.add_suffix("_at_s"), how="left")
        frames.append(table.reset_index().assign(variant=name, n_seeds=df.seed.nunique()))
    if not frames:
        raise FileNotFoundError(f"no regime results under {out} "
                                "(run `python -m simulations.families.regression.regime` first)")
    cols = ["variant", "router", "experts", "complexity", "n_train", "n_seeds"]
    table = pd.concat(frames, ignore_index=True)
    return table[cols + [c for c in table.columns if c not in cols]]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simulations.families.regression.regime",
                                description=__doc__.splitlines()[0])
    p.add_argument("--config", help="sweep file (default: the built-in "
                                    "simulations/families/regression/presets/regime.yaml)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="output directory (default %(default)s)")
    p.add_argument("--only", nargs="+", metavar="NAME", help="run only these variants")
    p.add_argument("--overwrite", action="store_true", help="retrain instead of resuming")
    p.add_argument("--device", help="auto, cpu or cuda (overrides the sweep)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    try:
        variants = load_sweep(args.config)
        if args.only:
            unknown = sorted(set(args.only) - {n for n, _ in variants})
            if unknown:
                raise ConfigError(f"only: unknown variant {unknown[0]!r}; allowed: "
                                  f"{', '.join(n for n, _ in variants)}")
            variants = [v for v in variants if v[0] in args.only]
        run_sweep(variants, args.out, resume=not args.overwrite, device=args.device,
                  progress=not args.no_progress)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    table = regime_table(args.out, [n for n, _ in variants])
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
