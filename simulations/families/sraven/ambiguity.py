"""Ambiguous SRAVEN problems: ones where another reading of the 8 visible panels (another matching of
feature slots across columns and/or other rules from the allowed set) fits them and gives another 9th
panel. We measure the rate rather than filter: a problem is ambiguous when the set of 9th panels
(in column 3's slot order) over all consistent readings has more than one element.

A reading: a bijection of column 1's and of column 3's slots to column 0's slots (F! x F! pairs: 576 at
F = 4) and, for each of the F matched slot triples, any allowed rule that fits rows 1-2 and the first two
entries of row 3. Rules are chosen per feature independently (the multiset constraint of the split is
ignored), so this counts a superset of the ambiguity a solver that knows the training multisets faces.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np

from .tasks import _STEPS, N_RULES, N_VALUES, Problems, rule_fits


@functools.cache
def _perms(n_features: int) -> np.ndarray:
    """[F!, F]: every permutation of F slots (24 x 4 at F = 4)."""
    return np.array(list(itertools.permutations(range(n_features))), dtype=np.int64)


def third_panel_value(rows: np.ndarray, rule: int, n_values: int = N_VALUES
                      ) -> tuple[np.ndarray, np.ndarray]:
    """For grids rows [..., 3, 3] (row 3's last entry ignored): (fits, value), both [...]: whether
    `rule` fits rows 1-2 and row 3's first two entries, and the row-3 column-3 value it then implies
    (arithmetic mod n_values)."""
    V = n_values
    x, y = rows[..., 2, 0], rows[..., 2, 1]
    fits = rule_fits(rows[..., :2, :], rule, V)
    if rule == 0:
        return fits & (x == y), x
    if rule in _STEPS:
        s = _STEPS[rule]
        return fits & ((y - x) % V == s % V), (y + s) % V
    if rule == 5:
        return fits, (x + y) % V
    if rule == 6:
        return fits, (x - y) % V
    if rule == 7:
        first = rows[..., 0, :]
        inside = ((first == x[..., None]).any(-1) & (first == y[..., None]).any(-1) & (x != y))
        return fits & inside, (first.sum(-1) - x - y)
    raise ValueError(f"rule must be in 0..{N_RULES - 1}, got {rule!r}")


def ambiguous(problems: Problems, rules: tuple[int, ...] | None = None) -> np.ndarray:
    """Bool [n]: is problem i ambiguous with respect to `rules` (default: all 8)? A problem no reading
    fits (its rules are not all in `rules`) counts as not ambiguous."""
    rules = tuple(range(N_RULES)) if rules is None else tuple(rules)
    P, V = problems.panels, problems.n_values
    n, F = P.shape[0], P.shape[-1]
    a, b, c = np.meshgrid(np.arange(F), np.arange(F), np.arange(F), indexing="ij")
    # tri[i, a, b, c, r, col]: rows formed by column-0 slot a, column-1 slot b, column-2 slot c.
    tri = np.stack([P[:, :, 0, a], P[:, :, 1, b], P[:, :, 2, c]], axis=-1)  # [n, 3, F, F, F, 3]
    tri = np.moveaxis(tri, 1, -2)  # [n, F, F, F, 3, 3]
    bits = np.zeros((n, F, F, F), dtype=np.int64)  # bit v set: value v is a possible answer
    for rule in rules:
        fits, value = third_panel_value(tri, rule, V)
        bits |= np.where(fits, np.left_shift(1, value % V), 0)
    perms = _perms(F)
    s1, s2 = perms[:, None, :], perms[None, :, :]  # column-1 / column-2 slot of column-0 slot a
    slot = np.arange(F)
    pair = bits[:, slot, s1, s2]  # [n, F!, F!, F]
    valid = (pair != 0).all(-1)
    multi = (pair & (pair - 1)) != 0  # two or more values for one slot
    if (valid[..., None] & multi).any(axis=(1, 2, 3)).all():
        return np.ones(n, dtype=bool)
    value = np.log2(np.where(pair > 0, pair, 1)).astype(np.int64)
    code = (value * (V ** np.broadcast_to(s2, pair.shape))).sum(-1)  # answer in slot order
    big = np.iinfo(np.int64).max
    lo = np.where(valid, code, big).min(axis=(1, 2))
    hi = np.where(valid, code, -1).max(axis=(1, 2))
    return (valid[..., None] & multi).any(axis=(1, 2, 3)) | (valid.any(axis=(1, 2)) & (lo != hi))
