"""Figure `sraven_kstar`: SRAVEN's k* against the rule pool size R, with the fitted law k* = a R^b and
its 95 % band, from `python -m fits.optimal_k` run on the SRAVEN store (error = 1 - accuracy, the
metric the fits were run with).

One series per number of problems per model (at most four), at the widest experts and the most common
T. Points are the per-cell k* that feeds the law (the fits' continuous k* by default) with seed-cluster
bootstrap 95 % CIs; hollow points are cells the law excludes (censored: k* at the smallest or largest
tested k, or the smooth fit's k* on the edge). The legend gives the exponent b with its HC3 and
bootstrap 95 % intervals. No theory curve: the toolkit's theory describes the regression task
(docs/fits.md, SRAVEN). The law's band is read from the fits' law_band.parquet.
"""

from __future__ import annotations

import pandas as pd

from figures import kstar, style
from simulations.families import SRAVEN

NAME = "sraven_kstar"
TITLE = "SRAVEN k* vs rule pool size R: cells with bootstrap CIs, fitted law with 95 % band and CIs on b"
INPUTS = (SRAVEN, "sraven_fits")
REQUIRES = (("sraven_fits", "optimal_k.json"), ("sraven_fits", "law_band.parquet"))

RENAME = {"complexity": "n_rules", "n_train": "problems", "width": "d_expert"}


def data(inputs) -> pd.DataFrame:
    cells = kstar.measured(inputs, "sraven_fits")
    out = kstar.kstar_table(inputs, "complexity", "n_train", {"width": cells["width"].max()},
                            sources=(SRAVEN, "sraven_fits"), theory=False)
    out = out.rename(columns=RENAME)
    out["x"], out["series"] = out["x"].map(RENAME), out["series"].map(RENAME)
    doc = inputs.sraven_fits
    b = ((doc.get("law") or {}).get("exponents") or {}).get("complexity") or {}
    ci, boot = b.get("ci95") or [None, None], b.get("ci95_bootstrap") or [None, None]
    out["metric"] = doc.get("error") or doc.get("metric")
    out["b_R"] = b.get("estimate") if b.get("fitted") else None
    out["b_R_ci_lo"], out["b_R_ci_hi"] = ci
    out["b_R_boot_lo"], out["b_R_boot_hi"] = boot
    return out.astype({c: float for c in ("b_R", "b_R_ci_lo", "b_R_ci_hi", "b_R_boot_lo", "b_R_boot_hi")})


def _interval(lo, hi) -> str:
    return "-" if pd.isna(lo) or pd.isna(hi) else f"[{lo:.2f}, {hi:.2f}]"


@style.styled
def plot(df: pd.DataFrame):
    fig, axes = style.new_figure(1, 1, height_in=3.0)
    ax = axes[0, 0]
    kstar.draw(ax, df, symbols={"problems": "problems"})
    first = df.iloc[0]
    if pd.notna(first["b_R"]):
        ax.plot([], [], color=style.GREY, label="fitted law $k^* = a R^b$, 95 % band")
        hc3 = _interval(first["b_R_ci_lo"], first["b_R_ci_hi"])
        boot = _interval(first["b_R_boot_lo"], first["b_R_boot_hi"])
        ax.text(0.98, 0.04, f"$b$ = {first['b_R']:.2f}\n95 % CI {hc3} (HC3)\n{boot} (seed bootstrap)",
                transform=ax.transAxes, ha="right", va="bottom", fontsize=6.5)
    else:
        ax.plot([], [], linestyle="none", label="(law not fitted: see report.md)")
    ax.errorbar([], [], yerr=[], color=style.GREY, marker="o", linestyle="none", label="cell $k^*$, 95 % CI")
    ax.plot([], [], color=style.GREY, marker="o", markerfacecolor="white", linestyle="none",
            label="censored / excluded")
    style.top_legend(fig, ax, ncol=2, title=f"SRAVEN, error = {first['metric']}; $d_{{expert}}$ = "
                     f"{first['d_expert']:g}, $T$ = {first['n_experts']:g}")
    return fig
