"""Per-cell optimal k with a seed-cluster bootstrap.

A cell is one (complexity, n_train, width, n_experts); its runs span k and seeds. Per cell:

- the empirical k* (argmin over k of the mean over seeds) and whether it is censored (it sits at the
  smallest or largest tested k, so the true optimum may lie beyond the grid);
- a continuous k* from a smooth fit of the seed-mean loss against k (`fits.curve`);
- their uncertainty from a bootstrap that resamples seeds as clusters: a seed's runs share training data
  across k (and its task across cells), so a resample draws whole seeds, the same draw for every cell;
- the probability, over resamples, that each k is the argmin;
- the estimands fixed in advance (docs/fits.md, "Estimands"), each with its seed-cluster CI and censoring:
  `k_star` (the argmin), `k_enough` (the smallest k whose seed-mean loss is within 5 % of the minimum;
  `k_enough_2`: 2 %) and `k_one_se` (the smallest k within one standard error of the minimum, the SE
  being that of the seed-paired difference to the argmin: seeds share data and initial weights across k);
- the flat range: the lowest and highest tested k within that paired SE of the minimum. Where it spans
  a factor of 2 or more, the curve is flat past its knee and no estimator of the argmin can pin k* down
  much better than that range.

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

# The relative tolerances of the "k enough" estimands: the smallest k within 5 % (primary) or 2 %
# (sensitivity) of the minimum seed-mean loss.
ENOUGH = {"k_enough": 0.05, "k_enough_2": 0.02}
# Every discrete estimand a cell reports beside the continuous k*, in the order reports list them.
ESTIMANDS = ("k_star", *ENOUGH, "k_one_se")


@dataclass
class CellFits:
    """Per-cell results: `cells` (one row per cell), `curves` (one row per cell and k), and the bootstrap
    draws of the continuous k* (`boot_k_cont`) and of each discrete estimand (`boot[name]`, name in
    ESTIMANDS; `boot_k_star` is the argmin's), shape (n_cells, B), empty when no bootstrap ran."""

    cells: pd.DataFrame
    curves: pd.DataFrame
    boot_k_cont: np.ndarray
    boot: dict[str, np.ndarray]
    n_boot: int
    metric: str
    notes: list[str] = field(default_factory=list)

    @property
    def boot_k_star(self) -> np.ndarray:
        return self.boot["k_star"]


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


def _paired_se(y: np.ndarray, has: np.ndarray, counts: np.ndarray, disc: np.ndarray) -> np.ndarray:
    """(B, n_k) standard error of the seed-paired difference y[:, k] - y[:, argmin] per resample
    (`counts` weighs the seeds, `disc` is each resample's argmin index); 0 where fewer than two pairs."""
    j = np.maximum(disc, 0)
    d = y[None, :, :] - y[:, j].T[:, :, None]  # (B, seeds, k)
    w = counts[:, :, None] * (has[None, :, :] & has[:, j].T[:, :, None])
    d = np.where(w > 0, d, 0.0)
    n = w.sum(axis=1)
    mean = (w * d).sum(axis=1) / np.maximum(n, 1)
    var = (w * (d - mean[:, None, :]) ** 2).sum(axis=1) / np.maximum(n - 1, 1)
    return np.where(n > 1, np.sqrt(var / np.maximum(n, 1)), 0.0)


def _smallest_within(ks: np.ndarray, means: np.ndarray, bound: np.ndarray) -> np.ndarray:
    """Per row of `means` (B, n_k), the smallest k whose mean is at most that row's `bound` (NaN where
    the row has no finite mean)."""
    ok = np.isfinite(means) & (means <= bound)
    return np.where(ok.any(axis=1), ks[np.argmax(ok, axis=1)].astype(float), np.nan)


def censored_column(estimand: str) -> str:
    """The cells column saying whether an estimand is censored (the argmin's is `censored`)."""
    return "censored" if estimand == "k_star" else f"{estimand}_censored"


def _censoring(value: float, tested: np.ndarray) -> str:
    """"low" or "high" when an estimand sits at the smallest or largest tested k (only a bound there)."""
    if not np.isfinite(value) or len(tested) < 2:
        return ""
    return "low" if value == tested.min() else "high" if value == tested.max() else ""


def _usable(df: pd.DataFrame, col: str) -> tuple[pd.Series, list[str]]:
    """The rows the fits use (not diverged, a finite `col`) and notes counting the others left out; a
    ValueError when none is left."""
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
    return valid, notes


def _bootstrap_counts(n_seeds: int, n_boot: int, seed: int, notes: list[str]) -> tuple[np.ndarray, int]:
    """(1 + B, n_seeds) seed weights, shared by every cell: the sample itself (all ones), then B
    seed-cluster resamples; B is 0 with one seed (a note says so, since nothing can be resampled)."""
    if n_seeds < 2:
        notes.append("one seed only: no bootstrap possible, so no k* intervals or argmin probabilities")
        n_boot = 0
    rng = np.random.default_rng(seed)
    return np.vstack([np.ones((1, n_seeds)), seed_resample_counts(n_seeds, n_boot, rng)]), n_boot


def _seed_by_k(g: pd.DataFrame, seed_index: dict, ks: np.ndarray) -> np.ndarray:
    """(n_seeds, n_k) metric values of one cell's usable rows (NaN where a (seed, k) has none)."""
    y = np.full((len(seed_index), len(ks)), np.nan)
    gv = g[g["_valid"]]
    k_pos = np.searchsorted(ks, gv["k"].to_numpy())
    s_pos = np.array([seed_index[s] for s in gv["seed"]], dtype=int)
    y[s_pos, k_pos] = gv["_y"].to_numpy()  # one row per (seed, k): check_results refuses repeats
    return y


def _resampled_means(y: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which (seed, k) have a value, and per weighting of the seeds (rows of `counts`) the seeds counted
    at each k and the seed-mean loss there (NaN where none): (has, n, means), the last two (1 + B, n_k)."""
    has = np.isfinite(y)
    sums = counts @ np.where(has, y, 0.0)
    n = counts @ has
    means = np.divide(sums, n, out=np.full_like(sums, np.nan), where=n > 0)
    return has, n, means


def _estimand_draws(ks: np.ndarray, y: np.ndarray, has: np.ndarray, counts: np.ndarray,
                    means: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Per weighting of the seeds (row 0 the sample): the argmin's index (-1 where no k has a mean), the
    paired SE of each k against it, and the value of every discrete estimand ({name: (1 + B,)})."""
    finite = np.isfinite(means)
    disc = np.where(finite.any(axis=1), np.argmin(np.where(finite, means, np.inf), axis=1), -1)
    k_disc = np.where(disc >= 0, ks[np.maximum(disc, 0)], np.nan)
    best = np.min(np.where(finite, means, np.inf), axis=1)
    pse = _paired_se(y, has, counts, disc)
    draws = {"k_star": k_disc}
    draws |= {name: _smallest_within(ks, means, (best + tol * np.abs(best))[:, None])
              for name, tol in ENOUGH.items()}
    draws["k_one_se"] = _smallest_within(ks, means, best[:, None] + pse)
    return disc, pse, draws


def _curve_rows(key: tuple, ks: np.ndarray, y: np.ndarray, has: np.ndarray, means: np.ndarray,
                pse: np.ndarray, p_argmin: dict) -> list[dict]:
    """One cell's rows of `CellFits.curves`: per k the seed mean, its SE, the paired SE against the
    argmin, the seeds counted and the probability that k is the argmin."""
    se = _seed_sd(y, has) / np.sqrt(np.maximum(has.sum(axis=0), 1))
    return [dict(zip(CELL_KEYS, key, strict=True))
            | {"k": int(k), "mean": means[0, j], "se": se[j], "se_paired": pse[0, j],
               "n_seeds": int(has[:, j].sum()), "p_argmin": p_argmin.get(int(k), np.nan)}
            for j, k in enumerate(ks)]


def _estimand_columns(draws: dict[str, np.ndarray], tested: np.ndarray, n_boot: int) -> dict:
    """The cells columns of every discrete estimand: its value (the argmin's is `k_star`, set apart),
    its bootstrap interval, its censoring and the bootstrap variance of its log."""
    out = {}
    for name, v in draws.items():
        b = v[1:]
        log_v = np.log(b[np.isfinite(b)])
        out |= {
            f"{name}_ci": _quantiles(b, discrete=True) if n_boot else (np.nan, np.nan),
            censored_column(name): _censoring(v[0], tested),
            f"log_{name}_var": float(np.var(log_v, ddof=1)) if len(log_v) > 1 else np.nan,
        }
        if name != "k_star":
            out[name] = v[0]
    return out


def _fit_cell(key: tuple, g: pd.DataFrame, seed_index: dict, counts: np.ndarray, n_boot: int,
              shape: str) -> tuple[dict, list[dict], dict[str, np.ndarray], np.ndarray, bool]:
    """One cell: its row of `CellFits.cells`, its rows of `curves`, the bootstrap draws of each
    discrete estimand and of the continuous k*, and whether its seed-mean loss is the same at every k."""
    ks = np.sort(g["k"].unique())
    y = _seed_by_k(g, seed_index, ks)
    has, n, means = _resampled_means(y, counts)
    disc, pse, draws = _estimand_draws(ks, y, has, counts, means)
    cont = fit_curves(ks, int(key[3]), means, n, shape=shape)
    tested = ks[has.any(axis=0)]
    constant = len(tested) > 1 and np.nanmax(means[0]) == np.nanmin(means[0])
    k_star = draws["k_star"][0]
    boot_disc, boot_c = draws["k_star"][1:], cont["k_star"][1:]
    p_argmin = {int(k): float(np.mean(boot_disc == k)) for k in ks} if n_boot else {}
    plateau = np.zeros(len(ks), bool)  # the k within one paired SE (0 with one seed) of the minimum
    if disc[0] >= 0:
        plateau = np.isfinite(means[0]) & (means[0] <= means[0, disc[0]] + pse[0])
    log_b = np.log(boot_c[np.isfinite(boot_c)])
    row = dict(zip(CELL_KEYS, key, strict=True)) | {
        "k_star": k_star,
        "p_k_star": p_argmin.get(int(k_star), np.nan) if np.isfinite(k_star) else np.nan,
        "k_flat_low": float(ks[plateau].min()) if plateau.any() else np.nan,
        "k_flat_high": float(ks[plateau].max()) if plateau.any() else np.nan,
        "k_star_cont": cont["k_star"][0],
        "k_star_cont_ci": _quantiles(boot_c, discrete=False) if n_boot else (np.nan, np.nan),
        "cont_at_edge": bool(cont["at_edge"][0]),
        "log_k_cont_var": float(np.var(log_b, ddof=1)) if len(log_b) > 1 else np.nan,
        "fit_r2": cont["r2"][0],
        "fit_p": cont["p"][0],
        "k_min": float(tested.min()) if len(tested) else np.nan,
        "k_max": float(tested.max()) if len(tested) else np.nan,
        "n_k": int(len(tested)),
        "n_seeds": int(has.any(axis=1).sum()),
        "n_diverged": int(g["diverged"].sum()),
    } | _estimand_columns(draws, tested, n_boot)
    boots = {name: v[1:] for name, v in draws.items()}
    return row, _curve_rows(key, ks, y, has, means, pse, p_argmin), boots, boot_c, bool(constant)


def _cell_notes(cells: pd.DataFrame, constant: list[tuple]) -> list[str]:
    """Notes on the fitted cells: how many are censored, and which have a flat seed-mean loss (their
    k* is a tie-break)."""
    notes = []
    n_cens = int((cells["censored"] != "").sum())
    if n_cens:
        notes.append(f"{n_cens} of {len(cells)} cell(s) censored (k* at the smallest or largest tested k)")
    if constant:
        where = "; ".join(", ".join(f"{f}={v:g}" for f, v in zip(CELL_KEYS, key, strict=True))
                          for key in constant)
        notes.append(f"{len(constant)} cell(s) with the same seed-mean error at every k (k* there is the "
                     f"smallest k by tie-break, censored low, and means nothing): {where}")
    return notes


def cell_optimal_k(
    df: pd.DataFrame, metric: str = "ood", n_boot: int = 2000, seed: int = 0, shape: str = "linear"
) -> CellFits:
    """Per-cell k* (discrete and continuous) with seed-cluster bootstrap uncertainty; see module doc.
    `shape` is the estimation term of the smooth fit (`fits.curve`); `metric` is one of the table's
    family's metrics (`fits.families`). The same seed resamples weigh every cell (`_bootstrap_counts`),
    so the cells' draws stay paired."""
    col = metric_column(metric, family_of(df))
    valid, notes = _usable(df, col)
    seeds = np.sort(df["seed"].unique())
    seed_index = {s: i for i, s in enumerate(seeds)}
    counts, n_boot = _bootstrap_counts(len(seeds), n_boot, seed, notes)
    cell_rows, curve_rows, boot_cont, constant = [], [], [], []
    boot_est: dict[str, list[np.ndarray]] = {}
    work = df.assign(_valid=valid, _y=df[col].astype(float))
    for key, g in work.groupby(list(CELL_KEYS), sort=True):
        row, curves, boots, boot_c, flat = _fit_cell(key, g, seed_index, counts, n_boot, shape)
        cell_rows.append(row)
        curve_rows += curves
        for name, b in boots.items():
            boot_est.setdefault(name, []).append(b)
        boot_cont.append(boot_c)
        if flat:
            constant.append(key)  # e.g. an accuracy at 0 for every k: the argmin is a tie-break
    cells = pd.DataFrame(cell_rows)
    notes += _cell_notes(cells, constant)
    return CellFits(
        cells=cells,
        curves=pd.DataFrame(curve_rows),
        boot_k_cont=np.array(boot_cont).reshape(len(cells), n_boot),
        boot={name: np.array(boot_est[name]).reshape(len(cells), n_boot) for name in ESTIMANDS},
        n_boot=n_boot,
        metric=metric,
        notes=notes,
    )
