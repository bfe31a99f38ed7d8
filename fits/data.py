"""Reading and checking the results store for the fits.

The store is a directory of Parquet files (one per bundle) plus `manifest.json`, written by
`simulations.grid` or `simulations.families.sraven` and read with `simulations.results.load`. The table
is checked here, so every caller gets the same one-line errors. A store's family (manifest.json's
"family", else the rows' `family` column, else regression) decides the metrics and how the rows map
onto the generic table (`fits.families`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fits.families import FAMILIES, REGRESSION, family_of
from simulations import arms as arm_registry
from simulations.arms import ARM_COLUMNS, Arm, arms, primary
from simulations.estimators import DEFAULT_ESTIMATOR
from simulations.families import DEFAULT
from simulations.results import load, read_manifest

DEFAULT_RESULTS = Path("results/quick")
DEFAULT_OUT = Path("results/fits")

#: `--metric` choice -> results column (regression; each family's are in `fits.families.FAMILIES`).
METRICS = REGRESSION.metrics

#: The factors of a cell (a cell groups rows across k and seeds) and the factors of the law.
CELL_KEYS = ("complexity", "n_train", "width", "n_experts")
LAW_FACTORS = ("complexity", "n_train", "width")


def required_columns(family: str = DEFAULT) -> tuple[str, ...]:
    """The generic table's columns the fits need for a family (its error columns as the metrics)."""
    return ("seed", "k", *CELL_KEYS, "diverged", *FAMILIES[family].metrics.values())


#: Columns the fits need of a regression store; the full schema (docs/store.md) has more, which are
#: carried but not used.
REQUIRED_COLUMNS = required_columns()


def routed_arms() -> list[Arm]:
    """The arms the fits fit, in registry order: every arm whose k is a routing choice. The dense rows
    are reference MLPs, not a top-k router: they have no k* of their own and are left out."""
    return [a for a in arms() if a.routes]


def arm_names(df: pd.DataFrame) -> pd.Series:
    """Each row's arm name (`simulations.arms.arm_names`), an unknown pair as FitInputError."""
    try:
        return arm_registry.arm_names(df)
    except ValueError as exc:
        raise FitInputError(str(exc)) from None


