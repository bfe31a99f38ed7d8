"""The SRAVEN grid's configuration: nested, typed sections, loaded and checked like the regression grid's.

`SravenConfig` holds the grid's axes (lists: `k`, `n_rules`, `distinct`, `seeds`), the problems' settings
(`permute`, and the generator's `n_features` F and `n_values` V), the training and model settings
(together simulations.families.sraven.SravenSettings, which takes its defaults from these sections) and
the runtime settings (`name`, `device`, `workers`, `max_models_per_bundle`, `threads`), which never
change a row's values and stay out of the cell and config hashes. `k: all` means 1..n_experts. Load with
`simulations.config.load_config(path, overrides, family="sraven", preset_name=...)` (flat, nested or
dotted names, as for the regression grid); every problem is a one-line `ConfigError` naming the field
and what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from simulations import families
from simulations.config import IMPL_CHOICES, RuntimeConfig
from simulations.config_schema import (
    Bool,
    Choice,
    ChoiceList,
    ConfigError,
    IntAtLeast,
    IntList,
    IntListOrAll,
    Number,
    OptionalInt,
    build,
    checked,
    flat,
    hashed,
    is_int,
    section,
    setting,
    stable_hash,
)

from .estimators import DEFAULT_ESTIMATOR, ESTIMATORS
from .model import TOKENS
from .tasks import FEATURE_RANGE, N_FEATURES, N_RULES, N_VALUES, VALUE_RANGE

MAX_EXPERTS = 8  # ModelSpec's k range (P1's 8 experts)
SCHEDULES = ("constant", "cosine")  # the learning rate after warmup: constant, or cosine decay to 0


@dataclass(frozen=True)
class Distinct:
    """`distinct`: a non-empty list of distinct values from null (any) and 1..N_FEATURES."""

    def __call__(self, name: str, v: Any) -> list[int | None]:
        d = [v] if v is None or is_int(v) else v
        if not isinstance(d, list) or not d or any(x is not None and not (is_int(x) and 1 <= x <= N_FEATURES)
                                                   for x in d) or len(set(d)) != len(d):
            raise ConfigError(f"{name}: expected a non-empty list of distinct values from null (any), "
                              f"1..{N_FEATURES}; got {v!r}")
        return list(d)


@dataclass(frozen=True)
class IntIn:
    """An integer in lo..hi."""

    lo: int
    hi: int

    def __call__(self, name: str, v: Any) -> int:
        if not is_int(v) or not self.lo <= v <= self.hi:
            raise ConfigError(f"{name}: expected an integer in {self.lo}..{self.hi}, got {v!r}")
        return v


@dataclass(frozen=True)
class SravenAxes:
    """The grid's axes: a cell per (distinct, n_rules, k), a model per seed."""

    k: list[int] | str = setting([1, 2, 3, 4, 6, 8], IntListOrAll())
    n_rules: list[int] = setting([2, 3, 4, 6, 8], IntList(lo=2))  # R, the rule pool size (2..8)
    distinct: list[int | None] = setting([None], Distinct())  # distinct rules per problem
    seeds: list[int] = setting([0, 1, 2], IntList(lo=0))
    # How the routers learn their selection (simulations.families.sraven.estimators); one bundle per
    # estimator. Out of the ids at the default, so every earlier id stays.
    estimator: list[str] = setting([DEFAULT_ESTIMATOR], ChoiceList(ESTIMATORS), since=DEFAULT_ESTIMATOR,
                                   group=True)


@dataclass(frozen=True)
class SravenProblems:
    permute: bool = setting(True, Bool())  # False: the unpermuted diagnostic variant (not SRAVEN)
    # The generator (simulations.families.sraven.tasks): F features per panel and values 0..V-1. The
    # defaults are the original constants, and stay out of the hashes there (`since`), so ids do not move.
    n_features: int = setting(N_FEATURES, IntIn(*FEATURE_RANGE), since=N_FEATURES)
    n_values: int = setting(N_VALUES, IntIn(*VALUE_RANGE), since=N_VALUES)


