"""Task families: one registry of the experiments, each a package simulations/families/<name>/.

A family's package holds its config, task, trainer, presets and `schema` (its row record and the view of
its rows the fits use: simulations.families.record). The families that run on the shared grid driver
(simulations.driver) have a `family` module whose `FAMILY` gives the driver the rest, and a `schema`
module whose `SCHEMA` is that record: its config
dataclass and validation, its cells, which cells may share a bundle and in which order, the function
that trains one bundle and returns its rows, a time estimate and a bundle's display name. The driver
owns everything that does not depend on the task: bundles, executors, the store, `--resume`, the CLI.

Bundles carry their family's *name*, not the Family object, so they pickle cheaply and the top-level
`simulations.driver.run_bundle` finds the trainer again in a spawned or Ray worker. Families are
registered by package path and imported on first use, so importing this module is cheap and has no
cycles (families import the driver's helpers, never the reverse at import time).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from simulations.config_schema import ConfigError
from simulations.families.record import Schema

#: The families' names: the only place they are spelled (others import these).
REGRESSION = "regression"
SRAVEN = "sraven"
SOFTMOE = "softmoe"

# name -> package; the first is the default (stores without a "family" key are it)
REGISTRY = {
    REGRESSION: "simulations.families.regression",
    SRAVEN: "simulations.families.sraven",
    SOFTMOE: "simulations.families.softmoe",
}
DEFAULT = REGRESSION
# The families the grid driver runs; Soft MoE runs its two experiments itself (its package's CLI).
GRID_FAMILIES = (REGRESSION, SRAVEN)


@dataclass(frozen=True)
class Family:
    """One experiment's contribution to the grid driver (see the module docstring).

    cells(config) -> list of canonical cell dicts, each with "cell_id" (seeds excluded); group(cell) ->
    a key: only cells with equal keys share a bundle; order(spec) -> the sort key of a model inside its
    group before the group is cut into bundles of `max_models_per_bundle`; train(bundle) -> the
    bundle's rows (one per model, with at least `required_columns`); estimate(bundles) -> seconds to
    train them one after another; label(bundle) -> its name in progress and error messages;
    out_prefix: the default results directory is results/<out_prefix><config.name>; its presets (every
    file of `presets`/presets/ but the sweeps) are its CLI's `--preset` choices;
    estimate_is_bound: `estimate` is an upper bound (it assumes no early stopping) rather than a forecast.
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
    estimate: Callable[[list[Any]], float]
    label: Callable[[Any], str]
    out_prefix: str = ""
    estimate_is_bound: bool = False

    @property
    def required_columns(self) -> tuple[str, ...]:
        """The columns every row must have: the family's row record's (its `schema`)."""
        return get_schema(self.name).required_columns


def _check_name(name: str, allowed: tuple[str, ...]) -> None:
    if name not in allowed:
        raise ConfigError(f"family: expected one of {', '.join(allowed)}; got {name!r}")


def get_family(name: str) -> Family:
    """The grid family `name` (imported on first use)."""
    _check_name(name, GRID_FAMILIES)
    return import_module(f"{REGISTRY[name]}.family").FAMILY


def get_schema(name: str) -> Schema:
    """The row record and fits' view of the grid family `name` (imported on first use)."""
    _check_name(name, GRID_FAMILIES)
    return import_module(f"{REGISTRY[name]}.schema").SCHEMA


def family_of_rows(df: Any) -> str:
    """The grid family of a results table: its `family` column's one value; a table without one is the
    default family (stores written before families existed). Mixed or unknown values raise ValueError."""
    if "family" not in df.columns:
        return DEFAULT
    values = sorted(df["family"].dropna().astype(str).unique())
    if not values:
        return DEFAULT
    if len(values) > 1:
        raise ValueError(f"rows of several families mixed ({', '.join(values)}): fit one store at a time")
    if values[0] not in GRID_FAMILIES:
        raise ValueError(f"unknown family {values[0]!r}: allowed values are {', '.join(GRID_FAMILIES)}")
    return values[0]


def family_of(config: Any) -> Family:
    """The family of a config object (its class's `family` attribute)."""
    return get_family(getattr(type(config), "family", DEFAULT))


__all__ = ["DEFAULT", "GRID_FAMILIES", "REGISTRY", "REGRESSION", "SOFTMOE", "SRAVEN", "Family", "get_family",
           "get_schema", "family_of", "family_of_rows"]
