"""What every fits block reads: the options, the checked store, its family, its arms and the primary
arm's per-cell k* and law (which the top level of optimal_k.json reports and most blocks build on)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from fits.arm_fit import ArmFit
from fits.families import Family
from fits.options import FitOptions


@dataclass(frozen=True)
class FitContext:
    """options: the run's settings; store: every checked row; family: the store's task family; arms:
    the rows of each routed arm present (registry order); primary: the name of the arm at the top level;
    fitted: that arm's per-cell k* and law."""

    options: FitOptions
    store: pd.DataFrame
    family: Family
    arms: dict[str, pd.DataFrame]
    primary: str
    fitted: ArmFit

    @property
    def rows(self) -> pd.DataFrame:
        """The primary arm's rows."""
        return self.arms[self.primary]
