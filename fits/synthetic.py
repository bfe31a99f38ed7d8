"""Synthetic results drawn from a planted scaling law of k*, in the results store's schema.

Used to validate the fits (parameter recovery, CI coverage) before real results exist, and by the
figures' tests. The planted law is

    log k*(s, m, h) = b0 + b_s log s + b_m log m + b_h log h

and each cell's loss against k follows `fits.curve.loss_curve` with its minimum at that k*. Every
(seed, cell) gets a shared multiplicative offset (a seed's runs share data across k; the offset moves the
curve, not its argmin) and every run an independent multiplicative noise, which is what makes the
per-cell k* noisy.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fits.curve import coefficient_a_for_minimum, estimation_shape, loss_curve
from fits.theory.bound_model import bound_curves


@dataclass(frozen=True)
class PlantedLaw:
    """log k* = b0 + complexity * log s + n_train * log m + width * log h."""

    b0: float = -1.2
    complexity: float = 1.0
    n_train: float = 0.25
    width: float = -0.3

    def k_star(self, s, m, h):
        s, m, h = (np.asarray(v, dtype=float) for v in (s, m, h))
        return np.exp(
            self.b0 + self.complexity * np.log(s) + self.n_train * np.log(m) + self.width * np.log(h)
        )


def _approximation_coefficient(k_star: float, n_experts: int, b: float, p: float, shape: str) -> float:
    """The coefficient a of `loss_curve` whose minimum over [1, T] sits at k* (clipped to [1, T]).

    With P2's shape an interior minimum exists only up to a p-dependent limit (about 6.3 for p = 1 and 9
    for p = 2 at T = 16): planting k* beyond it is refused rather than silently planting another k*.
    A k* at or above T gets a curve that falls all the way to T."""
    fine = np.geomspace(1.0, n_experts, 4001)
    if k_star >= n_experts:
        slope = np.gradient(estimation_shape(fine, n_experts, shape), fine)
        return float(2.0 * b * np.max(slope * fine ** (p + 1.0)) / p)
    a = float(coefficient_a_for_minimum(max(k_star, 1.0 + 1e-9), n_experts, b, p, shape))
    found = fine[np.argmin(loss_curve(fine, n_experts, 0.0, a, b, p, shape))]
    if abs(np.log(found / max(k_star, 1.0))) > 0.02:
        raise ValueError(
            f"planted k* = {k_star:.2f} is beyond the shape's reach for p = {p}: raise p, lower k*"
        )
    return a


def planted_results(
    law: PlantedLaw | None = None,
    complexities=(2, 3, 4, 6),
    n_trains=(1000, 4000),
    widths=(16, 64),
    n_experts: int = 16,
    ks=(1, 2, 3, 4, 6, 8, 12, 16),
    n_seeds: int = 3,
    run_noise: float = 0.02,
    seed_noise: float = 0.05,
    p: float = 1.0,
    b: float = 0.005,
    shape: str = "linear",
    floor: float = 0.05,
    diverged_frac: float = 0.0,
    rng_seed: int = 0,
) -> pd.DataFrame:
    """One row per (cell, seed) with the results store's axes, metrics and the settings the fits read
    (not every column a real store holds), with k* planted by `law`.

    The loss against k is `fits.curve.loss_curve(k, T, floor, a, b, p, shape)` with a set so that its
    minimum sits at the planted k*.
    `run_noise` and `seed_noise` are the standard deviations of the per-run and per-(seed, cell)
    multiplicative log-normal noise; `diverged_frac` of the rows are marked diverged with NaN metrics.
    """
    law = law or PlantedLaw()
    rng = np.random.default_rng(rng_seed)
    raw = _planted_losses(law, complexities, n_trains, widths, n_experts, np.asarray(ks, dtype=float),
                          n_seeds, run_noise, seed_noise, (floor, b, p, shape), rng)
    diverged = rng.random(len(raw)) < diverged_frac
    loss = np.where(diverged, np.nan, raw["loss"].to_numpy())
    return _store_rows(raw, loss, diverged, n_experts, n_skills=max(complexities) + 2)


def _planted_losses(law: PlantedLaw, complexities, n_trains, widths, n_experts: int, ks: np.ndarray,
                    n_seeds: int, run_noise: float, seed_noise: float, curve: tuple,
                    rng: np.random.Generator) -> pd.DataFrame:
    """One row per (s, m, h, k, seed) with its noisy loss: the cell's `loss_curve` (`curve` = (floor, b,
    p, shape)) with its minimum at the law's k*, times a per-(seed, cell) offset and a per-run noise,
    both log-normal (drawn from `rng` cell by cell, seed by seed)."""
    floor, b, p, shape = curve
    rows = []
    for s, m, h in itertools.product(complexities, n_trains, widths):
        a = _approximation_coefficient(float(law.k_star(s, m, h)), n_experts, b, p, shape)
        clean = loss_curve(ks, n_experts, floor, a, b, p, shape)
        for seed in range(n_seeds):
            offset = rng.normal(0.0, seed_noise)
            noisy = clean * np.exp(offset + rng.normal(0.0, run_noise, size=len(ks)))
            for k, loss in zip(ks, noisy, strict=True):
                rows.append((s, m, h, int(k), seed, loss))
    return pd.DataFrame(rows, columns=["complexity", "n_train", "width", "k", "seed", "loss"])


def _store_rows(raw: pd.DataFrame, loss: np.ndarray, diverged: np.ndarray, n_experts: int,
                n_skills: int) -> pd.DataFrame:
    """The planted losses as rows of the results store's schema: the test OOD MSE is the loss, the ID
    and train MSE fixed fractions of it, the NMSE columns over a target variance of 1 + noise^2; the
    bookkeeping columns (steps, bundle, commit, ...) hold placeholders. Diverged rows have NaN metrics."""
    df = pd.DataFrame(
        {
            "cell_id": [
                f"s{s}-m{m}-h{h}-T{n_experts}-k{k}"
                for s, m, h, k in raw[["complexity", "n_train", "width", "k"]].itertuples(index=False)
            ],
            "seed": raw["seed"].astype(int),
            "k": raw["k"].astype(int),
            "n_experts": n_experts,
            "complexity": raw["complexity"].astype(int),
            "n_train": raw["n_train"].astype(int),
            "width": raw["width"].astype(int),
            "d_in": 16,
            "train_mse": 0.6 * loss,
            "test_mse_id": 0.9 * loss,
            "test_mse_ood": loss,
            "target_var": 1.0 + 0.1**2,
            "diverged": diverged,
            "steps": np.where(diverged, 0, 2000),
            "wall_s": 1.0,
            "renormalize": True,
            "n_skills": n_skills,
            "noise": 0.1,
            "holdout_frac": 0.25,
            "n_heldout_combos": 1,
        }
    )
    tv = df["target_var"]
    df["train_nmse"] = df["train_mse"] / tv
    df["test_nmse_id"] = df["test_mse_id"] / tv
    df["test_nmse_ood"] = df["test_mse_ood"] / tv
    df["val_mse"] = 0.92 * loss
    df["early_stopped"] = False
    df["router_entropy"] = np.where(diverged, np.nan, np.log(n_experts) / 2)
    df["lr"] = 1e-3
    df["max_steps"] = 2000
    df["bundle_id"] = [f"planted-seed{s}" for s in df["seed"]]
    df["git_commit"] = "planted"
    df["torch_version"] = "none"
    df["device"] = "cpu"
    df["dtype"] = "float32"
    df["config_hash"] = "planted"
    return df


def planted_bound_results(
    constants: dict,
    complexities=(1, 2, 4, 6),
    n_trains=(150, 500),
    widths=(4, 8),
    n_experts: int = 16,
    n_seeds: int = 3,
    noise: float = 0.03,
    seed_noise: float = 0.02,
    n_skills: int = 8,
    d_in: int = 8,
    holdout_frac: float = 0.25,
    router: str | None = None,
    rng_seed: int = 0,
) -> pd.DataFrame:
    """Loss curves made by the calibrated risk bound (`fits.theory.bound_model.bound_curves`: floor + A +
    lambda E with `constants` h0, beta, est_weight, floor), on a grid design (the quick grid's by default),
    with a multiplicative offset per (seed, cell) and independent multiplicative noise per run. Only the
    columns the theory fit reads (and the store's nmse/mse pairs, target_var = 1) are filled."""
    rng = np.random.default_rng(rng_seed)
    ks = np.arange(1, n_experts + 1, dtype=float)
    grid = pd.DataFrame(
        [(s, m, h, n_experts, k)
         for s, m, h in itertools.product(complexities, n_trains, widths) for k in ks],
        columns=["complexity", "n_train", "width", "n_experts", "k"],
    )
    task = {"d": d_in, "n_skills": n_skills, "holdout_frac": holdout_frac}
    rows = []
    for split in ("id", "ood"):
        clean = bound_curves(grid, constants, task | {"split": split})["total"].to_numpy()
        rows.append(clean)
    n_cells = len(grid) // n_experts
    out = []
    for seed in range(n_seeds):
        offset = np.repeat(rng.normal(0.0, seed_noise, n_cells), n_experts)
        part = grid.copy()
        part["seed"] = seed
        for split, clean in zip(("id", "ood"), rows, strict=True):
            part[f"test_nmse_{split}"] = clean * np.exp(offset + rng.normal(0.0, noise, len(grid)))
        out.append(part)
    df = pd.concat(out, ignore_index=True)
    df["k"] = df["k"].astype(int)
    df["train_nmse"] = 0.5 * df["test_nmse_id"]
    df["target_var"] = 1.0
    for mse, nmse in (("train_mse", "train_nmse"), ("test_mse_id", "test_nmse_id"),
                      ("test_mse_ood", "test_nmse_ood")):
        df[mse] = df[nmse]
    df["diverged"] = False
    df["d_in"], df["n_skills"], df["holdout_frac"] = d_in, n_skills, holdout_frac
    if router is not None:
        df["router"] = router
    return df
