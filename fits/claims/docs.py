"""The blocks of docs/fits.md, docs/theory.md, docs/sraven.md and docs/tasks.md (outside the two maps):
each reads one reference directory; the prose around it says which."""

from __future__ import annotations

import pandas as pd

from fits.claims.reference import (
    LEARNED,
    ORACLE,
    cells,
    doc,
    estimate_ci,
    f2,
    gate_rows,
    kci,
    ks_of,
    kspan,
    num,
    ordered,
    pct,
    span,
)
from fits.claims.results import LAW_ARMS, levels_of
from fits.summary import interval_text
from simulations.arms import arm as arm_of
from simulations.arms.supervised import Supervised
from simulations.arms.top_p import TopP

# ---- docs/fits.md, docs/theory.md, docs/sraven.md, docs/tasks.md (outside the maps) -----------------
# Each block reads one reference directory; the prose around it says which.

SUPERVISED = arm_of(Supervised.name, LEARNED.experts.name)
TOP_P = arm_of(TopP.name, LEARNED.experts.name)


def _bound(name: str, arm: str) -> dict:
    return doc(name)["theory_fit"]["by_router"][arm]


def quick_p_argmin() -> str:
    """The spread of P(argmin = k*) over the quick reference's primary-arm cells."""
    p = [c["p_argmin"][num(c["k_star"])] for c in doc("quick")["cells"]]
    return (f"On the quick reference's {LEARNED.name} arm (OOD), P(argmin = k*) ranges from {f2(min(p))} to "
            f"{f2(max(p))}.")


def standard_one_se() -> str:
    """The paired one-SE set of the standard reference's learned arm at s = 4."""
    c = cells("standard", LEARNED.name)
    r = c[c["complexity"] == 4].iloc[0]
    lo, hi = num(r["k_flat_low"]), num(r["k_flat_high"])
    return f"paired, it is {{{lo}}}." if lo == hi else f"paired, it is k = {lo}-{hi}."


def _param(p: dict) -> str:
    if p["at_search_bound"]:
        return f"{p['estimate']:.3g}, on the edge: not identified"
    return f"{p['estimate']:.3f} [{p['ci95'][0]:.3f}, {p['ci95'][1]:.3f}]" + (
        "" if p["identified"] else ", not identified"
    )


def _pooled_row(b: dict, group: str, test: str) -> dict:
    """One pooled test of the calibrated bound's `outside_bound` (its p_value, n_cells, ...)."""
    return next(p for p in b["outside_bound"]["pooled"] if p["group"] == group and p["test"] == test)


def _pooled(b: dict, group: str, test: str) -> float:
    return _pooled_row(b, group, test)["p_value"]


def quick_bound_table() -> str:
    """The calibrated bound on the quick reference's learned arm (OOD)."""
    b = _bound("quick", LEARNED.name)
    h, o = b["heldout"], b["outside_bound"]
    s1 = f"complexity={float(min(c['complexity'] for c in o['cells']))}"
    rows = [
        "| | OOD (`test_nmse_ood`) |",
        "|---|---|",
        *(f"| {k} | {_param(v)} |" for k, v in b["params"].items()),
        f"| RMSE of log loss, in sample | {f2(b['rmse_log'])} |",
        f"| AIC: bound ({b['n_params']} params) / free-form curves ({b['free_form']['n_params']}) | "
        f"{b['aic']:.0f} / {b['free_form_aic']:.0f} |",
        f"| held out: RMSE log loss | {f2(h['rmse_log'])} |",
        f"| held out: k* within +-1, bound / constant k* | {pct(h['share_within_1'])} / "
        f"{pct(h['share_within_1_constant'])} (of {h['n_predictions']}) |",
        f"| cells with k*'s 95 % CI above the bound's largest k* | {o['n_k_star_ci_above_max']} of "
        f"{o['n_cells']} |",
        f"| pooled above_max, s = 1 / whole arm (one-sided p) | {_pooled(b, s1, 'above_max'):.3f} / "
        f"{_pooled(b, 'all', 'above_max'):.3f} |",
        f"| pooled between_1_and_s (p) | {f2(_pooled(b, 'all', 'between_1_and_s'))} |",
    ]
    return "\n".join(rows)


