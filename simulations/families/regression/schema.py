"""The regression family's row record (docs/store.md) and the fits' view of it.

Its rows are the fits' generic table itself: complexity, n_train, width and n_experts are the cell axes
and the `--metric` choices name MSE columns. The record is derived rather than listed. A row is:
- its cell: `cell_id`, then every hashed setting of the grid config, taken from the config's field
  metadata (`config_columns`): the settings first, then the axes (the `seeds` axis is each row's
  `seed`; `k` and `seed` identify the row; the arm's axes are settings of its cell), in the config's
  order, which is not the row's order;
- what the family adds of the task instance (`TASK_COLUMNS`);
- the trainer's metrics (`TRAINER_COLUMNS`: what `train.train_bundle` writes per model; its list columns
  `TRAINER_LISTS` go to tables of their own in the store);
- the ratios to the route-free baseline and the bundle's provenance.
A column is required unless stores written before it lack it: a setting with a `since` value, a column
marked `required=False` here. Every setting is one the fits check for one value per cell.
"""

from simulations.arms import ARM_COLUMNS
from simulations.families.record import Schema, columns, config_columns
from simulations.families.regression import error_split
from simulations.families.regression.config import GridConfig
from simulations.provenance import FIELDS as PROVENANCE_FIELDS

#: The routing measures (`train.routing_report`, docs/store.md), written since the routing controls.
ROUTING_COLUMNS = ("routing_recall", "routing_gate_mass", "routing_recall_baseline",
                   "routing_gate_mass_baseline")
#: The inference-time-k list columns (one MSE per k_eval = 1..T) -> the store's k_eval table's columns.
K_EVAL_LISTS = {"k_eval_mse_id": "test_mse_id", "k_eval_mse_ood": "test_mse_ood"}
#: The experts-by-s list column (mixed-complexity grids only: one mean per level s = 1..S), which the
#: store moves to its experts-by-s table.
EXPERTS_BY_S = "mean_experts_by_s"

#: The trainer's metric columns: one value of each per model in `train.train_bundle`'s frame, in its
#: order (`required=False`: absent from stores written before it).
TRAINER_COLUMNS = (
    *columns("metric", "train_mse", "val_mse", "test_mse_id", "test_mse_ood", "train_nmse", "test_nmse_id",
             "test_nmse_ood"),
    *columns("measure", "target_var", "diverged", "early_stopped", "steps", "router_entropy"),
    *columns("measure", *ROUTING_COLUMNS, required=False),
    *columns("measure", *error_split.COLUMNS, required=False),  # since the error split
    *columns("measure", "wall_s"),
    *columns("measure", "mean_experts_id", required=False),  # since adaptive k
)
#: The trainer's list columns (an array per model), which the store moves to tables of their own; the
#: experts-by-s one only on mixed-complexity grids.
TRAINER_LISTS = (*K_EVAL_LISTS, EXPERTS_BY_S)

#: What the family adds of each model's task instance (`family.train`): its held-out combinations and
#: the route-free baseline (absent from stores written before it).
TASK_COLUMNS = (
    *columns("measure", "n_heldout_combos"),
    *columns("measure", "route_free_nmse", "route_free_nmse_ood", required=False),
)

#: The cell's columns, from the grid config's field metadata (see the module docstring).
CELL_COLUMNS = (
    *columns("id", "cell_id"),
    *config_columns(GridConfig, axes=False),
    *config_columns(GridConfig, axes=True, names={"seeds": "seed"},
                    roles={"k": "id", "seeds": "id", **dict.fromkeys(ARM_COLUMNS, "setting")}),
    # width_rule active: the active width k h of the cell (its `width` is each expert's); no other cell
    # has the column
    *columns("axis", "active_width", required=False),
)

COLUMNS = (
    *CELL_COLUMNS,
    *TASK_COLUMNS,
    *TRAINER_COLUMNS,
    *columns("metric", "rel_nmse_id", "rel_nmse_ood", required=False),  # since the route-free baseline
    *columns("provenance", "bundle_id", *PROVENANCE_FIELDS, "device", "config_hash"),
)


def trainer_keys(mixed: bool = False) -> set[str]:
    """The keys of `train.train_bundle`'s frame: the trainer's metric and list columns (the experts-by-s
    list only for a mixed-complexity task, `mixed`)."""
    lists = TRAINER_LISTS if mixed else tuple(c for c in TRAINER_LISTS if c != EXPERTS_BY_S)
    return {*(c.name for c in TRAINER_COLUMNS), *lists}


SCHEMA = Schema(
    name="regression",
    columns=COLUMNS,
    metrics={"ood": "test_mse_ood", "id": "test_mse_id", "train": "train_mse"},
    # inference-time k has test errors only: the train metric reads the ID test MSE
    k_eval_metrics={"ood": "test_mse_ood", "id": "test_mse_id", "train": "test_mse_id"},
    k_eval_lists=K_EVAL_LISTS,
)
