"""Which benchmarks to run next on a model, so that its other predictions improve most.

The errors of a model's predictions across tasks are taken as jointly
Gaussian: task ``i``'s standard deviation is the fitted model's error scale
for a new model with no known score (its calibration, :mod:`cppgraph.calibrate`).
For a new model the correlation of two tasks is that of the calibration
fit's errors on the models it held out, predicted without known scores
(pairwise over the models that have both, shrunk toward the training scores'
correlation when few do; configuration ``suggest_correlation``): tasks whose
scores rise together with size may still err apart, and what a known score
tells of the others is how its error goes with theirs. For a training model,
and without those errors, it is the correlation of the normalized training
scores (shrunk toward 0). Evaluating a task reveals its error (up to the
error left on a fully known model), and the predictions of the other tasks
move linearly in the revealed errors, plus a shift that does not depend on
them: an *update* gives, for a set of revealed tasks, how much each
prediction moves per unit of each revealed error (``b``) and that shift
(``m``). Each error left is then Gaussian with mean ``m`` and a variance
that follows from ``b``.

- A training model's next scores join the graph at its next fit: the
  Gaussian conditional mean (:func:`gaussian_update`).
- A new model's known scores move its predictions through the known-score
  stages (:mod:`cppgraph.stages`), which configuration ``suggest_plan``
  models as ``"gaussian"`` (the shrunk mean residual, which moves every
  task, and a share of the regression on the known scores taken as the
  conditional mean) or runs as they are (``"engine"``,
  :func:`engine_update`): on the prediction without known scores, and with
  each revealed task's score moved up and down by its error scale, so that
  central differences give ``b`` and the stages' output at the unmoved
  values gives ``m`` (the regression pulls the predictions toward what the
  known scores imply even when they equal the predictions, and reaches a
  task only when enough training models are scored on it and on every
  revealed task).

The tasks are chosen greedily, each the one after which the expected
absolute error summed over the target tasks (by default every task) still
unknown is lowest. Nothing is refitted: one step costs a few small linear
solves per candidate, and with ``"engine"`` one run of the stages'
regression per candidate. Where a fit's new models take fold-in instead of the
stages (``known_path``, :func:`cppgraph.coldstart.known_path`), the plan still
models the stages: no cheaper model of fold-in is measured.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
from scipy.special import erf

from cppgraph import coldstart
from cppgraph.errors import CppGraphError, DataError

#: Task pairs with fewer models scored on both have correlation 0.
MIN_OVERLAP = 3
#: A correlation from ``n`` shared models is shrunk toward 0 by ``n / (n + CORR_PRIOR)``.
CORR_PRIOR = 10.0
#: E|e| of a Gaussian error e is this times its standard deviation.
ABS_FROM_SD = float(np.sqrt(2.0 / np.pi))


def task_correlation(y: np.ndarray, prior: np.ndarray | None = None) -> np.ndarray:
    """``[tasks, tasks]`` correlation of the columns of ``y`` (NaN where unknown): pairwise
    over shared rows, shrunk by overlap toward ``prior`` (a correlation matrix; default
    0), projected to the nearest valid correlation matrix (eigenvalues clipped at a
    small floor, unit diagonal)."""
    frame = pd.DataFrame(y)
    corr = frame.corr(min_periods=MIN_OVERLAP).fillna(0.0).to_numpy()
    has = np.isfinite(y).astype(np.float64)
    overlap = has.T @ has
    weight = np.where(overlap >= MIN_OVERLAP, overlap / (overlap + CORR_PRIOR), 0.0)
    corr = corr * weight + (0.0 if prior is None else (1 - weight) * prior)
    np.fill_diagonal(corr, 1.0)
    vals, vecs = np.linalg.eigh((corr + corr.T) / 2)
    corr = (vecs * np.clip(vals, 1e-3, None)) @ vecs.T
    d = np.sqrt(np.diag(corr))
    return corr / np.outer(d, d)


def _rms(scores) -> float:
    values = np.concatenate(list(scores.values())) if isinstance(scores, dict) else scores
    return float(np.sqrt(np.mean(np.square(values)))) if len(values) else float("nan")


def error_model(est, *, new_model: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The prior covariance of a model's errors over the training tasks, and each
    task's noise variance (the error left when the model is otherwise fully known).

    The correlation is that of the training scores, or for a ``new_model`` under
    ``suggest_correlation = "errors"`` that of the calibration fit's errors on its
    held-out models (when it kept them)."""
    cal = est.calibration_
    if cal is None:
        raise CppGraphError("this model was fitted without intervals (intervals = false); "
                            "suggestions need them: refit it with intervals = true")
    cell = _rms(cal.scores.get("cell", []))
    cold = cal.scores.get("model")
    new = _rms(cold[min(cold)]) if cold else float("nan")
    if not np.isfinite(new):  # too few models to hold any out: the unobserved-cell errors
        new = cell
    if not np.isfinite(cell):
        cell = new / 2
    sd = cal.scale * new
    corr = cal.error_corr
    if corr is None or not new_model or est.config.suggest_correlation == "scores":
        corr = task_correlation(est.training_scores_.y)
    cov = corr * np.outer(sd, sd)
    return cov, (cal.scale * cell) ** 2


