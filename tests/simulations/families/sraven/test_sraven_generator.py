"""The SRAVEN generator's settings F (`n_features`) and V (`n_values`): problems at other F and V follow
their rules, the OOD split and the ambiguity measure work there (the measure against a brute-force
enumeration at F = 3), a tiny bundle trains, bad values are one-line errors, and the defaults keep every
id (the presets' ids are pinned in tests/simulations/test_pins.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from simulations.config import load_config
from simulations.config_schema import ConfigError
from simulations.families.sraven import ModelSpec, SravenSettings, SravenTransformer, Task, ambiguous, sample
from simulations.families.sraven.ambiguity import third_panel_value
from simulations.families.sraven.config import validate
from simulations.families.sraven.family import cells
from simulations.families.sraven.tasks import N_RULES, all_multisets, rule_fits
from simulations.families.sraven.train import to_tokens, train_bundle

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = dict(steps=4, batch=4, n_eval=16, d_model=8, d_expert=4, n_heads=2, n_blocks=1, n_experts=4,
             k_eval=False)


def _raw(p) -> np.ndarray:
    """[n, 3, 3, F]: the panels in feature order (the permutation undone)."""
    idx = np.broadcast_to(p.perm[:, None], p.panels.shape)
    return np.take_along_axis(p.panels, idx, axis=-1)


@pytest.mark.parametrize(("F", "V"), [(2, 6), (3, 5), (4, 3), (2, 16)])
def test_problems_follow_their_rules(F, V):
    p = sample(300, 8, "train", seed=2, n_features=F, n_values=V)
    n = len(p)
    assert p.panels.shape == (n, 3, 3, F) and p.rules.shape == p.answer.shape == (n, F)
    assert p.perm.shape == (n, 3, F) and p.n_values == V
    assert p.panels.min() >= 0 and p.panels.max() == V - 1
    raw = _raw(p)
    for f in range(F):
        for rule in range(N_RULES):
            sel = p.rules[:, f] == rule
            assert rule_fits(raw[sel, :, :, f], rule, V).all(), (F, V, f, rule)
    assert (raw[:, 2, 2] == p.answer).all() and (p.target == p.panels[:, 2, 2]).all()
    assert set(np.unique(p.rules)) == set(range(N_RULES))


@pytest.mark.parametrize("F", [2, 3])
def test_ood_split_at_other_feature_counts(F):
    task = Task(4, 1, n_features=F)
    eligible = [m for m in all_multisets(F) if set(m) <= set(task.pool)]
    assert len(eligible) == len(task.train_multisets) + len(task.ood_multisets)
    assert task.ood_multisets and not set(task.ood_multisets) & set(task.train_multisets)
    assert set(itertools.chain(*task.train_multisets)) == set(task.pool)  # every pool rule in training
    assert task.pool == Task(4, 1).pool  # the pool does not depend on F
    ood = sample(200, 4, "test_ood", seed=1, n_features=F)
    assert {tuple(sorted(r)) for r in ood.rules.tolist()} <= set(task.ood_multisets)


def _brute_answers(panels: np.ndarray, V: int) -> set[tuple[int, ...]]:
    """All 9th panels (slot order) over every matching of slots across columns and every rule per
    feature, each checked on the full 3-row grid it would complete (brute force over the V answers)."""
    F = panels.shape[-1]
    answers = set()
    for s1 in itertools.permutations(range(F)):
        for s2 in itertools.permutations(range(F)):
            options = {}
            for a in range(F):
                grid = np.array([[panels[r, 0, a], panels[r, 1, s1[a]], panels[r, 2, s2[a]]]
                                 for r in range(3)])
                vals = set()
                for v in range(V):
                    grid[2, 2] = v
                    if any(rule_fits(grid, rule, V) for rule in range(N_RULES)):
                        vals.add(v)
                options[s2[a]] = sorted(vals)
            answers.update(itertools.product(*(options[s] for s in range(F))))
    return answers


def test_ambiguity_at_three_features_matches_brute_force():
    p = sample(40, 8, "train", seed=4, n_features=3, n_values=5)
    flags = ambiguous(p)
    for i in range(len(p)):
        answers = _brute_answers(p.panels[i], 5)
        assert tuple(p.target[i]) in answers
        assert flags[i] == (len(answers) > 1), i
    assert 0 < flags.mean() < 1


def test_third_panel_value_uses_the_value_range():
    rows = np.array([[4, 5, 0], [1, 2, 3], [5, 0, 9]])  # progression+1 mod 6: row 3 ends in 1
    fits, value = third_panel_value(rows, 1, 6)
    assert fits and value == 1
    assert not third_panel_value(rows, 1)[0]  # mod 8, 4 -> 5 -> 0 is no progression


@pytest.mark.parametrize("tokens", ["value", "column"])
def test_tiny_bundle_trains_at_two_features_and_six_values(tokens):
    st = SravenSettings(**SMALL, n_features=2, n_values=6, tokens=tokens, eval_every=2)
    df = train_bundle([ModelSpec(k=1, n_rules=4, seed=0), ModelSpec(k=2, n_rules=4, seed=0)], st)
    assert (df["n_features"] == 2).all() and (df["n_values"] == 6).all()
    assert df[["acc_id", "feat_acc_id", "acc_ood", "ce_id", "ambiguous_id"]].notna().all().all()
    assert not df["diverged"].any() and len(df.attrs["history"]) == 2 * 3
    model = SravenTransformer([1], [0], 8, 2, 1, 4, 4, tokens=tokens, n_features=2, n_values=6)
    x, y = to_tokens(sample(5, 4, "train", 0, n_features=2, n_values=6))
    assert x.shape == (5, 16) and y.shape == (5, 2)
    assert model(torch.as_tensor(x)[None]).shape == (1, 5, 2, 6)


def test_default_model_weights_are_unchanged_by_the_arguments():
    a = SravenTransformer([1, 2], [3, 3], 8, 2, 1, 4, 4, tokens="column")
    b = SravenTransformer([1, 2], [3, 3], 8, 2, 1, 4, 4, tokens="column", n_features=4, n_values=8)
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert na == nb and torch.equal(pa, pb)
    c = SravenTransformer([1], [3], 8, 2, 1, 4, 4, n_features=2, n_values=6)
    assert c.embed.shape == (1, 6, 8) and c.pos_slot.shape == (1, 2, 8) and c.head.shape == (1, 8, 6)


def test_defaults_keep_the_ids_and_other_values_enter_them():
    base = load_config(family="sraven", preset_name="learnable")
    explicit = load_config(family="sraven", preset_name="learnable",
                           overrides={"n_features": 4, "n_values": 8})
    assert explicit.config_hash() == base.config_hash()
    assert [c["cell_id"] for c in cells(explicit)] == [c["cell_id"] for c in cells(base)]
    seen = {base.config_hash()}
    for change in ({"n_features": 2}, {"n_features": 3}, {"n_values": 6}, {"n_values": 12}):
        cfg = load_config(family="sraven", preset_name="learnable", overrides=change)
        assert cfg.config_hash() not in seen
        seen.add(cfg.config_hash())
        assert not {c["cell_id"] for c in cells(cfg)} & {c["cell_id"] for c in cells(base)}


@pytest.mark.parametrize(("raw", "start", "allowed"), [
    ({"n_features": 5}, "n_features:", "2..4"), ({"n_features": 1}, "n_features:", "2..4"),
    ({"n_values": 2}, "n_values:", "3..16"), ({"n_values": 17}, "n_values:", "3..16"),
    ({"n_values": 8.0}, "n_values:", "3..16"),
    ({"n_features": 2, "distinct": [1, 3], "n_rules": [4]}, "distinct:", "n_features >= 3"),
])
def test_bad_values_are_one_line_errors(raw, start, allowed):
    with pytest.raises(ConfigError) as exc:
        validate(raw)
    msg = str(exc.value)
    assert msg.startswith(start) and allowed in msg and "\n" not in msg


@pytest.mark.parametrize(("kwargs", "field"), [(dict(n_features=5), "n_features"),
                                               (dict(n_values=2), "n_values"),
                                               (dict(n_features=2, distinct=3), "distinct")])
def test_bad_generator_arguments(kwargs, field):
    with pytest.raises(ValueError, match=field):
        sample(4, 4, "train", 0, **kwargs)
    if field != "distinct":
        with pytest.raises(ValueError, match=field):
            SravenSettings(**kwargs)
