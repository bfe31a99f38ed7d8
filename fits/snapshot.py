"""A reference result: one fits run of one store, with what reproduces it (written by fits.references).

docs/reference/<name>/ holds the fits run's `cells.csv`, `optimal_k.json` and `report.md`; `means.csv`,
the store's seed-mean of every result number per cell, at full precision; `rows.sha256.csv`, a digest
of each row's result numbers (what the reproduction test compares bit for bit); and `provenance.json`:
the store's manifest (config, commit, versions, device, every run), the machine, the grid's wall time,
the commands, and the commit the fits ran at; for a store with learning curves (SRAVEN with early
stopping) `curves.csv`, the curve of every model the fit read (`CURVE_COLUMNS`, 4 significant digits:
for reading and drawing, not for bit-for-bit checks). It is refused unless the tree is clean and every run of
the store was made from a clean tree at the commit its rows record, so one commit reproduces it. Files
land together (atomically) or not at all.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
from pathlib import Path

import numpy as np
import pandas as pd

from fits.data import FitInputError
from fits.options import FitOptions
from simulations import results
from simulations.atomic import staged_files
from simulations.provenance import git_commit, tree_state

FILES = ("cells.csv", "optimal_k.json", "report.md")
OUTPUTS = "docs/reference"  # what `make reference` writes, one directory after another
# Row columns that are not results: timings differ run to run.
NOT_RESULTS = ("wall_s",)
# The curve columns a reference ships (simulations.results.load_curves), where the store has them.
CURVE_COLUMNS = ("cell_id", "seed", "step", "acc_id", "acc_ood", "acc_val", "feat_acc_id", "feat_acc_ood",
                 "feat_acc_val", "train_ce")


def machine() -> dict:
    """The machine the numbers came from, as far as Python can tell."""
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count()}


def result_columns(rows: pd.DataFrame) -> list[str]:
    """The rows' float result columns, in row order: every deterministic number (timings left out)."""
    return [c for c in rows.columns if rows[c].dtype.kind == "f" and c not in NOT_RESULTS]


def _exact_mean(values: pd.Series) -> float:
    """Mean of the non-NaN values with an exactly rounded sum (math.fsum): the same bits whatever the
    order or the other groups (pandas' grouped mean is not, for one group alone against many)."""
    v = values.dropna().to_numpy(dtype=float)
    return math.fsum(v) / len(v) if len(v) else float("nan")


def cell_means(rows: pd.DataFrame) -> pd.DataFrame:
    """Seed-mean of every float result column per cell, with the number of seeds: what a rerun of any
    of the cells must give bit for bit."""
    cols = result_columns(rows)
    groups = rows.groupby("cell_id", sort=True)
    return groups[cols].agg(_exact_mean).assign(n_seeds=groups.size()).reset_index()


def row_digests(rows: pd.DataFrame) -> pd.DataFrame:
    """(cell_id, seed, bundle_id, wall_s, sha256 of the row's float result columns as float64 bytes):
    what a rerun of any bundle of the store must give bit for bit, and the time each took (so the
    reproduction test can pick a quick bundle; tests/fits/test_reference_slices.py)."""
    cols = sorted(result_columns(rows))
    values = rows[cols].to_numpy(dtype=np.float64)
    values = np.where(np.isnan(values), np.nan, values)  # one NaN pattern
    digests = [hashlib.sha256(v.tobytes()).hexdigest()[:32] for v in values]
    wall = rows["wall_s"] if "wall_s" in rows else np.nan
    out = pd.DataFrame({"cell_id": rows["cell_id"], "seed": rows["seed"], "bundle_id": rows["bundle_id"],
                        "wall_s": wall, "sha256": digests})
    return out.sort_values(["cell_id", "seed"], kind="stable").reset_index(drop=True)


def store_problem(manifest: dict, rows: pd.DataFrame) -> str | None:
    """Why the store cannot back a reference (None when it can): a run from a dirty tree or none
    recorded, runs at several commits, or rows from a commit other than the runs'."""
    runs = manifest.get("runs") or []
    if not runs:
        return "its manifest records no runs (made before provenance recorded the tree state)"
    dirty = [r["started"] for r in runs if r.get("git_clean") is not True]
    if dirty:
        return f"run(s) started {', '.join(dirty)} came from a tree with uncommitted changes"
    commits = {r["git_commit"] for r in runs} | set(rows["git_commit"].unique())
    if len(commits) != 1:
        return f"its runs and rows span commits {', '.join(sorted(c[:9] for c in commits))}"
    return None


def snapshot(fits_dir: Path, store: Path, wall_s: float | None, grid_command: str,
             fit_command: str) -> dict[str, str]:
    """{file name: text} of the reference result (see module doc); FitInputError when an input is
    missing or the tree or the store is not clean."""
    missing = [f for f in FILES if not (fits_dir / f).is_file()]
    if missing:
        raise FitInputError(f"fits dir {fits_dir} lacks {', '.join(missing)} (run python -m fits.optimal_k)")
    manifest = results.read_manifest(store) if store.is_dir() else None
    if manifest is None:
        raise FitInputError(f"store {store} has no manifest.json")
    state = tree_state(outputs=(OUTPUTS,))
    if state["git_clean"] is not True:
        raise FitInputError("the working tree has uncommitted changes (outside docs/reference/): commit "
                            "them, then make the reference")
    rows = results.load(store)
    problem = store_problem(manifest, rows)
    if problem:
        raise FitInputError(f"store {store}: {problem}; rerun it from a clean tree")
    prov = {"store": str(store), "fits": str(fits_dir), "command": grid_command, "fit_command": fit_command,
            "wall_s": wall_s, "fits_commit": git_commit(), "machine": machine(), "manifest": manifest}
    curves = results.load_curves(store)
    if not curves.empty:  # the fit's models only (its --where)
        where = json.loads((fits_dir / "optimal_k.json").read_text()).get("where", [])
        curves = FitOptions(where=tuple(where)).select(curves)
    shipped = {} if curves.empty else {"curves.csv": curves[[c for c in CURVE_COLUMNS if c in curves]].to_csv(
        index=False, float_format="%.4g")}
    return ({f: (fits_dir / f).read_text() for f in FILES}
            | {"means.csv": cell_means(rows).to_csv(index=False, float_format="%.17g"),
               "rows.sha256.csv": row_digests(rows).to_csv(index=False),
               "provenance.json": json.dumps(prov, indent=1)} | shipped)


def write_snapshot(fits_dir: Path, store: Path, out: Path, wall_s: float | None, grid_command: str,
                   fit_command: str) -> None:
    files = snapshot(fits_dir, store, wall_s, grid_command, fit_command)
    with staged_files(out) as stage:
        for name, text in files.items():
            stage(name, lambda tmp, text=text: Path(tmp).write_text(text))
    print(f"wrote {', '.join(files)} to {out}")
