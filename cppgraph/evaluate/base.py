"""The one interface every evaluated method implements."""

from __future__ import annotations

import numpy as np

from cppgraph.evaluate.problem import Problem, make_problem, to_raw, working_normalizer
from cppgraph.evaluate.splits import Split
from cppgraph.normalize import Normalizer


class Method:
    """A predictor under evaluation.

    :meth:`fit_predict` learns from ``split.train`` (plus the factors and
    known scores of the split's new models or tasks) and returns raw-unit
    predictions of ``split.test``, in its row order. It must never read
    ``split.test["score"]``. A method that gives prediction intervals at
    :data:`~cppgraph.evaluate.metrics.INTERVAL_LEVEL` sets ``intervals_`` to
    ``(lower, upper)`` raw arrays of the same cells; it is None otherwise.
    """

    name = "method"
    intervals_: tuple | None = None

    def fit_predict(self, split: Split, *, seed: int, norm: Normalizer | None = None) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class MatrixMethod(Method):
    """A method that completes the :class:`~cppgraph.evaluate.problem.Problem` arrays.

    Subclasses implement :meth:`complete`; the working scale is ``norm``
    when given (the paper's normalization in its set-ups), else per-task
    min-max of the training cells.
    """

    def fit_predict(self, split: Split, *, seed: int, norm: Normalizer | None = None) -> np.ndarray:
        norm = working_normalizer(split, norm)
        problem = make_problem(split, norm, seed)
        pred = np.asarray(self.complete(problem), dtype=np.float64)
        if pred.shape != problem.rows.shape:
            raise RuntimeError(f"{self!r} returned {pred.shape} predictions for "
                               f"{problem.rows.shape} test cells")
        return to_raw(split, norm, pred)

    def complete(self, problem: Problem) -> np.ndarray:
        """Normalized predictions of the cells ``(problem.rows, problem.cols)``."""
        raise NotImplementedError
