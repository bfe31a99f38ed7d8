"""Block `theory_comparison`: the theory's predicted exponents of k* against the fitted law's
(`fits.theory.law_comparison`), with Wald tests and P1's proportionality test."""

from __future__ import annotations

import json

from fits.blocks.context import FitContext
from fits.summary import clean
from fits.theory.law_comparison import theory_comparison, theory_kwargs

NAME = "theory_comparison"
TITLE = "Theory comparison"


def skipped(reason: str) -> dict:
    return {"available": False, "reason": reason}


def applies(ctx: FitContext) -> str | None:
    return None


def run(ctx: FitContext) -> dict:
    cf, law, _ = ctx.fitted
    return theory_comparison(law, cf.cells, **theory_kwargs(ctx.rows, ctx.options.metric))


def report(value: dict) -> str:
    return "```\n" + json.dumps(clean(value), indent=2) + "\n```\n"


def summary(value: dict) -> str:
    if value.get("available"):
        rounded = {k: round(v, 3) for k, v in value["predicted_exponents"].items()}
        return f"Theory's predicted exponents: {rounded}"
    return f"Theory comparison unavailable: {value.get('reason')}"
