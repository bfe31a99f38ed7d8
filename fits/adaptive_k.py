"""Adaptive k: do harder inputs take more experts? (P1's question inside one learned model, input by
input.)

Input: the store's experts-by-s table (`simulations.results.load_experts_by_s`, written for grids with
`complexity_mix`): per trained model and level s, the mean number of experts its router selected per ID
test input of that level. Per (arm, cell) the seed mean at each level and the OLS slope of those level
means on s (experts per unit of s, across the levels) get 95 % intervals from a seed-cluster bootstrap:
whole seeds resampled, the same draw for every cell (as `fits.cells`), so a resample keeps each seed's
levels together. For a fixed-k arm the slope is 0 by construction; for the top_p router it is the
router's choice; the oracle's is the rule's (min(k, s r) experts).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fits.cells import seed_resample_counts
from fits.data import arm_names, routed_arms
from fits.summary import ci_text, fmt, markdown_table

CELL = ["n_experts", "width", "n_train", "k"]
VALUE = "mean_experts_id"


def _slopes(levels: np.ndarray, means: np.ndarray) -> np.ndarray:
    """OLS slope of each row of `means` (draws, levels) on `levels`; NaN where a row lacks a level."""
    x = levels - levels.mean()
    with np.errstate(invalid="ignore"):
        return (means - means.mean(1, keepdims=True)) @ x / (x @ x) if len(levels) > 1 \
            else np.full(len(means), np.nan)


def experts_by_s(long: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(levels, slopes). `levels`: one row per (arm, cell, s) with the seed-mean experts per input
    (`mean_experts`), its bootstrap 95 % interval (`ci_low`, `ci_high`) and `n_seeds`. `slopes`: one row
    per (arm, cell) with the OLS slope of the level means on s, its interval and `n_levels`. Arms that do
    not route and diverged models are left out."""
    df = long.assign(arm=arm_names(long))
    df = df[df["arm"].isin([a.name for a in routed_arms()]) & ~df["diverged"].astype(bool)
            & np.isfinite(df[VALUE].astype(float))]
    seeds = np.sort(df["seed"].unique())
    counts = np.vstack([np.ones((1, len(seeds))),
                        seed_resample_counts(len(seeds), n_boot, np.random.default_rng(seed))])
    index = {s: i for i, s in enumerate(seeds)}
    level_rows, slope_rows = [], []
    for key, g in df.groupby(["arm", *CELL], sort=True):
        cell = dict(zip(["arm", *CELL], key, strict=True))
        levels = np.sort(g["s"].unique())
        y = np.full((len(seeds), len(levels)), np.nan)
        at = g["seed"].map(index).to_numpy(), np.searchsorted(levels, g["s"].to_numpy())
        y[at] = g[VALUE].to_numpy(float)
        has = np.isfinite(y)
        w = counts[:, :, None] * has[None]  # (B + 1, seeds, levels)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = (w * np.nan_to_num(y)[None]).sum(1) / w.sum(1)  # (B + 1, levels)
        for j, s in enumerate(levels):
            lo, hi = np.nanquantile(means[1:, j], [0.025, 0.975]) if n_boot else (np.nan, np.nan)
            level_rows.append(cell | {"s": int(s), "mean_experts": means[0, j], "ci_low": lo, "ci_high": hi,
                                      "n_seeds": int(has[:, j].sum())})
        slope = _slopes(levels.astype(float), means)
        finite = slope[1:][np.isfinite(slope[1:])]
        lo, hi = np.quantile(finite, [0.025, 0.975]) if len(finite) else (np.nan, np.nan)
        slope_rows.append(cell | {"slope": slope[0], "ci_low": lo, "ci_high": hi, "n_levels": len(levels)})
    return pd.DataFrame(level_rows), pd.DataFrame(slope_rows)


def adaptive_k_block(long: pd.DataFrame, n_boot: int, seed: int) -> dict:
    """The `adaptive_k` block of optimal_k.json (JSON-ready apart from NaN cleaning)."""
    if long.empty:
        return {"available": False, "reason": "the store has no experts-by-s table (no complexity_mix)"}
    levels, slopes = experts_by_s(long, n_boot, seed)
    return {"available": True, "n_bootstrap": n_boot, "measure": "mean experts selected per ID test input",
            "levels": levels.to_dict(orient="records"), "slopes": slopes.to_dict(orient="records")}


def adaptive_k_markdown(block: dict) -> str:
    """The report.md section for the `adaptive_k` block."""
    if not block.get("available"):
        return f"Not available: {block.get('reason')}\n"
    lv, sl = pd.DataFrame(block["levels"]), pd.DataFrame(block["slopes"])
    if lv.empty:
        return "No routed arm with finite values.\n"
    lv_table = pd.DataFrame({"arm": lv["arm"], **{c: lv[c] for c in CELL}, "s": lv["s"],
                             "experts / input": [f"{fmt(v)} {ci_text((a, b))}" for v, a, b in
                                                 zip(lv["mean_experts"], lv["ci_low"], lv["ci_high"],
                                                     strict=True)],
                             "seeds": lv["n_seeds"]})
    sl_table = pd.DataFrame({"arm": sl["arm"], **{c: sl[c] for c in CELL},
                             "slope (experts per unit s)": [f"{fmt(v, 3)} {ci_text((a, b), 3)}" for v, a, b in
                                                            zip(sl["slope"], sl["ci_low"], sl["ci_high"],
                                                                strict=True)],
                             "levels": sl["n_levels"]})
    return ("Mean number of experts each router selects per ID test input, by the input's own s "
            f"(mixed-complexity task); seed-cluster bootstrap 95 % intervals ({block['n_bootstrap']} "
            "resamples). The slope is the OLS slope of the level means on s.\n\n"
            + markdown_table(lv_table) + "\n\n" + markdown_table(sl_table) + "\n")


def adaptive_k_summary(block: dict) -> str | None:
    """One printed line: the slope of every arm whose selection can vary per input (not a constant k)."""
    if not block.get("available") or not block["slopes"]:
        return None
    parts = [f"{r['arm']} k={r['k']}: {fmt(r['slope'], 3)} {ci_text((r['ci_low'], r['ci_high']), 3)}"
             for r in block["slopes"]]
    return "adaptive k, experts per input vs s (slope): " + "; ".join(parts)
