"""Paired seed-level tests between arms: is one arm's best error lower than another's in the same cell?

Arms of one store share each seed's task, data and initial weights, so their errors pair by seed. Per
cell (complexity, n_train, width, n_experts) and arm, each seed's error is read at the arm's own
seed-mean argmin k* (the arm at its best k); the test is then a paired t-test over seeds of the
difference (arm - reference arm), with its 95 % t interval and, beside it, the Wilcoxon signed-rank
p-value (no normality assumed; with fewer than 6 seeds it cannot fall below 0.05).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from fits.data import CELL_KEYS, law_rows

COLUMNS = [*CELL_KEYS, "arm", "reference", "k_arm", "k_reference", "n_seeds", "mean_diff", "ci_low",
           "ci_high", "p_t", "p_wilcoxon"]


def at_best_k(rows: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per cell and seed, the error at the cell's seed-mean argmin k (`k` says which)."""
    ok = rows[~rows["diverged"]]
    means = ok.groupby([*CELL_KEYS, "k"])[column].mean().reset_index()
    best = means.loc[means.groupby(list(CELL_KEYS))[column].idxmin(), [*CELL_KEYS, "k"]]
    return ok.merge(best, on=[*CELL_KEYS, "k"])[[*CELL_KEYS, "k", "seed", column]]


def paired_arm_tests(arms: dict[str, pd.DataFrame], column: str, reference: str) -> pd.DataFrame:
    """Every arm against `reference` in every cell both have (see module doc); one row per pair and cell."""
    best = {name: at_best_k(law_rows(df, column)[0], column) for name, df in arms.items()}
    ref = best[reference]
    out = []
    for name, b in best.items():
        if name == reference:
            continue
        pair = b.merge(ref, on=[*CELL_KEYS, "seed"], suffixes=("", "_ref"))
        for key, g in pair.groupby(list(CELL_KEYS), sort=True):
            d = (g[column] - g[f"{column}_ref"]).to_numpy(float)
            row = dict(zip(CELL_KEYS, key, strict=True)) | {
                "arm": name, "reference": reference, "k_arm": int(g["k"].iloc[0]),
                "k_reference": int(g["k_ref"].iloc[0]), "n_seeds": len(d), "mean_diff": float(d.mean())}
            if len(d) > 1 and np.ptp(d) > 0:
                t = stats.ttest_rel(g[column], g[f"{column}_ref"])
                ci = t.confidence_interval()
                row |= {"ci_low": float(ci.low), "ci_high": float(ci.high), "p_t": float(t.pvalue),
                        "p_wilcoxon": float(stats.wilcoxon(d).pvalue)}
            out.append(row)
    return pd.DataFrame(out, columns=COLUMNS)
