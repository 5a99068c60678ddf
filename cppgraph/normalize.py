"""Score normalizations with exact inverses.

Every normalizer maps raw scores to a common scale on which *higher is
better* (lower-is-better tasks are flipped explicitly) and back:

=========  ===================================================================
name       transform
=========  ===================================================================
minmax     per task, ``(x - min) / (max - min)`` over the observed scores: [0, 1]
           (the default)
zscore     per task, ``(x - mean) / std``
logit      per task, ``logit(eps + (1 - 2 eps) f)`` of the fraction
           ``f = (x - min_score) / (max_score - min_score)`` of the task's
           declared range
paper      the CPP reference code's: min-max per row of the source's wide file
           (per model for the crowdsource matrix, per task for HELM), after
           filling missing cells with 0, over all cells given to ``fit``
=========  ===================================================================

Under ``minmax`` and ``zscore`` a task whose scores do not spread (a single
score, or equal ones) takes the median shift and scale of the other tasks of
its unit and direction, as a new task does (:func:`new_task_prior`).

A task whose direction is unknown (``higher_is_better`` missing, e.g. HELM's
summary statistics) cannot be normalized: select the tasks to use first.

Examples
--------
>>> norm = make_normalizer("minmax").fit(data)            # doctest: +SKIP
>>> y = norm.transform(data.scores["task"], data.scores["score"])  # doctest: +SKIP
>>> x = norm.inverse_transform(data.scores["task"], y)     # doctest: +SKIP
"""

from __future__ import annotations

import copy
from typing import Iterable

import numpy as np
import pandas as pd

from cppgraph.data.dataset import CollabData, suggest
from cppgraph.errors import DataError

NORMALIZATIONS = ("minmax", "zscore", "logit", "paper")


def _directions(data: CollabData) -> pd.Series:
    hib = data.task_info["higher_is_better"]
    unknown = list(hib.index[hib.isna()])
    if unknown:
        raise DataError(f"{len(unknown)} task(s) have no direction (higher_is_better is missing): "
                        f"{unknown[:5]}; they cannot be normalized: set their higher_is_better "
                        "(true or false) in the task metadata, or leave them out (from HELM "
                        "data, --metric-type keeps only metrics of the types given)")
    return hib.astype(bool)


def _lookup(keys, table: dict, what: str) -> np.ndarray:
    """Positions of ``keys`` in ``table`` (name -> row index), with a clear error."""
    if not isinstance(keys, (pd.Series, pd.Index, np.ndarray)):  # columns as they come
        keys = np.asarray(list(keys), dtype=object)
    found = pd.Index(list(table)).get_indexer(keys)
    if (found >= 0).all():
        return np.fromiter(table.values(), dtype=np.int64, count=len(table))[found]
    out = np.empty(len(keys), dtype=np.int64)
    for i, k in enumerate(keys):
        try:
            out[i] = table[k]
        except KeyError:
            close = suggest(str(k), table)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise DataError(f"no normalization parameters for {what} {k!r}{hint}") from None
    return out


