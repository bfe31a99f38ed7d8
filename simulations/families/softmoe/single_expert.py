"""Experiment 1 of P3's appendix: can a Soft MoE with n experts learn t(X) = ||X||_2?

X in R^10 ~ N(0, 5 I) (covariance 5 I), cut row-major into n_tokens tokens of token_dim dims (5 x 2 or
2 x 5). Model: one Soft MoE layer (no residual, no normalisation) and a fixed summation head, i.e. the
prediction is the sum of all n_tokens * token_dim entries of the layer output, with no trainable
parameter outside the layer. Experts are 2-layer MLPs of hidden width 10 d / n (d = token_dim), so the
expert parameters stay 20 d^2 (plus biases) for every n. MSE loss, Adam, a fresh batch every step.
Theorem 1 says n = 1 cannot represent t; the experiment asks whether larger n do better.

All seeds of one (tokenization, n) train together on the model axis; seed s gives model init seed s and
data stream s, so every n and tokenization of one seed sees the same X (paired comparisons).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd
import torch
from tqdm.auto import tqdm

from .layer import SoftMoE

INPUT_DIM = 10
EVAL_SEED = 2**31 - 1  # the evaluation sample, shared by every model


@dataclass(frozen=True)
class SingleExpertConfig:
    tokenizations: tuple[tuple[int, int], ...] = ((5, 2), (2, 5))  # (n_tokens, token_dim)
    n_experts: tuple[int, ...] = (1, 2, 5, 10)
    width_factor: int = 10  # expert hidden width = width_factor * token_dim / n
    seeds: tuple[int, ...] = (0, 1, 2)
    variance: float = 5.0
    batch_size: int = 10_000
    steps: int = 500  # one fresh batch per step ("epoch" in P3's text: our reading)
    lr: float = 1e-3
    eval_size: int = 10_000
    log_every: int = 10

    def __post_init__(self) -> None:
        for t, d in self.tokenizations:
            if t * d != INPUT_DIM:
                raise ValueError(f"tokenizations: n_tokens * token_dim must be {INPUT_DIM}, got {t} x {d}")
            for n in self.n_experts:
                if (self.width_factor * d) % n:
                    raise ValueError(f"n_experts: {n} does not divide width_factor * token_dim = "
                                     f"{self.width_factor * d}")


def sample(n: int, variance: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """X [n, 10] ~ N(0, variance I) and the target ||X||_2 [n]."""
    x = torch.randn(n, INPUT_DIM, generator=generator) * variance**0.5
    return x, x.norm(dim=1)


def predict(layer: SoftMoE, tokens: torch.Tensor) -> torch.Tensor:
    """The fixed summation head: sum of the layer output over tokens and dims, [M, B]."""
    return layer(tokens).sum(dim=(2, 3))


def train_bundle(cfg: SingleExpertConfig, n_tokens: int, token_dim: int, n: int, device: str,
                 progress: bool = True) -> tuple[list[dict], list[dict]]:
    """Train every seed of one (tokenization, n) together; return result rows and loss-curve rows."""
    seeds = list(cfg.seeds)
    hidden = cfg.width_factor * token_dim // n
    layer = SoftMoE(token_dim, n, hidden, n_models=len(seeds), seed=seeds, device=device)
    opt = torch.optim.Adam(layer.parameters(), lr=cfg.lr)
    streams = [torch.Generator().manual_seed(s) for s in seeds]
    x_eval, t_eval = sample(cfg.eval_size, cfg.variance, torch.Generator().manual_seed(EVAL_SEED))
    x_eval, t_eval = x_eval.reshape(-1, n_tokens, token_dim).to(device), t_eval.to(device)

    def eval_mse() -> torch.Tensor:
        with torch.no_grad():
            return ((predict(layer, x_eval) - t_eval) ** 2).mean(dim=1).cpu()

    initial = eval_mse()
    curves, tail = [], []
    bar = tqdm(range(cfg.steps), desc=f"single-expert {n_tokens}x{token_dim} n={n}", disable=not progress,
               leave=False)
    for step in bar:
        batch = [sample(cfg.batch_size, cfg.variance, g) for g in streams]
        x = torch.stack([b[0] for b in batch]).reshape(len(seeds), -1, n_tokens, token_dim).to(device)
        t = torch.stack([b[1] for b in batch]).to(device)
        per_model = ((predict(layer, x) - t) ** 2).mean(dim=1)
        opt.zero_grad(set_to_none=True)
        per_model.sum().backward()  # models share no parameter: each gets its own gradient
        opt.step()
        losses = per_model.detach().cpu()
        if step >= cfg.steps - max(1, cfg.steps // 10):
            tail.append(losses)
        if step % cfg.log_every == 0 or step == cfg.steps - 1:
            curves += [{"n_tokens": n_tokens, "token_dim": token_dim, "n_experts": n, "seed": s,
                        "step": step, "train_loss": float(v)} for s, v in zip(seeds, losses, strict=True)]
            bar.set_postfix(loss=f"{losses.mean():.3f}")
    final, final_train = eval_mse(), torch.stack(tail).mean(dim=0)
    baseline = float(t_eval.var(unbiased=False))
    expert_params = n * (2 * token_dim * hidden + hidden + token_dim)
    rows = [
        {"n_tokens": n_tokens, "token_dim": token_dim, "tokenization": f"{n_tokens}x{token_dim}",
         "n_experts": n, "expert_width": hidden, "expert_params": expert_params, "seed": s,
         "steps": cfg.steps, "batch_size": cfg.batch_size, "initial_loss": float(initial[i]),
         "final_loss": float(final[i]), "final_train_loss": float(final_train[i]),
         "baseline_mse": baseline, "relative_loss": float(final[i]) / baseline}
        for i, s in enumerate(seeds)
    ]
    return rows, curves


def run(cfg: SingleExpertConfig, device: str = "cpu",
        progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All (tokenization, n) bundles: the per-seed results table and the loss curves table."""
    rows, curves = [], []
    bundles = [(t, d, n) for t, d in cfg.tokenizations for n in cfg.n_experts]
    for t, d, n in tqdm(bundles, desc="single-expert", disable=not progress):
        r, c = train_bundle(cfg, t, d, n, device, progress)
        rows += r
        curves += c
    return pd.DataFrame(rows), pd.DataFrame(curves)


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Per (tokenization, n): mean, std and min over seeds of the final loss and of the relative loss."""
    g = results.groupby(["tokenization", "n_tokens", "token_dim", "n_experts", "expert_width"], sort=True)
    out = g.agg(
        n_seeds=("seed", "size"),
        initial_loss=("initial_loss", "mean"),
        final_loss_mean=("final_loss", "mean"),
        final_loss_std=("final_loss", "std"),
        final_loss_min=("final_loss", "min"),
        relative_loss_mean=("relative_loss", "mean"),
        baseline_mse=("baseline_mse", "first"),
    ).reset_index()
    return out.sort_values(["n_tokens", "n_experts"], ascending=[False, True], ignore_index=True)


def verdict(summary: pd.DataFrame) -> pd.DataFrame:
    """Per tokenization: n = 1's relative loss, the best n's, and whether the mean loss falls with n."""
    rows = []
    for tok, part in summary.groupby("tokenization", sort=False):
        part = part.sort_values("n_experts")
        losses = part["final_loss_mean"].to_numpy()
        rows.append({
            "tokenization": tok,
            "n1_relative_loss": float(part["relative_loss_mean"].iloc[0]),
            "best_n": int(part["n_experts"].iloc[losses.argmin()]),
            "best_relative_loss": float(part["relative_loss_mean"].min()),
            "monotone_decreasing": bool((losses[1:] < losses[:-1]).all()),
        })
    return pd.DataFrame(rows)


def config_dict(cfg: SingleExpertConfig) -> dict:
    return asdict(cfg)
