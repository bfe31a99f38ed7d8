"""The estimator map (docs/tasks.md, "Which estimator composes"): per cell and arm, where the arm's
estimator lets the router find the teacher's skills, how close it gets to the oracle, and at what cost.

One row per (task, n_experts, width, n_train, s) and routed arm: the gate map's columns (`fits.gate_map`:
recall at k = s and its chance level, the best ID and OOD NMSE relative to the oracle's with seed-cluster
bootstrap intervals, k* and the error split at it), plus, from the same rows:
- `router`, `experts`, `gate`, `estimator`: what the arm is;
- `best_share_id`, `best_share_ood`: the share of the routing gain (`fits.routing_gain`) at the k with
  the largest seed-mean share;
- `ms_per_step`: the models' mean wall time per training step (the bundle's wall time, evaluations
  included, over the steps trained, a single-skill phase's too); a cost across arms of one store, not a
  benchmark (bench/estimators.py is that);
- the store's data design and router start (`single_skill_steps`, `single_skill_share`, `router_init`),
  so maps of several stores can be stacked.
"""

from __future__ import annotations

import pandas as pd

from fits.data import arm_names
from fits.gate_map import CELL, gate_map
from fits.routing_gain import routing_gain_table
from simulations.arms import arm_named

#: the store-wide settings a map row carries, with the value of stores written before them
VARIANT = {"single_skill_steps": 0, "single_skill_share": 0.0, "router_init": "random"}


def _best_share(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (cell, arm): the seed-mean routing-gain share at its best k, per split (columns best_share_*)."""
    table = routing_gain_table(rows)
    table = table.assign(task=table["task"].fillna("compositional") if "task" in table.columns
                         else "compositional")
    curve = table.groupby([*CELL, "arm", "split", "k"])["share"].mean().reset_index()
    best = curve.groupby([*CELL, "arm", "split"])["share"].max().unstack("split")
    return best.rename(columns=lambda s: f"best_share_{s}").reset_index()


def estimator_map(rows: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per (cell, routed arm) as the module docstring says; empty without routed rows."""
    table = gate_map(rows, n_boot, seed)
    if table.empty:
        return table
    arms = {name: arm_named(name) for name in table["arm"].unique()}
    table = table.assign(router=[arms[a].router.name for a in table["arm"]],
                         experts=[arms[a].experts.name for a in table["arm"]],
                         gate=[arms[a].gate for a in table["arm"]],
                         estimator=[arms[a].estimator for a in table["arm"]])
    if "route_free_nmse" in rows.columns:
        table = table.merge(_best_share(rows), on=[*CELL, "arm"], how="left")
    task = rows["task"].fillna("compositional") if "task" in rows.columns else "compositional"
    cost = rows.assign(arm=arm_names(rows).to_numpy(), task=task)
    warm = cost["single_skill_steps"].fillna(0) if "single_skill_steps" in cost.columns else 0
    cost["ms_per_step"] = 1000 * cost["wall_s"] / (cost["steps"].clip(lower=1) + warm)
    table = table.merge(cost.groupby([*CELL, "arm"])["ms_per_step"].mean().reset_index(), on=[*CELL, "arm"],
                        how="left")
    for name, default in VARIANT.items():  # one value per store (config settings, not axes)
        table[name] = rows[name].iloc[0] if name in rows.columns and rows[name].notna().any() else default
    return table
