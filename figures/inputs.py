"""Where the figures' inputs live, how to load them, and which command makes each one that is missing.

A figure module names the inputs it reads in `INPUTS` (a subset of `SOURCES`); `Inputs` holds one
directory per source, loads each at most once, and `Inputs.needs(...)` lists the absent ones with the
command that produces each (the CLI skips those figures). An input that exists but cannot be used
(unreadable, corrupt, missing columns or keys, stale) raises `InputError` with a one-line message.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd

from simulations.families import DEFAULT, SOFTMOE, SRAVEN, family_of_rows, get_schema
from simulations.results import BUNDLE_GLOB, REQUIRED_COLUMNS, load, read_manifest


class InputError(ValueError):
    """An input exists but cannot be used (unreadable, corrupt, stale, inconsistent); the message is one
    line for the CLI."""


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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
    SOFTMOE: Source(SOFTMOE, Path("results/softmoe"), "**/*",
                      "python -m simulations.families.softmoe single-expert|expert-drop"),
    "regime": Source("regime", Path("results/fits-regime"), "regime.parquet",
                     "python -m simulations.families.regression.regime, then python -m fits.regime"),
    SRAVEN: Source(SRAVEN, Path("results/sraven-quick"), BUNDLE_GLOB,
                     "python -m simulations.families.sraven"),
    "sraven_fits": Source("sraven_fits", Path("results/fits-sraven"), "optimal_k.json",
                          "python -m fits.optimal_k results/sraven-quick --out results/fits-sraven"),
    "sraven_regime": Source("sraven_regime", Path("results/sraven-regime"), "*/curves.parquet",
                            "make sraven-regime"),
    "sraven_curves": Source("sraven_curves", Path("results/sraven-converge"), "curves-*.parquet",
                            "python -m simulations.families.sraven --preset converge"),
}


class Inputs:
    """The input directories of one figures run; loads each input lazily and caches it."""

    def __init__(self, results=None, fits=None, softmoe=None, regime=None, sraven=None, sraven_fits=None,
                 sraven_regime=None, sraven_curves=None):
        given = {"results": results, "fits": fits, SOFTMOE: softmoe, "regime": regime, SRAVEN: sraven,
                 "sraven_fits": sraven_fits, "sraven_regime": sraven_regime, "sraven_curves": sraven_curves}
        self.paths = {name: Path(given[name] or src.default) for name, src in SOURCES.items()}
        self._tables: dict[Path, pd.DataFrame] = {}

    def path(self, name: str) -> Path:
        """The directory of input `name` (one of SOURCES)."""
        return self.paths[name]

    def needs(self, names: Iterable[str], extra=()) -> list[tuple[Path, str]]:
        """(path, command that makes it) for each absent input among `names`, plus one per absent `extra`
        entry: a (source, relative path) or (source, relative path, command) tuple from a module's
        REQUIRES (a source with such entries is checked through them only, so each names one command;
        of several absent files made by the same command, the first stands for all). In pipeline order
        (SOURCES: results, then fits, then softmoe), so the first step comes first."""
        extra = list(dict.fromkeys(tuple(e) for e in extra))
        specific = {e[0] for e in extra}
        gaps = []
        for name in dict.fromkeys(n for n in names if n not in specific):
            src, root = SOURCES[name], self.paths[name]
            if not any(p.is_file() for p in root.glob(src.required)):
                shown = root / src.required if "*" not in src.required else root
                gaps.append((name, shown, src.command))
        for name, rel, *command in extra:
            path = self.paths[name] / rel
            cmd = command[0] if command else SOURCES[name].command
            if not path.is_file() and (name, cmd) not in {(g[0], g[2]) for g in gaps}:
                gaps.append((name, path, cmd))
        order = list(SOURCES)
        return [(path, cmd) for _, path, cmd in sorted(gaps, key=lambda g: order.index(g[0]))]

    def missing(self, names, extra=()) -> list[str]:
        """`needs` as one message per absent input: `figures: missing PATH (run: COMMAND)`."""
        return [f"figures: missing {path} (run: {cmd})" for path, cmd in self.needs(names, extra)]

    def table(self, name: str, rel: str, columns: Iterable[str] = ()) -> pd.DataFrame:
        """The Parquet file `rel` under input `name`'s directory; an unreadable one, or one that lacks
        any of `columns`, is an InputError."""
        path = self.paths[name] / rel
        if path not in self._tables:
            try:
                self._tables[path] = pd.read_parquet(path)
            except Exception as exc:  # empty, truncated, corrupt or not Parquet at all: pyarrow's reason
                raise InputError(f"figures: cannot read {path}: {one_line(exc)} "
                                 f"(made by: {SOURCES[name].command})") from exc
        table = self._tables[path]
        lacking = [c for c in columns if c not in table.columns]
        if lacking:
            raise InputError(f"figures: {path} lacks column(s) {', '.join(lacking)} "
                             f"(rerun: {SOURCES[name].command})")
        return table

    @cached_property
    def results(self) -> pd.DataFrame:
        """The results store, one row per (cell, seed) (`simulations.results.load`), with the store's
        required columns and at least one row."""
        root, command = self.paths["results"], SOURCES["results"].command
        try:
            df = load(root)
        except Exception as exc:  # an empty, truncated or corrupt bundle file: pyarrow's reason
            raise InputError(f"figures: cannot read the results store {root}: {one_line(exc)} "
                             f"(made by: {command})") from exc
        lacking = [c for c in REQUIRED_COLUMNS if c not in df.columns]
        if lacking:
            raise InputError(f"figures: the results store {root} lacks column(s) {', '.join(lacking)} "
                             f"(made by: {command})")
        if len(df) == 0:
            raise InputError(f"figures: the results store {root} holds no rows (made by: {command})")
        return df

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
        """The parsed `optimal_k.json` written by `python -m fits.optimal_k`, checked for what the figures
        read: `cells` (a non-empty list of objects with FITS_CELL_KEYS) and `law`
        (null, or an object with FITS_LAW_KEYS)."""
        return self._fits_doc("fits")

    @cached_property
    def sraven(self) -> pd.DataFrame:
        """The SRAVEN store mapped onto the generic cells by its family's schema (`to_generic`: complexity
        = n_rules, width = d_expert, n_train = problems per model, error_* = 1 - accuracy), raw columns
        kept: a store that manifest.json or its rows say is another family's is refused."""
        root, command = self.paths[SRAVEN], SOURCES[SRAVEN].command
        schema = get_schema(SRAVEN)
        try:
            df, manifest = load(root), read_manifest(root) or {}
            rows = family_of_rows(df)
        except Exception as exc:  # unreadable bundle files or manifest, or rows of several families
            raise InputError(f"figures: cannot use the SRAVEN store {root}: {one_line(exc)} "
                             f"(made by: {command})") from exc
        labelled = "family" in df.columns and df["family"].notna().any()
        if manifest.get("family", rows) != SRAVEN or (labelled and rows != SRAVEN):
            raise InputError(f"figures: {root} is not a SRAVEN store (no family {SRAVEN!r} in manifest.json "
                             f"or rows; made by: {command})")
        lacking = [c for c in schema.raw_columns if c not in df.columns]
        if lacking:
            raise InputError(f"figures: the SRAVEN store {root} lacks required column(s): "
                             f"{', '.join(lacking)} (made by: {command})")
        if len(df) == 0:
            raise InputError(f"figures: the SRAVEN store {root} holds no rows (made by: {command})")
        return schema.to_generic(df.assign(diverged=df["diverged"].fillna(False).astype(bool)))

    @cached_property
    def sraven_fits(self) -> dict:
        """`optimal_k.json` of the fits on the SRAVEN store, checked as `fits` and for the SRAVEN family."""
        doc = self._fits_doc("sraven_fits")
        if doc.get("family") != SRAVEN:
            raise InputError(f"figures: {self.paths['sraven_fits'] / 'optimal_k.json'} holds fits of "
                             f"{doc.get('family') or DEFAULT} results, not SRAVEN "
                             f"(rerun: {SOURCES['sraven_fits'].command})")
        return doc

    def _fits_doc(self, name: str) -> dict:
        path, command = self.paths[name] / "optimal_k.json", SOURCES[name].command
        try:
            doc = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"figures: cannot read {path}: {one_line(exc)} (made by: {command})") from exc
        except json.JSONDecodeError as exc:
            raise InputError(f"figures: {path} is not valid JSON ({exc.msg} at line {exc.lineno} column "
                             f"{exc.colno}; rerun: {command})") from exc
        problem = _fits_problem(doc)
        if problem:
            raise InputError(f"figures: {path} is not a fits output: {problem} (rerun: {command})")
        return doc


FITS_CELL_KEYS = ("complexity", "n_train", "width", "n_experts", "k_star", "k_star_ci", "k_star_cont",
                  "k_star_cont_ci", "censored", "cont_at_edge")
FITS_LAW_KEYS = ("params", "cov_params", "use_t", "df_resid")


def _fits_problem(doc) -> str | None:
    """What makes a parsed optimal_k.json unusable for the figures, or None."""
    if not isinstance(doc, dict):
        return f"expected a JSON object, found {type(doc).__name__}"
    absent = [k for k in ("cells", "law") if k not in doc]
    if absent:
        return f"it lacks the key(s) {', '.join(absent)}"
    cells = doc["cells"]
    if not isinstance(cells, list) or not cells or not all(isinstance(c, dict) for c in cells):
        return "'cells' must be a non-empty list of objects"
    absent = sorted({k for c in cells for k in FITS_CELL_KEYS if k not in c})
    if absent:
        return f"its cells lack the key(s) {', '.join(absent)}"
    law = doc["law"]
    if law is not None and (not isinstance(law, dict) or any(k not in law for k in FITS_LAW_KEYS)):
        return f"'law' must be null or an object with the keys {', '.join(FITS_LAW_KEYS)}"
    return None
