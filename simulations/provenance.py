"""Provenance stored with every row: code version, library versions, device and dtype."""

from __future__ import annotations

import hashlib
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


def _git(*args: str) -> str:
    out = subprocess.run(["git", *args], cwd=Path(__file__).resolve().parent, capture_output=True,
                         text=True, timeout=30, check=True)
    return out.stdout


def tree_state(outputs: tuple[str, ...] = ()) -> dict[str, object]:
    """Whether the checkout matches its commit: `git_clean`, and `git_diff_sha256`, a hash of the
    uncommitted changes (tracked diff and untracked file names; None when clean), leaving out the
    folders `outputs` (relative to the checkout's top: what the caller itself writes, e.g. the
    reference directories `make reference` writes one after another). A result made from a dirty tree
    cannot be reproduced from its commit alone, so references refuse one (fits.references). Not cached:
    the tree can change while a process runs. Outside a checkout: clean None, hash None."""
    paths = [":/", *(f":(top,exclude){o}" for o in outputs)]
    try:
        diff = _git("diff", "HEAD", "--binary", "--", *paths)
        untracked = _git("ls-files", "--others", "--exclude-standard", "--", *paths)
    except (OSError, subprocess.SubprocessError):
        return {"git_clean": None, "git_diff_sha256": None}
    if not diff and not untracked:
        return {"git_clean": True, "git_diff_sha256": None}
    return {"git_clean": False, "git_diff_sha256": hashlib.sha256((diff + untracked).encode()).hexdigest()}


def device_name(device: torch.device | str) -> str:
    """`cpu`, or `cuda:<index> (<GPU name>)`."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return device.type


#: The provenance columns of every row of a grid store: `provenance()`'s keys, in order.
FIELDS = ("git_commit", "torch_version", "numpy_version", "python_version")


def provenance() -> dict[str, str]:
    """Versions of the code and of the libraries that produce the numbers (`FIELDS`)."""
    values = (git_commit(), torch.__version__, np.__version__, platform.python_version())
    return dict(zip(FIELDS, values, strict=True))
