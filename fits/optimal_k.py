"""`python -m fits.optimal_k [RESULTS] [--metric id|ood|train|...] [--out DIR] [--bootstrap N] [--seed S]`

Per-cell optimal k with seed-cluster bootstrap uncertainty, the scaling law of k*, and its comparison
with the theory. Prints a summary; writes `optimal_k.json`, `cells.csv` and `report.md` to DIR, all at
the end and atomically (nothing is written when the input is bad). A SRAVEN store is mapped onto the
same cells (`fits.families`: complexity = R, error = 1 - accuracy); the parts that model the regression
task (theory, surface, inference-time k, routing arms) are skipped for it, each with its reason.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from fits.cells import CellFits, cell_optimal_k
from fits.curve import SHAPES
from fits.data import (
    DEFAULT_OUT,
    DEFAULT_RESULTS,
    FitInputError,
    load_results,
    metric_column,
    results_fingerprint,
    split_arms,
)
from fits.families import FAMILIES, Family, family_of
from fits.k_eval import k_eval_block
from fits.law import K_SOURCES, METHODS, LawFit, LawNotIdentified, fit_law, wald_tests
from fits.surface import fit_moe_loss
from fits.theory_compare import predicted_exponents, theory_comparison, theory_kwargs
from fits.theory_fit import theory_fit_block
from fits.theory_fit_report import markdown as theory_fit_markdown
from simulations.atomic import staged_files
from simulations.results import load_k_eval


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage block
        raise FitInputError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m fits.optimal_k", description=__doc__.splitlines()[2])
    p.add_argument(
        "results", nargs="?", default=str(DEFAULT_RESULTS), help="results store (default %(default)s)"
    )
    metrics = "; ".join(f"{', '.join(f.metrics)} ({f.name})" for f in FAMILIES.values())
    p.add_argument("--metric", default="ood", help=f"one of {metrics} (default %(default)s)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="output directory (default %(default)s)")
    p.add_argument("--bootstrap", type=int, default=2000, help="seed-cluster resamples (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default %(default)s)")
    p.add_argument(
        "--method", default="hc3", help=f"law fit: one of {', '.join(METHODS)} (default %(default)s)"
    )
    p.add_argument(
        "--k-source",
        default="continuous",
        help=f"k* feeding the law: one of {', '.join(K_SOURCES)} (default %(default)s)",
    )
    p.add_argument(
        "--surface-bootstrap",
        type=int,
        default=100,
        help="point-bootstrap resamples of the joint loss surface; 0 skips its CIs (default %(default)s)",
    )
    p.add_argument(
        "--shape",
        default="linear",
        help=f"estimation term of the smooth fit: one of {', '.join(SHAPES)} (default %(default)s)",
    )
    p.add_argument("--no-surface", action="store_true", help="skip the joint loss-surface fit")
    p.add_argument("--theory-bootstrap", type=int, default=100,
                   help="seed-cluster resamples of the calibrated risk bound (default %(default)s)")
    p.add_argument("--no-theory", action="store_true", help="skip the calibrated risk bound (theory_fit)")
    return p


def _clean(x):
    """JSON-ready: numpy scalars to Python, NaN to null, tuples to lists."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple | np.ndarray):
        return [_clean(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def law_summary(law: LawFit) -> dict:
    """The law as the JSON contract has it (exponents with estimate, se, ci95) plus the extras."""
    exps = {}
    for r in law.exponents.itertuples():
        exps[r.factor] = {
            "estimate": r.estimate,
            "se": r.se,
            "ci95": [r.ci_low, r.ci_high],
            "ci95_bootstrap": [r.boot_ci_low, r.boot_ci_high],
            "n_levels": r.n_levels,
            "fitted": r.factor in law.factors,
        }
    return {
        "exponents": exps,
        "intercept": law.intercept,
        # what a consumer needs to draw the law's confidence band without refitting (fits.law.law_band)
        "params": law.result.params.to_dict(),
        "cov_params": law.result.cov_params().to_numpy().tolist(),
        "use_t": bool(law.result.use_t),
        "df_resid": float(law.result.df_resid),
        "r2": law.r2,
        "aic": law.aic,
        "bic": law.bic,
        "n_cells": law.n_cells,
        "method": law.method,
        "k_source": law.k_source,
        "alternatives": law.alternatives.to_dict(orient="records"),
        "leave_one_level_out": law.lolo.to_dict(orient="records"),
        "diagnostics": law.diagnostics,
        "notes": law.notes,
    }


def joint_surface(cf: CellFits, n_boot: int, seed: int) -> dict:
    """The joint fit of loss(k, s, m, h) (`fits.surface.fit_moe_loss`), JSON-ready, or why it was skipped."""
    curves = cf.curves[np.isfinite(cf.curves["mean"])]
    if len(curves) < 16:
        return {"fitted": False, "reason": f"{len(curves)} (cell, k) points: too few for 8 parameters"}
    fit = fit_moe_loss(curves, n_boot=n_boot, seed=seed)
    return {
        "fitted": True,
        "form": "L = E + A s^gamma / k^alpha + B k^beta h^nu / m^mu",
        "params": fit.params,
        "ci95": fit.ci if n_boot else None,
        "convergence": fit.convergence,
        "n_points": len(curves),
    }


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


def fit_arm(df: pd.DataFrame, args, k_source: str | None = None
            ) -> tuple[CellFits, LawFit | None, str | None]:
    """Per-cell k* and the law of one arm's rows (k* from `k_source`, default the --k-source)."""
    try:
        cf = cell_optimal_k(df, args.metric, n_boot=args.bootstrap, seed=args.seed, shape=args.shape)
    except ValueError as exc:
        raise FitInputError(str(exc)) from exc
    try:
        return cf, fit_law(cf, method=args.method, k_source=k_source or args.k_source), None
    except LawNotIdentified as exc:
        return cf, None, str(exc)


def arm_block(df: pd.DataFrame, cf: CellFits, law: LawFit | None, reason: str | None, metric: str) -> dict:
    """One arm's answer for `by_router`: the law (shaped like the top-level `law`), tests of the
    complexity exponent against 0 and 1, and per cell k* beside the theory's k* and the routing recall
    at k* (censored cells say so: their k* is only a bound)."""
    block: dict = {"law": law_summary(law) if law is not None else None, "law_not_fitted_reason": reason}
    if law is not None and "complexity" in law.factors:
        block["complexity_tests"] = {
            f"b_s={v}": wald_tests(law, {"complexity": float(v)}).iloc[0].to_dict() for v in (0, 1)}
        aic = law.alternatives.set_index("model")["aic"]
        if "affine in s" in aic.index:
            block["affine_vs_power_law_delta_aic"] = float(aic["affine in s"] - aic["power law"])
    cells = cf.cells[["complexity", "n_train", "width", "n_experts", "k_star", "k_star_ci", "censored",
                      "k_flat_low", "k_flat_high", "k_star_cont", "n_seeds"]].copy()
    try:
        theory = predicted_exponents(cells, **theory_kwargs(df, metric))
        cells["k_star_theory"] = theory["k_star_theory"].to_numpy()
    except Exception as exc:  # theory missing or failing must not sink the fit (as theory_comparison)
        block["theory_unavailable"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    if "routing_recall" in df.columns:
        recall = df[~df["diverged"]].groupby(["complexity", "n_train", "width", "n_experts", "k"])[
            "routing_recall"].mean()
        cells["routing_recall_at_k_star"] = [
            recall.get((r.complexity, r.n_train, r.width, r.n_experts, r.k_star), np.nan)
            for r in cells.itertuples()]
    block["cells"] = cells.to_dict(orient="records")
    block["n_censored"] = int((cf.cells["censored"] != "").sum())
    # Curves flat past the knee: k within one SE of the minimum spans a factor of 2 or more.
    block["n_flat"] = int((cf.cells["k_flat_high"] >= 2 * cf.cells["k_flat_low"]).sum())
    return block


def k_eval_markdown(block: dict) -> str:
    """The report.md section for the `k_eval` block."""
    if not block.get("available"):
        return f"Not available: {block.get('reason')}\n"
    by = pd.DataFrame(block["by_complexity"])
    def with_ci(col):
        return [f"{v:.2f} {_ci(c)}" for v, c in zip(by[col], by[f"{col}_ci"], strict=True)]

    table = pd.DataFrame({"arm": by["arm"], "s": by["complexity"], "cells": by["n_cells"],
                          "best k_eval = k_train": with_ci("equal"), "within 1": with_ci("within_1"),
                          "mean best k_eval": with_ci("mean_best")})
    return (f"Each trained model evaluated at every k_eval = 1..T ({block['rule']}); metric "
            f"`{block['metric']}`; seed-cluster bootstrap 95 % intervals over cells (k_train, m, h).\n\n"
            + _markdown(table) + "\n")


def _fmt(x, nd=2):
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{nd}f}"


def _ci(ci, nd=2):
    return "-" if not all(math.isfinite(v) for v in ci) else f"[{_fmt(ci[0], nd)}, {_fmt(ci[1], nd)}]"


def cells_table(cf: CellFits, family: Family = FAMILIES["regression"]) -> pd.DataFrame:
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
            "k*": [_fmt(v, 0) for v in c["k_star"]],
            "k* 95% CI": [_ci(v, 0) for v in c["k_star_ci"]],
            "P(argmin)": [_fmt(v) for v in c["p_k_star"]],
            "k within 1 SE": [_ci(v, 0).replace(", ", "-") for v in zip(c["k_flat_low"], c["k_flat_high"],
                                                                          strict=True)],
            "censored": c["censored"].replace("", "-"),
            "k*_cont": [_fmt(v) for v in c["k_star_cont"]],
            "k*_cont 95% CI": [_ci(v) for v in c["k_star_cont_ci"]],
            "fit R2": [_fmt(v) for v in c["fit_r2"]],
            "seeds": c["n_seeds"],
            "diverged": c["n_diverged"],
        }
    ).rename(columns=names)


