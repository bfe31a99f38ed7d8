"""Figure `k_eval`: inference-time k. Every trained model is evaluated at each k_eval = 1..T without
retraining (`simulations.results.load_k_eval`); one panel per complexity s (columns) and router arm
(rows: learned, then the oracle when present), one curve per training k, ID test NMSE (seed means) against
k_eval. A ring marks each curve's best k_eval; the training k sits where a curve's marker is filled.
One slice, as in figure 1: the largest m and h and the most common T.
"""

from __future__ import annotations

import pandas as pd

from figures import style
from figures.error_vs_k import _k_ticks, select_slice
from figures.inputs import InputError
from simulations.arms import arm_names, primary, reference
from simulations.results import load_k_eval


def shown_arms() -> list[str]:
    """The arms drawn: the primary (learned router) and the reference (oracle router)."""
    return [primary().name, reference().name]

NAME = "k_eval"
TITLE = "Inference-time k: test error against k_eval, one curve per training k, per s and router arm"
INPUTS = ("results",)

def data(inputs) -> pd.DataFrame:
    long = load_k_eval(inputs.path("results"))
    if long.empty:
        raise InputError(f"figures: {inputs.path('results')} has no k_eval table (a store from before it); "
                         "rerun: python -m simulations.grid --overwrite")
    long = long.assign(arm=arm_names(long))
    long = select_slice(long[long["arm"].isin(shown_arms()) & ~long["diverged"].astype(bool)])
    long["nmse"] = long["test_mse_id"] / long["target_var"]
    out = long.groupby(["arm", "complexity", "k", "k_eval"], as_index=False)["nmse"].mean()
    key = ["arm", "complexity", "k", "k_eval"]
    best = out.loc[out.groupby(key[:-1])["nmse"].idxmin(), key]
    out["is_best"] = out.set_index(key).index.isin(best.set_index(key).index)
    for col in ("n_experts", "n_train", "width"):
        out[col] = long[col].iloc[0]
    return out.rename(columns={"k": "k_train"})


@style.styled
def plot(df: pd.DataFrame):
    arms = [a for a in shown_arms() if a in set(df["arm"])]
    levels = sorted(df["complexity"].unique())
    fig, axes = style.new_figure(len(arms), len(levels), height_in=2.0 * len(arms) + 0.8, columns=2,
                                 sharex=True, sharey=True)
    k_trains = sorted(df["k_train"].unique())
    for r, arm in enumerate(arms):
        for c, s in enumerate(levels):
            ax = axes[r, c]
            for i, k in enumerate(k_trains):
                cur = df[(df["arm"] == arm) & (df["complexity"] == s) & (df["k_train"] == k)]
                cur = cur.sort_values("k_eval")
                if cur.empty:
                    continue
                ax.plot(cur["k_eval"], cur["nmse"], color=style.color(i), linewidth=1,
                        label=f"{k:g}" if (r, c) == (0, 0) else None)
                at = cur[cur["k_eval"] == k]
                ax.plot(at["k_eval"], at["nmse"], linestyle="none", marker="o", markersize=4,
                        color=style.color(i))
                star = cur[cur["is_best"]]
                ax.plot(star["k_eval"], star["nmse"], linestyle="none", marker="o", markersize=8,
                        markerfacecolor="none", markeredgecolor=style.color(i))
            ax.set_title(f"{arm}, s = {s:g}", loc="left", fontsize="small")
            if (df["nmse"] > 0).all():
                style.log_axis(ax, "y")
        style.label(axes[r, 0], y="test NMSE (ID)")
    for ax in axes[-1]:
        _k_ticks(ax, df["k_eval"])
        style.label(ax, x="k_eval")
    first = df.iloc[0]
    style.top_legend(fig, axes[0, 0], ncol=min(len(k_trains), 8),
                     title=f"training k ($T$ = {first['n_experts']:g}, $m$ = {first['n_train']:g}, "
                     f"$h$ = {first['width']:g}; filled: k_eval = k_train, ring: best k_eval)")
    return fig
