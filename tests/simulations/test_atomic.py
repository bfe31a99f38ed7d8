"""simulations.atomic: files staged together land together, or none does."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulations.atomic import atomic_write_text, staged_files


def test_staged_files_land_together(tmp_path):
    (tmp_path / "a.txt").write_text("old")
    with staged_files(tmp_path) as stage:
        stage("a.txt", lambda p: Path(p).write_text("new a"))
        stage("b.txt", lambda p: Path(p).write_text("new b"))
        assert (tmp_path / "a.txt").read_text() == "old"  # nothing moves before the block ends
    assert (tmp_path / "a.txt").read_text() == "new a" and (tmp_path / "b.txt").read_text() == "new b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]


def test_a_failed_write_leaves_the_old_files_and_no_temporaries(tmp_path):
    (tmp_path / "a.txt").write_text("old")

    def fail(path):
        Path(path).write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"), staged_files(tmp_path) as stage:
        stage("a.txt", lambda p: Path(p).write_text("new a"))
        stage("b.txt", fail)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    assert (tmp_path / "a.txt").read_text() == "old"


def test_atomic_write_text_creates_the_directory(tmp_path):
    path = atomic_write_text(tmp_path / "new" / "m.json", "{}")
    assert path.read_text() == "{}" and sorted(p.name for p in path.parent.iterdir()) == ["m.json"]
