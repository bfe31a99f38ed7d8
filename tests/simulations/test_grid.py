"""The grid driver: rows, resume after SIGKILL, determinism, bad input, failing bundles."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from grid_fixtures import TINY

from simulations import driver, grid, results
from simulations.families.regression.config import validate

ROOT = Path(__file__).resolve().parents[2]
VALUE_COLS = ["train_mse", "val_mse", "test_mse_id", "test_mse_ood", "diverged", "early_stopped", "steps",
              "router_entropy", "n_heldout_combos"]


def values(df: pd.DataFrame) -> pd.DataFrame:
    return df[["cell_id", "seed", *VALUE_COLS]].sort_values(["cell_id", "seed"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted in-process run of the tiny grid (shared by several tests)."""
    out = tmp_path_factory.mktemp("ref")
    summary = grid.run_grid(validate(dict(TINY)), out, progress=False)
    return out, summary, results.load(out)


def test_rows_columns_and_layout(reference, tiny_raw):
    out, summary, df = reference
    cfg = validate(tiny_raw)
    assert summary["models"] == 16 and summary["bundles"] == 4 and not summary["failed"]
    assert len(df) == len(grid.cells(cfg)) * len(cfg.axes.seeds) == 16
    assert not df.duplicated(["cell_id", "seed"]).any()
    assert set(results.REQUIRED_COLUMNS) <= set(df.columns)
    assert df.groupby("cell_id")[["k", "complexity", "n_train"]].nunique().eq(1).all().all()
    assert len(results.bundle_files(out)) == 4 and (out / "manifest.json").exists()
    assert df.diverged.dtype == bool and (df.renormalize == "k>1").all()


def test_same_config_twice_is_bit_identical(reference, tmp_path, tiny_raw):
    grid.run_grid(validate(tiny_raw), tmp_path, progress=False)
    pd.testing.assert_frame_equal(values(results.load(tmp_path)), values(reference[2]))


def test_the_new_axes_rerun_bit_identically(tmp_path):
    """The contextual task, mixed complexity, every gate family and the top-p router: two runs of one
    config give the same rows, value for value (error split and experts used included)."""
    raw = {**TINY, "task": "contextual", "d_context": 3, "complexity_mix": [1, 2], "complexity": [2],
           "n_train": [32], "seeds": [0], "router": ["learned", "top_p", "oracle"],
           "gate": ["softmax", "sigmoid", "uniform"], "max_steps": 10}
    cols = [*VALUE_COLS, "nmse_oracle_selection_id", "nmse_equal_gates_ood", "misrouted_share_id",
            "mean_experts_id", "rel_nmse_ood"]
    runs = []
    for name in ("a", "b"):
        grid.run_grid(validate(raw), tmp_path / name, progress=False)
        df = results.load(tmp_path / name)
        runs.append(df[["cell_id", "seed", *cols]].sort_values(["cell_id", "seed"]).reset_index(drop=True))
    assert len(runs[0]) == 2 * 7 and runs[0]["mean_experts_id"].notna().all()
    pd.testing.assert_frame_equal(runs[0], runs[1])
    experts = [results.load_experts_by_s(tmp_path / name)[["cell_id", "seed", "s", "mean_experts_id"]]
               for name in ("a", "b")]
    pd.testing.assert_frame_equal(experts[0], experts[1])


def test_bundle_rows_do_not_depend_on_other_bundles(reference, tiny_raw):
    bundles = grid.make_bundles(validate(tiny_raw), "cpu")
    rows = grid.run_bundle(bundles[-1])
    ref = reference[2]
    pd.testing.assert_frame_equal(values(rows), values(ref[ref.bundle_id == bundles[-1].bundle_id]))


