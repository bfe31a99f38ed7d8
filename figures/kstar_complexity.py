"""Figure 2: k* vs task complexity s, with the fitted law and its 95 % band, and the theory's k*.

One series per training-set size m (at most four levels), at the largest expert width h and the most
common T. Points are the per-cell k* that feeds the law (the fits' continuous k* by default) with
seed-cluster bootstrap 95 % CIs; hollow points are cells the law excludes (censored: k* at the edge of
the tested k). Solid lines: the law refitted from the fits' settings, with the confidence band of its
mean; dotted: `theory.continuous_optimum` at the same (m, h, T).
"""

from __future__ import annotations

import pandas as pd

from figures import kstar, style

NAME = "kstar_complexity"
TITLE = "k* vs task complexity: cells with bootstrap CIs, fitted law with 95 % band, theory's k*"
INPUTS = ("results", "fits")
REQUIRES = (("fits", "optimal_k.json"), ("fits", "law_band.parquet"))


def data(inputs) -> pd.DataFrame:
    cells = kstar.measured(inputs)
    return kstar.kstar_table(inputs, "complexity", "n_train", {"width": cells["width"].max()})


@style.styled
def plot(df: pd.DataFrame):
    fig, axes = style.new_figure(1, 1, height_in=3.0)
    ax = axes[0, 0]
    kstar.draw(ax, df)
    kstar.legend_handles(ax, df)
    first = df.iloc[0]
    style.top_legend(fig, ax, ncol=2, title=f"$h$ = {first['width']:g}, $T$ = {first['n_experts']:g}")
    return fig