def _s1_misfit(b: dict) -> tuple[str, float, int]:
    """At s = 1: the measured k* range, the pooled above_max p and its number of cells."""
    o = b["outside_bound"]
    s = min(c["complexity"] for c in o["cells"])
    ks = [c["k_star"] for c in o["cells"] if c["complexity"] == s]
    p = _pooled_row(b, f"complexity={float(s)}", "above_max")
    return kspan(ks), p["p_value"], p["n_cells"]


def _loss_at_top_k() -> str:
    """The primary arm's seed-mean OOD loss at the largest k and m of the quick reference, per s."""
    c = pd.DataFrame(doc("quick")["cells"])
    c = ordered(c[c["n_train"] == c["n_train"].max()], "complexity")
    k = num(max(ks_of("quick")))
    return (
        f"at k = {k}, m = {num(c['n_train'].iloc[0])}, h = {num(c['width'].iloc[0])} (OOD) is "
        f"{', '.join(f2(m[k]) for m in c['mean_loss'])} for s = {', '.join(num(s) for s in c['complexity'])}"
    )


def quick_bound_reading() -> str:
    """The numbers of the reading of quick_bound_table."""
    b = _bound("quick", LEARNED.name)
    conv = b["convergence"]
    ks, p, n = _s1_misfit(b)
    return (
        f"{conv['n_at_best']} of {conv['n_starts']} starts reach the same optimum; the bound loses to the "
        f"free-form curves by {b['aic'] - b['free_form_aic']:.0f} AIC; at s = 1 the measured k* is {ks} "
        f"(pooled above_max p = {f2(p)} over the {n} s = 1 cells); the measured loss "
        f"{_loss_at_top_k()}."
    )


def quick_first() -> str:
    """The quick reference's primary arm on the OOD metric: cells, k* range, law."""
    d = doc("quick")
    c = pd.DataFrame(d["cells"])
    law = d["law"]
    ex = " ".join(
        f"b_{f} = {estimate_ci(e['estimate'], e['ci95'])}," for f, e in
        (("s", law["exponents"]["complexity"]), ("m", law["exponents"]["n_train"]),
         ("h", law["exponents"]["width"])) if e.get("fitted", True) and e.get("estimate") is not None
    ).rstrip(",")
    b_s = law["exponents"]["complexity"]["ci95"]
    return (
        f"{d['n_rows']} rows, {len(c)} cells of the {d['arm']} arm, {c['n_seeds'].max()} seeds; OOD: "
        f"{d['n_censored']} cells censored, discrete k* {kspan(c['k_star'])}; law ({law['method'].upper()}, "
        f"{law['n_cells']} cells, R^2 {f2(law['r2'])}): {ex}. P1's b_s = 1 is "
        f"{'inside' if b_s[0] <= 1 <= b_s[1] else 'outside'} the interval."
    )


LAW_ESTIMANDS = (
    ("enough", "k_enough"), ("discrete", "k_star"), ("one_se", "k_one_se"), ("enough_2", "k_enough_2"),
)


def law_estimands() -> str:
    """Every estimand's law per arm and error: exponents with seed-cluster bootstrap (HC3) intervals."""
    rows = [
        "| arm, error | estimand | b_s | b_m | b_h | cells whose CI spans < 2x |",
        "|---|---|---|---|---|---|",
    ]
    for label, arm, id_ref, ood_ref in LAW_ARMS:
        for err, ref in (("ID", id_ref), ("OOD", ood_ref)):
            laws = doc(ref)["by_router"][arm]["laws_by_estimand"]
            first = True
            for key, col in LAW_ESTIMANDS:
                e = laws[key]
                ex = e["law"]["exponents"] if e.get("law") else {}

                def one(f, ex=ex):
                    x = ex.get(f)
                    if not x or x.get("estimate") is None:
                        return "-"
                    return (f"{estimate_ci(x['estimate'], x['ci95_bootstrap'])} "
                            f"(HC3 {interval_text(x['estimate'], x['ci95'])})")

                rows.append(
                    f"| {f'{label}, {err}' if first else ''} | {col} | {one('complexity')} | "
                    f"{one('n_train')} "
                    f"| {one('width')} | {f2(e['share_cells_tight'])} |"
                )
                first = False
    return "\n".join(rows)


