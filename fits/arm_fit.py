"""One arm's per-cell k* and law of k*, and its entry in the `by_router` block of optimal_k.json."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from fits.cells import ESTIMANDS, CellFits, cell_optimal_k, censored_column
from fits.data import FitInputError, law_rows, metric_column
from fits.families import family_of
from fits.law import ESTIMAND_OF, LawFit, LawNotIdentified, fit_law, wald_tests
from fits.m_direction import direction_in_m
from fits.options import FitOptions
from fits.summary import law_summary
from fits.theory.law_comparison import predicted_exponents, theory_kwargs


class ArmFit(NamedTuple):
    """The per-cell fits of an arm, its law (None when not identified) and why it was not fitted."""

    cells: CellFits
    law: LawFit | None
    reason: str | None


def fit_arm(df: pd.DataFrame, options: FitOptions, k_source: str | None = None) -> ArmFit:
    """Per-cell k* and the law of one arm's rows (k* from `k_source`, default options.k_source), on the
    rows `fits.data.law_rows` keeps."""
    rows, notes = law_rows(df, metric_column(options.metric, family_of(df)))
    try:
        cf = cell_optimal_k(rows, options.metric, n_boot=options.bootstrap, seed=options.seed,
                            shape=options.shape)
    except ValueError as exc:
        raise FitInputError(str(exc)) from exc
    cf.notes[:0] = notes
    try:
        return ArmFit(cf, fit_law(cf, method=options.method, k_source=k_source or options.k_source), None)
    except LawNotIdentified as exc:
        return ArmFit(cf, None, str(exc))


# The estimands the law is fitted on for every arm (k_source names, fits.law.ESTIMAND_OF), primary first.
ESTIMAND_LAWS = ("enough", "discrete", "one_se", "enough_2")


def _tight(ci: tuple[float, float]) -> bool:
    """A discrete estimand's CI spans less than a factor of 2 (the cell pins it down)."""
    lo, hi = ci
    return bool(np.isfinite(lo) and np.isfinite(hi) and hi < 2 * lo)


def estimand_laws(cf: CellFits, method: str) -> dict:
    """The law of k* fitted on each estimand of ESTIMAND_LAWS: exponents with their (HC3 or the
    method's) and seed-cluster bootstrap CIs, cells used, leave-one-level-out errors; or why not."""
    out = {}
    for src in ESTIMAND_LAWS:
        name = ESTIMAND_OF[src]
        share = float(np.mean([_tight(ci) for ci in cf.cells[f"{name}_ci"]])) if len(cf.cells) else np.nan
        try:
            law = fit_law(cf, method=method, k_source=src)
        except LawNotIdentified as exc:
            out[src] = {"estimand": name, "share_cells_tight": share, "law": None, "reason": str(exc)}
            continue
        exps = {r.factor: {"estimate": r.estimate, "ci95": [r.ci_low, r.ci_high],
                           "ci95_bootstrap": [r.boot_ci_low, r.boot_ci_high], "n_levels": r.n_levels}
                for r in law.exponents.itertuples() if r.factor in law.factors}
        out[src] = {"estimand": name, "share_cells_tight": share,
                    "law": {"exponents": exps, "intercept": law.intercept, "n_cells": law.n_cells,
                            "r2": law.r2, "leave_one_level_out": law.lolo.to_dict(orient="records"),
                            "notes": law.notes}}
    return out


def arm_block(df: pd.DataFrame, cf: CellFits, law: LawFit | None, reason: str | None, metric: str,
              method: str = "hc3") -> dict:
    """One arm's answer for `by_router`: the law (shaped like the top-level `law`), tests of the
    complexity exponent against 0 and 1, the law on each estimand (`estimand_laws`), and per cell every
    estimand with its CI beside the theory's k* and the routing recall at k* (censored cells say so:
    their k* is only a bound)."""
    block: dict = {"law": law_summary(law) if law is not None else None, "law_not_fitted_reason": reason,
                   "laws_by_estimand": estimand_laws(cf, method)}
    if law is not None and "complexity" in law.factors:
        block["complexity_tests"] = {
            f"b_s={v}": wald_tests(law, {"complexity": float(v)}).iloc[0].to_dict() for v in (0, 1)}
        aic = law.alternatives.set_index("model")["aic"]
        if "affine in s" in aic.index:
            block["affine_vs_power_law_delta_aic"] = float(aic["affine in s"] - aic["power law"])
    estimands = [col for name in ESTIMANDS for col in (name, f"{name}_ci", censored_column(name))]
    cells = cf.cells[["complexity", "n_train", "width", "n_experts", *estimands, "k_flat_low", "k_flat_high",
                      "k_star_cont", "k_star_cont_ci", "cont_at_edge", "n_seeds"]].copy()
    try:
        theory = predicted_exponents(cells, **theory_kwargs(df, metric))
        cells["k_star_theory"] = theory["k_star_theory"].to_numpy()
    except Exception as exc:  # theory missing or failing must not sink the fit (as theory_comparison)
        block["theory_unavailable"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    if "routing_recall" in df.columns:
        recall = df[~df["diverged"]].groupby(["complexity", "n_train", "width", "n_experts", "k"])[
            "routing_recall"].mean()
        cells["routing_recall_at_k_star"] = [
            recall.get((r.complexity, r.n_train, r.width, r.n_experts, r.k_star), np.nan)
            for r in cells.itertuples()]
    block["cells"] = cells.to_dict(orient="records")
    block["n_censored"] = int((cf.cells["censored"] != "").sum())
    # Curves flat past the knee: k within one paired SE of the minimum spans a factor of 2 or more.
    block["n_flat"] = int((cf.cells["k_flat_high"] >= 2 * cf.cells["k_flat_low"]).sum())
    block["direction_in_m"] = direction_in_m(cf.cells)
    if law is not None and len(law.alternatives):
        block["law_preferred_by_aic"] = str(law.alternatives.sort_values("aic")["model"].iloc[0])
    return block
