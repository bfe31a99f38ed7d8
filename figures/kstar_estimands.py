"""Figure `kstar_estimands`: every arm's estimands of k* against s, with seed-cluster 95 % CIs.

One panel per estimand (docs/fits.md, "Estimands": k enough at 5 %, the argmin, the paired one-SE k),
one series per arm, at one slice of the grid (the largest m and h, the most common T; under
`width_rule: active` h is the active width k h). Hollow markers: censored cells (the estimand sits at
the smallest or largest tested k, so it is only a bound). Drawn from the fits' estimands.parquet.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from figures import style
from figures.error_vs_k import select_slice

NAME = "kstar_estimands"
TITLE = "k* against task complexity per arm, by estimand (k enough, argmin, paired one-SE), with CIs"
INPUTS = ("results", "fits")  # reads only the fits, which need a grid first
TABLE = "estimands.parquet"
REQUIRES = (("fits", "optimal_k.json"), ("fits", TABLE))
PANELS = {"k_enough": "k enough (5 %)", "k_star": "argmin", "k_one_se": "one paired SE"}
COLUMNS = ("arm", "complexity", "n_train", "width", "n_experts", "estimand", "k", "ci_low", "ci_high",
           "censored")


def data(inputs) -> pd.DataFrame:
    table = inputs.table("fits", TABLE, COLUMNS)
    rows = select_slice(table[table["estimand"].isin(list(PANELS))])
    rows = rows.assign(censored=rows["censored"].fillna("") != "")  # "low"/"high" -> True
    return rows[list(COLUMNS)].reset_index(drop=True)


@style.styled
def plot(df: pd.DataFrame):
    arms = list(dict.fromkeys(df["arm"]))
    fig, axes = style.new_figure(1, len(PANELS), height_in=2.6, columns=2, sharey=True)
    for ax, (name, title) in zip(axes[0], PANELS.items(), strict=True):
        part = df[df["estimand"] == name]
        for i, arm in enumerate(arms):
            a = part[part["arm"] == arm].sort_values("complexity")
            x = a["complexity"].to_numpy(float) * (1 + 0.04 * (i - (len(arms) - 1) / 2))  # dodge
            y = a["k"].to_numpy(float)
            err = np.vstack([y - a["ci_low"].to_numpy(float), a["ci_high"].to_numpy(float) - y])
            ax.errorbar(x, y, yerr=np.clip(np.nan_to_num(err), 0, None), color=style.color(i), lw=1,
                        capsize=2, ls="-", marker="none", label=arm)
            censored = a["censored"].to_numpy(bool)
            ax.scatter(x[~censored], y[~censored], color=style.color(i), marker=style.marker(i), zorder=3)
            ax.scatter(x[censored], y[censored], facecolors="none", edgecolors=style.color(i),
                       marker=style.marker(i), zorder=3)
        style.log_axis(ax, "y", subs=(1.0, 2.0, 4.0))
        style.log_axis(ax, "x", subs=(1.0, 2.0, 4.0))
        ax.set_title(title, loc="left", fontsize="small")
        style.label(ax, x="complexity", y="k" if name == "k_enough" else None)
    c = df.iloc[0]
    style.top_legend(fig, axes[0, 0], ncol=min(len(arms), 4),
                     title=f"$m$ = {c['n_train']:g}, $h$ = {c['width']:g}, $T$ = {c['n_experts']:g}")
    return fig
