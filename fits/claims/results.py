"""The blocks of README.md, docs/results.md and docs/reference.md: the answers table, the law, the per-arm
answers, the estimator map's sentence, SRAVEN, and the index of reference directories."""

from __future__ import annotations

import pandas as pd

from fits.claims.reference import (
    LEARNED,
    ORACLE,
    TEACHER,
    TEACHER_KIND,
    cells,
    doc,
    exponent,
    f2,
    gate_rows,
    ks_of,
    kspan,
    num,
    ordered,
    signed,
    span,
)
from fits.claims.sraven import converge_answer
from fits.references import REFERENCES
from fits.summary import interval_text, k_step_text

# ---- the law (make law) ------------------------------------------------------------------------------

LAW_ARMS = (
    (LEARNED.label, LEARNED.name, "law", "law-ood"),
    (TEACHER.label, TEACHER.name, "law-teacher", "law-teacher-ood"),
)


def _law_k_enough(name: str, arm: str) -> str:
    c = cells(name, arm)
    h = c["width"].max()
    c = c[c["width"] == h]
    per_s = [
        f"s = {num(s)}: " + ", ".join(num(v) for v in ordered(g, "n_train")["k_enough"])
        for s, g in c.groupby("complexity", sort=True)
    ]
    return "; ".join(per_s)


def law_table() -> str:
    rows = [
        "| arm, error | k enough per s (each at the m levels; widest h) | b_s | b_m | b_h "
        "| argmin: b_s, b_m |",
        "|---|---|---|---|---|---|",
    ]
    for label, arm, id_ref, ood_ref in LAW_ARMS:
        for err, ref in (("ID", id_ref), ("OOD", ood_ref)):
            b_h = exponent(ref, arm, "width") if cells(ref, arm)["width"].nunique() > 1 else "(one width)"
            rows.append(
                f"| {label}, {err} | {_law_k_enough(ref, arm)} | {exponent(ref, arm, 'complexity')} | "
                f"{exponent(ref, arm, 'n_train')} | {b_h} | {exponent(ref, arm, 'complexity', 'discrete')}"
                f", {exponent(ref, arm, 'n_train', 'discrete')} |"
            )
    c = cells("law", LEARNED.name)
    levels = (
        f"s in {{{', '.join(num(s) for s in sorted(c['complexity'].unique()))}}}, m in "
        f"{{{', '.join(num(m) for m in sorted(c['n_train'].unique()))}}}, h in "
        f"{{{', '.join(num(h) for h in sorted(c['width'].unique()))}}}"
    )
    return "\n".join(
        [
            f"Levels: {levels}; k grid {{{', '.join(num(k) for k in ks_of('law'))}}}. Intervals: "
            'seed-cluster bootstrap 95 %; "not resolvable at this grid" where the interval has zero width '
            f"or ends at the estimate (one k step = {k_step_text(ks_of('law'))} in log k).",
            "",
            *rows,
        ]
    )


def direction_rows(name: str, arm: str) -> pd.DataFrame:
    """The arm's `direction_in_m` rows (fits.m_direction): per estimand and (s, h), slope and steps."""
    return pd.DataFrame(doc(name)["by_router"][arm]["direction_in_m"])


def law_direction() -> str:
    """The steps in m of every law table, counted, and the slope in m per (s, h) beside the pooled b_m."""
    lines, total = [], {"towards": 0, "away": 0, "unchanged": 0}
    for label, arm, id_ref, ood_ref in LAW_ARMS:
        for err, ref in (("ID", id_ref), ("OOD", ood_ref)):
            d = direction_rows(ref, arm)
            for est, col in (("k enough", "k_enough"), ("argmin", "k_star")):
                e = d[d["estimand"] == col]
                n = {k: int(e[k].sum()) for k in total}
                total = {k: total[k] + n[k] for k in total}
                slopes = ", ".join(f"s = {num(r.complexity)}, h = {num(r.width)}: {signed(r.slope)}"
                                   for r in e.itertuples())
                lines.append(f"| {label}, {err} | {est} | {n['towards']} / {n['away']} / {n['unchanged']} "
                             f"| {slopes} |")
    head = ("Steps in m (each pair of neighbouring m levels per s and h), over all four law tables and "
            f"both estimands: {total['towards']} towards s, {total['away']} away, {total['unchanged']} "
            "unchanged.")
    table = ["| arm, error | estimand | steps towards / away / unchanged "
             "| slope of log k on log m per (s, h) |", "|---|---|---|---|"]
    return "\n".join([head, "", *table, *lines])


