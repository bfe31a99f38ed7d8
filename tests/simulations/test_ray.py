"""The Ray executor: same rows as the local executor, retries after a killed worker, failures reported.

A local 2-CPU Ray instance is started once for the module (loopback only, temp files under pytest's tmp
dir, no dashboard, no usage stats) and shut down at the end. Ray is imported only inside the tests.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pytest
import yaml

from simulations import results
from simulations.config import ConfigError
from simulations.executors import LocalExecutor
from simulations.families.regression.config import validate

# Ray's start-up on a busy 2-core machine can take a while; bounded all the same.
pytestmark = pytest.mark.timeout(180)

TESTS_DIR = Path(__file__).resolve().parent
ROOT = TESTS_DIR.parents[1]


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install '.[ray]'")
    # Ray's workers do not inherit pytest's sys.path: they find this module and the package here.
    path = [str(TESTS_DIR), str(ROOT), os.environ.get("PYTHONPATH", "")]
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PYTHONPATH", os.pathsep.join(p for p in path if p))
        env.setenv("RAY_USAGE_STATS_ENABLED", "0")
        env.setenv("RAY_AUTH_MODE", "disabled")  # else Ray writes a token under ~/.ray
        env.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # single-node mode: Ray binds 127.0.0.1 only
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            object_store_memory=80 * 2**20,
            _temp_dir=str(tmp_path_factory.mktemp("ray")),
        )
        yield ray
        ray.shutdown()


class ToyBundle(NamedTuple):
    bundle_id: str
    seed: int


BUNDLES = [ToyBundle(f"b{i}", 100 + i) for i in range(5)]


def toy_rows(bundle: ToyBundle) -> pd.DataFrame:
    """A deterministic stand-in for a bundle's training: three rows seeded by the bundle."""
    rng = np.random.default_rng(bundle.seed)
    return pd.DataFrame({"bundle": bundle.bundle_id, "k": np.arange(1, 4), "test_loss": rng.random(3)})


def flaky(bundle, fn, log_dir: str, victim: str, fault: str) -> pd.DataFrame:
    """`fn(bundle)`, logging each attempt's pid; the victim bundle then raises or kills its own worker.

    fault: "raise" (a deterministic error), "kill_once" (SIGKILL on the first attempt only, as when a
    node is lost) or "kill_always". The kill comes after the work and before the rows are returned:
    the case where a lost result could tempt a retry into writing rows twice.
    """
    log = Path(log_dir, f"{bundle.bundle_id}.attempts")
    first_attempt = not log.exists()
    with log.open("a") as f:
        f.write(f"{os.getpid()}\n")
    rows = fn(bundle)
    if bundle.bundle_id == victim:
        if fault == "raise":
            raise ValueError(f"bundle {victim} is broken")
        if fault == "kill_always" or (fault == "kill_once" and first_attempt):
            os.kill(os.getpid(), signal.SIGKILL)
    return rows


def attempt_pids(log_dir: Path, bundle_id: str) -> list[str]:
    return Path(log_dir, f"{bundle_id}.attempts").read_text().split()


class FaultyRayExecutor:
    """The Ray executor running `flaky` around whatever bundle function the driver passes."""

    def __init__(self, log_dir: Path, victim: str, fault: str, **kwargs) -> None:
        from simulations.ray_executor import RayExecutor

        self.inner = RayExecutor(**kwargs)
        self.faults = {"log_dir": str(log_dir), "victim": victim, "fault": fault}

    def run(self, fn, bundles, on_result, on_error) -> None:
        self.inner.run(functools.partial(flaky, fn=fn, **self.faults), bundles, on_result, on_error)


def run_collect(executor, fn, bundles):
    """Runs the executor; returns {id: rows} and {id: exception}, checking each is reported once."""
    results_: dict[str, pd.DataFrame] = {}
    errors: dict[str, BaseException] = {}

    def record(into, bundle, value):
        assert bundle.bundle_id not in results_ and bundle.bundle_id not in errors, "reported twice"
        into[bundle.bundle_id] = value

    executor.run(fn, bundles, functools.partial(record, results_), functools.partial(record, errors))
    return results_, errors


def assert_same_rows(got: dict[str, pd.DataFrame], want: dict[str, pd.DataFrame]) -> None:
    assert sorted(got) == sorted(want)
    for name in want:
        pd.testing.assert_frame_equal(got[name], want[name])


def expected(exclude: str = "") -> dict[str, pd.DataFrame]:
    return {b.bundle_id: toy_rows(b) for b in BUNDLES if b.bundle_id != exclude}


# --- the executor protocol, with toy bundles ---------------------------------------------------------


@pytest.mark.ray
@pytest.mark.slow
def test_ray_gives_the_rows_of_the_local_executor(ray_cluster):
    from simulations.ray_executor import RayExecutor

    local, local_errors = run_collect(LocalExecutor(), toy_rows, BUNDLES)
    remote, remote_errors = run_collect(RayExecutor(), toy_rows, BUNDLES)
    assert not local_errors and not remote_errors
    assert_same_rows(remote, local)