def gaussian_update(cov: np.ndarray, noise: np.ndarray, *, shrinkage: float = 0.0,
                    regression: float = 1.0):
    """The update (see the module docstring) of predictions that move by ``regression``
    of the Gaussian conditional mean of the errors given the revealed ones (each
    revealed up to ``noise``) and by ``1 - regression`` of their shrunk mean
    ``sum(r) / (n + shrinkage)`` (none when ``shrinkage`` is 0). The defaults are the
    conditional mean alone. ``update(sets)`` gives ``(b, m)`` per set of positions."""
    def update(sets):
        out = []
        for sel in sets:
            sel = list(sel)
            c_ss = cov[np.ix_(sel, sel)] + np.diag(noise[sel])
            b = regression * np.linalg.solve(c_ss, cov[sel, :]).T  # [tasks, revealed]
            if shrinkage > 0:
                b = b + (1.0 - regression) / (len(sel) + shrinkage)
            out.append((b, np.zeros(len(cov))))
        return out
    return update


def engine_update(est, prior: np.ndarray, step: np.ndarray):
    """The update (see the module docstring) of a new model's predictions by ``est``'s
    known-score stages: ``prior`` is its normalized prediction of every training task
    without known scores, ``step`` each task's error scale (the differences' step).
    Every set of one call runs through the stages in one batch of rows."""
    train = est.training_scores_

    def update(sets):
        rows = []
        for sel in sets:
            base = np.full(len(prior), np.nan)
            base[sel] = prior[sel]
            rows.append(base)
            for k in sel:
                for sign in (1.0, -1.0):
                    moved = base.copy()
                    moved[k] += sign * step[k]
                    rows.append(moved)
        known = np.stack(rows)
        pred = np.broadcast_to(prior, known.shape).copy()
        pred = est.known_correction_.apply(pred, known, pred.copy())
        pred = est.known_stage_.apply(pred, known, train)
        out, at = [], 0
        for sel in sets:
            sel = list(sel)
            moved = pred[at + 1:at + 1 + 2 * len(sel)]
            # the prediction falls by b for each unit of error (prediction minus score)
            b = ((moved[0::2] - moved[1::2]) / (2 * step[sel])[:, None]).T
            out.append((b, pred[at] - prior))
            at += 1 + 2 * len(sel)
        return out
    return update


