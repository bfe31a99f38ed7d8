"""The report.md section of the `theory_fit` block (`fits.theory.analysis`)."""

from __future__ import annotations

import math

import pandas as pd

from fits.theory.bound_model import FORM


def _fmt(x, nd=3):
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{nd}g}"


def markdown(block: dict) -> str:
    """The report.md section for a `theory_fit` block."""
    if not block.get("fitted"):
        return f"Not fitted: {block.get('reason')}\n"
    arms = block.get("by_router") or {block.get("router") or "all rows": block}
    parts = [f"Form: `{FORM}` (A: the toolkit's approximation bound; E: P2's Theorem 1 with the toolkit's"
             " R_m and d_N; floor: label noise, not in the bound). Huber loss on log seed-mean losses,"
             " seed-cluster bootstrap CIs.", ""]
    for arm, b in arms.items():
        parts += [f"### Router arm: {arm}", ""]
        if not b.get("fitted"):
            parts += [f"Not fitted: {b.get('reason')}", ""]
            continue
        parts += ["| constant | estimate | 95% CI (bootstrap) | 95% profile interval | identified |"
                  " collinear with |", "|---|---|---|---|---|---|"]
        for name, p in b["params"].items():
            parts.append(f"| {name} | {_fmt(p['estimate'])} | [{_fmt(p['ci95'][0])}, {_fmt(p['ci95'][1])}] |"
                         f" [{_fmt(p['profile_ci95'][0])}, {_fmt(p['profile_ci95'][1])}] |"
                         f" {'yes' if p['identified'] else 'NO'} | {p['collinear_with'] or '-'} |")
        ho = b.get("heldout") or {}
        ob = b["outside_bound"]
        parts += ["", f"- RMSE of log loss in sample: {_fmt(b['rmse_log'])}; AIC {_fmt(b['aic'], 5)}"
                  f" ({b['n_params']} parameters) against the free-form curves' {_fmt(b['free_form_aic'], 5)}"
                  f" ({b['free_form']['n_params']} parameters)",
                  f"- E(k=1)/E(k=T), median over cells: {_fmt(b['estimation_k_share'])} (the share of the"
                  " estimation term that does not vary with k)"]
        if ho.get("available"):
            parts.append(f"- Leave one level out: RMSE of log loss {_fmt(ho['rmse_log'])}; held-out k*"
                         f" within +-1 in {_fmt(100 * ho['share_within_1'], 3)} % of {ho['n_predictions']}"
                         f" predictions (constant k*: {_fmt(100 * ho['share_within_1_constant'], 3)} %;"
                         f" the rule k* = s r: {_fmt(100 * ho['share_within_1_rule'], 3)} %)")
        parts.append(f"- Outside what the bound can produce (paired t tests over seeds, Holm over cells):"
                     f" loss lower above its largest possible k* in {ob['n_above_max']} of {ob['n_cells']}"
                     f" cells ({ob['n_above_max_uncorrected']} uncorrected); inside (1, s) in"
                     f" {ob['n_between_1_and_s']} ({ob['n_between_1_and_s_uncorrected']} uncorrected);"
                     " measured k*'s 95 % interval entirely above the bound's largest k* in"
                     f" {ob['n_k_star_ci_above_max']}")
        pooled = pd.DataFrame(ob.get("pooled", []))
        if len(pooled):
            parts += ["", "Pooled over cells (per seed, the mean contrast; one-sided t test over seeds):", "",
                      _table(pooled)]
        cells = pd.DataFrame(ob["cells"])
        if len(cells):
            bounds = zip(cells["k_star_ci_low"], cells["k_star_ci_high"], strict=True)
            cells = cells.assign(ci=[f"[{lo:g}, {hi:g}]" for lo, hi in bounds])
            parts += ["", _table(cells[["complexity", "n_train", "width", "n_experts", "k_star", "ci",
                                        "k_star_bound", "k_star_max_bound", "above_max_p", "above_max_holm",
                                        "between_p"]])]
        parts += ["", *[f"- note: {n}" for n in b["notes"]], ""]
    terms = block.get("terms") or {}
    parts += ["### Each term on its own (oracle arm)", ""]
    if not terms.get("available"):
        parts += [f"Not available: {terms.get('reason')}", ""]
    else:
        parts += [_table(pd.DataFrame(terms["approximation"])), ""]
        est = terms["estimation"]
        if est.get("available"):
            parts += ["Realized excess error against the bound's complexity term, median local slopes"
                      " (log excess per log m, per log k):", "",
                      _table(pd.DataFrame(est["median_slopes"]).T.reset_index(names="direction")), ""]
        else:
            parts += [f"Estimation: not available: {est.get('reason')}", ""]
    return "\n".join(parts)


def _table(df: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * df.shape[1]]
    lines += ["| " + " | ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in row) + " |"
              for row in df.itertuples(index=False)]
    return "\n".join(lines)
