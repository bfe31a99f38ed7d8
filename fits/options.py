"""The settings of one fits run (`python -m fits.optimal_k`), as a frozen dataclass: the CLI parses its
arguments into `FitOptions`, and the library (`fits.arm_fit`, `fits.blocks`) receives only this."""

from __future__ import annotations

from dataclasses import dataclass, fields

from fits.curve import SHAPES
from fits.data import DEFAULT_OUT, DEFAULT_RESULTS, FitInputError
from fits.law import K_SOURCES, METHODS


@dataclass(frozen=True)
class FitOptions:
    """results: the store; metric: a `--metric` choice of the store's family; out: the output directory;
    bootstrap / seed: seed-cluster resamples of the per-cell k* and their seed; method / k_source: the
    law's estimator and the k* feeding it; shape: the smooth fit's estimation term; surface_bootstrap /
    no_surface and theory_bootstrap / no_theory: the joint loss surface's and the calibrated risk
    bound's resamples, or skip them; predictions: a fits.predictions directory to hold the measured
    k* against (block `prediction_check`; empty: none)."""

    results: str = str(DEFAULT_RESULTS)
    metric: str = "ood"
    out: str = str(DEFAULT_OUT)
    bootstrap: int = 2000
    seed: int = 0
    method: str = "hc3"
    k_source: str = "continuous"
    surface_bootstrap: int = 100
    shape: str = "linear"
    no_surface: bool = False
    theory_bootstrap: int = 100
    no_theory: bool = False
    predictions: str = ""

    @classmethod
    def from_mapping(cls, values: dict) -> FitOptions:
        """The options named in `values` (e.g. `vars()` of the CLI's Namespace); others keep defaults."""
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})

    def check(self) -> FitOptions:
        """Self, or a FitInputError naming the first bad option and its allowed values."""
        for name, value, allowed in (("--method", self.method, METHODS),
                                     ("--k-source", self.k_source, K_SOURCES),
                                     ("--shape", self.shape, SHAPES)):
            if value not in allowed:
                raise FitInputError(f"unknown {name} {value!r}: allowed values are {', '.join(allowed)}")
        for name in ("bootstrap", "surface_bootstrap", "theory_bootstrap"):
            if getattr(self, name) < 0:
                raise FitInputError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        return self
