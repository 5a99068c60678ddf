"""New models and tasks: mix in a regression on their known scores."""

from __future__ import annotations

import numpy as np

from cppgraph.regression import known_score_regression
from cppgraph.stages.base import TrainingScores, blend


class KnownScoreMix:
    """``known_regression``: each new row's predictions (a new model's tasks, or a new
    task's models) mixed with :func:`~cppgraph.regression.known_score_regression`
    on its known cells, fitted over the training rows; weight ``w``; cells the
    regression cannot reach keep their prediction.
    """

    name = "known-score-mix"

    def __init__(self, weight: float = 0.5):
        self.weight = weight

    def fit(self, train: TrainingScores) -> "KnownScoreMix":
        self.weight_ = float(self.weight)
        return self

    def apply(self, pred: np.ndarray, known: np.ndarray, train: TrainingScores, *,
              transpose: bool = False) -> np.ndarray:
        """``pred``, ``known``: ``[new rows, other]`` (known: NaN where unknown); with
        ``transpose`` the new rows are tasks (regressed across the training tasks)."""
        has = np.isfinite(known)
        if self.weight_ <= 0 or not has.any():
            return pred
        y, mask = train.without_fold(None)
        if transpose:
            y, mask = y.T, mask.T
        reg = known_score_regression(y, mask, np.where(has, known, 0.0), has,
                                     logit=train.bounded)
        ok = np.isfinite(reg)
        out = pred.copy()
        out[ok] = blend(pred[ok], reg[ok], self.weight_, bounded=train.bounded)
        return out
