"""Figure `estimator_map`: which estimator lets the router compose (the fits' estimator_map.parquet,
`fits.estimator_map`).

One row per arm (expert kind, gate family and estimator), one column per complexity s. Left: routing
recall at k = s above its permuted-input chance level. Middle: the best ID NMSE over k relative to the
oracle's best. Right: the share of the routing gain at the best k on ID inputs (1: the oracle's, 0: the
route-free mix). Seed means, printed in the cells. One slice: the largest m and h and the most common T.
"""

from __future__ import annotations

import pandas as pd

from figures import style
from figures.error_vs_k import select_slice
from figures.gate_map import heatmaps

NAME = "estimator_map"
TITLE = "Estimator map: recall above chance at k = s, best ID error against the oracle, routing-gain share"
INPUTS = ("results", "fits")
TABLE = "estimator_map.parquet"
REQUIRES = (("fits", "optimal_k.json"), ("fits", TABLE))
PANELS = {"recall_above_chance": "recall - chance at k = s", "ratio_id": "best ID NMSE / oracle's",
          "best_share_id": "routing-gain share (ID)"}
COLUMNS = ("arm", "task", "complexity", "n_train", "width", "n_experts", "recall_at_s", "recall_chance_at_s",
           "ratio_id", "best_share_id")


def data(inputs) -> pd.DataFrame:
    rows = select_slice(inputs.table("fits", TABLE, COLUMNS))
    rows = rows.assign(recall_above_chance=rows["recall_at_s"] - rows["recall_chance_at_s"])
    keep = ["arm", "task", "complexity", "n_train", "width", "n_experts", *PANELS]
    return rows[keep].reset_index(drop=True)


@style.styled
def plot(df: pd.DataFrame):
    return heatmaps(df, PANELS)
