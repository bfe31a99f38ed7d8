"""Figure 2: k* vs task complexity s for every routed arm of the grid, each with its intervals, beside
the theory's k*.

One panel per training-set size m (at most three levels), at the largest expert width h and the most
common T. Per arm (the learned router, the oracle router, the teacher's skills as experts, ...: every
arm the fits fitted; the dense MLP has no k*, its k is its width), one line through its cells' k* (the
estimand its law is fitted on: the smooth-fit k* by default, the argmin for an arm whose error is flat
past k = s r by construction), with seed-cluster bootstrap 95 % CIs as bars; hollow markers are cells
the law leaves out (censored: k* at the edge of the tested k, so only a bound). Dashed, with its shaded
band: the arm's fitted law of k* and the 95 % confidence band of its mean. Black dotted: the argmin
over real k of the theory's risk bound at its placeholder constants (`theory.continuous_optimum`), not
fitted to these runs (the calibrated bound is figure `theory_fit`). Grey dash-dotted: k = 1 and k = T,
the tested range. Drawn from the fits' kstar_arms.parquet (`fits.kstar_arms`); the theory is computed
here from the store's task parameters.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from figures import kstar, style
from figures.inputs import SOURCES, InputError
from simulations.arms import arm_named

NAME = "kstar_complexity"
TITLE = "k* vs task complexity per arm: cell k* with bootstrap CIs, each arm's fitted law, theory's k*"
INPUTS = ("results", "fits")
TABLE = "kstar_arms.parquet"  # written by the fits (fits.kstar_arms), with these columns
COLUMNS = ("arm", "k_source", "kind", "complexity", "n_train", "width", "n_experts", "k_star", "ci_lo",
           "ci_hi", "in_law", "censored")
REQUIRES = (("fits", "optimal_k.json"), ("fits", TABLE))

THEORY = "theory: argmin over real $k$ of the risk bound, placeholder constants (not fitted)"
ESTIMAND = {"continuous": "smooth-fit $k^*$", "discrete": "argmin $k$", "enough": "smallest $k$ within 5 %",
            "enough_2": "smallest $k$ within 2 %", "one_se": "smallest $k$ within one paired SE"}
OUT = ["kind", "arm", "label", "k_source", "metric", "complexity", "n_train", "width", "n_experts", "k_star",
       "ci_lo", "ci_hi", "in_law", "censored"]


def arm_label(name: str, k_source: str, r: float, has_law: bool) -> str:
    """The legend entry of an arm: what it is (the arms registry's label, naming the router where the
    experts are not the default ones), which k* is drawn, what fixes it by construction (with the
    replicas per skill r = T / S), and whether no law was fitted."""
    try:
        arm = arm_named(name)
    except ValueError as exc:
        raise InputError(f"figures: {TABLE} names an unknown arm ({exc}; rerun: "
                         f"{SOURCES['fits'].command})") from exc
    text = arm.label if arm.experts.default or arm.router.label in arm.label else \
        f"{arm.label}, {arm.router.label}"
    text += f": {ESTIMAND.get(k_source, k_source)}"
    if arm.k_star_note:
        text += f" ({arm.k_star_note}; $r$ = {r:g})"
    return text if has_law else f"{text}; law not fitted"


def _fitted_arms(inputs) -> list[str]:
    doc = inputs.fits
    return list(doc["by_router"]) if isinstance(doc.get("by_router"), dict) else [doc.get("arm")]


def data(inputs) -> pd.DataFrame:
    table = inputs.table("fits", TABLE, COLUMNS)
    arms = list(dict.fromkeys(table.loc[table["kind"] == "cell", "arm"]))
    if arms != _fitted_arms(inputs):
        raise kstar.StaleFits(f"figures: {inputs.path('fits') / TABLE} holds the arms {', '.join(arms)}, "
                              f"optimal_k.json {', '.join(map(str, _fitted_arms(inputs)))}: they belong to "
                              f"other fits (rerun: {SOURCES['fits'].command})")
    cells = table[table["kind"] == "cell"]
    h = cells["width"].max()
    t = cells.loc[cells["width"] == h, "n_experts"].mode().max()
    at = (table["width"] == h) & (table["n_experts"] == t)
    at &= table["n_train"].isin(kstar.levels(cells.loc[(cells["width"] == h) & (cells["n_experts"] == t),
                                                       "n_train"], at_most=3))
    rows = table[at].copy()
    r = t / inputs.task_kwargs["n_skills"]
    labels = {a: arm_label(a, g["k_source"].iloc[0], r, (g["kind"] == "law").any())
              for a, g in rows.groupby("arm", sort=False)}
    rows["label"] = rows["arm"].map(labels)
    parts = [rows]
    for m, g in rows[rows["kind"] == "cell"].groupby("n_train"):
        xs = np.sort(g["complexity"].unique())
        grid = pd.DataFrame({"complexity": np.geomspace(xs.min(), xs.max(), kstar.N_CURVE) if len(xs) > 1
                             else xs, "n_train": m, "width": h, "n_experts": t})
        parts.append(grid.assign(k_star=kstar.theory_k_star(grid, inputs.task_kwargs), kind="theory",
                                 label=THEORY))
    out = pd.concat(parts, ignore_index=True).assign(metric=inputs.fits.get("metric"))
    out = out[OUT].astype({c: object for c in ("kind", "arm", "label", "k_source", "in_law", "censored")})
    return out.where(out.notna(), np.nan).reset_index(drop=True)


def _arm(ax, g: pd.DataFrame, i: int, n_arms: int) -> None:
    """One arm in one panel: its cells' k* joined (labelled), CI bars, hollow excluded cells, law band."""
    c, mark = style.color(i), style.marker(i)
    pts = g[g["kind"] == "cell"].sort_values("complexity")
    x = pts["complexity"].to_numpy(float) * (1 + 0.04 * (i - (n_arms - 1) / 2))  # dodge the bars apart
    y = pts["k_star"].to_numpy(float)
    err = np.vstack([y - pts["ci_lo"].to_numpy(float), pts["ci_hi"].to_numpy(float) - y])
    ax.errorbar(x, y, yerr=np.clip(np.nan_to_num(err), 0, None), linestyle="none", ecolor=c, capsize=2,
                elinewidth=0.8)
    ax.plot(x, y, color=c, marker=mark, label=pts["label"].iloc[0], gid=f"arm:{pts['arm'].iloc[0]}")
    out = ~pts["in_law"].astype(bool).to_numpy()
    ax.plot(x[out], y[out], linestyle="none", marker=mark, markerfacecolor="white", markeredgecolor=c,
            zorder=3)
    law = g[g["kind"] == "law"].sort_values("complexity")
    if len(law):
        ax.plot(law["complexity"], law["k_star"], color=c, linestyle="--", linewidth=0.9)
        ax.fill_between(law["complexity"], law["ci_lo"], law["ci_hi"], color=c, alpha=style.BAND_ALPHA,
                        linewidth=0)


