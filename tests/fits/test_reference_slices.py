"""Each shipped reference reproduces: one bundle of every reference store (the quickest), trained again
now exactly as the full grid formed it, gives the shipped rows bit for bit (their digests,
docs/reference/<name>/rows.sha256.csv). A whole bundle, not a hand-picked slice: a model's last bits can
depend on how many models share its batched matmuls, so only the grid's own bundles are comparable."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from fits.references import NOT_MADE_CLEAN, REFERENCES, Grid, registered_fits
from fits.snapshot import row_digests
from simulations import grid

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference"
GRIDS = {g.store: g for r in REFERENCES.values() for g in r.grids}
DIGESTS = {g.store: REFERENCE / name / "rows.sha256.csv" for name, (_, g) in registered_fits().items()
           if (REFERENCE / name / "rows.sha256.csv").is_file()}


def quickest_bundle(g: Grid, shipped: pd.DataFrame) -> grid.Bundle:
    """The store's bundle, as the grid forms it from the full preset, that took the least time when the
    reference was made (its rows' summed `wall_s`)."""
    config = g.config()
    wall = shipped.groupby("bundle_id")["wall_s"].sum()
    return min(grid.make_bundles(config, "cpu"), key=lambda b: wall.get(b.bundle_id, float("inf")))


def test_every_store_without_shipped_digests_is_one_the_registry_says_was_not_made_clean():
    for store in set(GRIDS) - set(DIGESTS):
        assert all(f.name in NOT_MADE_CLEAN for f, g in registered_fits().values() if g.store == store), store


@pytest.mark.slow
@pytest.mark.parametrize("store", sorted(DIGESTS))
def test_a_bundle_of_each_reference_store_gives_its_shipped_rows_bit_for_bit(store):
    shipped = pd.read_csv(DIGESTS[store])
    bundle = quickest_bundle(GRIDS[store], shipped)
    got = row_digests(grid.run_bundle(bundle))
    both = shipped.merge(got, on=["cell_id", "seed"], suffixes=("_shipped", ""))
    assert len(both) == len(got) == len(bundle.models) >= 1
    assert (both["bundle_id_shipped"] == bundle.bundle_id).all()
    assert (both["sha256"] == both["sha256_shipped"]).all(), both[both["sha256"] != both["sha256_shipped"]]
