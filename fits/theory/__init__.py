"""The theory held to the data: the toolkit's risk bound calibrated per router arm (block `theory_fit`)
and the fitted law of k* against the theory's predictions (block `theory_comparison`).

One job per module:
- `bound_model`: the bound as a model (its free constants, the design points of one fit, its parts);
- `calibration`: fitting the constants to seed-mean loss curves, and what the fit cannot pin down;
- `validation`: held-out prediction, the outside-the-bound tests and a free-form comparison;
- `terms`: each term of the bound against the oracle arm on its own;
- `analysis`: the `theory_fit` block of optimal_k.json (all of the above per router arm, JSON-ready);
- `report`: that block's report.md section;
- `tables`: the tables the risk-bound figures draw (`bound_curves.parquet`, `theory_terms.parquet`);
- `law_comparison`: the law of k* against `theory.predicted_elasticities` and P1's proportionality.

The symbolic theory itself is the top-level package `theory/` (imported absolutely, and lazily where it
costs sympy); this package only fits it to the data.
"""

from fits.theory.analysis import theory_fit_block
from fits.theory.calibration import fit_risk_bound
from fits.theory.law_comparison import predicted_exponents, theory_comparison
from fits.theory.terms import approximation_summary, approximation_terms, estimation_slopes, estimation_terms
from fits.theory.validation import outside_bound, pooled_outside

__all__ = [
    "approximation_summary",
    "approximation_terms",
    "estimation_slopes",
    "estimation_terms",
    "fit_risk_bound",
    "outside_bound",
    "pooled_outside",
    "predicted_exponents",
    "theory_comparison",
    "theory_fit_block",
]
