"""The SRAVEN family's row record (docs/store.md, "SRAVEN stores") and how the fits read it.

The fits work on one table shape: a cell is (complexity, n_train, width, n_experts), its runs span k and
seeds, and the metric is an error to minimise over k. SRAVEN rows are mapped onto it (`sraven_table`):
complexity is the rule pool size R (`n_rules`), n_train the problems a model learns from (the fixed
training set `n_train` when there is one, else steps x batch: fresh problems every step), width the
expert width `d_expert`, and the error is 1 - accuracy. The parts of the fits that model the regression
task itself are skipped, each with the reason in `SCHEMA.skipped`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from simulations.families.record import Schema, columns

#: The `--metric` choices -> the error column of the mapped table, and the accuracy it is 1 minus.
SRAVEN_METRICS = {"ood": "error_ood", "id": "error_id", "train": "error_train",
                  "feat_ood": "error_feat_ood", "feat_id": "error_feat_id"}
SRAVEN_ACCURACY = {"error_ood": "acc_ood", "error_id": "acc_id", "error_train": "acc_train",
                   "error_feat_ood": "feat_acc_ood", "error_feat_id": "feat_acc_id"}

# Every row's columns in row order; `fits=True`: read by the mapping onto the generic table.
COLUMNS = (
    *columns("provenance", "family"),
    *columns("id", "cell_id"),
    *columns("id", "seed", "k", fits=True),
    *columns("axis", "n_experts", "n_rules", fits=True),
    *columns("setting", "distinct", "permute"),
    *columns("setting", "steps", "batch", fits=True),
    *columns("axis", "n_train"),
    *columns("setting", "d_model"),
    *columns("axis", "d_expert", fits=True),
    *columns("setting", "n_heads", "n_blocks", "lr", "balance", "clip_norm", "n_eval"),
    *columns("setting", "schedule", "warmup", "tokens", "n_features", "n_values",
             required=False),  # absent from older stores
    *columns("setting", "estimator", "patience", "val_every", "min_delta", "score_samples", required=False),
    *columns("metric", "acc_train", "acc_id", "acc_ood", fits=True),
    *columns("metric", "feat_acc_train"),
    *columns("metric", "feat_acc_id", "feat_acc_ood", fits=True),
    *columns("metric", "ce_train", "ce_id", "ce_ood", "acc_id_unambiguous"),
    *columns("measure", "ambiguous_id", "n_multisets_train", "n_multisets_ood", "router_entropy",
             "train_ce_last"),
    *columns("measure", "diverged", fits=True),
    *columns("measure", "wall_s"),
    # early stopping only (patience > 0)
    *columns("measure", "steps_run", "best_step", "stopped_early", "val_feat_acc_best", required=False),
    *columns("provenance", "bundle_id", "config_hash", "git_commit", "torch_version", "numpy_version",
             "python_version", "device"),
)


def sraven_table(df: pd.DataFrame) -> pd.DataFrame:
    """SRAVEN rows (with SCHEMA.raw_columns) as the fits' generic table: complexity = n_rules, n_train =
    the fixed training set size or else steps x batch, width = d_expert, error_* = 1 - accuracy. The
    store's own `n_train` is kept as `n_train_fixed`; applying the mapping twice changes nothing."""
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


_NOT_THE_TEACHER = ("the theory (theory/, P2's bound) is written for the regression teacher (d_in, "
                    "n_skills, noise, MSE); SRAVEN's error is 1 - accuracy of a transformer on symbolic "
                    "problems, which the bound does not describe")

SCHEMA = Schema(
    name="sraven",
    columns=COLUMNS,
    metrics=SRAVEN_METRICS,
    to_generic=sraven_table,
    error_of={err: f"1 - {acc}" for err, acc in SRAVEN_ACCURACY.items()},
    factor_names={"complexity": "R", "n_train": "problems", "width": "d_expert"},
    mapping={"complexity": "n_rules (R, the rule pool size)",
             "n_train": "n_train (the fixed training set) where set, else steps * batch (problems seen)",
             "width": "d_expert", "n_experts": "n_experts"},
    # inference-time k: the k_eval table's accuracies mapped to errors (1 - accuracy); no train split
    k_eval_metrics={m: col for m, col in SRAVEN_METRICS.items() if m != "train"},
    k_eval_lists={f"k_eval_{acc}": acc for acc in ("acc_id", "acc_ood", "feat_acc_id", "feat_acc_ood")},
    skipped={
        "theory_comparison": _NOT_THE_TEACHER,
        "theory_fit": _NOT_THE_TEACHER,
        "joint_surface": ("the joint surface models a regression loss as approximation + estimation "
                          "terms; 1 - accuracy is bounded by 1 and by chance and does not add up that way"),
        "by_router": "SRAVEN stores have one arm (learned router, learned experts): no routing controls",
    },
)
