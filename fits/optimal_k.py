"""`python -m fits.optimal_k [RESULTS] [--metric id|ood|train|...] [--out DIR] [--bootstrap N] [--seed S]`

Per-cell optimal k with seed-cluster bootstrap uncertainty, the scaling law of k*, and its comparison
with the theory. Prints a summary; writes `optimal_k.json`, `cells.csv`, `report.md` and the tables the
figures draw (`law_band.parquet`, `kstar_arms.parquet`, and the blocks' tables, e.g.
`bound_curves.parquet` and `theory_terms.parquet`) to DIR, all at the end and atomically (nothing is
written when the input is bad).
The analyses beyond the primary arm's cells and law are blocks (`fits.blocks`). A SRAVEN store is mapped
onto the same cells (`fits.families`: complexity = R, error = 1 - accuracy); the blocks that model the
regression task (theory, surface, routing arms) are skipped for it, each with its reason.
"""

from __future__ import annotations

import sys

from fits.data import FitInputError
from fits.fit_outputs import cells_table, law_text, write_files
from fits.fit_parser import parse_options
from fits.fit_pipeline import fit

# The command's pieces (fits.fit_parser, fits.fit_pipeline, fits.fit_outputs), re-exported where callers
# of this module found them.
__all__ = ["cells_table", "fit", "law_text", "main", "run"]


def run(argv: list[str] | None = None) -> dict:
    """Parse, fit, print and write; returns the JSON document. Raises FitInputError on bad input."""
    opts = parse_options(argv)
    doc, files = fit(opts)
    write_files(opts.out, files)  # all files land together, or none
    print(f"wrote {', '.join(files)} to {opts.out}")
    return doc


def main(argv: list[str] | None = None) -> int:
    try:
        run(argv)
    except FitInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
