"""Typed, nested configs: what a config field's metadata says, and everything derived from it.

A family's config (GridConfig, SravenConfig: each in its family's `config` module) is a frozen
dataclass of sections (task, axes, student, training, runtime, ...), each a frozen dataclass of settings.
What the toolkit once kept in hand-written side lists comes from `field(metadata=...)`:

- `setting(default, check, since=..., group=...)`: one setting. `check` validates and normalises a
  loaded value; `since` is the value that stores written before the setting existed implied (the setting
  enters a hash only when it leaves it, so those stores keep their ids); `group`: models share a bundle
  only if they agree on it.
- `section(cls, hashed=..., axes=...)`: one section. `hashed=False` marks runtime settings (where and how
  fast to run: never in a hash, free to change on resume); `axes=True` marks the grid's axes (lists; a
  resumed store may be extended along them).

Setting names are unique across a config's sections, so a config has one flat view (`flat`): the names
of the old flat configs, what manifests hold and what cell ids and config hashes hash. Loading accepts
that flat form, the nested form (`training: {lr: 0.01}`) and dotted keys (`training.lr`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any


class ConfigError(ValueError):
    """An invalid configuration; the message is one line naming the field and what is allowed."""


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def stable_hash(obj: Any, n: int = 16) -> str:
    """A short hex digest of a JSON-serialisable object, independent of key order."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:n]


# --- validation kinds: each checks one loaded value and returns it normalised --------------------------

@dataclasses.dataclass(frozen=True)
class IntAtLeast:
    """An integer >= lo (`note` explains a special value)."""

    lo: int = 1
    note: str = ""

    def __call__(self, name: str, v: Any) -> int:
        if not is_int(v) or v < self.lo:
            raise ConfigError(f"{name}: expected an integer >= {self.lo}{self.note}, got {v!r}")
        return v


@dataclasses.dataclass(frozen=True)
class OptionalInt:
    """None (meaning `none_means`) or an integer >= 1."""

    none_means: str

    def __call__(self, name: str, v: Any) -> int | None:
        if v is not None and (not is_int(v) or v < 1):
            raise ConfigError(f"{name}: expected null ({self.none_means}) or an integer >= 1, got {v!r}")
        return v


@dataclasses.dataclass(frozen=True)
class Number:
    """A number (made a float), >= 0, or > 0 with `positive`, and below `below` where given."""

    positive: bool = False
    below: float | None = None

    def __call__(self, name: str, v: Any) -> float:
        if not (isinstance(v, (int, float)) and not isinstance(v, bool)):
            raise ConfigError(f"{name}: expected a number, got {v!r}")
        x = float(v)
        if self.positive and not x > 0:
            raise ConfigError(f"{name}: expected a number > 0, got {v!r}")
        if not self.positive and not x >= 0:
            raise ConfigError(f"{name}: expected a number >= 0, got {v!r}")
        if self.below is not None and not x < self.below:
            raise ConfigError(f"{name}: expected a number in [0, {self.below:g}), got {v!r}")
        return x


@dataclasses.dataclass(frozen=True)
class Choice:
    """One of `choices`."""

    choices: tuple

    def __call__(self, name: str, v: Any) -> Any:
        if v not in self.choices:
            raise ConfigError(f"{name}: expected one of {', '.join(map(str, self.choices))}; got {v!r}")
        return v


@dataclasses.dataclass(frozen=True)
class IntList:
    """A non-empty list of distinct integers >= lo (a single integer is a list of one)."""

    lo: int = 1

    def __call__(self, name: str, v: Any) -> list[int]:
        if is_int(v):
            v = [v]
        if not isinstance(v, list) or not v or not all(is_int(x) for x in v):
            raise ConfigError(f"{name}: expected a non-empty list of integers, got {v!r}")
        if any(x < self.lo for x in v):
            raise ConfigError(f"{name}: every value must be an integer >= {self.lo}, got {v!r}")
        if len(set(v)) != len(v):
            raise ConfigError(f"{name}: values must be distinct, got {v!r}")
        return list(v)


@dataclasses.dataclass(frozen=True)
class IntListOrAll:
    """`all` or an IntList (`k: all` means 1..n_experts)."""

    def __call__(self, name: str, v: Any) -> list[int] | str:
        return v if v == "all" else IntList()(name, v)

    @staticmethod
    def values(v: list[int] | str, n: int) -> list[int]:
        """The integers a checked value stands for, `all` being 1..n."""
        return list(range(1, n + 1)) if v == "all" else list(v)


