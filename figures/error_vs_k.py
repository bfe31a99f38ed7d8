"""Figure 1: test error vs k, one curve per task complexity s, OOD (top) and ID (bottom) panels.

Layout choice: the grid varies m and h too, but one panel per (m, h) would not stay readable at column
width, so this figure shows one slice: the largest training set m, the largest expert width h and the
most common number of experts T (the slice is in the CSV and the title). Every (m, h) cell enters
figures 2 and 3 through the fits. Only the learned arm is drawn here (router and experts learned);
the controls are in figure `controls`. Errors are normalized (MSE / Var y); a point is the mean over seeds
with a Student-t 95 % band; diverged seeds are left out (counted in `n_nan`). The ring marks each
curve's k*: the k with the lowest seed-mean error. Complexities without held-out combinations
(n_heldout_combos = 0, e.g. s = 1 or s = S) have no OOD split: their OOD curve is a fresh ID sample and
is drawn dashed. The y range stops 4-fold beyond the means, so a very wide band (two or three seeds) runs
off the frame instead of flattening the curves.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from figures import style
from figures.stats import seed_summary
from simulations.arms import primary_rows

NAME = "error_vs_k"
TITLE = "Test error vs k per task complexity (OOD and ID), with seed CIs and each curve's k*"
INPUTS = ("results",)

PANELS = {"OOD": "test_nmse_ood", "ID": "test_nmse_id"}


def select_slice(results: pd.DataFrame) -> pd.DataFrame:
    """The rows of the largest m, the largest h and the most common T."""
    t = results["n_experts"].mode().max()
    rows = results[results["n_experts"] == t]
    rows = rows[rows["n_train"] == rows["n_train"].max()]
    return rows[rows["width"] == rows["width"].max()]


def data(inputs) -> pd.DataFrame:
    rows = select_slice(primary_rows(inputs.results))
    heldout = rows.groupby("complexity")["n_heldout_combos"].min().rename("n_heldout_combos")
    parts = []
    for panel, metric in PANELS.items():
        summary = seed_summary(rows, ["complexity", "k"], metric)
        best = summary.loc[summary.groupby("complexity")["mean"].idxmin(), ["complexity", "k"]]
        summary["is_k_star"] = summary.set_index(["complexity", "k"]).index.isin(
            best.set_index(["complexity", "k"]).index
        )
        summary.insert(0, "metric", metric)
        summary.insert(0, "panel", panel)
        parts.append(summary)
    out = pd.concat(parts, ignore_index=True).join(heldout, on="complexity")
    for col in ("n_experts", "n_train", "width"):
        out[col] = rows[col].iloc[0]
    return out


def _k_ticks(ax, ks) -> None:
    ks = np.sort(np.unique(ks)).astype(int)
    log = ks.min() > 0 and len(ks) > 2 and ks.max() / ks.min() >= 8
    if log:
        ax.set_xscale("log", base=2)
    # On a log axis the labels of 9..15 collide: label powers of two and the largest k, tick every k.
    shown = [not log or (k & (k - 1)) == 0 or k == ks.max() for k in ks]
    ax.set_xticks(ks)
    ax.set_xticklabels([str(k) if show else "" for k, show in zip(ks, shown, strict=True)])
    ax.minorticks_off()


@style.styled
def plot(df: pd.DataFrame):
    fig, axes = style.new_figure(2, 1, height_in=4.4, sharex=True)
    levels = sorted(df["complexity"].unique())
    for ax, panel in zip(axes[:, 0], PANELS, strict=True):
        for i, s in enumerate(levels):
            cur = df[(df["panel"] == panel) & (df["complexity"] == s)].sort_values("k")
            no_split = panel == "OOD" and cur["n_heldout_combos"].iloc[0] == 0
            lbl = f"{s:g}" + (" (no OOD split)" if no_split else "")
            ax.plot(cur["k"], cur["mean"], color=style.color(i), marker=style.marker(i),
                    linestyle="--" if no_split else "-", label=lbl)
            ax.fill_between(cur["k"], cur["ci_lo"].clip(lower=cur["mean"].min() * 1e-3), cur["ci_hi"],
                            color=style.color(i), alpha=style.BAND_ALPHA, linewidth=0)
            star = cur[cur["is_k_star"]]
            ax.plot(star["k"], star["mean"], linestyle="none", marker="o", markersize=9,
                    markerfacecolor="none", markeredgecolor=style.color(i), markeredgewidth=1.2)
        if (df["mean"] > 0).all():
            style.log_axis(ax, "y")
            ax.set_ylim(*style.log_limits(df["mean"], df["ci_lo"], df["ci_hi"]))
        style.label(ax, y=PANELS[panel])
        ax.set_title(panel, loc="left", fontweight="bold")
    _k_ticks(axes[1, 0], df["k"])
    style.label(axes[1, 0], x="k")
    axes[0, 0].plot([], [], linestyle="none", marker="o", markersize=7, markerfacecolor="none",
                    markeredgecolor=style.GREY, label=r"$k^*$ (lowest mean)")
    first = df.iloc[0]
    style.top_legend(fig, axes[0, 0], ncol=3, title=f"complexity $s$ ($T$ = {first['n_experts']:g}, "
                     f"$m$ = {first['n_train']:g}, $h$ = {first['width']:g}; mean, 95 % CI over seeds)")
    return fig
