"""Full-batch training of an encoder and a scoring head, without target leakage.

Each epoch the training cells are split at random into message-passing cells
(edges of the graph) and supervised cells (removed from the graph, their
scores predicted); a validation share of the cells is never in the graph
during training and decides early stopping.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.data import HeteroData

from cppgraph.graph import SCORES, with_score_edges

logger = logging.getLogger(__name__)


@dataclass
class GraphInputs:
    """What the networks see: the graph and each entity's factor inputs for the head."""

    graph: HeteroData      # every known score edge, normalized score as edge_weight
    head_model: Tensor     # [n_models, k] numeric features + multi-hot factor nodes
    head_task: Tensor      # [n_tasks, k]


class Network(nn.Module):
    """Encoder + head: embeds the graph, then scores (model, task) pairs."""

    def __init__(self, encoder: nn.Module, head: nn.Module):
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, graph: HeteroData, pairs: Tensor, head_model: Tensor, head_task: Tensor) -> Tensor:
        h = self.encoder(graph)
        m, t = pairs
        return self.head(h["model"][m], h["task"][t], head_model[m], head_task[t])


def fit_network(net: Network, inputs: GraphInputs, *, lr: float, weight_decay: float, epochs: int,
                patience: int, val_fraction: float, supervision_fraction: float,
                generator: torch.Generator,
                callback: Callable[[dict], None] | None = None) -> tuple[list[dict], Tensor]:
    """Train ``net`` on the score edges of ``inputs.graph``; keep the best validation weights.

    Returns the training log (one dict per epoch with ``epoch``,
    ``train_loss``, ``val_loss`` (MSE on the normalized scale) and
    ``seconds``) and the indices of the validation edges.
    """
    graph = inputs.graph
    n = graph[SCORES].num_edges
    pairs_all = graph[SCORES].edge_index
    y_all = graph[SCORES].edge_weight
    perm = torch.randperm(n, generator=generator)
    n_val = int(round(val_fraction * n)) if n >= 10 else 0
    val, train = perm[:n_val], perm[n_val:]
    val_graph = with_score_edges(graph, train)  # validation cells are never edges
    n_sup = max(1, int(round(supervision_fraction * len(train))))
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    best, best_state, waited, log = float("inf"), None, 0, []
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        net.train()
        shuffled = train[torch.randperm(len(train), generator=generator)]
        sup, msg = shuffled[:n_sup], shuffled[n_sup:]
        opt.zero_grad()
        pred = net(with_score_edges(graph, msg), pairs_all[:, sup], inputs.head_model, inputs.head_task)
        loss = nn.functional.mse_loss(pred, y_all[sup])
        loss.backward()
        opt.step()
        net.eval()
        with torch.no_grad():
            if n_val:
                vp = net(val_graph, pairs_all[:, val], inputs.head_model, inputs.head_task)
                val_loss = float(nn.functional.mse_loss(vp, y_all[val]))
            else:
                val_loss = loss.item()
        entry = {"epoch": epoch, "train_loss": loss.item(), "val_loss": val_loss,
                 "seconds": time.perf_counter() - start}
        log.append(entry)
        if callback is not None:
            callback(entry)
        if val_loss < best - 1e-7:
            best, waited = val_loss, 0
            best_state = copy.deepcopy(net.state_dict())
        else:
            waited += 1
            if waited >= patience:
                break
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    return log, val


def predict_pairs(net: Network, inputs: GraphInputs, pairs: Tensor, *,
                  exclude: Tensor | None = None) -> Tensor:
    """Predict ``pairs`` ([2, P]); ``exclude`` masks score edges out of the graph first."""
    graph = inputs.graph if exclude is None else with_score_edges(inputs.graph, ~exclude)
    net.eval()
    with torch.no_grad():
        return net(graph, pairs, inputs.head_model, inputs.head_task)


def residual_similarity(residuals: Tensor, known: Tensor, *, min_common: int = 3,
                        prior: float = 5.0) -> Tensor:
    """Column-by-column similarity of residuals: the weights of :func:`residual_correction`.

    ``w[a, b] = max(0, rho) * n / (n + prior)``, with ``rho`` the (uncentred)
    correlation of the residuals of columns ``a`` and ``b`` over the ``n``
    rows known in both; 0 when ``n < min_common``; 1 on the diagonal.

    Parameters
    ----------
    residuals : Tensor ``[R, C]``
        Residuals (0 where unknown).
    known : Tensor ``[R, C]`` of bool
    """
    k = known.to(residuals.dtype)
    z = residuals * k
    common = k.T @ k
    cross = z.T @ z
    power = (z * z).T @ k  # power[a, b]: sum of squares of column a over rows known in b
    rho = cross / torch.sqrt(power * power.T).clamp_min(1e-12)
    w = rho.clamp_min(0.0) * common / (common + prior)
    w = torch.where(common >= min_common, w, torch.zeros_like(w))
    w.fill_diagonal_(1.0)
    return w


