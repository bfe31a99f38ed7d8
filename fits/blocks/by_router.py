"""Block `by_router`: every routed arm's per-cell k* and law (`fits.arm_fit.arm_block`), each arm's k*
from the estimator its router kind names (`simulations.arms`: `Arm.k_source`), and every arm's
estimands (docs/fits.md, "Estimands") per cell and the law fitted on each. Its tables: the estimands per
arm and cell (`estimands.parquet`) and each arm's k* and law along s (`kstar_arms.parquet`,
`fits.kstar_arms`)."""

from __future__ import annotations

import pandas as pd

from fits import kstar_arms
from fits.arm_fit import ESTIMAND_LAWS, arm_block, fit_arm
from fits.blocks.context import FitContext
from fits.cells import censored_column
from fits.summary import ci_text, fmt, markdown_table
from simulations.arms import arm_named

NAME = "by_router"
TITLE = "Per arm: the estimands and the law on each"
FACTORS = {"complexity": "b_s", "n_train": "b_m", "width": "b_h"}
TABLE = "estimands.parquet"
SHOWN = ("k_enough", "k_star", "k_one_se", "k_enough_2")


def skipped(reason: str) -> None:
    return None


def applies(ctx: FitContext) -> str | None:
    return None if "router" in ctx.store.columns else "the store has no routing controls"


def run(ctx: FitContext) -> dict:
    out = {}
    for name, part in ctx.arms.items():
        # the primary arm is the top level's fit, on the run's --k-source (fits.optimal_k)
        k_source = (None if name == ctx.primary else arm_named(name).k_source) or ctx.options.k_source
        fit = ctx.fitted if name == ctx.primary else fit_arm(part, ctx.options, k_source)
        out[name] = arm_block(part, *fit, ctx.options.metric, ctx.options.method) | {"k_source": k_source}
    return out


def law_table(value: dict) -> pd.DataFrame:
    """One row per arm, estimand and fitted factor: the exponent with its CIs (tidy; a law that could
    not be fitted is one row with its reason)."""
    rows = []
    for arm, block in value.items():
        for fit in block.get("laws_by_estimand", {}).values():
            base = {"arm": arm, "estimand": fit["estimand"], "share_cells_tight": fit["share_cells_tight"]}
            law = fit["law"]
            if law is None:
                rows.append(base | {"factor": "-", "reason": fit["reason"]})
            for factor, e in (law or {"exponents": {}})["exponents"].items():
                rows.append(base | {"factor": FACTORS.get(factor, factor), "estimate": e["estimate"],
                                    "ci95": e["ci95"], "ci95_bootstrap": e["ci95_bootstrap"],
                                    "n_cells": law["n_cells"], "reason": ""})
    return pd.DataFrame(rows, columns=["arm", "estimand", "factor", "estimate", "ci95", "ci95_bootstrap",
                                       "n_cells", "share_cells_tight", "reason"])


def report(value: dict) -> str:
    if not value:
        return "No routed arm.\n"
    laws = law_table(value)
    shown = laws.assign(estimate=[fmt(v) for v in laws["estimate"]],
                        ci95=[ci_text(v) if isinstance(v, list) else "-" for v in laws["ci95"]],
                        ci95_bootstrap=[ci_text(v) if isinstance(v, list) else "-"
                                        for v in laws["ci95_bootstrap"]],
                        share_cells_tight=[fmt(v) for v in laws["share_cells_tight"]])
    parts = ["Estimands, fixed in advance (docs/fits.md, \"Estimands\"): `k_enough` (the smallest k within "
             "5 % of the minimum seed-mean error; the primary one), `k_star` (the argmin), `k_one_se` (the "
             "smallest k within one SE of the seed-paired difference to the argmin), `k_enough_2` (2 %). "
             "CIs: seed-cluster bootstrap 95 %. Law exponents: the fit's CI (HC3 by default) and the "
             "bootstrap CI, censored cells left out; `share_cells_tight`: the share of cells whose CI of "
             "the estimand spans less than a factor of 2.", "",
             markdown_table(shown.drop(columns="reason" if not laws["reason"].fillna("").any() else [])
                            .astype(object).fillna("-")), ""]
    for arm, block in value.items():
        cells = pd.DataFrame(block["cells"])
        table = pd.DataFrame({
            "s": cells["complexity"], "m": cells["n_train"], "h": cells["width"],
            **{name: [f"{fmt(v, 0)} {ci_text(ci, 0)}" for v, ci in zip(cells[name], cells[f"{name}_ci"],
                                                                        strict=True)]
               for name in SHOWN}})
        parts += [f"**{arm}**", "", markdown_table(table), ""]
    return "\n".join(parts)


def summary(value: dict) -> str | None:
    lines = []
    for arm, block in value.items():
        fit = block.get("laws_by_estimand", {}).get(ESTIMAND_LAWS[0])
        if fit is None or fit["law"] is None:
            continue
        terms = ", ".join(f"{FACTORS.get(f, f)} {e['estimate']:+.2f} {ci_text(e['ci95_bootstrap'])}"
                          for f, e in fit["law"]["exponents"].items())
        lines.append(f"  {arm}: {terms}")
    return "Law of k_enough per arm (bootstrap CI):\n" + "\n".join(lines) if lines else None


def estimand_table(value: dict) -> pd.DataFrame:
    """One row per arm, cell and estimand: its value, seed-cluster 95 % CI and censoring (tidy; what
    the figure `kstar_estimands` draws)."""
    rows = []
    for arm, block in value.items():
        for c in block["cells"]:
            for name in SHOWN:
                lo, hi = c[f"{name}_ci"]
                rows.append({"arm": arm, "complexity": c["complexity"], "n_train": c["n_train"],
                             "width": c["width"], "n_experts": c["n_experts"], "estimand": name,
                             "k": c[name], "ci_low": lo, "ci_high": hi,
                             "censored": c[censored_column(name)] or ""})
    return pd.DataFrame(rows, columns=["arm", "complexity", "n_train", "width", "n_experts", "estimand", "k",
                                       "ci_low", "ci_high", "censored"])


def tables(ctx: FitContext, value: dict) -> dict[str, pd.DataFrame]:
    arms = {arm: (block["cells"], block["law"], block["k_source"]) for arm, block in value.items()}
    return {TABLE: estimand_table(value), kstar_arms.TABLE: kstar_arms.kstar_arms_table(arms)}
