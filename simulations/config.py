"""The configuration API every family shares: reading YAML and TOML files, the built-in presets, `--set`
and `--seeds`, `load_config` (a family's preset or file with overrides applied, validated by the family),
and the sections every grid family's config has (`RuntimeConfig`). Names may be flat, nested or dotted
(simulations.config_schema.flat_input); the family registry says which config class reads them, and
each family's package defines its own config (the regression grid's: simulations.families.regression.config).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from simulations.config_schema import (
    Choice,
    ConfigError,
    IntAtLeast,
    NonEmptyStr,
    flat_input,
    setting,
    stable_hash,
)
from simulations.families import DEFAULT, REGISTRY, get_family

__all__ = ["IMPL_CHOICES", "ConfigError", "RuntimeConfig", "load_config", "parse_override", "parse_seeds",
           "preset", "preset_names", "preset_text", "read_file", "stable_hash"]

IMPL_CHOICES = ("auto", "dense", "sparse")  # TopKMoE's implementations a config may choose


@dataclass(frozen=True)
class RuntimeConfig:
    """Where and how fast to run: never in a hash, free to change when a store is resumed."""

    name: str = setting("quick", NonEmptyStr())
    device: str = setting("auto", Choice(("auto", "cpu", "cuda")))
    max_models_per_bundle: int = setting(96, IntAtLeast())
    threads: int = setting(1, IntAtLeast(0, " (0 = torch's default)"))  # torch CPU threads per bundle
    workers: int = setting(1, IntAtLeast())  # bundles trained at once in separate processes (local executor)


def read_file(path: str | Path) -> dict[str, Any]:
    """Parse a YAML (.yaml/.yml) or TOML (.toml) config file into a mapping."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".toml"):
        raise ConfigError(f"config: file must end in .yaml, .yml or .toml, got {str(path)!r}")
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"config: cannot read {str(path)!r}: {exc.strerror or exc}") from None
    if suffix == ".toml":
        try:
            import tomllib  # Python >= 3.11; imported here, as only TOML files need it
        except ImportError:  # pragma: no cover - Python 3.10
            try:
                import tomli as tomllib  # the optional backport
            except ImportError:
                raise ConfigError("config: TOML files need Python >= 3.11 or the tomli package; "
                                  "use YAML instead") from None
    try:
        data = tomllib.loads(text) if suffix == ".toml" else yaml.safe_load(text)
    except (yaml.YAMLError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"config: cannot parse {str(path)!r}: {first}") from None
    return {} if data is None else data


def _is_sweep(text: str) -> bool:
    """A sweep file (a base and its `variants`, simulations.families.regression.regime) shares the
    presets folder but is no grid config: its top-level `variants` key, which no config has, tells."""
    return re.search(r"^variants\s*:", text, re.MULTILINE) is not None


def preset_names(package: str = REGISTRY[DEFAULT]) -> list[str]:
    """The built-in presets of a package (its presets/*.yaml, less the sweep files beside them)."""
    files = resources.files(package).joinpath("presets").iterdir()
    return sorted(f.name[:-5] for f in files if f.name.endswith(".yaml") and not _is_sweep(f.read_text()))


def preset_text(name: str = "quick", package: str = REGISTRY[DEFAULT]) -> str:
    """The text of the built-in preset `name` (<package>/presets/NAME.yaml), comments included;
    ConfigError naming the allowed names for any other name."""
    names = preset_names(package)
    if name not in names:
        raise ConfigError(f"preset: expected one of {', '.join(names)}; got {name!r}")
    return resources.files(package).joinpath("presets", f"{name}.yaml").read_text()


def preset(name: str = "quick", package: str = REGISTRY[DEFAULT]) -> dict[str, Any]:
    """The built-in preset shipped as package data (<package>/presets/NAME.yaml), parsed."""
    return yaml.safe_load(preset_text(name, package))


def parse_override(item: str) -> tuple[str, Any]:
    """`FIELD=VALUE` with VALUE read as YAML (so `k=[1,2]`, `lr=0.003`, `k=all` all work); FIELD may be
    flat (`lr`) or dotted (`training.lr`)."""
    if "=" not in item:
        raise ConfigError(f"--set: expected FIELD=VALUE, got {item!r}")
    key, _, text = item.partition("=")
    key = key.strip()
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError(f"{key}: cannot parse value {text!r}") from None
    return key, value


def parse_seeds(text: str) -> list[int]:
    """`--seeds`: `N` means seeds 0..N-1, `A:B` means A..B-1, `A,B,C` an explicit list."""
    try:
        if "," in text:
            return [int(t) for t in text.split(",") if t.strip()]
        if ":" in text:
            a, b = text.split(":")
            return list(range(int(a), int(b)))
        return list(range(int(text)))
    except ValueError:
        raise ConfigError(f"seeds: expected N, A:B or A,B,C with integers, got {text!r}") from None


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None,
                family: str = DEFAULT, preset_name: str | None = None):
    """A family's config (GridConfig for the regression grid): its preset `preset_name` (default: the
    family's default preset) or a file, with overrides (flat, nested or dotted names) applied, validated."""
    fam = get_family(family)
    if path is not None and preset_name is not None:
        raise ConfigError("config: pass a preset or a config file, not both")
    raw = preset(preset_name or fam.default_preset, fam.presets) if path is None else read_file(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"config: expected a mapping of field names to values in {path}")
    return fam.validate({**flat_input(fam.config_cls, raw), **flat_input(fam.config_cls, overrides or {})})