@dataclasses.dataclass(frozen=True)
class OptionalIntList:
    """A possibly empty list of distinct integers >= lo (empty: the option is off)."""

    lo: int = 1

    def __call__(self, name: str, v: Any) -> list[int]:
        if not isinstance(v, list) or not all(is_int(x) for x in v):
            raise ConfigError(f"{name}: expected a list of integers (empty: off), got {v!r}")
        if any(x < self.lo for x in v) or len(set(v)) != len(v):
            raise ConfigError(f"{name}: expected distinct integers >= {self.lo}, got {v!r}")
        return list(v)


@dataclasses.dataclass(frozen=True)
class UnitInterval:
    """A number in (0, 1] (made a float): a share such as a cumulative probability threshold."""

    def __call__(self, name: str, v: Any) -> float:
        if not (isinstance(v, (int, float)) and not isinstance(v, bool)) or not 0 < float(v) <= 1:
            raise ConfigError(f"{name}: expected a number in (0, 1], got {v!r}")
        return float(v)


@dataclasses.dataclass(frozen=True)
class ChoiceList:
    """A non-empty list of distinct values from `choices` (a single value is a list of one)."""

    choices: tuple

    def __call__(self, name: str, v: Any) -> list:
        vals = [v] if isinstance(v, str) else v
        if not isinstance(vals, list) or not vals or any(x not in self.choices for x in vals) \
                or len(set(vals)) != len(vals):
            raise ConfigError(f"{name}: expected a non-empty list of distinct values from "
                              f"{', '.join(self.choices)}; got {v!r}")
        return list(vals)


@dataclasses.dataclass(frozen=True)
class NonEmptyStr:
    def __call__(self, name: str, v: Any) -> str:
        if not isinstance(v, str) or not v:
            raise ConfigError(f"{name}: expected a non-empty string, got {v!r}")
        return v


@dataclasses.dataclass(frozen=True)
class Bool:
    def __call__(self, name: str, v: Any) -> bool:
        if not isinstance(v, bool):
            raise ConfigError(f"{name}: expected true or false, got {v!r}")
        return v


# --- declaring settings and sections ------------------------------------------------------------------

def setting(default: Any, check: Callable[[str, Any], Any], *, since: Any = dataclasses.MISSING,
            group: bool = False) -> Any:
    """A setting's field: its default (a list default is copied per instance), how it is checked, the
    value older stores implied (`since`: hashed only when it leaves it) and whether models share a bundle
    only when they agree on it (`group`)."""
    meta = {"check": check, "group": group}
    if since is not dataclasses.MISSING:
        meta["since"] = since
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True)
class NoSettings:
    """The settings of a registered kind (an estimator, a router kind) that declares none."""


def gathered(settings_classes: Iterable[type]) -> list[tuple[str, type, dataclasses.Field]]:
    """The fields of registered kinds' own settings classes (frozen dataclasses of `setting`s), as the
    (name, type, field) triples of one config section (`dataclasses.make_dataclass`), in order; a field a
    subclass inherits is listed once; TypeError if two classes declare a setting of the same name."""
    out: dict[str, tuple[str, type, dataclasses.Field]] = {}
    for cls in settings_classes:
        for f in dataclasses.fields(cls):
            if f.name in out and out[f.name][2] is not f:
                raise TypeError(f"setting {f.name!r} is declared twice")
            out[f.name] = (f.name, f.type, f)
    return list(out.values())


def section(cls: type, *, hashed: bool = True, axes: bool = False) -> Any:
    """A section's field: `hashed=False` for runtime settings, `axes=True` for the grid's axes."""
    return dataclasses.field(default_factory=cls, metadata={"section": True, "hashed": hashed, "axes": axes})


def sections(cls: type) -> list[dataclasses.Field]:
    """The section fields of a config class, in order."""
    return [f for f in dataclasses.fields(cls) if f.metadata.get("section")]


def settings(cls: type) -> dict[str, tuple[dataclasses.Field, dataclasses.Field]]:
    """flat name -> (its section's field, its own field), in order; names are unique across sections."""
    out: dict[str, tuple[dataclasses.Field, dataclasses.Field]] = {}
    for sec in sections(cls):
        for f in dataclasses.fields(sec.default_factory):
            if f.name in out:
                raise TypeError(f"{cls.__name__}: setting {f.name!r} is in two sections")
            out[f.name] = (sec, f)
    return out


def flat(config: Any) -> dict[str, Any]:
    """The config's flat view: every setting by its name, in section order."""
    return {name: getattr(getattr(config, sec.name), name)
            for name, (sec, _) in settings(type(config)).items()}


