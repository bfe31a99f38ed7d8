"""The regression family's row record (docs/store.md) and the fits' view of it.

Its rows are the fits' generic table itself: complexity, n_train, width and n_experts are the cell axes
and the `--metric` choices name MSE columns. The record lists the required columns in row order, with
the task and student settings the fits check for one value per cell between them (not required:
stores written before some of them existed lack them).
"""

from simulations.families.record import Schema, columns

COLUMNS = (
    *columns("id", "cell_id", "seed", "k"),
    *columns("axis", "n_experts", "complexity", "n_train", "width"),
    *columns("setting", "d_in"),
    *columns("setting", "n_skills", "teacher_width", "noise", "holdout_frac", required=False),
    *columns("metric", "train_mse", "test_mse_id", "test_mse_ood"),
    *columns("measure", "target_var", "diverged", "steps", "wall_s"),
    *columns("setting", "renormalize"),
    *columns("setting", "gate", required=False),  # absent from stores written before it (softmax)
    *columns("setting", "estimator", required=False),  # absent from stores written before it (pathwise)
    # the data design and router start of the estimator issue (absent from older stores: off)
    *columns("setting", "single_skill_steps", "single_skill_share", "router_init", required=False),
    *columns("setting", "impl", "lr", "max_steps", required=False),
    *columns("provenance", "git_commit", "torch_version", "device"),
    *columns("setting", "dtype"),
    *columns("provenance", "config_hash"),
)

SCHEMA = Schema(
    name="regression",
    columns=COLUMNS,
    metrics={"ood": "test_mse_ood", "id": "test_mse_id", "train": "train_mse"},
    # inference-time k has test errors only: the train metric reads the ID test MSE
    k_eval_metrics={"ood": "test_mse_ood", "id": "test_mse_id", "train": "test_mse_id"},
    k_eval_lists={"k_eval_mse_id": "test_mse_id", "k_eval_mse_ood": "test_mse_ood"},
)
