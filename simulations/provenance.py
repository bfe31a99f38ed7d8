"""Provenance stored with every row: code version, library versions, device and dtype."""

from __future__ import annotations

import platform
import subprocess
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch


@lru_cache(maxsize=1)
def git_commit() -> str:
    """HEAD of the repository this package lives in ("unknown" outside a git checkout)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=10, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def device_name(device: torch.device | str) -> str:
    """`cpu`, or `cuda:<index> (<GPU name>)`."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return device.type


def provenance() -> dict[str, str]:
    """Versions of the code and of the libraries that produce the numbers."""
    return {"git_commit": git_commit(), "torch_version": torch.__version__, "numpy_version": np.__version__,
            "python_version": platform.python_version()}
