"""The SRAVEN settings that can move the plateau (docs/sraven.md, "Settings"): learning-rate warmup and
cosine decay, and column tokens. Each is off by default and then out of the hashes (the pins test the
presets' ids); switched on, it changes the config's identity and what the trainer does, as documented."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from simulations.config import load_config
from simulations.config_schema import ConfigError
from simulations.families.sraven import (
    ModelSpec,
    SravenSettings,
    SravenTransformer,
    sample,
    to_tokens,
    train_bundle,
)
from simulations.families.sraven.config import validate
from simulations.families.sraven.family import cells
from simulations.families.sraven.train import lr_factor

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = dict(steps=6, batch=4, n_eval=16, d_model=8, d_expert=4, n_heads=2, n_blocks=1, n_experts=4,
             k_eval=False)


def test_defaults_stay_out_of_the_ids_and_options_enter_them():
    base = load_config(family="sraven", preset_name="quick")
    explicit = load_config(family="sraven", preset_name="quick",
                           overrides={"schedule": "constant", "warmup": 0, "tokens": "value"})
    assert explicit.config_hash() == base.config_hash()
    assert [c["cell_id"] for c in cells(explicit)] == [c["cell_id"] for c in cells(base)]
    seen = {base.config_hash()}
    for change in ({"schedule": "cosine"}, {"warmup": 50}, {"tokens": "column"}):
        cfg = load_config(family="sraven", preset_name="quick", overrides=change)
        assert cfg.config_hash() not in seen
        seen.add(cfg.config_hash())
        assert not {c["cell_id"] for c in cells(cfg)} & {c["cell_id"] for c in cells(base)}


@pytest.mark.parametrize(("field", "value", "allowed"), [("schedule", "linear", "constant, cosine"),
                                                         ("tokens", "panel", "value, column"),
                                                         ("warmup", -1, ">= 0")])
def test_bad_values_name_the_field_and_the_allowed_ones(field, value, allowed):
    with pytest.raises(ConfigError) as exc:
        validate({field: value})
    assert str(exc.value).startswith(f"{field}:") and allowed in str(exc.value) and "\n" not in str(exc.value)


def test_lr_factor_warms_up_linearly_then_decays_by_a_cosine():
    steps, warm = 100, 10
    f = np.array([lr_factor(t, steps, "cosine", warm) for t in range(steps)])
    np.testing.assert_allclose(f[:warm], np.arange(1, warm + 1) / warm)
    assert f[warm] == 1.0 and np.all(np.diff(f[warm:]) < 0) and f[-1] < 0.001
    assert math.isclose(f[warm + 45], 0.5, abs_tol=1e-12)  # halfway through the decay
    assert [lr_factor(t, steps, "constant", 4) for t in (0, 3, 4, 99)] == [0.25, 1.0, 1.0, 1.0]
    assert lr_factor(0, steps, "constant", 0) == 1.0


def test_the_optimiser_follows_the_schedule(monkeypatch):
    """The Adam steps run at lr * lr_factor(step), read off the optimiser at every step."""
    seen = []
    step = torch.optim.Adam.step

    def spy(self, *a, **kw):
        seen.append(self.param_groups[0]["lr"])
        return step(self, *a, **kw)

    monkeypatch.setattr(torch.optim.Adam, "step", spy)
    train_bundle([ModelSpec(k=1, n_rules=2)], SravenSettings(**SMALL, lr=0.01, schedule="cosine", warmup=2))
    want = [0.01 * lr_factor(t, 6, "cosine", 2) for t in range(6)]
    np.testing.assert_allclose(seen, want, rtol=1e-12)
    seen.clear()
    train_bundle([ModelSpec(k=1, n_rules=2)], SravenSettings(**SMALL, lr=0.01))
    assert seen == [0.01] * 6


def test_a_schedule_changes_training_and_is_recorded():
    spec = [ModelSpec(k=2, n_rules=2)]
    const = train_bundle(spec, SravenSettings(**SMALL))
    cos = train_bundle(spec, SravenSettings(**SMALL, schedule="cosine", warmup=2))
    assert const["train_ce_last"].iloc[0] != cos["train_ce_last"].iloc[0]
    assert cos[["schedule", "warmup", "tokens"]].iloc[0].tolist() == ["cosine", 2, "value"]


def test_column_tokens_shape_and_what_each_token_reads():
    """12 tokens; token (c, s) reads exactly the values at (r, c, s) for the 3 rows; the weights shared
    with the default tokenisation are the default model's (same seed, same draws)."""
    kw = dict(d_model=8, n_heads=2, n_blocks=1, n_experts=4, d_expert=4)
    col = SravenTransformer([2], [5], tokens="column", **kw)
    val = SravenTransformer([2], [5], **kw)
    for name, p in val.named_parameters():
        torch.testing.assert_close(dict(col.named_parameters())[name], p, rtol=0, atol=0)
    x = torch.as_tensor(to_tokens(sample(3, 4, "train", 0))[0])[None]  # [1, 3, 32]
    base = col.embed_columns(x)
    assert base.shape == (1, 3, 12, 8)
    for panel, slot in ((0, 1), (4, 3), (7, 0)):
        y = x.clone()
        y[0, :, panel * 4 + slot] = (y[0, :, panel * 4 + slot] + 1) % 8
        changed = (col.embed_columns(y) != base).any(-1).any(1)[0]  # [12]
        assert changed.nonzero().flatten().tolist() == [(panel % 3) * 4 + slot]
    assert col(x).shape == (1, 3, 4, 8)
    with pytest.raises(ValueError, match="tokens"):
        SravenTransformer([2], [5], tokens="panel", **kw)


def test_column_tokens_train_deterministically_and_learn_something():
    spec = [ModelSpec(k=2, n_rules=2, seed=1)]
    st = SravenSettings(**{**SMALL, "steps": 30, "batch": 16, "n_eval": 64}, tokens="column", lr=0.01)
    a, b = train_bundle(spec, st), train_bundle(spec, st)
    cols = [c for c in a.columns if c != "wall_s"]
    assert a[cols].equals(b[cols])
    assert np.isfinite(a["train_ce_last"]).all() and a["train_ce_last"].iloc[0] < math.log(8)
