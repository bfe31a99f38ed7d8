"""Each term of the calibrated bound against the oracle arm on its own (`fits.theory.terms`; the fits
write the table to theory_terms.parquet).

Top, approximation: the oracle arm's test error at the largest m against k/s (points, mean over seeds),
and the approximation bound at the fitted constants plus the fitted floor (lines): the hinge at k = s,
the decay in k/s and the width floor. Bottom, estimation: the realized excess error over that level,
L(k; m) - L(k; m_max), against m for a few k (averaged over the cells), next to the same difference of
the calibrated bound (dashed) and its complexity term est_weight * E (dotted). A panel whose data are
missing (no oracle arm, fewer than 4 levels of m) says so instead of drawing.
"""

from __future__ import annotations

import textwrap

import pandas as pd

from figures import style
from figures.theory_fit import theory_blocks

NAME = "theory_terms"
TITLE = "Approximation and estimation terms of the calibrated bound against the oracle arm"
INPUTS = ("results", "fits")
REQUIRES = (("fits", "optimal_k.json"), ("fits", "theory_terms.parquet"))

COLUMNS = ["panel", "status", "complexity", "width", "n_experts", "n_train", "k", "measured", "bound", "term"]


def data(inputs) -> pd.DataFrame:
    theory_blocks(inputs)  # refuses fits without a fitted bound, naming the command
    return inputs.table("fits", "theory_terms.parquet")[COLUMNS]


def _unavailable(ax, text: str) -> None:
    ax.text(0.5, 0.5, textwrap.fill(text, 48), ha="center", va="center", fontsize=7, transform=ax.transAxes,
            bbox={"boxstyle": "round", "facecolor": "#eeeeee", "edgecolor": style.GREY})
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for side in ax.spines.values():
        side.set_visible(False)


@style.styled
def plot(df: pd.DataFrame):
    fig, axes = style.new_figure(2, 1, height_in=4.6)
    top, bottom = axes[0, 0], axes[1, 0]
    a = df[df["panel"] == "approximation"]
    if (a["status"] != "ok").all():
        _unavailable(top, f"approximation: {a['status'].iloc[0]}")
    else:
        for i, s in enumerate(sorted(a["complexity"].unique())):
            for j, h in enumerate(sorted(a["width"].unique())):
                g = a[(a["complexity"] == s) & (a["width"] == h)].sort_values("k")
                x = g["k"] / g["complexity"]
                top.plot(x, g["measured"], linestyle="none", marker=style.marker(j), markersize=2.5,
                         color=style.color(i), label=f"$s$={s:g}" if j == 0 else None)
                top.plot(x, g["bound"], color=style.color(i), linewidth=0.8, linestyle=("-", "--")[j % 2])
        style.log_axis(top, "x", subs=(1.0,))
        style.log_axis(top, "y", subs=(1.0,))
        top.set_xlabel("$k/s$")
        top.set_ylabel("test error at largest $m$")
        top.legend(ncol=4, fontsize=6, loc="lower left")
    top.set_title("approximation: oracle arm (points) vs bound + floor\n"
                  "(lines; solid/dashed: smaller/larger $h$)", loc="left")
    e = df[df["panel"] == "estimation"]
    if (e["status"] != "ok").all():
        _unavailable(bottom, f"estimation: {e['status'].iloc[0]}")
    else:
        ks = sorted(e["k"].unique())
        show = sorted({ks[0], ks[len(ks) // 2], ks[-1]})
        for i, k in enumerate(show):
            g = e[e["k"] == k].groupby("n_train")[["measured", "bound", "term"]].mean().reset_index()
            pos = g[g["measured"] > 0]
            bottom.plot(pos["n_train"], pos["measured"], marker="o", markersize=3, linestyle="none",
                        color=style.color(i), label=f"$k$={k:g}")
            bottom.plot(g["n_train"], g["bound"], color=style.color(i), linestyle="--", linewidth=0.8)
            bottom.plot(g["n_train"], g["term"], color=style.color(i), linestyle=":", linewidth=0.8)
        style.log_axis(bottom, "x", subs=(1.0,))
        style.log_axis(bottom, "y", subs=(1.0,))
        bottom.set_xlabel(style.LABELS["n_train"])
        bottom.set_ylabel("excess over largest $m$")
        bottom.legend(ncol=3, fontsize=6, loc="lower left")
    bottom.set_title("estimation: realized excess (points), bound's excess\n(dashed), its complexity term "
                     "(dotted)", loc="left")
    return fig
