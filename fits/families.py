"""The task families the fits read, from the one family registry (simulations.families).

Each family's `schema` module defines its row record and the fits' view of it: the `--metric` choices,
the raw columns and the mapping onto the fits' generic table (SRAVEN: complexity = R, error = 1 -
accuracy; docs/fits.md), the settings that must take one value per cell, and the parts of the fits
skipped for it. This module keeps no list of its own: `FAMILIES` holds the schema of every grid family
(the stores the fits read).
"""

from __future__ import annotations

import pandas as pd

from simulations.families import DEFAULT, GRID_FAMILIES, get_schema
from simulations.families.record import Schema as Family
from simulations.families.sraven.schema import SCHEMA as SRAVEN
from simulations.families.sraven.schema import SRAVEN_ACCURACY, SRAVEN_METRICS, sraven_table

FAMILIES: dict[str, Family] = {s.name: s for s in map(get_schema, GRID_FAMILIES)}
REGRESSION = FAMILIES[DEFAULT]
#: The columns of a SRAVEN store the mapping reads.
SRAVEN_COLUMNS = SRAVEN.raw_columns


def family_of(df: pd.DataFrame) -> str:
    """The family of a table: its `family` column's one value; a table without one is regression (stores
    written before families existed). Mixed or unknown values raise ValueError."""
    if "family" not in df.columns:
        return DEFAULT
    values = sorted(df["family"].dropna().astype(str).unique())
    if not values:
        return DEFAULT
    if len(values) > 1:
        raise ValueError(f"rows of several families mixed ({', '.join(values)}): fit one store at a time")
    if values[0] not in FAMILIES:
        raise ValueError(f"unknown family {values[0]!r}: allowed values are {', '.join(FAMILIES)}")
    return values[0]


__all__ = ["FAMILIES", "REGRESSION", "SRAVEN", "SRAVEN_ACCURACY", "SRAVEN_COLUMNS", "SRAVEN_METRICS",
           "Family", "family_of", "sraven_table"]
