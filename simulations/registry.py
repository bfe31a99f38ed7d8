"""Name -> class registries of the kinds a student is made of (router and expert kinds, estimators):
registering a name twice and asking for a name that is not there are one-line ValueErrors."""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K", bound=type)


def register(registry: dict[str, type], cls: K, what: str) -> K:
    """Add `cls` under its `name` (`what`: the kind's name in the error, e.g. "router kind")."""
    if cls.name in registry:
        raise ValueError(f"{what} {cls.name!r} is registered twice")
    registry[cls.name] = cls
    return cls


def lookup(registry: dict[str, K], field: str, name: str) -> K:
    """The class registered as `name`; ValueError naming `field` and the allowed values otherwise."""
    if name not in registry:
        raise ValueError(f"{field}: expected one of {', '.join(registry)}; got {name!r}")
    return registry[name]
