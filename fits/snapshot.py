"""`python -m fits.snapshot FITS_DIR STORE OUT --wall-s S --command "..."`: a reference result.

Copies a fits run's `cells.csv`, `optimal_k.json` and `report.md` into OUT beside `provenance.json`: the
store's manifest (config, commit, versions, device), the machine (platform, processor, CPU count), the
grid's wall time and the command that made it. docs/reference/ holds the presets' (docs/reference.md), so
a user compares a run with them instead of re-running an hour; tests/fits/test_reference.py checks that
they parse and match the presets' designs. Files land together (atomically) or not at all.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

from fits.data import FitInputError
from simulations.atomic import staged_files
from simulations.results import read_manifest

FILES = ("cells.csv", "optimal_k.json", "report.md")


def machine() -> dict:
    """The machine the numbers came from, as far as Python can tell."""
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count()}


def snapshot(fits_dir: Path, store: Path, wall_s: float, command: str) -> dict[str, str]:
    """{file name: text} of the reference result (see module doc); FitInputError on a missing input."""
    missing = [f for f in FILES if not (fits_dir / f).is_file()]
    if missing:
        raise FitInputError(f"fits dir {fits_dir} lacks {', '.join(missing)} (run python -m fits.optimal_k)")
    manifest = read_manifest(store) if store.is_dir() else None
    if manifest is None:
        raise FitInputError(f"store {store} has no manifest.json")
    prov = {"store": str(store), "fits": str(fits_dir), "command": command, "wall_s": wall_s,
            "machine": machine(), "manifest": manifest}
    return {f: (fits_dir / f).read_text() for f in FILES} | {"provenance.json": json.dumps(prov, indent=1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fits.snapshot", description=__doc__.splitlines()[0])
    p.add_argument("fits_dir", type=Path)
    p.add_argument("store", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--wall-s", type=float, required=True, help="the grid's wall time in seconds")
    p.add_argument("--command", required=True, help="the command that ran the grid")
    args = p.parse_args(argv)
    try:
        files = snapshot(args.fits_dir, args.store, args.wall_s, args.command)
    except FitInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with staged_files(args.out) as stage:
        for name, text in files.items():
            stage(name, lambda tmp, text=text: Path(tmp).write_text(text))
    print(f"wrote {', '.join(files)} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
