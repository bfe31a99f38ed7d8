"""The Chinchilla-style surface fitter: Epoch AI's refit on the real extracted points, and recovery of
planted surfaces."""

import itertools

import numpy as np
import pandas as pd
import pytest

from fits.surface import (
    CHINCHILLA_MODEL,
    EPOCH_REFIT,
    chinchilla_points,
    fit_chinchilla,
    fit_moe_loss,
    fit_surface,
    load_chinchilla,
)


@pytest.fixture(scope="module")
def chinchilla():
    return load_chinchilla()  # the copy shipped as package data of `fits`


def test_load_drops_the_five_highest_losses(chinchilla):
    raw = chinchilla_points()
    assert len(raw) == 245 and len(chinchilla) == 240
    assert chinchilla["L"].max() < raw["loss"].nlargest(5).min()
    row = raw.loc[raw["loss"].idxmin()]
    best = chinchilla.iloc[0]
    assert best["D"] == pytest.approx(row["Training FLOP"] / (6 * row["Model Size"]))


def test_load_reads_an_explicit_csv_like_the_packaged_copy(chinchilla, tmp_path):
    path = tmp_path / "points.csv"
    chinchilla_points().to_csv(path, index=False)
    pd.testing.assert_frame_equal(load_chinchilla(path), chinchilla)
    chinchilla_points().drop(columns="loss").to_csv(path, index=False)
    with pytest.raises(ValueError, match="lacks column"):
        load_chinchilla(path)


@pytest.mark.slow
def test_chinchilla_reproduces_the_epoch_refit(chinchilla):
    fit = fit_chinchilla(chinchilla["N"], chinchilla["D"], chinchilla["L"], n_starts=16, n_boot=150, seed=0)
    assert set(fit.params) == set(EPOCH_REFIT) and set(fit.ci) == set(EPOCH_REFIT)
    for name, epoch in EPOCH_REFIT.items():
        lo, hi = fit.ci[name]
        assert lo <= epoch <= hi, (name, epoch, fit.ci[name])
        assert lo <= fit.params[name] <= hi
    assert fit.params["E"] == pytest.approx(1.82, abs=0.02)
    assert fit.params["alpha"] == pytest.approx(0.348, abs=0.01)
    assert fit.params["beta"] == pytest.approx(0.366, abs=0.01)
    assert fit.params["A"] == pytest.approx(482, rel=0.1) and fit.params["B"] == pytest.approx(2085, rel=0.1)
    conv = fit.convergence
    assert conv["n_starts"] == 16 and conv["n_at_best"] >= 3 and conv["grad_norm"] < 1e-2
    assert conv["boot_success_frac"] > 0.9 and len(fit.boot) == 150
    assert fit.starts["at_best"].sum() == conv["n_at_best"]


@pytest.mark.slow
def test_fit_surface_recovers_a_planted_chinchilla_surface():
    rng = np.random.default_rng(0)
    N = np.exp(rng.uniform(np.log(1e7), np.log(1e10), 150))
    D = np.exp(rng.uniform(np.log(1e9), np.log(1e12), 150))
    truth = {"E": 1.7, "A": 400.0, "B": 1500.0, "alpha": 0.34, "beta": 0.28}
    L = truth["E"] + truth["A"] / N ** truth["alpha"] + truth["B"] / D ** truth["beta"]
    L = L * np.exp(rng.normal(0, 0.005, len(L)))
    X = np.column_stack([np.log(N), np.log(D)])
    fit = fit_surface(CHINCHILLA_MODEL, X, L, n_starts=12, n_boot=60, seed=1)
    for name, value in truth.items():
        lo, hi = fit.ci[name]
        assert lo <= value <= hi, (name, value, fit.ci[name])
    assert fit.params["alpha"] == pytest.approx(0.34, abs=0.03)
    assert fit.params["E"] == pytest.approx(1.7, abs=0.05)


@pytest.mark.slow
def test_moe_surface_recovers_the_implied_law_of_k():
    e, a, gamma, alpha, b, beta, mu, nu = -2.5, -1.0, 1.2, 1.0, -1.5, 0.8, 0.3, -0.2
    rows = []
    for k, s, m, h in itertools.product(
        [1, 2, 3, 4, 6, 8, 12, 16], [2, 3, 4, 6], [500, 2000, 8000], [16, 64]
    ):
        L = np.exp(e) + np.exp(a) * s**gamma / k**alpha + np.exp(b) * k**beta * h**nu / m**mu
        rows.append({"k": k, "complexity": s, "n_train": m, "width": h, "mean": L})
    curves = pd.DataFrame(rows)
    curves["mean"] *= np.exp(np.random.default_rng(2).normal(0, 0.002, len(curves)))
    fit = fit_moe_loss(curves, n_starts=8, n_boot=20)
    p = fit.params
    assert p["k_exp_complexity"] == pytest.approx(gamma / (alpha + beta), abs=0.05)
    assert p["k_exp_n_train"] == pytest.approx(mu / (alpha + beta), abs=0.05)
    assert p["k_exp_width"] == pytest.approx(-nu / (alpha + beta), abs=0.05)
    assert fit.convergence["n_at_best"] >= 1


def test_bad_points_are_refused():
    with pytest.raises(ValueError, match="y > 0"):
        fit_surface(CHINCHILLA_MODEL, np.ones((3, 2)), np.array([1.0, -1.0, 2.0]), n_boot=0)
    with pytest.raises(ValueError, match="as many points"):
        fit_surface(CHINCHILLA_MODEL, np.ones((3, 2)), np.ones(4), n_boot=0)
