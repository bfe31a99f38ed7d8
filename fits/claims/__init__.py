"""`python -m fits.claims [--check]`: the results numbers of README.md and docs/*.md, written from
the shipped reference results (docs/reference/, fits.references) between markers.

A block sits between `<!-- claims:NAME -->` and `<!-- /claims:NAME -->`; BLOCKS[NAME] writes its text
from the reference files alone, so no results number is typed by hand and a table never says more than
its files. `--check` rewrites nothing and exits 1 naming every block whose text differs from what the
files give (tests/fits/test_claims.py runs it on the shipped files).

Modules: `reference` (reading the references, number formats), `results` (README, docs/results.md,
docs/reference.md), `tables` (the maps of docs/tasks.md), `docs` (the other docs), `sraven` (the SRAVEN
blocks); this module holds the
registry of blocks, the markers and the rewrite.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable

from fits.claims import docs, results, sraven, tables
from fits.claims.reference import REFERENCE, ROOT, cells
from fits.claims.results import LAW_ARMS, direction_rows
from simulations.atomic import atomic_write_text
from simulations.cli import OneLineParser

__all__ = ["BLOCKS", "DOCS", "LAW_ARMS", "MARK", "REFERENCE", "ROOT", "TABLES", "block_text", "cells",
           "direction_rows", "main", "render"]

DOCS = ("README.md", "docs/results.md", "docs/reference.md", "docs/fits.md", "docs/theory.md",
        "docs/sraven.md", "docs/tasks.md")
MARK = re.compile(r"(<!-- claims:(?P<name>[\w:-]+) -->\n)(?P<body>.*?)(<!-- /claims:(?P=name) -->)", re.S)


BLOCKS: dict[str, Callable[[], str]] = {
    "reference-index": results.reference_index,
    "answers": results.answers,
    "law-table": results.law_table,
    "law-direction": results.law_direction,
    "law-regime": results.law_regime,
    "law-theory": results.law_theory,
    "standard-table": results.standard_table,
    "composition-table": results.composition_table,
    "oracle-r4": results.oracle_r4,
    "active-compute": results.active_compute,
    "adaptive": results.adaptive,
    "quick": results.quick,
    "k-eval": results.k_eval,
    "estimators": results.estimators,
    "sraven-learnable": sraven.learnable,
    # docs/fits.md, docs/theory.md, docs/sraven.md, docs/tasks.md
    "quick-p-argmin": docs.quick_p_argmin,
    "quick-first": docs.quick_first,
    "quick-bound-table": docs.quick_bound_table,
    "quick-bound-reading": docs.quick_bound_reading,
    "standard-one-se": docs.standard_one_se,
    "standard-supervised": docs.standard_supervised,
    "law-estimands": docs.law_estimands,
    "law-heldout": docs.law_heldout,
    "active-compute-table": docs.active_compute_table,
    "active-compute-oracle": docs.active_compute_oracle,
    "active-compute-learned": docs.active_compute_learned,
    "active-compute-short": docs.active_compute_short,
    "contextual-ood-ratio": docs.contextual_ood_ratio,
    "adaptive-levels": docs.adaptive_levels,
    "oracle-standard": docs.oracle_standard,
    "theory-quick-table": docs.theory_quick_table,
    "theory-oracle-table": docs.theory_oracle_table,
    "sraven-learnable-table": sraven.learnable_table,
    "sraven-learnable-reading": sraven.learnable_reading,
    "sraven-converge-regime": sraven.converge_regime,
    "sraven-converge-k": sraven.converge_k_table,
    "sraven-converge-reading": sraven.converge_reading,
}


# blocks with an argument, `<!-- claims:NAME:REFERENCE -->`: the table of one reference directory
TABLES: dict[str, Callable[[str], str]] = {"gate-map": tables.gate_map_table,
                                           "estimator-map": tables.estimator_map_table}


def block_text(name: str) -> str:
    kind, _, arg = name.partition(":")
    if arg and kind in TABLES:
        return TABLES[kind](arg)
    if name in BLOCKS:
        return BLOCKS[name]()
    known = [*BLOCKS, *(f"{t}:<reference>" for t in TABLES)]
    raise KeyError(f"claims block {name!r}: expected one of {', '.join(known)}")


def render(text: str) -> tuple[str, list[str]]:
    """The text with every block rewritten, and the names of the blocks that changed."""
    changed: list[str] = []

    def one(m: re.Match) -> str:
        name = m["name"]
        body = block_text(name).rstrip("\n") + "\n"
        if body != m["body"]:
            changed.append(name)
        return m.group(1) + body + m.group(4)

    return MARK.sub(one, text), changed


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m fits.claims", description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="rewrite nothing; exit 1 if a block is stale")
    args = p.parse_args(argv)
    stale = []
    for rel in DOCS:
        path = ROOT / rel
        new, changed = render(path.read_text())
        stale += [f"{rel}: {name}" for name in changed]
        if changed and not args.check:
            atomic_write_text(path, new)
    if args.check and stale:
        print(
            f"error: blocks differ from docs/reference (run python -m fits.claims): {'; '.join(stale)}",
            file=sys.stderr,
        )
        return 1
    print(f"{'stale' if stale else 'up to date'}: {'; '.join(stale) or ', '.join(DOCS)}")
    return 0


