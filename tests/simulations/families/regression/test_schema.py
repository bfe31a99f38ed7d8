"""The regression row record (simulations.families.regression.schema) is derived, not listed: its columns
are the grid config's cell settings, the family's and the trainer's records; here they are held against
the rows the grid writes now, against the shipped reference stores, and against the trainer's frame."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from grid_fixtures import TINY

from simulations import grid, results
from simulations.config_schema import cell_fields, settings
from simulations.families.regression.config import GridConfig, validate
from simulations.families.regression.schema import (
    CELL_COLUMNS,
    SCHEMA,
    TRAINER_LISTS,
    trainer_keys,
)
from simulations.families.regression.tasks import CompositionalTask, TaskSpec
from simulations.families.regression.train import TrainSettings, init_model, make_bundle_data, train_bundle

ROOT = Path(__file__).resolve().parents[4]
RECORD = {c.name for c in SCHEMA.columns}
OPTIONAL = RECORD - set(SCHEMA.required_columns)


def _regression_stores() -> list[Path]:
    """The shipped regression stores under results/ (none where the reference stores are absent)."""
    stores = []
    for manifest in sorted((ROOT / "results").glob("*/manifest.json")):
        family = json.loads(manifest.read_text()).get("family", "regression")
        if family == "regression" and next(manifest.parent.glob(results.BUNDLE_GLOB), None):
            stores.append(manifest.parent)
    return stores


STORES = _regression_stores()


def test_the_record_is_every_hashed_setting_of_the_config_and_nothing_else_of_it():
    hashed = {name for name, (sec, _) in settings(GridConfig).items() if sec.metadata["hashed"]}
    cell = {c.name for c in CELL_COLUMNS}
    assert cell == {"cell_id", "active_width", "seed", *(hashed - {"seeds"})}
    assert set(cell_fields(GridConfig)) <= set(SCHEMA.other_cell_fields)
    runtime = {name for name, (sec, _) in settings(GridConfig).items() if not sec.metadata["hashed"]}
    assert not runtime & RECORD - {"device"}  # the row's `device` is its provenance, not the setting


def test_a_setting_is_optional_exactly_when_older_stores_lack_it():
    for name, (sec, f) in settings(GridConfig).items():
        if sec.metadata["hashed"] and name != "seeds":
            assert (name in SCHEMA.required_columns) == ("since" not in f.metadata), name


def test_the_record_is_the_columns_of_the_rows_the_grid_writes():
    """One bundle of a tiny grid whose cells have every column (width_rule active adds active_width):
    its rows, less the list columns the store moves to tables of their own, are exactly the record."""
    config = validate({**TINY, "width_rule": "active", "seeds": [0], "complexity": [2], "n_train": [32]})
    rows = grid.run_bundle(grid.make_bundles(config, "cpu")[0])
    assert set(rows.columns) - set(TRAINER_LISTS) == RECORD
    SCHEMA.check(rows, "rows")


@pytest.mark.skipif(not STORES, reason="the reference stores (results/) are absent")
@pytest.mark.parametrize("store", STORES, ids=[s.name for s in STORES])
def test_every_shipped_store_has_the_records_columns(store):
    """A shipped store's columns are the record's, less only optional ones (active_width, on grids with
    width_rule active only)."""
    stored = set(pq.read_schema(next(store.glob(results.BUNDLE_GLOB))).names)
    assert stored <= RECORD
    assert RECORD - stored <= OPTIONAL


@pytest.mark.parametrize("mix", [(), (1, 2, 4)])
def test_the_trainers_frame_has_exactly_the_trainer_record(mix):
    tasks = [CompositionalTask(TaskSpec(4, 4 if mix else 2, 4, teacher_width=8, seed=t, n_ref=5000,
                                        complexity_mix=mix)) for t in (0, 1)]
    data = make_bundle_data(tasks, [32, 32], 16, 32, torch.float64, "cpu")
    model = init_model(4, 4, 4, [1, 2], [0, 1], "dense", "k>1", torch.float64, "cpu")
    out = train_bundle(model, data, TrainSettings(max_steps=2, eval_every=1, patience=2))
    assert set(out.columns) == trainer_keys(mixed=bool(mix))
