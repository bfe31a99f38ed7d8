"""The contextual task against its definition (docs/tasks.md, "The contextual task"), its config settings,
and the grid running every arm on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from grid_fixtures import ARMS

from simulations.config import load_config
from simulations.config_schema import ConfigError
from simulations.families.regression import family
from simulations.families.regression.config import validate
from simulations.families.regression.contextual import ContextualTask
from simulations.families.regression.task_registry import make_task
from simulations.families.regression.tasks import CompositionalTask, TaskSpec
from simulations.grid import cells, make_bundles, run_bundle

ROOT = Path(__file__).resolve().parents[4]


def spec(task: str = "contextual", s: int = 2, S: int = 6, d_context: int = 8, **kw) -> TaskSpec:
    return TaskSpec(n_skills=S, complexity=s, d_in=4, teacher_width=8, seed=kw.pop("seed", 1), n_ref=20_000,
                    task=task, d_context=d_context, **kw)


def test_make_task_picks_the_class_and_a_class_refuses_the_other_spec():
    assert type(make_task(spec())) is ContextualTask
    assert type(make_task(spec("compositional"))) is CompositionalTask
    with pytest.raises(ValueError, match="make_task"):
        CompositionalTask(spec())
    with pytest.raises(ValueError, match=r"^task: expected one of compositional, contextual; got 'bogus'$"):
        spec("bogus")


def test_points_are_x_then_c_and_the_skills_are_the_compositional_tasks():
    t, comp = make_task(spec()), make_task(spec("compositional"))
    u, y = t.sample("train", 500)
    assert u.shape == (500, 12) and y.shape == (500,) and t.input_width == 12
    assert t.U.shape == (8, 6) and comp.U.shape == (4, 6)
    np.testing.assert_allclose(t.U.T @ t.U, np.eye(6), atol=1e-12)  # S <= d_context: orthonormal
    for name in ("W", "b", "v", "mu", "sd"):
        assert np.array_equal(getattr(t, name), getattr(comp, name))
    assert np.array_equal(t.skills(u), comp.skills(u[:, :4]))
    wide = make_task(spec(S=6, d_context=3))  # S > d_context: unit columns
    np.testing.assert_allclose(np.linalg.norm(wide.U, axis=0), 1.0)


def test_the_context_alone_chooses_the_active_set():
    t = make_task(spec(s=3))
    u = np.random.default_rng(0).standard_normal((2000, 12))
    other_x = u.copy()
    other_x[:, :4] = np.random.default_rng(1).standard_normal((2000, 4))
    assert np.array_equal(t.active_sets(u), t.active_sets(other_x))
    assert np.array_equal(t.scores(u), u[:, 4:] @ t.U)
    other_c = u.copy()
    other_c[:, 4:] = np.random.default_rng(2).standard_normal((2000, 8))
    assert (t.codes(u) != t.codes(other_c)).mean() > 0.5


def test_target_is_normalised_and_the_route_free_baseline_runs():
    t = make_task(spec(s=2, noise=0.0))
    u, y = t.sample("test_id", 20_000)
    assert abs(y.mean()) < 0.05 and abs(y.var() - 1) < 0.08  # ID points: conditioned on A(u) not in H_s
    assert 0.3 < t.route_free_nmse < 1.0


def test_ood_shifts_the_context_only():
    """Held-out combinations only in OOD; the OOD inputs x are N(0, I) like the ID ones, while the
    contexts are shifted (their active sets are the held-out ones)."""
    t = make_task(spec(s=2))
    assert len(t.heldout) == round(0.25 * 15)
    x_id, x_ood = t.sample("test_id", 4000)[0], t.sample("test_ood", 4000)[0]
    assert not t.is_heldout(t.sample("train", 4000)[0]).any() and not t.is_heldout(x_id).any()
    assert t.is_heldout(x_ood).all()
    for u in (x_id, x_ood):
        x = u[:, :4]
        np.testing.assert_allclose(x.mean(0), 0, atol=0.06)
        np.testing.assert_allclose(np.cov(x.T), np.eye(4), atol=0.08)
    # the contexts do move: their mean projection on the held-out skills' directions grows
    held = sorted({j for c in t.heldout for j in c})
    z_id, z_ood = t.scores(x_id)[:, held], t.scores(x_ood)[:, held]
    assert np.abs(z_ood.mean(0) - z_id.mean(0)).max() > 0.2


def test_streams_are_seeded_prefixes_and_the_compositional_task_ignores_d_context():
    a, b = make_task(spec(seed=3)), make_task(spec(seed=3))
    small, big = a.sample("train", 100), b.sample("train", 3000)
    assert np.array_equal(small[0], big[0][:100]) and np.array_equal(small[1], big[1][:100])
    plain = make_task(spec("compositional", seed=3))
    other = make_task(spec("compositional", seed=3, d_context=3))
    assert np.array_equal(plain.sample("val", 50)[0], other.sample("val", 50)[0])


def test_config_settings_validate_and_hash_only_off_their_default():
    base = validate({})
    assert (base.task.task, base.task.d_context) == ("compositional", 8)
    with pytest.raises(ConfigError, match=r"^task: expected one of compositional, contextual; got 'bogus'$"):
        validate({"task": "bogus"})
    with pytest.raises(ConfigError, match=r"^d_context: "):
        validate({"d_context": 0})
    assert validate({"task.task": "contextual"}) == validate({"task": "contextual"})
    nested = validate({"task": {"task": "contextual", "noise": 0.2}})
    assert (nested.task.task, nested.task.noise) == ("contextual", 0.2)
    ids = {c["cell_id"] for c in cells(base)}
    assert ids == {c["cell_id"] for c in cells(validate({"d_context": 8}))}
    assert not ids & {c["cell_id"] for c in cells(validate({"task": "contextual"}))}


def test_every_arm_trains_on_the_contextual_task():
    """The grid's arms end to end: rows for every arm, finite errors, routing measures for those that
    route; the time estimate runs on the contextual bundles."""
    cfg = validate({**ARMS, "task": "contextual", "d_context": 3, "max_steps": 10,
                    "router": ["learned", "oracle", "dense", "supervised"]})
    bundles = make_bundles(cfg, "cpu")
    rows = pd.concat([run_bundle(b) for b in bundles], ignore_index=True)
    assert len(rows) == len(cells(cfg)) and set(rows.task) == {"contextual"}
    assert set(rows.router) == {"learned", "oracle", "dense", "supervised"}
    assert np.isfinite(rows[["test_nmse_id", "test_nmse_ood", "route_free_nmse"]].to_numpy()).all()
    routed = rows[rows.router != "dense"]
    assert routed.routing_recall.notna().all() and rows[rows.router == "dense"].routing_recall.isna().all()
    assert family.estimate_seconds(bundles, n_steps=2) > 0


@pytest.mark.slow
def test_the_contextual_oracle_generalises_to_held_out_combinations(one_thread):
    """The issue's criterion at the composition preset's task and student (configs/composition.yaml: S = 8,
    d = d_c = 8, T = 16, h = 4, m = 2000, its training settings), oracle router with learned experts,
    3 seeds: the best seed-mean OOD NMSE over k is within 1.2x the best ID NMSE at every s (measured
    1.00, 1.17, 1.13 at s = 1, 2, 4; single seeds reach 1.24, docs/tasks.md). The oracle's curve is flat
    from k = s r = 2s on, so k in {2, 4, 8} holds every s's minimum."""
    cfg = validate({**load_config(ROOT / "configs/composition.yaml").to_dict(), "k": [2, 4, 8],
                    "router": ["oracle"], "experts": ["learned"], "workers": 1, "device": "cpu"})
    rows = pd.concat([run_bundle(b) for b in make_bundles(cfg, "cpu")])
    means = rows.groupby(["complexity", "k"])[["test_nmse_id", "test_nmse_ood"]].mean()
    best = means.groupby("complexity").min()
    ratio = best.test_nmse_ood / best.test_nmse_id
    assert list(ratio.index) == [1, 2, 4] and (ratio <= 1.2).all(), ratio.to_dict()