@dataclass(frozen=True)
class SravenTraining:
    """Training and evaluation: Adam steps x batch problems per model; `n_train` None draws fresh
    problems every step, else a fixed training set per model; `balance` weighs the Switch
    load-balancing loss (summed over blocks); `n_eval` problems per evaluation split."""

    steps: int = setting(200, IntAtLeast())
    batch: int = setting(64, IntAtLeast())
    lr: float = setting(0.003, Number(positive=True))
    n_train: int | None = setting(None, OptionalInt("fresh problems every step"))
    n_eval: int = setting(512, IntAtLeast())
    clip_norm: float = setting(1.0, Number(positive=True))
    balance: float = setting(0.01, Number())
    # The learning-rate schedule (docs/sraven.md, "Settings"): `warmup` steps of linear warmup, then
    # `schedule` constant or cosine decay to 0 at the last step. The defaults are the original
    # constant-rate Adam, and stay out of the hashes there (`since`), so older ids do not move.
    schedule: str = setting("constant", Choice(SCHEDULES), since="constant")
    warmup: int = setting(0, IntAtLeast(0), since=0)
    # Early stopping (docs/sraven.md, "Training to a plateau"): with `patience` > 0, every `val_every`
    # steps each model's per-feature accuracy on its validation problems (n_eval, split "val") is
    # checked; a model whose accuracy has not risen by more than `min_delta` for `patience` checks stops
    # (frozen) and every model ends at its best checkpoint; `steps` is then the cap. 0: a fixed `steps`.
    patience: int = setting(0, IntAtLeast(0), since=0)
    val_every: int = setting(100, IntAtLeast(), since=100)
    min_delta: float = setting(0.005, Number(), since=0.005)
    score_samples: int = setting(4, IntAtLeast(), since=4)  # estimator score: copies of the batch (RLOO >= 2)


@dataclass(frozen=True)
class SravenModel:
    """The transformer (simulations.families.sraven.model): every block's MLP a top-k MoE of n_experts."""

    d_model: int = setting(32, IntAtLeast())
    n_heads: int = setting(4, IntAtLeast())
    n_blocks: int = setting(2, IntAtLeast())
    n_experts: int = setting(8, IntAtLeast())
    d_expert: int = setting(32, IntAtLeast())
    impl: str = setting("auto", Choice(IMPL_CHOICES))
    # How the 8 visible panels become tokens (simulations.families.sraven.model): "value", one token per
    # feature value (36 tokens, the original); "column", one token per (column, slot) holding that
    # slot's values in the 3 rows (12 tokens). Same information; "column" spares the model the hop that
    # gathers a slot's rows. Out of the hashes at its default (`since`).
    tokens: str = setting("value", Choice(TOKENS), since="value")


@dataclass(frozen=True)
class SravenRuntime(RuntimeConfig):
    max_models_per_bundle: int = setting(6, IntAtLeast())
    workers: int = setting(2, IntAtLeast())  # bundles trained at once in separate processes (local executor)


@dataclass(frozen=True)
class SravenConfig:
    """Everything a SRAVEN grid run needs (docs/sraven.md). The defaults are the quick preset
    (simulations/families/sraven/presets/quick.yaml)."""

    family: ClassVar[str] = families.SRAVEN  # simulations.families: which experiment this config runs

    axes: SravenAxes = section(SravenAxes, axes=True)
    problems: SravenProblems = section(SravenProblems)
    training: SravenTraining = section(SravenTraining)
    model: SravenModel = section(SravenModel)
    runtime: SravenRuntime = section(SravenRuntime, hashed=False)

    def ks(self) -> list[int]:
        return IntListOrAll.values(self.axes.k, self.model.n_experts)

    def to_dict(self) -> dict[str, Any]:
        """The flat view (what the manifest stores and what loads back)."""
        return flat(self)

    def config_hash(self) -> str:
        """Hash of every setting that can change a row's values (runtime settings excluded)."""
        return stable_hash({"family": self.family, **hashed(self)})


def validate(raw: dict[str, Any]) -> SravenConfig:
    """Build a SravenConfig from a plain mapping (flat, nested or dotted names), checking names, types,
    ranges and the rules between settings."""
    vals = checked(SravenConfig, raw)
    if vals["n_experts"] > MAX_EXPERTS:
        raise ConfigError(f"n_experts: expected an integer in 1..{MAX_EXPERTS}, got {vals['n_experts']!r}")
    if vals["d_model"] % vals["n_heads"]:
        raise ConfigError(f"n_heads: must divide d_model={vals['d_model']}, got {vals['n_heads']!r}")
    bad = [r for r in vals["n_rules"] if r > N_RULES]
    if bad:
        raise ConfigError(f"n_rules: every value must be in 2..{N_RULES}, got {bad[0]}")
    bad = [k for k in vals["k"] if k > vals["n_experts"]] if vals["k"] != "all" else []
    if bad:
        raise ConfigError(f"k: every k must be in 1..n_experts (1..{vals['n_experts']}) or 'all', "
                          f"got {bad[0]}")
    bad = [x for x in vals["distinct"] if x is not None and x > vals["n_features"]]
    if bad:
        raise ConfigError(f"distinct: {bad[0]} distinct rules per problem need n_features >= {bad[0]}, "
                          f"got n_features {vals['n_features']}")
    bad = [x for x in vals["distinct"] if x is not None and x > min(vals["n_rules"])]
    if bad:
        raise ConfigError(f"distinct: {bad[0]} distinct rules per problem need n_rules >= {bad[0]}, "
                          f"got n_rules {min(vals['n_rules'])}")
    return build(SravenConfig, vals)
