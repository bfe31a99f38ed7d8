"""`--resume` compares the stored config with the new one: a store may be extended along its axes (more
seeds, k, levels or arms); any other change is refused in one line naming the field, with nothing
written, so one store never holds rows of two settings."""

from __future__ import annotations

import json

import pytest
import yaml
from grid_fixtures import TINY

from simulations import grid, results
from simulations.config import parse_override
from simulations.families.regression.config import validate

SMALL = {**TINY, "complexity": [1], "n_train": [32], "seeds": [0], "max_steps": 5, "n_test": 32}


@pytest.fixture
def store(tmp_path, one_thread):
    """A trained store of the small grid (2 cells x 1 seed) and its config file."""
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(SMALL))
    out = tmp_path / "store"
    assert grid.main(["--config", str(path), "--out", str(out), "--no-progress"]) == 0
    return path, out


def _files(out):
    return {f.name: f.read_bytes() for f in out.iterdir()}


@pytest.mark.parametrize("item, field", [
    ("router_temperature=2.0", "router_temperature"), ("lr=0.02", "lr"), ("n_skills=8", "n_skills"),
    ("training.max_steps=6", "max_steps"), ("seeds=[1]", "seeds"), ("k=[2]", "k"),
    ("task=contextual", "task"), ("top_p=0.7", "top_p"), ("gate=[uniform]", "gate"),
    ("estimator=[score]", "estimator"), ("score_samples=2", "score_samples"),
    ("single_skill_steps=3", "single_skill_steps"), ("router_init=teacher", "router_init"),
])
def test_resume_with_another_setting_is_refused_naming_it(store, capsys, item, field):
    path, out = store
    before = _files(out)
    code = grid.main(["--config", str(path), "--out", str(out), "--resume", "--set", item, "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(f"error: {field}:"), err
    assert _files(out) == before  # nothing written


@pytest.mark.parametrize("item, new_rows", [("seeds=[0, 1]", 2), ("k=[1, 2, 3]", 1), ("k=all", 2),
                                            ("complexity=[1, 2]", 2),
                                            ("gate=[softmax, sigmoid]", 2),
                                            ("estimator=[pathwise, score, swap]", 4)])
def test_resume_extends_along_an_axis_training_only_the_new_rows(store, capsys, item, new_rows):
    path, out = store
    stored = results.load(out)
    capsys.readouterr()
    argv = ["--config", str(path), "--out", str(out), "--resume", "--set", item, "--no-progress"]
    assert grid.main(argv) == 0
    assert f"{new_rows} models in" in capsys.readouterr().out
    rows = results.load(out)
    assert len(rows) == len(stored) + new_rows
    old = rows[rows.set_index(["cell_id", "seed"]).index.isin(stored.set_index(["cell_id", "seed"]).index)]
    assert old.reset_index(drop=True).equals(stored)  # the stored rows are left as they were
    manifest = results.read_manifest(out)
    assert manifest["config_hash"] == validate({**SMALL, **dict([parse_override(item)])}).config_hash()


def test_runtime_settings_may_change_on_resume(store, capsys):
    path, out = store
    argv = ["--config", str(path), "--out", str(out), "--resume", "--no-progress", "--set", "name=other",
            "--set", "runtime.max_models_per_bundle=1", "--workers", "1"]
    assert grid.main(argv) == 0 and "0 models in" in capsys.readouterr().out


def test_a_manifest_without_the_later_settings_resumes(store, capsys):
    """A store written before the router settings existed: its manifest lacks them, which means their
    old defaults; resuming at those defaults is the same setting, at another value it is refused."""
    path, out = store
    manifest = results.read_manifest(out)
    for name in ("router_lr_mult", "balance_loss", "router_noise", "router_temperature", "router_init_scale",
                 "estimator", "score_samples", "swap_weight", "single_skill_steps", "single_skill_share",
                 "router_init"):
        del manifest["config"][name]
    (out / results.MANIFEST).write_text(json.dumps(manifest))
    argv = ["--config", str(path), "--out", str(out), "--resume", "--set", "balance_loss=0.1"]
    assert grid.main(argv) == 2 and capsys.readouterr().err.startswith("error: balance_loss:")
    assert grid.main(["--config", str(path), "--out", str(out), "--resume", "--no-progress"]) == 0
    assert "0 models in" in capsys.readouterr().out
