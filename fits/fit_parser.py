"""The command line of `python -m fits.optimal_k`, parsed into the frozen `FitOptions` (fits.options),
which is all the fits library receives. Its defaults are FitOptions' own; bad usage is a one-line
FitInputError, as bad input is."""

from __future__ import annotations

import argparse

from fits.curve import SHAPES
from fits.data import FitInputError
from fits.families import FAMILIES
from fits.law import K_SOURCES, METHODS
from fits.options import FitOptions
from simulations.cli import OneLineParser


def parser() -> argparse.ArgumentParser:
    """The parser of `python -m fits.optimal_k`; bad usage raises FitInputError (one line)."""
    p = OneLineParser(prog="python -m fits.optimal_k", raise_as=FitInputError,
                      description="Per-cell optimal k, the law of k* and its comparison with the theory.")
    d = FitOptions()  # the defaults live there, once
    p.add_argument(
        "results", nargs="?", default=d.results, help="results store (default %(default)s)"
    )
    metrics = "; ".join(f"{', '.join(f.metrics)} ({f.name})" for f in FAMILIES.values())
    p.add_argument("--metric", default=d.metric, help=f"one of {metrics} (default %(default)s)")
    p.add_argument("--out", default=d.out, help="output directory (default %(default)s)")
    p.add_argument("--bootstrap", type=int, default=d.bootstrap,
                   help="seed-cluster resamples (default %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed, help="bootstrap seed (default %(default)s)")
    p.add_argument(
        "--method", default=d.method, help=f"law fit: one of {', '.join(METHODS)} (default %(default)s)"
    )
    p.add_argument(
        "--k-source",
        default=d.k_source,
        help=f"k* feeding the law: one of {', '.join(K_SOURCES)} (default %(default)s)",
    )
    p.add_argument(
        "--surface-bootstrap",
        type=int,
        default=d.surface_bootstrap,
        help="point-bootstrap resamples of the joint loss surface; 0 skips its CIs (default %(default)s)",
    )
    p.add_argument(
        "--shape",
        default=d.shape,
        help=f"estimation term of the smooth fit: one of {', '.join(SHAPES)} (default %(default)s)",
    )
    p.add_argument("--no-surface", action="store_true", help="skip the joint loss-surface fit")
    p.add_argument("--theory-bootstrap", type=int, default=d.theory_bootstrap,
                   help="seed-cluster resamples of the calibrated risk bound (default %(default)s)")
    p.add_argument("--no-theory", action="store_true", help="skip the calibrated risk bound (theory_fit)")
    p.add_argument("--predictions", default=d.predictions,
                   help="a fits.predictions directory: compare its predicted k* with the measured (block "
                        "prediction_check)")
    p.add_argument("--where", action="append", metavar="FIELD=VALUE",
                   help="fit only the rows whose column FIELD equals VALUE (repeatable; e.g. "
                        "estimator=score for one estimator of a store that holds several)")
    return p


def parse_options(argv: list[str] | None = None) -> FitOptions:
    """The FitOptions a command line asks for (FitInputError on bad usage)."""
    return FitOptions.from_mapping(vars(parser().parse_args(argv)))
