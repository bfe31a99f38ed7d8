"""The results store: atomic bundle files, the loader, the stored keys."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simulations import results


def rows(cell: str, seeds=(0, 1)) -> pd.DataFrame:
    n = len(seeds)
    df = pd.DataFrame({c: [0] * n for c in results.REQUIRED_COLUMNS})
    df["cell_id"], df["seed"] = cell, list(seeds)
    df["test_mse_id"] = np.linspace(0.1, 0.2, n)
    return df


def test_write_and_load_roundtrip(tmp_path):
    results.write_bundle(tmp_path, "b", rows("c2"))
    results.write_bundle(tmp_path, "a", rows("c1", seeds=(3,)))
    df = results.load(tmp_path)
    assert list(zip(df.cell_id, df.seed, strict=True)) == [("c1", 3), ("c2", 0), ("c2", 1)]
    assert results.done_keys(tmp_path) == {("c1", 3), ("c2", 0), ("c2", 1)}
    assert len(results.load(tmp_path / "bundle-a.parquet")) == 1


def test_loader_ignores_temp_files_and_leaves_none(tmp_path):
    results.write_bundle(tmp_path, "a", rows("c1"))
    (tmp_path / ".bundle-b.parquet.123.tmp").write_bytes(b"half a file")
    assert len(results.load(tmp_path)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [".bundle-b.parquet.123.tmp", "bundle-a.parquet"]


def test_missing_columns_refused_without_writing(tmp_path):
    with pytest.raises(ValueError, match="required columns"):
        results.write_bundle(tmp_path, "a", rows("c1").drop(columns=["k"]))
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    def boom(self, *a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", boom)
    with pytest.raises(OSError):
        results.write_bundle(tmp_path, "a", rows("c1"))
    assert list(tmp_path.iterdir()) == []


def test_empty_dir_and_missing_path(tmp_path):
    df = results.load(tmp_path)
    assert df.empty and set(results.REQUIRED_COLUMNS) <= set(df.columns)
    with pytest.raises(FileNotFoundError):
        results.load(tmp_path / "nope")


def test_manifest_roundtrip(tmp_path):
    assert results.read_manifest(tmp_path) is None
    results.write_manifest(tmp_path, {"config": {"k": "all"}, "config_hash": "x"})
    assert results.read_manifest(tmp_path)["config"] == {"k": "all"}