def law_heldout() -> str:
    """The law reference's tight-cell shares and the calibrated bound's held-out k*."""
    t = {k: doc("law")["by_router"][LEARNED.name]["laws_by_estimand"][k]["share_cells_tight"]
         for k in ("enough", "discrete")}
    h, ho = doc("law")["theory_fit"]["heldout"], doc("law-ood")["theory_fit"]["heldout"]
    short = {"complexity": "s", "n_train": "m", "width": "h"}
    by = ", ".join(f"{short.get(f, f)} {pct(v['share_within_1'])}" for f, v in h["by_factor"].items())
    return (
        f"k_enough is pinned (CI within a factor 2) in {pct(t['enough'])} of the {LEARNED.name} arm's ID "
        f"cells, the argmin in {pct(t['discrete'])}. The calibrated bound (`theory_fit`, {LEARNED.name} "
        f"arm, ID) puts the held-out argmin within 1 in {pct(h['share_within_1'])} of held-out cells "
        f"(by factor: {by}), against {pct(h['share_within_1_constant'])} for a constant k* and "
        f"{pct(h['share_within_1_rule'])} for the rule k* = s r (`heldout.share_within_1_rule`); on OOD "
        f"{pct(ho['share_within_1'])} against {pct(ho['share_within_1_constant'])} and "
        f"{pct(ho['share_within_1_rule'])}."
    )


def active_compute_table() -> str:
    """k at fixed active width per arm (active-compute), beside the law reference's k enough at fixed h."""
    ac = "active-compute"
    s_levels = levels_of(ac, ORACLE.name)
    law = cells("law", LEARNED.name)
    m = ordered(cells(ac, ORACLE.name), "complexity")["n_train"].iloc[0]
    law = law[law["n_train"] == m]
    hs = sorted(law["width"].unique())
    rows = [
        f"| arm | k enough at s = {s_levels}, fixed k h | argmin | "
        + " | ".join(f"fixed h = {num(h)} (k enough)" for h in hs) + " |",
        "|---|---|---|" + "---|" * len(hs),
    ]
    for arm in doc(ac)["by_router"]:
        c = ordered(cells(ac, arm), "complexity")
        fixed = [
            ", ".join(kci(r, "k_enough") for _, r in ordered(law[law["width"] == h], "complexity").iterrows()
                      )
            if arm == LEARNED.name else ("cap s r at every h (docs/tasks.md)" if h == hs[0] else "")
            for h in hs
        ]
        rows.append(
            f"| {arm} | {', '.join(kci(r, 'k_enough') for _, r in c.iterrows())} | "
            f"{', '.join(kci(r, 'k_star') for _, r in c.iterrows())} | " + " | ".join(fixed) + " |"
        )
    return "\n".join(rows)


def _ac_law(arm: str) -> str:
    e = doc("active-compute")["by_router"][arm]["laws_by_estimand"]["enough"]["law"]
    b = e["exponents"]["complexity"]
    return (f"b_s (k enough) {estimate_ci(b['estimate'], b['ci95_bootstrap'])} (bootstrap), "
            f"{e['n_cells']} cells")


def active_compute_oracle() -> str:
    """The oracle's k at fixed active compute, per s, and its law."""
    c = ordered(cells("active-compute", ORACLE.name), "complexity")
    return (
        f"Oracle k enough {', '.join(kci(r, 'k_enough') for _, r in c.iterrows())}, argmin "
        f"{', '.join(num(v) for v in c['k_star'])} at s = {levels_of('active-compute', ORACLE.name)}; "
        f"{_ac_law(ORACLE.name)}."
    )


def active_compute_learned() -> str:
    """The learned arm's k at fixed active compute, its law, and the paired gap to the oracle."""
    c = ordered(cells("active-compute", LEARNED.name), "complexity")
    t = ordered(pd.DataFrame(doc("active-compute")["paired_arms"]["tests"]), "complexity")
    t = t[t["arm"] == ORACLE.name]
    return (
        f"{LEARNED.name}: k enough {', '.join(num(v) for v in c['k_enough'])}, argmin "
        f"{', '.join(num(v) for v in c['k_star'])}; {_ac_law(LEARNED.name)}. Paired by seed at each arm's "
        f"best k, the {ORACLE.name} arm's ID error minus the {LEARNED.name} arm's: "
        f"{', '.join(f2(v) for v in t['mean_diff'])} MSE at s = "
        f"{', '.join(num(s) for s in t['complexity'])} (paired t, largest p {t['p_t'].max():.1e})."
    )


