"""fits.references and fits.snapshot: a store remembers every run's commit and tree state, a reference
is refused from a dirty tree or from a store made across commits or dirty, and means.csv round-trips
bit for bit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from grid_fixtures import TINY

from fits import references, snapshot
from fits.data import FitInputError
from simulations import driver, grid, results
from simulations.families.regression.config import validate

CLEAN = {"git_clean": True, "git_diff_sha256": None}


def _run(tmp_path, monkeypatch, state, resume=False, **changes):
    monkeypatch.setattr(driver, "tree_state", lambda: dict(state))
    out = tmp_path / "store"
    grid.run_grid(validate({**TINY, **changes}), out, resume=resume, progress=False)
    return out


def test_a_resume_appends_a_run_and_a_resume_with_nothing_to_train_leaves_the_manifest(tmp_path, monkeypatch):
    out = _run(tmp_path, monkeypatch, CLEAN, k=[1])
    assert [r["git_clean"] for r in results.read_manifest(out)["runs"]] == [True]
    dirty = {"git_clean": False, "git_diff_sha256": "abc"}
    _run(tmp_path, monkeypatch, dirty, resume=True)  # k gains a value: one more run, from a dirty tree
    runs = results.read_manifest(out)["runs"]
    assert [r["git_clean"] for r in runs] == [True, False] and runs[1]["git_diff_sha256"] == "abc"
    before = (out / results.MANIFEST).read_text()
    _run(tmp_path, monkeypatch, CLEAN, resume=True)
    assert (out / results.MANIFEST).read_text() == before


def test_a_store_backs_a_reference_only_when_every_run_was_clean_at_its_rows_commit():
    rows = pd.DataFrame({"git_commit": ["a" * 40] * 2})
    run = {"git_commit": "a" * 40, "git_clean": True, "started": "t0"}
    assert snapshot.store_problem({"runs": [run]}, rows) is None
    assert "no runs" in snapshot.store_problem({}, rows)
    dirty = {**run, "git_clean": False, "started": "t1"}
    assert "uncommitted" in snapshot.store_problem({"runs": [run, dirty]}, rows)
    assert "span commits" in snapshot.store_problem({"runs": [run, {**run, "git_commit": "b" * 40}]}, rows)
    assert "span commits" in snapshot.store_problem({"runs": [run]}, pd.DataFrame({"git_commit": ["c" * 40]}))


def _fits_dir(tmp_path):
    fits_dir = tmp_path / "fits"
    fits_dir.mkdir()
    for name in snapshot.FILES:
        (fits_dir / name).write_text("x")
    return fits_dir


def test_a_reference_is_refused_from_a_dirty_tree_and_lands_whole_from_a_clean_one(tmp_path, monkeypatch):
    out = _run(tmp_path, monkeypatch, CLEAN)
    fits_dir, ref = _fits_dir(tmp_path), tmp_path / "ref"
    monkeypatch.setattr(snapshot, "tree_state", lambda **_: {"git_clean": False, "git_diff_sha256": "d"})
    with pytest.raises(FitInputError, match="uncommitted"):
        snapshot.write_snapshot(fits_dir, out, ref, 1.0, "grid", "fit")
    assert not ref.exists() or not any(ref.iterdir())
    monkeypatch.setattr(snapshot, "tree_state", lambda **_: dict(CLEAN))
    snapshot.write_snapshot(fits_dir, out, ref, 1.0, "grid", "fit")
    assert sorted(p.name for p in ref.iterdir()) == sorted([*snapshot.FILES, "means.csv", "rows.sha256.csv",
                                                            "provenance.json"])
    shipped = pd.read_csv(ref / "means.csv")
    stored = results.load(out)
    again = snapshot.cell_means(stored)
    assert pd.read_csv(ref / "rows.sha256.csv").equals(snapshot.row_digests(stored))
    assert list(shipped.columns) == list(again.columns) and "wall_s" not in shipped.columns
    for col in again.columns:
        assert np.array_equal(shipped[col].to_numpy(), again[col].to_numpy(),
                              equal_nan=again[col].dtype.kind == "f"), col


def test_the_cli_names_an_unknown_reference_and_the_allowed_ones(capsys):
    assert references.main(["nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'nope'" in err and "law" in err and "quick" in err


def test_every_registered_grid_builds_its_preset():
    for g in references.grids_of(list(references.REFERENCES)):
        assert grid.cells(g.config()), g.store
