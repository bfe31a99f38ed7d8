"""Every routed arm's k* per cell and its law's band along the task complexity s: `kstar_arms.parquet`,
the tidy table the figure `kstar_complexity` draws (one line per arm).

Per arm, the k* is the estimand its law is fitted on (`fits.law.ESTIMAND_OF` of the arm's k_source: the
run's `--k-source` for a learned router, the argmin for the oracle's, whose curve is flat past s r by
construction), with its seed-cluster bootstrap 95 % CI and whether the law used the cell (censored
cells, and under the continuous k* the cells whose smooth fit put k* on the edge, are left out). The law
rows are the arm's fitted law and the 95 % band of its mean (`fits.law.law_band`) on N_CURVE values of
s log-spaced over the arm's tested s, at every (m, h, T) of its cells; an arm without a law has none.

The fits write it for every store: with routing controls one arm per `by_router` entry, else the one arm
at the top level of optimal_k.json.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fits.cells import censored_column
from fits.law import ESTIMAND_OF, law_band, law_cells

TABLE = "kstar_arms.parquet"
N_CURVE = 60  # points on each law curve
KEYS = ["complexity", "n_train", "width", "n_experts"]
COLUMNS = ["arm", "k_source", "kind", *KEYS, "k_star", "ci_lo", "ci_hi", "in_law", "censored"]


def _ci(values) -> np.ndarray:
    """(n, 2) float bounds from a column of (lo, hi) pairs; NaN where a pair is missing."""
    rows = [v if isinstance(v, (list, tuple, np.ndarray)) and len(v) == 2 else (np.nan, np.nan)
            for v in values]
    out = np.array(rows, dtype=float).reshape(-1, 2)
    return np.where(np.isfinite(out), out, np.nan)


def measured_rows(arm: str, cells: pd.DataFrame, k_source: str) -> pd.DataFrame:
    """One row per cell: the arm's k* from `k_source`, its CI, its censoring and whether the law used
    it (`fits.law.law_cells`, the law's own rule)."""
    name = ESTIMAND_OF[k_source]
    k = cells[name].astype(float).to_numpy()
    flag = cells["censored" if k_source == "continuous" else censored_column(name)].fillna("").astype(str)
    censored, _, keep = law_cells(cells, k_source)
    ci = _ci(cells[f"{name}_ci"])
    out = cells[KEYS].astype(float).reset_index(drop=True)
    out.insert(0, "kind", "cell")
    out.insert(0, "k_source", k_source)
    out.insert(0, "arm", arm)
    out["k_star"], out["ci_lo"], out["ci_hi"] = k, ci[:, 0], ci[:, 1]
    out["in_law"] = pd.array(keep.to_numpy(), dtype="boolean")
    out["censored"] = pd.array(np.where(censored.to_numpy(), flag.to_numpy(), "no"), dtype="string")
    return out


def law_rows(arm: str, cells: pd.DataFrame, law: dict | None, k_source: str) -> pd.DataFrame:
    """The arm's law and its 95 % band along s at every (m, h, T) of its cells; no rows without a law."""
    parts = []
    for (m, h, t), at in cells.groupby(KEYS[1:]) if law is not None else ():
        xs = np.sort(at["complexity"].astype(float).unique())
        grid = pd.DataFrame({"complexity": np.geomspace(xs.min(), xs.max(), N_CURVE) if len(xs) > 1 else xs})
        grid["n_train"], grid["width"], grid["n_experts"] = float(m), float(h), float(t)
        parts.append(law_band(law, grid).assign(arm=arm, k_source=k_source, kind="law"))
    if not parts:
        return pd.DataFrame(columns=COLUMNS)
    out = pd.concat(parts, ignore_index=True)
    out["in_law"] = pd.array([pd.NA] * len(out), dtype="boolean")
    out["censored"] = pd.array([pd.NA] * len(out), dtype="string")
    return out[COLUMNS]


def kstar_arms_table(arms: dict[str, tuple[pd.DataFrame, dict | None, str]]) -> pd.DataFrame:
    """The table over `arms` ({name: (its per-cell fits, its law as optimal_k.json has it or None, the
    k_source of its k*)}), in the given order: each arm's cell rows, then its law rows."""
    parts = []
    for arm, (cells, law, k_source) in arms.items():
        cells = pd.DataFrame(cells)
        parts += [measured_rows(arm, cells, k_source), law_rows(arm, cells, law, k_source)]
    parts = [p for p in parts if len(p)]
    if not parts:
        return _typed(pd.DataFrame(columns=COLUMNS))
    return _typed(pd.concat(parts, ignore_index=True)[COLUMNS])


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """The table's column types (Parquet-stable: nullable bool and string where law rows have none)."""
    return df.astype({"arm": "string", "k_source": "string", "kind": "string",
                      **{c: float for c in [*KEYS, "k_star", "ci_lo", "ci_hi"]},
                      "in_law": "boolean", "censored": "string"})
