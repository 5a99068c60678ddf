"""Regressions and corrections on the score matrix (numpy and torch, no names).

The post-hoc stages of the engine (:mod:`cppgraph.stages`) and several
baselines share them: ridge regressions of a task on the most correlated
other tasks, and of a new model's tasks on its known ones.
"""

from __future__ import annotations

import numpy as np


#: Pseudo-count of :func:`shrink_correlation`.
CORRELATION_PRIOR = 5.0


def shrink_correlation(corr, n_common, prior: float = CORRELATION_PRIOR):
    """A correlation over ``n_common`` pairs shrunk toward 0: ``corr * n / (n + prior)``,
    so that r = 0.99 on 3 common cells ranks below r = 0.9 on 20."""
    n = np.asarray(n_common, dtype=np.float64)
    return corr * (n / (n + prior))


def centered_ridge(x: np.ndarray, t: np.ndarray, alpha: float) -> tuple[float, np.ndarray, np.ndarray]:
    """Ridge fit of ``t`` on ``x`` with an unpenalized intercept: ``(t_mean, x_mean, coef)``.

    Predict with ``t_mean + (x_new - x_mean) @ coef``.
    """
    xm, tm = x.mean(axis=0), float(t.mean())
    xc = x - xm
    coef = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ (t - tm))
    return tm, xm, coef


def known_score_regression(scores: np.ndarray, known: np.ndarray, new_scores: np.ndarray,
                           new_known: np.ndarray, *, ridge: float = 0.1,
                           min_rows: int = 5, logit: bool = False) -> np.ndarray:
    """Predict each new row's cells by ridge regression on its known cells.

    For new row ``i`` with known columns ``K`` and each column ``c``, a ridge
    regression (with intercept, penalty ``ridge``) of column ``c`` on columns
    ``K`` is fitted over the training rows that know all of them, and
    applied to row ``i``'s known values. Cells with fewer than ``min_rows``
    such training rows, and rows with no known cell, are NaN.

    With ``logit``, values in [0, 1] are regressed in logit space (clipped to
    [``LOGIT_EPS``, 1 - ``LOGIT_EPS``] first) and the predictions mapped back,
    as in :func:`benchmark_regression`.

    Parameters
    ----------
    scores, known : ndarray ``[R, C]``
        Training values (normalized scores) and their mask.
    new_scores, new_known : ndarray ``[N, C]``
        The new rows' known values and mask.

    Returns
    -------
    ndarray ``[N, C]`` of float64
    """
    if logit:
        z, new_z = _logit(np.where(known, scores, 0.5)), _logit(np.where(new_known, new_scores, 0.5))
        return _sigmoid(known_score_regression(z, known, new_z, new_known, ridge=ridge,
                                               min_rows=min_rows))
    out = np.full(new_scores.shape, np.nan)
    patterns: dict[tuple, list] = {}
    for i, row in enumerate(new_known):
        cols = np.flatnonzero(row)
        if len(cols):
            patterns.setdefault(tuple(cols.tolist()), []).append(i)
    weight = known.astype(np.float64)
    target = np.where(known, scores, 0.0)
    for cols, rows in patterns.items():
        cols = np.asarray(cols)
        have = known[:, cols].all(axis=1)
        # Each column's regression over its own training rows (those that know it and
        # all of ``cols``), all columns at once from weighted sums of cross products.
        x, w, t = scores[np.ix_(have, cols)], weight[have], target[have]
        n = w.sum(axis=0)
        ok = n >= max(min_rows, len(cols) + 2)
        if not ok.any():
            continue
        w, t, n = w[:, ok], t[:, ok], n[ok]
        k = len(cols)
        x_mean = (w.T @ x) / n[:, None]
        t_mean = (w * t).sum(axis=0) / n
        outer = (x[:, :, None] * x[:, None, :]).reshape(len(x), k * k)
        gram = ((w.T @ outer).reshape(-1, k, k) - n[:, None, None] * x_mean[:, :, None]
                * x_mean[:, None, :] + ridge * np.eye(k))
        cross = (w * t).T @ x - n[:, None] * x_mean * t_mean[:, None]
        coef = np.linalg.solve(gram, cross[..., None])[..., 0]  # [columns, k]
        v = new_scores[np.ix_(rows, cols)]
        out[np.ix_(rows, np.flatnonzero(ok))] = (t_mean - (x_mean * coef).sum(axis=1)
                                                 + v @ coef.T)
    return out


