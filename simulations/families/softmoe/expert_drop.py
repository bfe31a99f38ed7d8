"""Experiment 2 (P3's Algorithm 1): keep only k of n experts per input at inference; which k?

Task: procedural MNIST-like digits (`digits.py`), rows cut into 4 band tokens like P3's MNIST. Model: one
Soft MoE layer (total expert hidden width fixed, split evenly over n experts) and a linear classification
head on the flattened layer output; cross-entropy, Adam. After training, on the test set: all experts;
then for k = n/2, n/4, n/8 the k experts chosen per input by Algorithm 1 (largest combine column sums)
and k experts chosen at random per input (`random_draws` draws). P3's tables report, per (n, k), how
many standard deviations of the random draws Algorithm 1's accuracy lies above their mean.

All seeds of one n train together on the model axis (same data set, per-seed init and batch order).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from .digits import N_CLASSES, make_digits, tokenize
from .layer import SoftMoE, model_seeds
from .selection import algorithm1_mask, random_mask

TEST_STREAM = 1  # the test set comes from a different stream of the data seed than the training set


@dataclass(frozen=True)
class ExpertDropConfig:
    n_experts: tuple[int, ...] = (2, 4, 8, 16, 32, 64, 128)
    keep_divisors: tuple[int, ...] = (2, 4, 8)  # k = n / divisor, where that is a whole number >= 1
    total_width: int = 256  # expert hidden width = total_width / n
    image_size: int = 16
    n_tokens: int = 4
    noise: float = 0.2
    n_train: int = 20_000
    n_test: int = 5_000
    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-3
    seeds: tuple[int, ...] = (0, 1)
    data_seed: int = 0
    random_draws: int = 10

    def __post_init__(self) -> None:
        for n in self.n_experts:
            if n < 2 or self.total_width % n:
                raise ValueError(f"n_experts: each n must be >= 2 and divide total_width={self.total_width}, "
                                 f"got {n}")
        if self.image_size % self.n_tokens:
            raise ValueError(f"n_tokens: must divide image_size={self.image_size}, got {self.n_tokens}")
        if self.random_draws < 2:
            raise ValueError(f"random_draws: must be >= 2 (a standard deviation is reported), got "
                             f"{self.random_draws}")

    def ks(self, n: int) -> list[int]:
        return [n // q for q in self.keep_divisors if n % q == 0 and n // q >= 1]


class SoftMoEClassifier(nn.Module):
    """M models: a Soft MoE layer, then a linear head on the flattened output (head_w [M, t*d, classes])."""

    def __init__(self, n_tokens: int, d: int, n_experts: int, hidden: int, n_classes: int, n_models: int,
                 seed, device: str = "cpu") -> None:
        super().__init__()
        seeds = model_seeds(seed, n_models)
        self.moe = SoftMoE(d, n_experts, hidden, n_models=n_models, seed=seeds, device=device)
        fan_in = n_tokens * d
        heads = []
        for s in seeds:
            g = torch.Generator().manual_seed(s + 2**20)  # a stream apart from the layer's init
            heads.append((torch.rand(fan_in + 1, n_classes, generator=g) * 2 - 1) / math.sqrt(fan_in))
        heads = torch.stack(heads).to(device)
        self.head_w = nn.Parameter(heads[:, :-1].contiguous())
        self.head_b = nn.Parameter(heads[:, -1].contiguous())

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.logits_from(self.moe(x, mask))

    def logits_from(self, out: torch.Tensor) -> torch.Tensor:
        return torch.einsum("mbf,mfc->mbc", out.flatten(2), self.head_w) + self.head_b[:, None]


def make_data(cfg: ExpertDropConfig) -> tuple[torch.Tensor, ...]:
    """Train and test tokens [N, n_tokens, size^2 / n_tokens] and labels, from the data seed."""
    out = []
    for stream, size in ((0, cfg.n_train), (TEST_STREAM, cfg.n_test)):
        rng = np.random.default_rng([cfg.data_seed, stream])
        images, labels = make_digits(size, cfg.image_size, cfg.noise, rng)
        out += [torch.from_numpy(tokenize(images, cfg.n_tokens)), torch.from_numpy(labels)]
    return tuple(out)


def train(cfg: ExpertDropConfig, n: int, x: torch.Tensor, y: torch.Tensor, device: str,
          progress: bool = True) -> tuple[SoftMoEClassifier, torch.Tensor]:
    """Train every seed for n experts together; returns the model and each seed's last-epoch mean loss."""
    seeds = list(cfg.seeds)
    model = SoftMoEClassifier(cfg.n_tokens, x.shape[-1], n, cfg.total_width // n, N_CLASSES, len(seeds),
                              seeds, device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    orders = [torch.Generator().manual_seed(s) for s in seeds]
    steps = len(x) // cfg.batch_size
    x, y = x.to(device), y.to(device)
    bar = tqdm(total=cfg.epochs * steps, desc=f"expert-drop n={n}", disable=not progress, leave=False)
    for _ in range(cfg.epochs):
        perm = torch.stack([torch.randperm(len(x), generator=g) for g in orders]).to(device)
        epoch_loss = torch.zeros(len(seeds))
        for i in range(steps):
            idx = perm[:, i * cfg.batch_size : (i + 1) * cfg.batch_size]
            logits = model(x[idx])
            per_model = nn.functional.cross_entropy(logits.flatten(0, 1), y[idx].flatten(), reduction="none")
            per_model = per_model.view(len(seeds), -1).mean(dim=1)
            opt.zero_grad(set_to_none=True)
            per_model.sum().backward()
            opt.step()
            epoch_loss += per_model.detach().cpu()
            bar.update()
        bar.set_postfix(loss=f"{(epoch_loss / steps).mean():.3f}")
    bar.close()
    return model, epoch_loss / steps


@torch.no_grad()
def evaluate(cfg: ExpertDropConfig, model: SoftMoEClassifier, n: int, x: torch.Tensor, y: torch.Tensor,
             device: str, chunk: int = 1000) -> list[dict]:
    """Test accuracy with all experts, Algorithm 1's k and random k (per draw), for each k and seed.

    The test set runs in chunks (the expert outputs are [M, B, n, d]); each random draw's generator
    persists across chunks, so a draw is one random subset per test input whatever the chunk size.
    """
    variants = [(n, "all", -1)] + [
        (k, method, draw)
        for k in cfg.ks(n)
        for method, draw in [("algorithm1", -1)] + [("random", r) for r in range(cfg.random_draws)]
    ]
    gens = {(k, d): torch.Generator().manual_seed(int(np.random.SeedSequence([n, k, d]).generate_state(1)[0]))
            for k, m, d in variants if m == "random"}
    correct = {v: torch.zeros(len(cfg.seeds)) for v in variants}
    for lo in range(0, len(x), chunk):
        xb, yb = x[lo : lo + chunk].to(device), y[lo : lo + chunk].to(device)
        routed = model.moe.forward_full(xb)
        for v in variants:
            k, method, draw = v
            if method == "all":
                logits = model.logits_from(routed.out)
            else:
                keep = (algorithm1_mask(routed.combine, k) if method == "algorithm1"
                        else random_mask((len(cfg.seeds), len(xb), n), k, gens[(k, draw)], device))
                # Masking zeroes rows of Y~ after the experts ran: reuse their hidden activations.
                logits = model.logits_from(model.moe.combine_outputs(routed.combine, routed.hidden, keep))
            correct[v] += (logits.argmax(dim=-1) == yb).sum(dim=1).cpu()
    return [
        {"n_experts": n, "expert_width": cfg.total_width // n, "seed": s, "k": k, "keep_frac": k / n,
         "method": method, "draw": draw, "accuracy": acc, "error": 1.0 - acc}
        for (k, method, draw), c in correct.items()
        for s, acc in zip(cfg.seeds, (c / len(x)).tolist(), strict=True)
    ]


def run(cfg: ExpertDropConfig, device: str = "cpu", progress: bool = True) -> pd.DataFrame:
    """Train and evaluate every n; one row per (n, seed, k, method, draw)."""
    x_train, y_train, x_test, y_test = make_data(cfg)
    rows = []
    for n in tqdm(cfg.n_experts, desc="expert-drop", disable=not progress):
        model, last_loss = train(cfg, n, x_train, y_train, device, progress)
        for row in evaluate(cfg, model, n, x_test, y_test, device):
            row["final_train_loss"] = float(last_loss[list(cfg.seeds).index(row["seed"])])
            rows.append(row)
    return pd.DataFrame(rows)


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Per (n, k): accuracy of all experts, Algorithm 1 and random, and Algorithm 1's z-score over random.

    The z-score is computed per seed, (acc_alg1 - mean of the random draws) / their sample std, then
    averaged over seeds (z_min: the smallest seed's); `beats_all_draws` is the fraction of seeds where
    Algorithm 1 beats every random draw.
    """
    res = results[results["method"] != "all"]
    alg = res[res["method"] == "algorithm1"].set_index(["n_experts", "k", "seed"])["accuracy"]
    rnd = res[res["method"] == "random"].groupby(["n_experts", "k", "seed"])["accuracy"]
    per_seed = pd.DataFrame({"alg1": alg, "rand_mean": rnd.mean(), "rand_std": rnd.std(ddof=1),
                             "rand_max": rnd.max()})
    per_seed["z"] = (per_seed["alg1"] - per_seed["rand_mean"]) / per_seed["rand_std"]
    per_seed["beats_all"] = per_seed["alg1"] > per_seed["rand_max"]
    full = results[results["method"] == "all"].groupby("n_experts")["accuracy"].mean().rename("accuracy_all")
    out = per_seed.groupby(["n_experts", "k"]).agg(
        n_seeds=("alg1", "size"), accuracy_algorithm1=("alg1", "mean"),
        accuracy_random_mean=("rand_mean", "mean"), accuracy_random_std=("rand_std", "mean"),
        z_score=("z", "mean"), z_min=("z", "min"), beats_all_draws=("beats_all", "mean"),
    ).reset_index()
    out = out.join(full, on="n_experts")
    out.insert(2, "keep_frac", out["k"] / out["n_experts"])
    return out[["n_experts", "k", "keep_frac", "n_seeds", "accuracy_all", "accuracy_algorithm1",
                "accuracy_random_mean", "accuracy_random_std", "z_score", "z_min", "beats_all_draws"]]


def config_dict(cfg: ExpertDropConfig) -> dict:
    return asdict(cfg)