def law_regime() -> str:
    out = []
    for label, arm, id_ref, _ in LAW_ARMS:
        g = gate_rows(id_ref)
        g = g[g["arm"] == arm]
        out.append(
            f"{label}: best ID NMSE {span(g['best_nmse_id'])}, recall at k = s {span(g['recall_at_s'])} "
            f"(chance {span(g['recall_chance_at_s'])})"
        )
    return "Regime: " + "; ".join(out) + "."


def law_theory() -> str:
    h = doc("law")["theory_fit"]["heldout"]
    return (
        f"Calibrated bound, leave one level of s, m or h out (learned arm, ID): held-out k* within 1 of the "
        f"measured argmin in {h['share_within_1']:.0%} of {h['n_predictions']} predictions, against "
        f"{h['share_within_1_constant']:.0%} for a constant k* and {h['share_within_1_rule']:.0%} for "
        "k* = s r."
    )


# ---- the per-arm answers (standard, composition, oracle r = 4, active compute, adaptive, quick) --------


def _k_list(name: str, arm: str, col: str = "k_enough") -> str:
    return ", ".join(num(v) for v in ordered(cells(name, arm), "complexity")[col])


def levels_of(name: str, arm: str, col: str = "complexity") -> str:
    return ", ".join(num(v) for v in sorted(cells(name, arm)[col].unique()))


def standard_table() -> str:
    rows = [
        "| arm | k enough at s = "
        + levels_of("standard-id", LEARNED.name)
        + " (ID) | b_s, ID: k enough / argmin | "
        "b_s, OOD (s >= 2): k enough / argmin | best ID NMSE | recall at k = s (chance) |",
        "|---|---|---|---|---|---|",
    ]
    g = gate_rows("standard-id")
    for arm in doc("standard-id")["by_router"]:
        ga = g[g["arm"] == arm]
        rows.append(
            f"| {arm} | {_k_list('standard-id', arm)} | {exponent('standard-id', arm, 'complexity')} / "
            f"{exponent('standard-id', arm, 'complexity', 'discrete')} | "
            f"{exponent('standard', arm, 'complexity')} / "
            f"{exponent('standard', arm, 'complexity', 'discrete')}"
            f" | {span(ga['best_nmse_id'])} | {span(ga['recall_at_s'])} ({span(ga['recall_chance_at_s'])}) |"
        )
    return "\n".join(rows)


def composition_table() -> str:
    g = gate_rows("composition-id")
    rows = [
        "| arm | k enough at s = "
        + levels_of("composition-id", ORACLE.name)
        + " (ID) | best ID NMSE / oracle's "
        "(mean over s) | recall at k = s (chance) |",
        "|---|---|---|---|",
    ]
    for arm in doc("composition-id")["by_router"]:
        ga = ordered(g[g["arm"] == arm], "complexity")
        rows.append(
            f"| {arm} | {_k_list('composition-id', arm)} | {f2(ga['ratio_id'].mean())} | "
            f"{', '.join(f2(v) for v in ga['recall_at_s'])} "
            f"({', '.join(f2(v) for v in ga['recall_chance_at_s'])}) |"
        )
    return "\n".join(rows)


def oracle_r4() -> str:
    return (
        "With r = 4 replicas per skill (`oracle-r4`) the oracle's argmin is "
        f"{_k_list('oracle-r4', ORACLE.name, 'k_star')}"
        f" and its k enough {_k_list('oracle-r4', ORACLE.name)} at s = {levels_of('oracle-r4', ORACLE.name)}."
    )


