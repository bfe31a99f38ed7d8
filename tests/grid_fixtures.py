"""Tiny regression grids that train in seconds, shared by the grid, resume, routing and k_eval tests.

TINY is the plain learned-router grid (8 cells x 2 seeds = 16 models in 4 bundles); ARMS holds every
router and expert arm, so a test can run the arms end to end or pick one of them.
"""

from __future__ import annotations

TINY = {
    "name": "tiny", "n_skills": 4, "d_in": 4, "teacher_width": 8, "noise": 0.1, "holdout_frac": 0.25,
    "complexity": [1, 2], "n_experts": [4], "k": [1, 2], "n_train": [32, 64], "width": [4], "seeds": [0, 1],
    "lr": 0.01, "max_steps": 30, "eval_every": 10, "patience": 2, "n_val": 32, "n_test": 64,
    "max_models_per_bundle": 4, "device": "cpu", "router": ["learned"], "experts": ["learned"],
}

ARMS = {"name": "arms", "n_skills": 4, "d_in": 4, "teacher_width": 8, "complexity": [1, 2], "n_experts": [8],
        "k": [1, 2, 4], "n_train": [64], "width": [4], "seeds": [0], "lr": 0.01, "max_steps": 20,
        "eval_every": 10, "patience": 2, "n_val": 32, "n_test": 64, "device": "cpu",
        "router": ["learned", "oracle", "dense"], "experts": ["learned", "teacher"]}
