"""One look for every figure: colour-blind-safe colours, the papers' notation on axes, paper-width sizes.

Sizes are for a single column of a two-column paper (3.4 in wide) at 8 pt, so the PNG/PDF can be
dropped into a paper at 100 % scale and stay legible. Colours are the Okabe-Ito palette (safe for the
common colour-vision deficiencies); series also differ by marker, so nothing relies on colour alone.
"""

from __future__ import annotations

import functools

import matplotlib
import numpy as np

matplotlib.use("Agg")  # figures are files; never open a display

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402

COLUMN_WIDTH_IN = 3.4
DPI = 200

# Okabe & Ito (2008), ordered so that the first colours are the most distinct on white; yellow last.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
GREY = "#666666"
BAND_ALPHA = 0.2

# Axis labels in the papers' notation (docs/theory.md) (T, k, m, s, h, d, d_N, R_m).
LABELS = {
    "k": r"experts per input $k$",
    "complexity": r"task complexity $s$",
    "n_train": r"training samples $m$",
    "width": r"expert width $h$",
    "n_experts": r"experts $T$",
    "k_star": r"optimal $k^*$",
    "test_nmse_ood": r"OOD test error (MSE / Var $y$)",
    "test_nmse_id": r"ID test error (MSE / Var $y$)",
    "test_mse_ood": r"OOD test MSE",
    "test_mse_id": r"ID test MSE",
    "train_mse": r"training MSE",
    "gap": r"measured gap: test $-$ train MSE",
    "p2_bound": r"P2 bound on the gap",
    "bound": r"bound value",
    "n_rules": r"rule pool size $R$",
    "acc": r"accuracy (whole problem)",
    "feat_acc": r"accuracy per feature",
}

RC = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 6.5,
    "legend.title_fontsize": 7,
    "legend.frameon": False,
    "lines.linewidth": 1.3,
    "lines.markersize": 4,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "savefig.dpi": DPI,
    "savefig.bbox": "tight",
    "pdf.fonttype": 42,  # embed TrueType so the PDF text stays editable/searchable
}


def color(i: int) -> str:
    """The i-th series colour (wraps around)."""
    return PALETTE[i % len(PALETTE)]


def marker(i: int) -> str:
    """The i-th series marker (wraps around)."""
    return MARKERS[i % len(MARKERS)]


def styled(plot_fn):
    """Decorator for a figure's `plot(df)`: everything it creates takes the shared rcParams."""

    @functools.wraps(plot_fn)
    def wrapper(*args, **kwargs):
        with plt.rc_context(RC):
            return plot_fn(*args, **kwargs)

    return wrapper


def new_figure(nrows: int = 1, ncols: int = 1, height_in: float = 2.5, columns: int = 1, **kwargs):
    """(figure, 2-d array of axes) `columns` columns wide (1 or 2 in a two-column paper); call inside a
    `styled` plot function."""
    return plt.subplots(
        nrows, ncols, figsize=(columns * COLUMN_WIDTH_IN, height_in), layout="constrained", squeeze=False,
        **kwargs
    )


def label(ax, x: str | None = None, y: str | None = None) -> None:
    """Set axis labels from LABELS keys (or literal text when the key is unknown)."""
    if x is not None:
        ax.set_xlabel(LABELS.get(x, x))
    if y is not None:
        ax.set_ylabel(LABELS.get(y, y))


def log_axis(ax, which: str = "y", subs=(1.0, 2.0, 5.0)) -> None:
    """Log scale with plain-number tick labels at `subs` x 10^n (pass subs=(1.0,) for wide ranges)."""
    axis = ax.yaxis if which == "y" else ax.xaxis
    (ax.set_yscale if which == "y" else ax.set_xscale)("log")
    axis.set_major_locator(ticker.LogLocator(base=10, subs=subs))
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(ticker.NullFormatter())


def log_limits(means, lows, highs, reach: float = 4.0) -> tuple[float, float]:
    """Log-axis limits that show the error bands but stop `reach`-fold beyond the means: with two or
    three seeds a t interval can span decades, and letting it set the axis would flatten every curve
    (such a band then runs off the frame; its full extent is in the CSV)."""
    means = np.asarray(means, dtype=float)
    lows = np.asarray(lows, dtype=float)
    highs = np.asarray(highs, dtype=float)
    m_lo, m_hi = np.nanmin(means), np.nanmax(means)
    pos = lows[np.isfinite(lows) & (lows > 0)]
    lo = max(pos.min(), m_lo / reach) if len(pos) and np.all(lows[np.isfinite(lows)] > 0) else m_lo / reach
    fin = highs[np.isfinite(highs)]
    hi = min(fin.max(), m_hi * reach) if len(fin) else m_hi
    return 0.9 * min(lo, m_lo), 1.1 * max(hi, m_hi)


def top_legend(fig, ax, ncol: int = 4, **kwargs):
    """One legend for the whole figure, above the panels, from the handles of `ax`."""
    handles, labels = ax.get_legend_handles_labels()
    return fig.legend(handles, labels, loc="outside upper center", ncol=ncol, **kwargs)
