"""Train a bundle of SRAVEN transformers (one per (k, R, seed, ...) spec) at once and evaluate them.

Each model has its own task (rule pool and OOD split from its seed), its own problem stream and its own
init; the loss is the sum over models of each model's mean cross-entropy, gradients are clipped per
model and Adam is elementwise, so no model's update depends on another's. Every model gets the same
number of steps x batch, i.e. the same amount of training data whatever its R. The models train on
any torch device; problems are drawn on the CPU (numpy) and moved to it, so a model sees the same
problems on every device.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from simulations.per_model import clip_grads, copy_models

from .ambiguity import ambiguous
from .config import SCHEDULES, SravenModel, SravenTraining
from .estimators import DEFAULT_ESTIMATOR, ESTIMATORS, StepLoss
from .model import TOKENS, SravenTransformer
from .tasks import FEATURE_RANGE, N_FEATURES, N_VALUES, VALUE_RANGE, Problems, get_task, sample


@dataclass(frozen=True)
class ModelSpec:
    """One model of a bundle: its k, its task (pool size R = n_rules, optional per-problem distinct
    rule count) and its seed (task, data stream and init all derive from it)."""

    k: int
    n_rules: int = 8
    seed: int = 0
    distinct: int | None = None
    permute: bool = True  # False: no per-column feature permutation (a diagnostic, not SRAVEN)

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, (int, np.integer)) or not 1 <= self.k <= 8:
            raise ValueError(f"k must be an int in 1..8, got {self.k!r}")


@dataclass(frozen=True)
class SravenSettings(SravenModel, SravenTraining):
    """A bundle's training and model settings: the SRAVEN config's training and model sections (their
    fields and defaults, simulations.families.sraven.config), plus the trainer's own evaluation settings."""

    estimator: str = DEFAULT_ESTIMATOR  # how the routers learn (the grid's `estimator` axis, one per bundle)
    eval_chunk: int = 256
    eval_every: int | None = None  # every so many steps record ID and OOD metrics in df.attrs["history"]
    k_eval: bool = True  # evaluate every model at each k_eval = 1..n_experts (inference-time k)
    n_features: int = N_FEATURES  # the generator's F and V (the config's problems section; tasks.sample)
    n_values: int = N_VALUES

    def __post_init__(self) -> None:
        for name in ("steps", "batch", "n_eval", "d_model", "n_heads", "n_blocks", "n_experts", "d_expert",
                     "eval_chunk", "val_every", "score_samples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name in ("n_train", "eval_every"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be None or a positive int, got {value!r}")
        for name in ("warmup", "patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an int >= 0, got {value!r}")
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {', '.join(ESTIMATORS)}, got {self.estimator!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        for name, (lo, hi) in (("n_features", FEATURE_RANGE), ("n_values", VALUE_RANGE)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ValueError(f"{name} must be an int in {lo}..{hi}, got {value!r}")
        if self.tokens not in TOKENS:
            raise ValueError(f"tokens must be one of {', '.join(TOKENS)}, got {self.tokens!r}")
        if not self.lr > 0 or not self.clip_norm > 0 or not self.balance >= 0:
            raise ValueError(f"lr and clip_norm must be > 0 and balance >= 0, got lr={self.lr!r}, "
                             f"clip_norm={self.clip_norm!r}, balance={self.balance!r}")


def to_tokens(p: Problems) -> tuple[np.ndarray, np.ndarray]:
    """(tokens [n, 8F], targets [n, F]): the 8 visible panels flattened panel-major, and the 9th panel
    in slot order (what the query positions predict)."""
    n, F = len(p), p.panels.shape[-1]
    return p.panels.reshape(n, 9, F)[:, :8].reshape(n, 8 * F), p.target


def _generator(st: SravenSettings) -> dict[str, int]:
    """The generator's settings of `sample` (F and V)."""
    return {"n_features": st.n_features, "n_values": st.n_values}


def _stack(arrays: list[np.ndarray], device: torch.device | str = "cpu") -> torch.Tensor:
    return torch.as_tensor(np.stack(arrays), dtype=torch.long).to(device)


def lr_factor(step: int, steps: int, schedule: str = "constant", warmup: int = 0) -> float:
    """The learning rate of step `step` (0-based) over the base rate: linear warmup over `warmup` steps
    ((step + 1) / warmup), then 1 ("constant") or a cosine decay from 1 at the end of warmup to 0 after
    the last step ("cosine")."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    done = (step - warmup) / max(steps - warmup, 1)
    return 0.5 * (1.0 + math.cos(math.pi * done))


@torch.no_grad()
def evaluate(model: SravenTransformer, tokens: torch.Tensor, target: torch.Tensor, chunk: int = 256,
             k: int | None = None):
    """Per model: whole-problem accuracy, per-feature accuracy, mean cross-entropy [M] each, the
    per-problem correctness [M, n] and the load entropy (nats) per block [n_blocks, M]. `k`: every
    model evaluated at k experts instead of its own k (inference-time k; the models are unchanged)."""
    M, n = tokens.shape[:2]
    correct, ce, counts = [], torch.zeros(M, device=tokens.device), None
    for s in range(0, n, chunk):
        logits, stats = model(tokens[:, s:s + chunk], return_stats=True, k=k)
        t = target[:, s:s + chunk]
        correct.append(logits.argmax(-1) == t)
        ce += F.cross_entropy(logits.flatten(0, 2), t.flatten(), reduction="none").view(M, -1).sum(1)
        c = torch.stack([st.fraction for st in stats]) * t.shape[1]  # [blocks, M, T]
        counts = c if counts is None else counts + c
    hit = torch.cat(correct, dim=1)  # [M, n, 4]
    f = counts / counts.sum(-1, keepdim=True)
    entropy = -torch.where(f > 0, f * f.log(), torch.zeros_like(f)).sum(-1)
    return (hit.all(-1).double().mean(1), hit.double().mean((1, 2)), ce / hit[0].numel(),
            hit.all(-1), entropy)


def _model(specs: list[ModelSpec], st: SravenSettings, device: torch.device) -> SravenTransformer:
    """The bundle's transformer, one model per spec: initialised on the CPU (seeded CPU generators),
    then moved, so it has the same weights on every device."""
    model = SravenTransformer([s.k for s in specs], [s.seed for s in specs], st.d_model, st.n_heads,
                              st.n_blocks, st.n_experts, st.d_expert, impl=st.impl,
                              tokens=st.tokens, **_generator(st)).to(device)
    for moe in model.moes:
        moe.router.k = moe.router.k  # the k setter re-places its tensor on the buffers' (new) device
    return model


def _optimizer(model: SravenTransformer, st: SravenSettings
               ) -> tuple[list[torch.Tensor], torch.optim.Adam, torch.optim.lr_scheduler.LambdaLR | None]:
    """(parameters in name order, Adam, the learning-rate schedule or None). No scheduler at the
    defaults (constant rate, no warmup): the original trainer's exact updates."""
    params = [p for _, p in sorted(model.named_parameters())]
    opt = torch.optim.Adam(params, lr=st.lr)
    sched = None if (st.schedule, st.warmup) == ("constant", 0) else torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: lr_factor(step, st.steps, st.schedule, st.warmup))
    return params, opt, sched


def _fixed_sets(st: SravenSettings, keys: list[tuple]) -> dict[tuple, tuple[np.ndarray, np.ndarray]]:
    """Each data stream's fixed training set (settings.n_train problems; none without n_train)."""
    if st.n_train is None:
        return {}
    return {key: to_tokens(sample(st.n_train, key[0], "train", key[1], distinct=key[2], permute=key[3],
                                  **_generator(st)))
            for key in dict.fromkeys(keys)}


def _train_batch(st: SravenSettings, keys: list[tuple], fixed: dict, step: int,
                 device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens, targets) of one step, per model: fresh problems of its stream (draw 1 + step), or a
    batch drawn with replacement from its fixed training set."""
    batch: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
    for key in dict.fromkeys(keys):
        if st.n_train is None:
            batch[key] = to_tokens(sample(st.batch, key[0], "train", key[1], distinct=key[2],
                                          draw=1 + step, permute=key[3], **_generator(st)))
        else:
            rng = np.random.default_rng([key[1], 0x5C, step])
            idx = rng.integers(0, st.n_train, size=st.batch)
            batch[key] = (fixed[key][0][idx], fixed[key][1][idx])
    return _stack([batch[k][0] for k in keys], device), _stack([batch[k][1] for k in keys], device)


class _History:
    """The learning curve (settings.eval_every, or with early stopping every val_every steps): a row per
    model at each record with the ID and OOD metrics (OOD NaN where nothing is held out), with early
    stopping the validation metrics too, the mean training CE since the previous record and the wall
    time since `t0`; `on_record` receives the history so far after every record."""

    def __init__(self, model: SravenTransformer, st: SravenSettings, keys: list[tuple], has_ood: np.ndarray,
                 device: torch.device, t0: float, on_record: Callable[[pd.DataFrame], None] | None):
        self.model, self.st, self.keys, self.has_ood, self.device = model, st, keys, has_ood, device
        self.t0, self.on_record = t0, on_record
        self.splits = (("test_id", "id"), ("test_ood", "ood")) + ((("val", "val"),) if st.patience else ())
        self.frames: list[pd.DataFrame] = []
        self.ce_sum, self.ce_n = torch.zeros(len(keys), dtype=torch.float64, device=device), 0
        self._sets: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def problems(self, split: str, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(tokens, targets) of every model's evaluation problems of `split`, the same at every record:
        drawn once, and once per data stream (the models of a k sweep share theirs). A model without
        held-out multisets evaluates ID problems in place of OOD ones (reported as NaN)."""
        if split not in self._sets:
            st = self.st
            drawn = {key: to_tokens(sample(st.n_eval, key[0], split if ok or name != "ood" else "test_id",
                                           key[1], distinct=key[2], permute=key[3], **_generator(st)))
                     for key, ok in zip(self.keys, self.has_ood, strict=True)}
            sets = [drawn[key] for key in self.keys]
            self._sets[split] = (_stack([s[0] for s in sets], self.device),
                                 _stack([s[1] for s in sets], self.device))
        return self._sets[split]

    def add(self, ce: torch.Tensor) -> None:
        """One training step's CE [M], towards the next record's mean."""
        self.ce_sum += ce.detach().double()
        self.ce_n += 1

    def record(self, step: int) -> np.ndarray | None:
        """Record every model at `step`; returns the validation per-feature accuracy [M] (early
        stopping) or None."""
        st, M, has_ood = self.st, len(self.keys), self.has_ood
        row = {"model": np.arange(M), "step": step}
        for split, name in self.splits:
            if name == "ood" and not has_ood.any():
                row |= {f"{m}_{name}": np.full(M, np.nan) for m in ("acc", "feat_acc", "ce")}
                continue
            x, y = self.problems(split, name)
            values = [v.cpu().numpy() for v in evaluate(self.model, x, y, st.eval_chunk)[:3]]
            for m, v in zip(("acc", "feat_acc", "ce"), values, strict=True):
                row[f"{m}_{name}"] = np.where(has_ood, v, np.nan) if name == "ood" else v
        row["train_ce"] = (self.ce_sum / self.ce_n).cpu().numpy() if self.ce_n else np.full(M, np.nan)
        row["wall_s"] = time.perf_counter() - self.t0
        self.frames.append(pd.DataFrame(row))
        self.ce_sum, self.ce_n = torch.zeros_like(self.ce_sum), 0
        if self.on_record is not None:
            self.on_record(pd.concat(self.frames, ignore_index=True))
        return row.get("feat_acc_val")


class _Stopping:
    """Early stopping (settings.patience > 0) on each model's validation per-feature accuracy: its best
    checkpoint, the checks since the accuracy last rose by more than min_delta, and when it stopped.
    A stopped model is frozen at its best checkpoint (restored after every optimizer step)."""

    def __init__(self, params: list[torch.Tensor], st: SravenSettings) -> None:
        M, device = params[0].shape[0], params[0].device
        self.patience, self.min_delta = st.patience, st.min_delta
        self.best = [p.detach().clone() for p in params]
        self.best_acc = torch.full((M,), -math.inf, dtype=torch.float64)
        self.level = self.best_acc.clone()  # the accuracy at its last rise by more than min_delta
        self.checks = torch.zeros(M, dtype=torch.long)  # checks since then
        self.stopped = torch.zeros(M, dtype=torch.bool)
        self.on_device = self.stopped.to(device)
        self.best_step = torch.zeros(M, dtype=torch.long)
        self.stop_step = torch.full((M,), st.steps, dtype=torch.long)

    @torch.no_grad()
    def check(self, acc: np.ndarray, params: list[torch.Tensor], step: int) -> None:
        acc = torch.as_tensor(acc, dtype=torch.float64)
        running = ~self.stopped
        better = running & (acc > self.best_acc)
        self.best_acc = torch.where(better, acc, self.best_acc)
        self.best_step = torch.where(better, step, self.best_step)
        copy_models(self.best, params, better)
        rose = running & (acc > self.level + self.min_delta)
        self.level = torch.where(rose, acc, self.level)
        self.checks = torch.where(rose, 0, self.checks + running.long())
        newly = running & (self.checks >= self.patience)
        self.stop_step = torch.where(newly, step, self.stop_step)
        self.stopped |= newly
        self.on_device = self.stopped.to(params[0].device)

    def freeze(self, params: list[torch.Tensor], every: bool = False) -> None:
        """Put the stopped models (every model with `every`) back at their best checkpoints; the flags
        are read on the host, so a step with no model stopped costs no device synchronisation."""
        if every or bool(self.stopped.any()):
            copy_models(params, self.best, torch.ones_like(self.stopped) if every else self.stopped)


def _train(model: SravenTransformer, st: SravenSettings, keys: list[tuple], fixed: dict, device: torch.device,
           history: _History, seeds: list[tuple[int, ...]]
           ) -> tuple[torch.Tensor, list[torch.Tensor], _Stopping | None]:
    """Adam steps on every model at once (settings.steps, or until every model has stopped early);
    returns (finite [M]: whether the training CE stayed finite at every step, the CEs [M] of the last
    10 % of steps, the early stopping's state or None). With early stopping every model ends at its
    best checkpoint."""
    M = len(keys)
    params, opt, sched = _optimizer(model, st)
    step_loss = StepLoss(st.estimator, st.balance, seeds, st.score_samples)
    stopping = _Stopping(params, st) if st.patience else None
    every = st.val_every if stopping is not None else st.eval_every
    last_losses: deque[torch.Tensor] = deque(maxlen=max(1, st.steps // 10))
    finite = torch.ones(M, dtype=torch.bool, device=device)
    for step in range(st.steps + 1):
        last = step == st.steps  # early stopping checks here too; a plain curve's end is train_bundle's
        if (every and step % every == 0 and not last) or (stopping is not None and last):
            val = history.record(step)
            if stopping is not None:
                stopping.check(val, params, step)
                if bool(stopping.stopped.all()):
                    break
        if last:
            break
        x, y = _train_batch(st, keys, fixed, step, device)
        opt.zero_grad(set_to_none=False)
        ce, loss = step_loss(model, x, y)
        if stopping is not None:
            loss = torch.where(stopping.on_device, torch.zeros_like(loss), loss)
        loss.sum().backward()
        clip_grads(params, st.clip_norm)  # tokens="column" leaves the value embeddings without one
        opt.step()
        if sched is not None:
            sched.step()
        if stopping is not None:
            stopping.freeze(params)
        finite &= torch.isfinite(ce.detach())  # on the device: no synchronisation per step
        if every:
            history.add(ce)
        last_losses.append(ce.detach())
    if stopping is not None:
        stopping.freeze(params, every=True)
    return finite, list(last_losses), stopping


def _eval_items(st: SravenSettings, keys: list[tuple], tasks: list, fixed: dict, split: str) -> list:
    """Per model, ((tokens, targets), ambiguity flags) of its final evaluation problems of `split`
    (flags on the ID split only), or None where its task has no such problems (OOD of a task that holds
    nothing out); models of one data stream share theirs."""
    cache: dict[tuple, tuple[tuple[np.ndarray, np.ndarray], np.ndarray | None] | None] = {}
    for key, task in zip(keys, tasks, strict=True):
        if key in cache:
            continue
        if split == "train" and st.n_train is not None:
            tok, tgt = (a[: st.n_eval] for a in fixed[key])
            cache[key] = ((tok, tgt), None)
        elif split == "test_ood" and not task.ood_multisets:
            cache[key] = None
        else:
            # Fresh streams: "train" problems are new draws of the training split (draw 0 is never
            # used for training).
            p = sample(st.n_eval, key[0], split, key[1], distinct=key[2], permute=key[3], **_generator(st))
            cache[key] = (to_tokens(p), ambiguous(p, task.pool) if split == "test_id" else None)
    return [cache[key] for key in keys]


def _id_measures(hit: torch.Tensor, filled: list, entropy: torch.Tensor) -> dict[str, np.ndarray]:
    """The ID split's own columns: the share of ambiguous problems, the accuracy on the others, and the
    load entropy per block and its mean over blocks."""
    M = len(filled)
    hits, amb = hit.cpu().numpy(), np.stack([f[1] for f in filled])
    out = {"ambiguous_id": amb.mean(1),
           "acc_id_unambiguous": np.array([hits[i][~amb[i]].mean() if (~amb[i]).any() else np.nan
                                           for i in range(M)])}
    for b, e in enumerate(entropy.numpy()):
        out[f"router_entropy_b{b}"] = e
    out["router_entropy"] = entropy.numpy().mean(0)
    return out


def _split_metrics(model: SravenTransformer, st: SravenSettings, items: list, name: str,
                   device: torch.device) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """One split's columns ({acc,feat_acc,ce}_<name>, and the ID split's own) and, with settings.k_eval
    on the ID and OOD splits, its accuracies [M, T] at each k_eval = 1..T; NaN for the models without
    the split (they evaluate a stand-in in the batch)."""
    M = len(items)
    present = np.array([it is not None for it in items])
    acc, feat, ce = (np.full(M, np.nan) for _ in range(3))
    out: dict[str, np.ndarray] = {}
    k_eval: dict[str, np.ndarray] = {}
    if name != "train" and st.k_eval:
        for metric in ("acc", "feat_acc"):
            k_eval[f"{metric}_{name}"] = np.full((M, st.n_experts), np.nan)
    if present.any():
        stand_in = items[int(np.argmax(present))]  # models without the split evaluate a stand-in
        filled = [it if it is not None else stand_in for it in items]
        tok = _stack([f[0][0] for f in filled], device)
        tgt = _stack([f[0][1] for f in filled], device)
        a, fa, c, hit, entropy = evaluate(model, tok, tgt, st.eval_chunk)
        if name != "train" and st.k_eval:
            for j in range(1, st.n_experts + 1):
                a_j, fa_j = evaluate(model, tok, tgt, st.eval_chunk, k=j)[:2]
                k_eval[f"acc_{name}"][present, j - 1] = a_j.cpu().numpy()[present]
                k_eval[f"feat_acc_{name}"][present, j - 1] = fa_j.cpu().numpy()[present]
        acc[present], feat[present], ce[present] = (v.cpu().numpy()[present] for v in (a, fa, c))
        if name == "id":
            out |= _id_measures(hit, filled, entropy.cpu())
    out |= {f"acc_{name}": acc, f"feat_acc_{name}": feat, f"ce_{name}": ce}
    return out, k_eval


def _final_metrics(model: SravenTransformer, st: SravenSettings, keys: list[tuple], tasks: list, fixed: dict,
                   device: torch.device) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Every split's columns of the trained models (train, ID, OOD, in that order) and the
    inference-time-k accuracies ("acc_id", ... -> [M, T]: each model at k_eval = 1..T)."""
    out: dict[str, np.ndarray] = {}
    k_eval: dict[str, np.ndarray] = {}
    for split, name in (("train", "train"), ("test_id", "id"), ("test_ood", "ood")):
        got, by_k = _split_metrics(model, st, _eval_items(st, keys, tasks, fixed, split), name, device)
        out |= got
        k_eval |= by_k
    return out, k_eval


def _rows(specs: list[ModelSpec], st: SravenSettings, tasks: list, last_losses: list[torch.Tensor],
          out: dict[str, np.ndarray], finite: torch.Tensor, k_eval: dict[str, np.ndarray], wall: float
          ) -> pd.DataFrame:
    """The bundle's rows: each spec and the settings, the tasks' multiset counts, the metrics (NaN for a
    diverged model), the inference-time-k arrays and the wall time per model."""
    rows = pd.DataFrame([asdict(s) for s in specs])
    # min_delta only where early stopping reads it: a float setting column would enter the rows'
    # digests (fits.snapshot) of every store made before it
    skip = ("impl", "eval_chunk") + (() if st.patience else ("min_delta",))
    for name, value in asdict(st).items():
        if name not in skip:
            rows[name] = value
    rows["n_multisets_train"] = [len(t.train_multisets) for t in tasks]
    rows["n_multisets_ood"] = [len(t.ood_multisets) for t in tasks]
    rows["train_ce_last"] = torch.stack(last_losses).mean(0).double().cpu().numpy()  # steps run, last 10 %
    for name, value in out.items():
        rows[name] = value
    diverged = ~finite.cpu().numpy()
    rows["diverged"] = diverged
    if diverged.any():  # as the regression grid: a diverged model's metrics are NaN, never averaged in
        metrics = [c for c in out if c.startswith(("acc_", "feat_acc_", "ce_", "router_entropy"))]
        rows.loc[diverged, metrics] = np.nan
    for name, value in k_eval.items():  # one array of T accuracies per model (the store's k_eval table)
        value[diverged] = np.nan
        rows[f"k_eval_{name}"] = list(value)
    rows["wall_s"] = wall / len(specs)
    return rows


def train_bundle(specs: list[ModelSpec], settings: SravenSettings = SravenSettings(),
                 device: torch.device | str = "cpu",
                 on_record: Callable[[pd.DataFrame], None] | None = None) -> pd.DataFrame:
    """Train one model per spec for settings.steps Adam steps on `device`; one row of metrics per model,
    in order.

    Columns: the spec and settings; acc_{train,id,ood} (all 4 features right), feat_acc_{...} (share of
    features right), ce_{...}; acc_id_unambiguous (on the ID problems with a single consistent answer,
    see simulations.families.sraven.ambiguity, rules from the model's pool) and ambiguous_id (the share of
    ambiguous ID problems); n_multisets_{train,ood};
    router_entropy (mean over blocks of the entropy of the expert load on the ID set; ln 8 = 2.08 is
    perfectly balanced) and router_entropy_b{i}; train_ce_last (mean training CE of the last 10 % of
    steps); diverged (the training cross-entropy became non-finite at some step: the row's metrics are
    then NaN); wall_s (the bundle's wall time / M). OOD columns are NaN where a task holds out nothing.
    With settings.k_eval (the default), k_eval_{acc,feat_acc}_{id,ood}: per model an array of T
    accuracies on the final ID / OOD problems, entry j at k_eval = j + 1 experts (inference-time k,
    without retraining; NaN for a diverged model or a task without OOD).
    With settings.eval_every, df.attrs["history"] holds, every eval_every steps and at the end, per
    model: step, {acc,feat_acc,ce}_{id,ood} (on the final evaluation's ID and OOD problems), train_ce
    (mean training CE since the previous record) and wall_s (seconds since the start); `on_record`, if
    given, receives the history so far after every record (a caller can save a curve as it grows).
    With settings.patience > 0 (early stopping, see SravenTraining), the history is recorded at every
    check (every val_every steps and at the last), adds {acc,feat_acc,ce}_val, and its last record is
    the models' state before they return to their best checkpoints; the rows add steps_run (the step a
    model stopped at, or settings.steps), best_step (its checkpoint's), stopped_early and
    val_feat_acc_best (its checkpoint's validation per-feature accuracy).
    """
    t0 = time.perf_counter()
    st = settings
    bad = [s.k for s in specs if s.k > st.n_experts]
    if bad:
        raise ValueError(f"k must be in 1..n_experts={st.n_experts}, got {bad[0]}")
    device = torch.device(device)
    tasks = [get_task(s.n_rules, s.seed, s.distinct, st.n_features, st.n_values) for s in specs]
    model = _model(specs, st, device)
    keys = [(s.n_rules, s.seed, s.distinct, s.permute) for s in specs]  # one key, one data stream
    fixed = _fixed_sets(st, keys)
    has_ood = np.array([bool(t.ood_multisets) for t in tasks])
    history = _History(model, st, keys, has_ood, device, t0, on_record)
    seeds = [(s.seed, s.n_rules, s.k) for s in specs]  # a sampling estimator's streams, one per model
    finite, last_losses, stopping = _train(model, st, keys, fixed, device, history, seeds)
    model.eval()
    out, k_eval = _final_metrics(model, st, keys, tasks, fixed, device)
    if st.eval_every and not st.patience:
        history.record(st.steps)
    rows = _rows(specs, st, tasks, last_losses, out, finite, k_eval, time.perf_counter() - t0)
    if stopping is not None:
        rows["steps_run"] = stopping.stop_step.numpy()
        rows["best_step"] = stopping.best_step.numpy()
        rows["stopped_early"] = stopping.stopped.numpy()
        rows["val_feat_acc_best"] = stopping.best_acc.numpy()
    if history.frames:
        rows.attrs["history"] = pd.concat(history.frames, ignore_index=True)
    return rows
