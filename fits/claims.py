"""`python -m fits.claims [--check]`: the results numbers of README.md and docs/results.md, written from
the shipped reference results (docs/reference/, fits.references) between markers.

A block sits between `<!-- claims:NAME -->` and `<!-- /claims:NAME -->`; BLOCKS[NAME] writes its text
from the reference files alone, so no results number is typed by hand and a table never says more than
its files. `--check` rewrites nothing and exits 1 naming every block whose text differs from what the
files give (tests/fits/test_claims.py runs it on the shipped files).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pandas as pd

from fits.references import REFERENCES
from fits.summary import interval_text, k_step_text
from simulations.arms import EXPERTS, primary, reference
from simulations.arms import arm as arm_of
from simulations.atomic import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "reference"
DOCS = ("README.md", "docs/results.md", "docs/reference.md", "docs/tasks.md")
MARK = re.compile(r"(<!-- claims:(?P<name>[\w:-]+) -->\n)(?P<body>.*?)(<!-- /claims:(?P=name) -->)", re.S)


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
    return f"{x:.2f}"


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


def exponent(name: str, arm: str, factor: str, estimand: str = "enough") -> str:
    """A law exponent with its seed-cluster bootstrap interval, or "not resolvable at this grid"."""
    law = doc(name)["by_router"][arm]["laws_by_estimand"][estimand]["law"]
    e = law["exponents"].get(factor)
    if e is None:
        return "-"
    return f"{f2(e['estimate'])} {interval_text(e['estimate'], e['ci95_bootstrap'])}"


def ordered(df: pd.DataFrame, by: str) -> pd.DataFrame:
    return df.sort_values(by, kind="stable")


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
                slopes = ", ".join(f"s = {num(r.complexity)}, h = {num(r.width)}: {r.slope:+.2f}"
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


def _levels(name: str, arm: str, col: str = "complexity") -> str:
    return ", ".join(num(v) for v in sorted(cells(name, arm)[col].unique()))


def standard_table() -> str:
    rows = [
        "| arm | k enough at s = "
        + _levels("standard-id", LEARNED.name)
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
        + _levels("composition-id", ORACLE.name)
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
        f" and its k enough {_k_list('oracle-r4', ORACLE.name)} at s = {_levels('oracle-r4', ORACLE.name)}."
    )


def active_compute() -> str:
    return (
        ", ".join(
            f"{arm}: k enough {_k_list('active-compute', arm)} (argmin "
            f"{_k_list('active-compute', arm, 'k_star')})"
            for arm in doc("active-compute")["by_router"]
        )
        + f" at s = {_levels('active-compute', ORACLE.name)}."
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


def sraven() -> str:
    whole, feat = cells("sraven-learnable"), cells("sraven-learnable-feat")
    return (
        f"SRAVEN learnable preset: R = {', '.join(num(r) for r in sorted(whole['complexity']))}; k enough on "
        f"whole-problem OOD error {', '.join(num(v) for v in ordered(whole, 'complexity')['k_enough'])}, "
        f"argmin {', '.join(num(v) for v in ordered(whole, 'complexity')['k_star'])}; on per-feature OOD "
        f"error k enough {', '.join(num(v) for v in ordered(feat, 'complexity')['k_enough'])}, argmin "
        f"{', '.join(num(v) for v in ordered(feat, 'complexity')['k_star'])}."
    )


# ---- the map tables of docs/tasks.md (one reference's gate_map rows each) ----------------------------


def _f(x, fmt: str = "{:.2f}") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def _ci(r, col: str, fmt: str = "{:.2f}") -> str:
    return f"{_f(r[col], fmt)} [{_f(r[col + '_lo'], fmt)}, {_f(r[col + '_hi'], fmt)}]"


def gate_map_table(name: str) -> str:
    """Every arm and s of a composition reference: recall, k*, best error against the oracle's, the
    error split at k*."""
    g = gate_rows(name).sort_values(["complexity", "arm"], kind="stable")
    rows = [
        "| arm | s | recall at k = s (chance) | k* (ID) [CI] | best ID / oracle [CI] | best OOD / oracle "
        "| NMSE at k*: own / oracle selection / equal gates | misrouted |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for _, r in g.iterrows():
        split = " / ".join(
            _f(r[c], "{:.3f}")
            for c in ("nmse_id_at_k_star", "nmse_oracle_selection_id", "nmse_equal_gates_id")
        )
        rows.append(
            f"| {r['arm']} | {num(r['complexity'])} | {_f(r['recall_at_s'])} ({_f(r['recall_chance_at_s'])}) "
            f"| {_ci(r, 'k_star_id', '{:g}')} | {_ci(r, 'ratio_id')} | {_f(r['ratio_ood'])} | {split} "
            f"| {_f(r['misrouted_share_id'])} |"
        )
    return "\n".join(rows)


def estimator_map_table(name: str) -> str:
    """The routed arms of an estimator reference per (m, experts, estimator, s), with the oracle's best
    ID NMSE the ratios are relative to."""
    g = gate_rows(name)
    oracle = g[g["router"] == ORACLE.router.name].sort_values(["n_train", "complexity"])
    base = ", ".join(
        f"s = {num(r.complexity)}, m = {num(r.n_train)}: {r.best_nmse_id:.3f}" for r in oracle.itertuples()
    )
    routed = g[g["router"] != ORACLE.router.name]
    order = {e: i for i, e in enumerate(dict.fromkeys(routed["estimator"]))}
    routed = routed.assign(_e=routed["estimator"].map(order)).sort_values(
        ["n_train", "experts", "_e", "complexity"], kind="stable"
    )
    rows = [
        f"Oracle's best ID NMSE: {base}.",
        "",
        "| m | experts | estimator | s | recall at k = s (chance) | best ID NMSE / oracle's [95 % CI] "
        "| best OOD NMSE / oracle's | routing-gain share, ID "
        "| at the ID argmin: NMSE with the oracle's selection, misrouted share | ms / step |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in routed.iterrows():
        rows.append(
            f"| {num(r['n_train'])} | {r['experts']} | {r['estimator']} | {num(r['complexity'])} | "
            f"{_f(r['recall_at_s'])} ({_f(r['recall_chance_at_s'])}) | {_ci(r, 'ratio_id')} | "
            f"{_f(r['ratio_ood'])} | {_f(r['best_share_id'])} | "
            f"{_f(r['nmse_oracle_selection_id'], '{:.3f}')}, "
            f"{_f(r['misrouted_share_id'])} | {_f(r['ms_per_step'], '{:.1f}')} |"
        )
    return "\n".join(rows)


# ---- the first screen -------------------------------------------------------------------------------


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
    sr = cells("sraven-learnable")
    lines = [
        "| question | answer so far | reference |",
        "|---|---|---|",
        f"| How does k* grow with task complexity s? Learned router (pathwise gradient), learned experts | "
        f"k enough {', '.join(num(v) for v in ordered(law_top, 'complexity')['k_enough'])} at s = "
        f"{', '.join(num(v) for v in sorted(law_top['complexity']))} (m = {num(m_top)}); b_s "
        f"{exponent('law', LEARNED.name, 'complexity')}; but recall at k = s is only "
        f"{span(g_law['recall_at_s'])}: "
        "the students have not found the composition | [law](docs/reference/law) |",
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
        "| SRAVEN (P1's own task): k* on R | k enough "
        f"{', '.join(num(v) for v in ordered(sr, 'complexity')['k_enough'])}"
        f" at R = {', '.join(num(v) for v in sorted(sr['complexity']))}: k does not matter at 600 steps "
        "| [sraven-learnable](docs/reference/sraven-learnable) |",
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


BLOCKS: dict[str, Callable[[], str]] = {
    "reference-index": reference_index,
    "answers": answers,
    "law-table": law_table,
    "law-direction": law_direction,
    "law-regime": law_regime,
    "law-theory": law_theory,
    "standard-table": standard_table,
    "composition-table": composition_table,
    "oracle-r4": oracle_r4,
    "active-compute": active_compute,
    "adaptive": adaptive,
    "quick": quick,
    "estimators": estimators,
    "sraven-learnable": sraven,
}


# blocks with an argument, `<!-- claims:NAME:REFERENCE -->`: the table of one reference directory
TABLES: dict[str, Callable[[str], str]] = {"gate-map": gate_map_table, "estimator-map": estimator_map_table}


def block_text(name: str) -> str:
    kind, _, arg = name.partition(":")
    if arg and kind in TABLES:
        return TABLES[kind](arg)
    if name in BLOCKS:
        return BLOCKS[name]()
    known = [*BLOCKS, *(f"{t}:<reference>" for t in TABLES)]
    raise KeyError(f"claims block {name!r}: expected one of {', '.join(known)}")


def render(text: str) -> tuple[str, list[str]]:
    """The text with every block rewritten, and the names of the blocks that changed."""
    changed: list[str] = []

    def one(m: re.Match) -> str:
        name = m["name"]
        body = block_text(name).rstrip("\n") + "\n"
        if body != m["body"]:
            changed.append(name)
        return m.group(1) + body + m.group(4)

    return MARK.sub(one, text), changed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fits.claims", description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="rewrite nothing; exit 1 if a block is stale")
    args = p.parse_args(argv)
    stale = []
    for rel in DOCS:
        path = ROOT / rel
        new, changed = render(path.read_text())
        stale += [f"{rel}: {name}" for name in changed]
        if changed and not args.check:
            atomic_write_text(path, new)
    if args.check and stale:
        print(
            f"error: blocks differ from docs/reference (run python -m fits.claims): {'; '.join(stale)}",
            file=sys.stderr,
        )
        return 1
    print(f"{'stale' if stale else 'up to date'}: {'; '.join(stale) or ', '.join(DOCS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
