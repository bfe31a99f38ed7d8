"""The regression family's task registry: every task variant's name and the class that builds its
teacher (docs/tasks.md: the compositional task, "The contextual task").

This is the one place a variant is named. The config's `task` choice (TaskConfig: its allowed values, and
its one-line error naming them), TaskSpec's check, each task class's `name`, `make_task` and every
reader of a cell's task take the names from here. A class is given by its module path and imported on
first use (`task_class`): the task modules import this one for their names, and TaskSpec takes its
defaults from the config, which takes its choices from here, so this module imports none of them.
A new variant is one class (a CompositionalTask subclass with its `name`) and one entry here.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

#: The variants' names (every other module imports these).
COMPOSITIONAL = "compositional"
CONTEXTUAL = "contextual"

#: name -> the class that builds its teacher ("module:class", imported on first use). The first is the
#: default: the task of every store written before the `task` setting existed.
TASKS = {
    COMPOSITIONAL: "simulations.families.regression.tasks:CompositionalTask",
    CONTEXTUAL: "simulations.families.regression.contextual:ContextualTask",
}
DEFAULT_TASK = next(iter(TASKS))


def check_task(name: Any) -> str:
    """`name` if it names a task; else a ValueError, in one line, naming the allowed values."""
    if name not in TASKS:
        raise ValueError(f"task: expected one of {', '.join(TASKS)}; got {name!r}")
    return name


def task_class(name: str) -> Any:
    """The task class (CompositionalTask or a subclass) that builds the teacher of task `name`."""
    module, _, cls = TASKS[check_task(name)].partition(":")
    return getattr(import_module(module), cls)


def make_task(spec: Any) -> Any:
    """The teacher of a TaskSpec: an instance of the class its `task` names."""
    return task_class(spec.task)(spec)


def has_context(name: str) -> bool:
    """Whether the student's router reads a context besides x on task `name` (its class's
    `has_context`: the contextual task's d_context columns)."""
    return task_class(name).has_context
