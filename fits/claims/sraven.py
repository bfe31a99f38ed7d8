"""The SRAVEN converge blocks of docs/sraven.md and README.md, from the four converge references (the
score function and pathwise, each on whole-problem and per-feature OOD error; fits.references)."""

from __future__ import annotations

import pandas as pd

from fits.claims.docs import _cens, _pct, _sraven_acc
from fits.claims.reference import cells, doc, f2, num, ordered

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
                        f"{p['rise_max']:.3f}, {p['gap_max']:.3f} |")
    return "\n".join(rows)


def converge_k_table() -> str:
    """Per estimator, error and R: the k estimands with their seed-cluster intervals and inference-time k."""
    rows = ["| estimator | OOD error | R | seed-mean error: best, spread over k | k enough (5 %) [CI] "
            "| argmin [CI] | one paired SE [CI] | best k_eval = k_train |", "|---" * 8 + "|"]
    for est, names in CONVERGE.items():
        for name, what in zip(names, ("whole problem", "per feature"), strict=True):
            ke = {r["complexity"]: r["equal"] for r in doc(name)["k_eval"]["by_complexity"]}
            for _, r in ordered(cells(name), "complexity").iterrows():
                s = r["complexity"]
                loss = list(r["mean_loss"].values())
                rows.append(f"| {est} | {what} | {num(s)} | {min(loss):.3f}, {max(loss) - min(loss):.3f} | "
                            f"{_cens(r, 'k_enough')} | {_cens(r, 'k_star')} | {_cens(r, 'k_one_se')} | "
                            f"{_pct(ke[s]) if s in ke else '-'} of cells |")
    return "\n".join(rows)


def _flat_and_identified(name: str) -> tuple[list[str], list[str]]:
    """Levels of R where the smallest k is within 5 % of the best (k enough censored low), with the spread of
    the seed-mean error over k, and the others, with k enough and the argmin and their intervals."""
    flat, matters = [], []
    for _, r in ordered(cells(name), "complexity").iterrows():
        loss = list(r["mean_loss"].values())
        if r["k_enough_censored"] == "low":
            flat.append(f"R = {num(r['complexity'])} (spread {max(loss) - min(loss):.3f})")
        else:
            matters.append(f"R = {num(r['complexity'])} (k enough {_cens(r, 'k_enough')}, argmin "
                           f"{_cens(r, 'k_star')})")
    return flat, matters


def converge_reading() -> str:
    """Where the models got, whether at their plateau, and at which levels of R k matters."""
    parts = []
    for est, (whole, feat) in CONVERGE.items():
        p, acc = _plateau(feat), _sraven_acc(feat)
        at = " and ".join(f"{_pct(p.loc[r, 'at_plateau'])} at R = {r}" for r in PLATEAU_R if r in p.index)
        stopped = "every model stopped early" if p["stopped_early"].min() == 1 else \
            f"{_pct(p['stopped_early'].min())} or more of the models per R stopped early"
        flat, matters = _flat_and_identified(whole)
        levels = ", ".join(num(r) for r in sorted(acc.index))
        parts.append(
            f"**{est}**: {stopped} (median steps {', '.join(num(v) for v in p['median_steps'])} at R = "
            f"{levels}); at its plateau by the 0.02 test {at}; per-feature OOD accuracy "
            f"{', '.join(f2(acc[r]) for r in sorted(acc.index))} (mean over k). On whole-problem OOD error "
            f"k matters at {', '.join(matters) or 'no level'} and not at {', '.join(flat) or 'no level'}, "
            "where the smallest k is within 5 % of the best (k enough censored low; spread: the largest "
            "minus the smallest seed-mean error over k); so k* on R is "
            + ("identified at three levels" if len(matters) >= 3 else
               f"not identified at three levels of R (only {len(matters)})"))
    return "Converge preset. " + ". ".join(parts) + "."
