"""The command line (`python -m figures`): regenerate every figure (or those named by --only).

Exit codes: 0 done; 2 bad usage (unknown --only name), a missing input (one line per missing input,
naming the command that produces it) or an unusable one (e.g. fits older than the results). Every
selected figure's data is computed before any file is written, so an input error writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from figures.inputs import SOURCES, InputError, Inputs
from figures.output import save
from figures.registry import FIGURES, by_name

DEFAULT_OUT = Path("figures/out")


def render(figure, inputs: Inputs, out_dir: Path, df=None) -> list[Path]:
    """Draw one figure from its data (computed here unless given) and write its PNG, PDF and CSV
    atomically to `out_dir`; return the paths."""
    if df is None:
        df = figure.data(inputs)
    return save(figure.NAME, df, figure.plot(df), Path(out_dir))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m figures",
                                description="Regenerate the paper figures from the results and the fits.")
    for name, src in SOURCES.items():
        p.add_argument(f"--{name}", type=Path, default=src.default, metavar="DIR",
                       help=f"{name} directory (default: {src.default}; made by `{src.command}`)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
                   help=f"output directory (default: {DEFAULT_OUT})")
    p.add_argument("--only", nargs="+", metavar="NAME", help="regenerate only these figures (see --list)")
    p.add_argument("--list", action="store_true", help="print each figure's name and title, then exit")
    return p


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

    inputs = Inputs(**{name: getattr(args, name) for name in SOURCES})
    missing = inputs.missing([s for fig in selected for s in fig.INPUTS],
                             [r for fig in selected for r in getattr(fig, "REQUIRES", ())])
    if missing:
        print("\n".join(missing), file=sys.stderr)
        return 2
    try:
        frames = [fig.data(inputs) for fig in selected]
    except InputError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    for fig, df in zip(selected, frames, strict=True):
        paths = render(fig, inputs, args.out, df)
        print(f"figures: {fig.NAME} -> {', '.join(str(p) for p in paths)}")
    return 0
