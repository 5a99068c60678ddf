"""New models and tasks: move their predictions by the shrunk mean residual of their known scores."""

from __future__ import annotations

import numpy as np


class KnownScoreCorrection:
    """``known_shrinkage``: each new row's predictions move by
    ``sum(r) / (n + shrinkage)``, the mean of its ``n`` known residuals (known
    score minus the prediction made without any known score) shrunk toward 0
    by ``shrinkage`` pseudo-residuals of 0: the "correct" step of Correct &
    Smooth (Huang et al., 2021) on the new node's score edges. 0 turns it off.
    """

    name = "known-score-correction"

    def __init__(self, shrinkage: float = 2.0):
        self.shrinkage = shrinkage

    def apply(self, pred: np.ndarray, known: np.ndarray, prior: np.ndarray) -> np.ndarray:
        """``pred``, ``known`` (NaN where unknown), ``prior``: ``[new rows, other]``."""
        has = np.isfinite(known)
        if self.shrinkage <= 0 or not has.any():
            return pred
        residual = np.where(has, known - prior, 0.0)
        shift = residual.sum(axis=1) / (has.sum(axis=1) + self.shrinkage)
        return pred + shift[:, None]
