"""Nested, typed configs: every form of a name loads, unknown names are one-line errors, the flat view and
the hashes come from the field metadata, and each setting has one default (config and trainer agree)."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from simulations import arms, estimators
from simulations.config import load_config, parse_override
from simulations.config_schema import ConfigError, hashed, settings
from simulations.families.regression.config import GridConfig, TrainingConfig, validate
from simulations.families.regression.train import TrainSettings
from simulations.families.sraven.config import SravenConfig, SravenModel, SravenTraining
from simulations.families.sraven.config import validate as validate_sraven
from simulations.families.sraven.train import SravenSettings
from simulations.gates import GATES


@pytest.mark.parametrize("raw", [{"lr": 0.01}, {"training": {"lr": 0.01}}, {"training.lr": 0.01}])
def test_flat_nested_and_dotted_names_load_alike(raw):
    cfg = validate(raw)
    assert cfg.training.lr == 0.01 and cfg == validate({"lr": 0.01}) != validate({})


@pytest.mark.parametrize("item", ["lr=0.01", "training.lr=0.01", "training={lr: 0.01}"])
def test_set_takes_flat_and_dotted_names(item):
    cfg = load_config(overrides=dict([parse_override(item)]))
    assert cfg.training.lr == 0.01 and cfg.axes == load_config().axes


def test_nested_file_with_flat_override(tmp_path):
    """A nested file and a flat override of one of its settings: the override wins, the rest stay."""
    path = tmp_path / "nested.yaml"
    nested = {"task": {"n_skills": 4, "d_in": 4}, "training": {"lr": 0.02, "max_steps": 7},
              "axes": {"n_experts": [8], "k": [1, 2], "complexity": [1, 2]}}
    path.write_text(yaml.safe_dump(nested))
    cfg = load_config(path, {"max_steps": 9, "axes.seeds": [3]})
    assert (cfg.task.n_skills, cfg.training.lr, cfg.training.max_steps, cfg.axes.seeds) == (4, 0.02, 9, [3])


@pytest.mark.parametrize("raw, message", [
    ({"bogus": 1}, r"^bogus: unknown field; allowed fields: n_skills, d_in, .*lr, .*workers"),
    ({"training": {"bogus": 1}}, r"^training\.bogus: unknown field; allowed fields: lr, max_steps, "),
    ({"training.bogus": 1}, r"^training\.bogus: unknown field; allowed fields: lr, "),
    ({"nope.lr": 1}, r"^nope\.lr: unknown field"),
    ({"training": 3}, r"^training: unknown field"),
    ({"lr": 0}, r"^lr: expected a number > 0"),
    ({"training": {"max_steps": 1.5}}, r"^max_steps: expected an integer >= 1"),
    ({"estimator": ["nope"]},
     r"^estimator: expected a non-empty list of distinct values from pathwise, dense_ste, score, swap; got"),
    ({"score_samples": 0}, r"^score_samples: expected an integer >= 1"),
    ({"estimators": {"swap_weight": -1}}, r"^swap_weight: expected a number > 0"),
    ({"single_skill_steps": -1}, r"^single_skill_steps: expected an integer >= 0"),
])
def test_bad_names_and_values_are_one_line_errors(raw, message):
    with pytest.raises(ConfigError, match=message) as info:
        validate(raw)
    assert "\n" not in str(info.value)


def test_flat_view_round_trips_and_names_are_unique():
    for cls, check in ((GridConfig, validate), (SravenConfig, validate_sraven)):
        cfg = cls()
        names = list(settings(cls))
        assert len(names) == len(set(names)) and list(cfg.to_dict()) == names
        assert check(cfg.to_dict()) == cfg


def test_runtime_settings_stay_out_of_the_hash_and_later_ones_in_only_off_their_default():
    base = validate({})
    runtime = validate({"name": "x", "device": "cpu", "workers": 3, "threads": 0, "max_models_per_bundle": 5})
    assert runtime.config_hash() == base.config_hash()
    assert "router_temperature" not in hashed(base) and "lr" in hashed(base)
    hot = validate({"router_temperature": 2.0})
    assert hashed(hot)["router_temperature"] == 2.0 and hot.config_hash() != base.config_hash()
    # a single-value list at the old default counts as the default
    assert "router" not in hashed(validate({"router": [arms.primary().router.name]}))


def test_arm_choices_come_from_the_registry():
    for name, kinds in (("router", arms.ROUTERS), ("experts", arms.EXPERTS)):
        with pytest.raises(ConfigError, match=f"^{name}: .*{', '.join(kinds)}; got"):
            validate({name: ["no-such-kind"]})
    every = validate({"router": list(arms.ROUTERS), "experts": list(arms.EXPERTS), "n_experts": [16],
                      "gate": list(GATES), "estimator": list(estimators.ESTIMATORS)})
    assert {arms.arm(r, e, g, est).name for r, e in every.axes.arms() for g in every.axes.gates_for(r)
            for est in every.axes.estimators_for(r)} == {a.name for a in arms.arms()}


def test_trainer_settings_take_the_config_defaults():
    """One default per setting: the trainers' settings are the config's sections plus their own."""
    training = dataclasses.asdict(TrainingConfig())
    assert {k: v for k, v in dataclasses.asdict(TrainSettings()).items() if k in training} == training
    sraven = {**dataclasses.asdict(SravenTraining()), **dataclasses.asdict(SravenModel())}
    assert {k: v for k, v in dataclasses.asdict(SravenSettings()).items() if k in sraven} == sraven
    assert dataclasses.asdict(SravenConfig().training).items() <= dataclasses.asdict(SravenSettings()).items()


def test_a_manifest_from_before_the_router_settings_loads():
    """A saved manifest's flat config, written before the router settings existed, loads with them at
    the values those stores implied, and hashes as it did."""
    later = ("router_lr_mult", "balance_loss", "router_noise", "router_temperature", "router_init_scale",
             "gate")
    later += ("task", "d_context")  # the contextual task's settings
    later += ("complexity_mix", "top_p", "top_p_entropy")  # adaptive k (docs/tasks.md)
    later += ("width_rule",)  # fixed active compute (docs/tasks.md)
    later += ("estimator", "score_samples", "swap_weight", "single_skill_steps", "single_skill_share",
              "router_init")  # the estimators (docs/tasks.md)
    cfg = validate({"router": [arms.primary().router.name], "experts": [arms.primary().experts.name]})
    old = {k: v for k, v in cfg.to_dict().items() if k not in later}
    assert validate(old) == cfg
    assert set(hashed(cfg)) == set(old) - {"name", "device", "max_models_per_bundle", "threads", "workers",
                                            "router", "experts"}
