"""Figure 6b (P3, Algorithm 1): test accuracy when only k of n experts are kept per input at inference.

One panel per n; x is the fraction k / n of experts kept (1 = all experts). Algorithm 1 keeps the k
experts with the largest combine-weight column sums; the baseline keeps k random experts per input
(mean over draws and seeds, band: +- 1 standard deviation over the random draws, averaged over seeds).
Points are means over the training seeds. The panel titles give Algorithm 1's mean z-score over random
at the smallest k / n.
"""

from __future__ import annotations

import math

import pandas as pd

from figures import style
from simulations.families import SOFTMOE
from simulations.families.softmoe.expert_drop import summarize

NAME = "softmoe_expert_drop"
TITLE = "Soft MoE expert selection: accuracy vs fraction of experts kept, Algorithm 1 vs random (P3)"
INPUTS = (SOFTMOE,)
REQUIRES = ((SOFTMOE, "expert_drop/results.parquet", "python -m simulations.families.softmoe expert-drop"),)

METHODS = {"algorithm1": "Algorithm 1 (largest combine sums)", "random": "random k (mean +- sd)"}


def data(inputs) -> pd.DataFrame:
    rows = inputs.table(SOFTMOE, "expert_drop/results.parquet")
    summary = summarize(rows)
    parts = []
    for method, col, sd in (("algorithm1", "accuracy_algorithm1", None),
                            ("random", "accuracy_random_mean", "accuracy_random_std")):
        part = summary[["n_experts", "k", "keep_frac", "z_score"]].copy()
        part["method"], part["accuracy"] = method, summary[col]
        part["sd"] = summary[sd] if sd else 0.0
        parts.append(part)
    full = rows[rows["method"] == "all"].groupby("n_experts", as_index=False)["accuracy"].mean()
    for method in METHODS:  # both curves end at the all-experts accuracy (k = n)
        parts.append(full.assign(k=full["n_experts"], keep_frac=1.0, z_score=float("nan"), method=method,
                                 sd=0.0))
    out = pd.concat(parts, ignore_index=True)
    return out[["n_experts", "k", "keep_frac", "method", "accuracy", "sd", "z_score"]].sort_values(
        ["n_experts", "method", "keep_frac"], ignore_index=True)


@style.styled
def plot(df: pd.DataFrame):
    ns = sorted(df["n_experts"].unique())
    ncols = 2 if len(ns) > 1 else 1
    nrows = math.ceil(len(ns) / ncols)
    fig, axes = style.new_figure(nrows, ncols, height_in=1.25 * nrows + 0.6, sharex=True, sharey=True)
    for ax, n in zip(axes.flat, ns, strict=False):
        for i, method in enumerate(METHODS):
            cur = df[(df["n_experts"] == n) & (df["method"] == method)].sort_values("keep_frac")
            ax.plot(cur["keep_frac"], cur["accuracy"], color=style.color(i), marker=style.marker(i),
                    markersize=3, label=METHODS[method])
            if method == "random":
                ax.fill_between(cur["keep_frac"], cur["accuracy"] - cur["sd"], cur["accuracy"] + cur["sd"],
                                color=style.color(i), alpha=style.BAND_ALPHA, linewidth=0)
        z = df[(df["n_experts"] == n) & (df["method"] == "algorithm1")].dropna(subset=["z_score"])
        z_txt = f", z = {z.sort_values('keep_frac')['z_score'].iloc[0]:.0f}" if len(z) else ""
        ax.set_title(f"$n$ = {n}{z_txt}", loc="left")
        ax.set_xscale("log", base=2)
        fracs = sorted(df["keep_frac"].unique())
        ax.set_xticks(fracs)
        ax.set_xticklabels([f"1/{round(1 / f)}" if f < 1 else "1" for f in fracs])
        ax.minorticks_off()
    for ax in axes.flat[len(ns):]:
        ax.set_visible(False)
    for ax in axes.flat[max(0, len(ns) - ncols):len(ns)]:  # the lowest visible panel of each column
        ax.xaxis.set_tick_params(labelbottom=True)
        ax.set_xlabel(r"fraction of experts kept $k/n$")
    for ax in axes[:, 0]:
        ax.set_ylabel("test accuracy")
    style.top_legend(fig, axes[0, 0], ncol=1)
    return fig
