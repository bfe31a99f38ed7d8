"""Tests of the SRAVEN generator (simulations.families.sraven.tasks, .ambiguity): rule semantics checked by
hand-written rules, the feature permutation, the OOD split and its constraints, determinism, errors, and
the ambiguity measure against a brute-force enumeration."""

from __future__ import annotations

import itertools
from math import comb

import numpy as np
import pytest

from simulations.families.sraven import RULES, Task, ambiguous, sample

V = 8


def follows(rule: int, rows: list[tuple[int, int, int]]) -> bool:
    """Written out from the rule descriptions, independently of the package's vectorised checks."""
    name = RULES[rule]
    if name == "constant":
        return all(a == b == c for a, b, c in rows)
    if name.startswith("progression"):
        step = int(name[len("progression"):])
        return all(b == (a + step) % V and c == (a + 2 * step) % V for a, b, c in rows)
    if name == "sum":
        return all(c == (a + b) % V for a, b, c in rows)
    if name == "difference":
        return all(c == (a - b) % V for a, b, c in rows)
    assert name == "distribute_three"
    return all(len({a, b, c}) == 3 for a, b, c in rows) and len({frozenset(r) for r in rows}) == 1


def feature_rows(p, i: int, f: int) -> list[tuple[int, int, int]]:
    return [tuple(int(p.panels[i, r, c, p.perm[i, c, f]]) for c in range(3)) for r in range(3)]


def test_rule_names_and_order():
    assert RULES == ("constant", "progression+1", "progression+2", "progression-1", "progression-2",
                     "sum", "difference", "distribute_three")


def test_every_rule_row_satisfies_its_rule():
    p = sample(400, 8, "train", seed=3)
    seen = set()
    for i in range(len(p)):
        for f in range(4):
            rule = int(p.rules[i, f])
            seen.add(rule)
            assert follows(rule, feature_rows(p, i, f)), (i, f, RULES[rule])
    assert seen == set(range(8))


def test_perm_and_answer_semantics():
    p = sample(300, 8, "test_id", seed=1)
    n = len(p)
    assert p.panels.shape == (n, 3, 3, 4) and p.rules.shape == (n, 4)
    assert p.perm.shape == (n, 3, 4) and p.answer.shape == (n, 4)
    assert (np.sort(p.perm, axis=-1) == np.arange(4)).all()  # each column's perm is a permutation
    for i in range(n):
        for f in range(4):
            assert p.answer[i, f] == p.panels[i, 2, 2, p.perm[i, 2, f]]
        # The target is the 9th panel in slot order: slot s holds the feature f with perm[2, f] = s.
        inv = np.argsort(p.perm[i, 2])
        assert (p.target[i] == p.answer[i, inv]).all()
    # Columns are permuted independently (so features must be matched across columns).
    assert (p.perm[:, 0] != p.perm[:, 1]).any(-1).mean() > 0.9
    assert ((p.panels >= 0) & (p.panels < V)).all()


def test_rule_ids_are_a_shuffled_multiset():
    p = sample(500, 8, "train", seed=2)
    task = Task(8, 2)
    assert all(tuple(sorted(r)) in set(task.train_multisets) for r in p.rules.tolist())
    # Rules are assigned to features in random order, not sorted.
    assert (np.diff(p.rules, axis=1) < 0).any()


@pytest.mark.parametrize("n_rules", range(2, 9))
def test_ood_split_per_pool_size(n_rules):
    for seed in range(3):
        task = Task(n_rules, seed)
        total = comb(n_rules + 3, 4)
        assert len(task.pool) == n_rules and len(set(task.pool)) == n_rules
        train, ood = set(task.train_multisets), set(task.ood_multisets)
        assert not train & ood and len(train) + len(ood) == total
        assert len(ood) == max(1, int(total * 0.25 + 0.5))
        assert set().union(*train) == set(task.pool)  # every pool rule appears in training
        for split, allowed in (("train", train), ("test_id", train), ("test_ood", ood)):
            p = sample(200, n_rules, split, seed)
            assert {tuple(sorted(r)) for r in p.rules.tolist()} <= allowed
        assert set(np.unique(sample(2000, n_rules, "train", seed).rules)) == set(task.pool)


def test_full_pool_holds_out_83_of_330():
    task = Task(8, 0)
    assert len(task.train_multisets) == 247 and len(task.ood_multisets) == 83


