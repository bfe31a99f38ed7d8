"""Writing a Soft MoE experiment's outputs: output-dir policy, atomic writes, provenance."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import torch

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


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_table(df: pd.DataFrame, path: Path) -> None:
    """Write a DataFrame atomically as Parquet or CSV, chosen by the suffix."""
    if path.suffix == ".parquet":
        _atomic(path, lambda tmp: df.to_parquet(tmp, index=False))
    elif path.suffix == ".csv":
        _atomic(path, lambda tmp: df.to_csv(tmp, index=False))
    else:
        raise ValueError(f"path: expected a .parquet or .csv suffix, got {path.suffix!r}")


def write_json(obj: Any, path: Path) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as fh:
            json.dump(obj, fh, indent=2, sort_keys=True, default=str)

    _atomic(path, write)


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
