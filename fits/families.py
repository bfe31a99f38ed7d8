"""The task families the fits read, from the one family registry (simulations.families).

Each family's `schema` module defines its row record and the fits' view of it: the `--metric` choices,
the raw columns and the mapping onto the fits' generic table (SRAVEN: complexity = R, error = 1 -
accuracy; docs/fits.md), the settings that must take one value per cell, and the parts of the fits
skipped for it. This module keeps no list of its own: `FAMILIES` holds the schema of every grid family
(the stores the fits read).
"""

from __future__ import annotations

from simulations.families import DEFAULT, GRID_FAMILIES, get_schema
from simulations.families import family_of_rows as family_of
from simulations.families.record import Schema as Family
from simulations.families.sraven.schema import SCHEMA as SRAVEN
from simulations.families.sraven.schema import SRAVEN_ACCURACY, SRAVEN_METRICS, sraven_table

FAMILIES: dict[str, Family] = {s.name: s for s in map(get_schema, GRID_FAMILIES)}
REGRESSION = FAMILIES[DEFAULT]
#: The columns of a SRAVEN store the mapping reads.
SRAVEN_COLUMNS = SRAVEN.raw_columns


__all__ = ["FAMILIES", "REGRESSION", "SRAVEN", "SRAVEN_ACCURACY", "SRAVEN_COLUMNS", "SRAVEN_METRICS",
           "Family", "family_of", "sraven_table"]
