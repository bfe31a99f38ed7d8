"""Figure 6 (P3): both Soft MoE figures render from a tiny store written by the real CLI, and their CSV is
exactly the data function's DataFrame. The store is `softmoe_fixtures.write_softmoe_store`, which the
figures' other tests share."""

from __future__ import annotations

import pandas as pd
import pytest
from softmoe_fixtures import TINY_DROP, write_softmoe_store

from figures import softmoe_expert_drop, softmoe_single_expert
from figures.cli import main as figures_main
from figures.inputs import Inputs

FIGS = (softmoe_single_expert, softmoe_expert_drop)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("softmoe_figs")
    store, out = write_softmoe_store(root / "softmoe"), root / "out"
    names = [f.NAME for f in FIGS]
    assert figures_main(["--softmoe", str(store), "--out", str(out), "--only", *names]) == 0
    return store, out


@pytest.mark.parametrize("fig", FIGS, ids=[f.NAME for f in FIGS])
@pytest.mark.slow
def test_figure_csv_is_its_data(rendered, fig):
    store, out = rendered
    df = fig.data(Inputs(softmoe=store))
    assert len(df) > 0
    for ext in ("png", "pdf"):
        assert (out / f"{fig.NAME}.{ext}").stat().st_size > 0
    csv = pd.read_csv(out / f"{fig.NAME}.csv")
    pd.testing.assert_frame_equal(csv, df.reset_index(drop=True), check_dtype=False)


@pytest.mark.slow
def test_expert_drop_figure_curves_end_at_full_accuracy(rendered):
    df = softmoe_expert_drop.data(Inputs(softmoe=rendered[0]))
    ends = df[df["keep_frac"] == 1.0].pivot(index="n_experts", columns="method", values="accuracy")
    assert (ends["algorithm1"] == ends["random"]).all()
    assert set(df["n_experts"]) == set(TINY_DROP.n_experts)


def test_missing_softmoe_results_name_the_command(tmp_path, capsys):
    assert figures_main(["--softmoe", str(tmp_path / "none"), "--out", str(tmp_path / "out"),
                         "--only", "softmoe_expert_drop"]) == 2
    assert "python -m simulations.families.softmoe expert-drop" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
