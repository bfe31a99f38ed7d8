"""The grid's configuration: one flat dataclass, loaded from YAML or TOML and validated field by field.

Grid axes (`complexity`, `n_experts`, `k`, `n_train`, `width`, `seeds`) are lists; every other field is
a scalar shared by all cells. `k: all` means 1..n_experts for each n_experts. Every problem raises
`ConfigError`, whose one-line message names the field and what is allowed; the CLI prints it and exits
non-zero before anything is written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import yaml

from simulations.errors import ConfigError
from simulations.families import get_family

RENORMALIZE_CHOICES = ("k>1", "always", "never")
DTYPE_CHOICES = ("float32", "float64")
DEVICE_CHOICES = ("auto", "cpu", "cuda")
IMPL_CHOICES = ("auto", "dense", "sparse")
ROUTER_CHOICES = ("learned", "oracle", "dense", "supervised")
EXPERTS_CHOICES = ("learned", "teacher")

# Fields that only say where or how fast to run: they never change a row's values, so they stay out of
# the cell hash and the config hash (a resumed run may use another device or bundle size).
RUNTIME_FIELDS = ("name", "device", "max_models_per_bundle", "threads", "workers")
AXES = ("complexity", "n_experts", "k", "n_train", "width", "seeds", "router", "experts")
ROUTER_SETTINGS = ("router_lr_mult", "balance_loss", "router_noise")  # scalars of a learned router's training
ROUTER_INIT = ("router_temperature", "router_init_scale")  # scalars of a learned router's construction
# Fields added after the first stores were written, with the value those stores implied: at that value
# they stay out of the cell and config hashes, so earlier stores keep their cell ids and resume.
LATER_DEFAULTS = {"router": "learned", "experts": "learned", "router_lr_mult": 1.0, "balance_loss": 0.0,
                  "router_noise": 0.0, "router_temperature": 1.0, "router_init_scale": 1.0}


@dataclass
class GridConfig:
    """Everything a grid run needs; see docs/tasks.md for the task fields' meaning. The defaults are the
    quick preset (simulations/families/regression/presets/quick.yaml), so a config file that sets a few
    fields changes only those."""

    family: ClassVar[str] = "regression"  # simulations.families: which experiment this config runs

    name: str = "quick"
    # task (docs/tasks.md)
    n_skills: int = 8
    d_in: int = 8
    teacher_width: int = 32
    noise: float = 0.1
    holdout_frac: float = 0.25
    # grid axes
    complexity: list[int] = field(default_factory=lambda: [1, 2, 4, 6])
    n_experts: list[int] = field(default_factory=lambda: [16])
    k: list[int] | str = field(default_factory=lambda: [1, 2, 3, 4, 6, 8, 12, 16])
    n_train: list[int] = field(default_factory=lambda: [150, 500])
    width: list[int] = field(default_factory=lambda: [4])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    # controls (docs/tasks.md, "Controls"): router x experts arms; experts "teacher" pairs with a
    # learned router only, and "oracle"/"supervised"/"teacher" need n_experts to be a multiple of n_skills
    router: list[str] = field(default_factory=lambda: ["learned", "oracle", "dense"])
    experts: list[str] = field(default_factory=lambda: ["learned", "teacher"])
    # student and training
    renormalize: str = "k>1"
    impl: str = "auto"
    lr: float = 0.005
    max_steps: int = 1000
    eval_every: int = 25
    patience: int = 8
    clip_norm: float = 1.0
    router_lr_mult: float = 1.0  # learned router: learning rate = lr * router_lr_mult
    balance_loss: float = 0.0  # learned router: weight of the load-balancing auxiliary loss
    router_noise: float = 0.0  # learned router: sd of N(0, .) jitter on its logits in training steps
    router_temperature: float = 1.0  # learned router: p = softmax(logits / router_temperature)
    router_init_scale: float = 1.0  # learned router: initial weights times this (0: uniform at start)
    n_val: int = 300
    n_test: int = 2000
    dtype: str = "float32"
    # runtime
    device: str = "auto"
    max_models_per_bundle: int = 96
    threads: int = 1  # torch CPU threads per bundle; 0 keeps torch's default
    workers: int = 1  # bundles trained at once in separate processes (local executor)

    def arms(self) -> list[tuple[str, str]]:
        """The (router, experts) pairs of the grid: the product of the two axes, less the pairs that
        do not exist (teacher experts are trained through a learned router only)."""
        return [(r, e) for r in self.router for e in self.experts if e == "learned" or r == "learned"]

    def ks_for(self, n_experts: int) -> list[int]:
        """The k values of the grid for one expert count."""
        return list(range(1, n_experts + 1)) if self.k == "all" else list(self.k)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def config_hash(self) -> str:
        """Hash of every field that can change a row's values (runtime fields excluded)."""
        return stable_hash(without_later_defaults(
            {k: v for k, v in self.to_dict().items() if k not in RUNTIME_FIELDS}))