def residual_correction(residuals: Tensor, known: Tensor, shrinkage: float, *,
                        weights: Tensor | None = None) -> Tensor:
    """Propagate the residuals of known scores to the other cells of their row, shrunk to zero.

    The "correct" step of Correct & Smooth (Huang et al., 2021) on score
    edges: a row (a model, or a new task) corrects its cell in column ``c``
    by the weighted mean of its known residuals, with ``shrinkage``
    pseudo-cells of residual 0:
    ``sum_b w[c, b] r[b] / (sum_b w[c, b] + shrinkage)`` over its known
    cells ``b``. Without ``weights`` every known cell weighs 1 (a flat
    correction ``sum(r) / (n + shrinkage)``); with the column similarities of
    :func:`residual_similarity`, residuals travel to similar columns only.
    A row with no known cell gets 0.

    Parameters
    ----------
    residuals : Tensor ``[R, C]``
        Observed minus predicted score, 0 where unknown.
    known : Tensor ``[R, C]`` of bool
    shrinkage : float
        Positive.
    weights : Tensor ``[C, C]``, optional

    Returns
    -------
    Tensor ``[R, C]``
    """
    if shrinkage <= 0:
        raise ValueError(f"shrinkage must be positive; got {shrinkage}")
    k = known.to(residuals.dtype)
    z = residuals * k
    if weights is None:
        total = z.sum(dim=1, keepdim=True).expand_as(z)
        count = k.sum(dim=1, keepdim=True).expand_as(z)
    else:
        total, count = z @ weights.T, k @ weights.T
    return total / (count + shrinkage)


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
    for i in range(new_scores.shape[0]):
        cols = np.flatnonzero(new_known[i])
        if not len(cols):
            continue
        have = known[:, cols].all(axis=1)
        for c in range(scores.shape[1]):
            rows = have & known[:, c]
            if rows.sum() < max(min_rows, len(cols) + 2):
                continue
            mean, x_mean, coef = centered_ridge(scores[np.ix_(rows, cols)], scores[rows, c], ridge)
            out[i, c] = mean + (new_scores[i, cols] - x_mean) @ coef
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
    """Pearson correlation of every pair of columns over co-known rows (NaN if too few)."""
    n = y.shape[1]
    out = np.full((n, n), np.nan)
    for a in range(n):
        for c in range(a, n):
            both = known[:, a] & known[:, c]
            if both.sum() >= min_rows and np.ptp(y[both, a]) > 0 and np.ptp(y[both, c]) > 0:
                out[a, c] = out[c, a] = np.corrcoef(y[both, a], y[both, c])[0, 1]
    return out


def benchmark_regression(y: np.ndarray, known: np.ndarray, rows: np.ndarray, cols: np.ndarray, *,
                         n_features: int = 3, alpha: float = 0.1, min_rows: int = 5,
                         logit: bool = False) -> np.ndarray:
    """Predict cells ``(rows[i], cols[i])`` of ``y`` from the same row's known cells.

    For a cell (m, t): among the columns row m knows, take the ``n_features``
    most correlated with t (:func:`column_correlations`, over rows knowing
    both, at least ``min_rows``), fit a ridge regression with intercept
    (penalty ``alpha``) of t on them over the rows knowing all of them and t,
    and apply it to row m. With too few such rows the least correlated
    feature is dropped and the fit tried again; a cell left without any fit
    is NaN. The cells to predict must be unknown, so that none is its own
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
    cols_all = np.arange(y.shape[1])
    cache = {}
    for i, (m, t) in enumerate(zip(rows, cols)):
        have = np.flatnonzero(known[m] & (cols_all != t) & np.isfinite(corr[t]))
        feats = tuple(int(f) for f in sorted(have[np.argsort(-np.abs(corr[t, have]))[:n_features]]))
        while feats:
            if (t, feats) not in cache:
                fit_rows = known[:, t] & known[:, list(feats)].all(axis=1)
                cache[(t, feats)] = None
                if fit_rows.sum() >= min_rows:
                    cache[(t, feats)] = centered_ridge(y[np.ix_(fit_rows, feats)], y[fit_rows, t],
                                                       alpha)
            fit = cache[(t, feats)]
            if fit is not None:
                mean, x_mean, coef = fit
                out[i] = mean + (y[m, list(feats)] - x_mean) @ coef
                break
            feats = feats[:-1]
    return out
