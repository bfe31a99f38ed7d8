"""Writing a Soft MoE experiment's outputs: output-dir policy, atomic writes, provenance."""

from __future__ import annotations

import json
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from simulations.atomic import atomic_write
from simulations.provenance import device_name
from simulations.provenance import provenance as base_provenance


class OutputDirError(ValueError):
    """The output directory is not usable (non-empty without --overwrite, or a file)."""


def check_out_dir(out: Path, overwrite: bool) -> None:
    """Refuse a non-empty output dir unless `overwrite`; raise before anything is computed or written."""
    if out.exists() and not out.is_dir():
        raise OutputDirError(f"--out: {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputDirError(f"--out: {out} is not empty; pass --overwrite to replace its results")


def write_table(df: pd.DataFrame, path: Path) -> None:
    """Write a DataFrame atomically as Parquet or CSV, chosen by the suffix."""
    if path.suffix == ".parquet":
        atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))
    elif path.suffix == ".csv":
        atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))
    else:
        raise ValueError(f"path: expected a .parquet or .csv suffix, got {path.suffix!r}")


def write_json(obj: Any, path: Path) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as fh:
            json.dump(obj, fh, indent=2, sort_keys=True, default=str)

    atomic_write(path, write)


def provenance(device: str, seeds: list[int], config: dict[str, Any]) -> dict[str, Any]:
    """What produced a result: versions and commit (`simulations.provenance`), device, seeds, config."""
    return {
        **base_provenance(),
        "pandas_version": pd.__version__,
        "platform": platform.platform(),
        "device": device_name(device),
        "torch_threads": torch.get_num_threads(),
        "seeds": seeds,
        "config": config,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