def without_later_defaults(d: dict[str, Any]) -> dict[str, Any]:
    """`d` less the LATER_DEFAULTS fields that hold their default (a single-value list counts)."""
    def at_default(k: str, v: Any) -> bool:
        return k in LATER_DEFAULTS and (v == LATER_DEFAULTS[k] or v == [LATER_DEFAULTS[k]])

    return {k: v for k, v in d.items() if not at_default(k, v)}


def stable_hash(obj: Any, n: int = 16) -> str:
    """A short hex digest of a JSON-serialisable object, independent of key order."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:n]


_INT_LIST = ("complexity", "n_experts", "n_train", "width", "seeds")
_POS_INT = ("n_skills", "d_in", "teacher_width", "max_steps", "eval_every", "patience", "n_val", "n_test")
_CHOICES = {"renormalize": RENORMALIZE_CHOICES, "dtype": DTYPE_CHOICES, "device": DEVICE_CHOICES,
            "impl": IMPL_CHOICES}


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def int_list(name: str, v: Any, lo: int = 1) -> list[int]:
    if is_int(v):
        v = [v]
    if not isinstance(v, list) or not v or not all(is_int(x) for x in v):
        raise ConfigError(f"{name}: expected a non-empty list of integers, got {v!r}")
    if any(x < lo for x in v):
        raise ConfigError(f"{name}: every value must be an integer >= {lo}, got {v!r}")
    if len(set(v)) != len(v):
        raise ConfigError(f"{name}: values must be distinct, got {v!r}")
    return list(v)


def with_defaults(raw: Any, cls: type) -> dict[str, Any]:
    """`raw` over the defaults of the config dataclass `cls`, refusing anything but a mapping of its
    field names (the first check of every family's validation)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"config: expected a mapping of field names to values, got {type(raw).__name__}")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown field; allowed fields: {', '.join(names)}")
    return dict(dataclasses.asdict(cls()), **raw)


def check_positive_ints(vals: dict[str, Any], names: tuple[str, ...]) -> None:
    """The named fields are integers >= 1."""
    for name in names:
        if not is_int(vals[name]) or vals[name] < 1:
            raise ConfigError(f"{name}: expected an integer >= 1, got {vals[name]!r}")


def check_choices(vals: dict[str, Any], choices: dict[str, tuple]) -> None:
    """Each named field holds one of its allowed values."""
    for name, allowed in choices.items():
        if vals[name] not in allowed:
            raise ConfigError(f"{name}: expected one of {', '.join(map(str, allowed))}; got {vals[name]!r}")


def check_numbers(vals: dict[str, Any], names: tuple[str, ...], positive: tuple[str, ...] = ()) -> None:
    """The named fields are numbers (made floats), >= 0, or > 0 for those in `positive`."""
    for name in names:
        v = vals[name]
        if not (isinstance(v, (int, float)) and not isinstance(v, bool)):
            raise ConfigError(f"{name}: expected a number, got {v!r}")
        vals[name] = float(v)
        if name in positive and not vals[name] > 0:
            raise ConfigError(f"{name}: expected a number > 0, got {v!r}")
        if name not in positive and not vals[name] >= 0:
            raise ConfigError(f"{name}: expected a number >= 0, got {v!r}")


def check_runtime(vals: dict[str, Any]) -> None:
    """The runtime fields every family shares (RUNTIME_FIELDS)."""
    check_positive_ints(vals, ("max_models_per_bundle", "workers"))
    if not is_int(vals["threads"]) or vals["threads"] < 0:
        raise ConfigError(f"threads: expected an integer >= 0 (0 = torch's default), got {vals['threads']!r}")
    if not isinstance(vals["name"], str) or not vals["name"]:
        raise ConfigError(f"name: expected a non-empty string, got {vals['name']!r}")
    check_choices(vals, {"device": DEVICE_CHOICES})


def validate(raw: dict[str, Any]) -> GridConfig:
    """Build a GridConfig from a plain mapping, checking names, types and ranges."""
    vals = with_defaults(raw, GridConfig)
    check_positive_ints(vals, _POS_INT)
    for name in _INT_LIST:
        vals[name] = int_list(name, vals[name], lo=0 if name == "seeds" else 1)
    check_numbers(vals, ("noise", "holdout_frac", "lr", "clip_norm", *ROUTER_SETTINGS, *ROUTER_INIT),
                  positive=("lr", "clip_norm", "router_lr_mult", "router_temperature"))
    check_runtime(vals)
    if not vals["holdout_frac"] < 1:
        raise ConfigError(f"holdout_frac: expected a number in [0, 1), got {vals['holdout_frac']!r}")
    for name, choices in (("router", ROUTER_CHOICES), ("experts", EXPERTS_CHOICES)):
        v = [vals[name]] if isinstance(vals[name], str) else vals[name]
        if not isinstance(v, list) or not v or any(x not in choices for x in v) or len(set(v)) != len(v):
            raise ConfigError(f"{name}: expected a non-empty list of distinct values from "
                              f"{', '.join(choices)}; got {vals[name]!r}")
        vals[name] = list(v)
    needs_replicas = [f"the {r} router" for r in ("oracle", "supervised") if r in vals["router"]] + (
        ["teacher experts"] if "teacher" in vals["experts"] else [])
    bad = [T for T in vals["n_experts"] if T % vals["n_skills"]] if needs_replicas else []
    if bad:
        raise ConfigError(f"n_experts: {' and '.join(needs_replicas)} need every n_experts to be a "
                          f"multiple of n_skills={vals['n_skills']} (r replicas per skill), got {bad[0]}")
    check_choices(vals, _CHOICES)
    if vals["k"] != "all":
        vals["k"] = int_list("k", vals["k"])
        bad = [k for k in vals["k"] if k > min(vals["n_experts"])]
        if bad:
            raise ConfigError(f"k: every k must be in 1..n_experts (1..{min(vals['n_experts'])}) "
                              f"or 'all', got {bad[0]}")
    bad = [s for s in vals["complexity"] if s > vals["n_skills"]]
    if bad:
        raise ConfigError(f"complexity: every value must be in 1..n_skills (1..{vals['n_skills']}), "
                          f"got {bad[0]}")
    return GridConfig(**vals)


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
            import tomllib  # Python >= 3.11
        except ImportError:  # pragma: no cover - Python 3.10
            try:
                import tomli as tomllib
            except ImportError:
                raise ConfigError("config: TOML files need Python >= 3.11 or the tomli package; "
                                  "use YAML instead") from None
    try:
        data = tomllib.loads(text) if suffix == ".toml" else yaml.safe_load(text)
    except (yaml.YAMLError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"config: cannot parse {str(path)!r}: {first}") from None
    return {} if data is None else data


def preset_names(package: str = "simulations.families.regression") -> list[str]:
    """The built-in presets of a package (its presets/*.yaml)."""
    files = resources.files(package).joinpath("presets").iterdir()
    return sorted(f.name[:-5] for f in files if f.name.endswith(".yaml"))


def preset(name: str = "quick", package: str = "simulations.families.regression") -> dict[str, Any]:
    """The built-in preset shipped as package data (<package>/presets/NAME.yaml)."""
    if name not in preset_names(package):
        raise ConfigError(f"preset: expected one of {', '.join(preset_names(package))}; got {name!r}")
    text = resources.files(package).joinpath("presets", f"{name}.yaml").read_text()
    return yaml.safe_load(text)


def parse_override(item: str) -> tuple[str, Any]:
    """`FIELD=VALUE` with VALUE read as YAML (so `k=[1,2]`, `lr=0.003`, `k=all` all work)."""
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
                family: str = "regression", preset_name: str | None = None):
    """A family's config (GridConfig for the regression grid): its preset `preset_name` (default: the
    family's default preset) or a file, with single-field overrides applied, validated."""
    fam = get_family(family)
    if path is not None and preset_name is not None:
        raise ConfigError("config: pass a preset or a config file, not both")
    raw = preset(preset_name or fam.default_preset, fam.presets) if path is None else read_file(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"config: expected a mapping of field names to values in {path}")
    return fam.validate({**raw, **(overrides or {})})
