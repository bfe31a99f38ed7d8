"""The SRAVEN blocks of docs/sraven.md, docs/results.md and README.md: the learnable references and the
four converge references (the score function and pathwise, each on whole-problem and per-feature OOD
error; fits.references)."""

from __future__ import annotations

import pandas as pd

from fits.claims.reference import cells, doc, f2, kci_censored, num, ordered, pct, span

# estimator -> (whole-problem reference, per-feature reference); the first is the composing estimator
CONVERGE = {"score": ("sraven-converge", "sraven-converge-feat"),
            "pathwise": ("sraven-converge-pathwise", "sraven-converge-pathwise-feat")}
PLATEAU_R = (4, 8)  # the levels of R the plateau criterion names


def _mean_acc(name: str) -> pd.Series:
    """Seed-mean accuracy per R, mean over k (1 - the cells' mean error)."""
    c = cells(name)
    acc = pd.Series([1 - sum(m.values()) / len(m) for m in c["mean_loss"]], index=c["complexity"])
    return acc.groupby(level=0).mean()


def _k_columns(r, k_eval: dict) -> str:
    """A cells row's k estimands (k enough, argmin, one paired SE, each with its interval and censoring)
    and the share of its R's cells whose best k_eval is the training k, as table cells."""
    s = r["complexity"]
    return (f"{kci_censored(r, 'k_enough')} | {kci_censored(r, 'k_star')} | {kci_censored(r, 'k_one_se')} | "
            f"{pct(k_eval[s]) if s in k_eval else '-'} of cells |")


def _k_eval_shares(name: str) -> dict:
    """R -> the share of cells whose best k_eval is the training k (the k_eval block)."""
    return {r["complexity"]: r["equal"] for r in doc(name)["k_eval"]["by_complexity"]}


def learnable() -> str:
    """The learnable preset's k estimands per R on whole-problem and per-feature OOD error (results.md)."""
    whole, feat = cells("sraven-learnable"), cells("sraven-learnable-feat")
    return (
        f"SRAVEN learnable preset: R = {', '.join(num(r) for r in sorted(whole['complexity']))}; k enough on "
        f"whole-problem OOD error {', '.join(num(v) for v in ordered(whole, 'complexity')['k_enough'])}, "
        f"argmin {', '.join(num(v) for v in ordered(whole, 'complexity')['k_star'])}; on per-feature OOD "
        f"error k enough {', '.join(num(v) for v in ordered(feat, 'complexity')['k_enough'])}, argmin "
        f"{', '.join(num(v) for v in ordered(feat, 'complexity')['k_star'])}."
    )


def learnable_table() -> str:
    """The SRAVEN learnable reference per R: accuracies (mean over k) and the k estimands."""
    feat, acc = _mean_acc("sraven-learnable-feat"), _mean_acc("sraven-learnable")
    ke = _k_eval_shares("sraven-learnable")
    rows = [
        "| R | per-feature OOD accuracy | whole-problem OOD accuracy | k enough (5 %) [CI] | argmin [CI] "
        "| one paired SE [CI] | best k_eval = k_train |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, r in ordered(cells("sraven-learnable"), "complexity").iterrows():
        s = r["complexity"]
        rows.append(f"| {num(s)} | {f2(feat[s])} | {f2(acc[s])} | {_k_columns(r, ke)}")
    return "\n".join(rows)


def learnable_reading() -> str:
    """Per-feature OOD accuracy at the smallest R and the k_eval share (sraven-learnable)."""
    feat = _mean_acc("sraven-learnable-feat")
    eq = list(_k_eval_shares("sraven-learnable").values())
    return (
        f"Per-feature OOD accuracy at R = {num(feat.index[0])}: {f2(feat.iloc[0])}; the training k is the "
        "best "
        f"k_eval in {min(eq):.0%}-{max(eq):.0%} of cells.".replace("%-", "-").replace("%", " %")
    )


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
        fm, fb, wm, wb = _mean_acc(feat), _best_acc(feat), _mean_acc(whole), _best_acc(whole)
        for r in sorted(fm.index):
            p = plateau.loc[r]
            rows.append(f"| {est} | {num(r)} | {f2(fm[r])}, {f2(fb[r])} | {f2(wm[r])}, {f2(wb[r])} | "
                        f"{pct(p['at_plateau'])} ({pct(p['stopped_early'])}) | {num(p['median_steps'])} | "
                        f"{p['rise_max']:.3f}, {p['gap_max']:.3f} |")
    return "\n".join(rows)


def converge_k_table() -> str:
    """Per estimator, error and R: the k estimands with their seed-cluster intervals and inference-time k."""
    rows = ["| estimator | OOD error | R | seed-mean error: best, spread over k | k enough (5 %) [CI] "
            "| argmin [CI] | one paired SE [CI] | best k_eval = k_train |", "|---" * 8 + "|"]
    for est, names in CONVERGE.items():
        for name, what in zip(names, ("whole problem", "per feature"), strict=True):
            ke = _k_eval_shares(name)
            for _, r in ordered(cells(name), "complexity").iterrows():
                loss = list(r["mean_loss"].values())
                rows.append(f"| {est} | {what} | {num(r['complexity'])} | {min(loss):.3f}, "
                            f"{max(loss) - min(loss):.3f} | {_k_columns(r, ke)}")
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
            matters.append(f"R = {num(r['complexity'])} (k enough {kci_censored(r, 'k_enough')}, argmin "
                           f"{kci_censored(r, 'k_star')})")
    return flat, matters


def converge_reading() -> str:
    """Where the models got, whether at their plateau, and at which levels of R k matters."""
    parts = []
    for est, (whole, feat) in CONVERGE.items():
        p, acc = _plateau(feat), _mean_acc(feat)
        at = " and ".join(f"{pct(p.loc[r, 'at_plateau'])} at R = {r}" for r in PLATEAU_R if r in p.index)
        stopped = "every model stopped early" if p["stopped_early"].min() == 1 else \
            f"{pct(p['stopped_early'].min())} or more of the models per R stopped early"
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


def _censored_levels(c: pd.DataFrame) -> str:
    """The levels of R whose k enough is censored low, as "R = a, b" (or "no R")."""
    low = sorted(c.loc[c["k_enough_censored"] == "low", "complexity"])
    return f"R = {', '.join(num(v) for v in low)}" if low else "no R"


def converge_answer() -> str:
    """The README's SRAVEN row (results.answers): k enough per R for both estimators, where it is
    censored, and the per-feature accuracies reached."""
    (whole, feat), (pathwise, _) = CONVERGE["score"], CONVERGE["pathwise"]
    sr, sp = cells(whole), cells(pathwise)
    return (
        "| SRAVEN (P1's own task): k* on R, students trained to a plateau | score function: k enough "
        f"{', '.join(num(v) for v in ordered(sr, 'complexity')['k_enough'])} at R = "
        f"{', '.join(num(v) for v in sorted(sr['complexity']))} (pathwise "
        f"{', '.join(num(v) for v in ordered(sp, 'complexity')['k_enough'])}), censored low at "
        f"{_censored_levels(sr)}: not identified at three levels; per-feature OOD accuracy "
        f"{span(_plateau(feat)['final_mean'])} over R "
        f"| [{whole}](docs/reference/{whole}) |")
