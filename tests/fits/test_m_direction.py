"""fits.m_direction on planted cells: the steps towards and away from s and the slope in m are the
planted ones."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fits.m_direction import direction_in_m, step_direction


def test_a_step_is_towards_s_when_k_gets_closer_to_s_in_log_terms():
    assert step_direction(8, 4, 2) == "towards" and step_direction(4, 8, 2) == "away"
    assert step_direction(1, 2, 4) == "towards" and step_direction(4, 4, 2) == "unchanged"


def test_planted_cells_give_their_steps_and_slopes():
    m = np.array([1000, 2000, 4000])
    cells = pd.concat([
        pd.DataFrame({"complexity": 1, "width": 2, "n_experts": 16, "n_train": m, "k_enough": [4, 2, 1],
                      "k_star": [4, 4, 4]}),
        pd.DataFrame({"complexity": 2, "width": 2, "n_experts": 16, "n_train": m, "k_enough": [2, 4, 8],
                      "k_star": [2, 2, 4]}),
    ])
    rows = pd.DataFrame(direction_in_m(cells)).set_index(["estimand", "complexity"])
    assert rows.loc[("k_enough", 1), ["towards", "away", "unchanged"]].tolist() == [2, 0, 0]
    assert np.isclose(rows.loc[("k_enough", 1), "slope"], -1.0)
    assert rows.loc[("k_enough", 2), ["towards", "away", "unchanged"]].tolist() == [0, 2, 0]
    assert np.isclose(rows.loc[("k_enough", 2), "slope"], 1.0)
    assert rows.loc[("k_star", 1), ["towards", "away", "unchanged"]].tolist() == [0, 0, 2]
    assert rows.loc[("k_star", 2), ["towards", "away", "unchanged"]].tolist() == [0, 1, 1]
