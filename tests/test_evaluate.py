"""Held-out splits and error metrics."""

from __future__ import annotations

import pytest

from cppgraph.data import read_canonical
from cppgraph.errors import DataError
from cppgraph.evaluate import error_metrics, split_random


def test_split_random_holds_out_cells_not_in_training(demo_dir):
    data = read_canonical(demo_dir)
    train, test = split_random(data, 0.2, seed=3)
    assert len(train.scores) + len(test) == len(data.scores)
    assert abs(len(test) - 0.2 * len(data.scores)) < 0.03 * len(data.scores)
    keys = set(zip(train.scores["model"], train.scores["task"]))
    assert not any((m, t) in keys for m, t in zip(test["model"], test["task"]))
    # Every held-out cell stays predictable: its task keeps 2+ and its model 1+ training scores.
    assert train.scores.groupby("task").size().min() >= 2
    assert set(test["model"]) <= set(train.scores["model"])
    again, test2 = split_random(data, 0.2, seed=3)
    assert test.equals(test2)
    assert not test.equals(split_random(data, 0.2, seed=4)[1])
    with pytest.raises(DataError, match="test size"):
        split_random(data, 1.5, seed=0)


def test_error_metrics_by_hand():
    out = error_metrics([0.0, 1.0, 0.5], [0.5, 1.0, 0.0])
    assert out["mae"] == pytest.approx(1.0 / 3)
    assert out["mse"] == pytest.approx(0.5 / 3)
    with pytest.raises(ValueError):
        error_metrics([1.0], [1.0, 2.0])