def build(cls: type, values: Mapping[str, Any]) -> Any:
    """An instance of `cls` from a flat mapping: a config class builds its sections; any other
    dataclass (a section, a trainer's settings) takes the values of its own fields (the rest default)."""
    if sections(cls):
        return cls(**{sec.name: build(sec.default_factory, values) for sec in sections(cls)})
    return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls) if f.init and f.name in values})


def flat_input(cls: type, raw: Any) -> dict[str, Any]:
    """A loaded mapping in the flat form: flat names, sections as nested mappings (`training:
    {lr: 0.01}`) and dotted names (`training.lr`) are all accepted; an unknown name is a ConfigError
    naming it and the allowed ones."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"config: expected a mapping of field names to values, got {type(raw).__name__}")
    names, secs = settings(cls), {s.name: s for s in sections(cls)}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        head, dot, rest = str(key).partition(".")
        if key in names and not (key in secs and isinstance(value, Mapping)):  # a setting may share
            out[key] = value  # its section's name (task: contextual vs task: {...})
        elif head in secs and (dot or isinstance(value, Mapping)):
            inner = {rest: value} if dot else value
            own = [f.name for f in dataclasses.fields(secs[head].default_factory)]
            unknown = sorted(set(inner) - set(own))
            if unknown:
                raise ConfigError(f"{head}.{unknown[0]}: unknown field; allowed fields: {', '.join(own)}")
            out.update(inner)
        else:
            raise ConfigError(f"{key}: unknown field; allowed fields: {', '.join(names)} "
                              f"(or nested under {', '.join(secs)})")
    return out


def checked(cls: type, raw: Any) -> dict[str, Any]:
    """`raw` (any accepted form) over the defaults of `cls`, each setting checked by its `check`: the
    first step of every family's validation (cross-field rules follow)."""
    vals = {**flat(cls()), **flat_input(cls, raw)}
    for name, (_, f) in settings(cls).items():
        vals[name] = f.metadata["check"](name, vals[name])
    return vals


# --- what the metadata derives: hashing, grouping, resume ---------------------------------------------

def _at_since(f: dataclasses.Field, v: Any) -> bool:
    return "since" in f.metadata and (v == f.metadata["since"] or v == [f.metadata["since"]])


def hashed(config: Any) -> dict[str, Any]:
    """The config hash's input: every setting that can change a row (runtime sections excluded), less
    those that hold the value older stores implied (a single-value list counts)."""
    values = flat(config)
    return {name: values[name] for name, (sec, f) in settings(type(config)).items()
            if sec.metadata["hashed"] and not _at_since(f, values[name])}


def without_since(cls: type, d: Mapping[str, Any]) -> dict[str, Any]:
    """A flat mapping (a cell) less the settings of `cls` that hold the value older stores implied."""
    fields = settings(cls)
    return {k: v for k, v in d.items() if not (k in fields and _at_since(fields[k][1], v))}


def cell_fields(cls: type) -> list[str]:
    """The hashed scalar settings every cell of a grid shares (hashed sections other than the axes)."""
    return [name for name, (sec, _) in settings(cls).items()
            if sec.metadata["hashed"] and not sec.metadata["axes"]]


def grouping(cls: type) -> Callable[[Mapping[str, Any]], tuple]:
    """The bundle key of a cell: its values of the settings marked `group` (models share a bundle only
    when they agree on all of them)."""
    names = tuple(name for name, (_, f) in settings(cls).items() if f.metadata["group"])
    return lambda cell: tuple(cell[n] for n in names)


def resume_conflict(config: Any, stored: Mapping[str, Any]) -> str | None:
    """Why a store whose manifest holds the flat config `stored` cannot be resumed with `config`, in one
    line naming the setting; None if it can. Runtime settings may change; an axis may gain values but
    keep every stored one (`all` holds every k); any other setting must be equal (a setting absent from an
    older manifest holds its `since` value)."""
    new = flat(config)
    for name, (sec, f) in settings(type(config)).items():
        if not sec.metadata["hashed"]:
            continue
        if name not in stored and "since" not in f.metadata:
            return f"{name}: the stored config has no {name}; resume it with the code that wrote it"
        old = stored.get(name, f.metadata.get("since"))
        if sec.metadata["axes"]:
            if new[name] == "all" or old == new[name]:
                continue
            kept = old != "all" and all(x in new[name] for x in (old if isinstance(old, list) else [old]))
            if not kept:
                return (f"{name}: a resumed store may only be extended along an axis; the stored {old!r} "
                        f"is not within {new[name]!r}")
        elif old != new[name]:
            return (f"{name}: the store was written with {old!r}, not {new[name]!r}; resume with the stored "
                    f"value or use another --out")
    return None
