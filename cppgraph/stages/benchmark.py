"""Training models: mix in a regression of the task on the model's most correlated known tasks."""

from __future__ import annotations

import numpy as np

from cppgraph.regression import _logit, benchmark_regression
from cppgraph.stages.base import TrainingScores, blend

#: The weights ``"auto"`` chooses from.
GRID = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))


class BenchmarkMix:
    """``observed_regression``: the prediction of cell (m, t) of a training model is mixed
    with :func:`~cppgraph.regression.benchmark_regression` of t on m's other known
    tasks (in logit space on a bounded scale), weight ``w``.

    A cell of fold ``f`` is regressed with fold ``f`` unseen, so its own score is
    neither a feature nor a training value. ``"task"`` (the default) weighs each
    task by the two predictors' leak-free errors on its training cells
    (:meth:`_fit_per_task`): where the task is nearly a copy of others, the
    regression gets almost all the weight. ``"auto"`` chooses one ``w`` in
    :data:`GRID` with the lowest MAE on the validation cells (fold ``k``).
    """

    name = "benchmark-mix"

    def __init__(self, weight: float | str = "task"):
        self.weight = weight

    def fit(self, train: TrainingScores) -> "BenchmarkMix":
        self.task_weights_ = None
        if self.weight == "task":
            return self._fit_per_task(train)
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

    def state(self) -> dict:
        """What :meth:`fit` learned, JSON-safe (for :meth:`restore`)."""
        weights = self.task_weights_
        return {"weight": self.weight_,
                "task_weights": None if weights is None else weights.tolist()}

    def restore(self, state: dict) -> "BenchmarkMix":
        """Take the :meth:`state` of an earlier fit instead of fitting."""
        self.weight_ = float(state["weight"])
        weights = state.get("task_weights")
        self.task_weights_ = None if weights is None else np.asarray(weights, dtype=np.float64)
        return self

    def _fit_per_task(self, train: TrainingScores, max_cells: int = 200) -> "BenchmarkMix":
        """Per task, weight the regression by the inverse of its squared error against the
        network's: ``w_t = e_net / (e_net + e_reg)``, both measured leak-free on (at most
        ``max_cells`` of) the task's training cells, in logit space on a bounded scale."""
        rng = np.random.default_rng(0)
        rows, cols = [], []
        for t in range(train.y.shape[1]):
            r = np.flatnonzero(train.known[:, t])
            if len(r) > max_cells:
                r = np.sort(rng.choice(r, max_cells, replace=False))
            rows.append(r)
            cols.append(np.full(len(r), t))
        rows, cols = np.concatenate(rows), np.concatenate(cols)
        reg = self._regress(train, rows, cols, train.fold[rows, cols])
        z = _logit if train.bounded else (lambda v: v)
        err_net = (z(train.predicted[rows, cols]) - z(train.y[rows, cols])) ** 2
        err_reg = (z(reg) - z(train.y[rows, cols])) ** 2
        weights = np.zeros(train.y.shape[1])
        for t in range(len(weights)):
            ok = (cols == t) & np.isfinite(reg)
            if ok.sum() >= 3:
                e_net, e_reg = err_net[ok].mean(), err_reg[ok].mean()
                weights[t] = e_net / (e_net + e_reg) if e_net + e_reg > 0 else 0.0
        self.task_weights_ = weights
        self.weight_ = float(weights.mean())
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
        w = self.weight_ if self.task_weights_ is None else self.task_weights_[cols[ok]]
        out = pred.copy()
        out[ok] = blend(pred[ok], reg[ok], w, bounded=train.bounded)
        return out
