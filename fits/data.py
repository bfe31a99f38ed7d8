"""Reading and checking the results store for the fits.

The store is a directory of Parquet files (one per bundle) plus `manifest.json`, written by
`simulations.grid`; `simulations.results.load` is used when it is importable, otherwise the Parquet files
are read directly. Either way the table is checked here, so every caller gets the same one-line errors.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from simulations.results import load

DEFAULT_RESULTS = Path("results/quick")
DEFAULT_OUT = Path("results/fits")

#: `--metric` choice -> results column.
METRICS = {"ood": "test_mse_ood", "id": "test_mse_id", "train": "train_mse"}

#: The factors of a cell (a cell groups rows across k and seeds) and the factors of the law.
CELL_KEYS = ("complexity", "n_train", "width", "n_experts")
LAW_FACTORS = ("complexity", "n_train", "width")

#: Cell fields of the grid that the fits do not group by: they must take one value per (cell, k, seed).
OTHER_CELL_FIELDS = (
    "d_in",
    "n_skills",
    "teacher_width",
    "noise",
    "holdout_frac",
    "renormalize",
    "impl",
    "lr",
    "max_steps",
    "dtype",
)

#: Columns the fits need; the full schema (docs/results.md) has more, which are carried but not used.
REQUIRED_COLUMNS = ("seed", "k", *CELL_KEYS, "diverged", *METRICS.values())

#: The arms of a store with routing controls (simulations.grid's `router` x `experts`), by name; a store
#: without those columns is one "learned" arm. The dense rows are reference MLPs, not a top-k router:
#: they have no k* of their own and are left out of the per-arm fits.
ARMS = {"learned": ("learned", "learned"), "oracle": ("oracle", "learned"),
        "teacher_experts": ("learned", "teacher")}
ARM_COLUMNS = ("router", "experts")


def learned_arm(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of the learned router with learned experts (the whole table for a store without arms)."""
    return split_arms(df).get("learned", df.iloc[:0])


def arm_names(df: pd.DataFrame) -> pd.Series:
    """Each row's arm: an ARMS name, or "dense" for the reference MLPs; "learned" for every row of a
    store without arm columns."""
    if not set(ARM_COLUMNS) <= set(df.columns):
        return pd.Series("learned", index=df.index)
    names = {v: k for k, v in ARMS.items()}
    return pd.Series([names.get(a, "dense") for a in zip(df["router"], df["experts"], strict=True)],
                     index=df.index)


def split_arms(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The store's rows per arm (ARMS order), only the arms present; no arm columns: all rows "learned"."""
    arm = arm_names(df)
    return {name: df[arm == name].reset_index(drop=True) for name in ARMS if (arm == name).any()}


def results_fingerprint(df: pd.DataFrame) -> str:
    """A hash of the rows the fits read (their columns, in (cell, k, seed) order): written into
    `optimal_k.json` so that consumers can tell whether the fits still match the results store."""
    arms = [c for c in ARM_COLUMNS if c in df.columns]
    rows = df[[*arms, *REQUIRED_COLUMNS]].sort_values([*arms, "seed", "k", *CELL_KEYS], kind="stable")
    digest = pd.util.hash_pandas_object(rows.reset_index(drop=True), index=False).to_numpy()
    return hashlib.sha256(digest.tobytes()).hexdigest()[:16]


class FitInputError(ValueError):
    """Bad input to the fits: the message is one line naming the problem."""


def metric_column(metric: str) -> str:
    """Results column for a `--metric` choice; a clear error for anything else."""
    if metric not in METRICS:
        raise FitInputError(f"unknown metric {metric!r}: allowed values are {', '.join(METRICS)}")
    return METRICS[metric]


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
    return check_results(df)


def check_results(df: pd.DataFrame) -> pd.DataFrame:
    """Check the columns and values the fits rely on; return the table with clean dtypes."""
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise FitInputError(f"results table lacks required column(s): {', '.join(missing)}")
    if len(df) == 0:
        raise FitInputError("results table is empty: no rows to fit")
    df = df.copy()
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
    for c in arm_cols:
        df[c] = df[c].fillna("learned")
    dup = df.duplicated([*arm_cols, *CELL_KEYS, "k", "seed"], keep=False)
    if dup.any():
        varying = [
            c for c in OTHER_CELL_FIELDS if c in df.columns and df.loc[dup, c].nunique(dropna=False) > 1
        ]
        what = f"; {', '.join(varying)} vary: fit one value at a time" if varying else ""
        raise FitInputError(
            f"{int(dup.sum())} rows repeat a (complexity, n_train, width, n_experts, k, seed){what}"
        )
    return df