#: Clip of [0, 1] values before their logit in :func:`benchmark_regression` and
#: :func:`known_score_regression`.
LOGIT_EPS = 0.01
#: Clip before the logit when predictions on a [0, 1] scale are mixed: small, so
#: that near the floor a mix acts on ratios and a prediction near 0 stays near 0.
MIX_EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, LOGIT_EPS, 1 - LOGIT_EPS)
    return np.log(p / (1 - p))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def column_correlations(y: np.ndarray, known: np.ndarray, min_rows: int) -> np.ndarray:
    """Pearson correlation of every pair of columns over co-known rows (NaN if too few,
    or if either column is constant on them), from sums of products over all pairs."""
    w = known.astype(np.float64)
    v = np.where(known, y, 0.0)
    n = w.T @ w                                   # rows knowing both a and c
    s = v.T @ w                                   # s[a, c]: sum of a over those rows
    ss = (v * v).T @ w
    with np.errstate(divide="ignore", invalid="ignore"):
        cov = v.T @ v - s * s.T / n
        var = ss - s * s / n                      # var[a, c]: of a over the rows of (a, c)
        corr = cov / np.sqrt(var * var.T)
    # Sums of squares below this share of the values' square are rounding: constant columns.
    tiny = 1e-12 * n * np.maximum(ss / np.maximum(n, 1), 1e-300)
    ok = (n >= min_rows) & (var > tiny) & (var.T > tiny.T)
    return np.where(ok, np.clip(corr, -1.0, 1.0), np.nan)


def benchmark_regression(y: np.ndarray, known: np.ndarray, rows: np.ndarray, cols: np.ndarray, *,
                         n_features: int = 3, alpha: float = 0.1, min_rows: int = 5,
                         logit: bool = False) -> np.ndarray:
    """Predict cells ``(rows[i], cols[i])`` of ``y`` from the same row's known cells.

    For a cell (m, t): among the columns row m knows, take the ``n_features``
    most correlated with t (:func:`column_correlations`, over rows knowing
    both, at least ``min_rows``), fit a ridge regression with intercept
    (penalty ``alpha``) of t on them over the rows knowing all of them and t,
    and apply it to row m. With too few such rows the feature of the highest
    column index is dropped and the fit tried again; a cell left without any
    fit is NaN. The cells to predict must be unknown, so that none is its own
    training value.

    With ``logit``, values in [0, 1] are regressed in logit space (clipped to
    [``LOGIT_EPS``, 1 - ``LOGIT_EPS``] first) and the predictions mapped
    back, so that they stay inside (0, 1) and flatten near the floor and the
    ceiling.

    Parameters
    ----------
    y, known : ndarray ``[R, C]``
        Values (anything where unknown) and their mask.
    rows, cols : ndarray of int
        The cells to predict.

    Returns
    -------
    ndarray of float64, one value per cell
    """
    rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
    if known[rows, cols].any():
        raise ValueError("benchmark_regression predicts unknown cells only")
    if logit:
        out = benchmark_regression(_logit(np.where(known, y, 0.5)), known, rows, cols,
                                   n_features=n_features, alpha=alpha, min_rows=min_rows)
        return _sigmoid(out)
    out = np.full(len(rows), np.nan)
    corr = column_correlations(y, known, min_rows)
    none = y.shape[1]  # stands for "no feature" in the feature tables below
    # The values with a column of zeros at ``none`` (a dropped feature reads 0), the same
    # column-major, and each column's known rows packed 8 to a byte.
    values = np.concatenate([np.where(known, y, 0.0), np.zeros((len(y), 1))], axis=1)
    columns = (np.ascontiguousarray(values[:, :none].T), np.packbits(known.T, axis=1))
    for t in np.unique(cols):
        at = np.flatnonzero(cols == t)
        # Candidate features from the most to the least correlated with t; each cell takes
        # the first n_features its row knows.
        cand = np.flatnonzero(np.isfinite(corr[t]) & (np.arange(y.shape[1]) != t))
        cand = cand[np.argsort(-np.abs(corr[t, cand]), kind="stable")]
        has = known[np.ix_(rows[at], cand)]
        pick = has & (np.cumsum(has, axis=1) <= n_features)
        table = np.sort(np.where(pick, cand[None, :], none), axis=1)[:, :n_features]
        if table.shape[1] == 0:
            continue  # no other column to regress on
        groups, inverse = np.unique(table, axis=0, return_inverse=True)
        feats, mean, x_mean, coef = _ridge_fits(*columns, t, groups, none, alpha, min_rows)
        g = inverse.reshape(-1)
        fitted = np.isfinite(mean[g])
        x = values[rows[at][:, None], feats[g]]
        pred = mean[g] + ((x - x_mean[g]) * coef[g]).sum(axis=1)
        out[at[fitted]] = pred[fitted]
    return out


