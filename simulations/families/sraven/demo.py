"""A small SRAVEN demonstration on the CPU: a bundle of top-k MoE transformers (one per k) trained on one
setting for a fixed number of steps, printing a learning curve and the final metrics.

    python -m simulations.families.sraven.demo [--n-rules 2] [--ks 1 2 8] [--steps 600] [--threads 1] ...

At CPU scale the accuracy differences between k mostly measure how fast each k trains in the given
steps, not a meaningful optimal k* (docs/sraven.md).
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from .train import ModelSpec, SravenSettings, train_bundle


def main(argv: list[str] | None = None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(prog="python -m simulations.families.sraven.demo",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--n-rules", type=int, default=2, choices=range(2, 9), help="rule pool size R")
    ap.add_argument("--distinct", type=int, default=None, choices=range(1, 5),
                    help="distinct rules per problem (default: any)")
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 2, 8], choices=range(1, 9))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-permute", action="store_true",
                    help="diagnostic: no per-column feature permutation (not SRAVEN)")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--d-model", type=int, default=32)
    ap.add_argument("--d-expert", type=int, default=32)
    ap.add_argument("--n-blocks", type=int, default=2)
    ap.add_argument("--n-eval", type=int, default=512)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = ap.parse_args(argv)
    for name in ("steps", "batch", "n_eval", "eval_every", "threads", "d_model", "d_expert", "n_blocks"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    torch.set_num_threads(args.threads)
    specs = [ModelSpec(k=k, n_rules=args.n_rules, seed=args.seed, distinct=args.distinct,
                       permute=not args.no_permute) for k in args.ks]
    settings = SravenSettings(steps=args.steps, batch=args.batch, lr=args.lr, d_model=args.d_model,
                              d_expert=args.d_expert, n_blocks=args.n_blocks, n_eval=args.n_eval,
                              eval_every=args.eval_every)
    t0 = time.perf_counter()
    df = train_bundle(specs, settings)
    wall = time.perf_counter() - t0
    curve = df.attrs["history"].assign(k=lambda h: df["k"].to_numpy()[h["model"]])
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(curve.pivot(index="step", columns="k", values=["feat_acc_id", "acc_id"]).round(3).to_string())
        cols = ["k", "n_rules", "distinct", "n_multisets_train", "n_multisets_ood", "train_ce_last",
                "feat_acc_id", "acc_id", "acc_id_unambiguous", "ambiguous_id", "feat_acc_ood", "acc_ood",
                "router_entropy"]
        print(df[cols].round(3).to_string(index=False))
    print(f"{len(specs)} models x {args.steps} steps x batch {args.batch}: {wall:.1f} s wall "
          f"({torch.get_num_threads()} thread(s))")
    return df


if __name__ == "__main__":
    main()
