"""Task families of a results store, and how each maps onto the fits' generic table.

The fits work on one table shape: a cell is (complexity, n_train, width, n_experts), its runs span k and
seeds, and the metric is an error to minimise over k. The regression grid writes that table directly.
A SRAVEN store (`python -m simulations.sraven`, docs/sraven.md) is mapped onto it: complexity is the
rule pool size R (`n_rules`), n_train the problems a model learns from (the fixed training set
`n_train` when there is one, else steps x batch: fresh problems every step), width the expert width
`d_expert`, and the error is 1 - accuracy. The parts of the fits that model the regression task itself
are skipped for SRAVEN, each with the reason in `FAMILIES["sraven"].skipped`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

#: The sraven `--metric` choices -> the error column of the mapped table, and the accuracy it is 1 minus.
SRAVEN_METRICS = {"ood": "error_ood", "id": "error_id", "train": "error_train",
                  "feat_ood": "error_feat_ood", "feat_id": "error_feat_id"}
SRAVEN_ACCURACY = {"error_ood": "acc_ood", "error_id": "acc_id", "error_train": "acc_train",
                   "error_feat_ood": "feat_acc_ood", "error_feat_id": "feat_acc_id"}

#: The columns of a SRAVEN store the mapping reads (docs/results contract, notes in docs/fits.md).
SRAVEN_COLUMNS = ("seed", "k", "n_experts", "n_rules", "steps", "batch", "d_expert", "diverged",
                  *SRAVEN_ACCURACY.values())


def sraven_table(df: pd.DataFrame) -> pd.DataFrame:
    """SRAVEN rows (with SRAVEN_COLUMNS) as the fits' generic table: complexity = n_rules, n_train = the
    fixed training set size or else steps x batch, width = d_expert, error_* = 1 - accuracy. The store's
    own `n_train` is kept as `n_train_fixed`; applying the mapping twice changes nothing."""
    out = df.copy()
    if "n_train_fixed" not in out.columns:
        fixed = out["n_train"] if "n_train" in out.columns else pd.Series(np.nan, index=out.index)
        out["n_train_fixed"] = pd.to_numeric(fixed, errors="coerce").astype(float)
    seen = out["steps"].astype(float) * out["batch"].astype(float)
    out["problems_seen"] = seen
    out["n_train"] = out["n_train_fixed"].where(out["n_train_fixed"].notna(), seen)
    out["complexity"] = out["n_rules"].astype(float)
    out["width"] = out["d_expert"].astype(float)
    for err, acc in SRAVEN_ACCURACY.items():
        out[err] = 1.0 - pd.to_numeric(out[acc], errors="coerce").astype(float)
    out["family"] = "sraven"
    return out


@dataclass(frozen=True)
class Family:
    """One task family: its `--metric` choices (-> error column of the generic table), the raw columns
    it needs, the settings that must take one value per (cell, k, seed), the mapping onto the generic
    table (None: the store is the generic table), what each error column is, how the report names the
    factors and what each generic factor is made of, and the parts of the fits skipped for it (part ->
    why)."""

    name: str
    metrics: dict[str, str]
    raw_columns: tuple[str, ...]
    other_cell_fields: tuple[str, ...]
    to_generic: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    error_of: dict[str, str] = field(default_factory=dict)
    factor_names: dict[str, str] = field(default_factory=dict)
    mapping: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


_NOT_THE_TEACHER = ("the theory (theory/, P2's bound) is written for the regression teacher (d_in, "
                    "n_skills, noise, MSE); SRAVEN's error is 1 - accuracy of a transformer on symbolic "
                    "problems, which the bound does not describe")

REGRESSION = Family(
    name="regression",
    metrics={"ood": "test_mse_ood", "id": "test_mse_id", "train": "train_mse"},
    raw_columns=(),
    other_cell_fields=("d_in", "n_skills", "teacher_width", "noise", "holdout_frac", "renormalize", "impl",
                       "lr", "max_steps", "dtype"),
)

SRAVEN = Family(
    name="sraven",
    metrics=SRAVEN_METRICS,
    raw_columns=SRAVEN_COLUMNS,
    other_cell_fields=("distinct", "permute", "steps", "batch", "d_model", "n_heads", "n_blocks", "lr",
                       "balance", "clip_norm", "n_eval"),
    to_generic=sraven_table,
    error_of={err: f"1 - {acc}" for err, acc in SRAVEN_ACCURACY.items()},
    factor_names={"complexity": "R", "n_train": "problems", "width": "d_expert"},
    mapping={"complexity": "n_rules (R, the rule pool size)",
             "n_train": "n_train (the fixed training set) where set, else steps * batch (problems seen)",
             "width": "d_expert", "n_experts": "n_experts"},
    skipped={
        "theory_comparison": _NOT_THE_TEACHER,
        "theory_fit": _NOT_THE_TEACHER,
        "joint_surface": ("the joint surface models a regression loss as approximation + estimation "
                          "terms; 1 - accuracy is bounded by 1 and by chance and does not add up that way"),
        "k_eval": "the SRAVEN trainer does not evaluate models at other k than their training k",
        "by_router": "SRAVEN stores have one arm (learned router, learned experts): no routing controls",
    },
)

FAMILIES = {f.name: f for f in (REGRESSION, SRAVEN)}


def family_of(df: pd.DataFrame) -> str:
    """The family of a table: its `family` column's one value; a table without one is regression (stores
    written before families existed). Mixed or unknown values raise ValueError."""
    if "family" not in df.columns:
        return "regression"
    values = sorted(df["family"].dropna().astype(str).unique())
    if not values:
        return "regression"
    if len(values) > 1:
        raise ValueError(f"rows of several families mixed ({', '.join(values)}): fit one store at a time")
    if values[0] not in FAMILIES:
        raise ValueError(f"unknown family {values[0]!r}: allowed values are {', '.join(FAMILIES)}")
    return values[0]
