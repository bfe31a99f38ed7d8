"""Figure `gate_map`: where each arm composes (the fits' gate_map.parquet, `fits.gate_map`).

One row per arm, one column per complexity s. Left: routing recall at k = s above its permuted-input
chance level (0: no better than chance; 1 - chance: every active skill found). Middle: the best ID NMSE
over k relative to the oracle's best (1: the oracle's error). Right: the same on OOD. Seed means; the
numbers are printed in the cells. One slice: the largest m and h and the most common T.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from figures import style
from figures.error_vs_k import select_slice

NAME = "gate_map"
TITLE = "Gate map: recall above chance at k = s, and best error relative to the oracle's, ID and OOD"
INPUTS = ("results", "fits")
TABLE = "gate_map.parquet"
REQUIRES = (("fits", "optimal_k.json"), ("fits", TABLE))
PANELS = {"recall_above_chance": "recall - chance at k = s", "ratio_id": "best ID NMSE / oracle's",
          "ratio_ood": "best OOD NMSE / oracle's"}
CELL = ("arm", "task", "complexity", "n_train", "width", "n_experts")


def data(inputs) -> pd.DataFrame:
    return panel_data(inputs, PANELS)


def panel_data(inputs, panels: dict[str, str]) -> pd.DataFrame:
    """The slice of the fits' gate_map.parquet that heatmaps(panels) draws: one row per arm and s, the
    cell's columns and one per panel (`recall_above_chance` = recall at k = s less its chance level)."""
    needed = ("recall_at_s", "recall_chance_at_s", *(p for p in panels if p != "recall_above_chance"))
    rows = select_slice(inputs.table("fits", TABLE, (*CELL, *needed)))
    rows = rows.assign(recall_above_chance=rows["recall_at_s"] - rows["recall_chance_at_s"])
    return rows[[*CELL, *panels]].reset_index(drop=True)


@style.styled
def plot(df: pd.DataFrame):
    return heatmaps(df, PANELS)


def heatmaps(df: pd.DataFrame, panels: dict[str, str]):
    """One heatmap per panel (column of df -> title): a row per arm, a column per complexity s, the value
    printed in each cell: recalls (names starting "recall") and routing-gain shares ("best_share") on
    [0, 1], ratios to the oracle on [1, 10]."""
    arms = list(dict.fromkeys(df["arm"]))
    levels = sorted(df["complexity"].unique())
    fig, axes = style.new_figure(1, len(panels), height_in=0.35 * len(arms) + 1.2, columns=2, sharey=True)
    for ax, (col, title) in zip(axes[0], panels.items(), strict=True):
        grid = df.pivot_table(index="arm", columns="complexity", values=col).reindex(arms)[levels]
        values = grid.to_numpy(dtype=float)
        name, (lo, hi) = ("viridis", (0.0, 1.0)) if col.startswith(("recall", "best_share")) else \
            ("magma_r", (1.0, 10.0))
        cmap = plt.get_cmap(name)
        ax.imshow(values, cmap=cmap, vmin=lo, vmax=hi, aspect="auto")
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                r, g, b, _ = cmap(float(np.clip((v - lo) / (hi - lo), 0, 1)))
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize="x-small",
                        color="white" if 0.299 * r + 0.587 * g + 0.114 * b < 0.5 else "black")
        ax.set_xticks(range(len(levels)), [f"{s:g}" for s in levels])
        ax.set_yticks(range(len(arms)), arms)
        ax.set_title(title, loc="left", fontsize="small")
        style.label(ax, x="complexity")
        ax.grid(False)
    return fig
