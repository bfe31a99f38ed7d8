"""The results store: one Parquet file per bundle plus `manifest.json` (schema in docs/results.md).

Every file is written to a temporary name in the same directory and renamed into place (os.replace
is atomic), so a killed run leaves whole bundle files or none; `load` ignores temporary files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from simulations.atomic import atomic_write, atomic_write_text

REQUIRED_COLUMNS = (
    "cell_id", "seed", "k", "n_experts", "complexity", "n_train", "width", "d_in", "train_mse",
    "test_mse_id", "test_mse_ood", "target_var", "diverged", "steps", "wall_s", "renormalize",
    "git_commit", "torch_version", "device", "dtype", "config_hash",
)
# Written by every grid since the routing controls (docs/results.md); stores from before lack them.
ROUTING_COLUMNS = ("routing_recall", "routing_gate_mass", "routing_recall_baseline",
                   "routing_gate_mass_baseline")
BUNDLE_GLOB = "bundle-*.parquet"
MANIFEST = "manifest.json"


def write_bundle(out: str | Path, bundle_id: str, rows: pd.DataFrame) -> Path:
    """Write one bundle's rows atomically as `bundle-<bundle_id>.parquet`."""
    missing = [c for c in REQUIRED_COLUMNS if c not in rows.columns]
    if missing:
        raise ValueError(f"bundle {bundle_id}: rows lack required columns {missing}")
    path = Path(out) / f"bundle-{bundle_id}.parquet"
    atomic_write(path, lambda tmp: rows.to_parquet(tmp, index=False))
    return path


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

    A directory with no bundle files gives an empty frame with the required columns.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no results at {path}")
    files = [path] if path.is_file() else bundle_files(path)
    if not files:
        return pd.DataFrame(columns=list(REQUIRED_COLUMNS))
    df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    return df.sort_values(["cell_id", "seed"], kind="stable").reset_index(drop=True)


def done_keys(out: str | Path) -> set[tuple[str, int]]:
    """The (cell_id, seed) pairs already stored."""
    keys: set[tuple[str, int]] = set()
    for f in bundle_files(out):
        part = pd.read_parquet(f, columns=["cell_id", "seed"])
        keys.update(zip(part["cell_id"], part["seed"].astype(int), strict=True))
    return keys
