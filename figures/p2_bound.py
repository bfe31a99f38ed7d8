"""Figure 5: P2's generalization bound against the measured generalization gap, one point per cell.

Bound: `theory.instantiated_estimation_bound(m, T, k, d, h, clip=...)`, P2's Theorem 1 with the
toolkit's own R_m(H) and d_N, in MSE units for a squared loss clipped to [-c, c] with c = 3 sd(y)
(= 3 sqrt(target_var); the clipping is what puts the loss into P2's [0, 1] range). Gap: ID test MSE
minus train MSE (the bound is about i.i.d. test error, so the OOD split does not enter), mean over
seeds with a Student-t 95 % CI; diverged seeds left out. Log-log with the y = x line: a valid bound puts
every point below it. Cells whose mean gap is not positive cannot sit on a log axis: they stay in the
CSV (`shown` = False) and their count is printed on the figure. Spearman's rho between bound and gap
(over cells) says whether the bound at least orders the cells right.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from figures import style
from figures.stats import seed_summary
from simulations.arms import primary_rows

NAME = "p2_bound"
TITLE = "P2's bound (toolkit's R_m and d_N) vs measured generalization gap per cell, with y = x"
INPUTS = ("results",)

CLIP_SDS = 3.0
CELL = ["complexity", "n_train", "width", "n_experts", "k"]


def data(inputs) -> pd.DataFrame:
    import theory  # lazily (sympy, ~1.5 s): only the figures that draw the theory pay it
    r = primary_rows(inputs.results)  # P2's bound is about the learned top-k MoE
    r = r[~r["diverged"].astype(bool)].assign(gap=r["test_mse_id"] - r["train_mse"])
    clip = CLIP_SDS * np.sqrt(r.groupby(CELL)["target_var"].first())
    out = seed_summary(r, CELL, "gap").join(clip.rename("clip"), on=CELL)
    out["bound"] = theory.instantiated_estimation_bound(
        out["n_train"].to_numpy(float), out["n_experts"].to_numpy(), out["k"].to_numpy(float),
        inputs.task_kwargs["d"], out["width"].to_numpy(float), clip=out["clip"].to_numpy(float))
    out["shown"] = out["mean"] > 0
    return out.rename(columns={"mean": "gap_mean", "ci_lo": "gap_ci_lo", "ci_hi": "gap_ci_hi"})


def _points(ax, df: pd.DataFrame) -> None:
    """The cells with a positive mean gap: colour = expert width h, marker = data size m."""
    widths, sizes = sorted(df["width"].unique()), sorted(df["n_train"].unique())
    shown = df[df["shown"]]
    for i, h in enumerate(widths):
        for j, m in enumerate(sizes):
            g = shown[(shown["width"] == h) & (shown["n_train"] == m)]
            if g.empty:
                continue
            lo = (g["gap_mean"] - g["gap_ci_lo"]).clip(lower=0)
            lo = np.minimum(lo, 0.999 * g["gap_mean"])  # a band reaching <= 0 is drawn down to the axis
            hi = (g["gap_ci_hi"] - g["gap_mean"]).clip(lower=0)
            ax.errorbar(g["bound"], g["gap_mean"], yerr=np.vstack([lo.fillna(0), hi.fillna(0)]),
                        linestyle="none", marker=style.marker(j), color=style.color(i), markersize=3.5,
                        elinewidth=0.6, capsize=0, alpha=0.85)


@style.styled
def plot(df: pd.DataFrame):
    # Top: the full picture with y = x (how far below the bound the gaps sit); bottom: zoomed on the
    # cells, for the trend of the gap along the bound.
    fig, axes = style.new_figure(2, 1, height_in=4.8)
    full, zoom = axes[0, 0], axes[1, 0]
    for ax in (full, zoom):
        _points(ax, df)
    for i, h in enumerate(sorted(df["width"].unique())):
        full.plot([], [], linestyle="none", marker="s", color=style.color(i), label=f"$h$ = {h:g}")
    for j, m in enumerate(sorted(df["n_train"].unique())):
        full.plot([], [], linestyle="none", marker=style.marker(j), color=style.GREY, label=f"$m$ = {m:g}")
    shown = df[df["shown"]]
    lo = min(shown["gap_mean"].min(), df["bound"].min()) if len(shown) else df["bound"].min()
    line = np.array([lo / 2, df["bound"].max() * 2])
    full.plot(line, line, color="black", linewidth=0.8, label="$y = x$")
    if len(shown):
        y_lo, y_hi = style.log_limits(shown["gap_mean"], shown["gap_ci_lo"], shown["gap_ci_hi"])
        zoom.set_ylim(y_lo, y_hi)
        full.set_ylim(min(y_lo, line[0]), max(y_hi, line[1]))
    for ax, subs in ((full, (1.0,)), (zoom, (1.0, 2.0, 5.0))):
        style.log_axis(ax, "x", subs=subs)
        style.log_axis(ax, "y", subs=subs)
        style.label(ax, x="p2_bound", y="gap")
        ax.set_xlabel(style.LABELS["p2_bound"] + " (MSE units)")
    full.set_title("all cells, with $y = x$", loc="left")
    zoom.set_title("zoomed on the cells", loc="left")
    ok = np.isfinite(df["gap_mean"])
    rho = stats.spearmanr(df.loc[ok, "bound"], df.loc[ok, "gap_mean"]).statistic if ok.sum() > 2 else np.nan
    n_hidden = int((~df["shown"]).sum())
    zoom.text(0.98, 0.02, f"Spearman $\\rho$ = {rho:.2f} over {int(ok.sum())} cells"
              + (f"\n{n_hidden} cells with gap $\\leq$ 0 not shown" if n_hidden else ""),
              transform=zoom.transAxes, ha="right", va="bottom", fontsize=6.5)
    style.top_legend(fig, full, ncol=3,
                     title="one point per cell $(s, m, h, T, k)$; mean, 95 % CI over seeds")
    return fig
