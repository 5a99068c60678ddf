"""The cppgraph estimator: fit on a :class:`CollabData`, predict any (model, task) cell.

Examples
--------
>>> from cppgraph.data import read_canonical
>>> from cppgraph.estimator import CPPGraph
>>> est = CPPGraph(encoder="lightgcn", random_state=0).fit(read_canonical("data/demo"))  # doctest: +SKIP
>>> est.predict().head()  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import pickle
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from cppgraph import __version__
from cppgraph.config import Config
from cppgraph.data.canonical import atomic_folder, read_canonical, write_canonical
from cppgraph.data.dataset import CollabData, parse_numbers, parse_task_info, suggest
from cppgraph.errors import CppGraphError, DataError, DataWarning
from cppgraph.graph import SCORES, FactorEncoder, add_nodes, build_graph
from cppgraph.nn import ScoreHead, make_encoder
from cppgraph.normalize import (Normalizer, make_normalizer, new_task_prior, refit_task_scale,
                                task_scale_covariance)
from cppgraph.threads import limit_threads
from cppgraph.train import (MIX_EPS, GraphInputs, Network, benchmark_regression, fit_network,
                            known_score_regression, predict_pairs, residual_correction,
                            residual_similarity)

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "weights.pt"
META_FILE = "model.json"
LOG_FILE = "training_log.csv"
DATA_DIR = "data"
FORMAT_VERSION = 1


def _fingerprint(data: CollabData) -> str:
    h = hashlib.sha256()
    h.update(data.scores.to_csv(index=False).encode())
    h.update(data.model_factors.to_csv().encode())
    h.update(data.task_factors.to_csv().encode())
    return h.hexdigest()[:16]


def _threaded(method):
    """Run an estimator method with ``config.n_jobs`` threads."""
    @functools.wraps(method)
    def wrapped(self, *args, **kwargs):
        with limit_threads(self.config.n_jobs):
            return method(self, *args, **kwargs)
    return wrapped


def _unknown(name: str, known, what: str) -> DataError:
    close = suggest(name, known)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    return DataError(f"unknown {what} {name!r}{hint}")


class CPPGraph:
    """Graph-based collaborative performance predictor.

    Parameters
    ----------
    config : Config, optional
        All settings; keyword arguments override single fields.

    Attributes (after :meth:`fit`)
    ------------------------------
    data_ : CollabData
        The training data.
    normalizer_ : Normalizer
    factors_ : FactorEncoder
    network_ : torch.nn.Module
    log_ : list of dict
        One entry per epoch (train and validation MSE, normalized scale).
    best_epoch_ : int
    fit_seconds_ : float
    """

    def __init__(self, config: Config | None = None, **overrides):
        base = config if config is not None else Config()
        self.config = dataclasses.replace(base, **overrides) if overrides else base

    # ---------------------------------------------------------------- fit
    @_threaded
    def fit(self, data: CollabData, *, callback: Callable[[dict], None] | None = None) -> "CPPGraph":
        """Learn from every observed score of ``data``; returns ``self``."""
        cfg = self.config
        cfg.validate()
        torch.manual_seed(cfg.random_state)
        np.random.seed(cfg.random_state)
        start = time.perf_counter()
        self.data_ = data
        self.normalizer_ = make_normalizer(cfg.normalization).fit(data)
        self.factors_ = FactorEncoder().fit(data)
        self._prepare()
        self.network_ = self._new_network()
        generator = torch.Generator().manual_seed(cfg.random_state)
        self.log_, val = fit_network(
            self.network_, self.inputs_, lr=cfg.lr, weight_decay=cfg.weight_decay,
            epochs=cfg.epochs, patience=cfg.patience, val_fraction=cfg.val_fraction,
            supervision_fraction=cfg.supervision_fraction, generator=generator, callback=callback)
        self.best_epoch_ = int(min(self.log_, key=lambda e: e["val_loss"])["epoch"])
        self._prepare_correction()
        self.observed_weight_ = self._choose_observed_weight(val)
        self.known_logit_ = self._bounded
        self.fit_seconds_ = time.perf_counter() - start
        self.val_mae_ = self._validation_mae(val)
        return self

    def _validation_mae(self, val: torch.Tensor) -> dict:
        """MAE on the validation cells (kept out of the graph), normalized and in raw units."""
        if len(val) == 0:
            return {"normalized": float("nan"), "raw": float("nan"), "cells": 0}
        mask = torch.zeros(self.inputs_.graph[SCORES].num_edges, dtype=torch.bool)
        mask[val] = True
        pairs = self.inputs_.graph[SCORES].edge_index[:, val]
        pred = predict_pairs(self.network_, self.inputs_, pairs, exclude=mask).numpy()
        cells = self.data_.scores.iloc[val.numpy()]
        raw = self.normalizer_.inverse_transform(cells["task"], pred.astype(np.float64),
                                                 models=cells["model"])
        return {"normalized": float(np.abs(pred - self.y_[val.numpy()]).mean()),
                "raw": float(np.abs(raw - cells["score"].to_numpy()).mean()), "cells": len(val)}

    def _prepare(self) -> None:
        """Normalized scores, graph and head inputs of the training data."""
        data = self.data_
        s = data.scores
        self.y_ = self.normalizer_.transform(s["task"], s["score"], models=s["model"])
        graph = build_graph(data, self.factors_, normalized=self.y_)
        self.inputs_ = GraphInputs(graph, self._head_inputs("model", data.model_factors),
                                   self._head_inputs("task", data.task_factors))
        self._model_index = {m: i for i, m in enumerate(data.models)}
        self._task_index = {t: i for i, t in enumerate(data.tasks)}

    def _head_inputs(self, entity: str, frame: pd.DataFrame) -> torch.Tensor:
        enc = self.factors_
        return torch.from_numpy(np.concatenate(
            [enc.numeric_features(entity, frame), enc.factor_matrix(entity, frame)], axis=1))

    def _new_network(self) -> Network:
        cfg, g = self.config, self.inputs_.graph
        common = dict(num_factors=self.factors_.n_factors, model_features=g["model"].x.size(1),
                      task_features=g["task"].x.size(1), hidden=cfg.hidden,
                      num_layers=cfg.num_layers, dropout=cfg.dropout)
        if cfg.encoder == "sage":
            qs = np.linspace(0, 1, cfg.score_levels + 1)[1:-1]
            common["level_edges"] = np.quantile(self.y_, qs).tolist() if len(qs) else []
        else:
            common["score_floor"] = cfg.score_floor
        encoder = make_encoder(cfg.encoder, **common)
        head = ScoreHead(cfg.hidden, self.inputs_.head_model.size(1), self.inputs_.head_task.size(1),
                         mlp_hidden=cfg.head_hidden, dropout=cfg.dropout,
                         bounded=self._bounded)
        return Network(encoder, head)

    @property
    def _bounded(self) -> bool:
        """Whether the normalized scale is [0, 1] (minmax, paper)."""
        return self.config.normalization in ("minmax", "paper")

    def _check_fitted(self):
        if not hasattr(self, "network_"):
            raise CppGraphError("this CPPGraph is not fitted; call fit(data) or CPPGraph.load(path)")

    # ------------------------------------------------------------ predict
    def _prepare_correction(self) -> None:
        """Folds of the training edges, their residuals, and the task similarity weights.

        Each training cell's residual is its score minus its prediction with
        its fold out of the graph.
        """
        g = self.inputs_.graph[SCORES]
        n, k = g.num_edges, self.config.predict_folds
        gen = torch.Generator().manual_seed(self.config.random_state + 1)
        self.fold_ = torch.randperm(n, generator=gen) % k
        self.residual_ = self._residuals(self.inputs_, torch.zeros(n, dtype=torch.bool))
        z, known = self._residual_matrix(torch.ones(n, dtype=torch.bool), self.residual_)
        self.task_weights_ = residual_similarity(z, known)

    def _residuals(self, inputs: GraphInputs, out: torch.Tensor) -> torch.Tensor:
        """Residuals of the training cells not in ``out`` (0 on ``out``): score minus
        prediction, each cell predicted with its fold and ``out`` out of the graph."""
        g = inputs.graph[SCORES]
        residual = torch.zeros(g.num_edges)
        for h in range(self.config.predict_folds):
            cells = (self.fold_ == h) & ~out
            if cells.any():
                residual[cells] = g.edge_weight[cells] - predict_pairs(
                    self.network_, inputs, g.edge_index[:, cells], exclude=out | cells)
        return residual

    def _residual_matrix(self, use: torch.Tensor, residual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Dense ``[models, tasks]`` values (residuals or scores) of the ``use``-d edges, and their mask."""
        g = self.inputs_.graph[SCORES]
        shape = (self.inputs_.head_model.size(0), self.inputs_.head_task.size(0))
        z, known = torch.zeros(shape), torch.zeros(shape, dtype=torch.bool)
        m, t = g.edge_index[:, use]
        z[m, t] = residual[use]
        known[m, t] = True
        return z, known

    def _fold_predict(self, inputs: GraphInputs, pairs: torch.Tensor, edge_of_pair: torch.Tensor) -> torch.Tensor:
        """Predict pairs; a pair that is a score edge is predicted with its fold removed.

        With ``correct_observed``, each prediction then moves by the correction of
        the model's other training residuals; for a pair in fold ``f``, those
        residuals are measured with fold ``f`` out of the graph too, so the
        pair's own score reaches neither the encoder nor the correction. Last,
        the benchmark regression (:meth:`_observed_regression`, fold ``f``
        out as well) is mixed in with weight ``observed_weight_``.
        """
        out = self._network_predict(inputs, pairs, edge_of_pair)
        if self.config.correct_observed:
            out = self._correct_observed(inputs, pairs, edge_of_pair, out)
        w = self.observed_weight_
        if w > 0:
            reg = self._observed_regression(pairs, edge_of_pair)
            ok = torch.isfinite(reg)
            out[ok] = self._blend(out[ok], reg[ok], w)
        return out

    def _blend(self, base: torch.Tensor, reg: torch.Tensor, w: float) -> torch.Tensor:
        """``(1 - w) * base + w * reg``; in logit space where the scale is bounded,
        both clipped to [``MIX_EPS``, 1 - ``MIX_EPS``] first."""
        if not self._bounded:
            return (1 - w) * base + w * reg
        z_base = torch.logit(base, eps=MIX_EPS)
        z_reg = torch.logit(reg.to(base.dtype), eps=MIX_EPS)
        return torch.sigmoid((1 - w) * z_base + w * z_reg)

    def _correct_observed(self, inputs: GraphInputs, pairs: torch.Tensor, edge_of_pair: torch.Tensor,
                          out: torch.Tensor) -> torch.Tensor:
        """``out`` moved by the residual correction (see :meth:`_fold_predict`)."""
        fold, k = self.fold_, self.config.predict_folds
        free = edge_of_pair < 0
        pair_fold = fold[edge_of_pair.clamp(min=0)]
        if free.any():
            out[free] += self._correction(torch.ones(len(fold), dtype=torch.bool),
                                          self.residual_, pairs[:, free])
        for f in range(k):
            sel = (~free) & (pair_fold == f)
            if not sel.any():
                continue
            out_f = fold == f
            out[sel] += self._correction(~out_f, self._residuals(inputs, out_f), pairs[:, sel])
        return out

    def _observed_regression(self, pairs: torch.Tensor, edge_of_pair: torch.Tensor) -> torch.Tensor:
        """:func:`~cppgraph.train.benchmark_regression` of pairs on the training scores.

        A pair that is no score edge is regressed on every training score; a
        pair in fold ``f`` on the scores outside fold ``f``, so that its own
        score is neither a feature nor a training value. NaN where no
        regression applies.
        """
        fold = self.fold_
        free = edge_of_pair < 0
        pair_fold = fold[edge_of_pair.clamp(min=0)]
        groups = [(free, torch.ones(len(fold), dtype=torch.bool))]
        groups += [((~free) & (pair_fold == f), fold != f) for f in range(self.config.predict_folds)]
        out = torch.full((pairs.size(1),), float("nan"))
        for sel, use in groups:
            if sel.any():
                out[sel] = self._regress(use, pairs[:, sel]).float()
        return out

    def _regress(self, use: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        """:func:`~cppgraph.train.benchmark_regression` of pairs on the ``use``-d training
        scores; in logit space where the normalized scale is bounded (minmax, paper),
        so that a regression never leaves [0, 1]."""
        scores, known = self._residual_matrix(use, self.inputs_.graph[SCORES].edge_weight)
        reg = benchmark_regression(scores.double().numpy(), known.numpy(), pairs[0].numpy(),
                                   pairs[1].numpy(), logit=self._bounded)
        return torch.from_numpy(reg)

    def _choose_observed_weight(self, val: torch.Tensor) -> float:
        """The weight of the observed-score regression (``config.observed_regression``).

        A number is taken as given. ``"auto"`` chooses it on the validation
        cells of training (``val``: never in the graph while the network
        learned, so predicted much as unseen cells are): each is predicted
        with every validation cell out of the graph, of the residual
        correction and of the regression, and the weight in
        ``0, 0.1, ..., 1`` with the lowest MAE over the cells the regression
        reaches wins (ties: the smaller weight; 0 without validation cells).
        """
        setting = self.config.observed_regression
        if setting != "auto":
            return float(setting)
        g = self.inputs_.graph[SCORES]
        out = torch.zeros(g.num_edges, dtype=torch.bool)
        out[val] = True
        if not out.any():
            return 0.0
        pairs = g.edge_index[:, out]
        reg = self._regress(~out, pairs)
        ok = torch.isfinite(reg)
        if not ok.any():
            return 0.0
        base = predict_pairs(self.network_, self.inputs_, pairs, exclude=out).double()
        if self.config.correct_observed:
            residual = self._residuals(self.inputs_, out)
            base = base + self._correction(~out, residual, pairs).double()
        y = g.edge_weight[out].double()
        base, reg, y = base[ok], reg[ok], y[ok]
        grid = np.round(np.linspace(0.0, 1.0, 11), 2)
        mae = [float((self._blend(base, reg, w) - y).abs().mean()) for w in grid]
        return float(grid[int(np.argmin(mae))])

    def _network_predict(self, inputs: GraphInputs, pairs: torch.Tensor,
                         edge_of_pair: torch.Tensor) -> torch.Tensor:
        """The network's predictions of pairs, without corrections; a pair that is
        a score edge is predicted with its fold out of the graph."""
        fold = self.fold_
        out = torch.empty(pairs.size(1))
        free = edge_of_pair < 0
        pair_fold = fold[edge_of_pair.clamp(min=0)]
        if free.any():
            out[free] = predict_pairs(self.network_, inputs, pairs[:, free])
        for f in range(self.config.predict_folds):
            sel = (~free) & (pair_fold == f)
            if sel.any():
                out[sel] = predict_pairs(self.network_, inputs, pairs[:, sel], exclude=fold == f)
        return out

    def _pair_index(self, pairs: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
        """``[2, P]`` (model, task) positions of known names, and each pair's score edge (-1: none)."""
        m = torch.tensor(pairs["model"].map(self._model_index).to_numpy(), dtype=torch.long)
        t = torch.tensor(pairs["task"].map(self._task_index).to_numpy(), dtype=torch.long)
        scores = self.data_.scores
        edge_id = pd.Series(np.arange(len(scores)),
                            index=pd.MultiIndex.from_frame(scores[["model", "task"]]))
        key = pd.MultiIndex.from_frame(pairs[["model", "task"]])
        e = torch.tensor(edge_id.reindex(key).fillna(-1).to_numpy(dtype=np.int64))
        return torch.stack([m, t]), e

    def _correction(self, use: torch.Tensor, residual: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        """The residual correction of ``pairs`` from the ``use``-d training edges."""
        z, known = self._residual_matrix(use, residual)
        corr = residual_correction(z, known, self.config.observed_shrinkage, weights=self.task_weights_)
        return corr[pairs[0], pairs[1]]

    def _table(self, models, tasks, pred_norm, observed_raw, *, norm: Normalizer | None = None,
               info: pd.DataFrame | None = None, no_raw: np.ndarray | None = None) -> pd.DataFrame:
        """The prediction table; normalized predictions are clipped to the tasks' declared range.

        ``no_raw`` marks rows whose raw prediction is unknown (NaN).
        """
        norm = self.normalizer_ if norm is None else norm
        info = self.data_.task_info if info is None else info
        models, tasks = list(models), list(tasks)
        bounds = [norm.transform(tasks, info[col].reindex(tasks).to_numpy(dtype=np.float64),
                                 models=models) for col in ("min_score", "max_score")]
        n = len(tasks)
        rising = norm.transform(tasks, np.ones(n), models=models) > norm.transform(
            tasks, np.zeros(n), models=models)  # False for a lower-is-better task
        lo, hi = np.where(rising, bounds[0], bounds[1]), np.where(rising, bounds[1], bounds[0])
        pred_norm = np.clip(pred_norm, np.where(np.isnan(lo), -np.inf, lo),
                            np.where(np.isnan(hi), np.inf, hi))
        pred_raw = norm.inverse_transform(tasks, pred_norm, models=models)
        if no_raw is not None:
            pred_raw[no_raw] = np.nan
        obs_norm = np.full(len(tasks), np.nan)
        has = ~np.isnan(observed_raw)
        if has.any():
            obs_norm[has] = norm.transform(np.asarray(tasks, dtype=object)[has], observed_raw[has],
                                           models=np.asarray(models, dtype=object)[has])
        return pd.DataFrame({"model": models, "task": tasks, "predicted": pred_raw,
                             "predicted_normalized": pred_norm, "observed": observed_raw,
                             "observed_normalized": obs_norm, "is_observed": has})

    @_threaded
    def predict(self, pairs: pd.DataFrame | None = None) -> pd.DataFrame:
        """Predict cells of the training matrix.

        Parameters
        ----------
        pairs : DataFrame with columns ``model`` and ``task``, optional
            Default: every models x tasks cell.

        Returns
        -------
        DataFrame
            ``model, task, predicted`` (raw units), ``predicted_normalized``,
            ``observed``, ``observed_normalized`` (NaN if unobserved) and
            ``is_observed``. An observed cell is predicted with its own score
            (and those of its fold) left out of the graph and of the
            residual correction.
        """
        self._check_fitted()
        data = self.data_
        if pairs is None:
            grid = pd.MultiIndex.from_product([data.models, data.tasks], names=["model", "task"])
            pairs = grid.to_frame(index=False)
        for col, index, what in (("model", self._model_index, "model"),
                                 ("task", self._task_index, "task")):
            for name in pd.unique(pairs[col]):
                if name not in index:
                    raise _unknown(str(name), list(index), what)
        index, e = self._pair_index(pairs)
        pred = self._fold_predict(self.inputs_, index, e).numpy()
        observed = data.scores.set_index(["model", "task"])["score"]
        obs = observed.reindex(pd.MultiIndex.from_frame(pairs[["model", "task"]])).to_numpy(
            dtype=np.float64)
        return self._table(pairs["model"], pairs["task"], pred.astype(np.float64), obs)

    @_threaded
    def predict_new_models(self, model_factors: pd.DataFrame,
                           known_scores: pd.DataFrame | None = None, *,
                           files: dict | None = None) -> pd.DataFrame:
        """Cold start: predict every task for models not seen in training.

        Parameters
        ----------
        model_factors : DataFrame
            Column ``model`` plus factor columns (as in ``model_factors.csv``).
        known_scores : DataFrame, optional
            ``model, task, score`` rows of known (raw) scores of these models.
            They become score edges of the graph; with
            ``config.correct_known``, their residuals correct the model's
            other predictions (:func:`cppgraph.train.residual_correction`),
            and with ``config.known_regression`` a ridge regression on them
            is mixed in (:func:`cppgraph.train.known_score_regression`); no
            retraining.
        files : dict, optional
            ``{"model_factors": path, "known_scores": path}`` for error
            messages; an optional ``_line`` column gives each row's line.

        Returns
        -------
        DataFrame
            As :meth:`predict`; a known cell is predicted without its own score.
        """
        self._check_fitted()
        if self.normalizer_.by == "model":
            raise CppGraphError("the paper normalization is per model and cannot scale the scores "
                                "of a new model; fit with another normalization for cold start")
        return self._predict_new("model", model_factors, known_scores, files=files or {})

    @_threaded
    def predict_new_tasks(self, task_factors: pd.DataFrame,
                          known_scores: pd.DataFrame | None = None, *,
                          task_info: pd.DataFrame | None = None,
                          files: dict | None = None) -> pd.DataFrame:
        """Cold start: predict every training model on tasks not seen in training.

        Parameters
        ----------
        task_factors : DataFrame
            Column ``task`` plus factor columns (as in ``task_factors.csv``).
        known_scores : DataFrame, optional
            ``model, task, score`` rows: known scores of training models on
            the new tasks (score edges, the residual correction and the known-score
            regression).
        task_info : DataFrame, optional
            ``tasks.csv`` rows of the new tasks (direction, declared range);
            a task without one is taken as higher-is-better.
        files : dict, optional
            ``{"task_factors", "known_scores", "task_info"}`` paths for errors.

        Notes
        -----
        Raw units need the new task's scale. Under the per-task
        normalizations (``minmax``, ``zscore``) a new task starts from the
        median shift and scale of the training tasks of the same unit and
        direction, among them those sharing the most categorical factor
        values with it under ``task_prior="factors"``
        (:func:`cppgraph.normalize.new_task_prior`); its known
        scores then refit offset and scale, weighed against that prior by the
        spread of the same-unit training tasks' scales and
        ``task_scale_noise`` (:func:`cppgraph.normalize.refit_task_scale`).
        Where no training task shares the unit, offset and scale are fitted
        from 2 or more known scores alone. Without either,
        ``predicted`` is NaN and a warning says so. ``logit`` takes the
        declared range; ``paper`` per model needs nothing.
        """
        self._check_fitted()
        return self._predict_new("task", task_factors, known_scores, task_info=task_info,
                                 files=files or {})

    def _parse_new_entities(self, kind: str, frame: pd.DataFrame, file) -> tuple[list, pd.DataFrame]:
        """Names and parsed factor table of new models or tasks."""
        index = self._model_index if kind == "model" else self._task_index
        if kind not in frame.columns:
            raise DataError(f"new-{kind} factors need a {kind!r} column", file=file)
        names = [str(n) for n in frame[kind]]
        lines = frame["_line"].to_numpy() if "_line" in frame.columns else None
        for i, name in enumerate(names):
            if name in index:
                raise DataError(f"{kind} {name!r} is already in the training data; use predict() "
                                "for it", file=file, line=None if lines is None else int(lines[i]))
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise DataError(f"new-{kind} factors list {kind} {dup!r} more than once", file=file)
        table = frame.drop(columns=["_line"], errors="ignore").set_index(kind)
        kinds = self.factors_.kinds_[kind]
        for factor, factor_kind in kinds.items():
            if factor in table.columns and factor_kind == "numeric":
                table[factor] = parse_numbers(table[factor], file=file, column=factor, lines=lines,
                                              what="a number (numeric factor)")
        unknown_cols = [c for c in table.columns if c not in kinds]
        if unknown_cols:
            warnings.warn(f"{file + ': ' if file else ''}column(s) {unknown_cols} are not {kind} "
                          f"factors of the fitted model and are ignored; its factors: {list(kinds)}",
                          DataWarning, stacklevel=3)
        return names, table

    def _parse_known(self, kind: str, known, names: list, file) -> pd.DataFrame:
        """Known raw scores of new entities, checked against both name lists."""
        if known is None:
            known = pd.DataFrame(columns=["model", "task", "score"])
        missing = [c for c in ("model", "task", "score") if c not in known.columns]
        if missing:
            raise DataError(f"known scores need columns model, task, score; missing {missing}",
                            file=file)
        lines = known["_line"].to_numpy() if "_line" in known.columns else None
        known = known.assign(score=parse_numbers(known["score"], file=file, column="score",
                                                 allow_missing=False, lines=lines))
        dup = known.duplicated(["model", "task"])
        if dup.any():
            i = int(np.flatnonzero(dup.to_numpy())[0])
            raise DataError("known scores list this (model, task) cell more than once", file=file,
                            line=None if lines is None else int(lines[i]))
        other = "task" if kind == "model" else "model"
        other_index = self._task_index if kind == "model" else self._model_index
        for col, valid, what in ((kind, names, f"new {kind} (not in the factor table)"),
                                 (other, list(other_index), other)):
            for name in pd.unique(known[col]):
                if name not in valid:
                    raise _unknown(str(name), valid, what)
        return known.drop(columns=["_line"], errors="ignore").reset_index(drop=True)

    def _new_task_normalizer(self, names: list, info: pd.DataFrame,
                             factors: pd.DataFrame) -> tuple[Normalizer, dict]:
        """The normalizer extended with prior parameters for new tasks, and the prior
        covariance of each new task's raw shift and scale where it has one.

        Under the per-task normalizations (``minmax``, ``zscore``) the
        parameters come from :func:`new_task_prior` and the covariances from
        :func:`task_scale_covariance`; ``logit`` takes the declared ranges and
        ``paper`` needs nothing (no covariances).
        """
        norm = self.normalizer_
        hib = info["higher_is_better"].reindex(names)
        if norm.by == "model":
            lower = list(hib.index[~hib.fillna(True).to_numpy(dtype=bool)])
            if lower:
                raise DataError(f"the paper normalization is defined for higher-is-better scores; "
                                f"new lower-is-better task(s): {lower[:5]}")
            return norm, {}
        if norm.name == "logit":
            if hib.isna().any():
                raise DataError(f"new task(s) {list(hib.index[hib.isna()])[:5]} have no direction "
                                "(higher_is_better)")
            sign = np.where(hib.astype(bool), 1.0, -1.0)
            lo, hi = info["min_score"].reindex(names), info["max_score"].reindex(names)
            no_range = [t for t in names if pd.isna(lo[t]) or pd.isna(hi[t])]
            if no_range:
                raise DataError(f"the logit normalization needs the declared range (min_score, "
                                f"max_score) of each new task; missing for {no_range[:5]}")
            return norm.extended(names, np.where(sign > 0, lo, hi), (hi - lo).to_numpy(), sign), {}
        shared = {}
        if self.config.task_prior == "factors":
            shared = dict(train_factors=self._category_labels(self.data_.task_factors),
                          new_factors=self._category_labels(factors.reindex(names)))
        new_info = info.reindex(names)
        shift, scale, sign = new_task_prior(norm, self.data_.task_info, new_info, **shared)
        cov = task_scale_covariance(norm, self.data_.task_info, new_info)
        return (norm.extended(names, shift, scale, sign),
                {t: c for t, c in zip(names, cov) if np.isfinite(c).all()})

    def _fit_new_task_scale(self, norm: Normalizer, known: pd.DataFrame, base: np.ndarray,
                            cov: dict) -> Normalizer:
        """Fit new tasks' raw offset and scale to their known scores.

        ``raw = shift + sign * scale * y`` on the known cells, ``y`` being the
        prediction made without any known score. A task with a prior scale is
        refitted from it (:func:`cppgraph.normalize.refit_task_scale`, the
        prior covariance ``cov[task]`` and ``task_scale_noise``); one without
        (no training task shares its unit) gets a least-squares fit from 2 or
        more scores, or keeps a NaN offset (no raw predictions).
        """
        shift, scale = norm.shift_.copy(), norm.scale_.copy()
        for task, cells in known.assign(y=base).groupby("task"):
            i = int(norm.positions([task])[0])
            raw, y = cells["score"].to_numpy(), norm.sign_[i] * cells["y"].to_numpy()
            if np.isnan(scale[i]):  # no scale from the training tasks: fit it, if 2+ scores allow
                if len(cells) < 2 or np.ptp(y) == 0:
                    continue
                slope, intercept = np.polyfit(y, raw, 1)
                if slope <= 0:
                    continue
                scale[i], shift[i] = slope, intercept
            else:
                shift[i], scale[i] = refit_task_scale(shift[i], scale[i], raw, y, cov.get(task),
                                                      self.config.task_scale_noise)
        return norm.with_params(shift, scale)

    def _category_labels(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Factor-node labels of the categorical task factors in ``frame`` (None if unseen)."""
        kinds = self.factors_.kinds_["task"]
        return pd.DataFrame({f: self.factors_.node_labels("task", f, frame[f].tolist())
                             for f, kind in kinds.items() if kind == "categorical" and f in frame},
                            index=frame.index)

    def _predict_new(self, kind: str, factors: pd.DataFrame, known, *, task_info=None,
                     files: dict) -> pd.DataFrame:
        """Shared cold start for new models (``kind="model"``) or new tasks (``"task"``)."""
        ffile, sfile = files.get(f"{kind}_factors"), files.get("known_scores")
        names, table = self._parse_new_entities(kind, factors, ffile)
        known = self._parse_known(kind, known, names, sfile)
        scale_cov = {}
        if kind == "model":
            norm, info = self.normalizer_, self.data_.task_info
        else:
            new_info = parse_task_info(task_info, names, files.get("task_info"))
            norm, scale_cov = self._new_task_normalizer(names, new_info, table)
            info = pd.concat([self.data_.task_info, new_info.reindex(names)])
        pos = {n: i for i, n in enumerate(names)}
        n_old = len(self.data_.models) if kind == "model" else len(self.data_.tasks)
        n_other = len(self.data_.tasks) if kind == "model" else len(self.data_.models)
        # Every (new entity, other) cell, new entity by new entity.
        new_col = torch.arange(len(names)).repeat_interleave(n_other) + n_old
        other_col = torch.arange(n_other).repeat(len(names))
        pairs = torch.stack([new_col, other_col] if kind == "model" else [other_col, new_col])
        other_index = self._task_index if kind == "model" else self._model_index
        new_ids = known[kind].map(pos).to_numpy(dtype=np.int64)
        other_ids = known["task" if kind == "model" else "model"].map(other_index)
        cells = new_ids * n_other + other_ids.to_numpy(dtype=np.int64)  # positions in pairs
        ctx = {"kind": kind, "names": names, "n_old": n_old, "pairs": pairs, "cells": cells,
               "norm": norm, "scale_cov": scale_cov,
               "x": torch.from_numpy(self.factors_.numeric_features(kind, table)),
               "fe": torch.from_numpy(self.factors_.factor_edges(kind, table)),
               "head": self._head_inputs(kind, table)}
        ctx["prior"] = self._new_pass(ctx, np.zeros(len(known), dtype=bool), known, prior_only=True)[0]
        pred, norm = self._new_pass(ctx, np.ones(len(known), dtype=bool), known)
        if norm is not self.normalizer_ and kind == "task":
            unscaled = [t for t, i in zip(names, norm.positions(names)) if np.isnan(norm.shift_[i])]
            if unscaled:
                warnings.warn(f"the raw scale of new task(s) {unscaled[:5]} is unknown (no "
                              "training task of the same unit and direction, and fewer than 2 "
                              "known scores): only "
                              "normalized predictions are given", DataWarning, stacklevel=3)
        no_raw = np.zeros(len(pred), dtype=bool)
        if len(known):
            # A known cell is predicted by the same steps run without its fold of known scores.
            k = min(self.config.predict_folds, len(known))
            gen = torch.Generator().manual_seed(self.config.random_state + 2)
            fold = (torch.randperm(len(known), generator=gen) % k).numpy()
            for f in range(k):
                pred_f, norm_f = self._new_pass(ctx, fold != f, known)
                held = fold == f
                at = cells[held]
                raw = norm_f.inverse_transform(known["task"][held], pred_f[at],
                                               models=known["model"][held])
                again = norm.transform(known["task"][held], raw, models=known["model"][held])
                pred[at] = np.where(np.isfinite(again), again, pred_f[at])
                no_raw[at] = ~np.isfinite(raw)
        row_models = [self.data_.models[i] if kind == "task" else names[i - n_old]
                      for i in pairs[0].tolist()]
        row_tasks = [self.data_.tasks[i] if kind == "model" else names[i - n_old]
                     for i in pairs[1].tolist()]
        obs = pd.Series(known["score"].astype(float).to_numpy(),
                        index=pd.MultiIndex.from_frame(known[["model", "task"]]))
        obs = obs.reindex(pd.MultiIndex.from_arrays([row_models, row_tasks])).to_numpy(dtype=np.float64)
        return self._table(row_models, row_tasks, pred, obs, norm=norm, info=info, no_raw=no_raw)

    def _new_pass(self, ctx: dict, use: np.ndarray, known: pd.DataFrame, *,
                  prior_only: bool = False) -> tuple[np.ndarray, Normalizer]:
        """Predict every cell of the new entities from their factors and the ``use``-d known scores.

        Returns normalized predictions (one per cell of ``ctx["pairs"]``) and the
        normalizer that maps them to raw units (for new tasks, its offsets are
        fitted to the used known scores). With ``prior_only``, no known score
        is used at all (the prior the residuals are measured against).
        """
        kind, n_old, cells = ctx["kind"], ctx["n_old"], ctx["cells"][use]
        sub = known[use]
        norm = ctx["norm"]
        if not prior_only and kind == "task" and norm is not self.normalizer_:
            norm = self._fit_new_task_scale(norm, sub, ctx["prior"][cells], ctx["scale_cov"])
        y = norm.transform(sub["task"], sub["score"].to_numpy(), models=sub["model"].to_numpy())
        usable = np.isfinite(y)  # a new task of unknown raw scale cannot use its scores
        y, cells = y[usable], cells[usable]
        edges = ctx["pairs"][:, torch.from_numpy(cells)]
        own = edges if kind == "model" else edges.flip(0)
        own = own - torch.tensor([[n_old], [0]])
        graph = add_nodes(self.inputs_.graph, kind, ctx["x"], ctx["fe"], own,
                          torch.tensor(y, dtype=torch.float32))
        if kind == "model":
            inputs = GraphInputs(graph, torch.cat([self.inputs_.head_model, ctx["head"]]),
                                 self.inputs_.head_task)
        else:
            inputs = GraphInputs(graph, self.inputs_.head_model,
                                 torch.cat([self.inputs_.head_task, ctx["head"]]))
        pred = predict_pairs(self.network_, inputs, ctx["pairs"]).numpy().astype(np.float64)
        if self.config.correct_known and len(y) and not prior_only:
            n_other = len(ctx["pairs"][0]) // len(ctx["names"])
            z = torch.zeros(len(ctx["names"]) * n_other, dtype=torch.float64)
            known_cells = torch.zeros(len(z), dtype=torch.bool)
            z[torch.from_numpy(cells)] = torch.from_numpy(y - ctx["prior"][cells])
            known_cells[torch.from_numpy(cells)] = True
            corr = residual_correction(z.view(-1, n_other).float(), known_cells.view(-1, n_other),
                                       self.config.known_shrinkage)
            pred = pred + corr.reshape(-1).numpy()
        if self.config.known_regression > 0 and len(y) and not prior_only:
            pred = self._blend_regression(kind, pred, cells, y, len(ctx["names"]))
        return pred, norm

    def _blend_regression(self, kind: str, pred: np.ndarray, cells: np.ndarray, y: np.ndarray,
                          n_new: int) -> np.ndarray:
        """Mix new entities' predictions with a ridge regression on their known scores.

        :func:`cppgraph.train.known_score_regression` over the training
        scores (a new model's tasks regressed on its known tasks across the
        training models; a new task's models on its known models across the
        training tasks); weight ``known_regression``; cells it cannot
        predict keep ``pred``. Where the normalized scale is bounded, the
        regression and the mix are in logit space (``known_logit_``), as for
        the observed-score regression (:meth:`_blend`).
        """
        g = self.inputs_.graph[SCORES]
        scores, known = self._residual_matrix(torch.ones(g.num_edges, dtype=torch.bool), g.edge_weight)
        scores, known = scores.double().numpy(), known.numpy()
        if kind == "task":
            scores, known = scores.T, known.T
        n_other = scores.shape[1]
        new_scores, new_known = np.zeros((n_new, n_other)), np.zeros((n_new, n_other), dtype=bool)
        new_scores.flat[cells], new_known.flat[cells] = y, True
        logit = self.known_logit_
        reg = known_score_regression(scores, known, new_scores, new_known, logit=logit).reshape(-1)
        ok = np.isfinite(reg)
        w = self.config.known_regression
        out = pred.copy()
        if logit:
            out[ok] = self._blend(torch.from_numpy(pred[ok]), torch.from_numpy(reg[ok]), w).numpy()
        else:
            out[ok] = (1 - w) * pred[ok] + w * reg[ok]
        return out

    # -------------------------------------------------------- embeddings
    @_threaded
    def node_embeddings(self) -> dict[str, np.ndarray]:
        """The encoder's final node embeddings on the full training graph.

        Returns
        -------
        dict
            ``{"model": [n_models, d], "task": [n_tasks, d], "factor":
            [n_factor_nodes, d]}`` float64 arrays, rows in the order of
            ``data_.models``, ``data_.tasks`` and ``factors_.nodes_``
            (eval mode, every score edge in the graph).
        """
        self._check_fitted()
        return self._encode(self.inputs_.graph)

    def _encode(self, graph) -> dict[str, np.ndarray]:
        encoder = self.network_.encoder
        was_training = encoder.training
        encoder.eval()
        try:
            with torch.no_grad():
                h = encoder(graph)
        finally:
            encoder.train(was_training)
        return {kind: h[kind].numpy().astype(np.float64) for kind in ("model", "task", "factor")}

    @_threaded
    def new_model_embeddings(self, model_factors: pd.DataFrame,
                             known_scores: pd.DataFrame | None = None, *,
                             files: dict | None = None) -> np.ndarray:
        """Embed models not seen in training, attached as :meth:`predict_new_models` attaches them.

        Each new model joins the training graph through its factor edges and
        the score edges of its known scores (normalized), without retraining.

        Parameters
        ----------
        model_factors, known_scores, files
            As in :meth:`predict_new_models`.

        Returns
        -------
        ndarray ``[n_new, d]``
            One row per row of ``model_factors``, in order.
        """
        self._check_fitted()
        files = files or {}
        names, table = self._parse_new_entities("model", model_factors, files.get("model_factors"))
        known = self._parse_known("model", known_scores, names, files.get("known_scores"))
        if len(known) and self.normalizer_.by == "model":
            raise CppGraphError("the paper normalization is per model and cannot scale the scores "
                                "of a new model; give its factors only")
        y = self.normalizer_.transform(known["task"], known["score"].to_numpy(dtype=np.float64),
                                       models=known["model"].to_numpy())
        pos = {n: i for i, n in enumerate(names)}
        edges = torch.tensor(np.stack([known["model"].map(pos).to_numpy(dtype=np.int64),
                                       known["task"].map(self._task_index).to_numpy(dtype=np.int64)]),
                             dtype=torch.long).reshape(2, -1)
        graph = add_nodes(self.inputs_.graph, "model",
                          torch.from_numpy(self.factors_.numeric_features("model", table)),
                          torch.from_numpy(self.factors_.factor_edges("model", table)), edges,
                          torch.tensor(y, dtype=torch.float32))
        return self._encode(graph)["model"][len(self.data_.models):]

    # ------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the fitted model to a folder, atomically (weights, JSON metadata, log, data)."""
        self._check_fitted()
        meta = {
            "format_version": FORMAT_VERSION,
            "cppgraph_version": __version__,
            "torch_version": torch.__version__,
            "config": self.config.to_dict(),
            "models": self.data_.models,
            "tasks": self.data_.tasks,
            "normalizer": self.normalizer_.to_dict(),
            "factors": self.factors_.to_dict(),
            "data_fingerprint": _fingerprint(self.data_),
            "data_name": self.data_.meta.get("name", ""),
            "synthetic": bool(self.data_.meta.get("synthetic", False)),
            "best_epoch": self.best_epoch_,
            "fit_seconds": self.fit_seconds_,
            "val_mae": self.val_mae_,
            "observed_weight": self.observed_weight_,
            "known_regression_logit": self.known_logit_,
        }
        with atomic_folder(path, overwrite=overwrite) as tmp:
            torch.save(self.network_.state_dict(), tmp / WEIGHTS_FILE)
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
            pd.DataFrame(self.log_).to_csv(tmp / LOG_FILE, index=False)
            write_canonical(self.data_, tmp / DATA_DIR)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike, *, n_jobs: int | None = None) -> "CPPGraph":
        """Load a model folder written by :meth:`save` (no pickle: ``weights_only=True``).

        ``n_jobs`` replaces the saved thread count (``config.n_jobs``).
        """
        with limit_threads(n_jobs):
            return cls._load(Path(path), n_jobs)

    @classmethod
    def _load(cls, folder: Path, n_jobs: int | None) -> "CPPGraph":
        if not folder.is_dir():
            raise CppGraphError(f"{folder}: model folder not found")
        try:
            meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CppGraphError(f"{folder}: not a cppgraph model folder (no {META_FILE})") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CppGraphError(f"{folder / META_FILE}: corrupted model metadata: {err}") from err
        if meta.get("format_version") != FORMAT_VERSION:
            raise CppGraphError(f"{folder}: model format {meta.get('format_version')!r} is not "
                                f"supported (expected {FORMAT_VERSION}); refit the model")
        try:
            # Saved before new tasks' known scores refitted the scale: the offset alone.
            config = {"task_scale_noise": 0.0, **meta["config"]}
            if n_jobs is not None:
                config["n_jobs"] = n_jobs
            est = cls(Config.from_dict(config, source=str(folder / META_FILE)))
            data = read_canonical(folder / DATA_DIR)
            if _fingerprint(data) != meta["data_fingerprint"]:
                raise CppGraphError(f"{folder / DATA_DIR}: training data was modified after saving")
            est.data_ = data
            est.normalizer_ = Normalizer.from_dict(meta["normalizer"])
            est.factors_ = FactorEncoder.from_dict(meta["factors"])
            est._prepare()
            est.network_ = est._new_network()
            state = torch.load(folder / WEIGHTS_FILE, weights_only=True)
            est.network_.load_state_dict(state)
            est.network_.eval()
            est._prepare_correction()
            est.observed_weight_ = float(meta.get("observed_weight", 0.0))
            # Saved before the known-score regression moved to logit space: linear, as then.
            est.known_logit_ = bool(meta.get("known_regression_logit", False))
        except CppGraphError:
            raise
        except (KeyError, RuntimeError, OSError, ValueError, pickle.UnpicklingError) as err:
            raise CppGraphError(f"{folder}: corrupted or incompatible model folder: {err}") from err
        est.log_ = pd.read_csv(folder / LOG_FILE).to_dict("records") if (folder / LOG_FILE).is_file() else []
        est.best_epoch_ = meta.get("best_epoch")
        est.fit_seconds_ = meta.get("fit_seconds")
        est.val_mae_ = meta.get("val_mae")
        return est

    def __repr__(self) -> str:
        fitted = f", fitted on {self.data_!r}" if hasattr(self, "data_") else ""
        return f"CPPGraph(encoder={self.config.encoder!r}{fitted})"
