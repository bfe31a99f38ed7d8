"""The fits' blocks registry (`fits.blocks`), its options (`fits.options.FitOptions`), the arms the fits
and figures take from `simulations.arms`, and the law band the fits write for the k* figures."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fits import blocks
from fits.arm_fit import fit_arm
from fits.blocks import FitContext
from fits.data import FitInputError, arm_names, check_results, routed_arms, split_arms
from fits.families import FAMILIES
from fits.law import law_band
from fits.law_grid import N_CURVE, law_band_table
from fits.options import FitOptions
from fits.summary import law_summary
from fits.synthetic import planted_results
from simulations.arms import arms, primary
from simulations.families import REGISTRY
from simulations.moe import IMPLS

ROOT = Path(__file__).resolve().parents[2]


def test_every_block_has_the_protocol_and_a_unique_name():
    names = [b.NAME for b in blocks.BLOCKS]
    assert names == list(blocks.by_name()) and len(set(names)) == len(names)
    assert names == ["theory_comparison", "joint_surface", "by_router", "paired_arms", "theory_fit", "k_eval",
                     "routing_gain", "adaptive_k", "gate_map", "regime", "prediction_check", "plateau"]
    for b in blocks.BLOCKS:
        assert callable(b.applies) and callable(b.run) and callable(b.skipped)
        assert (b.TITLE is None) == (not hasattr(b, "report")), b.NAME


@pytest.mark.parametrize("field, value, expected", [
    ("method", "lasso", "unknown --method 'lasso': allowed values are wls, ols, hc3"),
    ("k_source", "both", "unknown --k-source 'both': allowed values are continuous, discrete"),
    ("shape", "cubic", "unknown --shape 'cubic': allowed values are linear, p2"),
    ("bootstrap", -1, "--bootstrap must be >= 0"),
    ("theory_bootstrap", -2, "--theory-bootstrap must be >= 0"),
])
def test_options_name_the_bad_field(field, value, expected):
    with pytest.raises(FitInputError, match="^" + expected.replace("(", r"\(")) as err:
        FitOptions(**{field: value}).check()
    assert "\n" not in str(err.value)


def test_options_from_the_cli_mapping_keep_defaults_and_ignore_other_keys():
    opts = FitOptions.from_mapping({"metric": "id", "no_theory": True, "unrelated": 1})
    assert opts == FitOptions(metric="id", no_theory=True)
    with pytest.raises(AttributeError):
        opts.metric = "ood"  # frozen


@pytest.fixture(scope="module")
def context():
    df = check_results(planted_results(n_seeds=2, rng_seed=3))
    arms_ = split_arms(df)
    opts = FitOptions(metric="ood", bootstrap=20, no_surface=True)
    fitted = fit_arm(arms_[primary().name], opts)
    return FitContext(opts, df, FAMILIES["regression"], arms_, primary().name, fitted)


def test_skip_reasons_come_from_the_options_and_the_family(context):
    reasons = {b.NAME: blocks.skip_reason(b, context) for b in blocks.BLOCKS}
    assert reasons["joint_surface"] == "--no-surface"
    assert reasons["by_router"] == "the store has no routing controls"  # planted rows have no arms
    assert reasons["theory_comparison"] is None and reasons["theory_fit"] is None
    sraven = FitContext(context.options, context.store, FAMILIES["sraven"], context.arms, context.primary,
                        context.fitted)
    for name, why in FAMILIES["sraven"].skipped.items():
        assert blocks.skip_reason(blocks.by_name()[name], sraven) == why


def test_arms_come_from_the_registry():
    assert [a.name for a in routed_arms()] == [a.name for a in arms() if a.routes]
    rows = pd.DataFrame({"router": [a.router.name for a in arms()],
                         "experts": [a.experts.name for a in arms()], "gate": [a.gate for a in arms()],
                         "estimator": [a.estimator for a in arms()]})
    assert arm_names(rows).tolist() == [a.name for a in arms()]
    # a store without the gate column is all softmax
    plain = [a.name for a in arms() if a.gate == "softmax"]
    assert arm_names(rows[rows["gate"] == "softmax"].drop(columns="gate")).tolist() == plain
    # ... and one without the estimator column all pathwise
    pathwise = [a.name for a in arms() if a.estimator == "pathwise"]
    assert arm_names(rows[rows["estimator"] == "pathwise"].drop(columns="estimator")).tolist() == pathwise
    assert (arm_names(rows.drop(columns="router")) == primary().name).all()
    with pytest.raises(FitInputError, match="^router/experts/gate/estimator: unknown arm"):
        arm_names(pd.DataFrame({"router": ["nowhere"], "experts": ["learned"]}))


def test_law_band_table_is_the_law_band_on_each_figure_curve(context):
    cf, law, _ = context.fitted
    doc = law_summary(law)
    table = law_band_table(cf.cells, doc)
    assert len(table) and table.groupby(["x", "series", "held", "held_level", "series_level"]).size().eq(
        N_CURVE).all()
    curve = table[(table["x"] == "n_train") & (table["series"] == "complexity")]
    first = curve[curve["series_level"] == curve["series_level"].min()]
    first = first[first["held_level"] == first["held_level"].max()].sort_values("point")
    grid = pd.DataFrame({"n_train": first["x_value"].to_numpy(),
                         "complexity": first["series_level"].to_numpy(),
                         "width": first["held_level"].to_numpy(), "n_experts": first["n_experts"].to_numpy()})
    expected = law_band(doc, grid)
    np.testing.assert_array_equal(first["k_star"].to_numpy(), expected["k_star"].to_numpy())
    np.testing.assert_array_equal(first["ci_hi"].to_numpy(), expected["ci_hi"].to_numpy())
    assert law_band_table(cf.cells, None).empty


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_figures_compute_nothing_with_fits():
    """Figures read the fits' files and map a SRAVEN store through its family's schema: no figure
    module imports fits."""
    using = sorted(p.name for p in (ROOT / "figures").glob("*.py")
                   if any(m == "fits" or m.startswith("fits.") for m in _imports(p)))
    assert using == []


def test_no_arm_or_family_name_is_spelled_outside_its_registry():
    """fits/, figures/ and simulations/ (less the two registries, simulations/arms/ and
    simulations/families/) hold no string constant that is an arm, router kind, expert kind or family
    name; the TopKMoE `impl` values ("dense", ...) are not arms and may be spelled where impl is."""
    names = {a.name for a in arms()} | {a.router.name for a in arms()} | {a.experts.name for a in arms()}
    names |= set(REGISTRY)
    assert {"learned", "oracle", "dense", "regression", "sraven", "softmoe"} <= names
    registries = (ROOT / "simulations" / "arms", ROOT / "simulations" / "families")
    for package in ("fits", "figures", "simulations"):
        for path in (ROOT / package).rglob("*.py"):
            if any(path.is_relative_to(r) for r in registries):
                continue
            strings = {n.value for n in ast.walk(ast.parse(path.read_text()))
                       if isinstance(n, ast.Constant) and isinstance(n.value, str)}
            if path.relative_to(ROOT).as_posix() in ("simulations/moe.py", "simulations/config.py"):
                strings -= set(IMPLS)
            assert not strings & names, (path, strings & names)
