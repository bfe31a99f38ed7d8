"""Figure 3: the primary arm's k* (the learned router: the top level of optimal_k.json; figure 2 draws
every arm) vs training-set size m (top) and vs expert width h (bottom).

One series per task complexity s (at most four levels). Top: at the largest width h; bottom: at the
largest m. Points: per-cell k* with seed-cluster bootstrap 95 % CIs (hollow: excluded from the law as
censored); solid: the fitted law with the 95 % band of its mean; dotted: `theory.continuous_optimum`,
the risk bound's argmin over real k at the theory's placeholder constants (not fitted to the runs).
"""

from __future__ import annotations

import pandas as pd

from figures import kstar, style
from simulations.arms import arm_named, primary

NAME = "kstar_data_width"
TITLE = "k* of the top-level arm (learned router) vs data size m and width h, fitted law, theory's k*"
INPUTS = ("results", "fits")
REQUIRES = (("fits", "optimal_k.json"), ("fits", "law_band.parquet"))

PANELS = (("n_train", "width"), ("width", "n_train"))  # (x, factor held at its largest level)


def data(inputs) -> pd.DataFrame:
    cells = kstar.measured(inputs)
    parts = [kstar.kstar_table(inputs, x, "complexity", {held: cells[held].max()}) for x, held in PANELS]
    return pd.concat(parts, ignore_index=True).assign(arm=inputs.fits.get("arm") or primary().name)


@style.styled
def plot(df: pd.DataFrame):
    fig, axes = style.new_figure(2, 1, height_in=4.6)
    for ax, (x, held) in zip(axes[:, 0], PANELS, strict=True):
        panel = df[df["x"] == x]
        kstar.draw(ax, panel)
        ax.set_title(f"at {kstar.symbol(held)} = {panel[held].iloc[0]:g}", loc="left")
    kstar.legend_handles(axes[0, 0], df)
    arm = arm_named(df["arm"].iloc[0]).label
    style.top_legend(fig, axes[0, 0], ncol=2,
                     title=f"{arm}: complexity $s$ ($T$ = {df['n_experts'].iloc[0]:g})")
    return fig
