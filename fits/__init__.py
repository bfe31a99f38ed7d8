"""fits: per-cell optimal k with seed-cluster bootstrap uncertainty, the scaling law of k*, and a
Chinchilla-style scaling-law surface fitter. CLI: `python -m fits.optimal_k` (docs/fits.md); its
analyses are blocks (`fits.blocks`)."""

from .cells import ESTIMANDS, CellFits, cell_optimal_k
from .coverage import coverage_study
from .curve import SHAPES, fit_curves, loss_curve
from .data import (
    METRICS,
    FitInputError,
    arm_names,
    check_results,
    law_rows,
    load_results,
    routed_arms,
    split_arms,
)
from .families import FAMILIES, family_of
from .k_eval import best_k_eval, k_eval_block
from .law import LawFit, LawNotIdentified, fit_law, law_data, wald_tests
from .law_grid import law_band_table
from .options import FitOptions
from .paired_arms import paired_arm_tests
from .surface import (
    EPOCH_REFIT,
    SurfaceFit,
    SurfaceModel,
    chinchilla_points,
    fit_chinchilla,
    fit_moe_loss,
    fit_surface,
    load_chinchilla,
)
from .synthetic import PlantedLaw, planted_bound_results, planted_results
from .theory import (
    approximation_summary,
    approximation_terms,
    estimation_slopes,
    estimation_terms,
    fit_risk_bound,
    outside_bound,
    pooled_outside,
    predicted_exponents,
    theory_comparison,
    theory_fit_block,
)

__all__ = [
    "CellFits",
    "ESTIMANDS",
    "cell_optimal_k",
    "law_rows",
    "paired_arm_tests",
    "coverage_study",
    "SHAPES",
    "fit_curves",
    "loss_curve",
    "routed_arms",
    "METRICS",
    "FAMILIES",
    "family_of",
    "arm_names",
    "split_arms",
    "best_k_eval",
    "law_band_table",
    "FitOptions",
    "k_eval_block",
    "FitInputError",
    "check_results",
    "load_results",
    "LawFit",
    "LawNotIdentified",
    "fit_law",
    "law_data",
    "wald_tests",
    "EPOCH_REFIT",
    "SurfaceFit",
    "SurfaceModel",
    "chinchilla_points",
    "fit_chinchilla",
    "fit_moe_loss",
    "fit_surface",
    "load_chinchilla",
    "PlantedLaw",
    "planted_results",
    "planted_bound_results",
    "predicted_exponents",
    "theory_comparison",
    "fit_risk_bound",
    "outside_bound",
    "pooled_outside",
    "theory_fit_block",
    "approximation_terms",
    "approximation_summary",
    "estimation_terms",
    "estimation_slopes",
]
