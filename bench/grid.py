"""Benchmark of the grid's bundles (data, training, evaluation) against an earlier implementation.

Runs fixed bundles of the quick preset end to end (`simulations.grid.run_bundle`: task data, init,
training, the final evaluations) for a fixed number of steps (early stopping off: `patience` set out of
reach, so every model trains `--steps` steps and model-steps/s measures the per-step work), once with
this checkout's `simulations` and once with the package as it was at `--base` (default: 052741a, the
commit before issue 13), in the same process, taking turns, on the same bundles. The base package is
extracted with `git archive` into a temporary directory and imported as `simulations_base` (its
`simulations` imports rewritten), so both run side by side and the speed-up is a ratio from one run.
Each repeat starts cold: the in-process caches of both (task objects, reference statistics, drawn
splits) are emptied first, as in a fresh `python -m simulations.grid` process.

Then, on the first bundle, the pieces of that time for both: task data; routing and selection (router
softmax, top-k mask, gates; forward); expert forward and backward (the rest of one training step's
forward + backward); optimizer and bookkeeping (gradient clean-up and clipping, Adam, checkpoint
restores: a step's cost beyond its forward + backward); evaluation (validation every `eval_every`
steps, the final train/test/router metrics).

Times are CPU seconds of this process (time.process_time; the grid trains with one thread), which on
a shared machine are much steadier than wall time; wall time is printed too. Best of --repeats.
It also reports whether the two implementations' rows (every metric) are bit-identical.

Last, the cost of one training step of the first bundle under each router-gradient estimator
(simulations.estimators: pathwise, the score function, ...), as CPU ms and a ratio to pathwise, for
this checkout only (the base had one gradient).

    python bench/grid.py [--base REV] [--bundles 0,6] [--steps 200] [--repeats 2] [--no-pieces]
                         [--no-estimators]
"""

from __future__ import annotations

import argparse
import importlib
import io
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch

import simulations
from simulations import config as new_config
from simulations import grid as new_grid
from simulations import selection as new_selection
from simulations.estimators import DEFAULT_ESTIMATOR, ESTIMATORS
from simulations.families.regression import family as new_regression
from simulations.families.regression import tasks as new_tasks
from simulations.families.regression import train as new_train

BASE_REV = "052741a"  # main before issue 13 (top-k rounds, per-bundle task data, per-step restores)
METRICS = ["train_mse", "val_mse", "test_mse_id", "test_mse_ood", "router_entropy", "steps",
           "early_stopped", "diverged"]
REPO = Path(simulations.__file__).resolve().parent.parent


