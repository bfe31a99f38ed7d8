"""The `sraven_regime` figure from synthetic learning-curve directories (tests/sraven_fixtures.py): its
table is the seed mean of each setting's OOD curves with the right chance, and a missing parent directory
skips the figure with the command that makes it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sraven_fixtures import REGIME, regime_curves, write_regime_curves

from figures import Inputs, main, sraven_regime
from figures.output import EXTENSIONS


@pytest.fixture(scope="module")
def curves(tmp_path_factory):
    return write_regime_curves(tmp_path_factory.mktemp("regime") / "sraven-regime")


def test_table_is_the_seed_mean_of_each_settings_ood_curve(curves):
    df = sraven_regime.data(Inputs(sraven_regime=curves))
    assert set(df["series"]) == {"baseline", "V6", "F2", "old"}  # "old" stored no label: its directory's
    assert set(df["metric"]) == {"acc", "feat_acc"} and (df["n_seeds"] == 2).all()
    for i, (name, spec) in enumerate(REGIME.items()):
        raw = regime_curves(*(spec or ("", None, None)), rng_seed=i)
        raw = raw[raw["split"] == "ood"]
        F, V = (spec[1], spec[2]) if spec else (4, 8)
        for metric in ("acc", "feat_acc"):
            got = df[(df["series"] == name) & (df["metric"] == metric)].set_index("step")
            np.testing.assert_allclose(got["mean"], raw.groupby("step")[metric].mean().loc[got.index])
            assert (got["problems_seen"] == got.index * 64).all()
            chance = 1 / V if metric == "feat_acc" else float(V) ** -F
            assert got["chance"].to_numpy() == pytest.approx(np.full(len(got), chance))


def test_several_k_or_r_in_one_directory_get_a_line_each(tmp_path):
    root = tmp_path / "regime"
    write_regime_curves(root, {"mixed": ("mixed", 4, 8)})
    table = pd.read_parquet(root / "mixed" / "curves.parquet")
    pd.concat([table, table.assign(k=3)]).to_parquet(root / "mixed" / "curves.parquet", index=False)
    df = sraven_regime.data(Inputs(sraven_regime=root))
    assert set(df["series"]) == {"mixed k=2 R=4", "mixed k=3 R=4"}


def test_cli_draws_it_and_a_missing_input_names_the_make_target(curves, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--sraven-regime", str(curves), "--only", "sraven_regime", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(f"sraven_regime.{e}" for e in EXTENSIONS)
    csv = pd.read_csv(out / "sraven_regime.csv")
    assert len(csv) == 4 * 2 * 3  # settings x metrics x evaluations
    capsys.readouterr()
    none = tmp_path / "none"
    assert main(["--sraven-regime", str(none), "--only", "sraven_regime", "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"figures: cannot draw sraven_regime: missing {none} (run: make sraven-regime)"]
