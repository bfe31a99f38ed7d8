"""Runs the grid's bundles as Ray tasks, one task per bundle, for grids that outgrow one machine.

The driver (this process) submits every bundle, then takes results with `ray.wait` in completion order
and hands each one to the driver's `on_result`, which writes that bundle's rows to the results store
atomically. Rows are written only there, once per bundle, so the store is the same as the local
executor's and `--resume` works the same way.

Faults: a task whose worker process or node dies (crash, SIGKILL, out-of-memory kill) is re-run by Ray up
to `max_retries` times; an exception raised by the bundle function is deterministic, so it is not retried
but reported through `on_error`, as is a bundle that used up its retries. Either way the other bundles
go on.

Ray is an optional extra (`pip install '.[ray]'`), imported only when a `RayExecutor` is built.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any

from simulations.config import ConfigError
from simulations.executors import BundleFn, OnError, OnResult


class RayNotInstalledError(ConfigError, ImportError):
    """Ray is missing. A ConfigError too, so the grid's CLI prints it as its usual one-line error."""


def _import_ray():
    try:
        import ray  # optional extra, and slow to import: only when a RayExecutor is built
    except ImportError:
        raise RayNotInstalledError(
            "executor: ray needs the optional extra Ray, which is not installed: pip install '.[ray]'"
        ) from None
    return ray


def _check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """Fail fast on a wrong HOST:PORT: `ray.init` would wait minutes for an unreachable head node."""
    host, sep, port = address.rpartition(":")
    if not (sep and host and port.isdigit()):
        raise ConfigError(f"address: expected auto or HOST:PORT, got {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ConfigError(f"address: no Ray head node answers at {address} ({exc})") from None


class RayExecutor:
    """Runs each bundle as one Ray task needing `cpus_per_bundle` CPUs and `gpus_per_bundle` GPUs.

    `address`: "auto" (the default) connects to a running cluster (`RAY_ADDRESS`, or the latest one
    started on this machine with `ray start`) and, if none is running, starts a local one on this
    machine's cores; "HOST:PORT" connects to that cluster's head node and fails if it cannot. If this
    process is already connected to Ray (`ray.init` was called before), that connection is used as it
    is and left open; otherwise the executor connects when it is built, so a bad address or too few
    GPUs are reported before anything is written, and disconnects at the end of `run` (stopping the
    local instance if it started one).

    `gpus_per_bundle` may be a fraction (0.25: four bundles share one GPU) or a whole number; Ray points
    a task's `CUDA_VISIBLE_DEVICES` at the GPU it was granted. With 0 no GPU is reserved (and Ray leaves
    `CUDA_VISIBLE_DEVICES` alone), so the bundles should then run on the CPU.
    `max_retries` bounds the re-runs of a task whose worker died.
    """

    def __init__(
        self,
        address: str = "auto",
        gpus_per_bundle: float = 0.0,
        cpus_per_bundle: float = 1.0,
        max_retries: int = 3,
    ) -> None:
        if not (gpus_per_bundle >= 0 and (gpus_per_bundle <= 1 or float(gpus_per_bundle).is_integer())):
            raise ConfigError(
                "gpus-per-bundle: expected a fraction in [0, 1] or a whole number of GPUs, "
                f"got {gpus_per_bundle}"
            )
        if not cpus_per_bundle > 0:
            raise ConfigError(f"cpus-per-bundle: expected a number > 0, got {cpus_per_bundle}")
        if max_retries < 0:
            raise ConfigError(f"max-retries: expected an integer >= 0, got {max_retries}")
        self._ray = _import_ray()
        self.address = address
        self.gpus_per_bundle = float(gpus_per_bundle)
        self.cpus_per_bundle = float(cpus_per_bundle)
        self.max_retries = int(max_retries)
        self._owns_connection = False
        self._connect()

    def _connect(self) -> None:
        ray = self._ray
        if not ray.is_initialized():
            if self.address != "auto":
                _check_reachable(self.address)
            # "auto" is Ray's default lookup (RAY_ADDRESS, then the latest local `ray start`, then a new
            # local instance); address="auto" itself would refuse to start one.
            ray.init(address=None if self.address == "auto" else self.address)
            self._owns_connection = True
        available = ray.cluster_resources().get("GPU", 0.0)
        if self.gpus_per_bundle > available:
            raise ConfigError(
                f"gpus-per-bundle: {self.gpus_per_bundle:g} is more GPUs than the Ray cluster has "
                f"({available:g}); use 0 to run on CPUs"
            )

    def run(self, fn: BundleFn, bundles: Sequence[Any], on_result: OnResult, on_error: OnError) -> None:
        ray = self._ray
        self._connect()  # again if a previous run disconnected
        try:
            self._run_tasks(fn, list(bundles), on_result, on_error)
        finally:
            if self._owns_connection:
                ray.shutdown()
                self._owns_connection = False

    def _run_tasks(self, fn: BundleFn, bundles: list, on_result: OnResult, on_error: OnError) -> None:
        ray = self._ray
        task = ray.remote(_apply).options(
            num_cpus=self.cpus_per_bundle,
            num_gpus=self.gpus_per_bundle,
            max_retries=self.max_retries,
            retry_exceptions=False,
            name=getattr(fn, "__name__", "bundle"),
        )
        bundle_of = {task.remote(fn, bundle): bundle for bundle in bundles}
        pending = list(bundle_of)
        try:
            while pending:
                [ref], pending = ray.wait(pending, num_returns=1)
                bundle = bundle_of.pop(ref)
                try:
                    rows = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    # The bundle function raised: report its own exception, as the local executor
                    # would, chained to the Ray error that carries the worker's traceback.
                    cause = exc.cause if isinstance(exc.cause, BaseException) else exc
                    if cause is not exc:
                        cause.__cause__ = exc
                    on_error(bundle, cause)
                    continue
                except ray.exceptions.RayError as exc:  # worker or node died past max_retries, etc.
                    on_error(bundle, exc)
                    continue
                on_result(bundle, rows)
        finally:
            # The driver stopped early (Ctrl-C, or a callback raised): stop the tasks still running.
            for ref in pending:
                ray.cancel(ref, force=True)


def _apply(fn: BundleFn, bundle: Any):
    """The Ray task: `fn` travels as an argument, so any picklable callable works (a partial too)."""
    return fn(bundle)
