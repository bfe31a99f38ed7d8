"""Figure `regime_map`: where learned routers find the teacher's skills (the fits' regime.parquet,
`fits.regime`: `python -m fits.regime` stacks a regime sweep's stores, made by
`python -m simulations.families.regression.regime`; block `regime` writes one store's).

One row per sweep variant (data size, training length, router settings, T / S, teacher experts), one
column per complexity s; a variant holding several arms or data sizes gets a row for each. Left: routing
recall at k = s above its permuted-input chance level (0 = no better than chance, 1 - chance = every
active skill found). Right: the best test NMSE over k relative to the route-free baseline (below 1: the
student beats the best fixed mix of the true skills). Cells are seed means; the numbers are printed in
each cell and in the CSV.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from figures import style
from figures.inputs import SOURCES, InputError

NAME = "regime_map"
TITLE = "Regime map: routing recall above chance at k = s, and error relative to the route-free baseline"
INPUTS = ("regime",)
TABLE = "regime.parquet"
REQUIRES = (("regime", TABLE),)
READ = ("variant", "arm", "router", "experts", "complexity", "n_train", "n_seeds", "k_star",
        "best_rel_nmse_id", "routing_recall_at_s", "routing_recall_baseline_at_s")

PANELS = {"recall_above_chance": "recall - chance at k = s", "best_rel_nmse_id": "best NMSE / route-free"}


def data(inputs) -> pd.DataFrame:
    table = inputs.table("regime", TABLE, READ)
    if table.empty:
        raise InputError(f"figures: {inputs.path('regime') / TABLE} holds no rows: the sweep has no routed "
                         f"arm (made by: {SOURCES['regime'].command})")
    chance = table["routing_recall_baseline_at_s"]
    table = table.assign(recall_above_chance=table["routing_recall_at_s"] - chance, row=row_labels(table))
    keep = ["row", "variant", "arm", "router", "experts", "complexity", "n_train", "n_seeds", "k_star",
            *PANELS, "routing_recall_at_s", "routing_recall_baseline_at_s"]
    return table[keep].reset_index(drop=True)


def row_labels(table: pd.DataFrame) -> list[str]:
    """The heatmap row of each table row: its variant, followed by its arm and its m where some variant
    holds several (one fits output of a store with controls, or a sweep over m), so none are averaged."""
    several = {col: bool((table.groupby("variant")[col].nunique() > 1).any()) for col in ("arm", "n_train")}
    labels = []
    for v, a, m in zip(table["variant"], table["arm"], table["n_train"], strict=True):
        parts = [str(v), *([str(a)] if several["arm"] else []), *([f"m={m:g}"] if several["n_train"] else [])]
        labels.append(" ".join(parts))
    return labels


@style.styled
def plot(df: pd.DataFrame):
    variants = list(dict.fromkeys(df["row"]))
    levels = sorted(df["complexity"].unique())
    fig, axes = style.new_figure(1, 2, height_in=0.35 * len(variants) + 1.2, columns=2, sharey=True)
    for ax, (col, title) in zip(axes[0], PANELS.items(), strict=True):
        grid = df.pivot_table(index="row", columns="complexity", values=col).reindex(variants)[levels]
        values = grid.to_numpy(dtype=float)
        cmap, (lo, hi) = ("viridis", (0.0, 1.0)) if col == "recall_above_chance" else ("magma_r", (0.0, 1.2))
        ax.imshow(values, cmap=cmap, vmin=lo, vmax=hi, aspect="auto")
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize="x-small",
                        color="white" if (v - lo) / (hi - lo) < 0.5 else "black")
        ax.set_xticks(range(len(levels)), [f"{s:g}" for s in levels])
        ax.set_yticks(range(len(variants)), variants)
        ax.set_title(title, loc="left", fontsize="small")
        style.label(ax, x="complexity")
        ax.grid(False)
    return fig
