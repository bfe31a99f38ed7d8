"""Figure 4: the theory's trade-off in k: approximation bound, estimation bound and their total.

`theory.tradeoff_table` (the toolkit's own derivation: our approximation bound plus P2's estimation
bound instantiated with our R_m and d_N, weighted by the theory's default est_weight) at the grid's
task parameters, largest m and h, most common T, for (at most four of) the grid's complexities.
Top: the approximation bound per complexity s (falls with k) and the estimation bound (dashed grey, one
curve: it does not depend on s), log scale. Bottom: their total on a linear scale, its integer argmin k*
ringed. No uncertainty bands: these are bounds, not estimates.
"""

from __future__ import annotations

import pandas as pd

from figures import style
from figures.kstar import levels

NAME = "tradeoff"
TITLE = "Theory's trade-off: approximation, estimation and total bound vs k for several complexities"
INPUTS = ("results",)

COMPONENTS = ("approximation", "estimation", "total")


def data(inputs) -> pd.DataFrame:
    import theory  # lazily (sympy, ~1.5 s): only the figures that draw the theory pay it

    r = inputs.results
    t = int(r["n_experts"].mode().max())
    table = theory.tradeoff_table(levels(r["complexity"]), r["n_train"].max(), r["width"].max(), t,
                                  **inputs.task_kwargs)
    long = table.melt(id_vars=["k", "complexity", "n_train", "width", "n_experts", "is_optimal"],
                      value_vars=list(COMPONENTS), var_name="component", value_name="bound")
    long["is_optimal"] = long["is_optimal"] & (long["component"] == "total")
    return long.sort_values(["component", "complexity", "k"], ignore_index=True)


@style.styled
def plot(df: pd.DataFrame):
    # Two panels: the terms on a log scale (they differ by orders of magnitude), and the total on a
    # linear scale of its own, where its minimum over k stays visible even when one term dominates.
    fig, axes = style.new_figure(2, 1, height_in=4.4, sharex=True)
    terms, totals = axes[0, 0], axes[1, 0]
    for i, s in enumerate(sorted(df["complexity"].unique())):
        c = style.color(i)
        g = df[df["complexity"] == s]
        approx = g[g["component"] == "approximation"]
        total = g[g["component"] == "total"]
        terms.plot(approx["k"], approx["bound"], color=c, marker=style.marker(i), markersize=3,
                   label=f"$s$ = {s:g}")
        totals.plot(total["k"], total["bound"], color=c, marker=style.marker(i), markersize=3)
        best = total[total["is_optimal"]]
        totals.plot(best["k"], best["bound"], linestyle="none", marker="o", markersize=9,
                    markerfacecolor="none", markeredgecolor=c, markeredgewidth=1.2)
    est = df[(df["component"] == "estimation") & (df["complexity"] == df["complexity"].min())]
    terms.plot(est["k"], est["bound"], color=style.GREY, linestyle="--", label="estimation (P2; all $s$)")
    terms.plot([], [], linestyle="none", marker="o", markersize=7, markerfacecolor="none",
               markeredgecolor=style.GREY, label=r"$k^*$ (argmin of total)")
    if (df.loc[df["component"] != "total", "bound"] > 0).all():
        style.log_axis(terms, "y")
    terms.set_title("approximation (colours) and estimation (dashed) bounds", loc="left")
    totals.set_title("total = approximation + estimation", loc="left")
    ks = sorted(df["k"].unique())
    totals.set_xticks(ks, [f"{k:g}" for k in ks])
    style.label(terms, y="bound")
    style.label(totals, x="k", y="bound")
    first = df.iloc[0]
    style.top_legend(fig, terms, ncol=3, title=f"$T$ = {first['n_experts']:g}, $m$ = {first['n_train']:g}, "
                     f"$h$ = {first['width']:g} (toolkit's derivation)")
    return fig
