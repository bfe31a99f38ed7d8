"""Figure `routing_gain`: the share of the routing gain each arm realizes against k, ID and OOD side by
side (the fits' routing_gain.parquet: (route-free NMSE - NMSE) / (route-free NMSE - oracle's best NMSE),
each split with its own route-free baseline). 1 is the oracle's best k, 0 the best fixed mix of the true
skills without routing. One panel per (split, arm), one curve per s; one slice as in figure 1: the
largest m and h and the most common T. Seed means with Student-t 95 % bands.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from figures import style
from figures.error_vs_k import _k_ticks, select_slice
from figures.inputs import InputError
from figures.stats import seed_summary
from simulations.arms import arms as all_arms

NAME = "routing_gain"
TITLE = "Share of the routing gain realized per arm, ID and OOD, against k"
INPUTS = ("results", "fits")
TABLE = "routing_gain.parquet"
REQUIRES = (("fits", "optimal_k.json"), ("fits", TABLE))
COLUMNS = ("arm", "seed", "complexity", "n_train", "width", "n_experts", "k", "split", "share")
SPLITS = ("id", "ood")


def data(inputs) -> pd.DataFrame:
    table = inputs.table("fits", TABLE, COLUMNS)
    if not np.isfinite(table["share"]).any():
        raise InputError(f"figures: {inputs.path('fits') / TABLE} has no finite share (the store needs "
                         "oracle rows and route-free baselines; rerun: python -m simulations.grid)")
    rows = select_slice(table)
    out = seed_summary(rows, ["split", "arm", "complexity", "k"], "share")
    for col in ("n_experts", "n_train", "width"):
        out[col] = rows[col].iloc[0]
    return out.sort_values(["split", "arm", "complexity", "k"], ignore_index=True)


@style.styled
def plot(df: pd.DataFrame):
    shown = [a for a in all_arms() if a.name in set(df["arm"])]
    splits = [s for s in SPLITS if s in set(df["split"])]
    fig, axes = style.new_figure(len(splits), len(shown), height_in=2.2 * len(splits), columns=2,
                                 sharex=True, sharey=True)
    levels = sorted(df["complexity"].unique())
    for row, split in enumerate(splits):
        for col, arm in enumerate(shown):
            ax = axes[row, col]
            for i, s in enumerate(levels):
                cur = df[(df["split"] == split) & (df["arm"] == arm.name) & (df["complexity"] == s)]
                cur = cur.sort_values("k")
                if cur["mean"].notna().any():
                    ax.plot(cur["k"], cur["mean"], color=style.color(i), marker=style.marker(i),
                            label=f"{s:g}" if (row, col) == (0, 0) else None)
                    ax.fill_between(cur["k"], cur["ci_lo"], cur["ci_hi"], color=style.color(i),
                                    alpha=style.BAND_ALPHA, linewidth=0)
            for level in (0.0, 1.0):
                ax.axhline(level, color=style.GREY, linewidth=0.8)
            if row == 0:
                ax.set_title(arm.label, loc="left", fontsize="small")
            if row == len(splits) - 1:
                _k_ticks(ax, df["k"])
                style.label(ax, x="k")
        style.label(axes[row, 0], y=f"share of routing gain ({split.upper()})")
    first = df.iloc[0]
    style.top_legend(fig, axes[0, 0], ncol=len(levels),
                     title=f"complexity $s$ ($T$ = {first['n_experts']:g}, $m$ = {first['n_train']:g}, "
                     f"$h$ = {first['width']:g}; mean, 95 % CI over seeds)")
    return fig
