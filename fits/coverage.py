"""Coverage of the law's confidence intervals over repeated planted draws (`fits.synthetic`).

`coverage_study` redraws a planted grid `n_draws` times, fits the law each time and returns one row per
(draw, factor): estimate, CI and whether it covers the planted exponent. The tests use it with the fast
OLS path; docs/fits.md quotes it for every method.
"""

from __future__ import annotations

import pandas as pd

from fits.cells import cell_optimal_k
from fits.law import fit_law
from fits.synthetic import PlantedLaw, planted_results


def coverage_study(
    n_draws: int = 150,
    method: str = "ols",
    n_boot: int = 0,
    seed: int = 0,
    law: PlantedLaw | None = None,
    **planted,
) -> pd.DataFrame:
    """Tidy table of per-draw estimates and CI coverage of the planted exponents (see module doc)."""
    law = law or PlantedLaw()
    rows = []
    for r in range(n_draws):
        df = planted_results(law=law, rng_seed=seed + r, **planted)
        fit = fit_law(cell_optimal_k(df, n_boot=n_boot, seed=seed + r), method=method, diagnose=False)
        for e in fit.exponents.itertuples():
            truth = getattr(law, e.factor)
            rows.append(
                {
                    "draw": r,
                    "factor": e.factor,
                    "truth": truth,
                    "estimate": e.estimate,
                    "ci_low": e.ci_low,
                    "ci_high": e.ci_high,
                    "covered": bool(e.ci_low <= truth <= e.ci_high),
                    "boot_covered": bool(e.boot_ci_low <= truth <= e.boot_ci_high),
                    "n_cells": fit.n_cells,
                }
            )
    return pd.DataFrame(rows)
