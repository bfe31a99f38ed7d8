"""The gate map (docs/tasks.md, "Where each gate family composes"): per arm and complexity s, does the
learned arm find the teacher's skills, how close does it get to the oracle, and which part of its excess
comes from the selection and which from the gate values.

Per (task, n_experts, width, n_train, s) and routed arm, from the seed means of each k:
- `recall_at_s`, `recall_chance_at_s`: routing recall at k = s and its permuted-input chance level;
- `k_star_id`: the argmin over k of the seed-mean ID NMSE, with a seed-cluster bootstrap 95 % interval
  (whole seeds resampled, the same draws for every arm, so the oracle and the arm stay paired);
- `best_nmse_id`, `ratio_id` (best / the oracle's best, the oracle's from the same draws, with its
  interval), and the same on OOD (`best_nmse_ood`, `ratio_ood`);
- the error split at k_star_id (docs/tasks.md, "The error split"): the arm's own NMSE there, its NMSE
  with the oracle's selection and its own gate values, with its own selection and equal gates, and the
  share of ID inputs whose selection misses an active skill. own - oracle selection is what the
  selection costs; own - equal gates what the gate values cost (either may be negative);
- what the arm is (`router`, `experts`, `gate`, `estimator`), and the estimator map's columns
  (docs/tasks.md, "Which estimator composes"): `best_share_id`, `best_share_ood`, the share of the routing
  gain (`fits.routing_gain`) at the k with the largest seed-mean share; `ms_per_step`, the models' mean
  wall time per training step (the bundle's wall time, evaluations included, over the steps trained, a
  single-skill phase's too: a cost across the arms of one store, not a benchmark, which
  bench/estimators.py is); and the store's data design and router start (`single_skill_steps`,
  `single_skill_share`, `router_init`), so the maps of several stores can be stacked.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fits.cells import seed_resample_counts
from fits.data import arm_names, routed_arms
from fits.routing_gain import routing_gain_table
from simulations.arms import arm_named, reference
from simulations.families.regression.task_registry import DEFAULT_TASK

CELL = ["task", "n_experts", "width", "n_train", "complexity"]
SPLIT_COLUMNS = ("nmse_oracle_selection_id", "nmse_equal_gates_id", "misrouted_share_id")
#: The gate map's seed means at k = s and at the arm's k*: {store column: table column}.
AT_S = {"routing_recall": "recall_at_s", "routing_recall_baseline": "recall_chance_at_s"}
AT_K_STAR = {"test_nmse_id": "nmse_id_at_k_star", **{c: c for c in SPLIT_COLUMNS}}
#: the store-wide settings a row carries, with the value of stores written before them
VARIANT = {"single_skill_steps": 0, "single_skill_share": 0.0, "router_init": "random"}


def _seed_k(g: pd.DataFrame, col: str, seeds: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """(seeds, ks) values of `col` (NaN where a (seed, k) has no row)."""
    y = np.full((len(seeds), len(ks)), np.nan)
    y[np.searchsorted(seeds, g["seed"].to_numpy()), np.searchsorted(ks, g["k"].to_numpy())] = \
        g[col].to_numpy(float)
    return y


def _weighted_means(y: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(draws, ks) seed means of y (seeds, ks) under each row of seed counts (draws, seeds)."""
    has = np.isfinite(y)
    w = counts[:, :, None] * has[None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w * np.nan_to_num(y)[None]).sum(1) / w.sum(1)


