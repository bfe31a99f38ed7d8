"""The Soft MoE experiments' configs, built from the presets shipped as package data.

A preset (presets/<name>.yaml) has one section per experiment, each a few fields of that experiment's
frozen config dataclass; lists become tuples, as the dataclasses hold them. Unknown fields and values the
config refuses raise ConfigError in one line naming the field.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from simulations.config import preset, preset_names
from simulations.config_schema import ConfigError

from .expert_drop import ExpertDropConfig
from .single_expert import SingleExpertConfig

CONFIGS = {"single-expert": SingleExpertConfig, "expert-drop": ExpertDropConfig}


def presets() -> list[str]:
    """The names of the built-in presets."""
    return preset_names(__package__)


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def build(experiment: str, raw: dict[str, Any]):
    """The config of `experiment` with the fields of `raw` over its defaults."""
    cls = CONFIGS[experiment]
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown field of {experiment}; allowed fields: {', '.join(names)}")
    try:
        return cls(**{k: _tuples(v) for k, v in raw.items()})
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def preset_config(experiment: str, name: str):
    """The config of `experiment` in the built-in preset `name`."""
    return build(experiment, preset(name, __package__).get(experiment) or {})
