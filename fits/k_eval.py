"""Inference-time k (P1's SKILL-MIX experiment at the toolkit's scale): is the best k at inference the k
the model was trained with, and how does it move with task complexity, per router arm?

Input: the store's k_eval table (`simulations.results.load_k_eval`: each trained model evaluated at
every k_eval = 1..T). Per (arm, cell, k_train) the seed-mean error curve over k_eval gives the best
k_eval; a seed-cluster bootstrap (whole seeds resampled, the same draw for every cell, as in
`fits.cells`) gives its interval, the share of cells whose best k_eval equals k_train, and the mean best
k_eval per complexity.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fits.cells import seed_resample_counts
from fits.data import arm_names, routed_arms
from fits.summary import ci_text, markdown_table

CELL = ["complexity", "n_train", "width", "n_experts", "k"]


def best_k_eval(long: pd.DataFrame, metric: str = "test_mse_id", n_boot: int = 1000, seed: int = 0
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(cells, by_complexity). `cells`: one row per (arm, cell, k_train) with the best k_eval of the
    seed-mean curve (the smallest among exact ties), its bootstrap 95 % interval, whether k_train ties
    the best error (`train_k_is_best`) and the bootstrap probability that it does. `by_complexity`: per
    (arm, complexity), the share of cells where k_train is best (within 1) and the mean best k_eval, each
    with a seed-cluster bootstrap 95 % interval. Dense rows and diverged models are left out."""
    df = long.assign(arm=arm_names(long))
    routed = df["arm"].isin([a.name for a in routed_arms()])
    df = df[routed & ~df["diverged"].astype(bool) & np.isfinite(df[metric])]
    seeds = np.sort(df["seed"].unique())
    counts = np.vstack([np.ones((1, len(seeds))),
                        seed_resample_counts(len(seeds), n_boot, np.random.default_rng(seed))])
    index = {s: i for i, s in enumerate(seeds)}
    rows, draws, ties = [], [], []
    for key, g in df.groupby(["arm", *CELL], sort=True):
        ks = np.sort(g["k_eval"].unique())
        y = np.full((len(seeds), len(ks)), np.nan)
        y[g["seed"].map(index).to_numpy(), np.searchsorted(ks, g["k_eval"].to_numpy())] = g[metric].to_numpy()
        has = np.isfinite(y)
        w = counts[:, :, None] * has[None]  # (B + 1, seeds, k_eval)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = (w * np.nan_to_num(y)[None]).sum(1) / w.sum(1)
        best = np.array([ks[np.nanargmin(m)] if np.isfinite(m).any() else np.nan for m in means])
        k_train = key[-1]
        # k_train counts as best when its error ties the minimum (the oracle is exactly flat past s r)
        with np.errstate(invalid="ignore"):
            at_train = means[:, np.searchsorted(ks, k_train)] <= np.nanmin(np.where(np.isfinite(means), means,
                                                                                       np.inf), axis=1)
        draws.append(best)
        ties.append(np.where(np.isfinite(best), at_train, np.nan))
        rows.append(dict(zip(["arm", *CELL], key, strict=True)) | {
            "best_k_eval": best[0], "ci_low": np.nanquantile(best[1:], 0.025) if n_boot else np.nan,
            "ci_high": np.nanquantile(best[1:], 0.975) if n_boot else np.nan,
            "train_k_is_best": bool(at_train[0]),
            "p_equal": float(np.nanmean(ties[-1][1:])) if n_boot else np.nan,
            "n_seeds": int(has.any(1).sum())})
    cells = pd.DataFrame(rows).rename(columns={"k": "k_train"})
    if cells.empty:
        return cells, pd.DataFrame()
    draws, ties = np.vstack(draws), np.vstack(ties)  # (cells, B + 1)
    summary = []
    for (arm, s), idx in cells.groupby(["arm", "complexity"]).groups.items():
        rows_ = cells.index.get_indexer(idx)
        sub, tie = draws[rows_], ties[rows_]
        k_train = cells.loc[idx, "k_train"].to_numpy()[:, None]
        n = np.isfinite(sub).sum(0)  # a resample can draw only diverged seeds of a cell: no best there
        with np.errstate(invalid="ignore", divide="ignore"):
            stats = {"equal": np.nansum(tie, 0) / n,
                     "within_1": ((np.abs(sub - k_train) <= 1) | (tie == 1)).sum(0) / n,
                     "mean_best": np.nansum(sub, 0) / n}
        row = {"arm": arm, "complexity": s, "n_cells": len(idx)}
        for name, v in stats.items():
            row[name] = v[0]
            row[f"{name}_ci"] = [float(np.nanquantile(v[1:], 0.025)), float(np.nanquantile(v[1:], 0.975))] \
                if n_boot else [np.nan, np.nan]
        summary.append(row)
    return cells, pd.DataFrame(summary)


def k_eval_block(long: pd.DataFrame, metric: str, n_boot: int, seed: int) -> dict:
    """The `k_eval` block of optimal_k.json (JSON-ready apart from NaN cleaning)."""
    if long.empty:
        return {"available": False, "reason": "the store has no k_eval table (written before it existed)"}
    cells, by_s = best_k_eval(long, metric, n_boot, seed)
    return {"available": True, "metric": metric, "n_bootstrap": n_boot,
            "rule": "each model at k_eval experts with its own gating rule (renormalize setting; the "
                    "oracle's rule at k_eval)",
            "by_complexity": by_s.to_dict(orient="records"), "cells": cells.to_dict(orient="records")}


def k_eval_markdown(block: dict) -> str:
    """The report.md section for the `k_eval` block."""
    if not block.get("available"):
        return f"Not available: {block.get('reason')}\n"
    by = pd.DataFrame(block["by_complexity"])
    def with_ci(col):
        return [f"{v:.2f} {ci_text(c)}" for v, c in zip(by[col], by[f"{col}_ci"], strict=True)]

    table = pd.DataFrame({"arm": by["arm"], "s": by["complexity"], "cells": by["n_cells"],
                          "best k_eval = k_train": with_ci("equal"), "within 1": with_ci("within_1"),
                          "mean best k_eval": with_ci("mean_best")})
    return (f"Each trained model evaluated at every k_eval = 1..T ({block['rule']}); metric "
            f"`{block['metric']}`; seed-cluster bootstrap 95 % intervals over cells (k_train, m, h).\n\n"
            + markdown_table(table) + "\n")
