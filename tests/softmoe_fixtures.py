"""Tiny Soft MoE (P3) experiments and their documented row columns, shared by the experiments', the family
registry's and the figures' tests; `write_softmoe_store` writes a results/softmoe-like tree from them."""

from __future__ import annotations

from pathlib import Path

from simulations.families.softmoe import __main__ as cli
from simulations.families.softmoe import expert_drop, single_expert

SINGLE_RESULT_COLUMNS = [
    "n_tokens", "token_dim", "tokenization", "n_experts", "expert_width", "expert_params", "seed", "steps",
    "batch_size", "initial_loss", "final_loss", "final_train_loss", "baseline_mse", "relative_loss",
]
DROP_RESULT_COLUMNS = [
    "n_experts", "expert_width", "seed", "k", "keep_frac", "method", "draw", "accuracy", "error",
    "final_train_loss",
]

TINY_SINGLE = single_expert.SingleExpertConfig(n_experts=(1, 2), seeds=(0, 1), batch_size=64, steps=6,
                                               eval_size=128, log_every=2)
TINY_DROP = expert_drop.ExpertDropConfig(n_experts=(2, 8), total_width=16, image_size=8, n_train=256,
                                         n_test=128, epochs=1, batch_size=64, seeds=(0, 1), random_draws=3)


def write_softmoe_store(root: Path) -> Path:
    """results/softmoe-like tree (single_expert/, expert_drop/) from tiny runs of the real CLI."""
    saved, tiny = cli.preset_config, {"single-expert": TINY_SINGLE, "expert-drop": TINY_DROP}
    cli.preset_config = lambda experiment, name: tiny[experiment]
    try:
        for exp, sub in (("single-expert", "single_expert"), ("expert-drop", "expert_drop")):
            assert cli.main([exp, "--out", str(root / sub), "--no-progress"]) == 0
    finally:
        cli.preset_config = saved
    return root