def active_compute() -> str:
    return (
        ", ".join(
            f"{arm}: k enough {_k_list('active-compute', arm)} (argmin "
            f"{_k_list('active-compute', arm, 'k_star')})"
            for arm in doc("active-compute")["by_router"]
        )
        + f" at s = {levels_of('active-compute', ORACLE.name)}."
    )


def adaptive() -> str:
    a = doc("adaptive")["adaptive_k"]
    lv = pd.DataFrame(a["levels"])
    sl = pd.DataFrame(a["slopes"])
    parts = []
    for arm, g in sl.groupby("arm", sort=True):
        per_k = "; ".join(
            f"k_max {num(r.k)}: slope {r.slope:.3f} {interval_text(r.slope, (r.ci_low, r.ci_high))},"
            f" {span(lv[(lv['arm'] == arm) & (lv['k'] == r.k)]['mean_experts'])} experts per input"
            for r in g.itertuples()
        )
        parts.append(f"{arm}: {per_k}")
    return (
        "Mean experts per ID input against the input's s (slope per unit s, seed-cluster bootstrap 95 %): "
        + " | ".join(parts)
        + "."
    )


def quick() -> str:
    parts = []
    for arm in doc("quick")["by_router"]:
        parts.append(
            f"{arm}: k enough {kspan(cells('quick', arm)['k_enough'])}, b_s "
            f"{exponent('quick', arm, 'complexity')}"
        )
    return "Quick grid (OOD error, s >= 2): " + "; ".join(parts) + "."


def k_eval() -> str:
    """Inference-time k (each model at every k without retraining): per reference and arm, the share of
    cells whose best k_eval is the training k (its range over s) and the mean best k_eval."""
    parts = []
    for name in ("standard-id", "law"):
        b = pd.DataFrame(doc(name)["k_eval"]["by_complexity"])
        for arm, g in b.groupby("arm", sort=False):
            pct = sorted({f"{v:.0f}" for v in (g["equal"].min() * 100, g["equal"].max() * 100)}, key=float)
            parts.append(f"`{name}`, {arm}: best at the training k in {'-'.join(pct)} % of cells per s, "
                         f"mean best k_eval {span(g['mean_best'])}")
    return "Inference-time k, ID error: " + "; ".join(parts) + "."


# ---- estimators, SRAVEN -----------------------------------------------------------------------------


def _est_row(name: str, experts: str, estimator: str, s: int, n_train: int) -> pd.Series:
    t = gate_rows(name)
    hit = t[
        (t["router"] == LEARNED.router.name)
        & (t["experts"] == experts)
        & (t["estimator"] == estimator)
        & (t["complexity"] == s)
        & (t["n_train"] == n_train)
    ]
    return hit.iloc[0]


def estimators() -> str:
    def pair(name, experts, estimator, n_train, col="recall_at_s"):
        return " and ".join(f2(_est_row(name, experts, estimator, s, n_train)[col]) for s in (2, 4))

    T, L = TEACHER_KIND.name, LEARNED.experts.name
    phase = [_est_row("estimators-single-skill", L, "score", s, 8000) for s in (2, 4)]
    ratios = " and ".join(
        f"{f2(r['ratio_id'])} [{f2(r['ratio_id_lo'])}, {f2(r['ratio_id_hi'])}]" for r in phase
    )
    return (
        "Teacher skills as experts, m = 2000: recall at k = s "
        f"{pair('estimators', T, 'score', 2000)} "
        f"at s = 2 and 4 with the score function, {pair('estimators', T, 'pathwise', 2000)} with the "
        f"pathwise gradient. Learned experts, m = 2000: score function "
        f"{pair('estimators', L, 'score', 2000)}. Single-skill phase first, learned experts, "
        f"m = 8000: score function recall {pair('estimators-single-skill', L, 'score', 8000)}, best "
        f"ID error {ratios} times the oracle's; pathwise "
        f"{pair('estimators-single-skill', L, 'pathwise', 8000)}."
    )


