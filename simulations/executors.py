"""How the grid's bundles get run: the executor protocol and the in-process executor.

An executor takes a picklable function `fn(bundle) -> pandas.DataFrame` (the rows of one bundle) and a
sequence of bundles, and reports each bundle as it finishes through `on_result(bundle, rows)` or
`on_error(bundle, exc)`. The driver's callbacks do the writing, so every executor shares one results
store and `--resume` works the same whichever ran the bundles.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import signal
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Protocol

import pandas as pd

BundleFn = Callable[[Any], pd.DataFrame]
OnResult = Callable[[Any, pd.DataFrame], None]
OnError = Callable[[Any, BaseException], None]


class Executor(Protocol):
    """Runs bundles and reports each one exactly once, in completion order."""

    def run(self, fn: BundleFn, bundles: Sequence[Any], on_result: OnResult, on_error: OnError) -> None: ...


class LocalExecutor:
    """Runs bundles one after another in this process (the default)."""

    def run(self, fn: BundleFn, bundles: Sequence[Any], on_result: OnResult, on_error: OnError) -> None:
        for bundle in bundles:
            try:
                rows = fn(bundle)
            except Exception as exc:  # a failing bundle is reported; the others still run
                on_error(bundle, exc)
                continue
            on_result(bundle, rows)


class ProcessExecutor:
    """Runs bundles in `workers` fresh processes on this machine (spawned, so no parent state such as
    OpenMP threads is inherited); rows are the same bits as the in-process executor's, since every
    bundle depends on its own seeds only. `fn` must be importable by name (a top-level function of an
    importable module), as for Ray."""

    def __init__(self, workers: int):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers

    def run(self, fn: BundleFn, bundles: Sequence[Any], on_result: OnResult, on_error: OnError) -> None:
        ctx = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=_die_with_parent)
        with pool:
            futures = {pool.submit(fn, b): b for b in bundles}
            for future in as_completed(futures):
                bundle = futures[future]
                try:
                    rows = future.result()
                except Exception as exc:  # a failing bundle (or a dead worker) is reported; others go on
                    on_error(bundle, exc)
                    continue
                on_result(bundle, rows)


def _die_with_parent() -> None:
    """In a worker: ask Linux to kill this process when its parent dies, so a killed grid leaves no
    orphans training bundles that nobody will write (elsewhere a worker exits after its bundle)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
