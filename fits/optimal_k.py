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

import argparse
import io
import json
import sys
from pathlib import Path

import pandas as pd

from fits import blocks, kstar_arms
from fits.arm_fit import fit_arm
from fits.blocks import FitContext
from fits.cells import CellFits
from fits.curve import SHAPES
from fits.data import FitInputError, load_results, metric_column, split_arms
from fits.families import FAMILIES, REGRESSION, Family, family_of
from fits.law import K_SOURCES, METHODS, LawFit
from fits.law_grid import law_band_table
from fits.options import FitOptions
from fits.summary import ci_text, clean, fmt, interval_text, law_summary, markdown_table
from simulations.arms import primary as primary_arm
from simulations.atomic import staged_files


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage block
        raise FitInputError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m fits.optimal_k", description=__doc__.splitlines()[2])
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
    return p


def cells_table(cf: CellFits, family: Family = REGRESSION) -> pd.DataFrame:
    """The per-cell table as printed and written to report.md (strings); the factors are headed by the
    family's names for them (s, m, h for regression)."""
    c = cf.cells
    heads = {"s": "complexity", "m": "n_train", "h": "width"}
    names = {k: family.factor_names.get(v, k) for k, v in heads.items()}
    return pd.DataFrame(
        {
            "s": c["complexity"],
            "m": c["n_train"],
            "h": c["width"],
            "T": c["n_experts"],
            "k*": [fmt(v, 0) for v in c["k_star"]],
            "k* 95% CI": [ci_text(v, 0) for v in c["k_star_ci"]],
            "P(argmin)": [fmt(v) for v in c["p_k_star"]],
            "k within 1 SE": [ci_text(v, 0).replace(", ", "-") for v in zip(c["k_flat_low"], c["k_flat_high"],
                                                                          strict=True)],
            "censored": c["censored"].replace("", "-"),
            "k*_cont": [fmt(v) for v in c["k_star_cont"]],
            "k*_cont 95% CI": [ci_text(v) for v in c["k_star_cont_ci"]],
            "fit R2": [fmt(v) for v in c["fit_r2"]],
            "seeds": c["n_seeds"],
            "diverged": c["n_diverged"],
        }
    ).rename(columns=names)


def law_text(law: LawFit | None, reason: str | None, names: dict | None = None, ks=None) -> str:
    """The law as printed and in report.md; `names` labels the factors (a family's factor_names), `ks`
    the k grid (an interval that cannot resolve the exponent says so, with the grid's step)."""
    names = names or {}
    if law is None:
        return f"Law of k*: {reason}"
    lines = [
        f"Law of k* ({law.method.upper()} on log {law.k_source} k*, {law.n_cells} cells, "
        f"R2 = {law.r2:.3f}, AIC = {law.aic:.1f}, BIC = {law.bic:.1f}):",
        f"  log k* = {law.intercept:.3f}",
    ]
    for r in law.exponents.itertuples():
        if r.factor in law.factors:
            lines.append(
                f"    {r.estimate:+.3f} log {names.get(r.factor, r.factor):<10}  se {r.se:.3f}"
                f"  95% CI {interval_text(r.estimate, (r.ci_low, r.ci_high), ks, 3)}"
                f"  bootstrap CI {interval_text(r.estimate, (r.boot_ci_low, r.boot_ci_high), ks, 3)}"
            )
        else:
            lines.append(f"    (no {names.get(r.factor, r.factor)} term: one level in the usable cells)")
    return "\n".join(lines)


