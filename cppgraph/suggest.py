"""Which benchmarks to run next on a model, so that its other predictions improve most.

The errors of a model's predictions across tasks are taken as jointly
Gaussian: task ``i``'s standard deviation is the fitted model's error scale
for a new model with no known score (its calibration, :mod:`cppgraph.calibrate`)
and the correlation of two tasks is that of their normalized training
scores (pairwise over the models that have both, shrunk toward 0 when few
do). Evaluating a task reveals its error (up to the error left on a fully
known model), and the predictions of the other tasks move as the engine
moves them: for a new model, by the known-score stages (the shrunk mean
residual, which moves every task, and a share of the regression on the
known scores, modelled as the Gaussian conditional mean); for a training
model, whose next scores join the graph at its next fit, by the conditional
mean. The tasks are chosen greedily, each the one after which the expected
absolute error summed over the target tasks (by default every task) still
unknown is lowest. Nothing is refitted: one choice costs a few small linear
solves per candidate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cppgraph import coldstart
from cppgraph.errors import CppGraphError, DataError

#: Task pairs with fewer models scored on both have correlation 0.
MIN_OVERLAP = 3
#: A correlation from ``n`` shared models is shrunk toward 0 by ``n / (n + CORR_PRIOR)``.
CORR_PRIOR = 10.0
#: E|e| of a Gaussian error e is this times its standard deviation.
ABS_FROM_SD = float(np.sqrt(2.0 / np.pi))


def task_correlation(y: np.ndarray) -> np.ndarray:
    """``[tasks, tasks]`` correlation of the columns of ``y`` (NaN where unknown): pairwise
    over shared rows, shrunk by overlap, projected to the nearest valid correlation
    matrix (eigenvalues clipped at a small floor, unit diagonal)."""
    frame = pd.DataFrame(y)
    corr = frame.corr(min_periods=MIN_OVERLAP).fillna(0.0).to_numpy()
    has = np.isfinite(y).astype(np.float64)
    overlap = has.T @ has
    corr = corr * overlap / (overlap + CORR_PRIOR)
    np.fill_diagonal(corr, 1.0)
    vals, vecs = np.linalg.eigh((corr + corr.T) / 2)
    corr = (vecs * np.clip(vals, 1e-3, None)) @ vecs.T
    d = np.sqrt(np.diag(corr))
    return corr / np.outer(d, d)


def _rms(scores) -> float:
    values = np.concatenate(list(scores.values())) if isinstance(scores, dict) else scores
    return float(np.sqrt(np.mean(np.square(values)))) if len(values) else float("nan")


def error_model(est) -> tuple[np.ndarray, np.ndarray]:
    """The prior covariance of a new model's errors over the training tasks, and each
    task's noise variance (the error left when the model is otherwise fully known)."""
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
    cov = task_correlation(est.training_scores_.y) * np.outer(sd, sd)
    return cov, (cal.scale * cell) ** 2


def error_variance(cov: np.ndarray, noise: np.ndarray, revealed, *, shrinkage: float = 0.0,
                   regression: float = 1.0) -> np.ndarray:
    """Each task's error variance once the tasks ``revealed`` (positions) are known and the
    predictions move as the engine moves a new model's (:mod:`cppgraph.stages`): by
    ``1 - regression`` of the shrunk mean residual of the known scores,
    ``sum(r) / (n + shrinkage)`` (none when ``shrinkage`` is 0), and by ``regression``
    of the Gaussian conditional mean. The defaults are the conditional mean alone.

    A known score reveals its task's error up to ``noise``; with ``b`` the
    weights of the resulting linear correction, the error left on task ``i`` has
    variance ``C_ii - 2 b_i C_Si + b_i (C_SS + N_S) b_i``.
    """
    var = np.diag(cov).copy()
    sel = list(revealed)
    if not sel:
        return np.clip(var, 0, None)
    c_ss = cov[np.ix_(sel, sel)] + np.diag(noise[sel])
    c_s = cov[sel, :]
    b = regression * np.linalg.solve(c_ss, c_s).T  # [tasks, revealed]
    if shrinkage > 0:
        b = b + (1.0 - regression) / (len(sel) + shrinkage)
    var = var - 2 * np.einsum("ik,ki->i", b, c_s) + np.einsum("ik,kl,il->i", b, c_ss, b)
    return np.clip(var, 0, None)


