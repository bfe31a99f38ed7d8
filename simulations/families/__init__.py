"""Task families: what the shared grid driver (simulations.grid) needs to know about one experiment.

The driver owns everything that does not depend on the task: grouping models into bundles, the
executors (in-process, worker processes, Ray), the atomic results store, `--resume`, the manifest and
the CLI. A family supplies the rest: its config dataclass and validation, its cells, which cells may
share a bundle and in which order, the function that trains one bundle and returns its rows, the
columns every row must have, a time estimate and a bundle's display name.

Bundles carry their family's *name*, not the Family object, so they pickle cheaply and the top-level
`simulations.grid.run_bundle` finds the trainer again in a spawned or Ray worker. Families are
registered by module path and imported on first use, so importing this module is cheap and has no
cycles (families import the driver's helpers, never the reverse at import time).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import Any

# name -> module defining `FAMILY`; the first is the default (stores without a "family" key are it)
REGISTRY = {"regression": "simulations.regression", "sraven": "simulations.sraven.family"}
DEFAULT = "regression"


@dataclass(frozen=True)
class Family:
    """One experiment's contribution to the grid driver (see the module docstring).

    cells(config) -> list of canonical cell dicts, each with "cell_id" (seeds excluded); group(cell) ->
    a key: only cells with equal keys share a bundle; order(spec) -> the sort key of a model inside its
    group before the group is cut into bundles of `max_models_per_bundle`; train(bundle) -> the
    bundle's rows (one per model, with at least `required_columns`); estimate(bundles) -> seconds to
    train them one after another; label(bundle) -> its name in progress and error messages;
    out_prefix: the default results directory is results/<out_prefix><config.name>.
    """

    name: str
    config_cls: type
    validate: Callable[[dict[str, Any]], Any]
    presets: str  # the package whose presets/<name>.yaml hold the built-in configs
    default_preset: str
    cells: Callable[[Any], list[dict[str, Any]]]
    group: Callable[[dict[str, Any]], tuple]
    order: Callable[[Any], tuple]
    train: Callable[[Any], Any]
    required_columns: tuple[str, ...]
    estimate: Callable[[list[Any]], float]
    label: Callable[[Any], str]
    out_prefix: str = ""


def get_family(name: str) -> Family:
    """The registered family `name` (imported on first use)."""
    if name not in REGISTRY:
        from simulations.config import ConfigError

        raise ConfigError(f"family: expected one of {', '.join(REGISTRY)}; got {name!r}")
    return import_module(REGISTRY[name]).FAMILY


def family_of(config: Any) -> Family:
    """The family of a config object (its class's `family` attribute)."""
    return get_family(getattr(type(config), "family", DEFAULT))
