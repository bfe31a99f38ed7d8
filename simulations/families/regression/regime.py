"""`python -m simulations.families.regression.regime`: where do learned routers find the teacher's skills?
(docs/tasks.md)

A sweep is a base grid config plus named variants, each a few field overrides (data size, training
length, router learning rate, load-balancing loss, logit noise, renormalization, T / S, ...). Every
variant runs as an ordinary grid into OUT/<variant>/ (so it resumes, and its rows are the grid's). The
sweep file (YAML or TOML) holds `base` (grid fields) and `variants` (a list of {name, set}); the
built-in one is simulations/families/regression/presets/regime.yaml.

The summary of the sweep (per variant, arm, complexity and n_train: routing recall and gate mass at
k = s and recall at the argmin k*, each beside its permuted-input chance level; the best test NMSE and
its ratio to the route-free baseline; k*) is an analysis of the results, so it is the fits' (block
`regime`, `fits.regime`): `python -m fits.regime OUT` writes and prints it after the sweep, and figure
`regime_map` draws it. This module only runs the grids.
"""

from __future__ import annotations

import argparse
import re
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

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
    names = " ".join(n for n, _ in variants)
    print(f"regime sweep: {names} in {args.out}; summarise it with `python -m fits.regime {args.out}`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
