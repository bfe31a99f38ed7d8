"""Writing one figure's files: PNG, PDF and the plotted data as CSV, each atomically.

All three are first rendered to temporary files in the output directory and only then moved into
place with os.replace, so a failure leaves the previous files (or none), never a truncated one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from figures.style import DPI

EXTENSIONS = ("png", "pdf", "csv")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_temp(out_dir: Path, suffix: str, write) -> Path:
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".figures-", suffix=suffix)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
    except BaseException:
        os.unlink(tmp)
        raise
    return Path(tmp)


def save(name: str, df: pd.DataFrame, fig: Figure, out_dir: Path) -> list[Path]:
    """Write `<out_dir>/<name>.{png,pdf,csv}` atomically; close the figure; return the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    writers = {
        "png": lambda p: fig.savefig(p, format="png", dpi=DPI, bbox_inches="tight"),
        "pdf": lambda p: fig.savefig(p, format="pdf", bbox_inches="tight"),
        "csv": lambda p: df.to_csv(p, index=False),
    }
    temps: dict[str, Path] = {}
    try:
        for ext in EXTENSIONS:
            temps[ext] = _write_temp(out_dir, "." + ext, writers[ext])
    except BaseException:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
    targets = []
    for ext, tmp in temps.items():
        target = out_dir / f"{name}.{ext}"
        os.replace(tmp, target)
        targets.append(target)
    return targets
