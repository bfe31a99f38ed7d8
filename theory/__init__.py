"""theory: sympy derivations of sparse-MoE bounds and of the optimal number of activated experts k*.

Symbolic (sympy expressions, printable and LaTeX-able):
    estimation_bound      P2's Theorem 1 (Zhao, Wang, Wang 2024), as printed
    approximation_bound   the toolkit's OWN approximation bound for its compositional task (not P1's)
    risk_bound            approximation + lambda * instantiated estimation
Numbers (lambdified, broadcasting over numpy arrays):
    estimation_bound_value, instantiated_estimation_bound, approximation_bound_value, risk_bound_value,
    optimal_k, tradeoff_table, predicted_elasticities, continuous_optimum, interior_conditions
Modules: symbols, estimation, approximation, tradeoff, softmoe (P3's Theorem 1, Algorithm 1), checks.
See docs/theory.md for the derivations and every assumption.
"""

from . import approximation, estimation, softmoe, symbols, tradeoff  # checks: imported on demand
from .approximation import approximation_bound, approximation_bound_value
from .estimation import estimation_bound, estimation_bound_value, instantiated_estimation_bound
from .tradeoff import (
    continuous_optimum,
    interior_conditions,
    optimal_k,
    predicted_elasticities,
    risk_bound,
    risk_bound_value,
    tradeoff_table,
)

__all__ = [
    "approximation", "checks", "estimation", "softmoe", "symbols", "tradeoff",
    "approximation_bound", "approximation_bound_value",
    "estimation_bound", "estimation_bound_value", "instantiated_estimation_bound",
    "continuous_optimum", "interior_conditions", "optimal_k", "predicted_elasticities", "risk_bound",
    "risk_bound_value", "tradeoff_table",
]
