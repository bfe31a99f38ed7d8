"""Per-cell optimal k with a seed-cluster bootstrap.

A cell is one (complexity, n_train, width, n_experts); its runs span k and seeds. Per cell:

- the empirical k* (argmin over k of the mean over seeds) and whether it is censored (it sits at the
  smallest or largest tested k, so the true optimum may lie beyond the grid);
- a continuous k* from a smooth fit of the seed-mean loss against k (`fits.curve`);
- their uncertainty from a bootstrap that resamples seeds as clusters: a seed's runs share training data
  across k (and its task across cells), so a resample draws whole seeds, the same draw for every cell;
- the probability, over resamples, that each k is the argmin;
- the flat range: the lowest and highest tested k whose seed-mean loss is within one standard error
  (of the argmin's mean) of the minimum. Where it spans a factor of 2 or more, the curve is flat past
  its knee and no estimator of the argmin can pin k* down much better than that range.

Resamples are drawn once as a (B, n_seeds) count matrix; each cell's resampled means are one matrix
product, and the smooth fits of all resamples of a cell are one batched solve (no Python loop over B).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fits.curve import fit_curves
from fits.data import CELL_KEYS, metric_column
from fits.families import family_of


@dataclass
class CellFits:
    """Per-cell results: `cells` (one row per cell), `curves` (one row per cell and k), and the bootstrap
    draws of the continuous and discrete k* (`boot_k_cont`, `boot_k_star`, shape (n_cells, B); empty when
    no bootstrap ran)."""

    cells: pd.DataFrame
    curves: pd.DataFrame
    boot_k_cont: np.ndarray
    boot_k_star: np.ndarray
    n_boot: int
    metric: str
    notes: list[str] = field(default_factory=list)


def seed_resample_counts(n_seeds: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n_seeds) counts of each seed in a cluster-bootstrap resample of the seeds."""
    return rng.multinomial(n_seeds, np.full(n_seeds, 1.0 / n_seeds), size=n_boot).astype(float)


def _quantiles(x: np.ndarray, discrete: bool) -> tuple[float, float]:
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return (np.nan, np.nan)
    method = "inverted_cdf" if discrete else "linear"
    lo, hi = np.quantile(x, [0.025, 0.975], method=method)
    return (float(lo), float(hi))


def _seed_sd(y: np.ndarray, has: np.ndarray) -> np.ndarray:
    """Standard deviation over seeds per k (NaN where fewer than two seeds have a value)."""
    n = has.sum(axis=0)
    mean = np.where(has, y, 0.0).sum(axis=0) / np.maximum(n, 1)
    ss = (np.where(has, y - mean, 0.0) ** 2).sum(axis=0)
    return np.where(n > 1, np.sqrt(ss / np.maximum(n - 1, 1)), np.nan)


