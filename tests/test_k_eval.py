"""Inference-time k: every trained model evaluated at each k_eval = 1..T, stored as a long table beside
the bundle files, consistent with the rows at k_eval = k_train, and resumable with them."""

from __future__ import annotations

import numpy as np
import pytest
from test_routing import ARMS

from simulations import grid, results
from simulations.config import validate


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    out = tmp_path_factory.mktemp("keval")
    grid.run_grid(validate({**ARMS, "experts": ["learned"]}), out, progress=False)
    return out


def test_one_row_per_cell_seed_and_k_eval(store):
    rows, long = results.load(store), results.load_k_eval(store)
    assert len(results.bundle_files(store)) == len(list(store.glob(results.K_EVAL_GLOB)))
    assert len(long) == len(rows) * 8 and not long.duplicated(["cell_id", "seed", "k_eval"]).any()
    assert set(long["k_eval"]) == set(range(1, 9))
    assert "k_eval_mse_id" not in rows.columns  # the arrays live in the long table only


def test_k_eval_at_the_training_k_is_the_stored_test_error(store):
    long = results.load_k_eval(store)
    same = long[(long.k_eval == long.k) & (long.router != "dense")]
    assert len(same) == len(results.load(store).query("router != 'dense'"))
    rows = results.load(store).set_index(["cell_id", "seed"])
    stored = rows.loc[list(zip(same.cell_id, same.seed, strict=True))]
    np.testing.assert_allclose(same["test_mse_id"], stored["test_mse_id"], rtol=1e-6)
    np.testing.assert_allclose(same["test_mse_ood"], stored["test_mse_ood"], rtol=1e-6)
    assert long.loc[long.router == "dense", "test_mse_id"].isna().all()


def test_oracle_at_k_eval_past_s_times_r_is_flat(store):
    """The oracle leaves slots past s * r unused, so every k_eval >= s * r gives the same predictions."""
    long = results.load_k_eval(store)
    oracle = long[long.router == "oracle"]
    r = 8 // 4
    for (_, _), g in oracle.groupby(["cell_id", "seed"]):
        tail = g[g.k_eval >= g.complexity * r]["test_mse_id"].to_numpy()
        assert np.ptp(tail) == 0.0


def test_overwrite_removes_the_k_eval_files_too(store, tmp_path):
    cfg = validate({**ARMS, "experts": ["learned"], "router": ["learned"], "complexity": [1], "k": [1]})
    grid.run_grid(cfg, tmp_path, progress=False)
    assert list(tmp_path.glob(results.K_EVAL_GLOB))
    cfg2 = validate({**ARMS, "experts": ["learned"], "router": ["oracle"], "complexity": [1], "k": [1]})
    grid.run_grid(cfg2, tmp_path, overwrite=True, progress=False)
    long = results.load_k_eval(tmp_path)
    assert set(long["router"]) == {"oracle"}