#: At most this many (row, fit) entries per block of :func:`_ridge_fits`.
_BLOCK = 2_000_000


def _ridge_fits(value_columns: np.ndarray, known_bits: np.ndarray, t: int, groups: np.ndarray,
                none: int, alpha: float, min_rows: int) -> tuple:
    """:func:`centered_ridge` of column ``t`` on each row of ``groups`` (sorted feature
    columns, ``none`` for no feature), over the rows knowing t and all the features, all
    fits of one feature count at once. A fit with fewer than ``min_rows`` rows drops its
    last feature and is tried again; one left without features is NaN.

    Returns the features each fit kept (``none`` for dropped ones), and per fit the
    target mean, the feature means and the coefficients (0 on dropped features).
    """
    feats = groups.copy()
    n_groups, width = feats.shape
    count = (feats != none).sum(axis=1)
    mean = np.full(n_groups, np.nan)
    x_mean, coef = np.zeros((n_groups, width)), np.zeros((n_groups, width))
    n_rows = value_columns.shape[1]
    target = value_columns[t]
    step = max(1, _BLOCK // max(n_rows, 1))
    for k in range(width, 0, -1):
        todo = np.flatnonzero(count == k)
        for block in np.split(todo, np.arange(step, len(todo), step)):
            f = feats[block, :k]                                   # [g, k]
            # Each fit's rows, as (fit, row) entries: the rows knowing t and its features.
            bits = np.bitwise_and.reduce(known_bits[f], axis=1) & known_bits[t]
            which, row = np.nonzero(np.unpackbits(bits, axis=1, count=n_rows))
            n = np.bincount(which, minlength=len(block))
            ok = n >= min_rows
            if ok.any():
                # Sums over each fit's rows, as bincounts over its (fit, row) entries.
                keep = ok[which]
                which, row = np.cumsum(ok)[which[keep]] - 1, row[keep]
                f, n, fit = f[ok], n[ok], block[ok]

                def total(v):
                    return np.bincount(which, v, minlength=len(fit))

                x = value_columns[f[which], row[:, None]]          # [entries, k]
                xm = np.stack([total(x[:, j]) for j in range(k)], axis=1) / n[:, None]
                tm = total(target[row]) / n
                xc, tc = x - xm[which], target[row] - tm[which]
                gram = np.empty((len(fit), k, k))
                for i in range(k):
                    for j in range(i, k):
                        gram[:, i, j] = gram[:, j, i] = total(xc[:, i] * xc[:, j])
                gram += alpha * np.eye(k)
                rhs = np.stack([total(xc[:, j] * tc) for j in range(k)], axis=1)
                mean[fit], x_mean[fit, :k] = tm, xm
                coef[fit, :k] = np.linalg.solve(gram, rhs[..., None])[..., 0]
            drop = block[~ok]  # too few rows to fit: drop the last feature (highest column)
            feats[drop, k - 1] = none
            count[drop] = k - 1
    return feats, mean, x_mean, coef