class Normalizer:
    """Base class: an affine (or logit-affine) map per key with an exact inverse.

    Subclasses fill ``keys_`` (task or model names), ``shift_`` and ``scale_``
    in :meth:`fit`; ``y = sign * (x - shift) / scale`` where ``sign`` is -1 for
    lower-is-better tasks.
    """

    name = "base"
    by = "task"

    def fit(self, data: CollabData) -> "Normalizer":
        raise NotImplementedError

    # -- shared machinery
    def _set(self, keys, shift, scale, sign):
        scale = np.asarray(scale, dtype=np.float64)
        self.keys_ = [str(k) for k in keys]
        self.shift_ = np.asarray(shift, dtype=np.float64)
        self.scale_ = np.where((scale > 0) | np.isnan(scale), scale, 1.0)  # NaN: unknown scale
        self.sign_ = np.asarray(sign, dtype=np.float64)
        self._index = {k: i for i, k in enumerate(self.keys_)}
        return self

    def _check_fitted(self):
        if not hasattr(self, "keys_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit(data) first")

    def _rows(self, tasks, models):
        self._check_fitted()
        if self.by == "task":
            return _lookup(tasks, self._index, "task")
        if models is None:
            raise ValueError(f"{type(self).__name__} normalizes per model: pass models=")
        return _lookup(models, self._index, "model")

    def transform(self, tasks: Iterable[str], values, models: Iterable[str] | None = None) -> np.ndarray:
        """Normalize raw ``values`` of the given tasks (and models, for per-model maps)."""
        i = self._rows(tasks, models)
        x = np.asarray(values, dtype=np.float64)
        return self.sign_[i] * (x - self.shift_[i]) / self.scale_[i]

    def inverse_transform(self, tasks: Iterable[str], values,
                          models: Iterable[str] | None = None) -> np.ndarray:
        """Map normalized ``values`` back to the tasks' raw units."""
        i = self._rows(tasks, models)
        y = np.asarray(values, dtype=np.float64)
        return self.sign_[i] * y * self.scale_[i] + self.shift_[i]

    def positions(self, keys: Iterable[str]) -> np.ndarray:
        """Row of each key in ``shift_`` / ``scale_`` / ``sign_`` (clear error for an unknown one)."""
        self._check_fitted()
        return _lookup(keys, self._index, self.by)

    def extended(self, keys, shift, scale, sign) -> "Normalizer":
        """A copy that also knows ``keys`` (new tasks or models) with the given parameters.

        A NaN ``shift`` or ``scale`` leaves a key's raw scale unknown: its
        values transform to and from NaN.
        """
        self._check_fitted()
        return copy.copy(self)._set(
            [*self.keys_, *keys], np.concatenate([self.shift_, np.asarray(shift, float)]),
            np.concatenate([self.scale_, np.asarray(scale, float)]),
            np.concatenate([self.sign_, np.asarray(sign, float)]))

    def with_params(self, shift, scale) -> "Normalizer":
        """A copy with every key's ``shift`` and ``scale`` replaced (same keys and signs)."""
        self._check_fitted()
        return copy.copy(self)._set(self.keys_, shift, scale, self.sign_)

    # -- persistence (JSON-friendly, no pickle)
    def to_dict(self) -> dict:
        self._check_fitted()
        return {"name": self.name, "by": self.by, **self._extra(), "keys": self.keys_,
                "shift": self.shift_.tolist(), "scale": self.scale_.tolist(),
                "sign": self.sign_.tolist()}

    def _extra(self) -> dict:
        return {}

    @classmethod
    def from_dict(cls, state: dict) -> "Normalizer":
        norm = make_normalizer(state["name"], **{k: state[k] for k in _OPTIONS.get(state["name"], ())})
        norm.by = state.get("by", norm.by)
        return norm._set(state["keys"], state["shift"], state["scale"], state["sign"])

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self._extra().items())
        return f"{type(self).__name__}({opts})"


class MinMaxNormalizer(Normalizer):
    """Per-task min-max to [0, 1] over the observed scores; 1 is the best score seen."""

    name = "minmax"

    def fit(self, data: CollabData) -> "MinMaxNormalizer":
        hib = _directions(data)
        g = data.scores.groupby("task")["score"]
        lo, hi = g.min().reindex(data.tasks), g.max().reindex(data.tasks)
        # Lower is better: y = (hi - x) / (hi - lo), i.e. shift hi, sign -1.
        shift = np.where(hib, lo, hi)
        self._set(data.tasks, shift, (hi - lo).to_numpy(), np.where(hib, 1.0, -1.0))
        return _borrow_scales(self, data, (hi == lo).to_numpy())