def _keys(ax) -> None:
    """Legend entries for what every arm shares: the law's style, the bars, the hollow markers, [1, T]."""
    ax.plot([], [], color=style.GREY, linestyle="--", linewidth=0.9,
            label="dashed, shaded: the arm's fitted law of $k^*$, 95 % band of its mean")
    ax.errorbar([], [], yerr=[], color=style.GREY, marker="o", linestyle="none", capsize=2,
                label="bars: seed-cluster bootstrap 95 % CI of a cell's $k^*$")
    ax.plot([], [], color=style.GREY, marker="o", markerfacecolor="white", linestyle="none",
            label="hollow: censored (only a bound) or left out of the law")
    ax.plot([], [], color=style.GREY, linewidth=0.6, linestyle="-.",
            label="$k$ = 1 and $k$ = $T$: tested range")


@style.styled
def plot(df: pd.DataFrame):
    panels = sorted(df["n_train"].unique())
    arms = list(dict.fromkeys(df.loc[df["kind"] != "theory", "arm"]))
    fig, axes = style.new_figure(1, len(panels), height_in=3.6, columns=2, sharey=True)
    t = df["n_experts"].iloc[0]
    for ax, m in zip(axes[0], panels, strict=True):
        part = df[df["n_train"] == m]
        for i, arm in enumerate(arms):
            if (part["arm"] == arm).any():
                _arm(ax, part[part["arm"] == arm], i, len(arms))
        th = part[part["kind"] == "theory"].sort_values("complexity")
        ax.plot(th["complexity"], th["k_star"], color="black", linestyle=":", linewidth=1.6, label=THEORY)
        for bound in (1, t):
            ax.axhline(bound, color=style.GREY, linewidth=0.6, linestyle="-.")
        style.log_axis(ax, "x")
        style.log_axis(ax, "y")
        tested = np.sort(part.loc[part["kind"] == "cell", "complexity"].unique())
        ax.set_xticks(tested, [f"{v:g}" for v in tested])
        ax.set_ylim(0.7, 1.4 * t)
        ax.set_title(f"$m$ = {m:g}", loc="left")
        style.label(ax, x="complexity")
    style.label(axes[0, 0], y="k_star")
    _keys(axes[0, 0])
    first = df.iloc[0]
    metric = style.LABELS.get(first["metric"], first["metric"])
    style.top_legend(fig, axes[0, 0], ncol=1, title=f"$k^*$ per arm on {metric}, at $h$ = "
                     f"{first['width']:g}, $T$ = {t:g}")
    return fig