def active_compute_short() -> str:
    """One line: the oracle's and the learned arm's k enough at fixed active compute."""
    o = ordered(cells("active-compute", ORACLE.name), "complexity")
    ln = cells("active-compute", LEARNED.name)
    return (
        f"At fixed k h the {ORACLE.name} arm's k enough is {', '.join(num(v) for v in o['k_enough'])} at s = "
        f"{', '.join(num(s) for s in o['complexity'])}, where at fixed h its k* is its cap s r; the "
        f"{LEARNED.name} arm's is {kspan(ln['k_enough'])}."
    )


def standard_supervised() -> str:
    """The supervised arm of the standard reference (OOD): k*, recall at k*, its law, best errors."""
    a = doc("standard")["by_router"][SUPERVISED.name]
    c = ordered(pd.DataFrame(a["cells"]), "complexity")
    b = a["law"]["exponents"]["complexity"]
    g = ordered(gate_rows("standard")[lambda x: x["arm"] == SUPERVISED.name], "complexity")
    return (
        f"argmin k* {', '.join(num(v) for v in c['k_star'])} for s = "
        f"{', '.join(num(s) for s in c['complexity'])} "
        f"(recall at k* {span(c['routing_recall_at_k_star'])}; {a['n_censored']} cells censored), b_s "
        f"({a['law']['k_source']} k*) {f2(b['estimate'])} with seed-cluster bootstrap CI "
        f"{interval_text(b['estimate'], b['ci95_bootstrap'])}; best OOD errors "
        f"{', '.join(f2(v) for v in g['best_nmse_ood'])} at "
        f"s = {', '.join(num(s) for s in g['complexity'])}."
    )


def contextual_ood_ratio() -> str:
    """The oracle's best OOD over best ID NMSE per s: composition (contextual) against standard."""

    def ratios(name: str) -> str:
        levels = set(cells(name, ORACLE.name)["complexity"])
        g = ordered(gate_rows(name)[lambda x: (x["arm"] == ORACLE.name) & x["complexity"].isin(levels)],
                    "complexity")
        return (f"{', '.join(f2(o / i) for o, i in zip(g['best_nmse_ood'], g['best_nmse_id'], strict=True))}"
                f" at s = {', '.join(num(s) for s in g['complexity'])}")

    return (f"The {ORACLE.name} arm's best seed-mean OOD NMSE over k against its best ID NMSE: "
            f"{ratios('composition')} (`composition`), against the compositional task's {ratios('standard')} "
            "(`standard`).")


def adaptive_levels() -> str:
    """Experts per ID input by s and the slopes, per arm and k_max (adaptive)."""
    a = doc("adaptive")["adaptive_k"]
    lv, sl = pd.DataFrame(a["levels"]), pd.DataFrame(a["slopes"])
    t = lv[lv["arm"] == TOP_P.name]
    per = "; ".join(
        f"k_max {num(k)}: {', '.join(f2(v) for v in ordered(g, 's')['mean_experts'])}"
        for k, g in t.groupby("k", sort=True)
    )
    st = sl[sl["arm"] == TOP_P.name].sort_values("k")
    so = sl[sl["arm"] == ORACLE.name].sort_values("k")
    return (
        f"the {TOP_P.name} router used {per} experts per input at s = "
        f"{', '.join(num(s) for s in sorted(t['s'].unique()))}: slopes "
        + " and ".join(
            f"{r.slope:.3f} {interval_text(r.slope, (r.ci_low, r.ci_high), nd=3)} (k_max {num(r.k)})"
            for r in st.itertuples()
        )
        + " experts per unit s (seed-cluster bootstrap 95 %). The oracle's slopes, "
        + " and ".join(f2(r.slope) for r in so.itertuples())
        + ", are its rule (min(k, s r) experts) and hold by construction."
    )


