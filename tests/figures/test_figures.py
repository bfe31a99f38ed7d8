"""Every figure regenerates from a small results store (plus the real fits run on it); the files exist,
are not blank, and each CSV is exactly the DataFrame its data function returns; the CLI's errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from figure_fixtures import fixture_rows, write_regime_fits, write_store
from matplotlib import image
from PIL import Image
from softmoe_fixtures import write_softmoe_store
from sraven_fixtures import sraven_rows, write_converge_store, write_regime_curves, write_sraven_store
from statsmodels.stats.weightstats import DescrStatsW

from figures import FIGURES, Inputs, main
from figures.error_vs_k import select_slice
from figures.inputs import SOURCES
from figures.output import EXTENSIONS, save
from figures.stats import seed_summary
from fits.optimal_k import main as fits_main

NAMES = [f.NAME for f in FIGURES]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """(results dir, fits dir, out dir, softmoe dir, regime fits dir, sraven dir, sraven fits dir, sraven
    regime curves dir) with every figure rendered once by the CLI."""
    root = tmp_path_factory.mktemp("figures")
    results, fits, out = root / "results", root / "fits", root / "out"
    write_store(fixture_rows(), results)
    softmoe = write_softmoe_store(root / "softmoe")
    regime = write_regime_fits(root / "regime")
    sraven, sraven_fits = write_sraven_store(sraven_rows(), root / "sraven"), root / "sraven_fits"
    sraven_regime = write_regime_curves(root / "sraven_regime")
    sraven_curves = write_converge_store(root / "sraven_curves")
    assert fits_main([str(results), "--out", str(fits), "--bootstrap", "200"]) == 0
    assert fits_main([str(sraven), "--out", str(sraven_fits), "--bootstrap", "200"]) == 0
    assert main(["--results", str(results), "--fits", str(fits), "--softmoe", str(softmoe),
                 "--regime", str(regime), "--sraven", str(sraven), "--sraven-fits", str(sraven_fits),
                 "--sraven-regime", str(sraven_regime), "--sraven-curves", str(sraven_curves),
                 "--out", str(out)]) == 0
    return results, fits, out, softmoe, regime, sraven, sraven_fits, sraven_regime, sraven_curves


def _sraven_args(store) -> list[str]:
    return ["--sraven", str(store[5]), "--sraven-fits", str(store[6]), "--sraven-regime", str(store[7]),
            "--sraven-curves", str(store[8])]


@pytest.fixture(scope="module")
def inputs(store):
    results, fits, _, softmoe, regime, sraven, sraven_fits, sraven_regime, sraven_curves = store
    return Inputs(results=results, fits=fits, softmoe=softmoe, regime=regime, sraven=sraven,
                  sraven_fits=sraven_fits, sraven_regime=sraven_regime, sraven_curves=sraven_curves)


def test_registry_follows_the_module_convention():
    assert len(set(NAMES)) == len(NAMES) >= 5
    for fig in FIGURES:
        assert fig.NAME.isidentifier() and fig.TITLE
        assert set(fig.INPUTS) <= set(SOURCES)
        assert callable(fig.data) and callable(fig.plot)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.slow
def test_files_exist_and_png_is_not_blank(store, name):
    out = store[2]
    for ext in EXTENSIONS:
        assert (out / f"{name}.{ext}").stat().st_size > 0
    assert (out / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"
    assert min(Image.open(out / f"{name}.png").info["dpi"]) >= 149
    rgb = image.imread(out / f"{name}.png")[..., :3]
    ink = (rgb < 0.9).any(axis=-1).mean()  # share of pixels that are not (near) white
    assert 0.02 < ink < 0.6, f"{name}: {ink:.3f} of the pixels are drawn"
    assert not list(out.glob(".*")), "temporary files left behind"


@pytest.mark.parametrize("fig", FIGURES, ids=NAMES)
@pytest.mark.slow
def test_csv_matches_the_data_function(store, inputs, fig):
    df = fig.data(inputs)
    assert len(df) > 0
    csv = pd.read_csv(store[2] / f"{fig.NAME}.csv")
    assert list(csv.columns) == list(df.columns)
    pd.testing.assert_frame_equal(csv, df.reset_index(drop=True), check_dtype=False)


@pytest.mark.slow
def test_figure1_k_star_is_the_fits_discrete_k_star(inputs):
    """The ringed k* of figure 1's OOD panel is the fits' per-cell k* (argmin of the seed mean) wherever
    the fits have the cell: they leave out s = 1, which has no held-out combinations."""
    from figures import error_vs_k

    df = error_vs_k.data(inputs)
    stars = df[(df["panel"] == "OOD") & df["is_k_star"]].set_index("complexity")["k"]
    cells = pd.DataFrame(inputs.fits["cells"])
    ref = select_slice(inputs.results).iloc[0]
    cells = cells[(cells["n_train"] == ref["n_train"]) & (cells["width"] == ref["width"])]
    assert len(stars) == 4 and len(cells) == 3 and set(stars.index) - set(cells["complexity"]) == {1}
    for c in cells.itertuples():
        assert stars[c.complexity] == c.k_star


@pytest.mark.slow
def test_law_curve_reproduces_the_fitted_exponents(inputs):
    """Figure 2's law line of every arm has the slope the fits report for that arm, and its band brackets
    it; the learned arm's is the top-level law."""
    from figures import kstar_complexity

    df = kstar_complexity.data(inputs)
    laws = {arm: block["law"] for arm, block in inputs.fits["by_router"].items()}
    assert laws["learned"] == inputs.fits["law"]
    assert set(df.loc[df["kind"] == "law", "arm"]) == set(laws) == {"learned", "oracle", "teacher_experts"}
    for (arm, _), g in df[df["kind"] == "law"].groupby(["arm", "n_train"]):
        slope = np.polyfit(np.log(g["complexity"]), np.log(g["k_star"]), 1)[0]
        assert slope == pytest.approx(laws[arm]["exponents"]["complexity"]["estimate"], rel=1e-6)
        assert (g["ci_lo"] < g["k_star"]).all() and (g["k_star"] < g["ci_hi"]).all()


