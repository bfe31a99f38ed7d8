"""Inference-time k on SRAVEN: every trained model evaluated at each k_eval = 1..T without retraining,
stored as the k_eval table beside the bundle files, equal to the rows at the training k, and read by the
fits as the inference-time answer per R (error = 1 - accuracy)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fits.optimal_k import main as fit_main
from simulations import grid, results
from simulations.families.sraven import (
    ModelSpec,
    SravenSettings,
    SravenTransformer,
    sample,
    to_tokens,
    train_bundle,
)
from simulations.families.sraven.config import validate

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"name": "tiny", "k": [1, 2, 4], "n_rules": [2, 3], "seeds": [0, 1], "n_experts": 4, "d_model": 8,
        "d_expert": 4, "n_heads": 2, "n_blocks": 2, "steps": 12, "batch": 8, "n_eval": 32,
        "max_models_per_bundle": 3, "device": "cpu", "workers": 1}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    out = tmp_path_factory.mktemp("sraven-keval")
    grid.run_grid(validate(dict(TINY)), out, progress=False)
    return out


def test_one_row_per_cell_seed_and_k_eval(store):
    rows, long = results.load(store), results.load_k_eval(store)
    assert len(results.bundle_files(store)) == len(list(store.glob(results.K_EVAL_GLOB))) == 4
    assert len(long) == len(rows) * 4 and not long.duplicated(["cell_id", "seed", "k_eval"]).any()
    assert set(long["k_eval"]) == {1, 2, 3, 4}
    assert not any(c.startswith("k_eval_") for c in rows.columns)  # the arrays live in the long table only
    assert long[["acc_id", "acc_ood", "feat_acc_id", "feat_acc_ood"]].notna().all().all()
    assert (long["family"] == "sraven").all()


def test_k_eval_at_the_training_k_is_the_stored_accuracy(store):
    long = results.load_k_eval(store)
    same = long[long.k_eval == long.k]
    rows = results.load(store).set_index(["cell_id", "seed"])
    assert len(same) == len(rows)
    stored = rows.loc[list(zip(same.cell_id, same.seed, strict=True))]
    for col in ("acc_id", "acc_ood", "feat_acc_id", "feat_acc_ood"):
        np.testing.assert_array_equal(same[col].to_numpy(), stored[col].to_numpy(), err_msg=col)


def test_other_k_eval_give_other_predictions(store):
    """Not a copy of the training-k value: across k_eval some model's accuracy moves."""
    long = results.load_k_eval(store)
    assert long.groupby(["cell_id", "seed"])["feat_acc_id"].nunique().max() > 1


def test_forward_at_k_equals_a_model_built_with_that_k():
    """model(x, k=j) gives exactly what the same weights give with every model's own k set to j, and
    leaves the models' k alone."""
    model = SravenTransformer([1, 3], [0, 1], d_model=8, n_heads=2, n_blocks=2, n_experts=4, d_expert=4,
                              impl="dense")
    x = torch.as_tensor(np.stack([to_tokens(sample(16, 3, "test_id", s))[0] for s in (0, 1)]))
    for j in range(1, 5):
        other = SravenTransformer([j, j], [0, 1], d_model=8, n_heads=2, n_blocks=2, n_experts=4, d_expert=4,
                                  impl="dense")
        torch.testing.assert_close(model(x, k=j), other(x), rtol=0, atol=0)
        assert model.moes[0].router.k.tolist() == [1, 3]
    with pytest.raises(ValueError, match="reference"):
        model(x, reference=True, k=2)


def test_diverged_models_have_nan_k_eval(monkeypatch):
    """A model whose training CE becomes non-finite has NaN k_eval accuracies, as its row's metrics."""
    specs = [ModelSpec(k=1, n_rules=2, seed=0), ModelSpec(k=2, n_rules=2, seed=0)]
    st = SravenSettings(steps=2, batch=4, n_eval=8, d_model=8, d_expert=4, n_heads=2, n_blocks=1, n_experts=4,
                        lr=1e30)
    df = train_bundle(specs, st)
    for col in ("k_eval_acc_id", "k_eval_feat_acc_ood"):
        for d, v in zip(df["diverged"], df[col], strict=True):
            assert len(v) == 4 and (np.isnan(v).all() if d else np.isfinite(v).all())


def test_k_eval_off_leaves_the_rows_alone():
    specs = [ModelSpec(k=k, n_rules=2, seed=0) for k in (1, 2)]
    st = SravenSettings(steps=3, batch=4, n_eval=16, d_model=8, d_expert=4, n_heads=2, n_blocks=1,
                        n_experts=4)
    on = train_bundle(specs, st)
    off = train_bundle(specs, SravenSettings(**{**vars(st), "k_eval": False}))
    assert "k_eval_acc_id" in on.columns and "k_eval_acc_id" not in off.columns
    same = [c for c in off.columns if c not in ("wall_s", "k_eval")]
    assert on[same].equals(off[same])


def test_fits_report_the_inference_time_answer_per_r(store, tmp_path):
    assert fit_main([str(store), "--out", str(tmp_path / "f"), "--bootstrap", "50", "--no-surface"]) == 0
    doc = json.loads((tmp_path / "f" / "optimal_k.json").read_text())
    block = doc["k_eval"]
    assert block["available"] and block["metric"] == "error_ood"
    assert sorted(r["complexity"] for r in block["by_complexity"]) == [2, 3]
    assert {c["k_train"] for c in block["cells"]} == {1, 2, 4}
    assert all(1 <= c["best_k_eval"] <= 4 for c in block["cells"])
    assert "Inference-time k" in (tmp_path / "f" / "report.md").read_text()
    # the best k_eval is the argmin of 1 - the seed-mean accuracy of the table
    long = results.load_k_eval(store)
    cell = block["cells"][0]
    sub = long[(long.n_rules == cell["complexity"]) & (long.k == cell["k_train"])]
    curve = 1 - sub.groupby("k_eval")["acc_ood"].mean()
    assert cell["best_k_eval"] == curve.index[np.argmin(curve.to_numpy())]


def test_fits_without_a_k_eval_metric_say_why(store, tmp_path):
    assert fit_main([str(store), "--out", str(tmp_path / "f"), "--metric", "train", "--bootstrap", "0",
                     "--no-surface"]) == 0
    block = json.loads((tmp_path / "f" / "optimal_k.json").read_text())["k_eval"]
    assert not block["available"] and "'train'" in block["reason"]


def test_an_empty_sraven_store_has_sraven_k_eval_columns(tmp_path):
    results.write_manifest(tmp_path, {"family": "sraven"})
    assert list(results.load_k_eval(tmp_path).columns) == ["cell_id", "seed", "k_eval", "acc_id", "acc_ood",
                                                           "feat_acc_id", "feat_acc_ood"]
