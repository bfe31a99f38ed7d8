"""The routing-gain share (fits.routing_gain): the oracle's best row has share 1, a row at the route-free
baseline 0, OOD shares use the OOD baseline, oracle rows of another seed or cell are never used, and a
store without oracle rows gives NaN."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fits.routing_gain import best_share_summary, routing_gain_table


def _rows() -> pd.DataFrame:
    """Two seeds of one cell: the oracle at k = 1, 2, 3 and the learned router at k = 1, 2."""
    recs = []
    for seed in (0, 1):
        shift = 0.1 * seed
        for k, (e_id, e_ood) in zip((1, 2, 3), ((0.5, 0.7), (0.2, 0.4), (0.3, 0.45)), strict=True):
            recs.append(dict(router="oracle", k=k, seed=seed, test_nmse_id=e_id + shift,
                             test_nmse_ood=e_ood + shift))
        for k, (e_id, e_ood) in zip((1, 2), ((0.8, 0.9), (0.5, 1.0)), strict=True):
            recs.append(dict(router="learned", k=k, seed=seed, test_nmse_id=e_id + shift,
                             test_nmse_ood=e_ood + shift))
    df = pd.DataFrame(recs).assign(experts="learned", complexity=2, n_train=100, width=4, n_experts=8,
                                   n_skills=8, diverged=False)
    df["route_free_nmse"] = 0.8 + 0.1 * df["seed"]
    df["route_free_nmse_ood"] = 1.0 + 0.1 * df["seed"]
    return df


def _share(table, router, seed, k, split):
    t = table[(table.router == router) & (table.seed == seed) & (table.k == k) & (table.split == split)]
    (value,) = t["share"]
    return value


def test_the_oracles_best_is_1_and_the_route_free_mix_is_0():
    table = routing_gain_table(_rows())
    assert len(table) == 2 * len(_rows())
    for seed in (0, 1):
        assert _share(table, "oracle", seed, 2, "id") == pytest.approx(1.0)
        assert _share(table, "oracle", seed, 2, "ood") == pytest.approx(1.0)
        # the learned router at k = 1 is exactly the ID route-free baseline: share 0
        assert _share(table, "learned", seed, 1, "id") == pytest.approx(0.0, abs=1e-12)
        # k = 2: ID halfway from the baseline (0.8 + d) to the oracle's best (0.2 + d)
        assert _share(table, "learned", seed, 2, "id") == pytest.approx(0.5)


def test_ood_shares_use_the_ood_baseline():
    table = routing_gain_table(_rows())
    # OOD baseline 1.0, oracle's best 0.4: 0.9 -> 1/6, 1.0 -> 0 (the ID baseline 0.8 would give < 0)
    assert _share(table, "learned", 0, 1, "ood") == pytest.approx(0.1 / 0.6)
    assert _share(table, "learned", 0, 2, "ood") == pytest.approx(0.0, abs=1e-12)
    ood = table[table.split == "ood"]
    np.testing.assert_allclose(ood["baseline"], _rows()["route_free_nmse_ood"].to_numpy())


def test_oracle_rows_of_another_cell_are_not_used_and_no_oracle_is_nan():
    rows = _rows()
    other = rows.assign(n_train=200)
    other = other[other.router == "learned"]
    table = routing_gain_table(pd.concat([rows, other], ignore_index=True))
    assert table.loc[table.n_train == 200, "share"].isna().all()
    assert table.loc[table.n_train == 100, "share"].notna().all()
    none = routing_gain_table(rows[rows.router == "learned"])
    assert none["share"].isna().all() and none["oracle_best"].isna().all()


def test_missing_ood_baseline_and_diverged_rows_are_nan():
    rows = _rows().drop(columns="route_free_nmse_ood")
    rows.loc[(rows.router == "learned") & (rows.k == 2), "diverged"] = True
    table = routing_gain_table(rows)
    assert table.loc[table.split == "ood", "share"].isna().all()
    assert table.loc[(table.router == "learned") & (table.k == 2), "share"].isna().all()
    assert table.loc[(table.split == "id") & (table.router == "oracle"), "share"].notna().all()


def test_best_share_summary_takes_each_cells_best_k():
    summary = best_share_summary(routing_gain_table(_rows())).set_index(["arm", "split"])
    assert summary.loc[("oracle", "id"), "best_share"] == pytest.approx(1.0)
    assert summary.loc[("learned", "id"), "best_share"] == pytest.approx(0.5)
    assert (summary["n_cells"] == 1).all()