def test_pools_are_random_subsets_per_seed():
    pools = {Task(4, s).pool for s in range(20)}
    assert len(pools) > 5  # not a fixed prefix of the rule list


def test_distinct_rules_per_problem():
    for d in (2, 3, 4):
        p = sample(300, 8, "train", seed=0, distinct=d)
        assert all(len(set(r)) == d for r in p.rules.tolist())
        assert len(Task(8, 0, d).ood_multisets) > 0
    one = Task(8, 0, distinct=1)
    assert len(one.train_multisets) == 8 and one.ood_multisets == ()  # nothing can be held out
    with pytest.raises(ValueError, match="test_ood"):
        sample(4, 8, "test_ood", seed=0, distinct=1)


def test_deterministic_per_seed_and_draw():
    a, b = sample(50, 5, "train", seed=7), sample(50, 5, "train", seed=7)
    for field in ("panels", "rules", "perm", "answer"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
    c = sample(50, 5, "train", seed=7, draw=1)
    d = sample(50, 5, "train", seed=8)
    assert not np.array_equal(a.panels, c.panels) and not np.array_equal(a.panels, d.panels)
    assert not np.array_equal(a.panels, sample(50, 5, "test_id", seed=7).panels)


@pytest.mark.parametrize("kwargs, field", [
    (dict(n=4, n_rules=1, split="train", seed=0), "n_rules"),
    (dict(n=4, n_rules=9, split="train", seed=0), "n_rules"),
    (dict(n=4, n_rules=4, split="valid", seed=0), "split"),
    (dict(n=-1, n_rules=4, split="train", seed=0), "n"),
    (dict(n=4, n_rules=4, split="train", seed=0, distinct=5), "distinct"),
    (dict(n=4, n_rules=2, split="train", seed=0, distinct=3), "distinct"),
])
def test_bad_input(kwargs, field):
    with pytest.raises(ValueError, match=field):
        sample(**kwargs)


def _third(rule: int, row0, x: int, y: int) -> list[int]:
    """Values v such that `rule` fits row 3 = (x, y, v), given a fitting first row (brute force)."""
    return [v for v in range(V) if follows(rule, [row0, (x, y, v)])]


def brute_answers(panels: np.ndarray, rules) -> set[tuple[int, ...]]:
    """All 9th panels (slot order) over every matching of slots across columns and rule per feature."""
    answers = set()
    for s1 in itertools.permutations(range(4)):
        for s2 in itertools.permutations(range(4)):
            options = {}
            for a in range(4):
                rows = [tuple(int(panels[r, c, s]) for c, s in ((0, a), (1, s1[a]), (2, s2[a])))
                        for r in range(2)]
                x, y = int(panels[2, 0, a]), int(panels[2, 1, s1[a]])
                vals = set()
                for rule in rules:
                    if follows(rule, rows):
                        vals.update(_third(rule, rows[0], x, y))
                options[s2[a]] = sorted(vals)
            for combo in itertools.product(*(options[s] for s in range(4))):
                answers.add(combo)
    return answers


@pytest.mark.slow
def test_ambiguity_matches_brute_force():
    p = sample(12, 8, "train", seed=11)
    flags = ambiguous(p)
    for i in range(len(p)):
        answers = brute_answers(p.panels[i], range(8))
        assert tuple(p.target[i]) in answers
        assert flags[i] == (len(answers) > 1), i
    pool = Task(3, 5).pool  # ambiguity with respect to a smaller rule set, on that pool's problems
    q = sample(12, 3, "train", seed=5)
    assert ambiguous(q, pool).tolist() == [len(brute_answers(q.panels[i], pool)) > 1 for i in range(len(q))]
    assert not ambiguous(q, ()).any()  # no reading fits: not counted as ambiguous


def test_ambiguity_rate_is_between_zero_and_one():
    rate = ambiguous(sample(500, 8, "train", seed=0)).mean()
    assert 0.02 < rate < 0.8


def test_unpermuted_diagnostic_variant():
    a = sample(100, 8, "train", seed=4)
    b = sample(100, 8, "train", seed=4, permute=False)
    assert (b.perm == np.arange(4)).all()
    assert np.array_equal(a.rules, b.rules) and np.array_equal(a.answer, b.answer)
    for c in range(3):  # the same grids, only the slots of each column reordered
        idx = np.broadcast_to(a.perm[:, None, c], (100, 3, 4))
        assert np.array_equal(np.take_along_axis(a.panels[:, :, c], idx, axis=-1), b.panels[:, :, c])