class ZScoreNormalizer(Normalizer):
    """Per-task standardization: zero mean, unit variance (population std)."""

    name = "zscore"

    def fit(self, data: CollabData) -> "ZScoreNormalizer":
        hib = _directions(data)
        g = data.scores.groupby("task")["score"]
        mean, std = g.mean().reindex(data.tasks), g.std(ddof=0).reindex(data.tasks)
        self._set(data.tasks, mean.to_numpy(), std.to_numpy(), np.where(hib, 1.0, -1.0))
        return _borrow_scales(self, data, (std == 0).to_numpy())


class LogitNormalizer(Normalizer):
    """Per-task logit of the score's fraction of its declared range.

    ``y = logit(eps + (1 - 2 eps) * f)`` with ``f`` the (direction-corrected)
    fraction; the squeeze by ``eps`` keeps 0 and 1 finite and invertible.
    """

    name = "logit"

    def __init__(self, eps: float = 1e-3):
        if not 0 < eps < 0.5:
            raise ValueError(f"eps must be in (0, 0.5); got {eps}")
        self.eps = float(eps)

    def _extra(self):
        return {"eps": self.eps}

    def fit(self, data: CollabData) -> "LogitNormalizer":
        hib = _directions(data)
        info = data.task_info
        no_range = list(info.index[info["min_score"].isna() | info["max_score"].isna()])
        if no_range:
            raise DataError(f"logit normalization needs each task's score range (min_score, "
                            f"max_score in tasks.csv); missing for {no_range[:5]}")
        lo, hi = info["min_score"].to_numpy(), info["max_score"].to_numpy()
        s = data.scores.assign(lo=data.scores["task"].map(info["min_score"]),
                               hi=data.scores["task"].map(info["max_score"]))
        out = s[(s["score"] < s["lo"]) | (s["score"] > s["hi"])]
        if len(out):
            r = out.iloc[0]
            raise DataError(f"model {r['model']!r}, task {r['task']!r}: score {r['score']} is "
                            f"outside the task's declared range [{r['lo']}, {r['hi']}]")
        shift = np.where(hib, lo, hi)
        return self._set(data.tasks, shift, hi - lo, np.where(hib, 1.0, -1.0))

    def transform(self, tasks, values, models=None):
        f = super().transform(tasks, values, models)
        p = self.eps + (1.0 - 2.0 * self.eps) * f
        return np.log(p) - np.log1p(-p)

    def inverse_transform(self, tasks, values, models=None):
        p = 1.0 / (1.0 + np.exp(-np.asarray(values, dtype=np.float64)))
        f = (p - self.eps) / (1.0 - 2.0 * self.eps)
        return super().inverse_transform(tasks, f, models)


class PaperNormalizer(Normalizer):
    """The CPP reference code's min-max per row of the wide file, gaps filled with 0.

    Parameters
    ----------
    by : {"model", "task", None}
        What the source file's rows are. ``None`` takes ``data.meta["paper_rows"]``
        at fit time (``"model"`` for the crowdsource matrix, ``"task"`` for HELM).

    Notes
    -----
    Per row: ``min`` and ``max`` over the row's observed scores, plus 0 when the
    row has a missing cell (the reference code fills gaps with 0 before
    scaling). Fit it on every cell the paper's set-up scales (held-out cells
    included, as the reference code does). Lower-is-better tasks are rejected:
    the reference normalization has no notion of direction.
    """

    name = "paper"

    def __init__(self, by: str | None = None):
        if by not in (None, "model", "task"):
            raise ValueError(f"by must be 'model', 'task' or None; got {by!r}")
        self.by = by

    def fit(self, data: CollabData) -> "PaperNormalizer":
        by = self.by or data.meta.get("paper_rows")
        if by not in ("model", "task"):
            raise DataError("the paper normalization needs to know whether the source's rows are "
                            "models or tasks (dataset.json paper_rows); this data set does not say")
        hib = _directions(data)
        if not hib.all():
            raise DataError(f"the paper normalization is defined for higher-is-better scores; "
                            f"lower-is-better task(s): {list(hib.index[~hib])[:5]}")
        self.by = by
        wide = data.wide() if by == "model" else data.wide().T
        hi = wide.max(axis=1)
        lo = wide.min(axis=1)
        gaps = wide.isna().any(axis=1)
        lo = lo.where(~gaps, np.minimum(lo, 0.0))
        hi = hi.where(~gaps, np.maximum(hi, 0.0))
        return self._set(wide.index, lo.to_numpy(), (hi - lo).to_numpy(), np.ones(len(wide)))


