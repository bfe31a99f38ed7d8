"""Figure 6a (P3, Theorem 1 experiment): final loss of a Soft MoE layer learning ||X||_2 vs its experts n.

One curve per tokenization of X in R^10 (5 tokens x 2 dims, 2 tokens x 5 dims); the total expert
parameters are fixed (hidden width 10 d / n). A point is the mean over seeds of the final evaluation MSE
with a Student-t 95 % band; the dashed line is the best constant predictor (Var ||X||), which any model
with a bias can reach. Theorem 1 (`theory.softmoe`) says n = 1 cannot represent the target.
"""

from __future__ import annotations

import pandas as pd

from figures import style
from figures.stats import seed_summary
from simulations.families import SOFTMOE

NAME = "softmoe_single_expert"
TITLE = "Soft MoE learning ||X||_2: final loss vs number of experts, per tokenization (P3 Theorem 1)"
INPUTS = (SOFTMOE,)
REQUIRES = ((SOFTMOE, "single_expert/results.parquet",
             "python -m simulations.families.softmoe single-expert"),)


def data(inputs) -> pd.DataFrame:
    rows = inputs.table(SOFTMOE, "single_expert/results.parquet")
    out = seed_summary(rows, ["tokenization", "n_experts"], "final_loss")
    widths = rows.groupby(["tokenization", "n_experts"])["expert_width"].first()
    out = out.join(widths, on=["tokenization", "n_experts"])
    out["baseline_mse"] = rows["baseline_mse"].iloc[0]
    return out


@style.styled
def plot(df: pd.DataFrame):
    fig, axes = style.new_figure(1, 1, height_in=2.6)
    ax = axes[0, 0]
    for i, tok in enumerate(sorted(df["tokenization"].unique(), reverse=True)):
        cur = df[df["tokenization"] == tok].sort_values("n_experts")
        t, d = tok.split("x")
        ax.plot(cur["n_experts"], cur["mean"], color=style.color(i), marker=style.marker(i),
                label=f"{t} tokens x {d} dims")
        lo = cur["ci_lo"].fillna(cur["mean"]).clip(lower=cur["mean"].min() / 4)
        ax.fill_between(cur["n_experts"], lo, cur["ci_hi"].fillna(cur["mean"]), color=style.color(i),
                        alpha=style.BAND_ALPHA, linewidth=0)
    ax.axhline(df["baseline_mse"].iloc[0], color=style.GREY, linestyle="--",
               label=r"constant predictor (Var $t$)")
    ns = sorted(df["n_experts"].unique())
    ax.set_xscale("log")
    ax.set_xticks(ns)
    ax.set_xticklabels([str(n) for n in ns])
    ax.minorticks_off()
    if (df["mean"] > 0).all():
        style.log_axis(ax, "y")
    ax.set_xlabel(r"experts $n$ (total expert parameters fixed)")
    ax.set_ylabel(r"final MSE on $\|X\|_2$")
    style.top_legend(fig, ax, ncol=2, title="mean, 95 % CI over seeds")
    return fig
