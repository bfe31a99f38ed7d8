"""The settings of one fits run (`python -m fits.optimal_k`), as a frozen dataclass: the CLI parses its
arguments into `FitOptions`, and the library (`fits.arm_fit`, `fits.blocks`) receives only this."""

from __future__ import annotations

from dataclasses import dataclass, fields

import pandas as pd

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
    k* against (block `prediction_check`; empty: none); where: "FIELD=VALUE" selections of the store's
    rows (and of its k_eval and curve tables), all applied, before anything is fitted (e.g. one estimator
    of a store that holds several)."""

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
    where: tuple[str, ...] = ()

    @classmethod
    def from_mapping(cls, values: dict) -> FitOptions:
        """The options named in `values` (e.g. `vars()` of the CLI's Namespace); others keep defaults."""
        got = {f.name: values[f.name] for f in fields(cls) if f.name in values}
        if got.get("where") is not None:
            got["where"] = tuple(got["where"])
        else:
            got.pop("where", None)
        return cls(**got)

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
        for w in self.where:
            field, eq, value = w.partition("=")
            if not eq or not field or not value:
                raise FitInputError(f"--where expects FIELD=VALUE, got {w!r}")
        return self

    def select(self, df: pd.DataFrame) -> pd.DataFrame:
        """The rows of `df` that every `where` selection keeps (values compared as text); FitInputError
        naming the field when `df` lacks it or nothing is left."""
        for w in self.where:
            field, _, value = w.partition("=")
            if field not in df.columns:
                raise FitInputError(f"--where {w}: the results have no column {field!r}")
            keep = df[field].astype(str) == value
            if not keep.any():
                found = ", ".join(sorted(df[field].astype(str).unique()))
                raise FitInputError(f"--where {w}: no row has {field} = {value!r} (found: {found})")
            df = df[keep].reset_index(drop=True)
        return df
