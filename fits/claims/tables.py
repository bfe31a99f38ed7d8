"""The map tables of docs/tasks.md, one reference's `gate_map` rows each: `gate-map:NAME` (every arm and
s of a composition reference) and `estimator-map:NAME` (the routed arms of an estimator reference)."""

from __future__ import annotations

from fits.claims.reference import ORACLE, ci_cols, dash, gate_rows, num


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
            dash(r[c], "{:.3f}")
            for c in ("nmse_id_at_k_star", "nmse_oracle_selection_id", "nmse_equal_gates_id")
        )
        rows.append(
            f"| {r['arm']} | {num(r['complexity'])} | {dash(r['recall_at_s'])} "
            f"({dash(r['recall_chance_at_s'])}) | {ci_cols(r, 'k_star_id', '{:g}')} "
            f"| {ci_cols(r, 'ratio_id')} | {dash(r['ratio_ood'])} | {split} "
            f"| {dash(r['misrouted_share_id'])} |"
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
            f"{dash(r['recall_at_s'])} ({dash(r['recall_chance_at_s'])}) | {ci_cols(r, 'ratio_id')} | "
            f"{dash(r['ratio_ood'])} | {dash(r['best_share_id'])} | "
            f"{dash(r['nmse_oracle_selection_id'], '{:.3f}')}, "
            f"{dash(r['misrouted_share_id'])} | {dash(r['ms_per_step'], '{:.1f}')} |"
        )
    return "\n".join(rows)