def _best(means: np.ndarray, ks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per draw, the minimum over k and its k (NaN where no k has a value)."""
    finite = np.isfinite(means).any(1)
    idx = np.where(finite[:, None], means, np.inf).argmin(1)
    best = np.where(finite, means[np.arange(len(means)), idx], np.nan)
    return best, np.where(finite, ks[idx].astype(float), np.nan)


def _interval(draws: np.ndarray, discrete: bool = False) -> tuple[float, float]:
    draws = draws[np.isfinite(draws)]
    if len(draws) == 0:
        return np.nan, np.nan
    lo, hi = np.quantile(draws, [0.025, 0.975], method="inverted_cdf" if discrete else "linear")
    return float(lo), float(hi)


def gate_map(rows: pd.DataFrame, n_boot: int = 1000, seed: int = 0, at_s: dict[str, str] | None = None,
             at_k_star: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per (cell, routed arm) as the module docstring says; empty without routed rows.

    `at_s` and `at_k_star` ({store column: table column}) name the seed means reported at k = s and at
    the arm's k_star_id (NaN where the store lacks the column or the cell that k); by default AT_S and
    AT_K_STAR, the gate map's own. Other analyses of the same (cell, arm) read theirs through them
    (`fits.regime`). With n_boot = 0 the intervals are NaN and the rest is unchanged."""
    at_s = AT_S if at_s is None else at_s
    at_k_star = AT_K_STAR if at_k_star is None else at_k_star
    df = rows.assign(arm=arm_names(rows))
    df = df[df["arm"].isin([a.name for a in routed_arms()]) & ~df["diverged"].astype(bool)]
    df = _with_task(df)
    if df.empty:
        return pd.DataFrame()
    seeds = np.sort(df["seed"].unique())
    counts = np.vstack([np.ones((1, len(seeds))),
                        seed_resample_counts(len(seeds), n_boot, np.random.default_rng(seed))])
    order = {a.name: i for i, a in enumerate(routed_arms())}
    out = []
    for key, cell in df.groupby(CELL, sort=True):
        ks = np.sort(cell["k"].unique())
        s = int(key[-1])
        best = {}
        for split in ("id", "ood"):
            oracle = cell[cell["arm"] == reference().name]
            means = _weighted_means(_seed_k(oracle, f"test_nmse_{split}", seeds, ks), counts)
            best[split] = _best(means, ks)[0] if len(oracle) else np.full(len(counts), np.nan)
        for arm, g in sorted(cell.groupby("arm"), key=lambda item: order[item[0]]):
            row = dict(zip(CELL, key, strict=True)) | {"arm": arm, "n_seeds": g["seed"].nunique()}
            row |= _means_at(g, s, at_s)
            for split in ("id", "ood"):
                b, k = _best(_weighted_means(_seed_k(g, f"test_nmse_{split}", seeds, ks), counts), ks)
                ratio = b / best[split]
                row[f"best_nmse_{split}"] = b[0]
                row[f"ratio_{split}"], (row[f"ratio_{split}_lo"], row[f"ratio_{split}_hi"]) = \
                    ratio[0], _interval(ratio[1:])
                if split == "id":
                    row["k_star_id"] = k[0]
                    row["k_star_id_lo"], row["k_star_id_hi"] = _interval(k[1:], discrete=True)
            row |= _means_at(g, row["k_star_id"], at_k_star)
            out.append(row)
    return _with_estimator_columns(pd.DataFrame(out), df)


def _means_at(g: pd.DataFrame, k: float, columns: dict[str, str]) -> dict:
    """{table column: seed mean of its store column over the rows of `g` at `k`} (NaN where the store
    lacks the column or `g` has no row at `k`)."""
    at = g[g["k"] == k]
    return {name: at[col].mean() if col in at.columns and len(at) else np.nan
            for col, name in columns.items()}


def _with_task(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows with their task (stores written before the task setting are compositional)."""
    task = rows["task"].fillna(DEFAULT_TASK) if "task" in rows.columns else DEFAULT_TASK
    return rows.assign(task=task)


def _with_estimator_columns(table: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """The gate map's rows with what each arm is, its best routing-gain share, its cost per step and the
    store's data design (module docstring)."""
    arms = {name: arm_named(name) for name in table["arm"].unique()}
    for col, part in (("router", lambda a: a.router.name), ("experts", lambda a: a.experts.name),
                      ("gate", lambda a: a.gate), ("estimator", lambda a: a.estimator)):
        table[col] = [part(arms[a]) for a in table["arm"]]
    if "route_free_nmse" in rows.columns:
        gain = _with_task(routing_gain_table(rows.drop(columns="arm")))
        curve = gain.groupby([*CELL, "arm", "split", "k"])["share"].mean().reset_index()
        best = curve.groupby([*CELL, "arm", "split"])["share"].max().unstack("split")
        best = best.rename(columns=lambda s: f"best_share_{s}").reset_index()
        table = table.merge(best, on=[*CELL, "arm"], how="left")
    if {"wall_s", "steps"} <= set(rows.columns):
        warm = rows["single_skill_steps"].fillna(0) if "single_skill_steps" in rows.columns else 0
        cost = rows.assign(ms_per_step=1000 * rows["wall_s"] / (rows["steps"].clip(lower=1) + warm))
        table = table.merge(cost.groupby([*CELL, "arm"])["ms_per_step"].mean().reset_index(),
                            on=[*CELL, "arm"], how="left")
    for name, default in VARIANT.items():  # one value per store (config settings, not axes)
        table[name] = rows[name].iloc[0] if name in rows.columns and rows[name].notna().any() else default
    return table
