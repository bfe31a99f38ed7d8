"""How the grid's bundles get run: the executor protocol and the in-process executor.

An executor takes a picklable function `fn(bundle) -> pandas.DataFrame` (the rows of one bundle) and a
sequence of bundles, and reports each bundle as it finishes through `on_result(bundle, rows)` or
`on_error(bundle, exc)`. The driver's callbacks do the writing, so every executor shares one results
store and `--resume` works the same whichever ran the bundles.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
