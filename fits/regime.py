"""The regime summary (docs/tasks.md, "Regime map"): where the routed arms of a store find the
teacher's skills. `python -m fits.regime [SWEEP] [--out DIR]` stacks it over a regime sweep.

One row per (store, routed arm, task, n_experts, width, n_train, complexity s), from the seed means of
each k (diverged runs left out):
- `routing_recall_at_s`, `routing_gate_mass_at_s` and their permuted-input chance levels
  (`routing_recall_baseline_at_s`, `routing_gate_mass_baseline_at_s`): does the arm route to the active
  skills when it may select s experts;
- `k_star`: the argmin over k of the seed-mean ID NMSE; `best_nmse_id` that minimum, `best_rel_nmse_id`
  the seed-mean NMSE relative to the route-free baseline there (below 1: better than the best fixed mix
  of the true skills), and `routing_recall_at_k_star` with its chance level;
- `variant`: the store's name (its manifest's config name, else its directory's), so the summaries of
  a sweep's stores stack into one table.

This is the gate map's analysis (`fits.gate_map.gate_map`: the same routed arms, cells, seed means and
argmin k*) read at other columns of the store, not a second analysis. Block `regime` writes it for one
store as `regime.parquet`; `python -m fits.regime` reads a sweep (the layout
`python -m simulations.families.regression.regime` writes: one store per variant, SWEEP/<variant>/),
stacks the variants' summaries into one `regime.parquet` of the same columns in DIR, and prints it.
Figure `regime_map` draws either.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from fits.data import FitInputError, load_results
from fits.gate_map import CELL, gate_map
from simulations.atomic import atomic_write, unwritable_dir
from simulations.results import ROUTING_COLUMNS, bundle_files, read_manifest

DEFAULT_SWEEP = Path("results/regime")
DEFAULT_OUT = Path("results/fits-regime")
TABLE = "regime.parquet"
#: The seed means read at k = s and at the arm's k*: {store column: table column}.
AT_S = {c: f"{c}_at_s" for c in ROUTING_COLUMNS}
AT_K_STAR = {"rel_nmse_id": "best_rel_nmse_id", "routing_recall": "routing_recall_at_k_star",
             "routing_recall_baseline": "routing_recall_baseline_at_k_star"}
COLUMNS = ["variant", "arm", "router", "experts", *CELL, "n_seeds", "k_star", "best_nmse_id",
           *AT_K_STAR.values(), *AT_S.values()]


def store_name(path: str | Path) -> str:
    """A store's name: the config name its manifest records (a sweep variant's name, a preset's), else
    its directory's name."""
    path = Path(path)
    manifest = (read_manifest(path) if path.is_dir() else None) or {}
    name = (manifest.get("config") or {}).get("name")
    return str(name) if name else (path.name if path.is_dir() else path.stem)


def regime_table(rows: pd.DataFrame, variant: str) -> pd.DataFrame:
    """The summary of one store's checked rows (module docstring), in COLUMNS; empty without routed
    rows. Point estimates only: the gate map's seed resamples are not drawn (n_boot = 0)."""
    table = gate_map(rows, n_boot=0, at_s=AT_S, at_k_star=AT_K_STAR)
    if table.empty:
        return pd.DataFrame(columns=COLUMNS)
    return table.rename(columns={"k_star_id": "k_star"}).assign(variant=variant)[COLUMNS]


def sweep_table(sweep: str | Path, variants: list[str] | None = None) -> pd.DataFrame:
    """The summaries of a sweep's stores stacked in one table: every subdirectory of `sweep` holding
    bundle files (name order), or only `variants`; a FitInputError when there is none."""
    sweep = Path(sweep)
    if variants is None:
        variants = sorted(p.name for p in sweep.iterdir() if p.is_dir() and bundle_files(p)) \
            if sweep.is_dir() else []
    if not variants:
        raise FitInputError(f"no regime results under {sweep} "
                            "(run `python -m simulations.families.regression.regime` first)")
    frames = [regime_table(load_results(sweep / name), store_name(sweep / name)) for name in variants]
    table = pd.concat(frames, ignore_index=True)
    if table.empty:
        raise FitInputError(f"the stores under {sweep} hold no routed arm with routing controls")
    return table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fits.regime",
                                description="The regime summary of every variant of a regime sweep, "
                                            f"stacked in one {TABLE}.")
    p.add_argument("sweep", nargs="?", default=str(DEFAULT_SWEEP),
                   help="the sweep's directory, one store per variant (default %(default)s)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="output directory (default %(default)s)")
    p.add_argument("--only", nargs="+", metavar="NAME", help="only these variants")
    args = p.parse_args(argv)
    try:
        problem = unwritable_dir(args.out)
        if problem:
            raise FitInputError(f"--out {args.out}: {problem}")
        table = sweep_table(args.sweep, args.only)
    except (FitInputError, OSError) as exc:
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.drop(columns=["arm", "task", "width"]).round(3).to_string(index=False))
    path = atomic_write(Path(args.out) / TABLE, lambda tmp: table.to_parquet(tmp, index=False))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
