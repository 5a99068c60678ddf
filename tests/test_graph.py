"""Graph construction on a tiny hand-made table: node and edge counts, features, names."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cppgraph.data import CollabData
from cppgraph.graph import FactorEncoder, build_graph, log_bin_edges, to_networkx


@pytest.fixture
def tiny() -> CollabData:
    scores = pd.DataFrame({"model": ["a-7b", "a-7b", "a-70b", "b-3b", "b-3b"],
                           "task": ["t1", "t2", "t1", "t1", "t2"],
                           "score": [50.0, 20.0, 80.0, 40.0, 30.0]})
    model_factors = pd.DataFrame({"model": ["a-7b", "a-70b", "b-3b"],
                                  "family": ["a", "a", "b"],
                                  "params_b": [7.0, 70.0, np.nan],
                                  "finetuned": ["no", "yes", np.nan]})
    task_factors = pd.DataFrame({"task": ["t1", "t2"], "ability": ["math", "math"],
                                 "few_shot": ["0", "5"]})
    return CollabData.from_frames(
        scores, model_factors=model_factors, task_factors=task_factors,
        factor_kinds={"task": {"few_shot": "categorical"}})


def test_log_bin_edges():
    assert log_bin_edges(7.0, 70.0).tolist() == [5.0, 10.0, 20.0, 50.0, 100.0]
    assert log_bin_edges(1.0, 1.0).tolist() == [1.0, 2.0]


def test_node_and_edge_counts(tiny):
    enc = FactorEncoder().fit(tiny)
    # family=a, family=b, 4 params bins [5,10) .. [50,100), finetuned=no/yes,
    # ability=math, few_shot=0/5.
    assert enc.nodes_ == ["family=a", "family=b", "params_b=[5,10)", "params_b=[10,20)",
                          "params_b=[20,50)", "params_b=[50,100)", "finetuned=no",
                          "finetuned=yes", "ability=math", "few_shot=0", "few_shot=5"]
    g = build_graph(tiny, enc, normalized=np.linspace(0, 1, 5))
    assert (g["model"].num_nodes, g["task"].num_nodes, g["factor"].num_nodes) == (3, 2, 11)
    counts = {et: g[et].num_edges for et in g.edge_types}
    # a-7b and a-70b have 3 factor edges each; b-3b only family (missing values get none).
    assert counts == {("model", "scores", "task"): 5, ("model", "has_factor", "factor"): 7,
                      ("task", "has_factor", "factor"): 4, ("task", "rev_scores", "model"): 5,
                      ("factor", "rev_has_factor", "model"): 7,
                      ("factor", "rev_has_factor", "task"): 4}
    assert g["model", "scores", "task"].edge_weight.tolist() == pytest.approx(np.linspace(0, 1, 5))
    assert g["task", "rev_scores", "model"].edge_weight.tolist() == pytest.approx(np.linspace(0, 1, 5))
    # Every node type receives messages.
    assert {et[2] for et in g.edge_types} == {"model", "task", "factor"}


def test_numeric_features_standardized_with_missing_indicator(tiny):
    enc = FactorEncoder().fit(tiny)
    x = enc.numeric_features("model", tiny.model_factors)
    assert enc.feature_names("model") == ["params_b", "params_b_missing"]
    np.testing.assert_allclose(x[:, 0], [-1.0, 1.0, 0.0], atol=1e-6)  # log10 7 and 70, missing
    np.testing.assert_array_equal(x[:, 1], [0.0, 0.0, 1.0])


def test_held_out_cells_are_not_edges(tiny):
    enc = FactorEncoder().fit(tiny)
    kept = tiny.scores.iloc[[0, 2, 3]].assign(normalized=[0.1, 0.2, 0.3])
    g = build_graph(tiny, enc, score_edges=kept)
    assert g["model", "scores", "task"].edge_index.tolist() == [[0, 1, 2], [0, 0, 0]]


def test_cold_start_values_map_to_known_nodes(tiny):
    enc = FactorEncoder().fit(tiny)
    assert enc.node_labels("model", "params_b", [500.0, 1.0, 12.0, np.nan]) == [
        "params_b=[50,100)", "params_b=[5,10)", "params_b=[10,20)", None]
    new = pd.DataFrame({"family": ["c"], "params_b": [13.0], "finetuned": ["yes"]})
    with pytest.warns(UserWarning, match="never seen in training"):
        edges = enc.factor_edges("model", new)
    assert [enc.nodes_[j] for j in edges[1]] == ["params_b=[10,20)", "finetuned=yes"]


def test_encoder_json_round_trip(tiny):
    enc = FactorEncoder().fit(tiny)
    again = FactorEncoder.from_dict(json.loads(json.dumps(enc.to_dict())))
    assert again.nodes_ == enc.nodes_
    np.testing.assert_array_equal(again.numeric_features("model", tiny.model_factors),
                                  enc.numeric_features("model", tiny.model_factors))


def test_networkx_view(tiny):
    enc = FactorEncoder().fit(tiny)
    G = to_networkx(build_graph(tiny, enc, normalized=np.full(5, 0.5)), tiny, enc)
    assert G.number_of_nodes() == 3 + 2 + 11
    assert G.number_of_edges() == 5 + 7 + 4
    assert G.edges["model:a-70b", "task:t1"] == {"type": "scores", "weight": 0.5}
    assert G.has_edge("model:a-70b", "factor:params_b=[50,100)")
    assert G.nodes["factor:family=a"]["type"] == "factor"
