"""A family's row record: the columns its rows have, each with its role, and the fits' view of them.

One definition per family (its `schema` module) gives both sides: the columns the driver checks before
a bundle is written (`required_columns`) and what the fits read (`raw_columns`, `other_cell_fields`,
the metrics and the mapping onto the fits' generic table), so a family's columns are listed once. A
record may take its cell's columns from its config's field metadata (`config_columns`) rather than list
them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from simulations.config_schema import settings

if TYPE_CHECKING:
    import pandas as pd

#: What a column is: "id" identifies a row (cell_id, seed, k), "axis" places its cell on a generic fits
#: axis, "setting" must take one value per (cell, k, seed), "metric" and "measure" are measured,
#: "provenance" says what produced it.
ROLES = ("id", "axis", "setting", "metric", "measure", "provenance")


@dataclass(frozen=True)
class Column:
    """One column of a family's rows: its role (ROLES), whether every row must have it, and whether the
    fits' mapping onto the generic table reads it."""

    name: str
    role: str
    required: bool = True
    fits: bool = False

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role: expected one of {', '.join(ROLES)}; got {self.role!r} ({self.name})")


@dataclass(frozen=True)
class Schema:
    """A family's record (`columns`, in row order) and the fits' view of its rows: its `--metric`
    choices (-> error column of the generic table; empty: the fits do not read this family), the
    mapping onto the generic table (None: the rows are the generic table), what each error column is,
    how the report names the factors and what each generic factor is made of, the parts of the
    fits skipped for it (part -> why), and `k_eval_metrics`: the `--metric` choices -> the error column
    the inference-time-k fit reads in the store's k_eval table (after the mapping); a metric not listed
    has no inference-time-k answer; `k_eval_lists`: the rows' list columns (one value per k_eval =
    1..T) -> the columns of the store's k_eval table they become (simulations.results)."""

    name: str
    columns: tuple[Column, ...]
    metrics: dict[str, str] = field(default_factory=dict)
    to_generic: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    error_of: dict[str, str] = field(default_factory=dict)
    factor_names: dict[str, str] = field(default_factory=dict)
    mapping: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    k_eval_metrics: dict[str, str] = field(default_factory=dict)
    k_eval_lists: dict[str, str] = field(default_factory=dict)

    @property
    def required_columns(self) -> tuple[str, ...]:
        """The columns every row must have (checked before a bundle is written)."""
        return tuple(c.name for c in self.columns if c.required)

    @property
    def raw_columns(self) -> tuple[str, ...]:
        """The columns the mapping onto the generic table reads (none without a mapping)."""
        return tuple(c.name for c in self.columns if c.fits) if self.to_generic is not None else ()

    @property
    def other_cell_fields(self) -> tuple[str, ...]:
        """The settings that must take one value per (cell, k, seed): the fits name the one that differs
        when rows of one cell disagree."""
        return tuple(c.name for c in self.columns if c.role == "setting")

    def check(self, rows: pd.DataFrame, what: str) -> None:
        """Raise ValueError naming the required columns `rows` lack (`what`: the rows' name)."""
        missing = [c for c in self.required_columns if c not in rows.columns]
        if missing:
            raise ValueError(f"{what}: rows lack required columns {missing}")


def columns(role: str, *names: str, required: bool = True, fits: bool = False) -> tuple[Column, ...]:
    """Columns of one role and flags, for writing a record compactly."""
    return tuple(Column(n, role, required, fits) for n in names)


def config_columns(cls: type, *, axes: bool, roles: Mapping[str, str] | None = None,
                   names: Mapping[str, str] | None = None) -> tuple[Column, ...]:
    """The columns a family's rows carry of its config class `cls` (simulations.config_schema): each
    hashed setting of its axes section (`axes=True`) or of its other hashed sections (`axes=False`;
    runtime settings are in no row), in the config's order, under its flat name (`names` renames one, e.g.
    the `seeds` axis is each row's `seed`), of role "axis" in the axes section and "setting" elsewhere
    (`roles` gives another, by the setting's name); required unless the setting has a `since` value (the
    stores written before it lack it)."""
    roles, names = roles or {}, names or {}
    return tuple(Column(names.get(name, name), roles.get(name, "axis" if axes else "setting"),
                        required="since" not in f.metadata)
                 for name, (sec, f) in settings(cls).items()
                 if sec.metadata["hashed"] and sec.metadata["axes"] == axes)
