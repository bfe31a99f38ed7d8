"""Each shipped reference reproduces: a small slice of every reference store (fits.references' `slice`:
every seed of a few cells), rerun now, gives the shipped cell means (docs/reference/<name>/means.csv) bit
for bit. Rows do not depend on the bundle a model trains in, so a slice is the full grid's part."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fits.references import NOT_MADE_CLEAN, REFERENCES, Grid, registered_fits
from fits.snapshot import cell_means
from simulations import grid, results
from simulations.families import get_family

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference"
GRIDS = {g.store: g for r in REFERENCES.values() for g in r.grids}
MEANS = {g.store: REFERENCE / name / "means.csv" for name, (_, g) in registered_fits().items()
         if (REFERENCE / name / "means.csv").is_file()}


def rerun_slice(g: Grid, out: Path) -> pd.DataFrame:
    fam = get_family(g.family)
    args = grid.build_parser(fam).parse_args([*g.args, *g.slice, "--workers", "1"])
    grid.run_grid(grid.config_from_args(args, fam), out, progress=False)
    return cell_means(results.load(out)).set_index("cell_id")


def test_every_store_without_shipped_means_is_one_the_registry_says_was_not_made_clean():
    for store in set(GRIDS) - set(MEANS):
        assert all(f.name in NOT_MADE_CLEAN for f, g in registered_fits().values() if g.store == store), store


@pytest.mark.slow
@pytest.mark.parametrize("store", sorted(MEANS))
def test_a_slice_of_each_reference_store_gives_its_shipped_cell_means_bit_for_bit(store, tmp_path):
    got = rerun_slice(GRIDS[store], tmp_path / store)
    shipped = pd.read_csv(MEANS[store]).set_index("cell_id")
    assert len(got) >= 1 and set(got.index) <= set(shipped.index)
    assert list(got.columns) == list(shipped.columns)
    for col in got.columns:
        a, b = got[col].to_numpy(), shipped.loc[got.index, col].to_numpy()
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), (store, col, a, b)
