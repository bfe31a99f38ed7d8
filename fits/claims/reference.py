"""What every claims block reads: the reference directories (docs/reference/) and the arms, and how a
number is written (two decimals, k as an integer, an interval or "not resolvable at this grid")."""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path

import pandas as pd

from fits.summary import interval_text
from simulations.arms import EXPERTS, primary, reference
from simulations.arms import arm as arm_of

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "reference"


# The arms the blocks read, from the registry: the learned router with learned experts, the oracle, and
# the learned router with the teacher's skills as experts.
LEARNED, ORACLE = primary(), reference()
TEACHER_KIND = next(k for k in EXPERTS.values() if k.needs_expert_out)
TEACHER = arm_of(LEARNED.router.name, TEACHER_KIND.name)


@cache
def doc(name: str) -> dict:
    return json.loads((REFERENCE / name / "optimal_k.json").read_text())


def cells(name: str, arm: str | None = None) -> pd.DataFrame:
    """The per-cell estimands of one arm of a reference (its primary arm by default)."""
    d = doc(name)
    return pd.DataFrame(d["by_router"][arm]["cells"] if arm else d["cells"])


def gate_rows(name: str) -> pd.DataFrame:
    return pd.DataFrame(doc(name)["gate_map"]["rows"])


def ks_of(name: str) -> list[float]:
    return json.loads((REFERENCE / name / "provenance.json").read_text())["manifest"]["config"]["k"]


def f2(x: float) -> str:
    """Two decimals, never "-0.00"."""
    return f"{round(x, 2) + 0.0:.2f}"


def signed(x: float) -> str:
    """Two decimals with a sign, never "-0.00"."""
    return f"{round(x, 2) + 0.0:+.2f}"


def num(x: float) -> str:
    """A k or an integer level as written in prose: 4, not 4.0."""
    return f"{x:g}"


def span(values) -> str:
    """The range of values, two decimals: "a-b" (or "a" when they agree)."""
    lo, hi = f2(min(values)), f2(max(values))
    return lo if lo == hi else f"{lo}-{hi}"


def kspan(values) -> str:
    """The range of k values: "a-b" (or "a")."""
    lo, hi = num(min(values)), num(max(values))
    return lo if lo == hi else f"{lo}-{hi}"


def estimate_ci(est: float, ci) -> str:
    """An estimate with its interval, or "not resolvable at this grid" (fits.summary.interval_text)."""
    return f"{f2(est)} {interval_text(est, ci)}"


def exponent(name: str, arm: str, factor: str, estimand: str = "enough") -> str:
    """A law exponent with its seed-cluster bootstrap interval, or "not resolvable at this grid"."""
    law = doc(name)["by_router"][arm]["laws_by_estimand"][estimand]["law"]
    e = law["exponents"].get(factor)
    if e is None:
        return "-"
    return estimate_ci(e["estimate"], e["ci95_bootstrap"])


def ordered(df: pd.DataFrame, by: str) -> pd.DataFrame:
    return df.sort_values(by, kind="stable")



def pct(x: float) -> str:
    """A share as a whole percentage, "50 %"."""
    return f"{x:.0%}".replace("%", " %")


def kci(r, col: str) -> str:
    """A k estimand of a cells row with its interval, as "k [lo, hi]"."""
    lo, hi = r[f"{col}_ci"]
    return f"{num(r[col])} [{num(lo)}, {num(hi)}]"


def kci_censored(r, col: str) -> str:
    """`kci`, followed by its censoring ("censored low" / "high") where the cells row has one."""
    cen = r["censored" if col == "k_star" else f"{col}_censored"]
    return kci(r, col) + (f", censored {cen}" if cen else "")


def dash(x, fmt: str = "{:.2f}") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def ci_cols(r, col: str, fmt: str = "{:.2f}") -> str:
    return f"{dash(r[col], fmt)} [{dash(r[col + '_lo'], fmt)}, {dash(r[col + '_hi'], fmt)}]"


