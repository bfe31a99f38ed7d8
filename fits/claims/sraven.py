"""The SRAVEN converge blocks of docs/sraven.md and README.md, from the four converge references (the
score function and pathwise, each on whole-problem and per-feature OOD error; fits.references)."""

from __future__ import annotations

import pandas as pd

from fits.claims.docs import _cens, _pct, _sraven_acc
from fits.claims.reference import cells, doc, f2, kspan, num, ordered

# estimator -> (whole-problem reference, per-feature reference); the first is the composing estimator
CONVERGE = {"score": ("sraven-converge", "sraven-converge-feat"),
            "pathwise": ("sraven-converge-pathwise", "sraven-converge-pathwise-feat")}
PLATEAU_R = (4, 8)  # the levels of R the plateau criterion names


def _plateau(name: str) -> pd.DataFrame:
    return pd.DataFrame(doc(name)["plateau"]["groups"]).set_index("n_rules")


def _best_acc(name: str) -> pd.Series:
    """Seed-mean accuracy per R at its best k (1 - the smallest seed-mean error over k)."""
    c = cells(name)
    return pd.Series([1 - min(m.values()) for m in c["mean_loss"]], index=c["complexity"])


def converge_regime() -> str:
    """Per estimator and R: how far the models got (OOD accuracy, mean over k and at the best k) and
    whether they ended at their plateau (the plateau block)."""
    rows = ["| estimator | R | per-feature OOD accuracy: mean over k, best k | whole-problem OOD accuracy: "
            "mean over k, best k | at plateau (stopped early) | median steps | largest rise, largest gap |",
            "|---|---|---|---|---|---|---|"]
    for est, (whole, feat) in CONVERGE.items():
        plateau = _plateau(feat)
        fm, fb, wm, wb = _sraven_acc(feat), _best_acc(feat), _sraven_acc(whole), _best_acc(whole)
        for r in sorted(fm.index):
            p = plateau.loc[r]
            rows.append(f"| {est} | {num(r)} | {f2(fm[r])}, {f2(fb[r])} | {f2(wm[r])}, {f2(wb[r])} | "
                        f"{_pct(p['at_plateau'])} ({_pct(p['stopped_early'])}) | {num(p['median_steps'])} | "
                        f"{f2(p['rise_max'])}, {f2(p['gap_max'])} |")
    return "\n".join(rows)


def converge_k_table() -> str:
    """Per estimator, error and R: the k estimands with their seed-cluster intervals and inference-time k."""
    rows = ["| estimator | OOD error | R | k enough (5 %) [CI] | argmin [CI] | one paired SE [CI] "
            "| best k_eval = k_train |", "|---|---|---|---|---|---|---|"]
    for est, names in CONVERGE.items():
        for name, what in zip(names, ("whole problem", "per feature"), strict=True):
            ke = {r["complexity"]: r["equal"] for r in doc(name)["k_eval"]["by_complexity"]}
            for _, r in ordered(cells(name), "complexity").iterrows():
                s = r["complexity"]
                rows.append(f"| {est} | {what} | {num(s)} | {_cens(r, 'k_enough')} | {_cens(r, 'k_star')} | "
                            f"{_cens(r, 'k_one_se')} | {_pct(ke[s]) if s in ke else '-'} of cells |")
    return "\n".join(rows)


def converge_reading() -> str:
    """The plateau criterion at R = 4 and 8 and the k estimands' spread, in one paragraph."""
    parts = []
    for est, (whole, feat) in CONVERGE.items():
        p = _plateau(feat)
        at = ", ".join(f"{_pct(p.loc[r, 'at_plateau'])} at R = {r}" for r in PLATEAU_R if r in p.index)
        c = cells(whole)
        levels = ", ".join(num(v) for v in sorted(c["complexity"]))
        parts.append(f"{est}: at plateau {at}; k enough on whole-problem OOD error {kspan(c['k_enough'])}, "
                     f"argmin {kspan(c['k_star'])} over R = {levels}")
    return "Converge preset, " + "; ".join(parts) + "."
