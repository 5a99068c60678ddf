"""The matrix view of a split that the baseline methods work on.

A :class:`Problem` holds a models x tasks array of normalized training
scores (NaN where unknown), the factor features of every model and task, and
the test cells as (row, column) positions. New models and tasks of a
cold-start split are extra rows / columns holding only their known scores.
Baselines see arrays only, never names.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cppgraph.evaluate.splits import Split
from cppgraph.graph import FactorEncoder
from cppgraph.normalize import Normalizer, make_normalizer, new_task_prior


@dataclass(eq=False)
class Problem:
    """Arrays of one split, on a working normalized scale.

    Attributes
    ----------
    y : ndarray, shape (n_models, n_tasks)
        Normalized training scores (and the known scores of new entities);
        NaN where unknown. Rows: training models, then new models; columns:
        training tasks, then new tasks.
    rows, cols : ndarray of int
        Positions of the test cells.
    model_x, task_x : ndarray
        Factor features: standardized numeric factors, missing indicators and
        the multi-hot factor values (:class:`cppgraph.graph.FactorEncoder`
        fitted on the training entities).
    log_params, log_tokens : ndarray
        Natural log of the ``params_b`` / ``tokens_b`` factors (NaN if unknown).
    family : ndarray of int
        Family code of each model (-1 if unknown).
    n_train_models, n_train_tasks : int
    seed : int
    """

    y: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    model_x: np.ndarray
    task_x: np.ndarray
    log_params: np.ndarray
    log_tokens: np.ndarray
    family: np.ndarray
    n_train_models: int
    n_train_tasks: int
    seed: int

    @property
    def observed(self) -> np.ndarray:
        return ~np.isnan(self.y)


def _log_factor(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame.columns:
        return np.full(len(frame), np.nan)
    v = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(v > 0, np.log(v), np.nan)


def working_normalizer(split: Split, base: Normalizer | None = None) -> Normalizer:
    """The scale the baselines work on.

    ``base`` (e.g. the paper's normalization, fitted by the caller) is used as
    given when it already covers every entity; otherwise per-task min-max is
    fitted on the training cells, and new tasks get the prior of
    :func:`cppgraph.normalize.new_task_prior` (the median range of the
    training tasks of the same unit and direction); a new task whose unit no
    training task shares takes the range of its known scores (2 or more),
    else its declared range, else stays unscaled (no predictions).
    """
    if base is not None:
        return base
    norm = make_normalizer("minmax").fit(split.train)
    if split.kind == "task":
        names = list(split.new_tasks.index)
        info = split.new_task_info.reindex(names)
        shift, scale, sign = new_task_prior(norm, split.train.task_info, info)
        for i, task in enumerate(names):
            if np.isfinite(scale[i]):
                continue
            # No training task of the same unit: the known scores' range, else the declared one.
            raw = split.known.loc[split.known["task"] == task, "score"].to_numpy(dtype=np.float64)
            lo, hi = info.at[task, "min_score"], info.at[task, "max_score"]
            if len(raw) >= 2 and np.ptp(raw) > 0:
                lo, hi = raw.min(), raw.max()
            if pd.notna(lo) and pd.notna(hi) and hi > lo:
                shift[i], scale[i] = (lo if sign[i] > 0 else hi), hi - lo
        norm = norm.extended(names, shift, scale, sign)
    return norm


def make_problem(split: Split, norm: Normalizer, seed: int) -> Problem:
    """The :class:`Problem` of ``split`` on the scale of ``norm``."""
    train = split.train
    models = train.models + list(split.new_models.index)
    tasks = train.tasks + list(split.new_tasks.index)
    mi = {m: i for i, m in enumerate(models)}
    ti = {t: i for i, t in enumerate(tasks)}
    y = np.full((len(models), len(tasks)), np.nan)
    cells = pd.concat([train.scores, split.known], ignore_index=True)
    if len(cells):
        values = norm.transform(cells["task"], cells["score"].to_numpy(dtype=np.float64),
                                models=cells["model"])
        y[cells["model"].map(mi).to_numpy(), cells["task"].map(ti).to_numpy()] = values
    enc = FactorEncoder().fit(train)
    model_frame = pd.concat([train.model_factors, split.new_models]) if len(split.new_models) \
        else train.model_factors
    task_frame = pd.concat([train.task_factors, split.new_tasks]) if len(split.new_tasks) \
        else train.task_factors

    def features(entity, frame):
        return np.concatenate([enc.numeric_features(entity, frame),
                               enc.factor_matrix(entity, frame)], axis=1).astype(np.float64)

    if "family" in model_frame.columns:
        codes, _ = pd.factorize(model_frame["family"])
    else:
        codes = np.full(len(model_frame), -1)
    return Problem(
        y=y, rows=split.test["model"].map(mi).to_numpy(dtype=np.int64),
        cols=split.test["task"].map(ti).to_numpy(dtype=np.int64),
        model_x=features("model", model_frame), task_x=features("task", task_frame),
        log_params=_log_factor(model_frame, "params_b"),
        log_tokens=_log_factor(model_frame, "tokens_b"),
        family=np.asarray(codes, dtype=np.int64), n_train_models=len(train.models),
        n_train_tasks=len(train.tasks), seed=seed)


def to_raw(split: Split, norm: Normalizer, pred: np.ndarray) -> np.ndarray:
    """Normalized predictions of the test cells back to raw units."""
    t = split.test
    return norm.inverse_transform(t["task"], np.asarray(pred, dtype=np.float64), models=t["model"])
