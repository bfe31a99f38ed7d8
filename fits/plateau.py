"""Did each model end at its plateau? The test of a store whose models train until their validation
accuracy stops rising (SRAVEN with early stopping), read off its learning curves
(`simulations.results.load_curves`); the criterion of issue 29, fixed before the converge run.

Per model, on its per-feature OOD accuracy (the curve up to the step it stopped at):
- `final`: at the checkpoint it ended at (the row's `feat_acc_ood`);
- `best`: the highest value its curve reached, and `gap` = best - final;
- `rise`: what the curve still gained over its last `patience` checks: the least-squares slope over
  those checks times their span in steps (a trend, less noisy than the difference of two checks);
- `at_plateau`: it stopped early (its validation accuracy rose by at most `min_delta` over `patience`
  checks), rise <= TOLERANCE and gap <= TOLERANCE.
A model that reached the step cap is not at its plateau by this test, whatever its curve: the test
asks for the plateau to be seen, not extrapolated.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TOLERANCE = 0.02  # per-feature accuracy: "within 0.02 of its own plateau" (issue 29)
TABLE = "plateau.parquet"
GROUP = ("estimator", "n_rules")  # the summary's rows, where the store has the columns
MODEL_COLUMNS = ("cell_id", "estimator", "n_rules", "k", "seed", "steps_run", "best_step", "stopped_early",
                 "final", "best", "gap", "rise", "at_plateau")


def _rise(steps: np.ndarray, acc: np.ndarray) -> float:
    """The least-squares slope of acc on steps times the steps' span (NaN with under 2 finite points)."""
    ok = np.isfinite(acc)
    if ok.sum() < 2:
        return float("nan")
    slope = np.polyfit(steps[ok].astype(float), acc[ok], 1)[0]
    return float(slope * (steps[ok].max() - steps[ok].min()))


def model_table(curves: pd.DataFrame, rows: pd.DataFrame, metric: str = "feat_acc_ood") -> pd.DataFrame:
    """One row per model (cell, seed) of a curves table (`load_curves`: the curve's values, joined with
    the rows' other columns), its final value from `rows` (the store's rows; MODEL_COLUMNS that exist)."""
    finals = rows.set_index(["cell_id", "seed"])[metric]
    out = []
    for (cell, seed), g in curves.groupby(["cell_id", "seed"], sort=False):
        first = g.iloc[0]
        stop = int(first["steps_run"])
        window = int(first["patience"]) * int(first["val_every"])
        run = g[g["step"] <= stop]
        last = run[run["step"] >= stop - window]
        final = float(finals[(cell, seed)])
        best = float(run[metric].max())
        rise = _rise(last["step"].to_numpy(), last[metric].to_numpy(dtype=float))
        stopped = bool(first["stopped_early"])
        row = {"cell_id": cell} | {c: first[c] for c in ("estimator", "n_rules", "k") if c in g.columns}
        row |= {"seed": seed, "steps_run": stop, "best_step": int(first["best_step"]),
                "stopped_early": stopped, "final": final, "best": best, "gap": best - final, "rise": rise,
                "at_plateau": stopped and rise <= TOLERANCE and best - final <= TOLERANCE}
        out.append(row)
    table = pd.DataFrame(out)
    return table.sort_values([c for c in (*GROUP, "k", "seed") if c in table.columns], kind="stable",
                             ignore_index=True)


def group_table(models: pd.DataFrame) -> pd.DataFrame:
    """Per estimator and R: models, the share stopped early and at plateau, the median steps run, the
    mean final accuracy, the mean and largest rise and the largest gap."""
    keys = [c for c in GROUP if c in models.columns]
    agg = models.groupby(keys, sort=True).agg(
        models=("final", "size"), stopped_early=("stopped_early", "mean"), at_plateau=("at_plateau", "mean"),
        median_steps=("steps_run", "median"), final_mean=("final", "mean"), rise_mean=("rise", "mean"),
        rise_max=("rise", "max"), gap_max=("gap", "max"))
    return agg.reset_index()