def _markdown(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def law_text(law: LawFit | None, reason: str | None, names: dict | None = None) -> str:
    """The law as printed and in report.md; `names` labels the factors (a family's factor_names)."""
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
                f"  95% CI {_ci((r.ci_low, r.ci_high), 3)}"
                f"  bootstrap CI {_ci((r.boot_ci_low, r.boot_ci_high), 3)}"
            )
        else:
            lines.append(f"    (no {names.get(r.factor, r.factor)} term: one level in the usable cells)")
    return "\n".join(lines)


def _report(args, cf: CellFits, law, reason, theory: dict, notes: list[str],
            family: Family = FAMILIES["regression"]) -> str:
    col = metric_column(args.metric, family.name)
    what = f" = {family.error_of[col]}" if col in family.error_of else ""
    parts = [
        "# Optimal k per cell and the law of k*",
        "",
        f"Results: `{args.results}` ({family.name}); metric `{col}`{what}; {cf.n_boot} seed-cluster"
        f" bootstrap resamples (seed {args.seed}).",
        "",
        "## Notes",
        "",
        *[f"- {n}" for n in notes],
        "",
        "## Cells",
        "",
        "k* is the argmin over k of the mean over seeds; `k*_cont` the argmin of the smooth fit "
        f"L(k) = c + a k^-p + b e(k), e = {args.shape} (docs/fits.md). Censored: k* at the smallest or"
        " largest tested k.",
        "",
        _markdown(cells_table(cf, family)),
        "",
        "## Law",
        "",
        "```",
        law_text(law, reason, family.factor_names),
        "```",
        "",
    ]
    if law is not None:
        parts += [
            "### Alternatives",
            "",
            _markdown(law.alternatives.round(3)),
            "",
            "### Leave one level out",
            "",
            _markdown(law.lolo.round(3)) if len(law.lolo) else "(no factor has 3 or more levels)",
            "",
            "### Residual diagnostics",
            "",
            *[f"- {k}: {_fmt(v, 3)}" for k, v in law.diagnostics.items()],
            "",
        ]
    if family.skipped:
        parts += ["## Skipped for this family", "", *[f"- {k}: {v}" for k, v in family.skipped.items()], ""]
    parts += ["## Theory comparison", "", "```", json.dumps(_clean(theory), indent=2), "```", ""]
    return "\n".join(parts)


