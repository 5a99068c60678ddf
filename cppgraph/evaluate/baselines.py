"""Baselines: naive means, matrix completion, benchmark regression and scaling laws.

Each is a :class:`~cppgraph.evaluate.base.MatrixMethod` that completes the
normalized score array of a :class:`~cppgraph.evaluate.problem.Problem`.
Hyperparameters chosen from a grid are chosen on a seeded validation share
of the *training* cells, never on the test cells.
"""

from __future__ import annotations

import numpy as np

from cppgraph.evaluate.base import MatrixMethod
from cppgraph.evaluate.problem import Problem
from cppgraph.regression import benchmark_regression, centered_ridge, shrink_correlation


def _column_means(y: np.ndarray) -> np.ndarray:
    """Per-task mean of the known cells; the overall mean for a task with none."""
    known = ~np.isnan(y)
    overall = float(np.nanmean(y)) if known.any() else 0.5
    counts = known.sum(axis=0)
    sums = np.where(known, y, 0.0).sum(axis=0)
    return np.where(counts > 0, sums / np.maximum(counts, 1), overall)


def _additive(y: np.ndarray, *, shrink: float = 1.0, iters: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Task means ``mu`` and model offsets ``b`` of ``y ~ mu[t] + b[m]`` (offsets shrunk to 0).

    Alternating least squares; an offset is ``sum(residuals) / (n + shrink)``.
    """
    known = ~np.isnan(y)
    z = np.where(known, y, 0.0)
    n_m, n_t = known.sum(axis=1), known.sum(axis=0)
    b = np.zeros(y.shape[0])
    mu = _column_means(y)
    for _ in range(iters):
        mu = np.where(n_t > 0, (np.where(known, z - b[:, None], 0.0)).sum(axis=0) / np.maximum(n_t, 1), mu)
        b = (np.where(known, z - mu[None, :], 0.0)).sum(axis=1) / (n_m + shrink)
    return mu, b


def _additive_residuals(y: np.ndarray):
    """Known mask, the additive fit ``mu, b`` (:func:`_additive`) and its residuals (0 where unknown)."""
    known = ~np.isnan(y)
    mu, b = _additive(y)
    return known, mu, b, np.where(known, y - mu[None, :] - b[:, None], 0.0)


def _validation_mask(y: np.ndarray, share: float, seed: int) -> np.ndarray:
    """A seeded share of the known cells, keeping at least one known cell per task."""
    rng = np.random.default_rng(seed)
    r, c = np.nonzero(~np.isnan(y))
    order = rng.permutation(len(r))[: max(1, int(round(share * len(r))))]
    left = (~np.isnan(y)).sum(axis=0)
    mask = np.zeros(y.shape, dtype=bool)
    for i in order:
        if left[c[i]] > 1:
            mask[r[i], c[i]] = True
            left[c[i]] -= 1
    return mask


def _select(fit, y: np.ndarray, grid, seed: int, share: float = 0.1):
    """The grid value whose ``fit(y_train, value)`` (a full array) has the lowest validation MSE."""
    val = _validation_mask(y, share, seed)
    y_train = np.where(val, np.nan, y)
    errors = [float(np.mean((fit(y_train, value)[val] - y[val]) ** 2)) for value in grid]
    return grid[int(np.argmin(errors))]


class TaskMean(MatrixMethod):
    """Each task's mean training score."""

    name = "task-mean"

    def complete(self, problem: Problem) -> np.ndarray:
        return _column_means(problem.y)[problem.cols]


class TaskModelOffset(MatrixMethod):
    """Task mean plus a shrunk per-model offset (``y = mu[t] + b[m]``)."""

    name = "task-model-offset"

    def __init__(self, shrink: float = 1.0):
        self.shrink = shrink

    def complete(self, problem: Problem) -> np.ndarray:
        mu, b = _additive(problem.y, shrink=self.shrink)
        return mu[problem.cols] + b[problem.rows]


def _soft_impute(y: np.ndarray, lam: float, *, rank: int | None = None, iters: int = 100) -> np.ndarray:
    """Complete ``y`` around its additive fit: soft-thresholded (``lam``) or rank-truncated SVD."""
    known = ~np.isnan(y)
    mu, b = _additive(y)
    base = mu[None, :] + b[:, None]
    r = np.where(known, y - base, 0.0)
    z = np.zeros_like(r)
    for _ in range(iters):
        u, s, vt = np.linalg.svd(np.where(known, r, z), full_matrices=False)
        s = s[:rank] if rank is not None else np.maximum(s - lam, 0.0)
        k = len(s)
        new = (u[:, :k] * s) @ vt[:k]
        if np.linalg.norm(new - z) <= 1e-5 * max(np.linalg.norm(z), 1e-12):
            z = new
            break
        z = new
    return base + z


class SoftImpute(MatrixMethod):
    """Soft-impute (nuclear-norm regularized completion) of the residuals of the additive fit.

    The threshold is chosen from a grid (shares of the top singular value)
    on a validation share of the training cells.
    """

    name = "soft-impute"
    grid = (0.05, 0.1, 0.2, 0.3, 0.5, 0.8)

    def complete(self, problem: Problem) -> np.ndarray:
        y = problem.y
        mu, b = _additive(y)
        top = np.linalg.svd(np.where(np.isnan(y), 0.0, y - mu[None, :] - b[:, None]),
                            compute_uv=False)[0]
        share = _select(lambda yt, v: _soft_impute(yt, v * top), y, self.grid, problem.seed)
        return _soft_impute(y, share * top)[problem.rows, problem.cols]


class TruncatedSVD(MatrixMethod):
    """Iterative rank-``r`` SVD completion (hard impute) of the additive fit's residuals.

    The rank is chosen from 1, 2, 3, 5 on a validation share of the training cells.
    """

    name = "svd"
    grid = (1, 2, 3, 5)

    def complete(self, problem: Problem) -> np.ndarray:
        y = problem.y
        grid = [r for r in self.grid if r < min(y.shape)] or [1]
        rank = _select(lambda yt, r: _soft_impute(yt, 0.0, rank=r), y, grid, problem.seed)
        return _soft_impute(y, 0.0, rank=rank)[problem.rows, problem.cols]


class KNNModels(MatrixMethod):
    """k nearest models by the correlation of their score residuals.

    Residuals are taken from the additive fit (task mean + model offset);
    similarity is the Pearson correlation over co-observed tasks (3 or more),
    shrunk by ``n / (n + 5)`` (:func:`~cppgraph.regression.shrink_correlation`). A cell gets the additive fit plus the
    similarity-weighted mean residual of the ``k`` most similar models that
    scored the task (the additive fit alone when none did).
    """

    name = "knn-models"

    def __init__(self, k: int = 10, min_common: int = 3):
        self.k, self.min_common = k, min_common

    def complete(self, problem: Problem) -> np.ndarray:
        y = problem.y
        known, mu, b, r = _additive_residuals(y)
        k_f = known.astype(np.float64)
        common = k_f @ k_f.T
        sxy = r @ r.T
        sxx = (r ** 2) @ k_f.T
        with np.errstate(invalid="ignore", divide="ignore"):
            sim = sxy / np.sqrt(sxx * sxx.T)
        sim = np.where((common >= self.min_common) & np.isfinite(sim), sim, 0.0)
        sim = shrink_correlation(sim, common)
        np.fill_diagonal(sim, 0.0)
        out = mu[problem.cols] + b[problem.rows]
        for i, (m, t) in enumerate(zip(problem.rows, problem.cols)):
            cand = np.flatnonzero(known[:, t] & (sim[m] > 0))
            if len(cand) == 0:
                continue
            top = cand[np.argsort(-sim[m, cand])[: self.k]]
            w = sim[m, top]
            out[i] += float(w @ r[top, t] / w.sum())
        return out


class BenchmarkRidge(MatrixMethod):
    """Regress the target task on the most correlated tasks the model has scores for.

    For a cell (m, t): among the tasks m has a training score on, take the
    ``n_features`` most correlated with t (over models scored on both, at
    least ``min_rows``), fit a ridge regression on the models scored on all
    of them and on t, and predict. With ``logit``, scores are regressed in
    logit space (clipped to [0.01, 0.99]). Falls back to the additive fit.
    """

    def __init__(self, n_features: int = 3, alpha: float = 0.1, min_rows: int = 5,
                 logit: bool = False):
        self.n_features, self.alpha, self.min_rows, self.logit = n_features, alpha, min_rows, logit
        self.name = "benchmark-ridge-logit" if logit else "benchmark-ridge"

    def complete(self, problem: Problem) -> np.ndarray:
        y0 = problem.y
        known = ~np.isnan(y0)
        mu, b = _additive(y0)
        out = mu[problem.cols] + b[problem.rows]
        reg = benchmark_regression(np.where(known, y0, 0.0), known, problem.rows, problem.cols,
                                   n_features=self.n_features, alpha=self.alpha,
                                   min_rows=self.min_rows, logit=self.logit)
        ok = np.isfinite(reg)
        out[ok] = reg[ok]
        return out


class ScalingLaw(MatrixMethod):
    """Per task, a sigmoid of log-parameters (and log-tokens where known).

    ``logit(y) = w * log(params) + b``, fitted per family when the family has
    ``min_sizes`` or more models with distinct sizes scored on the task (the
    slope bounded to [0, ``max_slope``]), else one fit over all models of the
    task with ``[log params, log tokens]`` (a missing token count is set to
    the mean, with an indicator). A model without a parameter count gets the
    additive fit. Scores are clipped to [0.01, 0.99] before the logit.
    """

    name = "scaling-law"

    def __init__(self, min_sizes: int = 3, max_slope: float = 2.0, alpha: float = 0.1):
        self.min_sizes, self.max_slope, self.alpha = min_sizes, max_slope, alpha

    def complete(self, problem: Problem) -> np.ndarray:
        y = problem.y
        known = ~np.isnan(y)
        mu, b = _additive(y)
        out = mu[problem.cols] + b[problem.rows]
        z = np.log(np.clip(y, 0.01, 0.99) / (1 - np.clip(y, 0.01, 0.99)))
        lp, lt, fam = problem.log_params, problem.log_tokens, problem.family
        tok_mean = float(np.nanmean(lt)) if np.isfinite(lt).any() else 0.0
        x_global = np.stack([lp, np.where(np.isfinite(lt), lt, tok_mean),
                             (~np.isfinite(lt)).astype(float)], axis=1)
        sig = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
        for i, (m, t) in enumerate(zip(problem.rows, problem.cols)):
            if not np.isfinite(lp[m]):
                continue
            ok = known[:, t] & np.isfinite(lp)
            same = ok & (fam == fam[m]) & (fam[m] >= 0)
            if len(np.unique(lp[same])) >= self.min_sizes:
                w, c = np.polyfit(lp[same], z[same, t], 1)
                if w < 0 or w > self.max_slope:
                    w = float(np.clip(w, 0.0, self.max_slope))
                    c = float(np.mean(z[same, t] - w * lp[same]))
                out[i] = sig(w * lp[m] + c)
            elif ok.sum() >= 4:
                tm, xm, coef = centered_ridge(x_global[ok], z[ok, t], self.alpha)
                out[i] = sig(tm + (x_global[m] - xm) @ coef)
        return out


class ObservationalScaling(MatrixMethod):
    """Principal components of the observed scores, then one regression per task.

    The components are those of the additive fit's residuals of the
    training models (missing cells at 0); each model's scores on them are a
    ridge fit of its own known residuals, so a model with few known scores
    gets shrunk scores. Each task then regresses its scores on the component
    scores (and standardized log-parameters, where known), over the models
    that scored it.
    """

    name = "obs-scaling"

    def __init__(self, components: int = 3, alpha: float = 0.1):
        self.components, self.alpha = components, alpha

    def complete(self, problem: Problem) -> np.ndarray:
        y = problem.y
        known, mu, b, r = _additive_residuals(y)
        n_train = problem.n_train_models
        k = max(1, min(self.components, min(r[:n_train].shape) - 1))
        _, _, vt = np.linalg.svd(r[:n_train], full_matrices=False)
        v = vt[:k].T  # tasks x k
        scores = np.zeros((y.shape[0], k))
        for m in range(y.shape[0]):
            obs = known[m]
            if obs.any():
                vm = v[obs]
                scores[m] = np.linalg.solve(vm.T @ vm + self.alpha * np.eye(k), vm.T @ r[m, obs])
        lp = problem.log_params
        has_lp = np.isfinite(lp)
        lp_z = np.where(has_lp, (lp - np.nanmean(lp)) / (np.nanstd(lp) or 1.0), 0.0) if has_lp.any() \
            else np.zeros(len(lp))
        x = np.column_stack([scores, b, lp_z, (~has_lp).astype(float)])
        spread = x.std(axis=0)
        x = x / np.where(spread > 0, spread, 1.0)  # ridge on standardized features
        out = mu[problem.cols] + b[problem.rows]
        for t in np.unique(problem.cols):
            rows = known[:, t]
            if rows.sum() < 3:
                continue
            tm, xm, coef = centered_ridge(x[rows], y[rows, t], self.alpha)
            sel = problem.cols == t
            out[sel] = tm + (x[problem.rows[sel]] - xm) @ coef
        return out
