"""Paired seed-level tests between arms, and the rows each arm's law leaves out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from fits.data import law_rows
from fits.paired_arms import paired_arm_tests


def _arm(offset: float, shape: list[float], n_seeds: int = 6, heldout: int = 3) -> pd.DataFrame:
    """One cell, ks 1..4, per-seed noise shared by every arm (the same seeds), plus `offset`."""
    rng = np.random.default_rng(0)
    seed_effect = rng.normal(0, 0.05, n_seeds)
    return pd.DataFrame([{"complexity": 2, "n_train": 100, "width": 4, "n_experts": 8, "k": k, "seed": s,
                          "diverged": False, "n_heldout_combos": heldout,
                          "test_mse_ood": shape[k - 1] + seed_effect[s] + offset + 0.01 * ((s * k) % 3)}
                         for s in range(n_seeds) for k in range(1, 5)])


def test_a_planted_shift_is_recovered_with_its_paired_interval():
    """Arm b is arm a plus 0.1 at a different best k; the paired test reads each at its own argmin, so
    the difference is the shift plus the gap between the two curves' minima, which the test gets
    exactly (the seed effect cancels in the pairing), with scipy's paired t interval."""
    a = _arm(0.0, [0.5, 0.3, 0.2, 0.25])
    b = _arm(0.1, [0.5, 0.3, 0.35, 0.25])
    out = paired_arm_tests({"a": a, "b": b}, "test_mse_ood", reference="a")
    (row,) = out.itertuples()
    assert (row.arm, row.reference, row.k_arm, row.k_reference, row.n_seeds) == ("b", "a", 4, 3, 6)
    d = b[b.k == 4]["test_mse_ood"].to_numpy() - a[a.k == 3]["test_mse_ood"].to_numpy()
    assert row.mean_diff == pytest.approx(d.mean())
    ci = stats.ttest_rel(b[b.k == 4]["test_mse_ood"], a[a.k == 3]["test_mse_ood"]).confidence_interval()
    assert (row.ci_low, row.ci_high) == pytest.approx((ci.low, ci.high))
    assert row.p_t < 1e-3 and row.ci_low > 0


def test_an_identical_arm_has_no_difference_and_no_test():
    a = _arm(0.0, [0.5, 0.3, 0.2, 0.25])
    out = paired_arm_tests({"a": a, "b": a.copy()}, "test_mse_ood", reference="a")
    assert out["mean_diff"].iloc[0] == 0 and np.isnan(out["p_t"].iloc[0])


def test_ood_fits_leave_out_cells_without_heldout_combinations():
    rows = pd.concat([_arm(0, [1, 1, 1, 1], heldout=0).assign(complexity=1), _arm(0, [1, 1, 1, 1])])
    kept, notes = law_rows(rows, "test_mse_ood")
    assert set(kept["complexity"]) == {2} and "complexity 1" in notes[0]
    kept, notes = law_rows(rows, "test_mse_id")
    assert len(kept) == len(rows) and notes == []


@pytest.mark.parametrize("renormalize, gate, frozen", [
    ("always", "softmax", True), ("always", "sigmoid", True), ("always", "uniform", False),
    ("k>1", "softmax", False)])
def test_k1_rows_of_a_router_without_gradient_are_left_out(renormalize, gate, frozen):
    rows = _arm(0, [1, 1, 1, 1]).assign(router="learned", experts="learned", gate=gate,
                                        renormalize=renormalize)
    sup = rows.assign(router="supervised")  # its cross-entropy trains it at k = 1 too
    kept, notes = law_rows(pd.concat([rows, sup]), "test_mse_id")
    dropped = len(rows) + len(sup) - len(kept)
    assert dropped == (6 if frozen else 0) and bool(notes) == frozen
    assert (kept[(kept.router == "learned")]["k"] == 1).any() != frozen