def load_base(rev: str, into: Path) -> SimpleNamespace:
    """Import the `simulations` package as of git revision `rev` as `simulations_base`."""
    blob = subprocess.run(["git", "archive", rev, "simulations"], cwd=REPO, capture_output=True,
                          check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(into, filter="data")
    pkg = into / "simulations_base"
    (into / "simulations").rename(pkg)
    for py in pkg.rglob("*.py"):
        text = py.read_text()
        text = re.sub(r"^(\s*)(from|import) simulations\b", r"\1\2 simulations_base", text,
                      flags=re.MULTILINE)
        # module paths and package names in strings too (family registries, preset packages)
        py.write_text(re.sub(r'"simulations(?=[."])', '"simulations_base', text))
    sys.path.insert(0, str(into))
    # the regression family's modules moved under families/regression/ with issue 19
    names = {"config": "config", "grid": "grid", "selection": "moe", "tasks": "tasks", "train": "train",
             "regression": "regression"}
    if (pkg / "families" / "regression").is_dir():
        names.update({n: f"families.regression.{n}" for n in ("tasks", "train")},
                     regression="families.regression.family")
    if (pkg / "selection.py").exists():  # the top-k selection left moe.py for its own module
        names["selection"] = "selection"
    return SimpleNamespace(name=f"base {rev}", **{n: importlib.import_module(f"simulations_base.{m}")
                                                  for n, m in names.items()
                                                  if (pkg / f"{m.replace('.', '/')}.py").exists()})


def this_checkout() -> SimpleNamespace:
    return SimpleNamespace(name="this checkout", config=new_config, grid=new_grid, selection=new_selection,
                           tasks=new_tasks, train=new_train, regression=new_regression)


def regression_helpers(impl: SimpleNamespace):
    """The module with `_task` and `_init_seed`: simulations.grid before the task families, the regression
    family's module after."""
    return getattr(impl, "regression", impl.grid)


def clear_caches(impl: SimpleNamespace) -> None:
    regression_helpers(impl)._task.cache_clear()
    if hasattr(impl.tasks, "clear_caches"):
        impl.tasks.clear_caches()


def bundles_of(impl: SimpleNamespace, steps: int, picks: list[int], preset: Path) -> list:
    """The picked bundles of `preset` (the base's quick preset: both versions read the same grid)."""
    config = impl.config.load_config(str(preset), {"max_steps": steps, "patience": 10**9})
    every = impl.grid.make_bundles(config, "cpu")
    bad = [i for i in picks if not 0 <= i < len(every)]
    if bad:
        raise SystemExit(f"error: --bundles: {bad} out of range; the quick preset has {len(every)} bundles "
                         f"(0..{len(every) - 1})")
    return [every[i] for i in picks]


def clocks() -> tuple[float, float]:
    return time.process_time(), time.perf_counter()


def end_to_end(impl: SimpleNamespace, bundles: list) -> tuple[float, float, pd.DataFrame]:
    clear_caches(impl)
    c0, w0 = clocks()
    rows = pd.concat([impl.grid.run_bundle(b) for b in bundles], ignore_index=True)
    c1, w1 = clocks()
    return c1 - c0, w1 - w0, rows


def cpu_seconds(fn, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        c0 = time.process_time()
        fn()
        best = min(best, time.process_time() - c0)
    return best


def pieces(impl: SimpleNamespace, bundle, steps: int) -> dict[str, float]:
    """CPU seconds of each piece of `bundle` trained `steps` steps (see the module docstring)."""
    g, tr, selection = regression_helpers(impl), impl.train, impl.selection
    torch.set_num_threads(bundle.threads)
    first = bundle.models[0].cell
    dtype = getattr(torch, first["dtype"])
    fields = ("n_skills", "complexity", "d_in", "teacher_width", "noise", "holdout_frac")

    def data():
        clear_caches(impl)
        tasks = [g._task(impl.tasks.TaskSpec(*(m.cell[f] for f in fields), seed=m.seed))
                 for m in bundle.models]
        return tr.make_bundle_data(tasks, [m.cell["n_train"] for m in bundle.models], first["n_val"],
                                   first["n_test"], dtype, "cpu")

    t_data = cpu_seconds(data, 1)
    d = data()
    ks = [m.cell["k"] for m in bundle.models]
    seeds = [g._init_seed(m.seed, m.cell) for m in bundle.models]
    model = tr.init_model(first["n_experts"], first["d_in"], first["width"], ks, seeds, first["impl"],
                          first["renormalize"], dtype, "cpu")
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    x = d.x_train

    def routing():
        with torch.no_grad():
            if isinstance(model.router, torch.nn.Module):  # the layer's own Router (since it has one)
                model.router.route(x)
            else:
                p = model._probs(x)
                model._gates(p, selection.topk_mask(p, model._k_vec, model._k_min, model._k_max))

    student = tr.Student(model, d, tr.TrainSettings()) if hasattr(tr, "Student") else None

    def forward_backward():
        for p in model.parameters():
            p.grad = None
        if student is not None:  # since the estimators, the training loss is the student's
            student.training_loss().sum().backward()
        else:
            tr._masked_mse(model(x), d.y_train, d.mask_train).sum().backward()

    def train(n: int):
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(start[name])
        settings = tr.TrainSettings(lr=first["lr"], max_steps=n, eval_every=10**9, patience=10**9,
                                    clip_norm=first["clip_norm"])
        return lambda: tr.train_bundle(model, d, settings)

    n_fb = 10
    t_route = cpu_seconds(lambda: [routing() for _ in range(n_fb)]) / n_fb
    t_fb = cpu_seconds(lambda: [forward_backward() for _ in range(n_fb)]) / n_fb
    t_final = cpu_seconds(train(0))  # one validation pass + the final metrics
    n_train_steps = 20
    t_step = (cpu_seconds(train(n_train_steps), 2) - t_final) / n_train_steps
    if student is not None:  # since the routing controls, evaluation goes through a Student
        t_val = cpu_seconds(lambda: tr._evaluate(student, "val"))
    else:
        t_val = cpu_seconds(lambda: tr._evaluate(model, d.x_val, d.y_val))
    n_evals = steps // first["eval_every"] + 1
    return {
        "task data": t_data,
        "routing + selection": t_route * steps,
        "experts fwd + bwd": (t_fb - t_route) * steps,
        "optimizer + bookkeeping": (t_step - t_fb) * steps,
        "evaluation": t_final + (n_evals - 1) * t_val,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=BASE_REV, help="git revision of the reference implementation")
    parser.add_argument("--bundles", default="0,6",
                        help="quick-preset bundle indices (default: the smallest, T=16 h=4 n_train=150, and "
                             "the largest, h=8 n_train=500)")
    parser.add_argument("--steps", type=int, default=200, help="training steps per bundle (fixed)")
    parser.add_argument("--repeats", type=int, default=2, help="timed repeats of each (best is kept)")
    parser.add_argument("--no-pieces", action="store_true", help="skip the per-piece breakdown")
    parser.add_argument("--no-estimators", action="store_true",
                        help="skip the per-estimator cost of a training step")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.repeats < 1:
        parser.error("--steps and --repeats must be >= 1")
    try:
        picks = [int(i) for i in args.bundles.split(",")]
    except ValueError:
        parser.error(f"--bundles must be comma-separated integers, got {args.bundles!r}")

    with tempfile.TemporaryDirectory() as tmp:
        impls = [load_base(args.base, Path(tmp)), this_checkout()]
        base = Path(tmp) / "simulations_base"
        preset = next(p for p in (base / "presets", base / "families" / "regression" / "presets")
                      if p.is_dir()) / "quick.yaml"
        work = {i.name: bundles_of(i, args.steps, picks, preset) for i in impls}
        base_b, new_b = work[impls[0].name], work[impls[1].name]
        same = [[(m.seed, m.cell["k"], m.cell["complexity"], m.cell["n_train"]) for m in b.models]
                for b in base_b] == [[(m.seed, m.cell["k"], m.cell["complexity"], m.cell["n_train"])
                                      for m in b.models] for b in new_b]
        if not same:
            raise SystemExit("error: the two implementations form different bundles; pick other --bundles")
        model_steps = sum(len(b.models) for b in new_b) * args.steps
        best = {i.name: (float("inf"), float("inf")) for i in impls}
        rows = {}
        for _ in range(args.repeats):
            for impl in impls:
                cpu, wall, rows[impl.name] = end_to_end(impl, work[impl.name])
                best[impl.name] = (min(best[impl.name][0], cpu), min(best[impl.name][1], wall))
        desc = ", ".join(b.name for b in new_b)
        print(f"quick preset, bundles {args.bundles} ({desc}); {args.steps} steps each, early stopping off; "
              f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); best of {args.repeats}")
        print()
        print("| implementation | CPU s | wall s | models/s | model-steps/s |")
        print("|---|---|---|---|---|")
        n_models = model_steps // args.steps
        for impl in impls:
            cpu, wall = best[impl.name]
            rates = f"{n_models / cpu:.2f} | {model_steps / cpu:.0f}"
            print(f"| {impl.name} | {cpu:.1f} | {wall:.1f} | {rates} |")
        ratio = best[impls[0].name][0] / best[impls[1].name][0]
        print()
        print(f"speed-up (model-steps/s, CPU time, this checkout / base): {ratio:.2f}x "
              f"(wall: {best[impls[0].name][1] / best[impls[1].name][1]:.2f}x)")
        print_rows_comparison(rows[impls[0].name], rows[impls[1].name])
        if not args.no_pieces:
            print_pieces(impls, (base_b, new_b), picks[0], args.steps)
        if not args.no_estimators:
            print_estimators(new_b[0], picks[0], args.repeats)


def print_rows_comparison(base: pd.DataFrame, new: pd.DataFrame) -> None:
    a, b = base[METRICS], new[METRICS]
    identical = all(np.array_equal(a[c].to_numpy(), b[c].to_numpy(), equal_nan=a[c].dtype.kind == "f")
                    for c in METRICS)
    if identical:
        print(f"rows: bit-identical ({len(a)} models; {', '.join(METRICS)})")
    else:
        num = [c for c in METRICS if a[c].dtype.kind == "f"]
        rel = ((a[num] - b[num]).abs() / a[num].abs().clip(lower=1e-12)).max().max()
        print(f"rows: NOT bit-identical; max relative difference {rel:.2e}; steps equal: "
              f"{np.array_equal(a['steps'], b['steps'])}")


def print_pieces(impls: list[SimpleNamespace], work: tuple[list, list], pick: int, steps: int) -> None:
    print()
    print(f"pieces of bundle {pick} ({work[1][0].name}), {steps} steps, CPU s (share of the sum):")
    print()
    parts = {i.name: pieces(i, w[0], steps) for i, w in zip(impls, work, strict=True)}
    print("| piece | " + " | ".join(i.name for i in impls) + " | ratio |")
    print("|---|" + "---|" * len(impls) + "---|")
    totals = {n: sum(p.values()) for n, p in parts.items()}
    for piece in parts[impls[0].name]:
        cells = [f"{parts[i.name][piece]:.2f} ({100 * parts[i.name][piece] / totals[i.name]:.0f}%)"
                 for i in impls]
        r = parts[impls[0].name][piece] / max(parts[impls[1].name][piece], 1e-9)
        print(f"| {piece} | " + " | ".join(cells) + f" | {r:.1f}x |")
    print("| sum | " + " | ".join(f"{totals[i.name]:.2f}" for i in impls)
          + f" | {totals[impls[0].name] / totals[impls[1].name]:.1f}x |")


def estimator_costs(bundle, repeats: int, inner: int = 5) -> dict[str, float]:
    """CPU ms of one training step (the estimator's training loss, its backward, an Adam step) of
    `bundle`'s models under each registered estimator, this checkout only (the base has none); the
    estimators take turns within each repeat, best of `repeats`."""
    torch.set_num_threads(bundle.threads)
    first = bundle.models[0].cell
    tasks = [new_regression._task(new_regression.task_spec(m.cell, m.seed)) for m in bundle.models]
    data = new_train.make_bundle_data(tasks, [m.cell["n_train"] for m in bundle.models], first["n_val"],
                                      first["n_test"], getattr(torch, first["dtype"]), "cpu")
    seeds = [new_regression._init_seed(m.seed, m.cell) for m in bundle.models]
    steps = {}
    for name in ESTIMATORS:
        model = new_train.init_model(first["n_experts"], first["d_in"], first["width"],
                                     [m.cell["k"] for m in bundle.models], seeds, first["impl"],
                                     first["renormalize"], data.x_train.dtype, "cpu")
        student = new_train.Student(model, data, new_train.TrainSettings(estimator=name), first, seeds)
        opt = torch.optim.Adam([p for _, p in student.trainable()], lr=first["lr"], foreach=True)

        def step(student=student, opt=opt) -> None:
            opt.zero_grad()
            student.training_loss().sum().backward()
            opt.step()

        step()  # warm-up
        steps[name] = step
    best = dict.fromkeys(steps, float("inf"))
    for _ in range(repeats):
        for name, step in steps.items():
            c0 = time.process_time()
            for _ in range(inner):
                step()
            best[name] = min(best[name], 1000 * (time.process_time() - c0) / inner)
    return best


def print_estimators(bundle, pick: int, repeats: int) -> None:
    print()
    print(f"one training step of bundle {pick} ({bundle.name}) per router-gradient estimator, this checkout, "
          f"CPU ms (best of {repeats}):")
    print()
    ms = estimator_costs(bundle, repeats)
    print("| estimator | ms per step | / pathwise |")
    print("|---|---|---|")
    for name, t in ms.items():
        print(f"| {name} | {t:.1f} | {t / ms[DEFAULT_ESTIMATOR]:.2f} |")


if __name__ == "__main__":
    main()
