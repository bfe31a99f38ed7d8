"""simulations: the compositional task, the batched top-k MoE layer (with its router) and the Soft MoE
layer, the bundle trainer and the grid with its results store.

Entry points: `python -m simulations.grid` (docs/tasks.md, docs/store.md),
`python -m simulations.families.sraven` (docs/sraven.md; both on the grid driver, over the task families
of simulations.families) and
`python -m simulations.families.softmoe` (docs/softmoe.md).
"""

from importlib import import_module

from .config import ConfigError, load_config
from .families.regression.config import GridConfig
from .families.regression.tasks import CompositionalTask, TaskSpec
from .families.regression.train import train_bundle
from .families.softmoe import SoftMoE
from .moe import TopKMoE
from .results import load, load_k_eval
from .router import Router, RouterStats

# Imported on first use: importing the grid module here would make `python -m simulations.grid` warn.
_LAZY = {"run_grid": "simulations.grid", "run_bundle": "simulations.grid"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'simulations' has no attribute {name!r}")


__all__ = [
    "CompositionalTask",
    "ConfigError",
    "GridConfig",
    "Router",
    "RouterStats",
    "SoftMoE",
    "TaskSpec",
    "TopKMoE",
    "load",
    "load_k_eval",
    "load_config",
    "run_bundle",
    "run_grid",
    "train_bundle",
]
