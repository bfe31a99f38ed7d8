"""Benchmark: the lambdified risk bound on 10^6 points against a sympy subs/evalf loop (same process).

    python bench/theory.py [--points 1000000] [--sample 20]

Prints seconds for 10^6 points (target < 0.5 s on one core), the per-point cost of both paths, their
ratio, and that both paths agree on the sample.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import theory  # noqa: E402
from theory import symbols as sy  # noqa: E402

DEFAULTS = {sy.S: 8, sy.h0: 2.0, sy.beta: 1.0, sy.d: 8, sy.C: 1.0, sy.delta: 0.05, sy.B_a: 1.0, sy.B_w: 1.0,
            sy.lam: 1.0}


def random_points(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    T = rng.integers(8, 33, n).astype(float)
    return {"k": np.floor(rng.uniform(1, T + 1)), "s": rng.integers(1, 9, n).astype(float),
            "m": 10 ** rng.uniform(2, 6, n), "h": rng.uniform(4, 64, n), "T": T}


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10**6, help="points for the lambdified path")
    parser.add_argument("--sample", type=int, default=20, help="points for the subs/evalf loop")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    p = random_points(args.points, rng)
    theory.risk_bound_value(**{key: v[:10] for key, v in p.items()})  # compile once, outside the timing
    t_fast = best_of(lambda: theory.risk_bound_value(**p), repeat=3)

    expr = theory.risk_bound.subs(DEFAULTS)
    sample = {key: v[: args.sample] for key, v in p.items()}

    def slow() -> list[float]:
        return [float(expr.subs({sy.k: sample["k"][i], sy.s: sample["s"][i], sy.m: sample["m"][i],
                                 sy.h: sample["h"][i], sy.T: sample["T"][i]}).evalf())
                for i in range(args.sample)]

    t0 = time.perf_counter()
    slow_vals = slow()
    t_slow = time.perf_counter() - t0
    fast_vals = theory.risk_bound_value(**sample)
    agree = np.allclose(slow_vals, fast_vals, rtol=1e-10)

    kgrid = {"s": np.arange(1, 9.0)[:, None, None], "m": np.logspace(2, 6, 50)[:, None],
             "h": np.linspace(4, 64, 50)}
    t_k = best_of(lambda: theory.optimal_k(kgrid["s"], kgrid["m"], kgrid["h"], 16), repeat=3)

    per_fast, per_slow = t_fast / args.points, t_slow / args.sample
    print(f"cpu cores visible: {os.cpu_count()} (numpy evaluation is single-threaded)")
    print(f"lambdified risk bound, {args.points:,} points: {t_fast:.3f} s "
          f"({'meets' if t_fast < 0.5 * args.points / 1e6 else 'MISSES'} the 0.5 s per 10^6 target)")
    print(f"subs/evalf loop, {args.sample} points: {t_slow:.3f} s")
    print(f"per point: lambdified {per_fast * 1e9:.1f} ns, subs/evalf {per_slow * 1e6:.1f} us, "
          f"ratio {per_slow / per_fast:,.0f}x; values agree: {agree}")
    print(f"optimal_k on 8 x 50 x 50 cells, T = 16 (exact argmin over k = 1..16): {t_k * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
