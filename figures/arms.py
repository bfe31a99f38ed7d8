"""Which arm each row of a results table belongs to, from the arms registry (`simulations.arms`), so
that no figure spells an arm name: a store without `router` / `experts` columns is all primary arm."""

from __future__ import annotations

import pandas as pd

from simulations.arms import arm, primary

ARM_COLUMNS = ["router", "experts"]


def arm_names(df: pd.DataFrame) -> pd.Series:
    """Each row's arm name (`simulations.arms.Arm.name`)."""
    if not set(ARM_COLUMNS) <= set(df.columns):
        return pd.Series(primary().name, index=df.index)
    pairs = list(zip(df["router"], df["experts"], strict=True))
    names = {p: arm(*p).name for p in set(pairs)}
    return pd.Series([names[p] for p in pairs], index=df.index, dtype=object)


def primary_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of the primary arm (learned router, learned experts)."""
    return df[arm_names(df) == primary().name].reset_index(drop=True)
