"""What the stages learn from, and the mix they share."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cppgraph.regression import MIX_EPS


@dataclass
class TrainingScores:
    """The training matrix on the normalized scale, with each known cell's fold.

    Attributes
    ----------
    y : ndarray ``[models, tasks]``
        Normalized scores, NaN where unknown.
    fold : ndarray ``[models, tasks]`` of int
        The fold of each known cell (``0 .. k``, ``k`` for validation cells),
        -1 where unknown. A cell of fold ``f`` is predicted with every cell of
        fold ``f`` unseen.
    k : int
    predicted : ndarray ``[models, tasks]``
        The network's leak-free prediction of each known cell, NaN elsewhere.
    bounded : bool
        Whether the normalized scale is [0, 1] (regressions then run in logit space).
    """

    y: np.ndarray
    fold: np.ndarray
    k: int
    predicted: np.ndarray
    bounded: bool

    @property
    def known(self) -> np.ndarray:
        return self.fold >= 0

    def without_fold(self, f: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Scores and mask with fold ``f`` unseen (``None``: every known cell)."""
        known = self.known if f is None else self.known & (self.fold != f)
        return np.where(known, self.y, 0.0), known


def blend(base: np.ndarray, other: np.ndarray, w: float, *, bounded: bool) -> np.ndarray:
    """``(1 - w) base + w other``; on a bounded scale in logit space (both clipped to
    [``MIX_EPS``, 1 - ``MIX_EPS``] first), so that near the floor the mix acts on ratios."""
    if not bounded:
        return (1 - w) * base + w * other
    lo, hi = MIX_EPS, 1 - MIX_EPS
    zb = np.log(np.clip(base, lo, hi) / (1 - np.clip(base, lo, hi)))
    zo = np.log(np.clip(other, lo, hi) / (1 - np.clip(other, lo, hi)))
    return 1.0 / (1.0 + np.exp(-((1 - w) * zb + w * zo)))