@pytest.mark.slow
def test_k_star_figure_has_the_fits_cells_of_every_arm(inputs):
    """Figure 2's points are each arm's k* as the fits have it per cell: the estimand of the arm's law
    (the argmin for the oracle, the smooth-fit k* otherwise) with its CI."""
    from figures import kstar_complexity

    df = kstar_complexity.data(inputs)
    for arm, block in inputs.fits["by_router"].items():
        col = {"continuous": "k_star_cont", "discrete": "k_star"}[block["k_source"]]
        cells = pd.DataFrame(block["cells"]).set_index(["complexity", "n_train", "width"])
        drawn = df[(df["kind"] == "cell") & (df["arm"] == arm)]
        assert len(drawn) > 0 and drawn["label"].nunique() == 1
        for r in drawn.itertuples():
            ref = cells.loc[(r.complexity, r.n_train, r.width)]
            assert r.k_star == pytest.approx(ref[col])
            assert [r.ci_lo, r.ci_hi] == pytest.approx(list(ref[f"{col}_ci"]))


def test_seed_ci_matches_statsmodels():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"g": np.repeat([0, 1], 5), "v": rng.normal(size=10)})
    df.loc[9, "v"] = np.nan  # a diverged seed: left out and counted
    out = seed_summary(df, ["g"], "v")
    for g, row in out.set_index("g").iterrows():
        v = df.loc[df["g"] == g, "v"].dropna().to_numpy()
        lo, hi = DescrStatsW(v).tconfint_mean(alpha=0.05)
        assert (row["ci_lo"], row["ci_hi"]) == pytest.approx((lo, hi))
    assert out["n_nan"].tolist() == [0, 1]


@pytest.mark.slow
def test_draws_what_it_can_and_lists_the_rest(store, tmp_path, capsys):
    """Grid results and fits but no Soft MoE results: the five other figures are drawn; the two Soft MoE
    figures are listed as skipped, each with the command that makes its input; exit 0."""
    out, none = tmp_path / "out", tmp_path / "nosoftmoe"
    assert main(["--results", str(store[0]), "--fits", str(store[1]), "--softmoe", str(none),
                 "--regime", str(store[4]), *_sraven_args(store), "--out", str(out)]) == 0
    drawn = [n for n in NAMES if not n.startswith("softmoe")]
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.{e}" for n in drawn for e in EXTENSIONS)
    assert capsys.readouterr().err.strip().splitlines() == [
        f"figures: skipped softmoe_single_expert: missing {none / 'single_expert' / 'results.parquet'} "
        "(run: python -m simulations.families.softmoe single-expert)",
        f"figures: skipped softmoe_expert_drop: missing {none / 'expert_drop' / 'results.parquet'} "
        "(run: python -m simulations.families.softmoe expert-drop)",
    ]


@pytest.mark.slow
def test_missing_grid_results_name_the_grid_first(store, tmp_path, capsys):
    """Without grid results (and fits) only the Soft MoE, regime and SRAVEN figures are drawn; every
    skipped figure names the grid command first, the k* figures then the fits command."""
    results, fits, out = tmp_path / "noresults", tmp_path / "nofits", tmp_path / "out"
    assert main(["--results", str(results), "--fits", str(fits), "--softmoe", str(store[3]),
                 "--regime", str(store[4]), *_sraven_args(store), "--out", str(out)]) == 0
    assert {p.stem for p in out.iterdir()} == {"softmoe_single_expert", "softmoe_expert_drop", "regime_map",
                                              "sraven_accuracy", "sraven_kstar", "sraven_regime",
                                              "sraven_converge"}
    err = capsys.readouterr().err.strip().splitlines()
    grid = f"missing {results} (run: python -m simulations.grid)"
    assert len(err) == len([f for f in FIGURES if "results" in f.INPUTS]) >= 5
    for line in err:
        assert line.startswith("figures: skipped ") and line.split(": ", 2)[2].startswith(grid)
    kstar = [line for line in err if "kstar" in line]
    assert len(kstar) == len([f for f in FIGURES if f.NAME.startswith("kstar")]) == 3
    assert all(line.endswith(f"; missing {fits / 'optimal_k.json'} (run: python -m fits.optimal_k)")
               for line in kstar)


