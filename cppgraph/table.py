"""The prediction table every predict call returns."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cppgraph.normalize import Normalizer


def prediction_table(models, tasks, pred_norm: np.ndarray, observed_raw: np.ndarray, *,
                     norm: Normalizer, info: pd.DataFrame,
                     no_raw: np.ndarray | None = None,
                     half_width: np.ndarray | None = None) -> pd.DataFrame:
    """``model, task, predicted`` (raw units), ``predicted_normalized``, ``observed``,
    ``observed_normalized`` and ``is_observed``, one row per cell; with
    ``half_width`` (normalized units) also ``lower`` and ``upper`` (raw units),
    the prediction plus or minus it.

    Normalized predictions and interval ends are clipped to the tasks' declared
    range (``info``'s ``min_score`` / ``max_score``); ``no_raw`` marks rows
    whose raw prediction is unknown (NaN).
    """
    models, tasks = list(models), list(tasks)
    bounds = [norm.transform(tasks, info[col].reindex(tasks).to_numpy(dtype=np.float64),
                             models=models) for col in ("min_score", "max_score")]
    n = len(tasks)
    rising = norm.transform(tasks, np.ones(n), models=models) > norm.transform(
        tasks, np.zeros(n), models=models)  # False for a lower-is-better task
    lo, hi = np.where(rising, bounds[0], bounds[1]), np.where(rising, bounds[1], bounds[0])
    lo, hi = np.where(np.isnan(lo), -np.inf, lo), np.where(np.isnan(hi), np.inf, hi)
    pred_norm = np.clip(pred_norm, lo, hi)
    pred_raw = norm.inverse_transform(tasks, pred_norm, models=models)
    if no_raw is not None:
        pred_raw[no_raw] = np.nan
    ends = {}
    if half_width is not None:
        a, b = (norm.inverse_transform(tasks, np.clip(pred_norm + d * half_width, lo, hi),
                                       models=models) for d in (-1.0, 1.0))
        ends = {"lower": np.fmin(a, b), "upper": np.fmax(a, b)}  # lower-is-better tasks swap
        if no_raw is not None:
            for v in ends.values():
                v[no_raw] = np.nan
    obs_norm = np.full(len(tasks), np.nan)
    has = ~np.isnan(observed_raw)
    if has.any():
        obs_norm[has] = norm.transform(np.asarray(tasks, dtype=object)[has], observed_raw[has],
                                       models=np.asarray(models, dtype=object)[has])
    return pd.DataFrame({"model": models, "task": tasks, "predicted": pred_raw, **ends,
                         "predicted_normalized": pred_norm, "observed": observed_raw,
                         "observed_normalized": obs_norm, "is_observed": has})