def oracle_standard() -> str:
    """The standard reference's oracle k* per s, and the calibrated bound's held-out k* per arm."""
    c = ordered(cells("standard", ORACLE.name), "complexity")
    o, ln = _bound("standard", ORACLE.name), _bound("standard", LEARNED.name)
    edges = ", ".join(k for k, v in ln["params"].items() if v["at_search_bound"])
    return (
        f"In the standard reference the {ORACLE.name} arm's argmin is "
        f"{', '.join(num(v) for v in c['k_star'])} "
        f"at s = {', '.join(num(s) for s in c['complexity'])}. For the {LEARNED.name} router the calibrated "
        f"bound's held-out k* is within 1 in {pct(ln['heldout']['share_within_1'])} against "
        f"{pct(ln['heldout']['share_within_1_constant'])} for a constant k*"
        f"{f' with {edges} at the edges' if edges else ''}"
        f"; for the {ORACLE.name}: {pct(o['heldout']['share_within_1'])} against "
        f"{pct(o['heldout']['share_within_1_constant'])}."
    )


def _edge(p: dict) -> str:
    return "edge" if p["at_search_bound"] else f"{p['estimate']:.2g}"


def theory_oracle_table() -> str:
    """The calibrated bound on the standard reference's oracle arm."""
    b = _bound("standard", ORACLE.name)
    o = b["outside_bound"]
    outside = o["n_above_max"] + o["n_between_1_and_s"]
    return "\n".join([
        "| data (oracle arm) | h0 | beta | lambda | held-out k* within 1 (bound / constant) "
        "| outside the bound |",
        "|---|---|---|---|---|---|",
        f"| `configs/standard.yaml` (reference `standard`) | {_edge(b['params']['h0'])} | "
        f"{_edge(b['params']['beta'])} | {_edge(b['params']['est_weight'])} | "
        f"{pct(b['heldout']['share_within_1'])} / {pct(b['heldout']['share_within_1_constant'])} | "
        f"{'no cell' if outside == 0 else f'{outside} cells (Holm)'} |",
    ])


def theory_quick_table() -> str:
    """Section 7's table: each part of the bound against the quick reference's learned arm (OOD)."""
    b = _bound("quick", LEARNED.name)
    ks, p, n = _s1_misfit(b)
    h = b["heldout"]
    edges = [k for k, v in b["params"].items() if v["at_search_bound"]]
    between = _pooled(b, "all", "between_1_and_s")
    n_between = b["outside_bound"]["n_between_1_and_s"]
    return "\n".join([
        "| part | whose | status against the data |",
        "|---|---|---|",
        "| P2's Theorem 1 (counting step, k (1 + log(T/k))) | **P2** | its k-dependence is a small part of "
        "the "
        f"instantiated term: E(k=1)/E(k=T) = {f2(b['estimation_k_share'])}, so most of the term is a k-free "
        "offset, nearly collinear with any noise floor; as a term of the fitted risk its weight "
        + (f"goes to the lower edge ({b['params']['est_weight']['estimate']:.0e}): the data give it no role |"
           if b["params"]["est_weight"]["at_search_bound"] else
           f"is {b['params']['est_weight']['estimate']:.2g} |"),
        "| R_m(H) of our experts, d_N of our router | **ours** (standard results) | its level in MSE units "
        "is far above the measured gaps between k (figure 5); only trends can be compared |",
        "| approximation bound (hinge at s, decay in k/s, width floor) | **ours** | cannot produce "
        f"k* > ceil(sT/S): at s = 1 (limit 2) the measured k* is {ks} and the loss beyond k = 2 is lower "
        f"(p = {f2(p)} pooled over the {n} cells, OOD); its floor does not depend on s, while the measured "
        f"loss {_loss_at_top_k()} |",
        f"| risk = A + lambda E, constants h0, beta, lambda | **ours** | fitted (plus a floor): "
        f"{', '.join(edges) or 'none'} at the edges of their ranges, beta = "
        f"{f2(b['params']['beta']['estimate'])} "
        f"(OOD); held-out k* within +-1 in {pct(h['share_within_1'])} (constant k*: "
        f"{pct(h['share_within_1_constant'])}); AIC {b['aic']:.0f} against {b['free_form_aic']:.0f} for "
        "free-form curves |",
        "| \"no k* strictly inside (1, s)\" | **ours** | "
        + ("not contradicted: no cell" if n_between == 0 else f"{n_between} cells (Holm)")
        + f" (pooled p = {f2(between)}) |",
    ])
