"""P3's two experiments end to end at tiny sizes, their output schema, and the CLI's bad-input handling."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from softmoe_fixtures import DROP_RESULT_COLUMNS, SINGLE_RESULT_COLUMNS, TINY_DROP, TINY_SINGLE

from simulations.families.softmoe import __main__ as cli
from simulations.families.softmoe import expert_drop, single_expert
from simulations.families.softmoe.digits import N_CLASSES, make_digits, tokenize

SINGLE_CURVE_COLUMNS = ["n_tokens", "token_dim", "n_experts", "seed", "step", "train_loss"]
SINGLE_SUMMARY_COLUMNS = [
    "tokenization", "n_tokens", "token_dim", "n_experts", "expert_width", "n_seeds", "initial_loss",
    "final_loss_mean", "final_loss_std", "final_loss_min", "relative_loss_mean", "baseline_mse",
]
DROP_SUMMARY_COLUMNS = [
    "n_experts", "k", "keep_frac", "n_seeds", "accuracy_all", "accuracy_algorithm1", "accuracy_random_mean",
    "accuracy_random_std", "z_score", "z_min", "beats_all_draws",
]


@pytest.fixture
def tiny_presets(monkeypatch):
    tiny = {"single-expert": TINY_SINGLE, "expert-drop": TINY_DROP}
    monkeypatch.setattr(cli, "preset_config", lambda experiment, name: tiny[experiment])


def test_single_expert_cli_writes_documented_schema(tiny_presets, tmp_path, capsys):
    out = tmp_path / "single"
    assert cli.main(["single-expert", "--out", str(out), "--no-progress"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["curves.parquet", "manifest.json", "results.parquet",
                                                       "summary.csv"]
    results = pd.read_parquet(out / "results.parquet")
    assert list(results.columns) == SINGLE_RESULT_COLUMNS
    assert len(results) == 2 * 2 * 2  # tokenizations x n x seeds
    # Fixed total expert parameters: hidden width 10 d / n, so n * 2 d h = 20 d^2 for every n.
    weights = results["n_experts"] * 2 * results["token_dim"] * results["expert_width"]
    assert (weights == 20 * results["token_dim"] ** 2).all()
    assert list(pd.read_parquet(out / "curves.parquet").columns) == SINGLE_CURVE_COLUMNS
    assert list(pd.read_csv(out / "summary.csv").columns) == SINGLE_SUMMARY_COLUMNS
    manifest = json.loads((out / "manifest.json").read_text())
    for key in ("torch_version", "git_commit", "device", "seeds", "config", "preset"):
        assert key in manifest
    assert manifest["config"]["steps"] == 6
    assert "monotone_decreasing" in capsys.readouterr().out


def test_single_expert_is_deterministic_and_paired():
    a, _ = single_expert.run(TINY_SINGLE, progress=False)
    b, _ = single_expert.run(TINY_SINGLE, progress=False)
    pd.testing.assert_frame_equal(a, b)
    # The baseline (variance of ||X|| on the shared eval set) is ~ 5 * (10 - E[chi_10]^2) ~ 2.45.
    assert a["baseline_mse"].nunique() == 1
    assert a["baseline_mse"].iloc[0] == pytest.approx(2.45, rel=0.35)


def test_expert_drop_cli_writes_documented_schema(tiny_presets, tmp_path):
    out = tmp_path / "drop"
    assert cli.main(["expert-drop", "--out", str(out), "--no-progress"]) == 0
    results = pd.read_parquet(out / "results.parquet")
    assert list(results.columns) == DROP_RESULT_COLUMNS
    # n = 2: all + k=1 (alg1 + 3 draws); n = 8: all + k in {4, 2, 1}; two seeds each.
    assert len(results) == 2 * ((1 + 1 * 4) + (1 + 3 * 4))
    assert set(results["method"]) == {"all", "algorithm1", "random"}
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.columns) == DROP_SUMMARY_COLUMNS
    assert sorted(zip(summary["n_experts"], summary["k"], strict=True)) == [(2, 1), (8, 1), (8, 2), (8, 4)]
    assert (summary["accuracy_random_std"] >= 0).all()


def test_expert_drop_summary_zscore():
    rows = [{"n_experts": 4, "k": 2, "seed": 0, "method": "algorithm1", "draw": -1, "accuracy": 0.9}]
    rows += [{"n_experts": 4, "k": 2, "seed": 0, "method": "random", "draw": i, "accuracy": acc}
             for i, acc in enumerate([0.5, 0.6, 0.7])]
    rows += [{"n_experts": 4, "k": 4, "seed": 0, "method": "all", "draw": -1, "accuracy": 0.95}]
    summary = expert_drop.summarize(pd.DataFrame(rows))
    assert summary["z_score"].iloc[0] == pytest.approx((0.9 - 0.6) / 0.1)
    assert summary["accuracy_all"].iloc[0] == 0.95
    assert summary["beats_all_draws"].iloc[0] == 1.0


def test_digits_are_deterministic_and_separable():
    x1, y1 = make_digits(600, 16, 0.0, np.random.default_rng(0))
    x2, y2 = make_digits(600, 16, 0.0, np.random.default_rng(0))
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert set(y1) == set(range(N_CLASSES))
    assert tokenize(x1, 4).shape == (600, 4, 64)
    # Nearest class mean on clean digits: far above the 10 % chance level.
    xt, yt = make_digits(400, 16, 0.0, np.random.default_rng(1))
    means = np.stack([x1[y1 == c].reshape(-1, 256).mean(0) for c in range(N_CLASSES)])
    pred = ((xt.reshape(-1, 1, 256) - means[None]) ** 2).sum(-1).argmin(1)
    assert (pred == yt).mean() > 0.6


@pytest.mark.parametrize(
    "argv, field",
    [
        (["single-expert", "--preset", "huge"], "--preset"),
        (["expert-sort"], "experiment"),
        (["expert-drop", "--threads", "-1"], "--threads"),
    ],
)
def test_cli_bad_input_is_one_line_and_writes_nothing(argv, field, tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        cli.main([*argv, "--out", str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and field in err
    if field == "--preset":
        assert "'quick'" in err and "'paper'" in err
    assert not out.exists()


def test_cli_refuses_non_empty_out_without_overwrite(tiny_presets, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    with pytest.raises(SystemExit) as exc:
        cli.main(["single-expert", "--out", str(out)])
    assert exc.value.code == 2
    assert "--overwrite" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert cli.main(["single-expert", "--out", str(out), "--overwrite", "--no-progress"]) == 0
    assert (out / "results.parquet").exists()


@pytest.mark.parametrize("under", [False, True], ids=["out-is-a-file", "out-under-a-file"])
def test_cli_refuses_an_out_that_is_or_lies_under_a_file(tmp_path, capsys, under):
    """An --out that is a regular file, or cannot be created because a regular file stands where a parent
    should be (tests run as root, so permission bits would not stop the write), fails before anything
    runs: one line, exit 2, nothing written."""
    blocker = tmp_path / "file"
    blocker.write_text("keep")
    with pytest.raises(SystemExit) as exc:
        cli.main(["single-expert", "--out", str(blocker / "out" if under else blocker)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--out" in err[0] and str(blocker) in err[0]
    assert ("lies under" if under else "is not a directory") in err[0]
    assert blocker.read_text() == "keep" and sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_cli_failed_write_leaves_nothing(tiny_presets, tmp_path, capsys, monkeypatch):
    """summary.csv cannot be written (a full disk, say) after results.parquet was: one line, exit 2, and
    neither file, nor the manifest, nor the new directory is left."""
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", full_disk)
    out = tmp_path / "new" / "out"
    assert cli.main(["expert-drop", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"python -m simulations.families.softmoe: error: cannot write to {out}: "
                   "[Errno 28] No space left on device"]
    assert list(tmp_path.iterdir()) == []


def test_config_validation():
    with pytest.raises(ValueError, match="n_experts"):
        expert_drop.ExpertDropConfig(n_experts=(3,), total_width=16)
    with pytest.raises(ValueError, match="tokenizations"):
        single_expert.SingleExpertConfig(tokenizations=((3, 3),))
    assert expert_drop.ExpertDropConfig().ks(8) == [4, 2, 1]
    assert expert_drop.ExpertDropConfig().ks(2) == [1]
