"""SRAVEN problems: 3x3 grids of panels with F integer features in {0..V-1} (by default F = 4 and V = 8,
`N_FEATURES` and `N_VALUES`; both are generator settings), each feature following one of 8 row-wise
rules (after Schug et al., "Attention as a Hypernetwork", 2024; written from the description in
docs/sraven.md, not from their code).

A task is the multiset of the F features' rules. A `Task` fixes, from its seed, the pool of R rules that
tasks draw from and which of the pool's multisets are held out as out-of-distribution (OOD); `sample`
draws problems of one split. Features are permuted per grid column (the same permutation in every row),
so a solver must match features across columns.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import numpy as np

RULES = ("constant", "progression+1", "progression+2", "progression-1", "progression-2",
         "sum", "difference", "distribute_three")
N_RULES = len(RULES)
N_VALUES = 8  # V, the default value range 0..V-1
N_FEATURES = 4  # F, the default number of features per panel
FEATURE_RANGE = (2, 4)  # the F a task may have (the ambiguity measure enumerates F! x F! readings)
VALUE_RANGE = (3, 16)  # the V a task may have (distribute_three needs 3 distinct values)
SPLITS = ("train", "test_id", "test_ood", "val")  # val: ID problems for early stopping (its own stream)
OOD_FRACTION = 0.25
_STEPS = {1: 1, 2: 2, 3: -1, 4: -2}  # progression rule id -> step


@dataclass
class Problems:
    """A batch of n SRAVEN problems (numpy int64 arrays).

    panels: [n, 3, 3, F] the grid as the model sees it (rows, columns, feature slots), after the
        per-column feature permutation; panels[:, 2, 2] is the hidden 9th panel (the target, in the
        slot order of column 3).
    rules: [n, F] rule id of each feature (ids index RULES).
    perm: [n, 3, F] perm[i, c, f] = the slot feature f occupies in column c, so
        panels[i, r, c, perm[i, c, f]] is feature f's value.
    answer: [n, F] the 9th panel's features in feature order (answer[i, f] = raw value of feature f).
    n_values: V, the value range (values 0..V-1) the problems were drawn with.
    """

    panels: np.ndarray
    rules: np.ndarray
    perm: np.ndarray
    answer: np.ndarray
    n_values: int = N_VALUES

    def __len__(self) -> int:
        return self.panels.shape[0]

    @property
    def target(self) -> np.ndarray:
        """[n, F] what the model predicts at its F query positions: the 9th panel in slot order."""
        return self.panels[:, 2, 2]


def rows_for_rules(rules: np.ndarray, rng: np.random.Generator, n_values: int = N_VALUES) -> np.ndarray:
    """Unpermuted grids [n, 3, 3, F] (rows, columns, features), values 0..n_values-1, whose feature f
    follows rules[:, f]."""
    n, F = rules.shape
    V = n_values
    start = rng.integers(0, V, size=(n, 3, F))  # one random start / first value per row
    second = rng.integers(0, V, size=(n, 3, F))
    out = np.empty((n, 3, 3, F), dtype=np.int64)
    # Distribute-three: three distinct values per (problem, feature), shuffled independently per row.
    values = np.argsort(rng.random((n, F, V)), axis=-1)[..., :3]  # [n, F, 3] distinct
    order = np.argsort(rng.random((n, 3, F, 3)), axis=-1)  # a random permutation per row
    dist = np.take_along_axis(values[:, None].repeat(3, axis=1), order, axis=-1)  # [n, 3, F, 3]
    for rule in range(N_RULES):
        if rule == 0:
            cols = [start, start, start]
        elif rule in _STEPS:
            s = _STEPS[rule]
            cols = [start, start + s, start + 2 * s]
        elif rule == 5:
            cols = [start, second, start + second]
        elif rule == 6:
            cols = [start, second, start - second]
        else:
            cols = [dist[..., 0], dist[..., 1], dist[..., 2]]
        grid = np.stack(cols, axis=2) % V  # [n, 3 rows, 3 cols, F]
        sel = (rules == rule)[:, None, None, :]
        np.copyto(out, grid, where=sel)
    return out


def rule_fits(rows: np.ndarray, rule: int, n_values: int = N_VALUES) -> np.ndarray:
    """Bool [...]: do the complete rows rows[..., r, 0:3] (shape [..., n_rows, 3]) all follow `rule`
    (arithmetic mod n_values)?"""
    a, b, c = rows[..., 0], rows[..., 1], rows[..., 2]
    V = n_values
    if rule == 0:
        ok = (a == b) & (b == c)
    elif rule in _STEPS:
        s = _STEPS[rule]
        ok = ((b - a) % V == s % V) & ((c - b) % V == s % V)
    elif rule == 5:
        ok = (a + b) % V == c
    elif rule == 6:
        ok = (a - b) % V == c
    elif rule == 7:
        ok = (a != b) & (b != c) & (a != c)
        sets = np.sort(rows, axis=-1)
        ok = ok.all(-1) & (sets == sets[..., :1, :]).all(axis=(-1, -2))
        return ok
    else:
        raise ValueError(f"rule must be in 0..{N_RULES - 1}, got {rule!r}")
    return ok.all(-1)


@functools.cache
def all_multisets(n_features: int = N_FEATURES) -> tuple[tuple[int, ...], ...]:
    """The multisets of n_features rules over the 8 rules (330 at F = 4), as sorted tuples in
    lexicographic order."""
    return tuple(itertools.combinations_with_replacement(range(N_RULES), n_features))


def _check_int(name: str, value, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise ValueError(f"{name} must be an int in {lo}..{hi}, got {value!r}")
    return int(value)


class Task:
    """The task family of one (n_rules, seed, distinct, n_features, n_values): its rule pool and its
    train/OOD multisets.

    n_rules: R, the pool size (2..8): tasks are the multisets of F rules drawn from a pool of R rules,
        the pool a random R-subset of the 8 rules drawn from `seed` (the same pool whatever F and V).
    distinct: if given (1..F), only multisets with exactly that many distinct rules are used.
    n_features: F, features per panel (FEATURE_RANGE); n_values: V, values 0..V-1 (VALUE_RANGE).
    The OOD multisets: a seeded max(1, round(25 %)) of the eligible multisets, taken in random order
    and skipping any whose removal would leave a pool rule absent from training; fewer are held out
    when the constraint allows no more (e.g. distinct=1 holds out none).
    """

    def __init__(self, n_rules: int = N_RULES, seed: int = 0, distinct: int | None = None,
                 n_features: int = N_FEATURES, n_values: int = N_VALUES) -> None:
        self.n_rules = _check_int("n_rules", n_rules, 2, N_RULES)
        self.seed = _check_int("seed", seed, 0, 2**63 - 1)
        self.n_features = _check_int("n_features", n_features, *FEATURE_RANGE)
        self.n_values = _check_int("n_values", n_values, *VALUE_RANGE)
        self.distinct = None if distinct is None else _check_int("distinct", distinct, 1, self.n_features)
        rng = np.random.default_rng([self.seed, 0x5A])
        self.pool = tuple(sorted(rng.choice(N_RULES, size=self.n_rules, replace=False).tolist()))
        eligible = [m for m in all_multisets(self.n_features) if set(m) <= set(self.pool)
                    and (self.distinct is None or len(set(m)) == self.distinct)]
        if not eligible:
            raise ValueError(f"distinct={self.distinct} is impossible with n_rules={self.n_rules}")
        target = max(1, int(len(eligible) * OOD_FRACTION + 0.5))
        uses = {r: sum(r in m for m in eligible) for r in self.pool}
        ood: list[tuple[int, ...]] = []
        for i in rng.permutation(len(eligible)):
            if len(ood) == target:
                break
            m = eligible[i]
            if all(uses[r] > 1 for r in set(m)):  # every rule of m still appears in training
                ood.append(m)
                for r in set(m):
                    uses[r] -= 1
        ood_set = set(ood)
        self.train_multisets = tuple(m for m in eligible if m not in ood_set)
        self.ood_multisets = tuple(sorted(ood))

    def multisets(self, split: str) -> tuple[tuple[int, ...], ...]:
        """The multisets problems of `split` draw from (test_id and val share train's)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return self.ood_multisets if split == "test_ood" else self.train_multisets

    def sample(self, n: int, split: str, rng: np.random.Generator, permute: bool = True) -> Problems:
        """n problems of `split`: a multiset uniformly from the split's, its rules assigned to the F
        features in random order, a random grid, a random feature permutation per column (the
        identity for every column with permute=False: an easier diagnostic variant, not SRAVEN)."""
        n = _check_int("n", n, 0, 2**40)
        sets = self.multisets(split)
        if not sets:
            raise ValueError(f"split {split!r} has no multisets for n_rules={self.n_rules}, "
                             f"distinct={self.distinct} (no rule combination can be held out)")
        table = np.asarray(sets, dtype=np.int64)
        rules = table[rng.integers(0, len(sets), size=n)]
        F = self.n_features
        rules = np.take_along_axis(rules, np.argsort(rng.random((n, F)), axis=1), axis=1)
        raw = rows_for_rules(rules, rng, self.n_values)
        perm = np.argsort(rng.random((n, 3, F)), axis=-1)  # a random permutation per column
        if not permute:
            perm = np.broadcast_to(np.arange(F), perm.shape).copy()
        panels = np.empty_like(raw)
        # panels[i, r, c, perm[i, c, f]] = raw[i, r, c, f]
        idx = np.broadcast_to(perm[:, None], raw.shape)
        np.put_along_axis(panels, idx, raw, axis=-1)
        return Problems(panels=panels, rules=rules, perm=perm, answer=raw[:, 2, 2].copy(),
                        n_values=self.n_values)


_SPLIT_IDS = {s: i for i, s in enumerate(SPLITS)}


@functools.lru_cache(maxsize=256)
def get_task(n_rules: int, seed: int, distinct: int | None = None, n_features: int = N_FEATURES,
             n_values: int = N_VALUES) -> Task:
    return Task(n_rules, seed, distinct, n_features, n_values)


def stream_rng(seed: int, split: str, draw: int = 0) -> np.random.Generator:
    """The generator of draw number `draw` of `split` for task seed `seed` (splits never share one)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return np.random.default_rng([seed, 0x5B, _SPLIT_IDS[split], draw])


def sample(n: int, n_rules: int, split: str, seed: int, *, distinct: int | None = None,
           draw: int = 0, permute: bool = True, n_features: int = N_FEATURES,
           n_values: int = N_VALUES) -> Problems:
    """n problems of `split` (train, test_id, test_ood, val) with rule pool size R = n_rules.

    `seed` fixes the task (the pool of R rules and the OOD multisets) and, with `split` and `draw`, the
    problems: the same arguments give the same problems; `draw` = 0, 1, ... gives independent batches
    of the same task (a training stream). `distinct` keeps only problems with that many distinct rules.
    permute=False leaves features unpermuted (a diagnostic: the problems otherwise equal permute=True's).
    n_features (F, 2..4) and n_values (V, 3..16) are the generator's settings; at their defaults (4, 8)
    the problems are those of the constant-F, constant-V generator, draw for draw.
    """
    task = get_task(n_rules, seed, distinct, n_features, n_values)
    return task.sample(n, split, stream_rng(seed, split, draw), permute)
