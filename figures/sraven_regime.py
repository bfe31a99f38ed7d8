"""Figure `sraven_regime`: the SRAVEN regime rows (`make sraven-regime`), OOD accuracy against problems
seen, one line per setting.

Input: a parent directory (`--sraven-regime`, default results/sraven-regime/) holding one learning-curve
directory per setting, each written by `python -m simulations.families.sraven.curves` (its
`curves.parquet`: one row per model, evaluation step and split). A line is a setting's label (the curves'
`label`, else its directory's name; a directory holding several (k, R) gets a line per pair), its value
the mean over seeds at each evaluation. Left: per-feature OOD accuracy; right: whole-problem OOD
accuracy. Dotted lines mark chance in each line's colour: 1/V per feature and V^-F per problem, from the
curves' generator settings (F = 4 and V = 8 for curves written before they existed). The seed means and
counts are in the CSV.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from figures import style
from figures.inputs import SOURCES, InputError

NAME = "sraven_regime"
TITLE = "SRAVEN regime rows: OOD accuracy (per feature and whole problem) against problems seen"
INPUTS = ("sraven_regime",)
TABLE = "curves.parquet"
READ = ("label", "k", "n_rules", "seed", "step", "problems_seen", "split", "acc", "feat_acc")
PANELS = {"feat_acc": "per feature", "acc": "whole problem"}
SPLIT = "ood"
N_FEATURES, N_VALUES = 4, 8  # the generator's defaults (simulations.families.sraven.tasks)


def _curves(inputs) -> list[pd.DataFrame]:
    """Each setting directory's OOD curve rows, with its line name and generator settings."""
    root = inputs.path("sraven_regime")
    parts = []
    for path in sorted(root.glob(f"*/{TABLE}")):
        table = inputs.table("sraven_regime", f"{path.parent.name}/{TABLE}", READ)
        table = table[table["split"] == SPLIT]
        if table.empty:
            continue
        labels = table["label"].fillna("").astype(str)
        table = table.assign(label=labels.where(labels != "", path.parent.name))
        for col, default in (("n_features", N_FEATURES), ("n_values", N_VALUES)):
            if col not in table.columns:
                table = table.assign(**{col: default})
        pairs = table[["k", "n_rules"]].drop_duplicates()
        several = len(pairs) > 1
        suffix = (" k=" + table["k"].astype(str) + " R=" + table["n_rules"].astype(str)) if several else ""
        parts.append(table.assign(series=table["label"] + suffix))
    return parts


def data(inputs) -> pd.DataFrame:
    parts = _curves(inputs)
    if not parts:
        raise InputError(f"figures: {inputs.path('sraven_regime')} holds no OOD curves "
                         f"(made by: {SOURCES['sraven_regime'].command})")
    curves = pd.concat(parts, ignore_index=True)
    keys = ["series", "label", "k", "n_rules", "n_features", "n_values", "step", "problems_seen"]
    out = []
    for metric in PANELS:
        g = curves.groupby(keys, sort=False)[metric]
        summary = pd.concat([g.mean().rename("mean"), g.count().rename("n_seeds")], axis=1).reset_index()
        v, f = summary["n_values"].astype(float), summary["n_features"].astype(float)
        summary["chance"] = 1.0 / v if metric == "feat_acc" else v ** -f
        summary.insert(0, "metric", metric)
        out.append(summary)
    return pd.concat(out, ignore_index=True).sort_values(["metric", "series", "step"], kind="stable",
                                                         ignore_index=True)


@style.styled
def plot(df: pd.DataFrame):
    fig, axes = style.new_figure(1, 2, height_in=2.8, columns=2)
    series = list(dict.fromkeys(df["series"]))
    for ax, (metric, title) in zip(axes[0], PANELS.items(), strict=True):
        for i, name in enumerate(series):
            cur = df[(df["metric"] == metric) & (df["series"] == name)].sort_values("problems_seen")
            ax.plot(cur["problems_seen"], cur["mean"], color=style.color(i), marker=style.marker(i),
                    markersize=3, label=name)
            ax.axhline(cur["chance"].iloc[0], color=style.color(i), linestyle=":", linewidth=0.8)
        top = np.nanmax([df.loc[df["metric"] == metric, "mean"].max(), 0.0])
        ax.set_ylim(0, min(1.02, 1.1 * top) if top > 0 else 1)
        ax.set_title(f"OOD, {title}", loc="left", fontweight="bold")
        style.label(ax, x="problems seen", y=metric)
    axes[0, 0].plot([], [], color=style.GREY, linestyle=":", label="chance (1/V; $V^{-F}$)")
    style.top_legend(fig, axes[0, 0], ncol=min(len(series) + 1, 5),
                     title="setting (mean over seeds)")
    return fig