def regression_blocks(store: pd.DataFrame, arms: dict, primary: str, fitted: tuple, args) -> dict:
    """The parts of the fits that model the regression task: the law per routing arm, the theory's k*,
    the joint loss surface, the calibrated risk bound and the inference-time k."""
    cf, law, reason = fitted
    df = arms[primary]
    by_router = None
    if "router" in store.columns:
        by_router = {}
        for name, part in arms.items():
            # The oracle's curve is flat past k = s * r by construction (docs/tasks.md), a shape outside
            # the smooth curve model's family: its law uses the discrete k*.
            fit = fitted if name == primary else fit_arm(part, args, "discrete" if name == "oracle" else None)
            by_router[name] = arm_block(part, *fit, args.metric)
    theory = theory_comparison(law, cf.cells, **theory_kwargs(df, args.metric))
    surface = {"fitted": False, "reason": "--no-surface"}
    if not args.no_surface:
        surface = joint_surface(cf, args.surface_bootstrap, args.seed)
    theory_fit = {"fitted": False, "reason": "--no-theory"}
    if not args.no_theory:
        # the learned and oracle routers with learned experts: the students the bound describes
        modular = store[store["experts"] == "learned"] if "experts" in store.columns else store
        theory_fit = theory_fit_block(modular, args.metric, args.theory_bootstrap, args.seed)
    k_eval_metric = "test_mse_ood" if args.metric == "ood" else "test_mse_id"
    k_eval = k_eval_block(load_k_eval(args.results) if Path(args.results).is_dir() else pd.DataFrame(),
                          k_eval_metric, args.bootstrap, args.seed)
    return {"theory_comparison": theory, "joint_surface": surface, "by_router": by_router,
            "theory_fit": theory_fit, "k_eval": k_eval}


