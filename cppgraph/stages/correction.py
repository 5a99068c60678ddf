"""New models and tasks: move their predictions by the shrunk mean residual of their known scores."""

from __future__ import annotations

import numpy as np


class KnownScoreCorrection:
    """``known_shrinkage``: each new row's predictions move by
    ``sum(r) / (n + shrinkage)``, the mean of its ``n`` known residuals (known
    score minus the prediction made without any known score) shrunk toward 0
    by ``shrinkage`` pseudo-residuals of 0: the "correct" step of Correct &
    Smooth (Huang et al., 2021) on the new node's score edges. 0 turns it off.

    Each residual counts at most ``limit`` (``known_residual_limit``) either
    way: on the normalized scale 1 is a task's whole training range, and a
    known score many ranges outside it (a task whose few training scores lie
    close together) would otherwise move every other prediction of its row by
    as many ranges. ``inf``: no limit.
    """

    name = "known-score-correction"

    def __init__(self, shrinkage: float = 2.0, limit: float = float("inf")):
        self.shrinkage, self.limit = shrinkage, limit

    def apply(self, pred: np.ndarray, known: np.ndarray, prior: np.ndarray) -> np.ndarray:
        """``pred``, ``known`` (NaN where unknown), ``prior``: ``[new rows, other]``."""
        has = np.isfinite(known)
        if self.shrinkage <= 0 or not has.any():
            return pred
        residual = np.clip(np.where(has, known - prior, 0.0), -self.limit, self.limit)
        shift = residual.sum(axis=1) / (has.sum(axis=1) + self.shrinkage)
        return pred + shift[:, None]
