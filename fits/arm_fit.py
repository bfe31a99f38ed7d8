"""One arm's per-cell k* and law of k*, and its entry in the `by_router` block of optimal_k.json."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from fits.cells import CellFits, cell_optimal_k
from fits.data import FitInputError
from fits.law import LawFit, LawNotIdentified, fit_law, wald_tests
from fits.options import FitOptions
from fits.summary import law_summary
from fits.theory_compare import predicted_exponents, theory_kwargs


class ArmFit(NamedTuple):
    """The per-cell fits of an arm, its law (None when not identified) and why it was not fitted."""

    cells: CellFits
    law: LawFit | None
    reason: str | None


def fit_arm(df: pd.DataFrame, options: FitOptions, k_source: str | None = None) -> ArmFit:
    """Per-cell k* and the law of one arm's rows (k* from `k_source`, default options.k_source)."""
    try:
        cf = cell_optimal_k(df, options.metric, n_boot=options.bootstrap, seed=options.seed,
                            shape=options.shape)
    except ValueError as exc:
        raise FitInputError(str(exc)) from exc
    try:
        return ArmFit(cf, fit_law(cf, method=options.method, k_source=k_source or options.k_source), None)
    except LawNotIdentified as exc:
        return ArmFit(cf, None, str(exc))


def arm_block(df: pd.DataFrame, cf: CellFits, law: LawFit | None, reason: str | None, metric: str) -> dict:
    """One arm's answer for `by_router`: the law (shaped like the top-level `law`), tests of the
    complexity exponent against 0 and 1, and per cell k* beside the theory's k* and the routing recall
    at k* (censored cells say so: their k* is only a bound)."""
    block: dict = {"law": law_summary(law) if law is not None else None, "law_not_fitted_reason": reason}
    if law is not None and "complexity" in law.factors:
        block["complexity_tests"] = {
            f"b_s={v}": wald_tests(law, {"complexity": float(v)}).iloc[0].to_dict() for v in (0, 1)}
        aic = law.alternatives.set_index("model")["aic"]
        if "affine in s" in aic.index:
            block["affine_vs_power_law_delta_aic"] = float(aic["affine in s"] - aic["power law"])
    cells = cf.cells[["complexity", "n_train", "width", "n_experts", "k_star", "k_star_ci", "censored",
                      "k_flat_low", "k_flat_high", "k_star_cont", "n_seeds"]].copy()
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
    # Curves flat past the knee: k within one SE of the minimum spans a factor of 2 or more.
    block["n_flat"] = int((cf.cells["k_flat_high"] >= 2 * cf.cells["k_flat_low"]).sum())
    return block
