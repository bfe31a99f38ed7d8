"""Block `adaptive_k`: mean experts per input by the input's s, and its slope on s, from the store's
experts-by-s table (`fits.adaptive_k`; written for grids with complexity_mix)."""

from __future__ import annotations

from pathlib import Path

from fits.adaptive_k import adaptive_k_block, adaptive_k_markdown, adaptive_k_summary
from fits.blocks.context import FitContext
from simulations.results import EXPERTS_GLOB, load_experts_by_s

NAME = "adaptive_k"
TITLE = "Adaptive k: experts per input by s"


def skipped(reason: str) -> dict:
    return {"available": False, "reason": reason}


def applies(ctx: FitContext) -> str | None:
    path = Path(ctx.options.results)
    if path.is_dir() and any(path.glob(EXPERTS_GLOB)):
        return None
    return "the store has no experts-by-s table (a grid without complexity_mix)"


def run(ctx: FitContext) -> dict:
    return adaptive_k_block(load_experts_by_s(ctx.options.results), ctx.options.bootstrap, ctx.options.seed)


def report(value: dict) -> str:
    return adaptive_k_markdown(value)


def summary(value: dict) -> str | None:
    return adaptive_k_summary(value)
