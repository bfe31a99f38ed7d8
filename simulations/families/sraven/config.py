"""The SRAVEN grid's configuration: one flat dataclass, loaded and checked like the regression grid's.

Axes (`k`, `n_rules`, `distinct`, `seeds`) are lists; every other field is a scalar shared by all cells:
the problems' `permute`, the model and training settings of `SravenSettings`, and the runtime fields
(`name`, `device`, `workers`, `max_models_per_bundle`, `threads`), which never change a row's values and
stay out of the cell and config hashes. `k: all` means 1..n_experts. Load with
`simulations.config.load_config(path, overrides, family="sraven", preset_name=...)`; every problem is a
one-line `ConfigError` naming the field and what is allowed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from simulations.config import (
    IMPL_CHOICES,
    RUNTIME_FIELDS,
    ConfigError,
    check_choices,
    check_numbers,
    check_positive_ints,
    check_runtime,
    int_list,
    is_int,
    stable_hash,
    with_defaults,
)

from .tasks import N_FEATURES, N_RULES

MAX_EXPERTS = 8  # ModelSpec's k range (P1's 8 experts)
_POS_INT = ("n_experts", "d_model", "d_expert", "n_heads", "n_blocks", "steps", "batch", "n_eval")


@dataclass
class SravenConfig:
    """Everything a SRAVEN grid run needs (docs/sraven.md). The defaults are the quick preset
    (simulations/families/sraven/presets/quick.yaml)."""

    family: ClassVar[str] = "sraven"

    name: str = "quick"
    # grid axes
    k: list[int] | str = field(default_factory=lambda: [1, 2, 3, 4, 6, 8])
    n_rules: list[int] = field(default_factory=lambda: [2, 3, 4, 6, 8])  # R, the rule pool size (2..8)
    distinct: list[int | None] = field(default_factory=lambda: [None])  # distinct rules per problem
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    # problems
    permute: bool = True  # False: the unpermuted diagnostic variant (not SRAVEN)
    # model (simulations.families.sraven.SravenSettings)
    n_experts: int = 8
    d_model: int = 32
    d_expert: int = 32
    n_heads: int = 4
    n_blocks: int = 2
    impl: str = "auto"
    # training and evaluation
    steps: int = 200
    batch: int = 64
    lr: float = 0.003
    n_train: int | None = None  # None: fresh problems every step; else a fixed training set per model
    n_eval: int = 512
    clip_norm: float = 1.0
    balance: float = 0.01
    # runtime
    device: str = "auto"
    max_models_per_bundle: int = 6
    threads: int = 1  # torch CPU threads per bundle; 0 keeps torch's default
    workers: int = 2  # bundles trained at once in separate processes (local executor)

    def ks(self) -> list[int]:
        return list(range(1, self.n_experts + 1)) if self.k == "all" else list(self.k)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def config_hash(self) -> str:
        """Hash of every field that can change a row's values (runtime fields excluded)."""
        return stable_hash({"family": self.family,
                            **{k: v for k, v in self.to_dict().items() if k not in RUNTIME_FIELDS}})


def validate(raw: dict[str, Any]) -> SravenConfig:
    """Build a SravenConfig from a plain mapping, checking names, types and ranges."""
    vals = with_defaults(raw, SravenConfig)
    check_positive_ints(vals, _POS_INT)
    check_runtime(vals)
    if vals["n_experts"] > MAX_EXPERTS:
        raise ConfigError(f"n_experts: expected an integer in 1..{MAX_EXPERTS}, got {vals['n_experts']!r}")
    if vals["d_model"] % vals["n_heads"]:
        raise ConfigError(f"n_heads: must divide d_model={vals['d_model']}, got {vals['n_heads']!r}")
    if vals["n_train"] is not None and (not is_int(vals["n_train"]) or vals["n_train"] < 1):
        raise ConfigError(f"n_train: expected null (fresh problems every step) or an integer >= 1, "
                          f"got {vals['n_train']!r}")
    check_numbers(vals, ("lr", "clip_norm", "balance"), positive=("lr", "clip_norm"))
    if not isinstance(vals["permute"], bool):
        raise ConfigError(f"permute: expected true or false, got {vals['permute']!r}")
    check_choices(vals, {"impl": IMPL_CHOICES})
    vals["seeds"] = int_list("seeds", vals["seeds"], lo=0)
    vals["n_rules"] = int_list("n_rules", vals["n_rules"], lo=2)
    bad = [r for r in vals["n_rules"] if r > N_RULES]
    if bad:
        raise ConfigError(f"n_rules: every value must be in 2..{N_RULES}, got {bad[0]}")
    if vals["k"] != "all":
        vals["k"] = int_list("k", vals["k"])
        bad = [k for k in vals["k"] if k > vals["n_experts"]]
        if bad:
            raise ConfigError(f"k: every k must be in 1..n_experts (1..{vals['n_experts']}) or 'all', "
                              f"got {bad[0]}")
    d = vals["distinct"]
    d = [d] if d is None or is_int(d) else d
    if not isinstance(d, list) or not d or any(x is not None and not (is_int(x) and 1 <= x <= N_FEATURES)
                                               for x in d) or len(set(d)) != len(d):
        raise ConfigError(f"distinct: expected a non-empty list of distinct values from null (any), "
                          f"1..{N_FEATURES}; got {vals['distinct']!r}")
    bad = [x for x in d if x is not None and x > min(vals["n_rules"])]
    if bad:
        raise ConfigError(f"distinct: {bad[0]} distinct rules per problem need n_rules >= {bad[0]}, "
                          f"got n_rules {min(vals['n_rules'])}")
    vals["distinct"] = list(d)
    return SravenConfig(**vals)