def test_nothing_to_draw_exits_2(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--results", str(tmp_path / "r"), "--fits", str(tmp_path / "f"), "--softmoe",
                 str(tmp_path / "s"), "--regime", str(tmp_path / "g"), "--sraven", str(tmp_path / "v"),
                 "--sraven-fits", str(tmp_path / "vf"), "--sraven-regime", str(tmp_path / "vr"),
                 "--sraven-curves", str(tmp_path / "vc"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == len(NAMES) + 1 and err[-1].startswith("figures: nothing to draw")
    assert not out.exists()


@pytest.mark.slow
def test_only_fails_when_a_named_figure_cannot_be_drawn(store, tmp_path, capsys):
    """--only names two figures, one lacks its fits: exit 2, one line, and the other is not drawn either."""
    out = tmp_path / "out"
    assert main(["--results", str(store[0]), "--fits", str(tmp_path / "nofits"), "--out", str(out),
                 "--only", "error_vs_k", "kstar_complexity"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"figures: cannot draw kstar_complexity: missing {tmp_path / 'nofits' / 'optimal_k.json'} "
                   "(run: python -m fits.optimal_k)"]
    assert not out.exists()


@pytest.mark.slow
def test_only_needs_only_its_inputs(store, tmp_path):
    out = tmp_path / "out"
    assert main(["--results", str(store[0]), "--fits", str(tmp_path / "nofits"), "--out", str(out),
                 "--only", "error_vs_k"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [f"error_vs_k.{e}" for e in sorted(EXTENSIONS)]


def test_unknown_only_name_lists_the_allowed_ones(tmp_path, capsys):
    assert main(["--only", "nope", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope" in err[0] and all(n in err[0] for n in NAMES)
    assert not (tmp_path / "out").exists()


def test_list_prints_names_and_titles(capsys):
    assert main(["--list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t") for line in lines] == [[f.NAME, f.TITLE] for f in FIGURES]


def test_save_is_atomic_when_a_write_fails(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    fig = plt.figure()
    df = pd.DataFrame({"a": [1]})
    (tmp_path / "x.png").write_bytes(b"old")
    monkeypatch.setattr(pd.DataFrame, "to_csv", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        save("x", df, fig, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]
    assert (tmp_path / "x.png").read_bytes() == b"old"



def test_module_requires_name_their_own_command(tmp_path):
    """A figure's REQUIRES entries replace its source's generic check, each with its own command."""
    inputs = Inputs(softmoe=tmp_path / "softmoe")
    (tmp_path / "softmoe" / "expert_drop").mkdir(parents=True)
    (tmp_path / "softmoe" / "expert_drop" / "results.parquet").write_bytes(b"x")
    need = [("softmoe", "single_expert/results.parquet",
             "python -m simulations.families.softmoe single-expert"),
            ("softmoe", "expert_drop/results.parquet")]
    assert inputs.missing(["softmoe"], need) == [
        f"figures: missing {tmp_path / 'softmoe' / 'single_expert' / 'results.parquet'} "
        "(run: python -m simulations.families.softmoe single-expert)"
    ]


@pytest.mark.slow
def test_k_star_figures_without_a_fitted_law(store, tmp_path):
    """When the fits could not fit a law, figures 2-3 still draw the cells and the theory: figure 3
    without the top-level law, figure 2 without one arm's law (its label says so)."""
    doc = json.loads((store[1] / "optimal_k.json").read_text())
    doc["law"] = None
    (tmp_path / "optimal_k.json").write_text(json.dumps(doc))
    shutil.copy(store[1] / "law_band.parquet", tmp_path)  # the rest of the fits output
    arms = pd.read_parquet(store[1] / "kstar_arms.parquet")
    arms[(arms["arm"] != "oracle") | (arms["kind"] != "law")].to_parquet(tmp_path / "kstar_arms.parquet")
    out = tmp_path / "out"
    assert main(["--results", str(store[0]), "--fits", str(tmp_path), "--out", str(out),
                 "--only", "kstar_complexity", "kstar_data_width"]) == 0
    df = pd.read_csv(out / "kstar_data_width.csv")
    assert df.loc[df["kind"] == "law", "k_star"].isna().all()
    assert df.loc[df["kind"] != "law", "k_star"].notna().all()
    df = pd.read_csv(out / "kstar_complexity.csv")
    assert set(df.loc[df["kind"] == "law", "arm"]) == {"learned", "teacher_experts"}
    labels = df.groupby("arm")["label"].first()
    assert labels["oracle"].endswith("law not fitted") and not labels["learned"].endswith("law not fitted")
    assert df.loc[df["kind"] != "law", "k_star"].notna().all()
