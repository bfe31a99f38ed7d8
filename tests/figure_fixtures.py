"""A small results store for the figure tests: `fits.synthetic.planted_results` written to disk.

The rows come from the fits' planted-law generator (exactly the store's schema, k* growing with the
task complexity); here they are written the way the grid writes them (`simulations.results`: one
Parquet file per bundle plus `manifest.json`), with a few diverged runs and the smallest complexity
marked as having no held-out combinations, so every branch the figures draw is exercised.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fits.regime import main as regime_main
from fits.synthetic import planted_results
from simulations.families.regression.config import GridConfig
from simulations.results import REQUIRED_COLUMNS, write_bundle, write_manifest

COMPLEXITIES = (1, 2, 4, 8)


def fixture_rows() -> pd.DataFrame:
    """The fixture's rows: 4 complexities x 2 data sizes x 2 widths x 8 k x 3 seeds of the learned arm
    (the planted law), plus the controls: oracle, teacher-expert and dense arms whose errors are the
    learned ones rescaled, with routing measures of the documented shape (the oracle's recall is
    min(k, s) / s); every required column of the store's record (the settings the planted rows lack at
    the config's defaults)."""
    df = planted_results(complexities=COMPLEXITIES, diverged_frac=0.01, rng_seed=1)
    df.loc[df["complexity"] == min(COMPLEXITIES), "n_heldout_combos"] = 0
    df["route_free_nmse"] = 1 - df["complexity"] / 16
    df["route_free_nmse_ood"] = df["route_free_nmse"] + 0.05  # the OOD split's own baseline
    rng = np.random.default_rng(2)
    arms = []
    for (router, experts), scale in {("learned", "learned"): 1.0, ("oracle", "learned"): 0.3,
                                     ("learned", "teacher"): 0.6, ("dense", "learned"): 1.1}.items():
        arm = df.copy()
        for col in ("test_mse_id", "test_mse_ood", "test_nmse_id", "test_nmse_ood"):
            arm[col] = arm[col] * scale
        chance = np.minimum(1.0, arm["k"] / 16)
        recall = np.minimum(arm["k"], arm["complexity"]) / arm["complexity"]
        if router == "learned":
            recall = chance + (recall - chance) * rng.uniform(0.2, 0.8, len(arm))
        arm["routing_recall"] = np.nan if router == "dense" else recall
        arm["routing_recall_baseline"] = np.nan if router == "dense" else chance
        arm["routing_gate_mass"] = arm["routing_recall"]
        arm["routing_gate_mass_baseline"] = arm["routing_recall_baseline"]
        arm["router"], arm["experts"] = router, experts
        arm["bundle_id"] = arm["bundle_id"] + f"-{router}-{experts}"
        arm["cell_id"] = arm["cell_id"] + f"-{router}-{experts}"  # a cell's arm is part of its identity
        arms.append(arm)
    out = pd.concat(arms, ignore_index=True)
    for split in ("id", "ood"):
        base = out["route_free_nmse_ood" if split == "ood" else "route_free_nmse"]
        out[f"rel_nmse_{split}"] = out[f"test_nmse_{split}"] / base
        # inference-time k: the trained error, growing away from the training k
        k_eval = np.arange(1, 17)
        pairs = zip(out[f"test_mse_{split}"], out["k"], strict=True)
        out[f"k_eval_mse_{split}"] = [mse * (1 + 0.05 * np.abs(np.log2(k_eval / k))) for mse, k in pairs]
    # the record's other required columns (simulations.families.regression.schema): the grid config's
    # default settings and the library versions
    fill = {**GridConfig().to_dict(), "numpy_version": "none", "python_version": "none"}
    return out.assign(**{c: fill[c] for c in REQUIRED_COLUMNS if c not in out.columns})


def write_store(df: pd.DataFrame, path: Path) -> Path:
    """Write `df` as a results store: one Parquet file per bundle_id, plus manifest.json."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for bundle, part in df.groupby("bundle_id"):
        write_bundle(path, str(bundle), part.reset_index(drop=True))
    write_manifest(path, {"bundles": sorted(df["bundle_id"].unique().tolist()), "n_rows": len(df)})
    return path


def write_regime_store(path: Path) -> Path:
    """A regime sweep of two variants (`python -m simulations.families.regression.regime`'s layout: one
    grid store per variant), made from the fixture's learned and teacher-expert rows."""
    rows = fixture_rows()
    variants = {"base": ("learned", "learned"), "teacher-experts": ("learned", "teacher")}
    for name, (router, experts) in variants.items():
        write_store(rows[(rows.router == router) & (rows.experts == experts)], Path(path) / name)
    return Path(path)


def write_regime_fits(path: Path) -> Path:
    """The fits of that sweep, as figure `regime_map` reads them: the sweep under path/sweep, summarised
    by `python -m fits.regime` into path/fits (its regime.parquet); returns path/fits."""
    sweep, out = write_regime_store(Path(path) / "sweep"), Path(path) / "fits"
    assert regime_main([str(sweep), "--out", str(out)]) == 0
    return out
