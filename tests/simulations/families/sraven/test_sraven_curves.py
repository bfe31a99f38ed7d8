"""`python -m simulations.families.sraven.curves` at a tiny size on the CPU: the tidy curves table, the
final rows and the manifest, written together; reproducible; the GPU run's settings; one-line errors."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from simulations.families.sraven import curves

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--set", "d_model=8", "--set", "d_expert=4", "--set", "n_heads=2", "--set", "n_blocks=1",
        "--set", "batch=8", "--set", "n_experts=4", "--n-eval", "32", "--device", "cpu", "--threads", "1"]


def _run(out, *args) -> int:
    return curves.main(["--out", str(out), *TINY, *args])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("curves")
    assert _run(out, "--k", "1", "2", "--n-rules", "2", "3", "--seeds", "0", "--steps", "10",
                "--eval-every", "4", "--label", "tiny") == 0
    return out


def test_writes_a_tidy_table_rows_and_manifest(tiny):
    c = pd.read_parquet(tiny / "curves.parquet")
    assert sorted(c["step"].unique()) == [0, 4, 8, 10]  # every E steps and at the end
    assert len(c) == 4 * 4 * 2 and not c.duplicated(["k", "n_rules", "seed", "step", "split"]).any()
    assert set(c["split"]) == {"id", "ood"} and (c["label"] == "tiny").all()
    assert c[["acc", "feat_acc", "ce"]].notna().all().all()
    assert ((c["acc"] >= 0) & (c["acc"] <= c["feat_acc"] + 1e-12) & (c["feat_acc"] <= 1)).all()
    assert (c["problems_seen"] == c["step"] * 8).all()
    assert c.loc[c.step == 0, "train_ce"].isna().all() and c.loc[c.step > 0, "train_ce"].notna().all()
    rows = pd.read_parquet(tiny / "rows.parquet")
    assert len(rows) == 4 and set(rows["k"]) == {1, 2}
    end = c[(c.step == 10) & (c.split == "id")].sort_values(["n_rules", "seed", "k"])
    final = rows.sort_values(["n_rules", "seed", "k"])["feat_acc_id"].reset_index(drop=True)
    pd.testing.assert_series_equal(end["feat_acc"].reset_index(drop=True), final, check_names=False)
    manifest = json.loads((tiny / "manifest.json").read_text())
    assert manifest["eval_every"] == 4 and manifest["n_models"] == 4 and manifest["device"] == "cpu"
    assert manifest["config"]["n_rules"] == [2, 3] and manifest["config_hash"] == c["config_hash"].iloc[0]
    assert "git_commit" in manifest


def test_rerun_is_identical_and_refuses_to_overwrite_silently(tiny, tmp_path):
    assert _run(tiny, "--steps", "2") == 2  # curves already there: nothing trained, nothing replaced
    assert _run(tmp_path, "--k", "1", "2", "--n-rules", "2", "3", "--seeds", "0", "--steps", "10",
                "--eval-every", "4", "--label", "tiny") == 0
    a, b = (pd.read_parquet(d / "curves.parquet").drop(columns="wall_s") for d in (tiny, tmp_path))
    pd.testing.assert_frame_equal(a, b)


def test_the_gpu_run_is_the_paper_model_at_k_2_and_r_2_8(tmp_path):
    """--run gpu on the CPU, shrunk by overrides: its k, R, lr and interval come from the run."""
    args = ["--run", "gpu", "--steps", "2", "--eval-every", "1", "--seeds", "0"]
    assert _run(tmp_path, *args) == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    cfg = manifest["config"]
    assert cfg["k"] == [2] and cfg["n_rules"] == [2, 8] and cfg["lr"] == 0.001 and cfg["n_blocks"] == 1
    assert manifest["eval_every"] == 1
    full, every = curves.load(curves.build_parser().parse_args(["--out", "x", "--run", "gpu"]))
    assert every == 500 and full.training.steps == 20000 and full.runtime.device == "cuda"
    assert (full.model.d_model, full.model.n_blocks, full.training.batch) == (64, 3, 256)


@pytest.mark.parametrize(("args", "field"), [(["--set", "tokens=panel"], "tokens"),
                                             (["--eval-every", "0"], "eval-every"),
                                             (["--preset", "nope"], "preset"), (["--k", "9"], "k")])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, args, field):
    assert _run(tmp_path / "o", "--k", "1", *args) == 2  # k 1 fits the tiny model's 4 experts
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {field}") and "\n" not in err
    assert not (tmp_path / "o").exists()


def test_the_estimator_option_trains_each_estimator_and_early_stopping_adds_val(tmp_path):
    assert _run(tmp_path, "--k", "2", "--n-rules", "2", "--seeds", "0", "--steps", "8", "--eval-every", "4",
                "--estimator", "pathwise", "score", "--set", "score_samples=2", "--set", "patience=3",
                "--set", "val_every=4") == 0
    c = pd.read_parquet(tmp_path / "curves.parquet")
    assert set(c["estimator"]) == {"pathwise", "score"} and set(c["split"]) == {"id", "ood", "val"}
    rows = pd.read_parquet(tmp_path / "rows.parquet")
    assert sorted(rows["estimator"]) == ["pathwise", "score"] and (rows["steps_run"] == 8).all()
    assert curves.main(["--out", str(tmp_path / "bad"), *TINY, "--estimator", "swap"]) == 2
    assert not (tmp_path / "bad").exists()
