"""The family registry (simulations.families) and each family's row record (its schema module): one
registry names every family, the driver's required columns and the fits' view come from the record,
bad names fail in one line, and each family's presets ship as package data."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from importlib import import_module, resources
from pathlib import Path

import pandas as pd
import pytest
from softmoe_fixtures import DROP_RESULT_COLUMNS, SINGLE_RESULT_COLUMNS, TINY_SINGLE

from fits import families as fits_families
from simulations import results
from simulations.arms import ARM_COLUMNS
from simulations.config import ConfigError, preset_names
from simulations.config_schema import ChoiceList, IntAtLeast, IntList, cell_fields, section, setting
from simulations.families import DEFAULT, GRID_FAMILIES, REGISTRY, family_of_rows, get_family, get_schema
from simulations.families import SRAVEN as SRAVEN_NAME
from simulations.families.record import Column, Schema, columns, config_columns
from simulations.families.regression.config import GridConfig
from simulations.families.softmoe import single_expert
from simulations.families.softmoe.__main__ import EXPERIMENTS
from simulations.families.softmoe.config import build, preset_config, presets
from simulations.families.softmoe.schema import SCHEMAS
from simulations.families.sraven.schema import SCHEMA as SRAVEN
from simulations.families.sraven.schema import sraven_table

ROOT = Path(__file__).resolve().parents[2]


def test_every_family_is_a_package_under_simulations_families():
    assert set(REGISTRY) == {"regression", "sraven", "softmoe"} and DEFAULT == next(iter(REGISTRY))
    for name, package in REGISTRY.items():
        assert package == f"simulations.families.{name}"
        assert import_module(package).__file__.startswith(str(ROOT / "simulations" / "families" / name))


@pytest.mark.parametrize("name", GRID_FAMILIES)
def test_grid_family_and_schema_agree(name):
    fam, schema = get_family(name), get_schema(name)
    assert fam.name == schema.name == name
    assert fam.required_columns == schema.required_columns
    assert fits_families.FAMILIES[name] is schema  # the fits keep no copy of their own


@pytest.mark.parametrize("lookup", [get_family, get_schema])
@pytest.mark.parametrize("name", ["softmoe", "nope"])
def test_unknown_grid_family_is_one_line_naming_the_allowed_values(lookup, name):
    with pytest.raises(ConfigError) as exc:
        lookup(name)
    assert str(exc.value) == f"family: expected one of regression, sraven; got {name!r}"


def test_registry_module_imports_no_family_and_nothing_inside_functions():
    """The registry imports families on first use only, so it has no cycle to dodge; nothing in the
    registry or the record module imports inside a function."""
    for path in (ROOT / "simulations/families/__init__.py", ROOT / "simulations/families/record.py"):
        tree = ast.parse(path.read_text())
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        nested = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) and n not in top]
        nested = [n for n in nested if not (isinstance(n, ast.Import) and n.names[0].name == "pandas")]
        assert nested == [], path  # (pandas under TYPE_CHECKING is for annotations only)
        mods = {n.module for n in top if isinstance(n, ast.ImportFrom)}
        assert not any(m.startswith("simulations.families.") and m != "simulations.families.record"
                       for m in mods), path


def test_record_derives_required_raw_and_setting_columns():
    cols = (*columns("id", "seed"), *columns("setting", "lr"), *columns("setting", "old", required=False),
            *columns("metric", "acc", fits=True))
    plain = Schema("x", cols)
    assert plain.required_columns == ("seed", "lr", "acc")
    assert plain.other_cell_fields == ("lr", "old")
    assert plain.raw_columns == ()  # no mapping: the rows are the generic table
    mapped = Schema("x", cols, to_generic=lambda df: df)
    assert mapped.raw_columns == ("acc",)
    with pytest.raises(ValueError, match=r"x: rows lack required columns \['lr'\]"):
        plain.check(pd.DataFrame(columns=["seed", "acc", "old"]), "x")
    plain.check(pd.DataFrame(columns=["seed", "lr", "acc"]), "x")


def test_column_role_is_checked():
    with pytest.raises(ValueError, match=r"role: expected one of id, axis, .*; got 'bogus' \(c\)"):
        Column("c", "bogus")


def test_regression_record_is_the_stores_required_columns():
    """The store's required columns are the record's; the settings the fits check for one value per cell
    are the config's cell settings and the arm's axes (derived from the config: a new setting joins)."""
    assert results.REQUIRED_COLUMNS == get_schema("regression").required_columns
    assert set(fits_families.REGRESSION.other_cell_fields) == {*cell_fields(GridConfig), *ARM_COLUMNS}


@dataclass(frozen=True)
class _Task:
    size: int = setting(1, IntAtLeast())
    later: int = setting(0, IntAtLeast(0), since=0)


@dataclass(frozen=True)
class _Axes:
    width: list[int] = setting([1], IntList())
    seeds: list[int] = setting([0], IntList(lo=0))
    arm: list[str] = setting(["a"], ChoiceList(("a", "b")), since="a")


@dataclass(frozen=True)
class _Runtime:
    threads: int = setting(1, IntAtLeast())


@dataclass(frozen=True)
class _Config:
    task: _Task = section(_Task)
    axes: _Axes = section(_Axes, axes=True)
    runtime: _Runtime = section(_Runtime, hashed=False)


def test_config_columns_are_the_hashed_settings_required_unless_they_have_a_since():
    assert config_columns(_Config, axes=False) == (Column("size", "setting"),
                                                    Column("later", "setting", required=False))
    assert config_columns(_Config, axes=True, names={"seeds": "seed"}, roles={"seeds": "id"}) == (
        Column("width", "axis"), Column("seed", "id"), Column("arm", "axis", required=False))


def test_sraven_mapping_reads_only_the_columns_its_record_marks():
    assert set(SRAVEN.raw_columns) <= set(SRAVEN.required_columns)
    row = {c: [1.0] for c in SRAVEN.raw_columns} | {"acc_ood": [0.25]}
    out = sraven_table(pd.DataFrame(row))
    assert out.loc[0, "error_ood"] == 0.75 and out.loc[0, "complexity"] == 1.0
    assert set(SRAVEN.metrics.values()) <= set(out.columns)


def test_softmoe_records_are_its_documented_results_columns():
    assert set(SCHEMAS) == set(EXPERIMENTS)
    assert [c.name for c in SCHEMAS["single-expert"].columns] == SINGLE_RESULT_COLUMNS
    assert [c.name for c in SCHEMAS["expert-drop"].columns] == DROP_RESULT_COLUMNS
    rows, _ = single_expert.run(TINY_SINGLE, progress=False)
    assert list(rows.columns) == SINGLE_RESULT_COLUMNS
    SCHEMAS["single-expert"].check(rows, "results.parquet")
    with pytest.raises(ValueError, match="results.parquet: rows lack required columns"):
        SCHEMAS["single-expert"].check(rows.drop(columns=["relative_loss"]), "results.parquet")


@pytest.mark.parametrize("name", GRID_FAMILIES)
def test_each_grid_familys_presets_ship_as_package_data(name):
    fam = get_family(name)
    names = preset_names(fam.presets)
    assert fam.default_preset in names
    files = resources.files(fam.presets).joinpath("presets")
    assert all(files.joinpath(f"{n}.yaml").is_file() for n in names)


def test_pyproject_lists_every_family_package_and_its_presets():
    text = (ROOT / "pyproject.toml").read_text()
    for package in REGISTRY.values():
        assert f'"{package}"' in text
        assert f'"{package}" = ["presets/*.yaml"]' in text


def test_softmoe_presets_build_each_experiments_config():
    assert presets() == ["paper", "quick"]
    quick = preset_config("single-expert", "quick")
    assert (quick.batch_size, quick.steps, quick.seeds) == (1000, 1500, (0, 1, 2))
    paper = preset_config("expert-drop", "paper")
    assert paper.n_experts == (2, 4, 8, 16, 32, 64, 128, 256, 512) and paper.image_size == 28
    assert preset_config("expert-drop", "quick") == build("expert-drop", {})  # quick: the defaults


@pytest.mark.parametrize(("raw", "message"), [
    ({"step": 3}, "step: unknown field of single-expert; allowed fields: tokenizations, n_experts, "),
    ({"n_experts": [3]}, "n_experts: 3 does not divide width_factor * token_dim = 20"),
])
def test_softmoe_bad_preset_fields_are_one_line_config_errors(raw, message):
    with pytest.raises(ConfigError) as exc:
        build("single-expert", raw)
    assert str(exc.value).startswith(message) and "\n" not in str(exc.value)


def test_family_of_rows_reads_the_family_column():
    assert family_of_rows(pd.DataFrame({"k": [1]})) == DEFAULT
    assert family_of_rows(pd.DataFrame({"family": [None]})) == DEFAULT
    assert family_of_rows(pd.DataFrame({"family": [SRAVEN_NAME, None]})) == SRAVEN_NAME
    with pytest.raises(ValueError, match="^rows of several families mixed"):
        family_of_rows(pd.DataFrame({"family": list(GRID_FAMILIES)}))
    with pytest.raises(ValueError, match="^unknown family 'nowhere': allowed values are"):
        family_of_rows(pd.DataFrame({"family": ["nowhere"]}))