def _borrow_scales(norm: Normalizer, data: CollabData, flat: np.ndarray) -> Normalizer:
    """Give the tasks whose scores do not spread (``flat``: one score, or equal ones) the
    shift and scale of :func:`new_task_prior` from the other tasks of their unit and
    direction; where there is none, a task keeps its own value as shift and takes its
    declared range (``max_score - min_score``) as scale, or 1."""
    if not flat.any():
        return norm
    tasks = np.asarray(data.tasks, dtype=object)
    info = data.task_info
    shift, scale, _ = new_task_prior(norm, info.loc[tasks[~flat]], info.loc[tasks[flat]])
    declared = (info["max_score"] - info["min_score"]).to_numpy(dtype=np.float64)[flat]
    fallback = np.where(np.isfinite(declared) & (declared > 0), declared, 1.0)
    no_prior = np.isnan(scale)
    shift = np.where(no_prior, norm.shift_[flat], shift)
    scale = np.where(no_prior, fallback, scale)
    new_shift, new_scale = norm.shift_.copy(), norm.scale_.copy()
    new_shift[flat], new_scale[flat] = shift, scale
    return norm._set(norm.keys_, new_shift, new_scale, norm.sign_)


def _train_scales(norm: Normalizer, train_info: pd.DataFrame) -> pd.DataFrame:
    """``shift, scale, sign, unit`` of each training task (indexed by task)."""
    pos = norm.positions(train_info.index)
    return pd.DataFrame({"shift": norm.shift_[pos], "scale": norm.scale_[pos],
                         "sign": norm.sign_[pos], "unit": train_info["unit"].to_numpy()},
                        index=train_info.index)


def _signs(new_info: pd.DataFrame) -> np.ndarray:
    """+1 for each higher-is-better new task, -1 for each lower-is-better one."""
    hib = new_info["higher_is_better"]
    if hib.isna().any():
        raise DataError(f"new task(s) {list(hib.index[hib.isna()])[:5]} have no direction "
                        "(higher_is_better)")
    return np.where(hib.astype(bool), 1.0, -1.0)


def _same_unit(train: pd.DataFrame, unit, sign: float) -> pd.DataFrame:
    """The training tasks of this unit (a missing unit matches a missing unit) and direction."""
    same_unit = train["unit"].isna() if pd.isna(unit) else train["unit"] == unit
    return train[same_unit & (train["sign"] == sign)]


def new_task_prior(norm: Normalizer, train_info: pd.DataFrame, new_info: pd.DataFrame,
                   train_factors: pd.DataFrame | None = None,
                   new_factors: pd.DataFrame | None = None):
    """Prior ``shift``, ``scale`` and ``sign`` of new tasks under a per-task normalizer.

    A new task takes the median shift and scale of the training tasks with
    the same unit and direction (``unit`` and ``higher_is_better`` in the
    task metadata; a missing unit matches a missing unit). Given factor
    tables (indexed by task; the columns to compare), only those of them that
    share the most factor values with the new task count, where at least one
    shares one. Where no training task shares unit and direction, shift and
    scale are NaN (unknown raw scale).

    Returns
    -------
    (shift, scale, sign) : three float arrays in the order of ``new_info``'s index.
    """
    sign = _signs(new_info)
    train = _train_scales(norm, train_info)
    if train_factors is not None and new_factors is not None:
        train_factors = train_factors.reindex(train_info.index)
    shift, scale = np.full(len(sign), np.nan), np.full(len(sign), np.nan)
    for i, (name, unit) in enumerate(new_info["unit"].items()):
        same = _same_unit(train, unit, sign[i])
        if new_factors is not None and train_factors is not None and len(same):
            values = new_factors.loc[name]
            shared = sum((train_factors.loc[same.index, col] == value).to_numpy(dtype=int)
                         for col, value in values.items() if pd.notna(value))
            if np.max(shared, initial=0) > 0:
                same = same[shared == np.max(shared)]
        if len(same):
            shift[i], scale[i] = same["shift"].median(), same["scale"].median()
    return shift, scale, sign


