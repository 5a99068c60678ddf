"""Held-out evaluation: seeded splits of the observed cells and error metrics."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from cppgraph.data.dataset import CollabData
from cppgraph.errors import DataError


def split_random(data: CollabData, test_size: float, seed: int) -> tuple[CollabData, pd.DataFrame]:
    """Hold out a random share of the observed cells.

    The held-out cells are drawn uniformly (seeded), then any cell whose
    removal would leave its task with fewer than 2 training scores, or its
    model with none, is put back, so every held-out cell stays predictable.

    Returns
    -------
    (CollabData, DataFrame)
        The training data (same models, tasks and factors; fewer scores) and
        the held-out ``model, task, score`` rows.
    """
    if not 0 < test_size < 1:
        raise DataError(f"test size must be in (0, 1); got {test_size}")
    scores = data.scores
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(scores))[: int(round(test_size * len(scores)))]
    left_task = scores.groupby("task").size()
    left_model = scores.groupby("model").size()
    held = []
    for i in order:
        model, task = scores.at[i, "model"], scores.at[i, "task"]
        if left_task[task] > 2 and left_model[model] > 1:
            left_task[task] -= 1
            left_model[model] -= 1
            held.append(i)
    held = np.sort(np.asarray(held, dtype=np.int64))
    train = dataclasses.replace(data, scores=scores.drop(index=held).reset_index(drop=True))
    return train, scores.iloc[held].reset_index(drop=True)


def error_metrics(y_true, y_pred) -> dict:
    """``mae`` and ``mse`` of two equally long arrays."""
    y_true, y_pred = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError("need two non-empty arrays of the same shape")
    err = y_pred - y_true
    return {"mae": float(np.abs(err).mean()), "mse": float((err ** 2).mean())}
