"""`python -m figures` on bad input: a one-line error, exit code 2 and nothing written, never a traceback.

Each case copies a small, good set of inputs (results store, fits, Soft MoE results) into tmp_path and
breaks one thing: an empty, truncated or corrupt Parquet or JSON file, one with the wrong columns or keys,
fits of other results, an unknown figure, an output path that is a file or lies under one (tests run as
root, for whom permission bits do not stop a write, so "unwritable" is made by a regular file in the
path), and a write that fails half-way.
"""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from figure_fixtures import fixture_rows, write_regime_fits, write_store
from softmoe_fixtures import write_softmoe_store
from sraven_fixtures import sraven_rows, write_converge_store, write_regime_curves, write_sraven_store

from figures import main
from fits.optimal_k import main as fits_main

pytestmark = pytest.mark.slow  # every test needs `good`: the fits run on two fixture stores


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """Good inputs: {source: directory}."""
    root = tmp_path_factory.mktemp("good")
    results = write_store(fixture_rows(), root / "results")
    assert fits_main([str(results), "--out", str(root / "fits"), "--bootstrap", "20"]) == 0
    sraven = write_sraven_store(sraven_rows(rules=(2, 4, 8), n_seeds=3), root / "sraven")
    assert fits_main([str(sraven), "--out", str(root / "sraven_fits"), "--bootstrap", "20"]) == 0
    return {"results": results, "fits": root / "fits", "softmoe": write_softmoe_store(root / "softmoe"),
            "regime": write_regime_fits(root / "regime"), "sraven": sraven,
            "sraven_fits": root / "sraven_fits", "sraven_regime": write_regime_curves(root / "sraven_regime"),
            "sraven_curves": write_converge_store(root / "sraven_curves")}


@pytest.fixture
def inputs(good, tmp_path):
    """A private copy of the good inputs, to break."""
    return {name: shutil.copytree(path, tmp_path / name) for name, path in good.items()}


def run(inputs, out, *extra) -> int:
    argv = [a for name, path in inputs.items() for a in (f"--{name.replace('_', '-')}", str(path))]
    return main([*argv, "--out", str(out), *extra])


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