def split_arms(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The store's rows per routed arm (registry order), only the arms present."""
    arm = arm_names(df)
    return {a.name: df[arm == a.name].reset_index(drop=True) for a in routed_arms() if (arm == a.name).any()}


def law_rows(df: pd.DataFrame, column: str) -> tuple[pd.DataFrame, list[str]]:
    """The rows of one arm that its k* and law are fitted on, and notes on what was left out:
    - under an OOD metric, cells without held-out combinations (`n_heldout_combos` 0: their "OOD" test
      set is a fresh ID sample, e.g. s = 1), so the OOD law reads composition only;
    - k = 1 rows whose router gets no gradient there (`RouterKind.frozen_at`): an untrained router."""
    notes = []
    keep = pd.Series(True, index=df.index)
    if column.endswith("_ood") and "n_heldout_combos" in df.columns:
        none = df["n_heldout_combos"] == 0
        if none.any():
            levels = ", ".join(str(v) for v in sorted(df.loc[none, "complexity"].unique()))
            notes.append(f"OOD fits leave out the {int(none.sum())} row(s) without held-out combinations "
                         f"(complexity {levels}: their OOD test set is an ID sample)")
            keep &= ~none
    if "router" in df.columns and "renormalize" in df.columns:
        defaults = (("gate", arm_registry.DEFAULT_GATE), ("estimator", DEFAULT_ESTIMATOR))
        gate, est = (df[c].fillna(default) if c in df.columns else pd.Series(default, index=df.index)
                     for c, default in defaults)
        frozen = pd.Series([arm_registry.router(r).frozen_at(k, g, n, e) for r, k, g, n, e in
                            zip(df["router"], df["k"], gate, df["renormalize"], est, strict=True)],
                           index=df.index)
        if frozen.any():
            notes.append(f"{int(frozen.sum())} k = 1 row(s) left out: the router gets no gradient there "
                         "(a gate renormalized to the constant 1)")
            keep &= ~frozen
    return df[keep].reset_index(drop=True), notes


class FitInputError(ValueError):
    """Bad input to the fits: the message is one line naming the problem."""


def metric_column(metric: str, family: str = DEFAULT) -> str:
    """Results column for a `--metric` choice of a family's store; a clear error for anything else."""
    metrics = FAMILIES[family].metrics
    if metric not in metrics:
        raise FitInputError(f"unknown metric {metric!r}: allowed values are {', '.join(metrics)} "
                            f"({family} results)")
    return metrics[metric]


def store_family(path: Path, df: pd.DataFrame) -> str:
    """The family of the store at `path`: manifest.json's "family" and the rows' `family` column must
    agree where both exist; neither means regression (stores from before families)."""
    try:
        rows = family_of(df)
    except ValueError as exc:
        raise FitInputError(f"results at {path}: {exc}") from exc
    manifest = read_manifest(path) if path.is_dir() else None
    declared = (manifest or {}).get("family")
    if declared is None:
        return rows
    if declared not in FAMILIES:
        raise FitInputError(f"results at {path}: manifest.json has unknown family {declared!r}: allowed "
                            f"values are {', '.join(FAMILIES)}")
    if "family" in df.columns and df["family"].notna().any() and rows != declared:
        raise FitInputError(f"results at {path}: manifest.json says family {declared!r} but the rows say "
                            f"{rows!r}")
    return declared


def load_results(path: str | Path) -> pd.DataFrame:
    """Load the results store at `path` (a directory, or one Parquet file) and check it."""
    path = Path(path)
    if not path.exists():
        raise FitInputError(f"results path {path} does not exist (run `python -m simulations.grid` first)")
    try:
        df = load(path)
    except FitInputError:
        raise
    except Exception as exc:  # a corrupt file or a loader error: report it on one line
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FitInputError(f"could not read results at {path}: {msg}") from exc
    if len(df) == 0:
        raise FitInputError(f"results at {path} hold no rows (no bundle files, or empty ones)")
    family = store_family(path, df)
    if family != DEFAULT:
        df = df.assign(family=family)
    return check_results(df)


def check_results(df: pd.DataFrame) -> pd.DataFrame:
    """Check the columns and values the fits rely on; return the table with clean dtypes. A store of
    another family than regression (its `family` column) is first mapped onto the generic table."""
    try:
        fam = FAMILIES[family_of(df)]
    except ValueError as exc:
        raise FitInputError(str(exc)) from exc
    if fam.to_generic is not None:
        missing = [c for c in fam.raw_columns if c not in df.columns]
        if missing:
            raise FitInputError(f"{fam.name} results table lacks required column(s): {', '.join(missing)}")
        df = fam.to_generic(df)
    missing = [c for c in required_columns(fam.name) if c not in df.columns]
    if missing:
        raise FitInputError(f"results table lacks required column(s): {', '.join(missing)}")
    if len(df) == 0:
        raise FitInputError("results table is empty: no rows to fit")
    df = df.copy()
    if "active_width" in df.columns and df["active_width"].notna().any():
        # Fixed active compute (`width_rule: active`): a cell holds k h fixed, so its width factor is the
        # active width; each row's own expert width stays as `expert_width`.
        active = df["active_width"].notna()
        df["expert_width"] = df["width"]
        df.loc[active, "width"] = df.loc[active, "active_width"].astype(df["width"].dtype)
    df["diverged"] = df["diverged"].fillna(False).astype(bool)
    for col in ("k", "n_experts", "seed"):
        if df[col].isna().any():
            raise FitInputError(f"column {col!r} has missing values")
    if (df["k"] < 1).any() or (df["k"] > df["n_experts"]).any():
        raise FitInputError("column 'k' must satisfy 1 <= k <= n_experts in every row")
    for col in LAW_FACTORS:
        if df[col].isna().any() or (df[col] <= 0).any():
            raise FitInputError(f"column {col!r} must be positive in every row (the law takes its log)")
    arm_cols = [c for c in ARM_COLUMNS if c in df.columns]
    defaults = {"router": primary().router.name, "experts": primary().experts.name, "gate": primary().gate,
                "estimator": primary().estimator}
    for c in arm_cols:
        df[c] = df[c].fillna(defaults[c])
    dup = df.duplicated([*arm_cols, *CELL_KEYS, "k", "seed"], keep=False)
    if dup.any():
        varying = [
            c for c in fam.other_cell_fields if c in df.columns and df.loc[dup, c].nunique(dropna=False) > 1
        ]
        what = f"; {', '.join(varying)} vary: fit one value at a time" if varying else ""
        raise FitInputError(
            f"{int(dup.sum())} rows repeat a (complexity, n_train, width, n_experts, k, seed){what}"
        )
    return df
