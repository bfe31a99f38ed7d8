"""The Soft MoE family's row records (docs/softmoe.md): one per experiment's results.parquet.

Soft MoE runs two experiments with their own tables, so it has one record per experiment (`SCHEMAS`,
keyed by the CLI's experiment name); the CLI checks a run's results against its record before anything
is written, as the grid driver does for a bundle. The fits do not read Soft MoE results (no metrics).
"""

from simulations.families.record import Schema, columns

SINGLE_EXPERT = Schema(name="softmoe", columns=(
    *columns("axis", "n_tokens", "token_dim", "tokenization", "n_experts", "expert_width", "expert_params"),
    *columns("id", "seed"),
    *columns("setting", "steps", "batch_size"),
    *columns("metric", "initial_loss", "final_loss", "final_train_loss"),
    *columns("measure", "baseline_mse", "relative_loss"),
))

EXPERT_DROP = Schema(name="softmoe", columns=(
    *columns("axis", "n_experts", "expert_width"),
    *columns("id", "seed", "k"),
    *columns("axis", "keep_frac"),
    *columns("id", "method", "draw"),
    *columns("metric", "accuracy", "error", "final_train_loss"),
))

SCHEMAS = {"single-expert": SINGLE_EXPERT, "expert-drop": EXPERT_DROP}