@pytest.mark.ray
@pytest.mark.slow
def test_killed_worker_is_retried_and_no_bundle_is_lost_or_duplicated(ray_cluster, tmp_path):
    executor = FaultyRayExecutor(tmp_path, victim="b2", fault="kill_once", max_retries=2)
    got, errors = run_collect(executor, toy_rows, BUNDLES)
    assert not errors
    pids = attempt_pids(tmp_path, "b2")
    assert len(pids) == 2 and pids[0] != pids[1]  # killed once, then retried in a new worker
    assert all(len(attempt_pids(tmp_path, b.bundle_id)) == 1 for b in BUNDLES if b.bundle_id != "b2")
    assert_same_rows(got, expected())


@pytest.mark.ray
@pytest.mark.slow
def test_worker_that_keeps_dying_is_reported_after_bounded_retries(ray_cluster, tmp_path):
    from ray.exceptions import WorkerCrashedError

    executor = FaultyRayExecutor(tmp_path, victim="b1", fault="kill_always", max_retries=1)
    got, errors = run_collect(executor, toy_rows, BUNDLES)
    assert list(errors) == ["b1"]
    assert isinstance(errors["b1"], WorkerCrashedError)
    assert len(attempt_pids(tmp_path, "b1")) == 2  # the first run and one retry, then it gives up
    assert_same_rows(got, expected(exclude="b1"))


@pytest.mark.ray
@pytest.mark.slow
def test_raising_bundle_is_reported_not_retried_and_others_complete(ray_cluster, tmp_path):
    executor = FaultyRayExecutor(tmp_path, victim="b3", fault="raise", max_retries=3)
    got, errors = run_collect(executor, toy_rows, BUNDLES)
    assert list(errors) == ["b3"]
    assert isinstance(errors["b3"], ValueError)
    assert str(errors["b3"]) == "bundle b3 is broken"
    assert "flaky" in str(errors["b3"].__cause__)  # the worker's traceback comes along
    assert len(attempt_pids(tmp_path, "b3")) == 1  # an exception is deterministic: no retry
    assert_same_rows(got, expected(exclude="b3"))


@pytest.mark.ray
@pytest.mark.slow
def test_more_gpus_than_the_cluster_has_is_refused(ray_cluster):
    from simulations.ray_executor import RayExecutor

    with pytest.raises(ConfigError, match="gpus-per-bundle: 1 is more GPUs than the Ray cluster has"):
        RayExecutor(gpus_per_bundle=1)


@pytest.mark.parametrize("gpus", [-0.5, 1.5])
def test_bad_gpu_share_is_refused(gpus):
    from simulations.ray_executor import RayExecutor

    with pytest.raises(ConfigError, match="gpus-per-bundle"):
        RayExecutor(gpus_per_bundle=gpus)


@pytest.mark.parametrize(("address", "message"), [("nonsense", "expected auto or HOST:PORT"),
                                                  ("127.0.0.1:1", "no Ray head node answers")])
def test_bad_address_fails_fast_with_one_line(address, message):
    from simulations.ray_executor import _check_reachable

    with pytest.raises(ConfigError, match=message):
        _check_reachable(address, timeout_s=5)


def test_missing_ray_says_how_to_install_it(monkeypatch):
    from simulations.ray_executor import RayExecutor

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(ImportError, match=r"pip install '\.\[ray\]'") as info:
        RayExecutor()
    assert isinstance(info.value, ConfigError)  # so the grid's CLI prints it as one line


# --- the grid end to end ------------------------------------------------------------------------------

# Two bundles of four models of the oracle arm (fixed routing, k_eval tables), trained for a few steps.
TINY = {"name": "tiny", "n_skills": 4, "d_in": 4, "teacher_width": 8, "complexity": [1, 2],
        "n_experts": [4], "k": [1, 2], "n_train": [40], "width": [4], "seeds": [0, 1], "max_steps": 20,
        "eval_every": 10, "patience": 2, "n_val": 40, "n_test": 80, "max_models_per_bundle": 4,
        "device": "cpu", "router": ["oracle"], "experts": ["learned"]}


@pytest.fixture(scope="module")
def local_store(tmp_path_factory):
    """The tiny grid's rows from the local executor: the reference every Ray run must equal."""
    from simulations.grid import run_grid

    out = tmp_path_factory.mktemp("local")
    summary = run_grid(validate(TINY), out, progress=False)
    assert summary["failed"] == [] and summary["bundles"] == 2
    return load_checked(out)


def load_checked(out: Path) -> pd.DataFrame:
    """The store's rows, checking that no (cell, seed) is stored twice; run time dropped."""
    rows = results.load(out)
    assert not rows.duplicated(["cell_id", "seed"]).any()
    return rows.drop(columns="wall_s")  # the only column that may differ between two runs


def grid_bundle_ids() -> list[str]:
    from simulations.grid import make_bundles

    return [b.bundle_id for b in make_bundles(validate(TINY), "cpu")]


