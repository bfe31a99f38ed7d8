"""The gate map (fits.gate_map) on synthetic rows whose answers are known: k*, the ratio to the oracle's
best (paired through the same seed draws), recall at k = s and the error split read at k*."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fits.gate_map import gate_map

KS = [1, 2, 4, 8]


def _rows(arm: tuple[str, str, str], curve: dict[int, float], seeds=(0, 1, 2), s=2, **extra) -> list[dict]:
    router, experts, gate = arm
    out = []
    for seed in seeds:
        for k in KS:
            nmse = curve[k] * (1 + 0.01 * seed)
            out.append({"router": router, "experts": experts, "gate": gate, "seed": seed, "k": k,
                        "complexity": s, "n_train": 2000, "width": 4, "n_experts": 16, "task": "contextual",
                        "diverged": False, "test_nmse_id": nmse, "test_nmse_ood": 2 * nmse,
                        "routing_recall": 0.5 + 0.1 * k, "routing_recall_baseline": 0.25,
                        "nmse_oracle_selection_id": nmse / 2, "nmse_equal_gates_id": nmse * 0.9,
                        "misrouted_share_id": 0.1 * k, **extra})
    return out


def test_gate_map_reads_k_star_ratio_recall_and_split_off_known_curves():
    oracle = {1: 0.5, 2: 0.1, 4: 0.1, 8: 0.1}
    learned = {1: 0.9, 2: 0.6, 4: 0.3, 8: 0.4}
    rows = pd.DataFrame(_rows(("oracle", "learned", "softmax"), oracle)
                        + _rows(("learned", "learned", "uniform"), learned))
    table = gate_map(rows, n_boot=200).set_index("arm")
    got = table.loc["learned-uniform"]
    assert got["k_star_id"] == 4 and got["k_star_id_lo"] == got["k_star_id_hi"] == 4
    mean = np.mean([0.3 * (1 + 0.01 * s) for s in range(3)])
    oracle_best = np.mean([0.1 * (1 + 0.01 * s) for s in range(3)])
    np.testing.assert_allclose(got["best_nmse_id"], mean)
    np.testing.assert_allclose(got["ratio_id"], mean / oracle_best)
    assert got["ratio_id_lo"] <= got["ratio_id"] <= got["ratio_id_hi"]
    np.testing.assert_allclose(got["ratio_ood"], mean / oracle_best)  # both OOD curves are 2x the ID ones
    np.testing.assert_allclose(got["recall_at_s"], 0.7)  # k = s = 2
    np.testing.assert_allclose(got["recall_chance_at_s"], 0.25)
    np.testing.assert_allclose(got["nmse_oracle_selection_id"], mean / 2)  # read at k* = 4
    np.testing.assert_allclose(got["misrouted_share_id"], 0.4)
    # the oracle's own ratio is 1 in every draw, at its first minimum k
    assert table.loc["oracle", "ratio_id"] == 1 == table.loc["oracle", "ratio_id_hi"]
    assert table.loc["oracle", "k_star_id"] == 2


def test_gate_map_without_oracle_rows_has_nan_ratios_and_keeps_the_rest():
    rows = pd.DataFrame(_rows(("learned", "learned", "softmax"), {1: 0.9, 2: 0.6, 4: 0.3, 8: 0.4}))
    table = gate_map(rows, n_boot=50)
    assert len(table) == 1 and np.isnan(table["ratio_id"].iloc[0]) and table["k_star_id"].iloc[0] == 4


def test_the_estimator_columns_read_the_arm_its_routing_gain_and_its_cost():
    """Route-free baseline 1 and the oracle's best 0.1: the learned arm's best share is (1 - 0.3) / 0.9
    on ID; its cost per step is its wall time over its steps and single-skill steps."""
    extra = {"route_free_nmse": 1.0, "route_free_nmse_ood": 1.0, "wall_s": 3.0, "steps": 1000,
             "single_skill_steps": 500, "estimator": "score"}
    oracle = _rows(("oracle", "learned", "softmax"), {1: 0.5, 2: 0.1, 4: 0.1, 8: 0.1}, seeds=[0],
                   **extra | {"estimator": "pathwise"})
    learned = _rows(("learned", "learned", "uniform"), {1: 0.9, 2: 0.6, 4: 0.3, 8: 0.4}, seeds=[0], **extra)
    rows = pd.DataFrame(oracle + learned)
    got = gate_map(rows, n_boot=20).set_index("arm").loc["learned-uniform-score"]
    assert (got["router"], got["experts"], got["gate"], got["estimator"]) == ("learned", "learned", "uniform",
                                                                              "score")
    np.testing.assert_allclose(got["best_share_id"], 0.7 / 0.9)
    np.testing.assert_allclose(got["ms_per_step"], 1000 * 3.0 / 1500)
    assert got["single_skill_steps"] == 500 and got["router_init"] == "random"
