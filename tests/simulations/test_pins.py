"""Every preset keeps its stored identities: the config hash and the cell ids of the quick, standard,
oracle_terms, paper, regime and SRAVEN presets (each regression preset both as `preset:NAME`, the
package's, and as its configs/ copy) are pinned (tests/simulations/data/pinned_ids.json, written
by the code before the redesign of issue 19). A change that moves one would orphan every store written
before it: `--resume` would retrain, and fits would see two settings."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from simulations.config import load_config, preset_names
from simulations.families.regression.config import validate
from simulations.families.regression.regime import load_sweep
from simulations.grid import cells

ROOT = Path(__file__).resolve().parents[2]
PINNED = json.loads((Path(__file__).parent / "data" / "pinned_ids.json").read_text())


def _config(key: str):
    kind, _, name = key.partition(":")
    if key.startswith("configs/"):
        return load_config(ROOT / key)
    if kind == "preset":
        return load_config(preset_name=name)
    if kind == "regime":
        return validate(dict(load_sweep())[name])
    return load_config(family=kind, preset_name=name)


@pytest.mark.parametrize("key", sorted(PINNED))
def test_preset_identities_are_pinned(key):
    config = _config(key)
    ids = sorted(c["cell_id"] for c in cells(config))
    got = {"config_hash": config.config_hash(), "n_cells": len(ids),
           "cell_ids_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest()}
    assert got == PINNED[key]


def test_every_preset_is_pinned():
    """A new preset must be added to the pins (regenerate them at the commit that adds it); its copy in
    configs/ is pinned to the same values, as both are one config."""
    files = {f"configs/{p.name}" for p in (ROOT / "configs").glob("*.yaml")}
    presets = {f"preset:{name}" for name in preset_names()}
    regime = {f"regime:{name}" for name, _ in load_sweep()}
    assert files | presets | regime <= set(PINNED)
    for name in preset_names():
        assert PINNED[f"preset:{name}"] == PINNED[f"configs/{name}.yaml"], name