def task_scale_covariance(norm: Normalizer, train_info: pd.DataFrame,
                          new_info: pd.DataFrame, min_tasks: int = 3) -> np.ndarray:
    """Spread of the raw scale among the training tasks like each new task.

    The covariance of ``(shift, scale)`` over the training tasks with the
    same unit and direction as the new task (all of them, whatever their
    factors): how far a task's raw offset and range may lie from the prior of
    :func:`new_task_prior`, and how the two vary together.

    Returns
    -------
    ndarray of shape ``(len(new_info), 2, 2)``; NaN for a new task with fewer
    than ``min_tasks`` such training tasks.
    """
    sign = _signs(new_info)
    train = _train_scales(norm, train_info)
    cov = np.full((len(sign), 2, 2), np.nan)
    for i, unit in enumerate(new_info["unit"]):
        same = _same_unit(train, unit, sign[i])[["shift", "scale"]].dropna()
        if len(same) >= min_tasks:
            cov[i] = np.cov(same.to_numpy(dtype=np.float64), rowvar=False)
    return cov


def refit_task_scale(shift: float, scale: float, raw: np.ndarray, y: np.ndarray,
                     cov: np.ndarray | None = None, noise: float = 0.0) -> tuple[float, float]:
    """A new task's raw ``shift`` and ``scale`` refitted to its known scores.

    ``raw ~ shift + scale * y`` on the known cells (``y``: their predictions
    made without any known score, in the direction of the task). Without a
    prior covariance, or with ``noise`` 0, only the offset moves (to the mean
    residual). Otherwise both move to the posterior mean of a Bayesian linear
    regression: prior ``N((shift, scale), cov)`` (:func:`task_scale_covariance`),
    residual spread ``noise * scale`` in raw units. A few known scores thus
    move offset and range part of the way, along the directions in which the
    training tasks' scales differ, instead of shifting every prediction by
    their mean residual. A refit that would make the scale non-positive falls
    back to the offset alone.
    """
    resid = np.asarray(raw, np.float64) - shift - scale * np.asarray(y, np.float64)
    if cov is None or noise <= 0 or not np.isfinite(cov).all():
        return shift + float(resid.mean()), scale
    x = np.stack([np.ones_like(resid), np.asarray(y, np.float64)], axis=1)
    gram = x @ cov @ x.T + (noise * scale) ** 2 * np.eye(len(resid))
    d_shift, d_scale = cov @ x.T @ np.linalg.solve(gram, resid)
    if scale + d_scale <= 0:
        return shift + float(resid.mean()), scale
    return shift + float(d_shift), scale + float(d_scale)


_CLASSES = {"minmax": MinMaxNormalizer, "zscore": ZScoreNormalizer, "logit": LogitNormalizer,
            "paper": PaperNormalizer}
_OPTIONS = {"logit": ("eps",)}


def make_normalizer(name: str = "minmax", **options) -> Normalizer:
    """A new, unfitted normalizer by name (one of :data:`NORMALIZATIONS`)."""
    if name not in _CLASSES:
        raise DataError(f"unknown normalization {name!r}; expected one of {list(NORMALIZATIONS)}")
    return _CLASSES[name](**options)
