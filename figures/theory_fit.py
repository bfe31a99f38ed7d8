"""The calibrated risk bound over the measured curves: loss against k per cell, mean over seeds with a
Student-t 95 % CI, and the bound at the constants fitted by `python -m fits.optimal_k` (`theory_fit` in
optimal_k.json; its curves in bound_curves.parquet): its approximation term (plus the fitted noise
floor), its estimation term (est_weight * P2's bound with the toolkit's R_m and d_N) and their total.
One row of panels per task complexity s, one column per (m, h); one colour per router arm when the store
has arms. The bound is the toolkit's derivation with fitted constants, so a total that misses the points
is a misfit to report, not to hide.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from figures import style
from figures.kstar import StaleFits
from figures.stats import seed_summary

NAME = "theory_fit"
TITLE = "Measured loss vs k per cell with the calibrated risk bound (approximation, estimation, total)"
INPUTS = ("results", "fits")
REQUIRES = (("fits", "optimal_k.json"), ("fits", "bound_curves.parquet"))

CELL = ["complexity", "n_train", "width", "n_experts"]


def theory_blocks(inputs) -> dict:
    """{arm: fitted theory block} from optimal_k.json (arm None without router arms); refuses missing
    fits with a one-line error naming the command."""
    doc = inputs.fits
    where = f"{inputs.path('fits')}/optimal_k.json"
    block = doc.get("theory_fit")
    if not block:
        raise StaleFits(f"figures: {where} has no theory_fit block (rerun: python -m fits.optimal_k)")
    arms = block.get("by_router") or {block.get("router"): block}
    fitted = {arm: b for arm, b in arms.items() if b.get("fitted")}
    if not fitted:
        raise StaleFits(f"figures: the risk bound was not fitted ({block.get('reason')}); "
                        "rerun: python -m fits.optimal_k")
    return fitted


def data(inputs) -> pd.DataFrame:
    r = inputs.results
    curves = inputs.table("fits", "bound_curves.parquet")
    frames = []
    for arm, b in theory_blocks(inputs).items():
        rows = r if arm is None else r[r["router"].astype(str) == arm]
        rows = rows[~rows["diverged"].astype(bool)]
        out = seed_summary(rows, [*CELL, "k"], b["metric"])
        out["router"] = arm or "all"
        bound = out[["router", *CELL, "k"]].merge(curves, how="left", on=["router", *CELL, "k"])
        if bound["total"].isna().any():
            raise StaleFits(f"figures: {inputs.path('fits')}/bound_curves.parquet lacks points of "
                            f"{inputs.path('results')}: the fits belong to other results "
                            "(rerun: python -m fits.optimal_k)")
        out["metric"] = b["metric"]
        out["approximation"] = bound["approximation"] + bound["floor"]
        out["estimation"] = bound["estimation"]
        out["total"] = bound["total"]
        frames.append(out)
    cols = ["router", "metric", *CELL, "k", "mean", "ci_lo", "ci_hi", "n", "approximation", "estimation",
            "total"]
    return pd.concat(frames, ignore_index=True)[cols]


@style.styled
def plot(df: pd.DataFrame):
    svals = sorted(df["complexity"].unique())
    mh = sorted({(m, h) for m, h in zip(df["n_train"], df["width"], strict=True)})
    fig, axes = style.new_figure(len(svals), len(mh), height_in=1.2 * len(svals) + 0.9, sharex=True,
                                 sharey=True)
    arms = list(dict.fromkeys(df["router"]))
    for i, s in enumerate(svals):
        for j, (m, h) in enumerate(mh):
            ax = axes[i, j]
            for a, arm in enumerate(arms):
                g = df[(df["complexity"] == s) & (df["n_train"] == m) & (df["width"] == h)
                       & (df["router"] == arm)].sort_values("k")
                if g.empty:
                    continue
                c = style.color(a)
                err = np.vstack([(g["mean"] - g["ci_lo"]).clip(lower=0).fillna(0),
                                 (g["ci_hi"] - g["mean"]).clip(lower=0).fillna(0)])
                ax.errorbar(g["k"], g["mean"], yerr=err, linestyle="none", marker="o", markersize=1.8,
                            color=c, elinewidth=0.5, capsize=0, alpha=0.8)
                ax.plot(g["k"], g["total"], color=c, linewidth=1.0)
                ax.plot(g["k"], g["approximation"], color=c, linewidth=0.7, linestyle="--")
                ax.plot(g["k"], g["estimation"], color=c, linewidth=0.7, linestyle=":")
            if i == 0:
                ax.set_title(f"$m$={m:g}, $h$={h:g}", fontsize=6.5)
            if j == 0:
                ax.set_ylabel(f"$s$ = {s:g}", fontsize=7)
            ax.tick_params(labelsize=5.5)
    # linear scale from 0: the estimation term may be orders of magnitude below the loss, and then it
    # lies on the axis rather than stretching a log scale until the curves are flat
    top = np.nanmax(np.r_[df["ci_hi"].to_numpy(float), df["mean"].to_numpy(float),
                          df["total"].to_numpy(float)])
    axes[0, 0].set_ylim(0.0, 1.08 * top)
    for j in range(len(mh)):
        axes[-1, j].set_xlabel("$k$", fontsize=7)
    first = axes[0, 0]
    for a, arm in enumerate(arms):
        first.plot([], [], color=style.color(a), marker="o", markersize=2.5, label=f"measured ({arm})")
    first.plot([], [], color=style.GREY, label="bound: total")
    first.plot([], [], color=style.GREY, linestyle="--", label="approximation + floor")
    first.plot([], [], color=style.GREY, linestyle=":", label="estimation")
    style.top_legend(fig, first, ncol=3, title=f"{df['metric'].iloc[0]}, mean and 95 % CI over seeds; "
                     "calibrated bound (fitted constants)")
    return fig
