"""A synthetic SRAVEN store with a planted law of k* against the rule pool size R.

Rows follow the SRAVEN store contract (one row per model, `family` = "sraven", the accuracy columns and
the settings) and are written the way a SRAVEN run writes them: one `bundle-<id>.parquet` per bundle plus
`manifest.json` with "family": "sraven". Each (R, seed) curve of whole-problem error against k is
`fits.curve.loss_curve` with its minimum at k*(R) = a R^b, shifted per (seed, R) (a seed's models share
its task: the shift moves the curve, not its argmin) and with independent noise per model, which is what
makes each cell's k* noisy. Accuracy is 1 - error; OOD error is higher, per-feature error lower.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from fits.curve import coefficient_a_for_minimum, loss_curve

T = 8
RULES = (2, 3, 4, 5, 6, 8)


def planted_k_star(n_rules, a: float = 1.0, b: float = 0.8):
    """The planted k*(R) = a R^b."""
    return a * np.asarray(n_rules, dtype=float) ** b


def sraven_rows(rules=RULES, n_seeds: int = 5, a: float = 1.0, b: float = 0.8, noise: float = 0.004,
                steps: int = 600, batch: int = 64, rng_seed: int = 0, diverged: int = 1,
                slope: float = 0.02) -> pd.DataFrame:
    """Rows of a SRAVEN store whose error-vs-k curves have their minimum at k*(R) = a R^b; `diverged`
    models (the first ones) are marked diverged with NaN accuracies, as the trainer writes them. `slope`
    is the curve's linear (estimation) term; lower it for a k* far beyond T, or the error saturates."""
    rng = np.random.default_rng(rng_seed)
    ks = np.arange(1, T + 1)
    p = 1.0
    rows = []
    for r in rules:
        k_star = float(planted_k_star(r, a, b))
        coef = float(coefficient_a_for_minimum(k_star, T, slope, p))
        for seed in range(n_seeds):
            shift = rng.normal(0.0, 0.01)
            err = loss_curve(ks, T, 0.1 + 0.03 * r + shift, coef, slope, p) + rng.normal(0.0, noise, len(ks))
            for k, e in zip(ks, err, strict=True):
                acc_id = float(np.clip(1.0 - e, 0.0, 1.0))
                rows.append({
                    "family": "sraven", "cell_id": f"R{r}-k{k}", "seed": seed, "k": int(k), "n_experts": T,
                    "n_rules": r, "distinct": np.nan, "permute": True, "steps": steps, "batch": batch,
                    "n_train": np.nan, "d_model": 32, "d_expert": 32, "n_heads": 4, "n_blocks": 2,
                    "lr": 3e-3, "balance": 0.01, "clip_norm": 1.0, "n_eval": 256,
                    "acc_train": min(1.0, acc_id + 0.02), "acc_id": acc_id,
                    "acc_ood": float(np.clip(acc_id - 0.1, 0.0, 1.0)),
                    "feat_acc_train": 1.0 - (1.0 - acc_id) / 4, "feat_acc_id": 1.0 - (1.0 - acc_id) / 3,
                    "feat_acc_ood": 1.0 - (1.1 - acc_id) / 3,
                    "ce_train": 1.0 - acc_id, "ce_id": 1.1 - acc_id, "ce_ood": 1.2 - acc_id,
                    "acc_id_unambiguous": acc_id, "ambiguous_id": 0.1,
                    "n_multisets_train": 4, "n_multisets_ood": 1, "router_entropy": 2.0,
                    "train_ce_last": 1.0 - acc_id, "diverged": False, "wall_s": 1.0,
                    "bundle_id": f"b{seed}", "config_hash": "synthetic", "git_commit": "synthetic",
                    "torch_version": "x", "numpy_version": "x", "python_version": "x", "device": "cpu",
                })
    df = pd.DataFrame(rows)
    acc = [c for c in df.columns if c.startswith(("acc_", "feat_acc_", "ce_"))]
    df.loc[: diverged - 1, "diverged"] = True
    df.loc[: diverged - 1, acc] = np.nan
    return df