def _cli_on_ray(module: str, config: dict, tmp_path, ray_cluster):
    """Run `python -m <module> --config <config> --executor ray` as a separate driver joining the test's
    cluster; returns its output directory."""
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    address = ray_cluster.get_runtime_context().gcs_address
    out = tmp_path / "ray"
    cmd = [sys.executable, "-m", module, "--config", str(path), "--out", str(out),
           "--executor", "ray", "--address", address, "--no-progress"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stderr[-2000:]
    return out


@pytest.mark.ray
@pytest.mark.slow
def test_grid_cli_on_ray_gives_the_local_executor_rows(ray_cluster, local_store, tmp_path):
    # The user's command, as a separate driver joining the test's cluster. Under `python -m`, the grid's
    # functions live in `__main__`, which Ray's workers cannot import: the grid must hand Ray the
    # importable `simulations.grid.run_bundle`.
    out = _cli_on_ray("simulations.grid", TINY, tmp_path, ray_cluster)
    pd.testing.assert_frame_equal(load_checked(out), local_store)
    assert len(list(out.glob(results.K_EVAL_GLOB))) == 2 and len(results.load_k_eval(out)) == 8 * 4


@pytest.mark.ray
@pytest.mark.slow
def test_a_sampling_estimator_on_ray_gives_the_local_executor_rows(ray_cluster, tmp_path):
    """The score estimator draws from per-model generators: a Ray worker trains the same rows."""
    from simulations.grid import run_grid

    config = {**TINY, "router": ["learned"], "estimator": ["score"], "seeds": [0], "single_skill_steps": 3}
    local = tmp_path / "local"
    assert run_grid(validate(config), local, progress=False)["failed"] == []
    out = _cli_on_ray("simulations.grid", config, tmp_path, ray_cluster)
    pd.testing.assert_frame_equal(load_checked(out), load_checked(local))


@pytest.mark.ray
@pytest.mark.slow
def test_grid_worker_killed_mid_bundle_gives_complete_duplicate_free_store(ray_cluster, local_store,
                                                                          tmp_path):
    from simulations.grid import run_grid

    victim = grid_bundle_ids()[0]
    executor = FaultyRayExecutor(tmp_path, victim=victim, fault="kill_once")
    summary = run_grid(validate(TINY), tmp_path / "out", executor=executor, progress=False)
    assert summary["failed"] == []
    assert len(attempt_pids(tmp_path, victim)) == 2
    assert len(results.bundle_files(tmp_path / "out")) == 2
    pd.testing.assert_frame_equal(load_checked(tmp_path / "out"), local_store)


@pytest.mark.ray
@pytest.mark.slow
def test_grid_failing_bundle_is_reported_by_name_and_resume_completes(ray_cluster, local_store,
                                                                     tmp_path, capsys):
    from simulations.grid import run_grid
    from simulations.ray_executor import RayExecutor

    victim, other = grid_bundle_ids()
    out = tmp_path / "out"
    summary = run_grid(validate(TINY), out, executor=FaultyRayExecutor(tmp_path, victim, "raise"),
                       progress=False)
    assert len(summary["failed"]) == 1 and summary["failed"][0].startswith(victim)
    report = f"bundle {summary['failed'][0]} failed: ValueError: bundle {victim} is broken"
    assert report in capsys.readouterr().err
    assert set(results.load(out)["bundle_id"]) == {other}  # the other bundle finished and was written

    summary = run_grid(validate(TINY), out, resume=True, executor=RayExecutor(), progress=False)
    assert summary["failed"] == [] and summary["bundles"] == 1  # only the missing bundle ran
    pd.testing.assert_frame_equal(load_checked(out), local_store)


# --- the SRAVEN grid on the same driver ----------------------------------------------------------------

SRAVEN_TINY = {"name": "tiny", "k": [1, 2], "n_rules": [2], "seeds": [0, 1], "n_experts": 2, "d_model": 8,
               "d_expert": 4, "n_heads": 2, "n_blocks": 1, "steps": 8, "batch": 8, "n_eval": 16,
               "max_models_per_bundle": 2, "device": "cpu", "workers": 1}


@pytest.mark.ray
@pytest.mark.slow
def test_sraven_cli_on_ray_gives_the_local_executor_rows(ray_cluster, tmp_path):
    """`python -m simulations.families.sraven --executor ray`: Ray's workers import the shared
    `simulations.grid.run_bundle`, which dispatches to the SRAVEN trainer by the bundle's family."""
    from simulations.families.sraven.config import validate as validate_sraven
    from simulations.grid import run_grid

    local = tmp_path / "local"
    assert run_grid(validate_sraven(SRAVEN_TINY), local, progress=False)["failed"] == []
    out = _cli_on_ray("simulations.families.sraven", SRAVEN_TINY, tmp_path, ray_cluster)
    assert len(results.bundle_files(out)) == 2 and results.read_manifest(out)["family"] == "sraven"
    pd.testing.assert_frame_equal(load_checked(out), load_checked(local))
