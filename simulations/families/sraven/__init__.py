"""SRAVEN at small scale (P1): symbolic Raven problems, a bundle of top-k MoE transformers, and their
trainer, and its grid: `python -m simulations.families.sraven` (SravenConfig, presets quick, paper,
gpu-slice) runs on the shared grid driver into a results store read by `simulations.results.load`. See
docs/sraven.md.

    from simulations.families.sraven import sample, ModelSpec, SravenSettings, train_bundle
    p = sample(16, n_rules=4, split="train", seed=0)          # Problems: panels, rules, perm, answer
    df = train_bundle([ModelSpec(k=k, n_rules=4, seed=0) for k in (1, 2, 8)], SravenSettings(steps=200))
"""

from .ambiguity import ambiguous
from .config import SravenConfig
from .model import SravenTransformer
from .tasks import RULES, SPLITS, Problems, Task, get_task, sample
from .train import ModelSpec, SravenSettings, evaluate, to_tokens, train_bundle

__all__ = [
    "RULES",
    "SPLITS",
    "ModelSpec",
    "Problems",
    "SravenConfig",
    "SravenSettings",
    "SravenTransformer",
    "Task",
    "ambiguous",
    "evaluate",
    "get_task",
    "sample",
    "to_tokens",
    "train_bundle",
]