def plan(cov: np.ndarray, noise: np.ndarray, known, candidates, targets, budget: int, *,
         shrinkage: float = 0.0, regression: float = 1.0) -> list[tuple[int, float, float]]:
    """Greedy choice of ``budget`` tasks among ``candidates`` (positions).

    Each step picks the candidate after which the expected absolute error
    summed over the ``targets`` still unknown (neither ``known``, chosen, nor
    this candidate) is lowest, the errors following
    :func:`error_variance` over the known and chosen tasks (``shrinkage``,
    ``regression``: how the predictions move). Returns ``(task, expected MAE
    after the step, reduction)`` per step, both over the targets left once
    every step is taken (one fixed set).
    """
    move = dict(shrinkage=shrinkage, regression=regression)
    known, left, chosen = list(known), list(candidates), []
    sds = [np.sqrt(error_variance(cov, noise, known, **move))]  # after each step
    for _ in range(budget):
        best = None
        for j in left:
            sd = np.sqrt(error_variance(cov, noise, known + chosen + [j], **move))
            rest = [i for i in targets if i != j and i not in chosen]
            total = float(sd[rest].sum())
            if best is None or total < best[0] - 1e-12:
                best = (total, j, sd)
        left.remove(best[1])
        chosen.append(best[1])
        sds.append(best[2])
    final = [i for i in targets if i not in chosen]
    if not final:
        return [(j, 0.0, float("nan")) for j in chosen]
    mae = [ABS_FROM_SD * float(sd[final].mean()) for sd in sds]
    return [(j, mae[r + 1], mae[r] - mae[r + 1]) for r, j in enumerate(chosen)]


def suggest(est, budget: int, *, model: str | None = None,
            model_factors: pd.DataFrame | None = None, known_scores: pd.DataFrame | None = None,
            candidates: dict | None = None, targets: list | dict | None = None,
            files: dict | None = None) -> pd.DataFrame:
    """The ``budget`` tasks to evaluate next, in order, for a training model with gaps
    (``model``) or for each new model of ``model_factors`` (with ``known_scores``).

    ``candidates`` maps a model name to the tasks it may choose from (default:
    every task without a score). ``targets`` are the tasks whose predictions
    should improve: a list for every model, or a dict from model name to its
    list (default, and for a model the dict does not name: every task); a
    target with a known score, or once chosen, no longer counts. Returns
    ``model, rank, task, expected_mae, reduction``: after each step, the
    expected mean absolute error (normalized scale) of the model's target
    tasks that stay unknown once the whole plan is run, and how much that
    step lowered it.
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
        names, _ = coldstart.parse_entities(est, "model", model_factors, files.get("model_factors"))
        known_frame = coldstart.parse_known(est, "model", known_scores, names,
                                            files.get("known_scores"))
        tasks_of = known_frame.groupby("model")["task"].agg(list)
        known = {n: tasks_of.get(n, []) for n in names}
    cov, noise = error_model(est)
    # A new model's known scores move its predictions through the known-score stages;
    # a training model's next scores join the graph at its next fit: the conditional mean.
    move = {} if model is not None else dict(shrinkage=est.config.known_shrinkage,
                                             regression=est.config.known_regression)
    rows = []
    for name in names:
        have = set(known[name])
        pool = [t for t in (candidates or {}).get(name, tasks) if t not in have]
        for t in pool:
            if t not in est.task_index_:
                raise coldstart.unknown_name(t, tasks, "task")
        if budget > len(pool):
            raise DataError(f"model {name!r} has {len(pool)} task(s) left to evaluate; the "
                            f"budget {budget} asks for more")
        wanted = targets.get(name, tasks) if isinstance(targets, dict) else (
            tasks if targets is None else list(targets))
        for t in wanted:
            if t not in est.task_index_:
                raise coldstart.unknown_name(t, tasks, "task")
        aims = [est.task_index_[t] for t in dict.fromkeys(wanted) if t not in have]
        if not aims:
            raise DataError(f"model {name!r} already has a score on every target task")
        pos = [est.task_index_[t] for t in pool]
        steps = plan(cov, noise, [est.task_index_[t] for t in have], pos, aims, budget, **move)
        rows += [{"model": name, "rank": r + 1, "task": tasks[j], "expected_mae": mae,
                  "reduction": gain} for r, (j, mae, gain) in enumerate(steps)]
    return pd.DataFrame(rows, columns=["model", "rank", "task", "expected_mae", "reduction"])

