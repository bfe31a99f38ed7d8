"""Writing a Soft MoE experiment's outputs: output-dir policy, atomic writes, provenance."""

from __future__ import annotations

import json
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from simulations.atomic import staged_files, unwritable_dir
from simulations.provenance import device_name
from simulations.provenance import provenance as base_provenance


class OutputDirError(ValueError):
    """The output directory is not usable (non-empty without --overwrite, a file, under a file, or not
    writable)."""


def check_out_dir(out: Path, overwrite: bool) -> None:
    """Refuse a non-empty output dir unless `overwrite`, and one that cannot be written; raise before
    anything is computed or written."""
    problem = unwritable_dir(out)
    if problem:
        raise OutputDirError(f"--out: {problem}")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputDirError(f"--out: {out} is not empty; pass --overwrite to replace its results")


def _json_writer(obj: Any):
    def write(tmp: str) -> None:
        with open(tmp, "w") as fh:
            json.dump(obj, fh, indent=2, sort_keys=True, default=str)

    return write


def write_outputs(out: Path, tables: dict[str, pd.DataFrame], manifest: dict[str, Any]) -> None:
    """Write every table (Parquet or CSV by suffix) and then manifest.json into `out`, all together:
    each file is staged under a temporary name and renamed into place only once all were written, the
    manifest last (its presence marks a complete run), so a failed write leaves no new file."""
    with staged_files(out) as stage:
        for name, df in tables.items():
            if name.endswith(".parquet"):
                stage(name, lambda tmp, df=df: df.to_parquet(tmp, index=False))
            elif name.endswith(".csv"):
                stage(name, lambda tmp, df=df: df.to_csv(tmp, index=False))
            else:
                raise ValueError(f"table name: expected a .parquet or .csv suffix, got {name!r}")
        stage("manifest.json", _json_writer(manifest))


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