def damage(path, how: str) -> None:
    data = path.read_bytes()
    path.write_bytes({"empty": b"", "truncated": data[: len(data) // 2],
                      "corrupt": b"\x00\xffnot what it should be\x9c" * 8}[how])


FILES = {  # source -> (file to break, a figure that reads it)
    "results": (lambda d: sorted(d.glob("bundle-*.parquet"))[0], "error_vs_k"),
    "fits": (lambda d: d / "optimal_k.json", "kstar_complexity"),
    "softmoe": (lambda d: d / "expert_drop" / "results.parquet", "softmoe_expert_drop"),
    "sraven": (lambda d: sorted(d.glob("bundle-*.parquet"))[0], "sraven_accuracy"),
    "sraven_fits": (lambda d: d / "optimal_k.json", "sraven_kstar"),
    "regime": (lambda d: d / "regime.parquet", "regime_map"),
    "sraven_regime": (lambda d: d / "baseline" / "curves.parquet", "sraven_regime"),
    "sraven_curves": (lambda d: sorted(d.glob("curves-*.parquet"))[0], "sraven_converge"),
}


@pytest.mark.parametrize("how", ["empty", "truncated", "corrupt"])
@pytest.mark.parametrize("source", list(FILES))
def test_damaged_input_file(inputs, tmp_path, capsys, source, how):
    locate, figure = FILES[source]
    path = locate(inputs[source])
    damage(path, how)
    out = tmp_path / "out"
    assert run(inputs, out, "--only", figure) == 2
    err = one_line_error(capsys)
    assert str(path) in err or str(inputs[source]) in err
    assert not out.exists()


def test_damaged_input_writes_no_other_figure(inputs, tmp_path, capsys):
    """Without --only: the Soft MoE file is corrupt; the five good figures are not written either."""
    damage(inputs["softmoe"] / "single_expert" / "results.parquet", "truncated")
    out = tmp_path / "out"
    assert run(inputs, out) == 2
    assert "single_expert" in one_line_error(capsys)
    assert not out.exists()


def test_results_store_without_rows(inputs, tmp_path, capsys):
    for f in inputs["results"].glob("bundle-*.parquet"):
        pd.read_parquet(f).iloc[:0].to_parquet(f, index=False)
    out = tmp_path / "out"
    assert run(inputs, out, "--only", "p2_bound") == 2
    assert "holds no rows" in one_line_error(capsys)
    assert not out.exists()


def test_results_store_lacking_columns(inputs, tmp_path, capsys):
    for f in inputs["results"].glob("bundle-*.parquet"):
        pd.read_parquet(f).drop(columns=["test_mse_ood"]).to_parquet(f, index=False)
    out = tmp_path / "out"
    assert run(inputs, out, "--only", "tradeoff") == 2
    assert "test_mse_ood" in one_line_error(capsys)
    assert not out.exists()


def test_softmoe_results_lacking_columns(inputs, tmp_path, capsys):
    f = inputs["softmoe"] / "single_expert" / "results.parquet"
    pd.read_parquet(f).drop(columns=["final_loss"]).to_parquet(f, index=False)
    out = tmp_path / "out"
    assert run(inputs, out, "--only", "softmoe_single_expert") == 2
    err = one_line_error(capsys)
    assert "softmoe_single_expert" in err and "final_loss" in err
    assert not out.exists()


@pytest.mark.parametrize("edit, expected", [
    (lambda doc: [doc], "expected a JSON object"),
    (lambda doc: {k: v for k, v in doc.items() if k != "cells"}, "cells"),
    (lambda doc: {**doc, "cells": [{k: v for k, v in c.items() if k != "k_star_ci"} for c in doc["cells"]]},
     "k_star_ci"),
    (lambda doc: {**doc, "law": {"params": {}}}, "'law'"),
])
def test_fits_file_of_the_wrong_shape(inputs, tmp_path, capsys, edit, expected):
    path = inputs["fits"] / "optimal_k.json"
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    out = tmp_path / "out"
    assert run(inputs, out, "--only", "kstar_data_width") == 2
    err = one_line_error(capsys)
    assert str(path) in err and expected in err
    assert not out.exists()


@pytest.mark.parametrize("table, figure", [("kstar_arms.parquet", "kstar_complexity"),
                                           ("law_band.parquet", "kstar_data_width"),
                                           ("bound_curves.parquet", "theory_fit"),
                                           ("theory_terms.parquet", "theory_terms")])
def test_fits_without_the_figure_tables(inputs, tmp_path, capsys, table, figure):
    """Fits written before the figure tables existed: the figure names the missing file and the command."""
    (inputs["fits"] / table).unlink()
    out = tmp_path / "out"
    assert run(inputs, out, "--only", figure) == 2
    err = one_line_error(capsys)
    assert str(inputs["fits"] / table) in err and "python -m fits.optimal_k" in err
    assert not out.exists()


@pytest.mark.parametrize("table, figure, keep", [
    ("law_band.parquet", "kstar_data_width", lambda t: t[t["x"] != "n_train"]),
    ("kstar_arms.parquet", "kstar_complexity", lambda t: t[t["arm"] != "oracle"]),
    ("bound_curves.parquet", "theory_fit", lambda t: t[t["k"] > 1]),
])
def test_fits_of_other_cells(inputs, tmp_path, capsys, table, figure, keep):
    """A figure table that lacks curves or points the figure draws (fits of other cells) is refused."""
    path = inputs["fits"] / table
    keep(pd.read_parquet(path)).to_parquet(path)
    out = tmp_path / "out"
    assert run(inputs, out, "--only", figure) == 2
    err = one_line_error(capsys)
    assert str(path) in err and "other" in err and "python -m fits.optimal_k" in err
    assert not out.exists()


def test_unknown_figure(inputs, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(inputs, out, "--only", "error_vs_k", "kstar") == 2
    err = one_line_error(capsys)
    assert "'kstar'" in err and "kstar_complexity" in err
    assert not out.exists()


def test_output_path_is_a_file(inputs, tmp_path, capsys):
    out = tmp_path / "out"
    out.write_text("keep")
    assert run(inputs, out, "--only", "p2_bound") == 2
    assert "is not a directory" in one_line_error(capsys)
    assert out.read_text() == "keep"


def test_output_path_under_a_file(inputs, tmp_path, capsys):
    """An output directory that cannot be created: a regular file stands where a parent should be (the
    tests run as root, so a read-only permission would not stop the write)."""
    blocker = tmp_path / "file"
    blocker.write_text("keep")
    assert run(inputs, blocker / "figs" / "out", "--only", "p2_bound") == 2
    err = one_line_error(capsys)
    assert "--out" in err and str(blocker) in err
    assert blocker.read_text() == "keep"


def test_write_failing_half_way_writes_nothing(inputs, tmp_path, capsys, monkeypatch):
    """The second figure's PDF cannot be written (a full disk, say): no file of the first one is kept."""
    from matplotlib.figure import Figure

    calls = {"n": 0}
    savefig = Figure.savefig

    def failing(self, fname, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # figure 1: png, pdf; figure 2: png, then this pdf
            raise OSError(28, "No space left on device")
        return savefig(self, fname, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", failing)
    out = tmp_path / "new" / "out"
    assert run(inputs, out, "--only", "p2_bound", "softmoe_single_expert") == 2
    assert "No space left on device" in one_line_error(capsys)
    assert calls["n"] == 4
    assert not (tmp_path / "new").exists()
