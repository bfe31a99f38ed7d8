"""Fixed active compute (`width_rule: active`): a width value is the active width k h, each cell's
experts get width / k; old ids stay at the default; the fits read the active width as the cell's h."""

from __future__ import annotations

import pytest
from grid_fixtures import TINY

from fits.cells import cell_optimal_k
from fits.data import check_results
from simulations import grid, results
from simulations.config_schema import ConfigError
from simulations.families.regression.config import validate

ACTIVE = {**TINY, "k": [1, 2, 4], "width": [8], "width_rule": "active", "complexity": [1],
          "n_train": [32], "max_steps": 10}


def test_the_default_rule_keeps_every_id():
    plain = validate(dict(TINY))
    explicit = validate({**TINY, "width_rule": "expert"})
    assert [c["cell_id"] for c in grid.cells(plain)] == [c["cell_id"] for c in grid.cells(explicit)]
    assert plain.config_hash() == explicit.config_hash()
    assert all("active_width" not in c for c in grid.cells(plain))


def test_active_cells_hold_k_h_fixed_and_bundles_split_by_expert_width():
    cfg = validate(ACTIVE)
    cells = grid.cells(cfg)
    assert sorted((c["k"], c["width"], c["active_width"]) for c in cells) == [(1, 8, 8), (2, 4, 8), (4, 2, 8)]
    # ids differ from the per-expert-width grid's, where width 8 means 8 per expert
    per_expert = {c["cell_id"] for c in grid.cells(validate({**ACTIVE, "width_rule": "expert"}))}
    assert not per_expert & {c["cell_id"] for c in cells}
    for bundle in grid.make_bundles(cfg, "cpu"):
        assert len({m.cell["width"] for m in bundle.models}) == 1


@pytest.mark.parametrize("bad, match", [
    ({"width": [6]}, "6 is not a multiple of 4"),
    ({"width_rule": "total"}, "width_rule: expected one of expert, active")])
def test_bad_active_widths_are_one_line_errors(bad, match):
    with pytest.raises(ConfigError, match=match) as err:
        validate({**ACTIVE, **bad})
    assert "\n" not in str(err.value)


def test_the_grid_trains_them_and_the_fits_read_the_active_width(tmp_path):
    grid.run_grid(validate(ACTIVE), tmp_path, progress=False)
    rows = results.load(tmp_path)
    assert sorted(zip(rows["k"], rows["width"], rows["active_width"], strict=True))[:3] == \
        [(1, 8, 8), (1, 8, 8), (2, 4, 8)]
    checked = check_results(rows)
    assert set(checked["width"]) == {8} and sorted(set(checked["expert_width"])) == [2, 4, 8]
    cf = cell_optimal_k(checked, n_boot=0)
    assert len(cf.cells) == 1 and cf.cells["n_k"].iloc[0] == 3  # one cell spanning k at fixed k h
