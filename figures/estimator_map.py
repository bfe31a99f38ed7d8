"""Figure `estimator_map`: which estimator lets the router compose (the fits' gate_map.parquet, whose
rows carry each arm's estimator and routing-gain share: `fits.gate_map`).

One row per arm (expert kind, gate family and estimator), one column per complexity s. Left: routing
recall at k = s above its permuted-input chance level. Middle: the best ID NMSE over k relative to the
oracle's best. Right: the share of the routing gain at the best k on ID inputs (1: the oracle's, 0: the
route-free mix). Seed means, printed in the cells. One slice: the largest m and h and the most common T.
"""

from __future__ import annotations

import pandas as pd

from figures import style
from figures.gate_map import heatmaps, panel_data

NAME = "estimator_map"
TITLE = "Estimator map: recall above chance at k = s, best ID error against the oracle, routing-gain share"
INPUTS = ("results", "fits")
TABLE = "gate_map.parquet"
REQUIRES = (("fits", "optimal_k.json"), ("fits", TABLE))
PANELS = {"recall_above_chance": "recall - chance at k = s", "ratio_id": "best ID NMSE / oracle's",
          "best_share_id": "routing-gain share (ID)"}


def data(inputs) -> pd.DataFrame:
    return panel_data(inputs, PANELS)


@style.styled
def plot(df: pd.DataFrame):
    return heatmaps(df, PANELS)
