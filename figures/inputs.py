"""Where the figures' inputs live, how to load them, and which command makes each one that is missing.

A figure module names the inputs it reads in `INPUTS` (a subset of `SOURCES`); `Inputs` holds one
directory per source, loads each at most once, and `Inputs.missing(...)` turns absent inputs into the
one-line messages the CLI prints (with the command that produces them) before anything is written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd

from simulations.results import BUNDLE_GLOB, load


class InputError(ValueError):
    """An input exists but cannot be used (stale, inconsistent); the message is one line for the CLI."""


@dataclass(frozen=True)
class Source:
    """One kind of input: its default directory, the file that proves it exists, and its producer."""

    name: str
    default: Path
    required: str  # glob, relative to the directory, that must match at least one file
    command: str


SOURCES = {
    "results": Source("results", Path("results/quick"), BUNDLE_GLOB, "python -m simulations.grid"),
    "fits": Source("fits", Path("results/fits"), "optimal_k.json", "python -m fits.optimal_k"),
    "softmoe": Source("softmoe", Path("results/softmoe"), "**/*",
                      "python -m simulations.softmoe single-expert|expert-drop"),
}


class Inputs:
    """The input directories of one figures run; loads each input lazily and caches it."""

    def __init__(self, results=None, fits=None, softmoe=None):
        given = {"results": results, "fits": fits, "softmoe": softmoe}
        self.paths = {name: Path(given[name] or src.default) for name, src in SOURCES.items()}

    def path(self, name: str) -> Path:
        """The directory of input `name` (one of SOURCES)."""
        return self.paths[name]

    def missing(self, names, extra=()) -> list[str]:
        """One message per absent input among `names`, plus one per absent `extra` entry: a
        (source, relative path) or (source, relative path, command) tuple from a module's REQUIRES
        (a source with such entries is checked through them only, so each message names one command)."""
        extra = list(dict.fromkeys(tuple(e) for e in extra))
        specific = {e[0] for e in extra}
        messages = []
        for name in dict.fromkeys(n for n in names if n not in specific):
            src, root = SOURCES[name], self.paths[name]
            if not any(p.is_file() for p in root.glob(src.required)):
                shown = root / src.required if "*" not in src.required else root
                messages.append(f"figures: missing {shown} (run: {src.command})")
        for name, rel, *command in extra:
            path = self.paths[name] / rel
            if not path.exists():
                run = command[0] if command else SOURCES[name].command
                messages.append(f"figures: missing {path} (run: {run})")
        return messages

    @cached_property
    def results(self) -> pd.DataFrame:
        """The results store, one row per (cell, seed) (`simulations.results.load`)."""
        return load(self.paths["results"])

    @cached_property
    def task_kwargs(self) -> dict:
        """The task parameters the theory needs (d, n_skills, holdout_frac), read from the results store;
        they must be shared by every row, since one theory curve stands for the whole store."""
        out = {}
        for kw, col in (("d", "d_in"), ("n_skills", "n_skills"), ("holdout_frac", "holdout_frac")):
            values = self.results[col].dropna().unique()
            if len(values) != 1:
                raise InputError(f"figures: results column {col!r} must hold one value for the theory "
                                 f"curves, found {sorted(values)}")
            out[kw] = values[0].item()
        return out

    @cached_property
    def fits(self) -> dict:
        """The parsed `optimal_k.json` written by `python -m fits.optimal_k`."""
        return json.loads((self.paths["fits"] / "optimal_k.json").read_text())