def write_sraven_store(df: pd.DataFrame, path: Path, manifest: bool = True) -> Path:
    """`df` as a SRAVEN store: one bundle-<bundle_id>.parquet per bundle, plus manifest.json."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for bundle, part in df.groupby("bundle_id"):
        part.reset_index(drop=True).to_parquet(path / f"bundle-{bundle}.parquet", index=False)
    if manifest:
        doc = {"family": "sraven", "config": {"preset": "synthetic"}, "config_hash": "synthetic",
               "device": "cpu", "bundles": sorted(df["bundle_id"].unique().tolist()), "n_rows": len(df)}
        (path / "manifest.json").write_text(json.dumps(doc, indent=2))
    return path


#: The regime fixture's settings: directory -> (label stored in the curves, F, V); None: curves written
#: before the generator settings existed (no n_features / n_values columns, no label).
REGIME = {"baseline": ("baseline", 4, 8), "V6": ("V6", 4, 6), "F2": ("F2", 2, 8), "old": None}


def regime_curves(label: str, n_features: int | None, n_values: int | None, n_seeds: int = 2,
                  steps=(0, 10, 20), batch: int = 64, rng_seed: int = 0) -> pd.DataFrame:
    """A tidy curves table as `python -m simulations.families.sraven.curves` writes it (k = 2, R = 4):
    one row per seed, evaluation step and split, accuracies rising with the step plus noise."""
    rng = np.random.default_rng(rng_seed)
    rows = []
    for seed in range(n_seeds):
        for step in steps:
            for split in ("id", "ood"):
                feat = float(np.clip(0.2 + 0.02 * step + rng.normal(0, 0.02), 0, 1))
                rows.append({"k": 2, "n_rules": 4, "seed": seed, "distinct": np.nan, "permute": True,
                             "step": step, "problems_seen": step * batch, "split": split, "acc": feat ** 4,
                             "feat_acc": feat, "ce": 1.0 - feat, "train_ce": 1.0, "wall_s": 0.1 * step,
                             "label": label, "config_hash": "synthetic"})
    df = pd.DataFrame(rows)
    if n_features is not None:
        df = df.assign(n_features=n_features, n_values=n_values)
    return df


def write_regime_curves(root: Path, settings: dict | None = None) -> Path:
    """One learning-curve directory per setting under `root` (curves.parquet and a manifest.json)."""
    root = Path(root)
    for i, (name, spec) in enumerate((settings or REGIME).items()):
        label, F, V = spec if spec is not None else ("", None, None)
        (root / name).mkdir(parents=True, exist_ok=True)
        regime_curves(label, F, V, rng_seed=i).to_parquet(root / name / "curves.parquet", index=False)
        (root / name / "manifest.json").write_text(json.dumps({"what": "sraven learning curves",
                                                                "label": label, "complete": True}))
    return root


def write_converge_store(path: Path, rules=(2, 4), n_seeds: int = 2, checks=(0, 100, 200, 300)) -> Path:
    """A SRAVEN store trained with early stopping, as the converge preset writes it: the rows of
    `sraven_rows` for two estimators (pathwise and score, each its own bundles and cell ids), every model
    stopped at the last check, and per bundle a `curves-<bundle_id>.parquet` whose per-feature OOD
    accuracy rises to the row's."""
    base = sraven_rows(rules=rules, n_seeds=n_seeds, diverged=0)
    parts = [base.assign(estimator=est, cell_id=base["cell_id"] + f"-{est}",
                         bundle_id=base["bundle_id"] + est, steps_run=checks[-1], best_step=checks[-1],
                         stopped_early=True, patience=2, val_every=checks[1] - checks[0])
             for est in ("pathwise", "score")]
    rows = pd.concat(parts, ignore_index=True)
    write_sraven_store(rows, path)
    for bundle, part in rows.groupby("bundle_id"):
        curve = [{"cell_id": r.cell_id, "seed": r.seed, "step": step,
                  "feat_acc_ood": r.feat_acc_ood * (0.3 + 0.7 * step / checks[-1]),
                  "feat_acc_val": r.feat_acc_id * (0.3 + 0.7 * step / checks[-1])}
                 for r in part.itertuples() for step in checks]
        pd.DataFrame(curve).to_parquet(Path(path) / f"curves-{bundle}.parquet", index=False)
    return Path(path)
