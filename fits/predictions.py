"""`python -m fits.predictions [--out DIR]`: what the calibrated risk bound predicts for k*, written down
before the grid that measures it (the composing arm's law; docs/reference/predictions/).

The bound's constants come from the shipped reference results only (`theory_fit` of each SOURCES entry):
no number of the measured arm enters. For every cell of a design grid (s, m, h at T = 16, and fixed
active width W = k h) the predicted k* is the argmin of the calibrated bound over the grid's k; its
interval is the 2.5-97.5 % range over draws of the constants, each log-uniform within its bootstrap
interval and drawn independently (the fits' bootstrap correlations are not stored in full, so this
ignores them). The law's exponents b_s, b_m, b_h are an OLS fit of log k* on log s, log m, log h. Files:
cells.csv (one row per source and cell), laws.json, provenance.json (commit, time, the sources' own
provenance); refused from a dirty tree, so the commit that holds them predates any measurement.
"""

from __future__ import annotations

import json
import sys
import time
from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.api as sm

from fits.data import FitInputError
from fits.theory.bound_model import CONSTANTS, bound_curves
from simulations.arms import primary, reference
from simulations.atomic import staged_files
from simulations.cli import OneLineParser
from simulations.provenance import git_commit, tree_state

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "reference"
# (reference directory, arm whose calibrated bound is used): the learned arm of the law (ID error: the
# only fit whose estimation weight, the bound's k-cost, is identified) and the oracle of the standard grid
SOURCES = (("law", primary().name), ("standard", reference().name))
#: The design grid the composing arm's presets draw from (T = 16, S = 8): every cell they can hold.
DESIGN = {"complexity": (1, 2, 3, 4), "n_train": (1000, 2000, 4000, 8000, 16000), "width": (2, 4, 8, 16)}
ACTIVE_WIDTHS = (16, 32, 64)
KS = (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 16)
N_EXPERTS = 16
N_DRAWS = 200


def source_params(name: str, arm: str) -> tuple[dict, dict, dict]:
    """(estimate, bootstrap interval, task) of the calibrated bound fitted to `arm` in reference `name`."""
    tf = json.loads((REFERENCE / name / "optimal_k.json").read_text()).get("theory_fit", {})
    fit = tf.get("by_router", {}).get(arm)
    if not fit or not fit.get("fitted"):
        raise FitInputError(f"reference {name}: no fitted calibrated bound for arm {arm!r}")
    params = fit["params"]
    return ({c: params[c]["estimate"] for c in CONSTANTS}, {c: params[c]["ci95"] for c in CONSTANTS},
            fit["task"])


def design_points() -> pd.DataFrame:
    """Every (cell, k) of the design: fixed width (`fixed` = "h") and fixed active width ("kh")."""
    fixed_h = [dict(complexity=s, n_train=m, width=h, active_width=np.nan, k=k, fixed="h")
               for s, m, h, k in product(*DESIGN.values(), KS)]
    fixed_kh = [dict(complexity=s, n_train=m, width=w / k, active_width=w, k=k, fixed="kh")
                for s, m, w, k in product(DESIGN["complexity"], DESIGN["n_train"], ACTIVE_WIDTHS, KS)]
    return pd.DataFrame(fixed_h + fixed_kh).assign(n_experts=N_EXPERTS)


def argmin_k(points: pd.DataFrame, params: dict, task: dict) -> pd.Series:
    """The k of least bound per cell of `points` (cells keyed by fixed, s, m, h or W)."""
    total = bound_curves(points, params, task)["total"].to_numpy()
    cell_h = points["width"].where(points["fixed"] == "h", points["active_width"])
    frame = points.assign(total=total, cell_h=cell_h)
    best = frame.loc[frame.groupby(["fixed", "complexity", "n_train", "cell_h"])["total"].idxmin()]
    return best.set_index(["fixed", "complexity", "n_train", "cell_h"])["k"]


def predict(name: str, arm: str, n_draws: int = N_DRAWS, seed: int = 0) -> pd.DataFrame:
    """Predicted k* per cell of the design from one source, with the interval over constant draws."""
    est, ci, task = source_params(name, arm)
    points = design_points()
    point = argmin_k(points, est, task)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_draws):
        p = {c: float(np.exp(rng.uniform(*np.log(np.maximum(ci[c], 1e-12))))) for c in CONSTANTS}
        draws.append(argmin_k(points, p, task))
    d = pd.concat(draws, axis=1)
    out = pd.DataFrame({"k_star_pred": point, "k_star_lo": d.quantile(0.025, axis=1, interpolation="lower"),
                        "k_star_hi": d.quantile(0.975, axis=1, interpolation="higher")}).reset_index()
    return out.rename(columns={"cell_h": "width_or_active_width"}).assign(source=name, arm=arm)


def law(cells: pd.DataFrame) -> dict:
    """OLS of log k* on log s, log m, log h over the fixed-width cells: the predicted exponents."""
    c = cells[cells["fixed"] == "h"]
    X = sm.add_constant(np.log(c[["complexity", "n_train", "width_or_active_width"]].to_numpy(float)))
    fit = sm.OLS(np.log(c["k_star_pred"].to_numpy(float)), X).fit()
    return {"b_s": float(fit.params[1]), "b_m": float(fit.params[2]), "b_h": float(fit.params[3]),
            "r2": float(fit.rsquared), "n_cells": len(c)}


def predictions(n_draws: int = N_DRAWS) -> dict[str, str]:
    """{file name: text} of docs/reference/predictions/."""
    cells = pd.concat([predict(n, a, n_draws) for n, a in SOURCES], ignore_index=True)
    laws = {f"{n}:{a}": law(cells[cells["source"] == n]) for n, a in SOURCES}
    sources = {n: json.loads((REFERENCE / n / "provenance.json").read_text())["manifest"]["git_commit"]
               for n, _ in SOURCES}
    prov = {"commit": git_commit(), **tree_state(), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "sources": sources, "design": {**DESIGN, "active_width": ACTIVE_WIDTHS, "k": KS,
                                           "n_experts": N_EXPERTS}, "n_draws": n_draws}
    return {"cells.csv": cells.to_csv(index=False), "laws.json": json.dumps(laws, indent=1),
            "provenance.json": json.dumps(prov, indent=1)}


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m fits.predictions", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=REFERENCE / "predictions")
    p.add_argument("--draws", type=int, default=N_DRAWS, help="draws of the constants (default %(default)s)")
    args = p.parse_args(argv)
    try:
        if tree_state()["git_clean"] is not True:
            raise FitInputError("the working tree has uncommitted changes: a prediction must name its commit")
        files = predictions(args.draws)
    except FitInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with staged_files(args.out) as stage:
        for name, text in files.items():
            stage(name, lambda tmp, text=text: Path(tmp).write_text(text))
    print(f"wrote {', '.join(files)} to {args.out}")
    print(json.dumps(json.loads(files["laws.json"]), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
