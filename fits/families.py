"""The task families the fits read, from the one family registry (simulations.families).

Each family's `schema` module defines its row record and the fits' view of it: the `--metric` choices,
the raw columns and the mapping onto the fits' generic table (SRAVEN: complexity = R, error = 1 -
accuracy; docs/fits.md), the settings that must take one value per cell, and the parts of the fits
skipped for it. This module keeps no list or alias of its own: `FAMILIES` holds the schema of every
grid family (the stores the fits read), `REGRESSION` the default family's, and `family_of` is the
registry's `family_of_rows`.
"""

from __future__ import annotations

from simulations.families import DEFAULT, GRID_FAMILIES, get_schema
from simulations.families import family_of_rows as family_of
from simulations.families.record import Schema as Family

FAMILIES: dict[str, Family] = {s.name: s for s in map(get_schema, GRID_FAMILIES)}
REGRESSION = FAMILIES[DEFAULT]

__all__ = ["FAMILIES", "REGRESSION", "Family", "family_of"]