def skipped_blocks(family: Family) -> dict:
    """The regression-only blocks of optimal_k.json for another family: each says it is skipped and why."""
    why = family.skipped
    return {"theory_comparison": {"available": False, "reason": why["theory_comparison"]},
            "joint_surface": {"fitted": False, "reason": why["joint_surface"]},
            "by_router": None,
            "theory_fit": {"fitted": False, "reason": why["theory_fit"]},
            "k_eval": {"available": False, "reason": why["k_eval"]}}


def run(argv: list[str] | None = None) -> dict:
    """Parse, fit, print and write; returns the JSON document. Raises FitInputError on bad input."""
    args = _parser().parse_args(argv)
    if args.method not in METHODS:
        raise FitInputError(f"unknown --method {args.method!r}: allowed values are {', '.join(METHODS)}")
    if args.k_source not in K_SOURCES:
        raise FitInputError(
            f"unknown --k-source {args.k_source!r}: allowed values are {', '.join(K_SOURCES)}"
        )
    if args.shape not in SHAPES:
        raise FitInputError(f"unknown --shape {args.shape!r}: allowed values are {', '.join(SHAPES)}")
    for name in ("bootstrap", "surface_bootstrap", "theory_bootstrap"):
        if getattr(args, name) < 0:
            raise FitInputError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    store = load_results(args.results)
    family = FAMILIES[family_of(store)]
    col = metric_column(args.metric, family.name)  # the family's metrics: checked before any fit
    arms = split_arms(store)
    if not arms:
        raise FitInputError(f"results at {args.results} hold no top-k rows (only dense reference rows)")
    # The top-level cells and law are the learned arm's (the toolkit's question); every arm is under
    # `by_router` when the store has routing controls.
    primary = "learned" if "learned" in arms else next(iter(arms))
    df = arms[primary]
    cf, law, reason = fit_arm(df, args)
    if family.name == "regression":
        blocks = regression_blocks(store, arms, primary, (cf, law, reason), args)
    else:
        blocks = skipped_blocks(family)
    theory, theory_fit = blocks["theory_comparison"], blocks["theory_fit"]
    notes = cf.notes + (law.notes if law is not None else [reason])
    if family.skipped:
        notes.append(f"skipped for {family.name} results: {', '.join(family.skipped)} (why: `skipped` in "
                     "optimal_k.json and report.md)")
    extra = {}
    if family.to_generic is not None:
        extra = {"error": family.error_of.get(col, col),
                 "mapping": family.mapping,
                 "skipped": family.skipped}
    doc = _clean(
        {
            "results": str(args.results),
            "family": family.name,
            "metric": col,
            **extra,
            "n_bootstrap": cf.n_boot,
            "seed": args.seed,
            "shape": args.shape,
            "n_rows": len(store),
            "arm": primary,
            "results_fingerprint": results_fingerprint(store),
            "n_diverged_rows": int(df["diverged"].sum()),
            "n_censored": int((cf.cells["censored"] != "").sum()),
            "cells": _cells_records(cf),
            "law": law_summary(law) if law is not None else None,
            "law_not_fitted_reason": reason,
            **blocks,
            "notes": notes,
        }
    )
    files = {
        "optimal_k.json": json.dumps(doc, indent=2),
        "cells.csv": cf.cells.assign(
            k_star_ci_low=[c[0] for c in cf.cells["k_star_ci"]],
            k_star_ci_high=[c[1] for c in cf.cells["k_star_ci"]],
            k_star_cont_ci_low=[c[0] for c in cf.cells["k_star_cont_ci"]],
            k_star_cont_ci_high=[c[1] for c in cf.cells["k_star_cont_ci"]],
        )
        .drop(columns=["k_star_ci", "k_star_cont_ci"])
        .to_csv(index=False),
        "report.md": _report(args, cf, law, reason, theory, notes, family)
        + "\n## Theory fit: the calibrated risk bound\n\n" + theory_fit_markdown(_clean(theory_fit))
        + "\n## Inference-time k\n\n" + k_eval_markdown(blocks["k_eval"]),
    }
    print(cells_table(cf, family).to_string(index=False))
    print()
    print(law_text(law, reason, family.factor_names))
    if theory.get("available"):
        print(
            "Theory's predicted exponents:",
            {k: round(v, 3) for k, v in theory["predicted_exponents"].items()},
        )
    elif not family.skipped:  # a skipped theory is in the notes
        print("Theory comparison unavailable:", theory.get("reason"))
    if theory_fit.get("fitted"):
        print("Calibrated risk bound:", {k: round(v["estimate"], 4) for k, v in theory_fit["params"].items()})
    for n in notes:
        print("note:", n)
    with staged_files(args.out) as stage:  # all files land together, or none
        for name, text in files.items():
            stage(name, lambda tmp, text=text: Path(tmp).write_text(text))
    print(f"wrote {', '.join(files)} to {args.out}")
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