def _report(opts: FitOptions, cf: CellFits, law, reason, sections: list[str], notes: list[str],
            family: Family = REGRESSION) -> str:
    """report.md: the run, the notes, the primary arm's cells and law, then each block's section."""
    col = metric_column(opts.metric, family.name)
    what = f" = {family.error_of[col]}" if col in family.error_of else ""
    parts = [
        "# Optimal k per cell and the law of k*",
        "",
        f"Results: `{opts.results}` ({family.name}); metric `{col}`{what}; {cf.n_boot} seed-cluster"
        f" bootstrap resamples (seed {opts.seed}).",
        "",
        "## Notes",
        "",
        *[f"- {n}" for n in notes],
        "",
        "## Cells",
        "",
        "k* is the argmin over k of the mean over seeds; `k*_cont` the argmin of the smooth fit "
        f"L(k) = c + a k^-p + b e(k), e = {opts.shape} (docs/fits.md). Censored: k* at the smallest or"
        " largest tested k.",
        "",
        markdown_table(cells_table(cf, family)),
        "",
        "## Law",
        "",
        "```",
        law_text(law, reason, family.factor_names, cf.curves["k"]),
        "```",
        "",
    ]
    if law is not None:
        parts += [
            "### Alternatives",
            "",
            markdown_table(law.alternatives.round(3)),
            "",
            "### Leave one level out",
            "",
            markdown_table(law.lolo.round(3)) if len(law.lolo) else "(no factor has 3 or more levels)",
            "",
            "### Residual diagnostics",
            "",
            *[f"- {k}: {fmt(v, 3)}" for k, v in law.diagnostics.items()],
            "",
        ]
    if family.skipped:
        parts += ["## Skipped for this family", "", *[f"- {k}: {v}" for k, v in family.skipped.items()], ""]
    return "\n".join(["\n".join(parts), *sections])


def _cells_records(cf: CellFits) -> list[dict]:
    probs = cf.curves.groupby(["complexity", "n_train", "width", "n_experts"])
    recs = []
    for row in cf.cells.to_dict(orient="records"):
        g = probs.get_group((row["complexity"], row["n_train"], row["width"], row["n_experts"]))
        row["p_argmin"] = (
            {int(k): p for k, p in zip(g["k"], g["p_argmin"], strict=True)} if cf.n_boot else None
        )
        row["mean_loss"] = {int(k): m for k, m in zip(g["k"], g["mean"], strict=True)}
        row["censored"] = row["censored"] or False
        recs.append(row)
    return recs


def _cells_csv(cf: CellFits) -> str:
    return cf.cells.assign(
        k_star_ci_low=[c[0] for c in cf.cells["k_star_ci"]],
        k_star_ci_high=[c[1] for c in cf.cells["k_star_ci"]],
        k_star_cont_ci_low=[c[0] for c in cf.cells["k_star_cont_ci"]],
        k_star_cont_ci_high=[c[1] for c in cf.cells["k_star_cont_ci"]],
    ).drop(columns=["k_star_ci", "k_star_cont_ci"]).to_csv(index=False)


def _parquet(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def fit(opts: FitOptions) -> tuple[dict, dict[str, str | bytes]]:
    """Fit the store of `opts`: (the JSON document, {file name: its text or bytes}) with the printed
    summary; writes nothing. Raises FitInputError on bad input."""
    opts.check()
    store = load_results(opts.results)
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
            "cells": _cells_records(cf),
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
        "cells.csv": _cells_csv(cf),
        "report.md": _report(opts, cf, law, reason, blocks.report_sections(values), notes, family),
    } | {name: _parquet(t) for name, t in tables.items()}
    print(cells_table(cf, family).to_string(index=False))
    print()
    print(law_text(law, reason, family.factor_names, cf.curves["k"]))
    for line in blocks.summaries(ctx, values):
        print(line)
    for n in notes:
        print("note:", n)
    return doc, files


def run(argv: list[str] | None = None) -> dict:
    """Parse, fit, print and write; returns the JSON document. Raises FitInputError on bad input."""
    opts = FitOptions.from_mapping(vars(_parser().parse_args(argv)))
    doc, files = fit(opts)
    with staged_files(opts.out) as stage:  # all files land together, or none
        for name, body in files.items():
            write = Path.write_bytes if isinstance(body, bytes) else Path.write_text
            stage(name, lambda tmp, body=body, write=write: write(Path(tmp), body))
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
