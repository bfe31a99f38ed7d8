"""The `theory_fit` block of optimal_k.json: the risk bound calibrated to the data per router arm
(`fits.theory.bound_model`, `fits.theory.calibration`), what the fit cannot pin down, its tests out of sample
(`fits.theory.validation`) and each term on its own (`fits.theory.terms`), JSON-ready.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fits.theory.bound_model import (
    BOUNDS,
    CELL,
    CONSTANTS,
    FORM,
    TheoryFitError,
    bound_curves,
    design,
    metric_column,
)
from fits.theory.calibration import boot_correlation, fit_design, identifiability, profiles
from fits.theory.terms import terms_block
from fits.theory.validation import (
    estimation_k_share,
    free_form_aic,
    gaussian_aic,
    heldout,
    heldout_summary,
    outside_bound,
    pooled_outside,
)
from simulations.arms import primary, reference


def fitted_routers() -> tuple[str, ...]:
    """The router kinds the bound is fitted to, each on its own: the primary arm's (the learned router,
    the toolkit's question) and the reference arm's (the oracle, the theory's modular student)."""
    return primary().router.name, reference().router.name


def router_arms(results: pd.DataFrame) -> list[str]:
    """The fitted router kinds present (in `fitted_routers` order); empty without a `router` column."""
    if "router" not in results.columns:
        return []
    present = set(results["router"].dropna().astype(str))
    return [a for a in fitted_routers() if a in present]


def analyse(results: pd.DataFrame, metric: str = "test_nmse_id", router: str | None = None,
            n_boot: int = 100, seed: int = 0, lolo: bool = True) -> dict:
    """Fit, identifiability, held-out prediction, misspecification and AIC for one arm (JSON-ready)."""
    d = design(results, metric, router)
    fit = fit_design(d, n_boot, seed)
    prof = profiles(d, fit)
    ident = identifiability(fit, prof)
    r = np.log(d.points["y"].to_numpy()) - np.log(bound_curves(d.points, fit.params, d.task)["total"])
    ff = free_form_aic(d)
    out = outside_bound(d, fit.params, n_boot=max(n_boot, 200), seed=seed)
    pooled = pooled_outside(d)
    pooled = pooled[~pooled["vs"].isin(["k=1", "k=s"])].reset_index(drop=True)
    h = heldout(d) if lolo else pd.DataFrame()
    notes = list(d.notes)
    for row in ident.itertuples():
        if not row.identified:
            why = [w for w, flag in (("profile open", row.profile_open), ("CI wider than x10", row.ci_wide),
                                     ("estimate on the edge of its search range", row.at_search_bound))
                   if flag]
            notes.append(f"{row.constant} not pinned down by the data ({', '.join(why)})"
                         + (f"; collinear with {row.collinear_with}" if row.collinear_with else ""))
    n_above, n_between = int(out["above_max_holm"].sum()), int(out["between_1_and_s_holm"].sum())
    for row in pooled[pooled["p_value"] < 0.05].itertuples():
        notes.append(f"outside the bound ({row.group}, {row.test}): mean contrast {row.mean_contrast:.3g},"
                     f" one-sided p = {row.p_value:.3g} over seeds, {row.n_cells} cells pooled")
    notes.append(f"loss significantly lower above the largest k* the bound can produce in {n_above} of"
                 f" {len(out)} cells ({int(out['above_max'].sum())} before Holm's correction); strictly"
                 " between"
                 f" 1 and s (where the bound never puts k*) in {n_between}"
                 f" ({int(out['between_1_and_s'].sum())} before)")
    corr = boot_correlation(fit)
    return {
        "fitted": True,
        "router": router,
        "metric": d.metric,
        "form": FORM,
        "task": d.task,
        "params": {row.constant: {"estimate": row.estimate, "ci95": [row.ci_low, row.ci_high],
                                  "profile_ci95": [row.profile_low, row.profile_high],
                                  "identified": bool(row.identified), "collinear_with": row.collinear_with,
                                  "at_search_bound": bool(row.at_search_bound),
                                  "search_range": list(BOUNDS[row.constant])}
                   for row in ident.itertuples()},
        "boot_correlation": corr.round(4).astype(object).where(corr.notna(), None).to_dict()
        if not corr.empty else None,
        "profiles": prof.to_dict(orient="records"),
        "convergence": fit.convergence,
        "n_points": len(d.points),
        "n_cells": int(d.points.groupby(CELL).ngroups),
        "n_bootstrap": n_boot,
        "rmse_log": float(np.sqrt(np.mean(r**2))),
        "aic": gaussian_aic(r.to_numpy(), len(CONSTANTS)),
        "n_params": len(CONSTANTS),
        "free_form_aic": ff["aic"],
        "free_form": ff,
        "estimation_k_share": estimation_k_share(d),
        "heldout": heldout_summary(h) | {"cells": h.to_dict(orient="records")} if lolo else None,
        "outside_bound": {"n_cells": len(out), "n_above_max": n_above, "n_between_1_and_s": n_between,
                          "n_above_max_uncorrected": int(out["above_max"].sum()),
                          "n_between_1_and_s_uncorrected": int(out["between_1_and_s"].sum()),
                          "n_k_star_ci_above_max": int((out["k_star_ci_low"]
                                                        > out["k_star_max_bound"]).sum()),
                          "pooled": pooled.to_dict(orient="records"),
                          "cells": out.to_dict(orient="records")},
        "notes": notes,
    }


def theory_fit_block(results: pd.DataFrame, metric: str = "id", n_boot: int = 100, seed: int = 0) -> dict:
    """The `theory_fit` block of optimal_k.json: one analysis per router arm (`by_router`) when the store
    has arms (the top level then mirrors the oracle arm, else the first), else one for all rows; `terms`
    holds the term-by-term checks (`fits.theory.terms`) on the oracle arm, or why they are unavailable."""
    ref = reference().router.name
    try:
        col = metric_column(results, metric)
    except TheoryFitError as exc:
        return {"fitted": False, "reason": str(exc)}
    if col == "train_nmse":
        return {"fitted": False, "reason": "the risk bound is about test error; use --metric id or ood"}
    arms = router_arms(results)
    try:
        if not arms:
            return analyse(results, col, None, n_boot, seed) | {
                "terms": {"available": False, "reason": f"needs the {ref} arm: the results have no"
                          " `router` column"}}
        by = {}
        for arm in arms:
            try:
                by[arm] = analyse(results, col, arm, n_boot, seed)
            except ValueError as exc:  # TheoryFitError, or a theory input check: say why, keep the others
                by[arm] = {"fitted": False, "router": arm, "reason": str(exc).splitlines()[0]}
        top = ref if ref in by else arms[0]
        given = by.get(ref, {})
        terms = terms_block(results, {n: v["estimate"] for n, v in given["params"].items()}
                            if given.get("fitted") else None, col)
        return by[top] | {"primary_router": top, "by_router": by, "terms": terms}
    except ValueError as exc:
        return {"fitted": False, "reason": str(exc).splitlines()[0]}
