"""A small results store for the figure tests: `fits.synthetic.planted_results` written to disk.

The rows come from the fits' planted-law generator (exactly the store's schema, k* growing with the
task complexity); here they are written the way the grid writes them (`simulations.results`: one
Parquet file per bundle plus `manifest.json`), with a few diverged runs and the smallest complexity
marked as having no held-out combinations, so every branch the figures draw is exercised.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fits.synthetic import planted_results
from simulations.results import write_bundle, write_manifest

COMPLEXITIES = (1, 2, 4, 8)


def fixture_rows() -> pd.DataFrame:
    """The fixture's rows: 4 complexities x 2 data sizes x 2 widths x 8 k x 3 seeds."""
    df = planted_results(complexities=COMPLEXITIES, diverged_frac=0.01, rng_seed=1)
    df.loc[df["complexity"] == min(COMPLEXITIES), "n_heldout_combos"] = 0
    return df


def write_store(df: pd.DataFrame, path: Path) -> Path:
    """Write `df` as a results store: one Parquet file per bundle_id, plus manifest.json."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for bundle, part in df.groupby("bundle_id"):
        write_bundle(path, str(bundle), part.reset_index(drop=True))
    write_manifest(path, {"bundles": sorted(df["bundle_id"].unique().tolist()), "n_rows": len(df)})
    return path
