"""The primary arm's rows of a results table, by the arms registry (`simulations.arms.arm_names`), so
that no figure spells an arm name: a store without `router` / `experts` columns is all primary arm."""

from __future__ import annotations

import pandas as pd

from simulations.arms import arm_names, primary


def primary_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of the primary arm (learned router, learned experts)."""
    return df[arm_names(df) == primary().name].reset_index(drop=True)
