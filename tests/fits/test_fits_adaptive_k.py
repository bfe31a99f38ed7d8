"""fits.adaptive_k: mean experts per input by s with seed-cluster intervals, and the slope on s."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fits.adaptive_k import adaptive_k_block, adaptive_k_markdown, experts_by_s


def synthetic(slope: float, noise: float = 0.0, seeds: int = 6) -> pd.DataFrame:
    """Rows of the experts-by-s table: mean experts = 1 + slope * s + a seed offset (+ level noise)."""
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(seeds):
        offset = rng.normal(0, 0.3)
        for s in (1, 2, 4):
            for router, value in (("top_p", 1 + slope * s + offset + rng.normal(0, noise)), ("learned", 4.0)):
                rows.append({"router": router, "experts": "learned", "seed": seed, "s": s, "n_experts": 16,
                             "width": 4, "n_train": 500, "k": 4, "diverged": False, "mean_experts_id": value})
    rows.append(rows[-1] | {"router": "dense", "mean_experts_id": np.nan})  # no routing: left out
    return pd.DataFrame(rows)


def test_a_seed_offset_leaves_the_slope_exact():
    levels, slopes = experts_by_s(synthetic(0.5), n_boot=200)
    top = slopes.set_index("arm").loc["top_p"]
    assert top["slope"] == pytest.approx(0.5) and top["ci_low"] == pytest.approx(0.5)
    assert top["ci_high"] == pytest.approx(0.5)
    assert slopes.set_index("arm").loc["learned", "slope"] == pytest.approx(0.0)
    assert set(levels["arm"]) == {"top_p", "learned"} and (levels["n_seeds"] == 6).all()
    lv = levels[levels.arm == "top_p"].set_index("s")
    assert lv.loc[4, "mean_experts"] - lv.loc[1, "mean_experts"] == pytest.approx(1.5)
    assert (lv["ci_low"] < lv["mean_experts"]).all() and (lv["mean_experts"] < lv["ci_high"]).all()


def test_noisy_levels_give_an_interval_around_the_slope():
    _, slopes = experts_by_s(synthetic(0.5, noise=0.2, seeds=20), n_boot=500)
    top = slopes.set_index("arm").loc["top_p"]
    assert top["ci_low"] < 0.5 < top["ci_high"] and top["ci_high"] - top["ci_low"] < 0.3
    _, flat = experts_by_s(synthetic(0.0, noise=0.2, seeds=20), n_boot=500)
    assert flat.set_index("arm").loc["top_p", "ci_low"] < 0 < flat.set_index("arm").loc["top_p", "ci_high"]


def test_diverged_models_are_left_out_and_the_block_reports():
    df = synthetic(0.5)
    df.loc[(df.seed == 0) & (df.router == "top_p"), ["diverged", "mean_experts_id"]] = [True, 1e6]
    levels, slopes = experts_by_s(df, n_boot=50)
    assert (levels[levels.arm == "top_p"]["n_seeds"] == 5).all()
    assert slopes.set_index("arm").loc["top_p", "slope"] == pytest.approx(0.5)
    block = adaptive_k_block(df, 50, 0)
    assert block["available"] and "| top_p |" in adaptive_k_markdown(block)
    assert not adaptive_k_block(pd.DataFrame(), 50, 0)["available"]
