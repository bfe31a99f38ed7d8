"""CLI: `python -m simulations.families.softmoe single-expert|expert-drop [--preset quick|paper] [--out DIR]`.

Writes into the output dir (default results/softmoe/<experiment>/): results.parquet (one row per model,
or per model and selection), summary.csv (per cell), and manifest.json (provenance and config); see
docs/softmoe.md. A non-empty output dir is refused unless --overwrite; one that is a file, lies under a
file or is not writable is refused before anything runs. Bad input, or a failed write: one line, exit 2,
nothing written (all files are written together at the end, or none).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import pandas as pd
import torch

from simulations.cli import OneLineParser, add_preset

from . import expert_drop, single_expert
from .config import preset_config, presets
from .schema import SCHEMAS
from .store import OutputDirError, check_out_dir, provenance, write_outputs

EXPERIMENTS = {"single-expert": single_expert, "expert-drop": expert_drop}
DEFAULT_OUT = {"single-expert": Path("results/softmoe/single_expert"),
               "expert-drop": Path("results/softmoe/expert_drop")}


def parse(argv: list[str] | None) -> argparse.Namespace:
    prog = "python -m simulations.families.softmoe"
    p = OneLineParser(prog=prog, label=f"{prog}: ",
                      description="Run one of P3's Soft MoE experiments (output schema: docs/softmoe.md).")
    p.add_argument("experiment", choices=sorted(EXPERIMENTS), help="which P3 experiment to run")
    add_preset(p, presets(), "quick", strict=True, config=False,
               help="quick: a few minutes on 2 CPU cores; paper: P3's sizes (a GPU helps)")
    p.add_argument("--out", type=Path, default=None, help="output dir (default results/softmoe/<exp>/)")
    p.add_argument("--overwrite", action="store_true", help="replace the results of a non-empty --out")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="torch device")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads; 0: torch's default (default 1: small matmuls run about as fast "
                        "on one thread, and many times faster than spinning threads on a busy machine)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("argument --device: 'cuda' is not available here (choose from 'cpu')")
    if args.threads < 0:
        p.error(f"argument --threads: must be >= 0 (0: torch's default), got {args.threads}")
    args.out = args.out or DEFAULT_OUT[args.experiment]
    try:
        check_out_dir(args.out, args.overwrite)
    except OutputDirError as exc:
        p.error(str(exc))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    module = EXPERIMENTS[args.experiment]
    cfg = preset_config(args.experiment, args.preset)
    progress = not args.no_progress
    torch.manual_seed(0)  # nothing below draws from the global stream; this only guards against it
    if args.experiment == "single-expert":
        results, curves = module.run(cfg, device=args.device, progress=progress)
        summary = module.summarize(results)
        tables = {"results.parquet": results, "curves.parquet": curves, "summary.csv": summary}
        report = [summary, module.verdict(summary)]
    else:
        results = module.run(cfg, device=args.device, progress=progress)
        summary = module.summarize(results)
        tables = {"results.parquet": results, "summary.csv": summary}
        report = [summary]
    SCHEMAS[args.experiment].check(results, "results.parquet")
    meta = provenance(args.device, list(cfg.seeds), module.config_dict(cfg))
    meta.update(experiment=args.experiment, preset=args.preset, files=sorted(tables))
    created = [p for p in (args.out, *args.out.parents) if not p.exists()]  # deepest first
    try:
        write_outputs(args.out, tables, meta)  # manifest.json last: its presence marks a complete run
    except OSError as exc:
        for d in created:  # leave no empty directory behind
            with contextlib.suppress(OSError):
                d.rmdir()
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"python -m simulations.families.softmoe: error: cannot write to {args.out}: {reason}",
              file=sys.stderr)
        return 2
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.precision", 4):
        for df in report:
            print(df.to_string(index=False))
    print(f"wrote {', '.join(sorted(tables))} and manifest.json to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
