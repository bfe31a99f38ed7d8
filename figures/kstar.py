"""Shared data and drawing for the k* figures (2 and 3): measured k* per cell, the fitted law with its
95 % confidence band, and the theory's k*, along one factor with one series per level of another.

The law's band is read from `law_band.parquet`, which the fits write beside `optimal_k.json` for every
curve a panel can draw (`fits.law_grid`); a curve the table lacks means the fits belong to other cells
(stale), and the figure refuses to draw.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from figures import style
from figures.inputs import SOURCES, InputError

N_CURVE = 60  # points on each law / theory curve (as the fits' law_band.parquet)
BAND = "law_band.parquet"
# What the theory's curve is: `theory.continuous_optimum` at the theory's placeholder constants, not the
# bound calibrated on the runs (figure theory_fit).
THEORY = "theory: risk-bound argmin over real $k$,\nplaceholder constants (not fitted)"


class StaleFits(InputError):
    """The fits output lacks what the figure draws, or does not match the cells it should describe."""


def law_band(inputs, grid: pd.DataFrame, x: str, series: str, fixed: dict,
             fits: str = "fits") -> pd.DataFrame:
    """The fitted law's k* and its 95 % confidence band (for the mean of log k*) on the curve `grid` (N_CURVE
    values of `x` at one level of `series`, the factor of `fixed` held and one T), read from the fits'
    law_band.parquet; NaN where no law was fitted. `fits`: the fits input, e.g. the SRAVEN one."""
    out = grid.copy()
    if getattr(inputs, fits).get("law") is None:
        out[["k_star", "ci_lo", "ci_hi"]] = np.nan
        return out
    band = inputs.table(fits, BAND)
    ((held, value),) = fixed.items()
    level, t = grid[series].iloc[0], grid["n_experts"].iloc[0]
    sel = band[(band["x"] == x) & (band["series"] == series) & (band["held"] == held)
               & (band["held_level"] == value) & (band["series_level"] == level) & (band["n_experts"] == t)]
    sel = sel.sort_values("point")
    if len(sel) != len(grid) or not np.allclose(sel["x_value"].to_numpy(), grid[x].to_numpy(float)):
        raise StaleFits(f"figures: {inputs.path(fits)}/{BAND} has no law curve along {x} for {series} = "
                        f"{level:g} at {held} = {value:g}, T = {t:g}: it belongs to other cells "
                        f"(rerun: {SOURCES[fits].command})")
    for col in ("k_star", "ci_lo", "ci_hi"):
        out[col] = sel[col].to_numpy()
    return out


def theory_k_star(grid: pd.DataFrame, task_kwargs: dict) -> np.ndarray:
    """The theory's k* over real k (`theory.continuous_optimum`: the same relaxation as the continuous
    k* that feeds the law; the theory's defaults but the store's task parameters) at the rows of `grid`
    (columns complexity, n_train, width, n_experts)."""
    import theory  # lazily (sympy, ~1.5 s): only the figures that draw the theory pay it

    args = [grid[c].to_numpy(dtype=float) for c in ("complexity", "n_train", "width", "n_experts")]
    return theory.continuous_optimum(*args, **task_kwargs)["k_star"].to_numpy(dtype=float)


def measured(inputs, fits: str = "fits") -> pd.DataFrame:
    """Per cell: the k* that feeds the law (continuous or discrete, as the fits chose) with its bootstrap
    95 % CI, and whether the law excluded the cell (censored, or the smooth fit's k* on the edge)."""
    doc = getattr(inputs, fits)
    cells = pd.DataFrame(doc["cells"])
    cont = (doc.get("law") or {}).get("k_source", "continuous") == "continuous"
    col = "k_star_cont" if cont else "k_star"
    ci = np.array([c if c is not None else [np.nan, np.nan] for c in cells[col + "_ci"]], dtype=float)
    ci = np.where(np.isfinite(ci), ci, np.nan)
    censored = cells["censored"].fillna(False).astype(str).isin(["low", "high"])
    out = cells[["complexity", "n_train", "width", "n_experts"]].copy()
    out["k_star"] = cells[col].astype(float)
    out["ci_lo"], out["ci_hi"] = ci[:, 0], ci[:, 1]
    out["in_law"] = ~censored & ~(cells["cont_at_edge"].astype(bool) if cont else False)
    out["censored"] = cells["censored"].where(censored, "no")
    return out


def levels(values, at_most: int = 4) -> list:
    """At most `at_most` evenly spread levels of a factor (all of them when there are few)."""
    u = np.sort(np.unique(values))
    if len(u) <= at_most:
        return list(u)
    return list(u[np.unique(np.round(np.linspace(0, len(u) - 1, at_most)).astype(int))])


def kstar_table(inputs, x: str, series: str, fixed: dict, sources=("results", "fits"),
                theory: bool = True) -> pd.DataFrame:
    """Tidy rows for one panel: k* against factor `x`, one series per level of `series`, the remaining
    factor held at `fixed`; `kind` is measured (cells, with bootstrap CI), law (fitted, with 95 % band)
    or theory (`theory.continuous_optimum`; only with `theory`). `sources`: the (store, fits) inputs."""
    cells = measured(inputs, sources[1])
    for f, v in fixed.items():
        cells = cells[cells[f] == v]
    t = int(cells["n_experts"].mode().max())
    cells = cells[cells["n_experts"] == t]
    parts = []
    for level in levels(cells[series]):
        pts = cells[cells[series] == level].sort_values(x)
        parts.append(pts.assign(kind="measured"))
        xs = np.sort(pts[x].unique())
        grid = pd.DataFrame({x: np.geomspace(xs.min(), xs.max(), N_CURVE) if len(xs) > 1 else xs})
        grid[series] = level
        for f, v in fixed.items():
            grid[f] = v
        grid["n_experts"] = t
        parts.append(law_band(inputs, grid, x, series, fixed, sources[1]).assign(kind="law"))
        if theory:
            parts.append(grid.assign(k_star=theory_k_star(grid, inputs.task_kwargs), kind="theory"))
    out = pd.concat(parts, ignore_index=True)
    out.insert(0, "x", x)
    out.insert(1, "series", series)
    cols = ["x", "series", "kind", "complexity", "n_train", "width", "n_experts", "k_star", "ci_lo", "ci_hi",
            "in_law", "censored"]
    return out[cols]


def draw(ax, df: pd.DataFrame, symbols: dict | None = None) -> None:
    """Draw one panel of `kstar_table` rows: law line + band, theory dashed, measured points + CI
    (hollow when the law excluded the cell), one colour per series level; log-log axes. `symbols` names
    the series factor in the legend when it is not one of the papers' (`symbol`)."""
    x, series = df["x"].iloc[0], df["series"].iloc[0]
    for i, level in enumerate(sorted(df[series].unique())):
        c = style.color(i)
        g = df[df[series] == level]
        law = g[g["kind"] == "law"].sort_values(x)
        name = (symbols or {}).get(series) or symbol(series)
        ax.plot([], [], color=c, marker=style.marker(i), label=f"{name} = {level:g}")
        if law["k_star"].notna().any():
            ax.plot(law[x], law["k_star"], color=c)
            ax.fill_between(law[x], law["ci_lo"], law["ci_hi"], color=c, alpha=style.BAND_ALPHA, linewidth=0)
        th = g[g["kind"] == "theory"].sort_values(x)
        ax.plot(th[x], th["k_star"], color=c, linestyle=":", linewidth=1.6)
        pts = g[g["kind"] == "measured"]
        for in_law, face in ((True, c), (False, "white")):
            p = pts[pts["in_law"] == in_law]
            err = np.vstack([p["k_star"] - p["ci_lo"], p["ci_hi"] - p["k_star"]]).clip(min=0)
            ax.errorbar(p[x], p["k_star"], yerr=np.where(np.isfinite(err), err, 0), linestyle="none",
                        marker=style.marker(i), markerfacecolor=face, markeredgecolor=c, ecolor=c,
                        capsize=2, elinewidth=0.8)
    style.log_axis(ax, "x")
    style.log_axis(ax, "y")
    tested = np.sort(df.loc[df["kind"] == "measured", x].unique())
    ax.set_xticks(tested, [f"{v:g}" for v in tested])
    t = df["n_experts"].max()
    for bound in (1, t):  # k* is only meaningful in [1, T]
        ax.axhline(bound, color=style.GREY, linewidth=0.6, linestyle="-.")
    ax.set_ylim(0.7, 1.4 * t)
    style.label(ax, x=x, y="k_star")


def legend_handles(ax, df: pd.DataFrame):
    """Extra legend entries explaining the line styles and markers of `draw`."""
    law = df[df["kind"] == "law"]
    if law["k_star"].notna().any():
        ax.plot([], [], color=style.GREY, label="fitted law, 95 % band of its mean")
    else:
        ax.plot([], [], linestyle="none", label="(law not fitted: see report.md)")
    ax.plot([], [], color=style.GREY, linestyle=":", linewidth=1.6, label=THEORY)
    ax.errorbar([], [], yerr=[], color=style.GREY, marker="o", linestyle="none", label="cell $k^*$, 95 % CI")
    ax.plot([], [], color=style.GREY, marker="o", markerfacecolor="white", linestyle="none",
            label="censored / excluded")


def symbol(factor: str) -> str:
    """The papers' symbol of a factor, for legends and titles."""
    return {"complexity": "$s$", "n_train": "$m$", "width": "$h$", "n_experts": "$T$"}[factor]
