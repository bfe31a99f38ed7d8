"""The results store: one Parquet file per bundle plus `manifest.json` (schema in docs/store.md).

Beside each bundle file, `keval-<bundle_id>.parquet` holds the inference-time-k table: one row per
(cell, seed, k_eval) with the ID and OOD test MSE (regression) or accuracies (SRAVEN: `acc_*`,
`feat_acc_*`) of the trained model evaluated at k_eval experts (`load_k_eval`). Both files of a
bundle are staged and renamed into place together (os.replace is atomic), so a killed run leaves whole
bundles or none; the loaders ignore temporary files.

For mixed-complexity grids, `experts-<bundle_id>.parquet` likewise holds the experts-by-s table: one row
per (cell, seed, s) with the mean number of experts the router selected per ID test input of level s
(`load_experts_by_s`). Grids that record learning curves (SRAVEN with early stopping) put them in
`curves-<bundle_id>.parquet`: one row per (cell, seed, evaluation step), from the rows' `curve_*` list
columns (`load_curves`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from simulations.atomic import atomic_write_text, staged_files
from simulations.families import DEFAULT, GRID_FAMILIES, get_schema
from simulations.families.regression import schema as regression_schema

REQUIRED_COLUMNS = get_schema(DEFAULT).required_columns  # the regression grid's (docs/store.md)
# Written by every regression grid since the routing controls (docs/store.md); stores from before lack
# them. Named by the regression record, as the experts-by-s list column (EXPERTS_LIST) is.
ROUTING_COLUMNS = regression_schema.ROUTING_COLUMNS
BUNDLE_GLOB = "bundle-*.parquet"
K_EVAL_GLOB = "keval-*.parquet"

MANIFEST = "manifest.json"
EXPERTS_GLOB = "experts-*.parquet"
EXPERTS_LIST = regression_schema.EXPERTS_BY_S  # rows' list column: per level s = 1..S, NaN where absent
CURVES_GLOB = "curves-*.parquet"
CURVE_PREFIX = "curve_"  # rows' list columns of a learning curve: one value per evaluation step


def k_eval_lists() -> dict[str, str]:
    """The rows' list columns (one value per k_eval = 1..T) -> the k_eval table's columns, of every grid
    family (each family's schema: `k_eval_lists`); read when called, so importing this module stays
    free of the families' packages."""
    return {k: v for name in GRID_FAMILIES for k, v in get_schema(name).k_eval_lists.items()}


def write_bundle(out: str | Path, bundle_id: str, rows: pd.DataFrame,
                 required: tuple[str, ...] = REQUIRED_COLUMNS) -> Path:
    """Write one bundle's rows atomically as `bundle-<bundle_id>.parquet`; per-model arrays of the
    inference-time-k errors (`k_eval_lists()` columns), when present, go to `keval-<bundle_id>.parquet` as a
    long table, landing together with the rows. `required`: the columns every row of the store's
    family must have (the regression grid's by default)."""
    missing = [c for c in required if c not in rows.columns]
    if missing:
        raise ValueError(f"bundle {bundle_id}: rows lack required columns {missing}")
    names = k_eval_lists()
    lists = [c for c in names if c in rows.columns]
    by_s = _experts_by_s(rows)
    curve = [c for c in rows.columns if c.startswith(CURVE_PREFIX)]
    with staged_files(out) as stage:
        if curve:
            long = rows[["cell_id", "seed", *curve]].explode(curve, ignore_index=True)
            long = long.rename(columns=lambda c: c.removeprefix(CURVE_PREFIX))
            long = long.astype({c.removeprefix(CURVE_PREFIX): float for c in curve}).astype({"step": int})
            stage(f"curves-{bundle_id}.parquet", lambda tmp: long.to_parquet(tmp, index=False))
        if by_s is not None:
            stage(f"experts-{bundle_id}.parquet", lambda tmp: by_s.to_parquet(tmp, index=False))
        if lists:
            long = rows[["cell_id", "seed", *lists]].explode(lists, ignore_index=True)
            long.insert(2, "k_eval", long.groupby(["cell_id", "seed"]).cumcount() + 1)
            long = long.rename(columns=names).astype({names[c]: float for c in lists})
            stage(f"keval-{bundle_id}.parquet", lambda tmp: long.to_parquet(tmp, index=False))
        main = rows.drop(columns=lists + curve + ([EXPERTS_LIST] if by_s is not None else []))
        return stage(f"bundle-{bundle_id}.parquet", lambda tmp: main.to_parquet(tmp, index=False))


def _experts_by_s(rows: pd.DataFrame) -> pd.DataFrame | None:
    """The rows' per-level arrays (EXPERTS_LIST) as a long table (cell_id, seed, s, mean_experts_id),
    the levels without a value (absent from the task, or a diverged model) left out; None without them."""
    if EXPERTS_LIST not in rows.columns:
        return None
    long = rows[["cell_id", "seed", EXPERTS_LIST]].explode(EXPERTS_LIST, ignore_index=True)
    long.insert(2, "s", long.groupby(["cell_id", "seed"]).cumcount() + 1)
    long = long.rename(columns={EXPERTS_LIST: "mean_experts_id"}).astype({"mean_experts_id": float})
    return long[long["mean_experts_id"].notna()].reset_index(drop=True)


def load_experts_by_s(path: str | Path) -> pd.DataFrame:
    """The experts-by-s table of a results directory: one row per (cell, seed, s) with
    `mean_experts_id` (the mean number of experts selected per ID test input of level s), joined with
    the cell's fields and the row's `diverged` and arm; empty for stores without one (grids without
    complexity_mix, or written before it existed)."""
    return _side_table(path, EXPERTS_GLOB, "s", lambda: ["mean_experts_id"])


def load_curves(path: str | Path) -> pd.DataFrame:
    """The learning curves of a results directory: one row per (cell, seed, step) with the curve's
    columns (SRAVEN: {acc,feat_acc,ce}_{id,ood,val}, train_ce, wall_s), joined with the row's other
    columns; empty for stores without curves."""
    return _side_table(path, CURVES_GLOB, "step", list)


def _side_table(path: str | Path, glob: str, key: str, empty_columns) -> pd.DataFrame:
    """A table the store keeps beside its bundles (one `glob` file per bundle, one row per (cell, seed,
    `key`)), joined with the rows' other columns and sorted; for a store without one, an empty frame
    with cell_id, seed, `key` and `empty_columns()`."""
    path = Path(path)
    files = sorted(path.glob(glob)) if path.is_dir() else []
    if not files:
        return pd.DataFrame(columns=["cell_id", "seed", key, *empty_columns()])
    long = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    rows = load(path).drop(columns=[c for c in long.columns if c not in ("cell_id", "seed")], errors="ignore")
    out = long.merge(rows, on=["cell_id", "seed"], how="inner", validate="many_to_one")
    return out.sort_values(["cell_id", "seed", key], kind="stable").reset_index(drop=True)


def write_manifest(out: str | Path, manifest: dict[str, Any]) -> Path:
    path = Path(out) / MANIFEST
    atomic_write_text(path, json.dumps(manifest, indent=2, sort_keys=True))
    return path


def read_manifest(out: str | Path) -> dict[str, Any] | None:
    path = Path(out) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else None


def bundle_files(out: str | Path) -> list[Path]:
    return sorted(Path(out).glob(BUNDLE_GLOB))


def load(path: str | Path) -> pd.DataFrame:
    """All rows of a results directory (or one bundle file) as one DataFrame, sorted by (cell_id, seed).

    A directory with no bundle files gives an empty frame with the required columns of its family
    (manifest.json's "family"; stores without one are the regression grid's).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no results at {path}")
    files = [path] if path.is_file() else bundle_files(path)
    if not files:
        return pd.DataFrame(columns=list(required_columns(path)))
    df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    return df.sort_values(["cell_id", "seed"], kind="stable").reset_index(drop=True)


def required_columns(out: str | Path) -> tuple[str, ...]:
    """The columns every row of the store at `out` has, by the family its manifest names."""
    manifest = read_manifest(out) if Path(out).is_dir() else None
    return get_schema((manifest or {}).get("family", DEFAULT)).required_columns


def load_k_eval(path: str | Path) -> pd.DataFrame:
    """The inference-time-k table of a results directory: one row per (cell, seed, k_eval) with the
    family's k_eval columns (regression: `test_mse_id`, `test_mse_ood`; SRAVEN: `acc_id`, `acc_ood`,
    `feat_acc_id`, `feat_acc_ood`, replacing the row's values at the training k), joined with the
    cell's fields (k is the training k) and the rest of the row (`diverged`, arm, ...); empty for stores
    written before it existed."""
    path = Path(path)

    def columns() -> list[str]:  # the family's k_eval columns, read only for a store without the table
        family = (read_manifest(path) or {}).get("family", DEFAULT) if path.is_dir() else DEFAULT
        return list((get_schema(family).k_eval_lists if family in GRID_FAMILIES else {}).values())

    return _side_table(path, K_EVAL_GLOB, "k_eval", columns)


def done_keys(out: str | Path) -> set[tuple[str, int]]:
    """The (cell_id, seed) pairs already stored."""
    keys: set[tuple[str, int]] = set()
    for f in bundle_files(out):
        part = pd.read_parquet(f, columns=["cell_id", "seed"])
        keys.update(zip(part["cell_id"], part["seed"].astype(int), strict=True))
    return keys
