"""Writing one figure's files: PNG, PDF and the plotted data as CSV, each atomically.

All three are first rendered to temporary files in the output directory and only then moved into
place with os.replace, so a failure leaves the previous files (or none), never a truncated one.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from figures.style import DPI
from simulations.atomic import staged_files

EXTENSIONS = ("png", "pdf", "csv")


def save(name: str, df: pd.DataFrame, fig: Figure, out_dir: Path) -> list[Path]:
    """Write `<out_dir>/<name>.{png,pdf,csv}` atomically; close the figure; return the paths."""
    writers = {
        "png": lambda p: fig.savefig(p, format="png", dpi=DPI, bbox_inches="tight"),
        "pdf": lambda p: fig.savefig(p, format="pdf", bbox_inches="tight"),
        "csv": lambda p: df.to_csv(p, index=False),
    }
    try:
        with staged_files(out_dir) as stage:
            return [stage(f"{name}.{ext}", writers[ext]) for ext in EXTENSIONS]
    finally:
        plt.close(fig)
