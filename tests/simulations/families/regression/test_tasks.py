"""The compositional task against its definition (docs/tasks.md), checked by Monte-Carlo."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulations.families.regression import tasks
from simulations.families.regression.tasks import CompositionalTask, TaskSpec


def task(s: int = 2, seed: int = 0, **kw) -> CompositionalTask:
    return CompositionalTask(TaskSpec(n_skills=kw.pop("S", 6), complexity=s, d_in=kw.pop("d", 6),
                                      teacher_width=8, seed=seed, n_ref=20_000, **kw))


def test_skills_are_standardised_and_target_has_unit_variance():
    t = task(s=3, noise=0.0)
    x = np.random.default_rng(123).standard_normal((40_000, 6))
    g = t.skills(x)
    np.testing.assert_allclose(g.mean(0), 0, atol=0.03)
    np.testing.assert_allclose(g.var(0), 1, atol=0.05)
    y = t.clean_target(x)
    assert abs(y.mean()) < 0.03 and abs(y.var() - 1) < 0.05


@pytest.mark.parametrize("s", [1, 2, 3])
def test_active_set_is_top_s_and_uniform_when_S_le_d(s):
    t = task(s=s)
    x = np.random.default_rng(1).standard_normal((30_000, 6))
    a = t.active_sets(x)
    z = x @ t.U
    assert a.shape == (30_000, s)
    thresh = np.sort(z, axis=1)[:, -s]
    assert np.all(np.take_along_axis(z, a, 1) >= thresh[:, None])
    np.testing.assert_allclose(t.U.T @ t.U, np.eye(6), atol=1e-12)
    counts = np.unique(t.codes(x), return_counts=True)[1]
    assert len(counts) == math.comb(6, s)
    expected = 30_000 / math.comb(6, s)
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))


def test_target_is_the_normalised_sum_of_active_skills():
    t = task(s=2, noise=0.0)
    x = np.random.default_rng(2).standard_normal((5, 6))
    g, a = t.skills(x), t.active_sets(x)
    manual = (np.array([g[i, a[i]].sum() for i in range(5)]) - t.mean_G) / t.sd_G
    np.testing.assert_allclose(t.clean_target(x), manual)


def test_heldout_split_is_disjoint_and_covers_every_skill():
    t = task(s=2, holdout_frac=0.4)
    assert len(t.heldout) == round(0.4 * math.comb(6, 2))
    train_combos = {c for c in __import__("itertools").combinations(range(6), 2)} - set(t.heldout)
    assert {j for c in train_combos for j in c} == set(range(6))
    x_tr, _ = t.sample("train", 2000)
    x_ood, _ = t.sample("test_ood", 500)
    x_id, _ = t.sample("test_id", 500)
    assert not t.is_heldout(x_tr).any() and not t.is_heldout(x_id).any()
    assert t.is_heldout(x_ood).all()


@pytest.mark.parametrize("s", [1, 6])
def test_no_holdout_possible_at_extremes(s):
    assert task(s=s).heldout == ()


def test_noise_level_matches_sigma():
    t = task(s=2, noise=0.5)
    x, y = t.sample("test_id", 20_000)
    resid = y - t.clean_target(x)
    assert abs(resid.std() - 0.5) < 0.02
    assert t.target_var == pytest.approx(1.25)


def test_seeded_prefixes_and_independence():
    t1, t2 = task(seed=3), task(seed=3)
    x_small, y_small = t1.sample("train", 100)
    x_big, y_big = t2.sample("train", 5000)
    np.testing.assert_array_equal(x_small, x_big[:100])
    np.testing.assert_array_equal(y_small, y_big[:100])
    assert not np.array_equal(task(seed=4).sample("train", 10)[0], x_small[:10])
    assert not np.array_equal(t1.sample("val", 10)[0], x_small[:10])
    # skills depend on (seed, S, d, w) only: shared across complexities
    np.testing.assert_array_equal(task(s=1, seed=3).W, task(s=3, seed=3).W)


def test_invalid_spec_rejected():
    with pytest.raises(ValueError, match="complexity"):
        TaskSpec(n_skills=3, complexity=4, d_in=2)


def test_cached_reference_and_samples_equal_fresh_computation():
    tasks.clear_caches()
    t2, t4 = task(s=2), task(s=4)  # the second reuses the first's reference sample
    spec = t4.spec
    x_ref = tasks._rng(spec.seed, 5, spec.n_skills, spec.d_in, spec.teacher_width).standard_normal(
        (spec.n_ref, spec.d_in))
    raw = t4._raw_skills(x_ref)
    assert np.array_equal(t4.mu, raw.mean(0)) and np.array_equal(t4.sd, raw.std(0))
    g = t4._composed(x_ref)
    assert float(g.mean()) == t4.mean_G and float(g.std()) == t4.sd_G
    x, y = tasks.sample_cached(t2, "val", 50)
    assert np.array_equal(x, t2.sample("val", 50)[0]) and np.array_equal(y, t2.sample("val", 50)[1])
    assert np.shares_memory(tasks.sample_cached(t2, "val", 50)[0], x) and not x.flags.writeable


def test_a_kept_draw_serves_shorter_requests_with_the_same_arrays():
    """A split drawn once serves every request it covers (its first n points, and only what it holds);
    a longer or richer request draws again; every answer equals a fresh draw of that size."""
    tasks.clear_caches()
    t = task(s=2)
    x, y, g = tasks.sample_cached(t, "test_ood", 300, skills=True)
    fresh = t.sample("test_ood", 300, skills=True)
    assert all(np.array_equal(a, b) for a, b in zip((x, y, g), fresh, strict=True))
    assert np.array_equal(g, t.skills(x))
    short = tasks.sample_cached(t, "test_ood", 40)
    assert len(short) == 2 and np.shares_memory(short[0], x)
    assert all(np.array_equal(a, b) for a, b in zip(short, t.sample("test_ood", 40), strict=True))
    longer = tasks.sample_cached(t, "test_ood", 500)
    assert not np.shares_memory(longer[0], x) and np.array_equal(longer[0][:300], x)
    assert len(tasks.sample_cached(t, "test_ood", 100, skills=True)) == 3  # redrawn: the 500 had none
