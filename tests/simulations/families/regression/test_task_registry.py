"""The task registry (simulations.families.regression.task_registry): the one source of the task
variants' names, which feeds the config's choice, TaskSpec's check, each class's name and make_task; and
TaskSpec's defaults are the config's."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from simulations.config_schema import ConfigError
from simulations.families.regression.config import GridConfig, TaskConfig, validate
from simulations.families.regression.task_registry import (
    DEFAULT_TASK,
    TASKS,
    check_task,
    has_context,
    make_task,
    task_class,
)
from simulations.families.regression.tasks import CompositionalTask, TaskSpec

ROOT = Path(__file__).resolve().parents[4]
ALLOWED = ", ".join(TASKS)


def test_every_registered_name_builds_its_own_class():
    assert DEFAULT_TASK == next(iter(TASKS)) and len(TASKS) >= 2
    for name in TASKS:
        cls = task_class(name)
        assert issubclass(cls, CompositionalTask) and cls.name == name
        task = make_task(TaskSpec(4, 2, 3, teacher_width=4, n_ref=2000, task=name))
        assert type(task) is cls and task.input_width == 3 + (task.spec.d_context if has_context(name) else 0)
    assert task_class(DEFAULT_TASK) is CompositionalTask and not has_context(DEFAULT_TASK)


def test_the_configs_choice_is_the_registrys_names():
    field = {f.name: f for f in dataclasses.fields(TaskConfig)}["task"]
    assert tuple(field.metadata["check"].choices) == tuple(TASKS)
    assert field.default == field.metadata["since"] == DEFAULT_TASK
    for name in TASKS:
        assert validate({"task": name}).task.task == name


@pytest.mark.parametrize("check", [
    lambda: validate({"task": "bogus"}),
    lambda: TaskSpec(4, 2, 3, task="bogus"),
    lambda: task_class("bogus"),
    lambda: check_task("bogus"),
])
def test_an_unknown_task_is_one_line_naming_the_registered_ones(check):
    with pytest.raises(ValueError) as exc:
        check()
    assert str(exc.value) == f"task: expected one of {ALLOWED}; got 'bogus'"


def test_a_bad_task_in_a_config_is_a_config_error():
    with pytest.raises(ConfigError):
        validate({"task": "bogus"})


def test_task_spec_takes_its_defaults_from_the_config():
    config = TaskConfig()
    spec_fields = {f.name: f for f in dataclasses.fields(TaskSpec)}
    shared = [f.name for f in dataclasses.fields(TaskConfig) if f.name in spec_fields]
    assert {"task", "d_context", "teacher_width", "noise", "holdout_frac", "complexity_mix"} <= set(shared)
    spec = TaskSpec(n_skills=config.n_skills, complexity=1, d_in=config.d_in)
    for name in shared:
        want = getattr(config, name)
        assert getattr(spec, name) == (tuple(want) if isinstance(want, list) else want), name
    assert GridConfig().task == config


def test_no_module_but_the_registry_spells_a_task_name():
    """A variant's name is a string constant in the registry only (docs and comments aside): every
    other module imports it."""
    found = []
    for package in ("simulations", "fits", "figures", "theory", "bench"):
        for path in (ROOT / package).rglob("*.py"):
            if path.name == "task_registry.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and node.value in TASKS:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []
