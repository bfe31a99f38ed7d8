"""What one fits run (`python -m fits.optimal_k`) prints and writes: the cells table and the law as text,
report.md, cells.csv, optimal_k.json's cell records, the figures' tables as Parquet bytes, and the
writer that lands them all together (nothing is written when any of them fails)."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from fits.cells import CellFits
from fits.data import metric_column
from fits.families import REGRESSION, Family
from fits.law import LawFit
from fits.options import FitOptions
from fits.summary import ci_text, fmt, interval_text, markdown_table
from simulations.atomic import staged_files


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


def report_md(opts: FitOptions, cf: CellFits, law, reason, sections: list[str], notes: list[str],
            family: Family = REGRESSION) -> str:
    """report.md: the run, the notes, the primary arm's cells and law, then each block's section."""
    col = metric_column(opts.metric, family.name)
    what = f" = {family.error_of[col]}" if col in family.error_of else ""
    where = f", rows where {' and '.join(opts.where)}" if opts.where else ""
    parts = [
        "# Optimal k per cell and the law of k*",
        "",
        f"Results: `{opts.results}` ({family.name}){where}; metric `{col}`{what}; {cf.n_boot} seed-cluster"
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


def cells_records(cf: CellFits) -> list[dict]:
    """optimal_k.json's cells: each cell's row with its P(argmin) and mean loss per k."""
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


def cells_csv(cf: CellFits) -> str:
    """cells.csv: the cells table with each interval as two columns."""
    return cf.cells.assign(
        k_star_ci_low=[c[0] for c in cf.cells["k_star_ci"]],
        k_star_ci_high=[c[1] for c in cf.cells["k_star_ci"]],
        k_star_cont_ci_low=[c[0] for c in cf.cells["k_star_cont_ci"]],
        k_star_cont_ci_high=[c[1] for c in cf.cells["k_star_cont_ci"]],
    ).drop(columns=["k_star_ci", "k_star_cont_ci"]).to_csv(index=False)


def parquet_bytes(df: pd.DataFrame) -> bytes:
    """A table as the bytes of its Parquet file (written later, with the others)."""
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def write_files(out: str | Path, files: dict[str, str | bytes]) -> None:
    """Write {file name: text or bytes} to `out`, all together or none (simulations.atomic)."""
    with staged_files(out) as stage:
        for name, body in files.items():
            write = Path.write_bytes if isinstance(body, bytes) else Path.write_text
            stage(name, lambda tmp, body=body, write=write: write(Path(tmp), body))
