"""The analyses of `python -m fits.optimal_k`, in order. Adding one is a module here and one line in
BLOCK_MODULES.

Each block module defines NAME (its key in optimal_k.json), TITLE (its report.md heading, or None for no
section), `applies(ctx) -> str | None` (None, or why it does not run with these options or this store),
`skipped(reason)` (its JSON value when it does not run), `run(ctx)` (its JSON value) and, optionally,
`report(value) -> str` (its section's body), `summary(value) -> str | None` (a line printed after the
fit) and `tables(ctx, value) -> {file name: DataFrame}` (Parquet tables written beside optimal_k.json
for the figures). `ctx` is a `FitContext`. A block the store's family skips (`fits.families`:
`Family.skipped`) takes the family's reason.

Public API: `FitContext`, `BLOCK_MODULES`, `BLOCKS`, `by_name()`, `skip_reason(block, ctx)`,
`run_blocks(ctx)`, `report_sections(values)`, `summaries(values)`, `tables(ctx, values)`.
"""

from __future__ import annotations

import importlib

import pandas as pd

from fits.blocks.context import FitContext

BLOCK_MODULES = (
    "fits.blocks.theory_comparison",
    "fits.blocks.joint_surface",
    "fits.blocks.by_router",
    "fits.blocks.paired_arms",
    "fits.blocks.theory_fit",
    "fits.blocks.k_eval",
    "fits.blocks.routing_gain",
    "fits.blocks.adaptive_k",
    "fits.blocks.gate_map",
    "fits.blocks.regime",
    "fits.blocks.prediction_check",
    "fits.blocks.plateau",
)

BLOCKS = [importlib.import_module(path) for path in BLOCK_MODULES]


def by_name() -> dict:
    """{NAME: module} in registry order."""
    return {block.NAME: block for block in BLOCKS}


def skip_reason(block, ctx: FitContext) -> str | None:
    """Why `block` does not run on this store with these options (the family's reason first), or None."""
    return ctx.family.skipped.get(block.NAME) or block.applies(ctx)


def run_blocks(ctx: FitContext) -> dict:
    """{NAME: JSON value} of every block, in registry order: its result, or its skipped form."""
    out = {}
    for block in BLOCKS:
        reason = skip_reason(block, ctx)
        out[block.NAME] = block.skipped(reason) if reason else block.run(ctx)
    return out


def report_sections(values: dict) -> list[str]:
    """The report.md section ("## TITLE" and body) of every block that has one, in registry order."""
    return [f"## {b.TITLE}\n\n{b.report(values[b.NAME])}" for b in BLOCKS if b.TITLE is not None]


def summaries(ctx: FitContext, values: dict) -> list[str]:
    """The printed lines of the blocks that ran and have something to say."""
    lines = [b.summary(values[b.NAME]) for b in BLOCKS if hasattr(b, "summary") and not skip_reason(b, ctx)]
    return [line for line in lines if line]


def tables(ctx: FitContext, values: dict) -> dict[str, pd.DataFrame]:
    """{file name: table} the blocks write for the figures."""
    out = {}
    for block in BLOCKS:
        if hasattr(block, "tables") and not skip_reason(block, ctx):
            out |= block.tables(ctx, values[block.NAME])
    return out


__all__ = ["BLOCKS", "BLOCK_MODULES", "FitContext", "by_name", "report_sections", "run_blocks",
           "skip_reason", "summaries", "tables"]
