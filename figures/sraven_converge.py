"""Figure `sraven_converge`: the learning curves of a SRAVEN store trained with early stopping (the
converge preset), per-feature OOD accuracy against problems seen, one panel per rule pool size R (rows)
and estimator (columns), one line per k.

Input: the curves of a SRAVEN store (`--sraven-curves`, default results/sraven-converge; its
`curves-*.parquet`, `simulations.results.load_curves`): every model
checked every `val_every` steps until it stopped; a stopped model is frozen at its best checkpoint, so
its curve is flat after its stop. A line is the mean over seeds at each check; a dot marks each k's
median stop step (the step its seeds stopped at, or the cap). Dotted grey: chance (1/8 per feature).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from figures import style
from figures.inputs import SOURCES, InputError, one_line
from simulations.results import load_curves

NAME = "sraven_converge"
TITLE = "SRAVEN trained to a plateau: per-feature OOD accuracy against problems seen, per R and estimator"
INPUTS = ("sraven_curves",)
METRIC = "feat_acc_ood"
CHANCE = 1.0 / 8


def data(inputs) -> pd.DataFrame:
    root, command = inputs.path("sraven_curves"), SOURCES["sraven_curves"].command
    try:
        curves = load_curves(root)
    except Exception as exc:  # unreadable files
        raise InputError(f"figures: cannot read the curves of {root}: {one_line(exc)} (made by: "
                         f"{command})") from exc
    missing = [c for c in ("estimator", "n_rules", "k", "batch", "steps_run", METRIC) if c not in curves]
    if curves.empty or missing:
        raise InputError(f"figures: the curves of {root} lack {', '.join(missing) or 'rows'} (made by: "
                         f"{command})")
    curves = curves.assign(problems_seen=curves["step"] * curves["batch"])
    keys = ["estimator", "n_rules", "k"]
    g = curves.groupby([*keys, "step", "problems_seen"], sort=True)[METRIC]
    out = pd.concat([g.mean().rename("mean"), g.count().rename("n_seeds")], axis=1).reset_index()
    models = curves.drop_duplicates(["cell_id", "seed"])
    stop = models.groupby(keys)["steps_run"].median().rename("median_stop").reset_index()
    return out.merge(stop, on=keys, how="left").assign(chance=CHANCE)


@style.styled
def plot(df: pd.DataFrame):
    ests = list(dict.fromkeys(df["estimator"]))
    rules = sorted(df["n_rules"].unique())
    fig, axes = style.new_figure(len(rules), len(ests), height_in=1.9 * len(rules), columns=2, sharex=True,
                                 sharey=True)
    ks = sorted(df["k"].unique())
    for (r, n_rules), (c, est) in ((a, b) for a in enumerate(rules) for b in enumerate(ests)):
        ax = axes[r, c]
        for i, k in enumerate(ks):
            cur = df[(df["estimator"] == est) & (df["n_rules"] == n_rules) & (df["k"] == k)]
            cur = cur.sort_values("step")
            if cur.empty:
                continue
            ax.plot(cur["problems_seen"], cur["mean"], color=style.color(i), linewidth=1.0,
                    label=f"{k:g}" if (r, c) == (0, 0) else None)
            at = cur.iloc[int(np.argmin(np.abs(cur["step"].to_numpy() - cur["median_stop"].iloc[0])))]
            ax.plot(at["problems_seen"], at["mean"], linestyle="none", marker="o", markersize=3,
                    color=style.color(i))
        ax.axhline(CHANCE, color=style.GREY, linestyle=":", linewidth=0.8)
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{est}, R = {n_rules:g}", loc="left", fontweight="bold")
        if c == 0:
            style.label(ax, y="per-feature OOD acc.")
        if r == len(rules) - 1:
            style.label(ax, x="problems seen")
    axes[0, 0].plot([], [], linestyle="none", marker="o", markersize=3, color=style.GREY,
                    label="median stop")
    style.top_legend(fig, axes[0, 0], ncol=len(ks) + 1, title="training k (mean over seeds)")
    return fig
