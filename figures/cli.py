"""The command line (`python -m figures`): draw every figure whose inputs exist (or those named by --only).

A figure whose input is missing is skipped and listed with the command that makes the input (in pipeline
order: the grid before the fits). Exit codes: 0 when at least one figure was drawn; 2 when a figure named
with --only cannot be drawn, when nothing can be drawn, on bad usage (unknown --only name, an --out that
is a file, lies under a file or is not writable) and on an unusable input (unreadable, corrupt, lacking
columns or keys, fits that belong to other results). Each error is one line on stderr. All selected
figures' data are computed before any file is written, and their files are written all together or not
at all, so an error writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from figures.inputs import SOURCES, InputError, Inputs, one_line
from figures.output import save, save_all
from figures.registry import FIGURES, by_name
from simulations.atomic import unwritable_dir
from simulations.cli import OneLineParser

DEFAULT_OUT = Path("figures/out")


def render(figure, inputs: Inputs, out_dir: Path, df=None) -> list[Path]:
    """Draw one figure from its data (computed here unless given) and write its PNG, PDF and CSV
    atomically to `out_dir`; return the paths."""
    if df is None:
        df = figure.data(inputs)
    return save(figure.NAME, df, figure.plot(df), Path(out_dir))


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m figures", label="figures: ",
                      description="Regenerate the paper figures from the results and the fits; "
                                  "figures whose inputs are missing are skipped and listed.")
    for name, src in SOURCES.items():
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, type=Path, default=src.default,
                       metavar="DIR",
                       help=f"{name} directory (default: {src.default}; made by `{src.command}`)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
                   help=f"output directory (default: {DEFAULT_OUT})")
    p.add_argument("--only", nargs="+", metavar="NAME",
                   help="draw only these figures, and fail if one cannot be drawn (see --list)")
    p.add_argument("--list", action="store_true", help="print each figure's name and title, then exit")
    return p


def _gaps(needs) -> str:
    return "; ".join(f"missing {path} (run: {command})" for path, command in needs)


def _data(fig, inputs: Inputs):
    """The figure's data; an input that exists but does not have the shape the figure reads (a column or
    key it lacks, values of the wrong type) becomes a one-line InputError instead of a traceback."""
    try:
        return fig.data(inputs)
    except InputError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, OSError) as exc:
        dirs = ", ".join(str(inputs.path(n)) for n in fig.INPUTS)
        raise InputError(f"figures: cannot draw {fig.NAME} from {dirs}: unusable input "
                         f"({type(exc).__name__}: {one_line(exc)})") from exc


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    registry = by_name()
    if args.list:
        for fig in FIGURES:
            print(f"{fig.NAME}\t{fig.TITLE}")
        return 0
    if args.only:
        unknown = [n for n in args.only if n not in registry]
        if unknown:
            print(f"figures: unknown figure {', '.join(map(repr, unknown))} for --only "
                  f"(allowed: {', '.join(registry)})", file=sys.stderr)
            return 2
        selected = [registry[n] for n in dict.fromkeys(args.only)]
    else:
        selected = list(FIGURES)
    problem = unwritable_dir(args.out)
    if problem:
        print(f"figures: --out: {problem}", file=sys.stderr)
        return 2

    inputs = Inputs(**{name: getattr(args, name) for name in SOURCES})
    needs = {fig.NAME: inputs.needs(fig.INPUTS, getattr(fig, "REQUIRES", ())) for fig in selected}
    ready = [fig for fig in selected if not needs[fig.NAME]]
    skipped = [fig for fig in selected if needs[fig.NAME]]
    if args.only and skipped:
        for fig in skipped:
            print(f"figures: cannot draw {fig.NAME}: {_gaps(needs[fig.NAME])}", file=sys.stderr)
        return 2
    if not ready:
        for fig in skipped:
            print(f"figures: skipped {fig.NAME}: {_gaps(needs[fig.NAME])}", file=sys.stderr)
        print("figures: nothing to draw: every figure lacks an input (run the commands above)",
              file=sys.stderr)
        return 2
    try:
        frames = [_data(fig, inputs) for fig in ready]
    except InputError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    try:
        written = save_all([(fig.NAME, df, lambda fig=fig, df=df: fig.plot(df))
                            for fig, df in zip(ready, frames, strict=True)], args.out)
    except OSError as exc:
        print(f"figures: cannot write to {args.out}: {one_line(exc)}", file=sys.stderr)
        return 2
    for name, paths in written.items():
        print(f"figures: {name} -> {', '.join(str(p) for p in paths)}")
    for fig in skipped:
        print(f"figures: skipped {fig.NAME}: {_gaps(needs[fig.NAME])}", file=sys.stderr)
    return 0
