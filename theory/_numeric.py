"""Turning the symbolic bounds into fast numpy functions, and checking numeric inputs.

Every ``*_value`` function of the package goes through ``compile_expr`` (``sympy.lambdify`` with common
subexpression elimination, numpy backend) once per process, never through ``subs``/``evalf``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import sympy as sp

_CACHE: dict[str, Callable[..., np.ndarray]] = {}


def compile_expr(key: str, args: Sequence[sp.Symbol], expr: sp.Expr) -> Callable[..., np.ndarray]:
    """A cached numpy function of ``args`` evaluating ``expr`` (broadcasting over array arguments)."""
    fn = _CACHE.get(key)
    if fn is None:
        fn = sp.lambdify(tuple(args), expr, modules="numpy", cse=True)
        _CACHE[key] = fn
    return fn


def as_float(name: str, value, *, positive: bool = True, lower: float | None = None,
             upper: float | None = None) -> np.ndarray:
    """``value`` as a float array; a ValueError naming ``name`` if it is not finite or out of range."""
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number or an array of numbers, got {value!r}") from None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: expected finite numbers, got {value!r}")
    if positive and np.any(arr <= 0):
        raise ValueError(f"{name}: expected numbers > 0, got {value!r}")
    if lower is not None and np.any(arr < lower):
        raise ValueError(f"{name}: expected numbers >= {lower}, got {value!r}")
    if upper is not None and np.any(arr > upper):
        raise ValueError(f"{name}: expected numbers <= {upper}, got {value!r}")
    return arr


def as_count(name: str, value, *, lower: int = 1) -> np.ndarray:
    """``value`` as an integer-valued float array (>= ``lower``); a ValueError naming ``name`` if not."""
    arr = as_float(name, value, positive=False, lower=lower)
    if np.any(arr != np.round(arr)):
        raise ValueError(f"{name}: expected integers >= {lower}, got {value!r}")
    return arr


def check_k(k: np.ndarray, T: np.ndarray) -> None:
    """k must lie in [1, T] (broadcast)."""
    if np.any(np.broadcast_to(k, np.broadcast_shapes(k.shape, T.shape))
              > np.broadcast_to(T, np.broadcast_shapes(k.shape, T.shape))):
        raise ValueError("k: expected 1 <= k <= T (number of experts), got some k > T")


def choice(name: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def maybe_scalar(arr: np.ndarray):
    """A 0-d array becomes a numpy scalar of the same dtype; others are returned as they are."""
    return arr[()] if np.ndim(arr) == 0 else arr