def test_existing_output_refused_then_resume_and_overwrite(reference, tmp_path, tiny_raw):
    out = reference[0]
    with pytest.raises(grid.ConfigError, match="out: .*--resume"):
        grid.run_grid(validate(tiny_raw), out, progress=False)
    resumed = grid.run_grid(validate(tiny_raw), out, resume=True, progress=False)
    assert resumed["models"] == 0 and resumed["skipped"] == 16
    # overwrite of a copy: starts from nothing
    small = tmp_path / "o"
    grid.run_grid(validate({**tiny_raw, "seeds": [0], "complexity": [1]}), small, progress=False)
    grid.run_grid(validate({**tiny_raw, "seeds": [1], "complexity": [1]}), small, overwrite=True,
                  progress=False)
    assert set(results.load(small).seed) == {1}


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted_run(reference, tmp_path, tiny_raw, workers):
    """Killed between bundles, then resumed: the rows of an uninterrupted run. With worker processes
    the kill takes the workers down too (no orphan keeps training)."""
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump({**tiny_raw, "workers": workers}))
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "simulations.grid", "--config", str(cfg_path), "--out", str(out),
           "--no-progress"]
    env = {**os.environ, grid.DELAY_ENV: "1"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not results.bundle_files(out) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    children = [int(p) for p in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                               text=True).stdout.split()]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 20
    while any(_alive(p) for p in children) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in children), "worker processes outlived the killed grid"
    n_done = len(results.bundle_files(out))
    assert 1 <= n_done < 4, "the kill should land between the first and the last bundle"
    done = subprocess.run([*cmd, "--resume"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{16 - 4 * n_done} models" in done.stdout
    df = results.load(out)
    assert not df.duplicated(["cell_id", "seed"]).any()
    pd.testing.assert_frame_equal(values(df), values(reference[2]))


def test_failing_bundle_is_reported_and_the_grid_goes_on(tmp_path, tiny_raw, monkeypatch, capsys):
    tiny_raw["seeds"] = [0]
    real = grid.run_bundle
    bad = grid.make_bundles(validate(tiny_raw), "cpu")[1].bundle_id

    def flaky(bundle):
        if bundle.bundle_id == bad:
            raise RuntimeError("injected failure")
        return real(bundle)

    monkeypatch.setattr(driver, "run_bundle", flaky)  # the driver runs it
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(tiny_raw))
    code = grid.main(["--config", str(cfg), "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and bad in err and "injected failure" in err
    assert len(results.load(tmp_path / "o")) == 4  # 2 bundles of 4, one failed


@pytest.mark.parametrize("override, field", [
    ({"k": [0]}, "k"), ({"k": [5]}, "k"), ({"complexity": [5]}, "complexity"), ({"n_train": [0]}, "n_train"),
    ({"width": [-2]}, "width"), ({"n_val": 0}, "n_val"), ({"bogus": 1}, "bogus"), ({"lr": "fast"}, "lr"),
    ({"max_steps": 1.5}, "max_steps"), ({"device": "tpu"}, "device"),
    ({"renormalize": "maybe"}, "renormalize"), ({"workers": 0}, "workers"),
    ({"holdout_frac": 1.0}, "holdout_frac"), ({"seeds": "x"}, "seeds"),
])
def test_bad_config_one_line_error_and_nothing_written(tmp_path, tiny_raw, capsys, override, field):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump({**tiny_raw, **override}))
    out = tmp_path / "out"
    assert grid.main(["--config", str(cfg), "--out", str(out)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {field}:")
    assert not out.exists()


@pytest.mark.parametrize("argv, field", [
    (["--config", "/nonexistent/x.yaml"], "config"), (["--config", "README.md"], "config"),
    (["--device", "tpu"], "device"), (["--set", "k=[0]"], "k"), (["--set", "nope=1"], "nope"),
    (["--seeds", "a,b"], "seeds"), (["--executor", "mpi"], "executor"),
])
def test_bad_cli_one_line_error(tmp_path, capsys, argv, field):
    out = tmp_path / "out"
    assert grid.main([*argv, "--out", str(out)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {field}:")
    assert not out.exists()


def test_cuda_refused_without_gpu(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: --device cuda is valid here")
    assert grid.main(["--device", "cuda", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.startswith("error: device:")


def test_unparsable_file_and_toml(tmp_path, tiny_raw, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("k: [1, 2\n")
    assert grid.main(["--config", str(bad), "--dry-run"]) == 2
    assert capsys.readouterr().err.startswith("error: config:")
    toml = tmp_path / "c.toml"
    toml.write_text("\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in tiny_raw.items()))
    assert grid.main(["--config", str(toml), "--dry-run", "--out", str(tmp_path / "o")]) == 0
    assert "models: 16" in capsys.readouterr().out and not (tmp_path / "o").exists()


def test_default_preset_meets_the_brief():
    cfg = grid.load_config()
    axes = cfg.axes
    assert min(axes.n_experts) >= 8 and len(axes.complexity) >= 4
    for T in axes.n_experts:  # k spans 1..T densely enough to place k* between s and 2s
        ks = axes.ks_for(T)
        assert ks[0] == 1 and ks[-1] == T and len(ks) >= 8 and all(s in ks for s in axes.complexity)
        assert all(2 * s in ks for s in axes.complexity if 2 * s <= T)
    assert len(axes.n_train) >= 2 and len(axes.seeds) >= 3
    # every control is in the default grid, with the replicas the oracle needs
    assert len(axes.arms()) == 4 and all(T % cfg.task.n_skills == 0 for T in axes.n_experts)
    assert validate(yaml.safe_load((ROOT / "configs" / "quick.yaml").read_text())) == cfg
    assert validate({}) == cfg  # a config file that sets a few fields changes only those
    paper = validate(yaml.safe_load((ROOT / "configs" / "paper.yaml").read_text()))
    assert len(grid.cells(paper)) * len(paper.axes.seeds) >= 5000


@pytest.mark.slow
def test_process_workers_give_the_in_process_rows(reference, tmp_path, tiny_raw):
    """Two spawned worker processes train the bundles side by side: same rows, bit for bit."""
    summary = grid.run_grid(validate({**tiny_raw, "workers": 2}), tmp_path, progress=False)
    assert summary["failed"] == [] and summary["bundles"] == 4
    pd.testing.assert_frame_equal(values(results.load(tmp_path)), values(reference[2]))
    assert validate({**tiny_raw, "workers": 2}).config_hash() == validate(tiny_raw).config_hash()
