"""Figure `controls`: every arm of the grid side by side, so the learned router is read against its
controls. Top row: test error relative to the route-free baseline (test NMSE / route_free_nmse: 1 is
what the best fixed mix of the true skills reaches without routing) against k, one curve per s, one
panel per arm (learned router; oracle router; teacher's skills as frozen experts behind a learned
router; dense MLP of width k * h as reference). Bottom row: routing recall on the ID test set (solid)
and its permuted-input chance level (dashed). One slice, as in figure 1: the largest m and h and the
most common T. Seed means with Student-t 95 % bands.
"""

from __future__ import annotations

import pandas as pd

from figures import style
from figures.error_vs_k import _k_ticks, select_slice
from figures.inputs import InputError
from figures.stats import seed_summary
from simulations.arms import arm_names
from simulations.arms import arms as all_arms

NAME = "controls"
TITLE = "Learned router vs its controls: error relative to the route-free baseline, and routing recall"
INPUTS = ("results",)

METRICS = ("rel_nmse_id", "routing_recall", "routing_recall_baseline")


def data(inputs) -> pd.DataFrame:
    r = inputs.results
    if "router" not in r.columns or "rel_nmse_id" not in r.columns:
        raise InputError(f"figures: {inputs.path('results')} has no routing controls (a store from before "
                         "them); rerun: python -m simulations.grid --overwrite")
    rows = select_slice(r)
    rows = rows.assign(arm=arm_names(rows))
    parts = [seed_summary(rows, ["arm", "complexity", "k"], m).assign(metric=m) for m in METRICS]
    out = pd.concat(parts, ignore_index=True)
    for col in ("n_experts", "n_train", "width"):
        out[col] = rows[col].iloc[0]
    return out.sort_values(["arm", "metric", "complexity", "k"], ignore_index=True)


@style.styled
def plot(df: pd.DataFrame):
    arms = [a for a in all_arms() if a.name in set(df["arm"])]
    fig, axes = style.new_figure(2, len(arms), height_in=4.4, columns=2, sharex=True, sharey="row")
    levels = sorted(df["complexity"].unique())
    for col, shown in enumerate(arms):
        arm = shown.name
        top, bottom = axes[0, col], axes[1, col]
        for i, s in enumerate(levels):
            for ax, metric, ls in ((top, "rel_nmse_id", "-"), (bottom, "routing_recall", "-"),
                                   (bottom, "routing_recall_baseline", ":")):
                cur = df[(df["arm"] == arm) & (df["complexity"] == s) & (df["metric"] == metric)]
                cur = cur.sort_values("k")
                if cur["mean"].notna().any():
                    first = (col, metric) == (0, "rel_nmse_id")
                    ax.plot(cur["k"], cur["mean"], color=style.color(i), linestyle=ls,
                            marker=style.marker(i) if ls == "-" else None, label=f"{s:g}" if first else None)
                    if ls == "-":
                        ax.fill_between(cur["k"], cur["ci_lo"], cur["ci_hi"], color=style.color(i),
                                        alpha=style.BAND_ALPHA, linewidth=0)
        top.axhline(1.0, color=style.GREY, linewidth=0.8)
        if col == 0:
            style.log_axis(top, "y")
        top.set_title(shown.label, loc="left", fontsize="small")
        if not shown.routes:
            bottom.text(0.5, 0.5, "no router", transform=bottom.transAxes, ha="center", color=style.GREY)
        _k_ticks(bottom, df["k"])
        style.label(bottom, x="k")
    style.label(axes[0, 0], y="test NMSE / route-free NMSE")
    style.label(axes[1, 0], y="routing recall (dotted: chance)")
    axes[1, 0].set_ylim(0, 1.05)
    first = df.iloc[0]
    style.top_legend(fig, axes[0, 0], ncol=len(levels),
                     title=f"complexity $s$ ($T$ = {first['n_experts']:g}, $m$ = {first['n_train']:g}, "
                     f"$h$ = {first['width']:g}; mean, 95 % CI over seeds)")
    return fig
