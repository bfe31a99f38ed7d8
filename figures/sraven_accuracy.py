"""Figure `sraven_accuracy` (P1's central figure): SRAVEN accuracy against k, one curve per rule pool
size R, OOD (left) and ID (right) panels; whole-problem accuracy (top: all 4 features right) and
per-feature accuracy (bottom).

One slice, as in figure 1: the most common T, the most problems per model and the widest experts (the
slice is in the CSV and the legend title). A point is the mean over seeds with a Student-t 95 % interval
over seeds: each seed contributes one model per (R, k) (its own rule pool, OOD split and data), so the
interval treats seeds as the independent clusters. Diverged models are left out (counted in `n_nan`),
and so are OOD values of models with no held-out multisets. Dotted grey lines mark chance: 1/8 per
feature, 8^-4 per problem. A ring marks each curve's best k (highest seed-mean accuracy; every k tied at
the top is ringed). A store with several estimators (the grid's `estimator` axis) draws each with its own
line style (solid: the first in the store's order); a store without the column is all pathwise.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from figures import style
from figures.error_vs_k import _k_ticks
from figures.stats import seed_summary
from simulations.families import SRAVEN
from simulations.families.sraven.estimators import DEFAULT_ESTIMATOR

NAME = "sraven_accuracy"
TITLE = "SRAVEN accuracy vs k per rule pool size R (OOD and ID; whole problem and per feature), seed CIs"
INPUTS = (SRAVEN,)

PANELS = {"OOD": {"acc": "acc_ood", "feat_acc": "feat_acc_ood"},
          "ID": {"acc": "acc_id", "feat_acc": "feat_acc_id"}}
N_VALUES, N_FEATURES = 8, 4
CHANCE = {"acc": float(N_VALUES) ** -N_FEATURES, "feat_acc": 1.0 / N_VALUES}


def select_slice(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of the most common T, the most problems per model (`n_train` of the mapped table) and
    the widest experts."""
    t = rows["n_experts"].mode().max()
    rows = rows[rows["n_experts"] == t]
    rows = rows[rows["n_train"] == rows["n_train"].max()]
    return rows[rows["width"] == rows["width"].max()]


LINES = ("-", "--", ":", "-.")  # one per estimator


def data(inputs) -> pd.DataFrame:
    rows = select_slice(inputs.sraven)
    est = rows["estimator"].fillna(DEFAULT_ESTIMATOR) if "estimator" in rows.columns else DEFAULT_ESTIMATOR
    rows = rows.assign(estimator=est)
    parts = []
    for panel, levels in PANELS.items():
        for level, metric in levels.items():
            values = rows.assign(value=rows[metric].where(~rows["diverged"].astype(bool)))
            summary = seed_summary(values, ["estimator", "n_rules", "k"], "value")
            top = summary.groupby(["estimator", "n_rules"])["mean"].transform("max")
            summary["is_best"] = np.isclose(summary["mean"], top, rtol=0, atol=1e-12)
            summary.insert(0, "metric", metric)
            summary.insert(0, "level", level)
            summary.insert(0, "panel", panel)
            summary["chance"] = CHANCE[level]
            parts.append(summary)
    out = pd.concat(parts, ignore_index=True)
    for col in ("n_experts", "n_train", "width"):
        out[col] = rows[col].iloc[0]
    return out


@style.styled
def plot(df: pd.DataFrame):
    fig, axes = style.new_figure(2, 2, height_in=4.2, columns=2, sharex=True, sharey="row")
    rules = sorted(df["n_rules"].unique())
    ests = list(dict.fromkeys(df["estimator"]))
    for c, panel in enumerate(PANELS):
        for r, level in enumerate(CHANCE):
            ax = axes[r, c]
            for (e, est), (i, n_rules) in itertools.product(enumerate(ests), enumerate(rules)):
                cur = df[(df["panel"] == panel) & (df["level"] == level) & (df["n_rules"] == n_rules)
                         & (df["estimator"] == est)].sort_values("k")
                ax.plot(cur["k"], cur["mean"], color=style.color(i), marker=style.marker(i),
                        linestyle=LINES[e % len(LINES)], label=f"{n_rules:g}" if e == 0 else None)
                ax.fill_between(cur["k"], cur["ci_lo"], cur["ci_hi"], color=style.color(i),
                                alpha=style.BAND_ALPHA, linewidth=0)
                best = cur[cur["is_best"]]
                ax.plot(best["k"], best["mean"], linestyle="none", marker="o", markersize=9,
                        markerfacecolor="none", markeredgecolor=style.color(i), markeredgewidth=1.2)
            ax.axhline(CHANCE[level], color=style.GREY, linestyle=":", linewidth=1.0)
            if c == 0:
                style.label(ax, y=level)
            if r == 0:
                ax.set_title(panel, loc="left", fontweight="bold")
    for r, level in enumerate(CHANCE):  # from 0 to just above the highest band in the row (shared y)
        row = df[df["level"] == level]
        top = np.nanmax([row["mean"].max(), row["ci_hi"].max(), CHANCE[level]])
        axes[r, 0].set_ylim(0, min(1.02, 1.1 * top) if top > 0 else 1)
    for ax in axes[1]:
        _k_ticks(ax, df["k"])
        style.label(ax, x="k")
    axes[0, 0].plot([], [], linestyle="none", marker="o", markersize=7, markerfacecolor="none",
                    markeredgecolor=style.GREY, label="best k (highest mean)")
    axes[0, 0].plot([], [], color=style.GREY, linestyle=":", label=r"chance ($8^{-4}$; 1/8 per feature)")
    if len(ests) > 1:
        for e, est in enumerate(ests):
            axes[0, 0].plot([], [], color="black", linestyle=LINES[e % len(LINES)], label=est)
    first = df.iloc[0]
    style.top_legend(fig, axes[0, 0], ncol=len(rules) + 2 + (len(ests) if len(ests) > 1 else 0),
                     title=f"rule pool size $R$ ($T$ = {first['n_experts']:g}, {first['n_train']:g} problems "
                           f"per model, $d_{{expert}}$ = {first['width']:g}; mean, 95 % CI over seeds)")
    return fig