def error_moments(cov: np.ndarray, noise: np.ndarray, revealed, b: np.ndarray,
                  m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each task's error once the tasks ``revealed``
    (positions; each revealed up to ``noise``) move the predictions by ``b`` per unit
    of their errors, plus ``m``: the error ``e_i - b_i e_S + m_i`` has variance
    ``C_ii - 2 b_i C_Si + b_i (C_SS + N_S) b_i``."""
    var = np.diag(cov).copy()
    sel = list(revealed)
    if sel:
        c_ss = cov[np.ix_(sel, sel)] + np.diag(noise[sel])
        c_s = cov[sel, :]
        var = var - 2 * np.einsum("ik,ki->i", b, c_s) + np.einsum("ik,kl,il->i", b, c_ss, b)
    return m, np.sqrt(np.clip(var, 0, None))


def expected_abs(mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """E|e| of Gaussian errors ``e`` (the folded normal's mean)."""
    shape = np.broadcast(mean, sd).shape
    mean = np.broadcast_to(np.asarray(mean, dtype=np.float64), shape).ravel()
    sd = np.broadcast_to(np.asarray(sd, dtype=np.float64), shape).ravel()
    out = np.abs(mean)
    pos = sd > 0
    z = mean[pos] / sd[pos]
    out[pos] = ABS_FROM_SD * sd[pos] * np.exp(-z * z / 2) + mean[pos] * erf(z / np.sqrt(2.0))
    return out.reshape(shape)


def plan(cov: np.ndarray, noise: np.ndarray, known, candidates, targets, budget: int, *,
         update=None) -> list[tuple[int, float, float]]:
    """Greedy choice of ``budget`` tasks among ``candidates`` (positions).

    Each step picks the candidate after which the expected absolute error
    summed over the ``targets`` still unknown (neither ``known``, chosen, nor
    this candidate) is lowest, the errors following ``update`` (default: the
    conditional mean, :func:`gaussian_update`) over the known and chosen tasks
    (:func:`error_moments`). Returns ``(task, expected MAE after the step,
    reduction)`` per step, both over the targets left once every step is taken
    (one fixed set).
    """
    update = update or gaussian_update(cov, noise)
    known, left, chosen = list(known), list(candidates), []

    def moments(sel, move):
        return error_moments(cov, noise, sel, *move)

    start = ((np.zeros(len(cov)), np.sqrt(np.clip(np.diag(cov), 0, None))) if not known
             else moments(known, update([known])[0]))
    after = [start]  # (mean, sd) after each step
    for _ in range(budget):
        sets = [known + chosen + [j] for j in left]
        best = None
        for j, sel, move in zip(left, sets, update(sets)):
            mean, sd = moments(sel, move)
            rest = [i for i in targets if i != j and i not in chosen]
            total = float(expected_abs(mean[rest], sd[rest]).sum())
            if best is None or total < best[0] - 1e-12:
                best = (total, j, (mean, sd))
        left.remove(best[1])
        chosen.append(best[1])
        after.append(best[2])
    final = [i for i in targets if i not in chosen]
    if not final:
        return [(j, 0.0, float("nan")) for j in chosen]
    mae = [float(expected_abs(mean[final], sd[final]).mean()) for mean, sd in after]
    return [(j, mae[r + 1], mae[r] - mae[r + 1]) for r, j in enumerate(chosen)]


def suggest(est, budget: int, *, model: str | None = None,
            model_factors: pd.DataFrame | None = None, known_scores: pd.DataFrame | None = None,
            candidates: dict | None = None, targets: list | dict | None = None,
            files: dict | None = None,
            progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """The ``budget`` tasks to evaluate next, in order, for a training model with gaps
    (``model``) or for each new model of ``model_factors`` (with ``known_scores``).

    ``candidates`` maps a model name to the tasks it may choose from (default:
    every task without a score, other than the ``targets`` when they are
    given). ``targets`` are the tasks whose predictions should improve: a
    list for every model, or a dict from model name to its list (default, and
    for a model the dict does not name: every task); a target with a known
    score, or once chosen, no longer counts. A plan that would leave no
    target unknown is an error (it would have nothing left to improve). Returns
    ``model, rank, task, expected_mae, reduction``: after each step, the
    expected mean absolute error (normalized scale) of the model's target
    tasks that stay unknown once the whole plan is run, and how much that
    step lowered it. ``progress`` is called with each model's name once its
    plan is made.
    """
    est._check_fitted()
    files = files or {}
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 1:
        raise CppGraphError(f"the budget must be a positive number of tasks; got {budget!r}")
    if (model is None) == (model_factors is None):
        raise CppGraphError("give either a training model's name or the factors of new models")
    tasks = est.data_.tasks
    if model is not None:
        if model not in est.model_index_:
            raise coldstart.unknown_name(model, list(est.model_index_), "model")
        names = [model]
        s = est.data_.scores
        known = {model: s.loc[s["model"] == model, "task"].tolist()}
    else:
        names, table = coldstart.parse_entities(est, "model", model_factors,
                                                files.get("model_factors"))
        known_frame = coldstart.parse_known(est, "model", known_scores, names,
                                            files.get("known_scores"))
        tasks_of = known_frame.groupby("model")["task"].agg(list)
        known = {n: tasks_of.get(n, []) for n in names}
    cov, noise = error_model(est, new_model=model is None)
    # A training model's next scores join the graph at its next fit: the conditional mean;
    # a new model's known scores move its predictions through the known-score stages.
    if model is not None:
        updates = {model: gaussian_update(cov, noise)}
    elif est.config.suggest_plan == "gaussian":
        modelled = gaussian_update(cov, noise, shrinkage=est.config.known_shrinkage,
                                   regression=est.config.known_regression)
        updates = dict.fromkeys(names, modelled)
    else:
        new = coldstart.attach(est, "model", names, table, known_frame.iloc[:0],
                               est.normalizer_, {})
        prior = coldstart.predict_pass(est, new, np.zeros(0, dtype=bool))[0]
        prior = prior.reshape(len(names), -1)
        step = np.sqrt(np.diag(cov))
        updates = {name: engine_update(est, prior[r], step) for r, name in enumerate(names)}
    rows = []
    for name in names:
        have = set(known[name])
        named = targets.get(name) if isinstance(targets, dict) else targets
        wanted = tasks if named is None else list(named)
        for t in wanted:
            if t not in est.task_index_:
                raise coldstart.unknown_name(t, tasks, "task")
        if candidates is not None and name in candidates:
            pool = [t for t in candidates[name] if t not in have]
        else:  # the targets themselves are no advice when they are named
            pool = [t for t in tasks if t not in have and (named is None or t not in wanted)]
        for t in pool:
            if t not in est.task_index_:
                raise coldstart.unknown_name(t, tasks, "task")
        if budget > len(pool):
            raise DataError(f"model {name!r} has {len(pool)} task(s) left to evaluate; the "
                            f"budget {budget} asks for more")
        aims = [est.task_index_[t] for t in dict.fromkeys(wanted) if t not in have]
        if not aims:
            raise DataError(f"model {name!r} already has a score on every target task")
        pos = [est.task_index_[t] for t in pool]
        steps = plan(cov, noise, sorted(est.task_index_[t] for t in have), pos, aims, budget,
                     update=updates[name])
        if set(aims) <= {j for j, _, _ in steps}:
            raise DataError(f"a budget of {budget} would evaluate every target task of model "
                            f"{name!r} ({len(aims)} without a score), leaving none to predict: "
                            "ask for fewer tasks")
        rows += [{"model": name, "rank": r + 1, "task": tasks[j], "expected_mae": mae,
                  "reduction": gain} for r, (j, mae, gain) in enumerate(steps)]
        if progress is not None:
            progress(name)
    return pd.DataFrame(rows, columns=["model", "rank", "task", "expected_mae", "reduction"])

