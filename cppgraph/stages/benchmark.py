"""Training models: mix in a regression of the task on the model's most correlated known tasks."""

from __future__ import annotations

import numpy as np

from cppgraph.regression import benchmark_regression
from cppgraph.stages.base import TrainingScores, blend

#: The weights ``"auto"`` chooses from.
GRID = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))


class BenchmarkMix:
    """``observed_regression``: the prediction of cell (m, t) of a training model is mixed
    with :func:`~cppgraph.regression.benchmark_regression` of t on m's other known
    tasks (in logit space on a bounded scale), weight ``w``.

    A cell of fold ``f`` is regressed with fold ``f`` unseen, so its own score is
    neither a feature nor a training value. ``"auto"`` chooses ``w`` in
    :data:`GRID` with the lowest MAE on the validation cells (fold ``k``).
    """

    name = "benchmark-mix"

    def __init__(self, weight: float | str = 0.25):
        self.weight = weight

    def fit(self, train: TrainingScores) -> "BenchmarkMix":
        if self.weight != "auto":
            self.weight_ = float(self.weight)
            return self
        rows, cols = np.nonzero(train.fold == train.k)
        self.weight_ = 0.0
        if len(rows):
            reg = self._regress(train, rows, cols, np.full(len(rows), train.k))
            ok = np.isfinite(reg)
            if ok.any():
                base, y = train.predicted[rows, cols][ok], train.y[rows, cols][ok]
                mae = [np.abs(blend(base, reg[ok], w, bounded=train.bounded) - y).mean()
                       for w in GRID]
                self.weight_ = float(GRID[int(np.argmin(mae))])
        return self

    def _regress(self, train: TrainingScores, rows, cols, fold) -> np.ndarray:
        out = np.full(len(rows), np.nan)
        for f in np.unique(fold):
            sel = fold == f
            y, known = train.without_fold(None if f < 0 else int(f))
            out[sel] = benchmark_regression(y, known, rows[sel], cols[sel], logit=train.bounded)
        return out

    def apply(self, pred: np.ndarray, rows: np.ndarray, cols: np.ndarray, fold: np.ndarray,
              train: TrainingScores) -> np.ndarray:
        """``pred`` of cells ``(rows, cols)`` mixed; ``fold``: each cell's fold, -1 if unknown."""
        if self.weight_ <= 0:
            return pred
        reg = self._regress(train, rows, cols, fold)
        ok = np.isfinite(reg)
        out = pred.copy()
        out[ok] = blend(pred[ok], reg[ok], self.weight_, bounded=train.bounded)
        return out
