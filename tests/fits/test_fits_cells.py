"""Per-cell optimal k: the smooth fit, the seed-cluster bootstrap, censoring and bad rows."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from fits.cells import cell_optimal_k, seed_resample_counts
from fits.curve import coefficient_a_for_minimum, fit_curves, loss_curve
from fits.synthetic import PlantedLaw, planted_results


def test_smooth_fit_recovers_a_noise_free_minimum():
    ks = np.array([1, 2, 3, 4, 6, 8, 12, 16.0])
    cases = [
        (1.7, 1.0, "linear"),
        (6.0, 0.5, "linear"),
        (12.0, 2.0, "linear"),
        (3.3, 0.5, "p2"),
        (8.5, 2.0, "p2"),
    ]
    for k_star, p, shape in cases:
        a = coefficient_a_for_minimum(k_star, 16, b=0.02, p=p, shape=shape)
        fine = np.geomspace(1, 16, 20001)
        curve = loss_curve(fine, 16, 0.1, a, 0.02, p, shape)
        assert fine[np.argmin(curve)] == pytest.approx(k_star, rel=1e-3)
        y = loss_curve(ks, 16, 0.1, a, 0.02, p, shape)[None, :]
        out = fit_curves(ks, 16, y, np.ones_like(y), shape=shape)
        assert out["k_star"][0] == pytest.approx(k_star, rel=0.01)
        assert out["r2"][0] > 0.999999 and not out["at_edge"][0]


def test_smooth_fit_flags_monotone_curves_and_too_few_points():
    ks = np.array([1, 2, 4, 8, 16.0])
    falling = (1.0 / ks)[None, :]
    out = fit_curves(ks, 16, falling, np.ones_like(falling))
    assert out["at_edge"][0] and out["k_star"][0] == pytest.approx(16.0)
    three = np.array([[0.3, 0.2, np.nan, np.nan, 0.25]])
    assert np.isnan(fit_curves(ks, 16, three, np.ones_like(three))["k_star"][0])


def test_cluster_resample_counts_are_whole_seeds():
    c = seed_resample_counts(5, 1000, np.random.default_rng(0))
    assert c.shape == (1000, 5) and (c.sum(axis=1) == 5).all()
    assert c.mean() == pytest.approx(1.0, abs=0.05)


def test_cells_table_on_planted_results():
    df = planted_results(n_seeds=4, run_noise=0.01, diverged_frac=0.05, rng_seed=3)
    cf = cell_optimal_k(df, "ood", n_boot=300, seed=1)
    c = cf.cells
    assert len(c) == 16 and cf.n_boot == 300
    assert c["n_diverged"].sum() == df["diverged"].sum()
    assert any("diverged row(s) excluded" in n for n in cf.notes)
    # argmin probabilities form a distribution per cell
    sums = cf.curves.groupby(["complexity", "n_train", "width"])["p_argmin"].sum()
    assert np.allclose(sums, 1.0)
    # the discrete CI holds tested k values and brackets k*; the continuous k* tracks the planted one
    for row in c.itertuples():
        lo, hi = row.k_star_ci
        assert lo in set(df["k"]) and hi in set(df["k"]) and lo <= hi
    truth = PlantedLaw().k_star(c["complexity"], c["n_train"], c["width"])
    inside = ~c["cont_at_edge"] & (c["censored"] == "")
    ratio = c.loc[inside, "k_star_cont"] / truth[inside]
    assert inside.sum() >= 10 and np.median(np.abs(np.log(ratio))) < 0.15
    # the same seed draw is used for every cell: rerunning gives identical numbers
    again = cell_optimal_k(df, "ood", n_boot=300, seed=1).cells
    pd.testing.assert_frame_equal(c, again)


def test_censoring_flags_k_at_the_grid_edges():
    df = planted_results(law=PlantedLaw(b0=-6.0), n_seeds=3, rng_seed=0)  # k* far below 1
    cf = cell_optimal_k(df, n_boot=50)
    assert (cf.cells["censored"] == "low").all() and (cf.cells["k_star"] == 1).all()
    df = planted_results(law=PlantedLaw(b0=3.0), n_seeds=3, run_noise=0.001, rng_seed=0)  # k* above T
    assert (cell_optimal_k(df, n_boot=0).cells["censored"] == "high").all()
    with pytest.raises(ValueError, match="beyond the shape's reach"):
        planted_results(law=PlantedLaw(b0=0.6), p=1.0, b=0.02, shape="p2")


def test_missing_cells_and_missing_seed_rows_are_tolerated():
    df = planted_results(n_seeds=3, rng_seed=2)
    df = df[~((df["complexity"] == 3) & (df["n_train"] == 1000))]  # two cells missing entirely
    df = df[~((df["complexity"] == 4) & (df["seed"] == 1) & (df["k"] > 4))]  # a seed missing some k
    cf = cell_optimal_k(df, n_boot=100)
    assert len(cf.cells) == 14
    row = cf.cells[(cf.cells["complexity"] == 4) & (cf.cells["n_train"] == 1000) & (cf.cells["width"] == 16)]
    assert row["n_seeds"].item() == 3 and np.isfinite(row["k_star_cont"].item())


def test_one_seed_gives_point_estimates_and_says_no_bootstrap():
    df = planted_results(n_seeds=1, rng_seed=4)
    cf = cell_optimal_k(df, n_boot=2000)
    assert cf.n_boot == 0 and any("one seed only" in n for n in cf.notes)
    assert cf.cells["k_star"].notna().all()
    assert all(np.isnan(lo) for lo, _ in cf.cells["k_star_ci"])


def test_all_rows_diverged_is_an_error():
    df = planted_results(n_seeds=2, diverged_frac=1.0)
    with pytest.raises(ValueError, match="no usable rows"):
        cell_optimal_k(df)


def _two_curves():
    """A V-shaped curve (s = 1) and one flat past its knee (s = 2), each with a per-seed offset shared
    by every k (as seeds share data and initial weights) and a small jitter that varies within a k."""
    ks, seeds = np.array([1, 2, 4, 8, 16]), np.arange(4)
    noise = np.array([0.03, -0.01, 0.02, -0.04])
    rows = []
    for shape, curve in (("v", [1.0, 0.5, 0.2, 0.5, 1.0]), ("flat", [1.0, 0.5, 0.3, 0.301, 0.299])):
        for s in seeds:
            for j, k in enumerate(ks):
                jitter = 0.02 * noise[(s + j) % 4]
                rows.append({"complexity": 1 if shape == "v" else 2, "n_train": 100, "width": 4,
                             "n_experts": 16, "k": k, "seed": s, "diverged": False,
                             "test_mse_ood": curve[j] + noise[s] + jitter})
    return pd.DataFrame(rows)


def test_flat_range_is_the_k_within_one_paired_standard_error_of_the_minimum():
    """A V-shaped curve pins the flat range to k* itself. On the flat curve the flat range is computed
    here by hand with the SE of the seed-paired difference to the argmin; the unpaired SE of the mean,
    inflated by the shared per-seed offset, would call a plateau from 4 to 16."""
    df = _two_curves()
    cf = cell_optimal_k(df, n_boot=0)
    v, flat = cf.cells.iloc[0], cf.cells.iloc[1]
    assert v.k_star == v.k_flat_low == v.k_flat_high == 4
    y = df[df["complexity"] == 2].pivot(index="seed", columns="k", values="test_mse_ood")
    best = y.mean().idxmin()
    d = y.sub(y[best], axis=0)
    paired_se = d.std(ddof=1) / np.sqrt(len(d))
    inside = y.columns[y.mean() <= y[best].mean() + paired_se]
    assert (flat.k_flat_low, flat.k_flat_high) == (inside.min(), inside.max())
    assert flat.k_one_se == inside.min()
    c = cf.curves[cf.curves["complexity"] == 2].set_index("k")
    np.testing.assert_allclose(c["se_paired"], paired_se.to_numpy(), rtol=1e-12, atol=1e-15)
    unpaired = y.columns[y.mean() <= y[best].mean() + c.loc[best, "se"]]
    assert (unpaired.min(), unpaired.max()) == (4, 16) and flat.k_flat_low > 4


def test_paired_se_matches_scipys_paired_t_test():
    """The paired SE is the one of scipy's paired t-test: t = mean difference / SE."""
    df = _two_curves()
    cf = cell_optimal_k(df, n_boot=0)
    y = df[df["complexity"] == 1].pivot(index="seed", columns="k", values="test_mse_ood")
    c = cf.curves[cf.curves["complexity"] == 1].set_index("k")
    for k in (1, 2, 8, 16):
        t = stats.ttest_rel(y[k], y[4]).statistic
        assert c.loc[k, "se_paired"] == pytest.approx((y[k] - y[4]).mean() / t, rel=1e-10)


def test_enough_estimands_by_hand():
    """k_enough is the smallest k within 5 % of the minimum seed mean (k_enough_2: 2 %), computed by
    hand, and every estimand's CI contains its point value."""
    df = _two_curves()
    cf = cell_optimal_k(df, n_boot=200)
    for s, cell in cf.cells.set_index("complexity").iterrows():
        means = df[df["complexity"] == s].groupby("k")["test_mse_ood"].mean()
        for name, tol in (("k_enough", 0.05), ("k_enough_2", 0.02)):
            assert cell[name] == means.index[means <= means.min() * (1 + tol)].min()
        for name in ("k_star", "k_enough", "k_enough_2", "k_one_se"):
            lo, hi = cell[f"{name}_ci"]
            assert lo <= cell[name] <= hi
            assert cf.boot[name].shape == (len(cf.cells), 200)
    # the flat curve: the minimum (k = 16) is 0.3 % below k = 4, so 4 is "enough" at 5 % and at 2 %
    flat = cf.cells.set_index("complexity").loc[2]
    assert [flat.k_star, flat.k_enough, flat.k_enough_2] == [16, 4, 4]
