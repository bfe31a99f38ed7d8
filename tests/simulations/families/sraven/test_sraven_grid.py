"""The SRAVEN grid (`python -m simulations.families.sraven`) on the shared driver: the store contract,
bit-identical reruns, kill -9 then --resume, dry-run, one-line errors; and the regression grid's hashes
unchanged."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from simulations import grid, results
from simulations.config import load_config
from simulations.families.regression.config import validate as validate_grid
from simulations.families.sraven import ModelSpec, SravenSettings, train_bundle
from simulations.families.sraven.cli import main
from simulations.families.sraven.config import SravenConfig, validate
from simulations.families.sraven.schema import SCHEMA

REQUIRED_COLUMNS = SCHEMA.required_columns

ROOT = Path(__file__).resolve().parents[4]
# 2 k x 2 R x 2 seeds = 8 models in 4 bundles of 2 (one k sweep of one (R, seed) each), a few seconds.
TINY = {"name": "tiny", "k": [1, 2], "n_rules": [2, 3], "seeds": [0, 1], "n_experts": 4, "d_model": 8,
        "d_expert": 4, "n_heads": 2, "n_blocks": 1, "steps": 12, "batch": 8, "n_eval": 32,
        "max_models_per_bundle": 2, "device": "cpu", "workers": 1}


def stable(df: pd.DataFrame) -> pd.DataFrame:
    """Rows less the wall time (the only column that may differ between two runs)."""
    return df.drop(columns="wall_s").sort_values(["cell_id", "seed"]).reset_index(drop=True)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("sraven-ref")
    summary = grid.run_grid(validate(dict(TINY)), out, progress=False)
    return out, summary, results.load(out)


def test_rows_follow_the_store_contract(reference):
    out, summary, df = reference
    assert summary["models"] == 8 and summary["bundles"] == 4 and not summary["failed"]
    assert set(REQUIRED_COLUMNS) <= set(df.columns)
    assert (df.family == "sraven").all() and not df.duplicated(["cell_id", "seed"]).any()
    assert df.groupby("cell_id")[["k", "n_rules"]].nunique().eq(1).all().all()
    assert sorted(set(zip(df.k, df.n_rules, strict=True))) == [(1, 2), (1, 3), (2, 2), (2, 3)]
    assert df.diverged.dtype == bool and not df.diverged.any()
    assert df.distinct.isna().all() and df.n_train.isna().all()  # None: any / fresh problems
    assert (df.steps * df.batch == 96).all() and (df.device == "cpu").all()
    assert df.n_multisets_ood.tolist() == [1 if r == 2 else 4 for r in df.n_rules]
    assert df[["acc_id", "feat_acc_id", "acc_ood", "router_entropy"]].notna().all().all()
    manifest = results.read_manifest(out)
    assert manifest["family"] == "sraven" and manifest["config"]["n_rules"] == [2, 3]
    assert manifest["config_hash"] == df.config_hash.iloc[0]
    assert len(results.bundle_files(out)) == 4


@pytest.mark.slow
def test_rerun_is_bit_identical_and_bundles_independent(reference, tmp_path):
    grid.run_grid(validate(dict(TINY)), tmp_path, progress=False)
    pd.testing.assert_frame_equal(stable(results.load(tmp_path)), stable(reference[2]))
    k_eval = [stable(results.load_k_eval(d)) for d in (tmp_path, reference[0])]
    pd.testing.assert_frame_equal(*k_eval)
    last = grid.make_bundles(validate(dict(TINY)), "cpu")[-1]
    ref = reference[2]
    alone = grid.run_bundle(last)  # its k_eval arrays go to the k_eval table only when written
    alone = alone.drop(columns=[c for c in alone.columns if c.startswith("k_eval_")])
    pd.testing.assert_frame_equal(stable(alone), stable(ref[ref.bundle_id == last.bundle_id]))


def test_resume_refuses_another_familys_store(reference, tmp_path):
    """--resume into a store of the other family would mix two schemas in one store: refused, and the
    store is left exactly as it was."""
    from simulations.config import ConfigError

    out = reference[0]
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    regression = validate_grid({**load_config().to_dict(), "max_steps": 2})
    with pytest.raises(ConfigError, match="holds a sraven store"):
        grid.run_grid(regression, out, resume=True, progress=False)
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before


def test_resume_with_another_setting_is_refused_and_writes_nothing(reference):
    """A SRAVEN store resumed with another non-axis setting is refused naming it; nothing changes."""
    from simulations.config import ConfigError

    out = reference[0]
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    with pytest.raises(ConfigError, match="^balance: the store was written with 0.01"):
        grid.run_grid(validate({**TINY, "model.d_expert": 4, "training": {"balance": 0.1}}), out, resume=True,
                      progress=False)
    with pytest.raises(ConfigError, match="^n_rules: a resumed store may only be extended"):
        grid.run_grid(validate({**TINY, "n_rules": [3]}), out, resume=True, progress=False)
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_uninterrupted_rows(reference, tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "simulations.families.sraven", "--config", str(cfg), "--out", str(out),
           "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, grid.DELAY_ENV: "1.5"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not results.bundle_files(out) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_done = len(results.bundle_files(out))
    assert 1 <= n_done < 4, "the kill should land between the first and the last bundle"
    done = subprocess.run([*cmd, "--resume"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{8 - 2 * n_done} models" in done.stdout
    pd.testing.assert_frame_equal(stable(results.load(out)), stable(reference[2]))


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, capsys):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "o"
    assert main(["--config", str(cfg), "--out", str(out), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "cells: 4  models: 8" in text and "bundles: 4" in text and "estimated time:" in text
    assert not out.exists()


def test_presets_and_defaults():
    quick = load_config(family="sraven")
    assert quick == SravenConfig() == validate({})  # the dataclass defaults are the quick preset
    # enough k and R for a law with intervals, and seeds for a seed-cluster bootstrap
    assert len(quick.ks()) >= 4 and len(quick.axes.n_rules) >= 4 and len(quick.axes.seeds) >= 3
    # past the per-feature plateau (docs/sraven.md)
    assert quick.training.steps * quick.training.batch >= 10_000
    for name in ("paper", "gpu-slice"):
        cfg = load_config(family="sraven", preset_name=name)
        assert cfg.ks() == list(range(1, 9)) and cfg.model.n_experts == 8 and len(cfg.axes.seeds) >= 3
        assert len(cfg.axes.n_rules) >= (4 if name == "paper" else 2) and cfg.runtime.name == name
    # runtime fields stay out of the hashes
    other = validate({**TINY, "device": "auto", "workers": 2, "max_models_per_bundle": 8, "name": "x"})
    assert other.config_hash() == validate(TINY).config_hash()
    assert [c["cell_id"] for c in grid.cells(other)] == [c["cell_id"] for c in grid.cells(validate(TINY))]
    assert validate({**TINY, "steps": 13}).config_hash() != validate(TINY).config_hash()


@pytest.mark.parametrize("override, field", [
    ({"k": [9]}, "k"), ({"k": [0]}, "k"), ({"k": [5]}, "k"), ({"n_rules": [1]}, "n_rules"),
    ({"n_rules": [9]}, "n_rules"), ({"distinct": [5]}, "distinct"), ({"distinct": [4]}, "distinct"),
    ({"steps": 0}, "steps"), ({"lr": "fast"}, "lr"), ({"lr": 0}, "lr"), ({"n_train": 0}, "n_train"),
    ({"permute": "yes"}, "permute"), ({"impl": "fast"}, "impl"), ({"n_heads": 3}, "n_heads"),
    ({"device": "tpu"}, "device"), ({"workers": 0}, "workers"), ({"bogus": 1}, "bogus"),
    ({"seeds": [-1]}, "seeds"), ({"n_experts": 16}, "n_experts"), ({"balance": -1}, "balance"),
])
def test_bad_config_one_line_error_and_nothing_written(tmp_path, capsys, override, field):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump({**TINY, **override}))
    out = tmp_path / "out"
    assert main(["--config", str(cfg), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {field}:"), err
    assert not out.exists()


@pytest.mark.parametrize("argv, field", [
    (["--preset", "huge"], "preset"), (["--preset", "quick", "--config", "x.yaml"], "config"),
    (["--set", "k=[0]"], "k"), (["--seeds", "a"], "seeds"), (["--executor", "mpi"], "executor"),
    (["--config", "/nonexistent/x.yaml"], "config"), (["--set", "d_model"], "--set"),
])
def test_bad_cli_one_line_error(tmp_path, capsys, argv, field):
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {field}:"), err
    assert not out.exists()


def test_cuda_refused_without_gpu_and_device_plumbing_on_cpu(tmp_path, capsys):
    specs = [ModelSpec(k=1, n_rules=2, seed=0), ModelSpec(k=2, n_rules=2, seed=0)]
    st = SravenSettings(steps=3, batch=4, n_eval=16, d_model=8, n_heads=2, n_blocks=1, d_expert=4)
    a = train_bundle(specs, st).drop(columns="wall_s")
    b = train_bundle(specs, st, device=torch.device("cpu")).drop(columns="wall_s")
    pd.testing.assert_frame_equal(a, b)
    if torch.cuda.is_available():  # the CUDA comparison is test_cuda_rows_match_cpu below
        return
    assert main(["--device", "cuda", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.startswith("error: device: cuda is not available")
    assert not (tmp_path / "o").exists()


def test_every_batch_goes_to_the_chosen_device(monkeypatch):
    """Without a GPU: every tensor the trainer builds from problems is placed with the device it was
    given (a forgotten device would leave a batch on the CPU next to a model on the GPU)."""
    from simulations.families.sraven import train as sraven_train

    seen, real = [], sraven_train._stack

    def spy(arrays, device="unset"):
        seen.append(device)
        return real(arrays, device) if device != "unset" else real(arrays)

    monkeypatch.setattr(sraven_train, "_stack", spy)
    st = SravenSettings(steps=2, batch=4, n_eval=8, d_model=8, n_heads=2, n_blocks=1, d_expert=4,
                        eval_every=1)
    sraven_train.train_bundle([ModelSpec(k=1, n_rules=2, seed=0)], st, device=torch.device("cpu"))
    assert len(seen) >= 2 * 2 + 3 * 2 and all(isinstance(d, torch.device) for d in seen), seen


@pytest.mark.cuda
def test_cuda_rows_match_cpu():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    specs = [ModelSpec(k=1, n_rules=2, seed=0), ModelSpec(k=4, n_rules=3, seed=1)]
    st = SravenSettings(steps=5, batch=8, n_eval=64, d_model=8, n_heads=2, n_blocks=1, d_expert=4,
                        impl="dense")
    cpu, gpu = (train_bundle(specs, st, device=d).drop(columns="wall_s") for d in ("cpu", "cuda"))
    cols = ["ce_train", "ce_id", "train_ce_last"]
    pd.testing.assert_frame_equal(cpu[cols], gpu[cols], rtol=1e-3)


def test_diverged_models_are_flagged_with_nan_metrics():
    specs = [ModelSpec(k=1, n_rules=2, seed=0), ModelSpec(k=2, n_rules=2, seed=0)]
    st = SravenSettings(steps=3, batch=4, n_eval=16, d_model=8, n_heads=2, n_blocks=1, d_expert=4,
                        lr=float("inf"))
    df = train_bundle(specs, st)
    assert df.diverged.all() and df[["acc_id", "feat_acc_id", "ce_id", "router_entropy"]].isna().all().all()


def test_regression_grid_hashes_unchanged(tiny_raw, tmp_path):
    """The family abstraction leaves the regression grid's config hash, cell ids and bundle ids as they
    were before it (values from the previous code), and its manifest gains "family"."""
    cfg = validate_grid(tiny_raw)
    assert cfg.config_hash() == "9b14c433a61680ed"
    assert sorted(c["cell_id"] for c in grid.cells(cfg))[:3] == ["2062de309e725aac", "4c5e948af774a259",
                                                                  "691c84ea36a890c9"]
    assert [b.bundle_id for b in grid.make_bundles(cfg, "cpu")] == ["39ffa3246893", "426d3f0ae8a7",
                                                                     "d5856d46f634", "e5eb915e6c8e"]
    grid.run_grid(validate_grid({**tiny_raw, "seeds": [0], "complexity": [1], "n_train": [32]}), tmp_path,
                  progress=False)
    assert json.loads((tmp_path / "manifest.json").read_text())["family"] == "regression"


def test_empty_store_has_its_family_columns(tmp_path):
    results.write_manifest(tmp_path, {"family": "sraven"})
    assert list(results.load(tmp_path).columns) == list(REQUIRED_COLUMNS)
    (tmp_path / "manifest.json").unlink()
    assert list(results.load(tmp_path).columns) == list(results.REQUIRED_COLUMNS)
