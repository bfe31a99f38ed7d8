"""The paper figures, in order. Adding a figure takes more than its line here:

- a module in figures/ that defines the names below, and its module path in FIGURE_MODULES;
- its inputs: a table it plots is one the fits write (figures compute no fit, so a new table is a fits
  block's `tables`), and a new kind of input directory is a `Source` in figures.inputs.SOURCES plus an
  argument of `Inputs` (the CLI's flag follows from SOURCES);
- its tests: tests/figures/test_figures.py draws every registered figure from small stores
  (tests/figure_fixtures.py and the other fixtures), which must hold what it plots; a figure that does not
  read "results" joins the set `test_missing_grid_results_name_the_grid_first` expects drawn without them.

Each module defines NAME, TITLE, INPUTS (which of figures.inputs.SOURCES it reads), `data(inputs) ->
DataFrame` (exactly what is plotted) and `plot(df) -> matplotlib Figure` (decorate it with
`figures.style.styled` for the shared look). A module may also define REQUIRES: (source, relative path)
or (source, relative path, command) tuples that must exist beyond the source's own marker file, e.g.
("softmoe", "single_expert/results.parquet", "python -m simulations.families.softmoe single-expert").
"""

from __future__ import annotations

import importlib

FIGURE_MODULES = (
    "figures.error_vs_k",
    "figures.controls",
    "figures.routing_gain",
    "figures.gate_map",
    "figures.estimator_map",
    "figures.kstar_complexity",
    "figures.kstar_data_width",
    "figures.kstar_estimands",
    "figures.tradeoff",
    "figures.p2_bound",
    "figures.theory_fit", "figures.theory_terms",
    "figures.k_eval",
    "figures.regime_map",
    "figures.softmoe_single_expert", "figures.softmoe_expert_drop",
    "figures.sraven_accuracy", "figures.sraven_kstar", "figures.sraven_regime", "figures.sraven_converge",
)

FIGURES = [importlib.import_module(path) for path in FIGURE_MODULES]


def by_name() -> dict:
    """{NAME: module} in registry order."""
    return {fig.NAME: fig for fig in FIGURES}
