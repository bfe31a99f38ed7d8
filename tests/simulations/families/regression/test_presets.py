"""The regression presets have one home, the package's presets/: `python -m simulations.grid --preset
NAME` runs each, a bad name is a one-line error naming the allowed ones, the regime sweeps beside them
are no presets, and configs/*.yaml are exactly the copies `python -m
simulations.families.regression.copies` writes (the same configs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulations import driver, grid
from simulations.config import load_config, preset_names
from simulations.families.regression import copies

ROOT = Path(__file__).resolve().parents[4]
PINNED = json.loads((ROOT / "tests/simulations/data/pinned_ids.json").read_text())
#: Every preset configs/ held before the presets moved into the package (issue 28).
MOVED = ("active_compute", "adaptive", "composition", "estimators", "estimators_single_skill", "gate_values",
         "law", "oracle_r4", "oracle_terms", "paper", "quick", "standard")


def test_every_preset_configs_held_is_a_package_preset_and_no_sweep_is():
    names = preset_names()
    assert set(MOVED) <= set(names)
    assert not {"regime", "regime-contextual"} & set(names)


@pytest.mark.parametrize("name", preset_names())
def test_preset_runs_from_the_grid_cli(name, monkeypatch, capsys):
    """`--preset NAME --dry-run` for every preset (the time estimate, which trains a few steps, stubbed):
    the grid it plans has the preset's pinned cells."""
    monkeypatch.setattr(driver, "estimate_seconds", lambda bundles: 0.0)
    assert grid.main(["--preset", name, "--dry-run", "--device", "cpu"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(f"cells: {PINNED[f'preset:{name}']['n_cells']} ")


@pytest.mark.parametrize("argv", [["--preset", "nope"], ["--preset", "regime"]])
def test_bad_preset_is_one_line_naming_the_allowed_ones(argv, tmp_path, capsys):
    assert grid.main([*argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: preset: expected one of ")
    assert all(name in err[0] for name in MOVED)
    assert not (tmp_path / "o").exists()


def test_preset_and_config_together_are_refused(capsys):
    assert grid.main(["--preset", "law", "--config", "configs/law.yaml", "--dry-run"]) == 2
    assert capsys.readouterr().err.startswith("error: config: ")


def test_configs_are_the_generated_copies():
    """configs/ holds one file per preset, each what the generator writes (run it after editing a
    preset), and each reads the same config as its preset."""
    assert copies.stale(ROOT / "configs") == []
    for name in preset_names():
        assert (load_config(ROOT / "configs" / f"{name}.yaml").to_dict()
                == load_config(preset_name=name).to_dict()), name


def test_copies_check_and_write(tmp_path, capsys):
    assert copies.main(["--out", str(tmp_path), "--check"]) == 1  # nothing there yet
    assert copies.main(["--out", str(tmp_path)]) == 0
    assert copies.main(["--out", str(tmp_path), "--check"]) == 0
    (tmp_path / "law.yaml").write_text((tmp_path / "law.yaml").read_text() + "lr: 0.1\n")
    (tmp_path / "mine.yaml").write_text("name: mine\n")
    capsys.readouterr()
    assert copies.main(["--out", str(tmp_path), "--check"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "law.yaml" in err[0] and "mine.yaml" in err[0]
    copies.write(tmp_path)
    assert copies.stale(tmp_path) == ["mine.yaml"]  # the generator never deletes a file
