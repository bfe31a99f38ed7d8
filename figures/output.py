"""Writing the figures' files: PNG, PDF and the plotted data as CSV, each atomically.

Every file is first rendered to a temporary file in the output directory and only then moved into place
with os.replace, so a failure leaves the previous files (or none), never a truncated one. `save_all`
stages the files of several figures together: all of them are written, or none (and an output
directory it had to create is removed again).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from figures.style import DPI
from simulations.atomic import staged_files

EXTENSIONS = ("png", "pdf", "csv")


def _stage_figure(stage, name: str, df: pd.DataFrame, fig: Figure) -> list[Path]:
    writers = {
        "png": lambda p: fig.savefig(p, format="png", dpi=DPI, bbox_inches="tight"),
        "pdf": lambda p: fig.savefig(p, format="pdf", bbox_inches="tight"),
        "csv": lambda p: df.to_csv(p, index=False),
    }
    return [stage(f"{name}.{ext}", writers[ext]) for ext in EXTENSIONS]


def save(name: str, df: pd.DataFrame, fig: Figure, out_dir: Path) -> list[Path]:
    """Write `<out_dir>/<name>.{png,pdf,csv}` atomically; close the figure; return the paths."""
    try:
        with staged_files(out_dir) as stage:
            return _stage_figure(stage, name, df, fig)
    finally:
        plt.close(fig)


def save_all(figures: Iterable[tuple[str, pd.DataFrame, Callable[[], Figure]]], out_dir: Path) -> dict:
    """Write the files of every (name, df, draw) in `figures` into `out_dir`, all or none; `draw()` makes
    the matplotlib figure (drawn and closed one at a time). Returns {name: paths}."""
    out_dir = Path(out_dir)
    created = [p for p in (out_dir, *out_dir.parents) if not p.exists()]  # deepest first
    try:
        with staged_files(out_dir) as stage:
            written = {}
            for name, df, draw in figures:
                fig = draw()
                try:
                    written[name] = _stage_figure(stage, name, df, fig)
                finally:
                    plt.close(fig)
            return written
    except BaseException:
        for d in created:  # leave no empty directory behind
            with contextlib.suppress(OSError):
                d.rmdir()
        raise
