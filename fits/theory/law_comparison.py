"""Compare the fitted law of k* with the theory's predictions (`theory.predicted_elasticities`,
`theory.optimal_k`) and with P1's claim that k* is proportional to task complexity.

`theory` is imported lazily: the fits work (and say so) when it is missing or fails.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fits.law import LawFit, wald_tests


def _theory():
    import theory  # lazily (sympy, ~1.5 s): the fits without the theory (--no-theory) never pay it

    return theory.predicted_elasticities, theory.optimal_k


def predicted_exponents(cells: pd.DataFrame, **theory_kwargs) -> pd.DataFrame:
    """The theory's elasticities d log k*/d log x at every cell (tidy: one row per cell) and its k*."""
    elasticities, optimal_k = _theory()
    args = [cells[c].to_numpy(dtype=float) for c in ("complexity", "n_train", "width", "n_experts")]
    el = elasticities(*args, **theory_kwargs)
    out = cells[["complexity", "n_train", "width", "n_experts"]].copy()
    for key in ("complexity", "n_train", "width"):
        out[f"pred_{key}"] = np.broadcast_to(np.asarray(el[key], dtype=float), len(out))
    out["k_star_theory"] = np.broadcast_to(
        np.asarray(optimal_k(*args, **theory_kwargs), dtype=float), len(out)
    )
    return out


def theory_kwargs(results: pd.DataFrame, metric: str) -> dict:
    """The theory's task arguments (d, n_skills, holdout_frac, split) read off the results where they
    take a single value; the theory's defaults stand for the others."""
    kw = {"split": "ood" if metric == "ood" else "id"}
    for col, name, cast in (
        ("d_in", "d", int),
        ("n_skills", "n_skills", int),
        ("holdout_frac", "holdout_frac", float),
    ):
        if col in results.columns and results[col].nunique() == 1:
            kw[name] = cast(results[col].iloc[0])
    return kw


def theory_comparison(law: LawFit | None, cells: pd.DataFrame, **theory_kwargs) -> dict:
    """A JSON-ready comparison: the predicted exponents (averaged over the law's cells), Wald tests of the
    fitted exponents against them, and the test of P1's proportionality (complexity exponent = 1)."""
    out: dict = {"theory_arguments": theory_kwargs}
    if law is not None and "complexity" in law.factors:
        t = wald_tests(law, {"complexity": 1.0})
        out["p1_proportional_to_complexity"] = t.iloc[0].to_dict()
    try:
        pred = predicted_exponents(law.data if law is not None else cells, **theory_kwargs)
    except Exception as exc:  # theory missing or failing must not sink the fit
        out.update(available=False, reason=f"{type(exc).__name__}: {exc}".splitlines()[0])
        return out
    means = {f: float(np.nanmean(pred[f"pred_{f}"])) for f in ("complexity", "n_train", "width")}
    out.update(
        available=True,
        predicted_exponents=means,
        predicted_exponent_range={
            f: [float(pred[f"pred_{f}"].min()), float(pred[f"pred_{f}"].max())] for f in means
        },
    )
    if law is not None:
        out["wald_tests"] = wald_tests(law, means).to_dict(orient="records")
        emp, th = np.log(law.data["k"].to_numpy()), np.log(pred["k_star_theory"].to_numpy())
        ok = np.isfinite(th)
        if ok.sum() > 2 and np.ptp(th[ok]) > 0:  # a constant theory k* has no correlation
            out["log_k_star_correlation"] = float(np.corrcoef(emp[ok], th[ok])[0, 1])
    return out
