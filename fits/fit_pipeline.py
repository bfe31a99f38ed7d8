"""One fits run, start to end, writing nothing: load the store, fit the primary arm's cells and law
(fits.arm_fit), run the blocks (fits.blocks), and return the JSON document with every file's body
(fits.fit_outputs), printing the summary. `python -m fits.optimal_k` parses into FitOptions
(fits.fit_parser), calls `fit` and writes the files."""

from __future__ import annotations

import json

from fits import blocks, kstar_arms
from fits.arm_fit import fit_arm
from fits.blocks import FitContext
from fits.data import FitInputError, load_results, metric_column, split_arms
from fits.families import FAMILIES, family_of
from fits.fit_outputs import cells_csv, cells_records, cells_table, law_text, parquet_bytes, report_md
from fits.law_grid import law_band_table
from fits.options import FitOptions
from fits.summary import clean, law_summary
from simulations.arms import primary as primary_arm


def fit(opts: FitOptions) -> tuple[dict, dict[str, str | bytes]]:
    """Fit the store of `opts`: (the JSON document, {file name: its text or bytes}) with the printed
    summary; writes nothing. Raises FitInputError on bad input."""
    opts.check()
    store = opts.select(load_results(opts.results))
    family = FAMILIES[family_of(store)]
    col = metric_column(opts.metric, family.name)  # the family's metrics: checked before any fit
    arms = split_arms(store)
    if not arms:
        raise FitInputError(f"results at {opts.results} hold no top-k rows (only dense reference rows)")
    # The top-level cells and law are the primary arm's (the toolkit's question); every arm is under
    # `by_router` when the store has routing controls.
    top = primary_arm().name if primary_arm().name in arms else next(iter(arms))
    df = arms[top]
    fitted = fit_arm(df, opts)
    cf, law, reason = fitted
    ctx = FitContext(opts, store, family, arms, top, fitted)
    values = blocks.run_blocks(ctx)
    notes = cf.notes + (law.notes if law is not None else [reason])
    if family.skipped:
        notes.append(f"skipped for {family.name} results: {', '.join(family.skipped)} (why: `skipped` in "
                     "optimal_k.json and report.md)")
    extra = {}
    if family.to_generic is not None:
        extra = {"error": family.error_of.get(col, col),
                 "mapping": family.mapping,
                 "skipped": family.skipped}
    law_doc = law_summary(law) if law is not None else None
    doc = clean(
        {
            "results": str(opts.results),
            **({"where": list(opts.where)} if opts.where else {}),
            "family": family.name,
            "metric": col,
            **extra,
            "n_bootstrap": cf.n_boot,
            "seed": opts.seed,
            "shape": opts.shape,
            "n_rows": len(store),
            "arm": top,
            "n_diverged_rows": int(df["diverged"].sum()),
            "n_censored": int((cf.cells["censored"] != "").sum()),
            "cells": cells_records(cf),
            "law": law_doc,
            "law_not_fitted_reason": reason,
            **values,
            "notes": notes,
        }
    )
    # kstar_arms.parquet: the top-level arm alone, unless `by_router` writes every arm's
    one_arm = {top: (cf.cells, law_doc, opts.k_source)}
    tables = {"law_band.parquet": law_band_table(cf.cells, law_doc),
              kstar_arms.TABLE: kstar_arms.kstar_arms_table(one_arm)} | blocks.tables(ctx, values)
    files = {
        "optimal_k.json": json.dumps(doc, indent=2),
        "cells.csv": cells_csv(cf),
        "report.md": report_md(opts, cf, law, reason, blocks.report_sections(values), notes, family),
    } | {name: parquet_bytes(t) for name, t in tables.items()}
    print(cells_table(cf, family).to_string(index=False))
    print()
    print(law_text(law, reason, family.factor_names, cf.curves["k"]))
    for line in blocks.summaries(ctx, values):
        print(line)
    for n in notes:
        print("note:", n)
    return doc, files
