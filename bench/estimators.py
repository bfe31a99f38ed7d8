"""Benchmark of the router-gradient estimators (simulations.estimators): the cost of one training step
under each estimator, as a ratio to the pathwise estimator's on the same bundle in the same process.

One bundle per expert kind (learned, teacher) of the estimator preset's shape (configs/estimators.yaml):
the contextual task at s = 4 (S = 8, d = d_c = 8), T = 8 experts of width 4, uniform gates, --models
models with k cycling through 1, 2, 4, 8, --n-train points each. A step is the estimator's training
loss, its backward and an Adam step (no evaluation). The estimators take turns within each repeat, so
load from other processes hits them alike. Prints ms per step (best of --repeats) and the ratio to
pathwise as one markdown table.

    python bench/estimators.py [--n-train 2000] [--models 16] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import torch

from simulations.estimators import DEFAULT_ESTIMATOR, ESTIMATORS
from simulations.families.regression import family
from simulations.families.regression import train as tr
from simulations.families.regression.config import GridConfig
from simulations.families.regression.task_registry import CONTEXTUAL

N_EXPERTS = 8  # one expert per skill, as the estimator preset


def step_function(experts: str, estimator: str, n_train: int, n_models: int):
    """One training step of a fresh bundle under `estimator` (a closure)."""
    cell = {**GridConfig().to_dict(), "task": CONTEXTUAL, "complexity": 4, "n_train": n_train}
    tasks = [family._task(family.task_spec(cell, seed)) for seed in range(n_models)]
    data = tr.make_bundle_data(tasks, [n_train] * n_models, 8, 8, torch.float32, "cpu",
                               n_experts=N_EXPERTS if experts == "teacher" else None)
    ks = [(1, 2, 4, 8)[i % 4] for i in range(n_models)]
    model = tr.init_model(N_EXPERTS, 8, 4, ks, list(range(n_models)), "auto", "k>1", torch.float32, "cpu",
                          gate="uniform", d_context=8)
    student = tr.Student(model, data, tr.TrainSettings(experts=experts, estimator=estimator),
                         seeds=list(range(n_models)))
    opt = torch.optim.Adam([p for _, p in student.trainable()], lr=0.01)

    def step() -> None:
        opt.zero_grad()
        student.training_loss().sum().backward()
        opt.step()

    return step


def best_ms(steps: dict, repeats: int, inner: int = 3) -> dict[str, float]:
    """Best over `repeats` of the mean ms of one step (`inner` steps per repeat), per named step."""
    for step in steps.values():
        step()  # warm-up
    best = dict.fromkeys(steps, float("inf"))
    for _ in range(repeats):
        for name, step in steps.items():
            t0 = time.perf_counter()
            for _ in range(inner):
                step()
            best[name] = min(best[name], 1000 * (time.perf_counter() - t0) / inner)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-train", type=int, default=2000)
    p.add_argument("--models", type=int, default=16)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(1)
    print("| experts | estimator | ms per step | / pathwise |\n|---|---|---|---|")
    for experts in ("learned", "teacher"):
        steps = {name: step_function(experts, name, args.n_train, args.models) for name in ESTIMATORS}
        ms = best_ms(steps, args.repeats)
        for name in ESTIMATORS:
            print(f"| {experts} | {name} | {ms[name]:.1f} | {ms[name] / ms[DEFAULT_ESTIMATOR]:.2f} |")


if __name__ == "__main__":
    main()
