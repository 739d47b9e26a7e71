"""The far agreement distances hold a handful of sentences each (distance 25: one): the figures and the Memory page's
table pool them into one point, so one sentence right or wrong is not drawn as an accuracy of 1 or 0."""
from __future__ import annotations

import collections
import json

import numpy as np
import pandas as pd

from lmcore.inspect.memory import agreement_items
from lmcore.viz.interventions import agreement_change_figure
from lmcore.viz.memory import (SPARSE_ITEMS, accuracy_by_distance_wide, agreement_figure, pool_sparse_tail,
                               pooled_by_model)
from tests.conftest import figure_values
from tests.test_pages import open_page


def validation_table(model: str = "LSTM", seed: int = 0) -> pd.DataFrame:
    """The agreement corpus's validation sentences counted by distance, with made-up accuracies."""
    counts = sorted(collections.Counter(it.distance for it in agreement_items("valid")).items())
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"model": model, "distance": [d for d, _ in counts], "items": [n for _, n in counts],
                         "accuracy": rng.uniform(0, 1, len(counts))})


def test_the_sparse_far_distances_become_one_point_holding_every_sentence():
    table = validation_table()
    pooled = pool_sparse_tail(table)
    assert pooled["items"].sum() == table["items"].sum()
    assert (pooled["items"] >= SPARSE_ITEMS).all()  # here every point, the pool included
    last, merged = pooled.iloc[-1], table[table["distance"] >= pooled.iloc[-1]["distance"]]
    assert last["label"] == f"{int(last['distance'])}+" and len(merged) >= 2
    assert (merged["items"] < SPARSE_ITEMS).all()  # only the sparse tail, no dense distance pulled in
    assert np.isclose(last["accuracy"], (merged["accuracy"] * merged["items"]).sum() / merged["items"].sum())
    assert list(pooled["label"].iloc[:-1]) == [str(d) for d in pooled["distance"].iloc[:-1]]


def test_a_few_typed_sentences_are_drawn_one_by_one():
    typed = pd.DataFrame({"model": "m", "distance": [0, 3, 6, 9], "items": [1, 1, 1, 1], "accuracy": [1.0, 0, 1, 1]})
    assert pool_sparse_tail(typed)[["distance", "items", "accuracy"]].equals(typed[["distance", "items", "accuracy"]])


def test_the_agreement_figures_draw_no_point_of_a_handful_of_sentences():
    table = pd.concat([validation_table("LSTM", 0), validation_table("Kneser–Ney 3-gram", 1)], ignore_index=True)
    before, afters = validation_table("LSTM", 2), [validation_table("LSTM", s) for s in (3, 4)]
    for fig in (agreement_figure(table), agreement_change_figure(before, afters)):
        spec = json.loads(fig.to_json())
        assert spec["layout"]["xaxis"]["ticktext"][-1] == "20+"  # the pool, marked on the axis
        for trace in spec["data"]:
            if "customdata" in trace:
                items = [int(row[1]) for row in trace["customdata"]]
                assert min(items) >= SPARSE_ITEMS and len(items) == len(figure_values(trace["x"])), trace["name"]


def test_the_table_beside_the_figure_has_the_same_points_and_their_sentences():
    table = pd.concat([validation_table("LSTM", 0), validation_table("GRU", 1)], ignore_index=True)
    wide = accuracy_by_distance_wide(table)
    pooled = pooled_by_model(table)
    assert list(wide.columns) == ["words between", "sentences", "LSTM", "GRU"]
    assert list(wide["words between"]) == list(pooled[pooled["model"] == "LSTM"]["label"])
    assert wide["sentences"].min() >= SPARSE_ITEMS and wide["sentences"].sum() == table["items"].sum() / 2


def test_the_memory_page_shows_the_pooled_table_on_the_demos(lmcore_home):
    at = open_page("views/memory.py")
    assert not at.exception, [e.value for e in at.exception]
    wide = at.dataframe[0].value
    assert wide.columns[:2].tolist() == ["words between", "sentences"] and wide["words between"].iloc[-1].endswith("+")
    assert wide["sentences"].min() >= SPARSE_ITEMS