# ---- the first screen -------------------------------------------------------------------------------


COMPOSED_RECALL = 0.9  # recall at k = s from which a router counts as having found the composition
COMPOSED = f" (at least {COMPOSED_RECALL} somewhere)"
FLAT_IN_K = ": every k within 5 % of the best at every R (k enough at the smallest k)"
NOT_COMPOSED = f", below {COMPOSED_RECALL} everywhere: the students have not found the composition"


def answers() -> str:
    law, teacher = cells("law", LEARNED.name), cells("law-teacher", TEACHER.name)
    m_top = law["n_train"].max()
    law_top = law[(law["n_train"] == m_top) & (law["width"] == law["width"].max())]
    t_top = teacher[teacher["n_train"] == m_top]
    g_law, g_t = gate_rows("law"), gate_rows("law-teacher")
    phase, pathwise = (
        [_est_row("estimators-single-skill", LEARNED.experts.name, est, s, 8000) for s in (2, 4)]
        for est in ("score", "pathwise")
    )
    h = doc("law")["theory_fit"]["heldout"]
    lines = [
        "| question | answer so far | reference |",
        "|---|---|---|",
        f"| How does k* grow with task complexity s? Learned router (pathwise gradient), learned experts | "
        f"k enough {', '.join(num(v) for v in ordered(law_top, 'complexity')['k_enough'])} at s = "
        f"{', '.join(num(v) for v in sorted(law_top['complexity']))} (m = {num(m_top)}); b_s "
        f"{exponent('law', LEARNED.name, 'complexity')}; recall at k = s {span(g_law['recall_at_s'])}"
        f"{COMPOSED if g_law['recall_at_s'].max() >= COMPOSED_RECALL else NOT_COMPOSED} "
        "| [law](docs/reference/law) |",
        f"| The same with the teacher's skills as experts | k enough "
        f"{', '.join(num(v) for v in ordered(t_top, 'complexity')['k_enough'])}; b_s "
        f"{exponent('law-teacher', TEACHER.name, 'complexity')}; recall at k = s "
        f"{span(g_t['recall_at_s'])} "
        "| [law-teacher](docs/reference/law-teacher) |",
        "| Oracle router (the theory's modular student) | k* = s r, its cap: holds by construction, "
        "not evidence "
        f"(argmin {_k_list('oracle-r4', ORACLE.name, 'k_star')} at r = 4) "
        "| [oracle-r4](docs/reference/oracle-r4) |",
        "| Which router gradient finds the composition? | the score function with a single-skill phase "
        f"(m = 8000): recall at k = s {f2(phase[0]['recall_at_s'])} and "
        f"{f2(phase[1]['recall_at_s'])} at s = 2 "
        f"and 4; the pathwise gradient "
        f"{f2(pathwise[0]['recall_at_s'])} and {f2(pathwise[1]['recall_at_s'])} "
        "| [estimators-single-skill](docs/reference/estimators-single-skill) |",
        "| Does the calibrated bound predict held-out k*? | within 1 in "
        f"{h['share_within_1']:.0%} of held-out "
        f"cells, against {h['share_within_1_constant']:.0%} for a constant k* (learned arm, ID) "
        "| [law](docs/reference/law) |",
        converge_answer(),
        "| Soft MoE (Chung et al. 2024): one expert suffices? | a quick experiment in `make run`; "
        "no reference "
        "result yet | [docs/softmoe.md](docs/softmoe.md) |",
    ]
    return "\n".join(lines)


def reference_index() -> str:
    """The reference directories, each with the grid command of its store and its fit (the registry)."""
    rows = ["| directory | what it answers | grid | fit |", "|---|---|---|---|"]
    for ref in REFERENCES.values():
        for f in ref.fits:
            g = next(g for g in ref.grids if g.store == f.store)
            fit = " ".join(["python -m fits.optimal_k", f"results/{f.store}", *f.args])
            rows.append(f"| `{f.name}` | {ref.what} | `{g.command()}` | `{fit}` |")
    return "\n".join(rows)


