"""Benchmark of one SRAVEN bundle training step (simulations.families.sraven): forward + backward + Adam of M
transformers at once, with a k sweep 1..8 repeated across the models, against a one-model bundle of
the same shape timed in the same process (the reference: training M models one after another costs
M x its time). Also times drawing the problems of one step. Prints one markdown table and nothing else.
`--estimators` instead times one step of the converge preset's bundle (a k sweep of 6 models, column
tokens) under each router estimator (simulations.families.sraven.estimators), as a ratio to pathwise's
step timed in the same process.

    python bench/sraven.py [--threads 1] [--repeats 3] [--shapes full|quick] [--estimators]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from simulations.families.sraven import SravenTransformer, sample, to_tokens
from simulations.families.sraven.estimators import StepLoss

FULL_SHAPES = [  # (M, d_model, batch, d_expert)
    (8, 32, 64, 32),
    (16, 32, 64, 32),
    (32, 32, 64, 32),
    (8, 64, 128, 64),
    (16, 64, 128, 64),
]
QUICK_SHAPES = [(8, 32, 64, 32)]


def make_step(M: int, d: int, batch: int, d_expert: int):
    ks = [1 + i % 8 for i in range(M)]
    model = SravenTransformer(ks, list(range(M)), d_model=d, n_heads=4, n_blocks=2, d_expert=d_expert)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    data = [to_tokens(sample(batch, 8, "train", seed=i)) for i in range(M)]
    x = torch.as_tensor(np.stack([t for t, _ in data]))
    y = torch.as_tensor(np.stack([t for _, t in data]))

    def step() -> None:
        opt.zero_grad()
        logits, stats = model(x, return_stats=True)
        ce = F.cross_entropy(logits.flatten(0, 2), y.flatten(), reduction="none").view(M, -1).mean(1)
        (ce + 0.01 * sum(s.load_balancing_loss for s in stats)).sum().backward()
        opt.step()

    return step


def estimator_step(name: str, samples: int = 4):
    """One Adam step of the converge preset's bundle shape under estimator `name`."""
    ks = [1, 2, 3, 4, 6, 8]
    model = SravenTransformer(ks, [0] * len(ks), d_model=32, n_heads=4, n_blocks=2, d_expert=32,
                              tokens="column")
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    tokens, target = to_tokens(sample(64, 4, "train", seed=0))
    x = torch.as_tensor(np.stack([tokens] * len(ks)))
    y = torch.as_tensor(np.stack([target] * len(ks)))
    loss = StepLoss(name, 0.01, [(0, 4, k) for k in ks], score_samples=samples)

    def step() -> None:
        opt.zero_grad()
        loss(model, x, y)[1].sum().backward()
        opt.step()

    return step


def estimator_table(repeats: int) -> None:
    print("| estimator | ms/step (6 models) | vs pathwise |")
    print("|---|---|---|")
    base = best_s(estimator_step("pathwise"), repeats)
    for name, samples in (("pathwise", 4), ("dense_ste", 4), ("score", 2), ("score", 4)):
        t = base if name == "pathwise" else best_s(estimator_step(name, samples), repeats)
        label = f"{name} ({samples} samples)" if name == "score" else name
        print(f"| {label} | {1e3 * t:.0f} | {t / base:.2f}x |")


def best_s(fn, repeats: int, min_time: float = 0.3) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    fn()
    inner = max(1, int(min_time / max(time.perf_counter() - t0, 1e-6)))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        best = min(best, (time.perf_counter() - t0) / inner)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--shapes", choices=["full", "quick"], default="full")
    ap.add_argument("--estimators", action="store_true", help="time each router estimator against pathwise")
    args = ap.parse_args()
    if args.threads < 1 or args.repeats < 1:
        ap.error("--threads and --repeats must be >= 1")
    torch.set_num_threads(args.threads)
    if args.estimators:
        estimator_table(args.repeats)
        return
    print(f"threads={args.threads}; k = 1..8 repeated over the M models; 2 blocks, 4 heads, 8 experts, "
          "impl=auto")
    print("| M | d_model | batch | d_expert | ms/step | ms/model-step | one-model ms/step | M x one / bundle "
          "| data ms/step |")
    print("|---|---|---|---|---|---|---|---|---|")
    shapes = FULL_SHAPES if args.shapes == "full" else QUICK_SHAPES
    for M, d, batch, d_expert in shapes:
        bundle = best_s(make_step(M, d, batch, d_expert), args.repeats)
        one = best_s(make_step(1, d, batch, d_expert), args.repeats)
        data = best_s(lambda: [to_tokens(sample(batch, 8, "train", seed=i, draw=1)) for i in range(M)],  # noqa: B023
                      args.repeats)
        print(f"| {M} | {d} | {batch} | {d_expert} | {1e3 * bundle:.0f} | {1e3 * bundle / M:.1f} | "
              f"{1e3 * one:.1f} | {M * one / bundle:.2f} | {1e3 * data:.1f} |")


if __name__ == "__main__":
    main()
