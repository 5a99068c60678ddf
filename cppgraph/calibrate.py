"""Prediction intervals: split-conformal residuals of a calibration refit.

A fitted :class:`~cppgraph.estimator.CPPGraph` cannot measure its own
errors on new models honestly: its shared weights have seen every training
model. So :func:`fit_calibration` refits the same configuration once on the
training data without

- a random share of the models (:data:`HOLD_MODELS`), which then come back
  as new models with 0, 1, 2, 3 or 5 known scores (:data:`KNOWN_COUNTS`),
- a random share of the tasks (:data:`HOLD_TASKS`, when there are at least
  :data:`MIN_TASKS`), which come back as new tasks the same way,
- a random share of the remaining cells (:data:`HOLD_CELLS`), which are then
  predicted as unobserved cells of training models.

On data larger than :data:`MAX_REFIT_CELLS` cells, the refit also leaves out
random training models (not scored), so that its cost stays that of a fit
on that many cells.

The held-out models also include the best models (:data:`TOP_MODELS`, by the
mean percentile of their scores within their tasks): new models above every
training model, where predictions extrapolate. A new model whose known scores
(without any, its predictions) sit on average at or above the
``frontier_level`` percentile (configuration, 0.9) of their tasks' training
scores is calibrated on the held-out models that met the same rule in the
refit (kind ``"top"``), the others on the rest (kind ``"model"``), so that
intervals widen at the frontier. The ``"top"`` kind has its own task error scale
(below): that of the training cells at or above the ``frontier_level``
percentile of their task, so that the frontier's intervals widen most on the
tasks whose best scores the engine misses most (on a task where most models
score near the floor, e.g. competition mathematics, its mean error says little
about the errors of the best).

The refit keeps each held-out cell's conformity score: its absolute error on
the fitted model's normalized scale divided by its task's error scale (the
fitted model's mean absolute leak-free training residual of the task, shrunk
toward the mean of all tasks: the scale the intervals use, so that the
refit's larger errors on less data widen the intervals rather than narrow
them). A held-out unobserved cell gives two scores: that one, and its error
divided by the refit's own task error scale. The refit trains on less data and
errs more than the fitted model on unobserved cells of training models, so the
first alone makes their intervals wider than they need to be; the second alone
(a held-out error over the same model's training residuals) made them cover
less than their level on some data; the quantile is taken over both (the choice
and its figures are in ``docs/ENGINE.md``). A cell's interval at level ``a``
is its prediction plus or minus the conformal ``a``-quantile of the scores of
its kind (unobserved cell, new model with that many known scores, new task)
times its task's scale, clipped to the task's declared range. The width thus
grows with the task's spread of errors, with fewer known scores, and for new
entities.

An observed training cell is predicted with its fold out of the graph; its
interval is that of an unobserved cell.

Under ``known_path = "auto"`` the refit predicts its held-out models and tasks
with known scores both through the known-score stages and by fold-in, and keeps
fold-in (for models and for tasks apart) only where the models (tasks) it held
out at random err less with it by more than :data:`PATH_T` standard errors of
the per-entity difference, over at least :data:`MIN_PATH_ENTITIES` of them
(:func:`_choose_path`; the best models are left out of that comparison, as
models above the training ones are no guide to the usual new model). Its
conformity scores are then those of the path kept.

The refit's signed errors on its held-out models without known scores also
give the correlation of two tasks' errors on a new model
(``Calibration.error_corr``), on which :mod:`cppgraph.suggest` plans.

The refit needs nothing the fit learns (only its data, configuration and
normalizer), so :func:`calibrating` starts it in a second process while the
fit trains, where a second core is free (``calibration_process``);
only the division by the fitted model's task scale waits for the fit. The
numbers are the same as one fit after the other in one process.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cppgraph import aside
from cppgraph.config import KNOWN_PATHS
from cppgraph.data.dataset import removable_cells
from cppgraph.errors import CppGraphError, DataWarning
from cppgraph.threads import resolve_threads
from cppgraph.train import score_matrix

#: Share of the models held out of the calibration refit (new models), at most MAX_MODELS.
HOLD_MODELS = 0.2
MAX_MODELS = 500
#: Share of the models, the best by the mean percentile of their scores, also held out.
TOP_MODELS = 0.1
#: Share of the tasks held out (new tasks), if there are at least MIN_TASKS.
HOLD_TASKS = 0.1
MIN_TASKS = 5
#: Share of the remaining cells held out (unobserved cells of training models), at most
#: MAX_SCORES.
HOLD_CELLS = 0.1
#: The refit trains on at most this many cells: on larger data it also leaves out random
#: training models with all their scores (see the module docstring).
MAX_REFIT_CELLS = 50_000
#: Each kind keeps at most this many conformity scores (a random subset).
MAX_SCORES = 5000
#: Known-score counts at which new models and tasks are calibrated; an entity with
#: more known scores uses the largest.
KNOWN_COUNTS = (0, 1, 2, 3, 5)
#: The task error scales are measured on at most this many training cells.
MAX_SCALE_CELLS = 50_000
#: Pseudo-count of the mean error that each task's error scale shrinks toward.
SCALE_PRIOR = 5.0
#: Under ``known_path = "auto"``, fold-in replaces the stages only when the entities held
#: out at random err less with it by more than this many standard errors of the paired
#: difference.
PATH_T = 1.0
#: ... and only when there are at least this many of them (fewer do not overturn the default).
MIN_PATH_ENTITIES = 20
#: The fewest conformity scores a kind needs; with fewer, its intervals are the whole range.
MIN_SCORES = 20
KINDS = ("cell", "model", "top", "task")


@dataclass
class Calibration:
    """Sorted conformity scores by kind, and the fitted model's per-task error scale.

    ``scores["cell"]`` is one array; ``scores["model"]``, ``scores["top"]`` and
    ``scores["task"]`` map a known-score count to an array. ``error_corr``: the
    ``[tasks, tasks]`` correlation of the refit's errors on its held-out models
    without known scores (:func:`cppgraph.suggest.task_correlation`; None when it
    held out no model). :meth:`to_dict` leaves it out: a model folder keeps it
    with the weights (:mod:`cppgraph.persist`). ``known_path``: by kind (``"model"``,
    ``"task"``), the path of known scores whose errors the scores are (configuration
    ``known_path``; under ``"auto"``, the one chosen). ``top_scale``: the task error
    scale of the ``"top"`` scores (:func:`task_scales`; None in a folder saved before it
    was kept: ``scale`` then serves them too).
    """

    scale: np.ndarray
    scores: dict = field(default_factory=dict)
    error_corr: np.ndarray | None = None
    known_path: dict | None = None
    top_scale: np.ndarray | None = None

    def quantile(self, kind: str, level: float, known: int = 0) -> float:
        """Conformal ``level``-quantile of the scores of ``kind`` (``inf`` if too few)."""
        values = self.scores.get(kind)
        if isinstance(values, dict):
            counts = sorted(values)
            at = [c for c in counts if c <= known]
            values = values[at[-1]] if at else None
        if values is None or len(values) < MIN_SCORES:
            return float("inf")
        n = len(values)
        rank = int(np.ceil((n + 1) * level))
        return float(values[rank - 1]) if rank <= n else float("inf")

    def to_dict(self) -> dict:
        def plain(v):
            return {str(k): plain(x) for k, x in v.items()} if isinstance(v, dict) else \
                [float(x) for x in v]
        out = {"scale": plain(self.scale), "scores": {k: plain(v) for k, v in self.scores.items()},
               "known_path": self.known_path}
        if self.top_scale is not None:
            out["top_scale"] = plain(self.top_scale)
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "Calibration":
        def arr(v):
            return {int(k): arr(x) for k, x in v.items()} if isinstance(v, dict) else \
                np.asarray(v, dtype=np.float64)
        scale = np.asarray(d["scale"], dtype=np.float64)
        scores = {k: arr(v) for k, v in d["scores"].items()}
        for k, v in scores.items():
            flat = np.concatenate(list(v.values())) if isinstance(v, dict) and v else v
            if k not in KINDS or not np.isfinite(np.asarray(flat, dtype=float)).all():
                raise ValueError(f"calibration scores {k!r} are not finite numbers")
        top = d.get("top_scale")  # a folder from before the key: the task scale
        top = None if top is None else np.asarray(top, dtype=np.float64)
        for v in (scale, top):
            if v is not None and not (v.shape == scale.shape and np.isfinite(v).all()
                                      and (v > 0).all()):
                raise ValueError("calibration scale must be positive numbers, one per task")
        paths = d.get("known_path")  # a folder from before the key: the stages
        if paths is not None and not (isinstance(paths, dict) and all(
                k in ("model", "task") and v in KNOWN_PATHS[1:] for k, v in paths.items())):
            raise ValueError(f"calibration known_path must map model/task to one of "
                             f"{list(KNOWN_PATHS[1:])}; got {paths!r}")
        return cls(scale, scores, known_path=paths, top_scale=top)


def task_scales(est, top: bool = True) -> tuple[pd.Series, pd.Series | None]:
    """Two error scales per task of ``est`` (without ``top``, the task scale and None). The task scale: the mean absolute leak-free
    residual of its training cells on its normalized scale, shrunk toward the mean over
    all cells by :data:`SCALE_PRIOR` pseudo-cells (over a random :data:`MAX_SCALE_CELLS`
    of the cells when there are more). The top scale: the same over the cells whose score
    is at or above the ``frontier_level`` percentile of their task's training scores,
    shrunk toward the task scale (the scale of models above the training ones: on a task
    where most models score near its floor, the errors of the best are far larger than
    the task's mean)."""
    ts = est.training_scores_
    rows, cols = np.nonzero(ts.known)
    if len(rows) > MAX_SCALE_CELLS:  # a random subset estimates the means as well
        keep = np.sort(np.random.default_rng(est.config.random_state).choice(
            len(rows), MAX_SCALE_CELLS, replace=False))
        rows, cols = rows[keep], cols[keep]
    pred = est.observed_stage_.apply(ts.predicted[rows, cols], rows, cols, ts.fold[rows, cols], ts)
    err = np.abs(pred - ts.y[rows, cols])
    n_tasks = ts.y.shape[1]
    ok = np.isfinite(err)
    mean = float(err[ok].mean()) if ok.any() else 1.0
    mean = mean if mean > 0 else 1.0
    total = np.bincount(cols[ok], err[ok], minlength=n_tasks)
    count = np.bincount(cols[ok], minlength=n_tasks)
    scale = (total + SCALE_PRIOR * mean) / (count + SCALE_PRIOR)
    if not top:
        return pd.Series(scale, index=est.data_.tasks), None
    high = ok & (percentiles(ts.y, cols, ts.y[rows, cols]) >= est.config.frontier_level)
    total = np.bincount(cols[high], err[high], minlength=n_tasks)
    count = np.bincount(cols[high], minlength=n_tasks)
    best = (total + SCALE_PRIOR * scale) / (count + SCALE_PRIOR)
    return pd.Series(scale, index=est.data_.tasks), pd.Series(best, index=est.data_.tasks)


def percentiles(y: np.ndarray, cols: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The mid-rank percentile of each normalized value among the training scores ``y``
    (``[models, tasks]``, NaN where unknown) of its task ``cols``."""
    out = np.full(len(values), np.nan)
    known = ~np.isnan(y)
    for j in np.unique(cols):
        col = np.sort(y[known[:, j], j])
        at = cols == j
        if len(col):
            out[at] = (np.searchsorted(col, values[at], "left")
                       + np.searchsorted(col, values[at], "right")) / (2.0 * len(col))
    return out


def top_models(est, names: list, known: pd.DataFrame, predicted: pd.DataFrame) -> np.ndarray:
    """Per new model of ``names``: whether it is calibrated as a model above the training
    models (see the module docstring). ``known``: its known scores (``model``, ``task``,
    raw ``score``); ``predicted``: its normalized predictions (``model``, ``task``,
    ``value``), used for a model without known scores."""
    y = est.normalizer_.transform(known["task"], known["score"].to_numpy(dtype=np.float64),
                                  models=known["model"].to_numpy())
    guess = predicted[~predicted["model"].isin(set(known["model"]))]
    models = np.concatenate([known["model"].to_numpy(), guess["model"].to_numpy()])
    tasks = np.concatenate([known["task"].to_numpy(), guess["task"].to_numpy()])
    values = np.concatenate([y, guess["value"].to_numpy(dtype=np.float64)])
    rows = pd.Index(names).get_indexer(models)
    cols = pd.Index(est.data_.tasks).get_indexer(tasks)
    ok = (rows >= 0) & (cols >= 0) & np.isfinite(values)
    p = percentiles(est.training_scores_.y, cols[ok], values[ok])
    rows, ok = rows[ok], np.isfinite(p)
    total = np.bincount(rows[ok], p[ok], minlength=len(names))
    count = np.bincount(rows[ok], minlength=len(names))
    return (count > 0) & (total >= est.config.frontier_level * np.maximum(count, 1))


def _best(y: np.ndarray, models: list, share: float, eligible: set, most: int) -> list:
    """The ``share`` of the training models (at most ``most``) of ``eligible`` with the
    highest mean percentile of their scores within their tasks (``y``: the normalized
    training scores, :func:`cppgraph.train.score_matrix`, rows in the order of ``models``)."""
    rows, cols = np.nonzero(~np.isnan(y))
    p = percentiles(y, cols, y[rows, cols])
    level = pd.Series(np.bincount(rows, p, minlength=y.shape[0])
                      / np.maximum(np.bincount(rows, minlength=y.shape[0]), 1), index=models)
    level = level[level.index.isin(eligible)].sort_values(ascending=False, kind="stable")
    n = min(int(round(share * len(models))), len(level), most)
    return sorted(level.index[:n]) if n > 0 else []


def _draw(names: list, share: float, rng: np.random.Generator, eligible: set,
          most: int) -> list:
    pool = [n for n in names if n in eligible]
    n = min(int(round(share * len(names))), len(pool), most)
    return sorted(rng.choice(pool, n, replace=False).tolist()) if n > 0 else []


def _known_cells(scores: pd.DataFrame, key: str, k: int, rng: np.random.Generator) -> pd.Series:
    """A boolean mask over ``scores``: ``k`` random cells of each ``key`` entity (fewer if
    it has only ``k`` or fewer, so that at least one cell is left to predict)."""
    mask = np.zeros(len(scores), dtype=bool)
    for _, rows in scores.groupby(key).indices.items():
        take = min(k, len(rows) - 1)
        if take > 0:
            mask[rng.choice(rows, take, replace=False)] = True
    return mask


def _spare_models(scores: pd.DataFrame, rng: np.random.Generator) -> list:
    """Random models whose scores the refit leaves out so that it keeps at most
    :data:`MAX_REFIT_CELLS` of ``scores`` (none when there are no more)."""
    if len(scores) <= MAX_REFIT_CELLS:
        return []
    counts = scores.groupby("model").size()
    counts = counts.iloc[rng.permutation(len(counts))]
    keep = int(np.searchsorted(counts.cumsum().to_numpy(), MAX_REFIT_CELLS, side="right"))
    return sorted(counts.index[keep:])


@contextmanager
def calibrating(est, *, relay: bool):
    """The calibration of ``est``'s fit, from just before its network trains (the
    graph and normalizer ready) to its :meth:`_Calibrating.result`: the refit starts
    at once in a process beside this one (:mod:`cppgraph.aside`) when
    ``calibration_process`` is set, the machine can (:func:`cppgraph.aside.can_run_aside`:
    among others, the fit computes on one thread) and a core is free now; else
    :meth:`_Calibrating.result` runs it here. ``relay``: pass on the
    refit's epochs."""
    run = _Calibrating(est, relay)
    try:
        yield run
    finally:
        run.close()


class _Calibrating:
    """The calibration of one fit in progress (see :func:`calibrating`)."""

    def __init__(self, est, relay: bool):
        cfg = est.fit_config_
        self.est, self.wanted, self.process = est, cfg.intervals, None
        if (cfg.intervals and cfg.calibration_process
                and aside.can_run_aside(resolve_threads(cfg.n_jobs)) and aside.spare_core()):
            self.process = aside.Aside(refit_errors, est.data_, cfg, est.normalizer_,
                               score_matrix(est.graph_), relay=relay)

    def watch(self, callback):
        """``callback`` for the main fit's epochs, which also receives what the refit
        has sent so far (so that its pipe does not fill)."""
        if self.process is None:
            return callback

        def wrapped(entry):
            self.process.collect()
            if callback is not None:
                callback(entry)
        return wrapped

    def result(self, callback=None) -> Calibration | None:
        """The fitted ``est``'s calibration (None without intervals); ``callback``
        receives the refit's epochs."""
        if not self.wanted:
            return None
        errors = None
        if self.process is not None:
            try:
                errors = self.process.result(callback)
            except aside.AsideDied as exc:  # e.g. killed for memory: refit here instead
                warnings.warn(f"{exc}; the calibration fit runs again in this process",
                              RuntimeWarning, stacklevel=2)
        return fit_calibration(self.est, callback, errors)

    def close(self) -> None:
        if self.process is not None:
            self.process.close()


def fit_calibration(est, callback=None, errors: dict | None = None) -> Calibration:
    """The calibration of ``est`` (fitted, its stages too): the errors of
    :func:`refit_errors` (run here unless given, e.g. by a refit run beside the fit)
    over ``est``'s task error scales (:func:`task_scales`: the top scale for the
    ``"top"`` kind, the task scale for the others).

    ``callback`` receives the refit's epoch entries, marked ``"phase": "calibration"``.
    """
    scale, top_scale = task_scales(est)
    if errors is None:
        errors = refit_errors(est.data_, est.fit_config_, est.normalizer_,
                              est.training_scores_.y, callback)
    mean = float(scale.mean())

    def scored(held, by=scale) -> np.ndarray:
        err, tasks = held
        unit = np.full(len(err), mean) if tasks is None else by.reindex(tasks).to_numpy()
        return np.sort(err / unit)

    errors = dict(errors)
    residuals = errors.pop("residuals", None)
    paths = errors.pop("paths", None)
    out = {}
    for kind, held in errors.items():
        if kind == "cell":
            # each cell gives two scores: its error over the fitted model's scale and over
            # the refit's own (already divided; see the module docstring)
            fitted, own = held
            out[kind] = np.sort(np.concatenate([scored(fitted), own]))
        else:
            out[kind] = {k: scored(v, top_scale if kind == "top" else scale)
                         for k, v in held.items()}
    corr = None
    if residuals is not None:
        from cppgraph.suggest import task_correlation  # it imports this module
        corr = task_correlation(residuals, prior=task_correlation(est.training_scores_.y))
    return Calibration(scale.to_numpy(dtype=np.float64), out, corr, paths or None,
                       top_scale.to_numpy(dtype=np.float64))


def refit_errors(data, cfg, normalizer, y: np.ndarray, callback=None) -> dict:
    """Refit configuration ``cfg`` on ``data`` without held-out models, tasks and cells,
    and return the absolute errors of their predictions on ``normalizer``'s scale (see
    the module docstring). Needs only what a fit has before it trains: ``normalizer``
    fitted on ``data``, and ``y`` its training scores (:func:`cppgraph.train.score_matrix`),
    so that it can run beside the fit.

    Returns, by kind: ``"cell"``: ``((errors, tasks), errors over the refit's own task
    scale)``; ``"model"``, ``"top"``: ``{known count: (errors, tasks)}``; ``"task"``:
    ``{known count: (errors, None)}`` (the mean scale). At most :data:`MAX_SCORES`
    errors each, drawn at random. With held-out models, also ``"residuals"``: their
    signed errors without known scores (prediction minus score), ``[held-out models,
    data.tasks]``, NaN where a model has no score.
    """
    rng = np.random.default_rng(cfg.random_state + 11)
    s = data.scores
    counts_m, counts_t = s.groupby("model").size(), s.groupby("task").size()
    cold_ok = normalizer.by != "model"
    models, best = [], []
    if cold_ok and len(data.models) >= 10:
        eligible = set(counts_m[counts_m >= 2].index)
        best = _best(y, data.models, TOP_MODELS, eligible, MAX_MODELS // 2)
        models = sorted(best + _draw(data.models, HOLD_MODELS, rng, eligible - set(best),
                                     MAX_MODELS))
    tasks = _draw(data.tasks, HOLD_TASKS, rng, set(counts_t[counts_t >= 2].index),
                  len(data.tasks)) if len(data.tasks) >= MIN_TASKS else []
    rest = s[~s["model"].isin(models) & ~s["task"].isin(tasks)]
    spare = _spare_models(rest, rng)
    rest = rest[~rest["model"].isin(spare)]
    n_cells = min(int(round(HOLD_CELLS * len(rest))), MAX_SCORES)
    order = rng.permutation(rest.index.to_numpy())[:n_cells]
    cells = removable_cells(rest, order)
    sub = data.without(models=models + spare, tasks=tasks, cells=cells)
    from cppgraph import coldstart  # both import this module
    from cppgraph.estimator import CPPGraph

    cal = CPPGraph(cfg.replace(intervals=False, verbose=False, random_state=cfg.random_state + 1))
    cal.fit(sub, callback=None if callback is None else
            (lambda entry: callback({**entry, "phase": "calibration"})))

    def signed_errors(table: pd.DataFrame, truth: pd.DataFrame) -> np.ndarray:
        got = table.set_index(["model", "task"])["predicted"].reindex(
            pd.MultiIndex.from_frame(truth[["model", "task"]])).to_numpy(dtype=np.float64)
        tasks_, models_ = truth["task"].to_numpy(), truth["model"].to_numpy()
        return (normalizer.transform(tasks_, got, models=models_)
                - normalizer.transform(tasks_, truth["score"].to_numpy(), models=models_))

    def finite(signed: np.ndarray, truth: pd.DataFrame, mask=True) -> tuple[np.ndarray, np.ndarray]:
        """The absolute errors and tasks of the finite cells of ``mask``."""
        ok = np.isfinite(signed) & mask
        return np.abs(signed[ok]), truth["task"].to_numpy()[ok]

    def drawn(held: tuple[np.ndarray, np.ndarray], gen=rng) -> tuple[np.ndarray, np.ndarray]:
        err, tasks_ = held
        if len(err) > MAX_SCORES:
            pick = gen.choice(len(err), MAX_SCORES, replace=False)
            err, tasks_ = err[pick], tasks_[pick]
        return err, tasks_

    out = {}
    if cells:
        held = s.loc[cells]
        every = finite(signed_errors(cal.predict(held[["model", "task"]]), held), held)
        fitted = drawn(every)  # two draws, one per scale
        own, own_tasks = drawn(every)
        own = own / task_scales(cal, top=False)[0].reindex(own_tasks).to_numpy()
        out["cell"] = (fitted, own)
    # "auto": each path's errors with known scores, the path chosen by _choose_path kept.
    # The first path draws its subsets from rng as a single path does; the other from its own.
    paths = ("stages", "fold-in") if cfg.known_path == "auto" else (cfg.known_path,)
    other_rng = np.random.default_rng(cfg.random_state + 12)
    chosen = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        for kind, names in (("model", models), ("task", tasks)):
            if not names:
                continue
            held = s[s[kind].isin(names)]
            other = "task" if kind == "model" else "model"
            held = held[held[other].isin(sub.tasks if kind == "model" else sub.models)]
            factors = (data.model_factors if kind == "model" else data.task_factors).loc[names]
            # too few held out at random to overturn the first path: only it is tried
            at_random = set(names) - set(best if kind == "model" else [])
            tried = paths if len(at_random) >= MIN_PATH_ENTITIES else paths[:1]
            found = {path: {} for path in tried}  # path -> k -> {kind: errors}
            entity = {path: [] for path in tried}  # with known scores: errors by name
            for k in KNOWN_COUNTS:
                mask = _known_cells(held, kind, k, rng)
                known = held[mask][["model", "task", "score"]]
                rest = held[~mask]
                for path in tried if k else tried[:1]:  # without known scores, one path
                    cal.config = cal.config.replace(known_path=path)
                    table = coldstart.predict_new(
                        cal, kind, factors.rename_axis(kind).reset_index(), known, files={},
                        task_info=data.task_info.loc[names].reset_index() if kind == "task"
                        else None, predict_known=False)
                    signed = signed_errors(table, rest)
                    if kind == "task":
                        parts = {"task": finite(signed, rest)}
                    else:
                        if k == 0:  # the held-out models' errors by task, for their correlation
                            out["residuals"] = (
                                rest.assign(error=signed)
                                .pivot(index="model", columns="task", values="error")
                                .reindex(columns=data.tasks).to_numpy(dtype=np.float64))
                        guess = pd.DataFrame({"model": table["model"], "task": table["task"],
                                              "value": cal.normalizer_.transform(
                                                  table["task"],
                                                  table["predicted"].to_numpy(dtype=float),
                                                  models=table["model"].to_numpy())})
                        top = pd.Series(top_models(cal, names, known, guess), index=names)
                        on_top = top.reindex(rest["model"]).to_numpy(dtype=bool)
                        parts = {"model": finite(signed, rest, ~on_top),
                                 "top": finite(signed, rest, on_top)}
                    if k:  # the choice is made on the entities held out at random
                        randoms = np.isfinite(signed) & rest[kind].isin(at_random).to_numpy()
                        entity[path].append(pd.DataFrame({"name": rest[kind].to_numpy()[randoms],
                                                          "err": np.abs(signed[randoms])}))
                    found[path][k] = {name: drawn(held_errors, rng if path == tried[0]
                                                  else other_rng)
                                      for name, held_errors in parts.items()}
            chosen[kind] = _choose_path({p: pd.concat(v) for p, v in entity.items() if v},
                                        tried[0])
            for k in KNOWN_COUNTS:
                for name, err in found[chosen[kind] if k else tried[0]][k].items():
                    out.setdefault(name, {})[k] = (err[0], None) if name == "task" else err
    out["paths"] = chosen
    return out


def _choose_path(errors: dict, default: str) -> str:
    """The path of ``errors`` (path -> frame of held-out entities' ``name`` and absolute
    ``err``) to keep: ``default`` unless another's mean error per entity is lower by
    more than :data:`PATH_T` standard errors of the paired per-entity difference, over
    at least :data:`MIN_PATH_ENTITIES` entities (a handful of held-out entities do not
    overturn the default on noise)."""
    means = {p: e.groupby("name")["err"].mean() for p, e in errors.items()}
    if default not in means:
        return default
    kept, kept_t = default, PATH_T
    for path, mean in means.items():
        diff = (means[default] - mean).dropna()
        if path == default or len(diff) < MIN_PATH_ENTITIES:
            continue
        sd = float(diff.std(ddof=1))
        t = float(diff.mean()) / (sd / np.sqrt(len(diff))) if sd > 0 else \
            (np.inf if diff.mean() > 0 else 0.0)
        if t > kept_t:
            kept, kept_t = path, t
    return kept


def half_widths(calibration: Calibration | None, level: float, kind: str,
                task_pos: np.ndarray | None, known: np.ndarray | int = 0,
                top: np.ndarray | None = None) -> np.ndarray:
    """Half-widths (normalized units) of cells of ``kind`` (``"cell"``, ``"model"`` or
    ``"task"``) at ``level``: cells of the training tasks at positions ``task_pos``
    (a new task's cells: ``None``, the mean scale), of entities with ``known`` known
    scores each (one count, or one per cell). ``top`` (new models, one per cell) marks
    the cells of models above the training models (:func:`top_models`): they use the
    ``"top"`` scores, or the ``"model"`` ones when there are too few of those."""
    if calibration is None:
        raise CppGraphError("this model was fitted without intervals (intervals = false); "
                            "refit it with intervals = true to get them")
    if not (isinstance(level, (int, float)) and 0 < level < 1):
        raise CppGraphError(f"the interval level must be in (0, 1), e.g. 0.9; got {level!r}")
    if task_pos is None:
        scale = np.full(np.shape(known), calibration.scale.mean())
    else:
        scale = calibration.scale[np.asarray(task_pos, dtype=np.int64)]
    known = np.broadcast_to(np.asarray(known, dtype=np.int64), scale.shape)
    top = np.zeros(scale.shape, dtype=bool) if top is None else \
        np.broadcast_to(np.asarray(top, dtype=bool), scale.shape)
    q = {(k, False): calibration.quantile(kind, level, int(k)) for k in np.unique(known)}
    by_top = np.zeros(scale.shape, dtype=bool)  # cells that take the "top" scores
    for k in np.unique(known[top]):
        at_top = calibration.quantile("top", level, int(k))
        q[k, True] = at_top if np.isfinite(at_top) else q[k, False]
        by_top |= top & (known == k) & np.isfinite(at_top)
    if task_pos is not None and calibration.top_scale is not None:  # and their own scale
        scale = np.where(by_top, calibration.top_scale[np.asarray(task_pos, dtype=np.int64)],
                         scale)
    if not all(np.isfinite(v) for v in q.values()):
        what = {"cell": "unobserved cells", "model": "new models", "task": "new tasks"}[kind]
        warnings.warn(f"too few calibration errors of {what} for a {level:g} interval (the "
                      "training data has too few models, tasks or cells to hold out, or the "
                      "level is too high): those intervals span the tasks' whole declared "
                      "range (unbounded without one)", DataWarning, stacklevel=3)
    return np.array([q[k, t] for k, t in zip(known.tolist(), top.tolist())],
                    dtype=np.float64) * scale