def cell_optimal_k(
    df: pd.DataFrame, metric: str = "ood", n_boot: int = 2000, seed: int = 0, shape: str = "linear"
) -> CellFits:
    """Per-cell k* (discrete and continuous) with seed-cluster bootstrap uncertainty; see module doc.
    `shape` is the estimation term of the smooth fit (`fits.curve`); `metric` is one of the table's
    family's metrics (`fits.families`)."""
    col = metric_column(metric, family_of(df))
    notes: list[str] = []
    valid = ~df["diverged"] & np.isfinite(df[col].to_numpy(dtype=float))
    n_div = int(df["diverged"].sum())
    n_nan = int((~df["diverged"] & ~valid).sum())
    if n_div:
        notes.append(f"{n_div} diverged row(s) excluded")
    if n_nan:
        notes.append(f"{n_nan} row(s) with a missing {col} excluded")
    if not valid.any():
        raise ValueError(f"no usable rows: every row diverged or lacks {col}")

    seeds = np.sort(df["seed"].unique())
    seed_index = {s: i for i, s in enumerate(seeds)}
    if len(seeds) < 2:
        notes.append("one seed only: no bootstrap possible, so no k* intervals or argmin probabilities")
        n_boot = 0
    rng = np.random.default_rng(seed)
    counts = np.vstack([np.ones((1, len(seeds))), seed_resample_counts(len(seeds), n_boot, rng)])

    cell_rows, curve_rows, boot_cont, boot_star, constant = [], [], [], [], []
    work = df.assign(_valid=valid, _y=df[col].astype(float))
    for key, g in work.groupby(list(CELL_KEYS), sort=True):
        n_experts = int(key[3])
        ks = np.sort(g["k"].unique())
        y = np.full((len(seeds), len(ks)), np.nan)
        gv = g[g["_valid"]]
        k_pos = np.searchsorted(ks, gv["k"].to_numpy())
        s_pos = np.array([seed_index[s] for s in gv["seed"]], dtype=int)
        y[s_pos, k_pos] = gv["_y"].to_numpy()  # one row per (seed, k): check_results refuses repeats
        has = np.isfinite(y)
        sums = counts @ np.where(has, y, 0.0)
        n = counts @ has
        means = np.divide(sums, n, out=np.full_like(sums, np.nan), where=n > 0)

        finite = np.isfinite(means)
        disc = np.where(finite.any(axis=1), np.argmin(np.where(finite, means, np.inf), axis=1), -1)
        k_disc = np.where(disc >= 0, ks[np.maximum(disc, 0)], np.nan)
        cont = fit_curves(ks, n_experts, means, n, shape=shape)

        tested = ks[has.any(axis=0)]
        if len(tested) > 1 and np.nanmax(means[0]) == np.nanmin(means[0]):
            constant.append(key)  # e.g. an accuracy at 0 for every k: the argmin is a tie-break
        k_star = k_disc[0]
        censored = ""
        if np.isfinite(k_star) and len(tested) > 1:
            censored = "low" if k_star == tested.min() else "high" if k_star == tested.max() else ""
        boot_disc, boot_c = k_disc[1:], cont["k_star"][1:]
        p_argmin = {int(k): float(np.mean(boot_disc == k)) for k in ks} if n_boot else {}
        se = _seed_sd(y, has) / np.sqrt(np.maximum(has.sum(axis=0), 1))
        for j, k in enumerate(ks):
            curve_rows.append(
                dict(zip(CELL_KEYS, key, strict=True))
                | {
                    "k": int(k),
                    "mean": means[0, j],
                    "se": se[j],
                    "n_seeds": int(has[:, j].sum()),
                    "p_argmin": p_argmin.get(int(k), np.nan),
                }
            )
        plateau = np.zeros(len(ks), bool)  # the k within one standard error (0 with one seed) of the minimum
        if disc[0] >= 0:
            plateau = means[0] <= means[0, disc[0]] + np.nan_to_num(se[disc[0]])
        log_b = np.log(boot_c[np.isfinite(boot_c)])
        log_d = np.log(boot_disc[np.isfinite(boot_disc)])
        cell_rows.append(
            dict(zip(CELL_KEYS, key, strict=True))
            | {
                "k_star": k_star,
                "k_star_ci": _quantiles(boot_disc, discrete=True) if n_boot else (np.nan, np.nan),
                "censored": censored,
                "p_k_star": p_argmin.get(int(k_star), np.nan) if np.isfinite(k_star) else np.nan,
                "k_flat_low": float(ks[plateau].min()) if plateau.any() else np.nan,
                "k_flat_high": float(ks[plateau].max()) if plateau.any() else np.nan,
                "k_star_cont": cont["k_star"][0],
                "k_star_cont_ci": _quantiles(boot_c, discrete=False) if n_boot else (np.nan, np.nan),
                "cont_at_edge": bool(cont["at_edge"][0]),
                "log_k_cont_var": float(np.var(log_b, ddof=1)) if len(log_b) > 1 else np.nan,
                "log_k_star_var": float(np.var(log_d, ddof=1)) if len(log_d) > 1 else np.nan,
                "fit_r2": cont["r2"][0],
                "fit_p": cont["p"][0],
                "k_min": float(tested.min()) if len(tested) else np.nan,
                "k_max": float(tested.max()) if len(tested) else np.nan,
                "n_k": int(len(tested)),
                "n_seeds": int(has.any(axis=1).sum()),
                "n_diverged": int(g["diverged"].sum()),
            }
        )
        boot_cont.append(boot_c)
        boot_star.append(boot_disc)
    cells = pd.DataFrame(cell_rows)
    n_cens = int((cells["censored"] != "").sum())
    if n_cens:
        notes.append(f"{n_cens} of {len(cells)} cell(s) censored (k* at the smallest or largest tested k)")
    if constant:
        where = "; ".join(", ".join(f"{f}={v:g}" for f, v in zip(CELL_KEYS, key, strict=True))
                          for key in constant)
        notes.append(f"{len(constant)} cell(s) with the same seed-mean error at every k (k* there is the "
                     f"smallest k by tie-break, censored low, and means nothing): {where}")
    return CellFits(
        cells=cells,
        curves=pd.DataFrame(curve_rows),
        boot_k_cont=np.array(boot_cont).reshape(len(cells), n_boot),
        boot_k_star=np.array(boot_star).reshape(len(cells), n_boot),
        n_boot=n_boot,
        metric=metric,
        notes=notes,
    )
