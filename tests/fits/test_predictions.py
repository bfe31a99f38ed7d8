"""fits.predictions: the calibrated bound's k* for the composing arm, from the shipped references only.
The bound cannot put k* above ceil(s T / S) (docs/theory.md), the law recovers planted exponents, and a
prediction is refused from a dirty tree."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from fits import predictions


def test_every_predicted_k_star_is_a_tested_k_within_the_bounds_reach_and_inside_its_interval():
    cells = predictions.predict(*predictions.SOURCES[0], n_draws=5)
    assert set(cells["k_star_pred"]) <= set(predictions.KS)
    cap = np.ceil(cells["complexity"] * predictions.N_EXPERTS / 8).to_numpy()
    fixed_h = cells["fixed"] == "h"
    assert (cells.loc[fixed_h, "k_star_pred"].to_numpy() <= cap[fixed_h.to_numpy()]).all()
    assert ((cells["k_star_lo"] <= cells["k_star_pred"]) & (cells["k_star_pred"] <= cells["k_star_hi"])).all()
    n_cells = math.prod(len(v) for v in predictions.DESIGN.values())
    assert fixed_h.sum() == n_cells and (~fixed_h).sum() == n_cells // len(predictions.DESIGN["width"]) * len(
        predictions.ACTIVE_WIDTHS)


def test_the_law_recovers_planted_exponents():
    rows = [dict(fixed="h", complexity=s, n_train=m, width_or_active_width=h,
                 k_star_pred=0.5 * s ** 1.0 * m ** 0.25 * h ** -0.3)
            for s in (1, 2, 3, 4) for m in (1000, 4000, 16000) for h in (2, 8)]
    got = predictions.law(pd.DataFrame(rows))
    assert np.allclose([got["b_s"], got["b_m"], got["b_h"]], [1.0, 0.25, -0.3]) and got["r2"] > 0.999


def test_a_prediction_is_refused_from_a_dirty_tree(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(predictions, "tree_state", lambda: {"git_clean": False, "git_diff_sha256": "d"})
    assert predictions.main(["--out", str(tmp_path / "p"), "--draws", "2"]) == 2
    assert "uncommitted" in capsys.readouterr().err and not (tmp_path / "p").exists()
