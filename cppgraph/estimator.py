"""The cppgraph estimator: fit on a :class:`CollabData`, predict any (model, task) cell.

:class:`CPPGraph` composes the parts: the normalization (:mod:`cppgraph.normalize`),
the graph (:mod:`cppgraph.graph`), the network and its training
(:mod:`cppgraph.nn`, :mod:`cppgraph.train`), the post-hoc stages
(:mod:`cppgraph.stages`), cold start (:mod:`cppgraph.coldstart`) and
persistence (:mod:`cppgraph.persist`).
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from cppgraph import calibrate, coldstart, persist
from cppgraph.config import Config
from cppgraph.data.readers import as_data
from cppgraph.errors import CppGraphError
from cppgraph.graph import FactorEncoder, build_graph, compile_graph
from cppgraph.nn import ScoreHead, make_encoder
from cppgraph.normalize import make_normalizer
from cppgraph.progress import epoch_bar
from cppgraph.stages import BenchmarkMix, KnownScoreCorrection, KnownScoreMix, TrainingScores
from cppgraph.table import prediction_table
from cppgraph.threads import limit_threads, threaded as _threaded
from cppgraph.train import Network, fit_network, node_embeddings, observed_matrix, predict_cells


class CPPGraph:
    """Graph-based collaborative performance predictor.

    Parameters
    ----------
    config : Config, optional
        All settings; keyword arguments override single fields. The fields
        are also the estimator's parameters (``get_params``, ``set_params``:
        scikit-learn's ``clone`` works).

    Attributes (after :meth:`fit`)
    ------------------------------
    data_ : CollabData
        The training data.
    normalizer_, factors_
        The fitted normalization and factor vocabulary.
    fit_config_ : Config
        The configuration the fit ran with: ``config`` with its ``"auto"``
        training-schedule keys set for the size of the data (:meth:`Config.resolved`).
    network_ : Network
    folds_ : Folds
        Validation cells and the ``predict_folds`` folds of the rest.
    training_scores_ : TrainingScores
        The normalized training matrix and the network's leak-free
        prediction of each of its cells.
    observed_stage_, known_stage_
        The post-hoc stages (:mod:`cppgraph.stages`).
    calibration_ : Calibration or None
        The conformal scores of the prediction intervals (:mod:`cppgraph.calibrate`;
        None when fitted with ``intervals=False``).
    log_ : list of dict
        One entry per epoch (train and validation MSE, normalized scale).
    best_epoch_ : int
    fit_seconds_ : float
    val_mae_ : dict
        MAE of the validation cells, normalized and in raw units.
    """

    def __init__(self, config: Config | None = None, **overrides):
        self.config = (config if config is not None else Config()).replace(**overrides)

    def get_params(self, deep: bool = True) -> dict:
        """The configuration's fields, by name."""
        return {f.name: getattr(self.config, f.name) for f in dataclasses.fields(self.config)}

    def set_params(self, **params) -> "CPPGraph":
        """Change configuration fields (before :meth:`fit`); returns ``self``."""
        self.config = self.config.replace(**params)
        return self

    # ---------------------------------------------------------------- fit
    @_threaded
    def fit(self, data, *, model_factors: pd.DataFrame | None = None,
            task_factors: pd.DataFrame | None = None, tasks: pd.DataFrame | None = None,
            callback: Callable[[dict], None] | None = None) -> "CPPGraph":
        """Learn from every observed score of ``data``; returns ``self``.

        ``data`` is a :class:`CollabData`, a canonical folder's path, or a
        long DataFrame of scores (``model, task, score``) with the optional
        tables ``model_factors``, ``task_factors`` and ``tasks`` (as in the
        canonical folder's CSV files; :func:`cppgraph.data.as_data`).
        """
        data = as_data(data, model_factors=model_factors, task_factors=task_factors, tasks=tasks)
        self.config.validate()
        cfg = self.fit_config_ = self.config.resolved(len(data.scores), data.density)
        bar = epoch_bar(cfg.epochs) if cfg.verbose and callback is None else None
        callback = bar.update if bar is not None else callback
        torch.manual_seed(cfg.random_state)
        np.random.seed(cfg.random_state)
        start = time.perf_counter()
        self.data_ = data
        self.normalizer_ = make_normalizer(cfg.normalization).fit(data)
        self.factors_ = FactorEncoder().fit(data)
        self._prepare()
        with calibrate.calibrating(self, relay=callback is not None) as calibration:
            self.network_ = self._new_network()
            generator = torch.Generator().manual_seed(cfg.random_state)
            self.log_, self.folds_ = fit_network(
                self.network_, self.graph_, lr=cfg.lr, weight_decay=cfg.weight_decay,
                epochs=cfg.epochs, patience=cfg.patience, val_fraction=cfg.val_fraction,
                supervision_fraction=cfg.supervision_fraction, id_dropout=cfg.id_dropout,
                batch_size=cfg.batch_size, generator=generator, lr_patience=cfg.lr_patience,
                id_lr_scale=cfg.id_lr_scale, stop_delta=cfg.stop_delta,
                train_delta=cfg.train_delta, callback=calibration.watch(callback))
            self.best_epoch_ = int(min(self.log_, key=lambda e: e["val_loss"])["epoch"])
            self._fit_stages()
            self.calibration_ = calibration.result(callback)
        self.fit_seconds_ = time.perf_counter() - start
        self.val_mae_ = self._validation_mae()
        if bar is not None:
            bar.close(f"fitted {data!r}: {len(self.log_)} epochs in {self.fit_seconds_:.1f}s, "
                      f"validation MAE {self.val_mae_['normalized']:.4f} (normalized)")
        return self

    def _prepare(self) -> None:
        """Normalized scores, the heterogeneous graph and its tensors, the name indices."""
        data = self.data_
        s = data.scores
        self.y_ = self.normalizer_.transform(s["task"], s["score"], models=s["model"])
        self.hetero_ = build_graph(data, self.factors_, normalized=self.y_)
        self.graph_ = compile_graph(self.hetero_)
        self.model_index_ = {m: i for i, m in enumerate(data.models)}
        self.task_index_ = {t: i for i, t in enumerate(data.tasks)}
        self._edge_id = pd.Series(np.arange(len(s)), index=pd.MultiIndex.from_frame(s[["model", "task"]]))

    def _new_network(self) -> Network:
        cfg, g = self.fit_config_, self.graph_
        common = dict(num_models=g.num_models, num_tasks=g.num_tasks, num_factors=g.num_factors,
                      model_features=g.model_x.size(1), task_features=g.task_x.size(1),
                      hidden=cfg.hidden, num_layers=cfg.num_layers, dropout=cfg.dropout,
                      tables=cfg.predict_folds)
        if cfg.encoder == "lightgcn":
            common["score_floor"] = cfg.score_floor
        head = ScoreHead(cfg.hidden, g.model_x.size(1), g.task_x.size(1), g.num_factors,
                         mlp_hidden=cfg.head_hidden, dropout=cfg.dropout, bounded=self._bounded)
        return Network(make_encoder(cfg.encoder, **common), head)

    @property
    def _bounded(self) -> bool:
        """Whether the normalized scale is [0, 1] (minmax, paper)."""
        return self.config.normalization in ("minmax", "paper")

    def _fit_stages(self, observed: dict | None = None) -> None:
        """The training matrix with leak-free predictions, and the stages fitted on it
        (``observed``: the benchmark mix's saved state, taken instead of fitting it)."""
        y, fold, predicted = observed_matrix(self.network_, self.graph_, self.folds_)
        self.training_scores_ = TrainingScores(y=y, fold=fold, k=self.folds_.k,
                                               predicted=predicted, bounded=self._bounded)
        mix = BenchmarkMix(self.config.observed_regression)
        self.observed_stage_ = mix.restore(observed) if observed else mix.fit(self.training_scores_)
        self.known_correction_ = KnownScoreCorrection(self.config.known_shrinkage,
                                                      self.config.known_residual_limit)
        self.known_stage_ = KnownScoreMix(self.config.known_regression).fit(self.training_scores_)

    def _validation_mae(self) -> dict:
        """MAE of the validation cells (never in the graph while the network learned)."""
        val = self.folds_.validation.numpy()
        if len(val) == 0:
            return {"normalized": float("nan"), "raw": float("nan"), "cells": 0}
        table = self.predict(self.data_.scores.iloc[val][["model", "task"]])
        return {"normalized": float((table["predicted_normalized"] - self.y_[val]).abs().mean()),
                "raw": float((table["predicted"] - table["observed"]).abs().mean()),
                "cells": len(val)}

    def _check_fitted(self):
        if not hasattr(self, "network_"):
            raise CppGraphError("this CPPGraph is not fitted; call fit(data) or CPPGraph.load(path)")

    # ------------------------------------------------------------ predict
    @_threaded
    def predict(self, pairs: pd.DataFrame | None = None, *, wide: bool = False,
                interval: float | None = None) -> pd.DataFrame:
        """Predict cells of the training matrix.

        Parameters
        ----------
        pairs : DataFrame with columns ``model`` and ``task``, optional
            Default: every models x tasks cell.
        wide : bool
            Return only the raw predictions, as a models x tasks DataFrame.
        interval : float, optional
            Add ``lower`` and ``upper`` (raw units): the prediction interval at
            this level, e.g. 0.9 (:mod:`cppgraph.calibrate`).

        Returns
        -------
        DataFrame
            ``model, task, predicted`` (raw units), ``predicted_normalized``,
            ``observed``, ``observed_normalized`` (NaN if unobserved) and
            ``is_observed``. An observed cell is predicted with its own score
            (and those of its fold) out of the graph, of the ID vectors used
            and of the stages.
        """
        self._check_fitted()
        data = self.data_
        if pairs is None:
            pairs = pd.MultiIndex.from_product([data.models, data.tasks],
                                               names=["model", "task"]).to_frame(index=False)
        for col, index in (("model", self.model_index_), ("task", self.task_index_)):
            for name in pd.unique(pairs[col]):
                if name not in index:
                    raise coldstart.unknown_name(str(name), list(index), col)
        rows, cols, edge = self._cells(pairs)
        pred = self._network_predict(rows, cols, edge)
        fold = np.where(edge >= 0, self.folds_.fold.numpy()[np.maximum(edge, 0)], -1)
        pred = self.observed_stage_.apply(pred, rows, cols, fold, self.training_scores_)
        obs = np.where(edge >= 0, data.scores["score"].to_numpy()[np.maximum(edge, 0)], np.nan)
        half = None if interval is None else calibrate.half_widths(
            self.calibration_, interval, "cell", cols)
        table = self.table(pairs["model"], pairs["task"], pred, obs, half_width=half)
        if wide:
            grid = table.pivot(index="model", columns="task", values="predicted")
            return grid.reindex(index=pd.unique(pairs["model"]), columns=pd.unique(pairs["task"]))
        return table

    def _cells(self, pairs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Model and task positions of known names, and each pair's score edge (-1: none)."""
        rows = pairs["model"].map(self.model_index_).to_numpy(dtype=np.int64)
        cols = pairs["task"].map(self.task_index_).to_numpy(dtype=np.int64)
        key = pd.MultiIndex.from_frame(pairs[["model", "task"]])
        return rows, cols, self._edge_id.reindex(key).fillna(-1).to_numpy(dtype=np.int64)

    def _network_predict(self, rows, cols, edge, *, graph=None) -> np.ndarray:
        """:func:`~cppgraph.train.predict_cells` on ``graph`` (default the training graph)."""
        return predict_cells(self.network_, self.graph_ if graph is None else graph,
                             self.folds_, rows, cols, edge)

    def table(self, models, tasks, pred_norm, observed_raw, *, norm=None, info=None,
              no_raw=None, half_width=None) -> pd.DataFrame:
        """:func:`~cppgraph.table.prediction_table` with this model's normalization and tasks."""
        return prediction_table(models, tasks, pred_norm, observed_raw,
                                norm=self.normalizer_ if norm is None else norm,
                                info=self.data_.task_info if info is None else info, no_raw=no_raw,
                                half_width=half_width)

    @_threaded
    def predict_new_models(self, model_factors: pd.DataFrame,
                           known_scores: pd.DataFrame | None = None, *,
                           out_of_range: str = "error", files: dict | None = None,
                           interval: float | None = None) -> pd.DataFrame:
        """Cold start: predict every task for models not seen in training.

        ``model_factors`` has column ``model`` plus factor columns (as in
        ``model_factors.csv``); ``known_scores`` are ``model, task, score`` rows
        of their known raw scores, which become score edges of the new nodes and
        feed the known-score stages (no retraining); ``files`` names the files
        (``model_factors``, ``known_scores``) for error messages. Known scores
        are held to their tasks' declared ranges as training scores are
        (``out_of_range``: ``"error"``, ``"clip"`` or ``"allow"``). Returns a
        table as :meth:`predict`'s (``interval`` as there); a known cell is
        predicted without its own score.
        """
        self._check_fitted()
        return coldstart.predict_new(self, "model", model_factors, known_scores,
                                     out_of_range=out_of_range, files=files or {},
                                     interval=interval)

    @_threaded
    def predict_new_tasks(self, task_factors: pd.DataFrame,
                          known_scores: pd.DataFrame | None = None, *,
                          task_info: pd.DataFrame | None = None,
                          out_of_range: str = "error", files: dict | None = None,
                          interval: float | None = None) -> pd.DataFrame:
        """Cold start: predict every training model on tasks not seen in training.

        ``task_factors`` has column ``task`` plus factor columns; ``known_scores``
        are ``model, task, score`` rows of training models on the new tasks;
        ``task_info`` gives their direction and declared range (default
        higher-is-better). A new task's raw scale starts from similar training
        tasks and is refitted to its known scores (:mod:`cppgraph.coldstart`);
        without either, ``predicted`` is NaN and a warning says so. Known
        scores are held to the declared ranges (``out_of_range`` and
        ``interval`` as in :meth:`predict_new_models`).
        """
        self._check_fitted()
        return coldstart.predict_new(self, "task", task_factors, known_scores,
                                     task_info=task_info, out_of_range=out_of_range,
                                     files=files or {}, interval=interval)

    # -------------------------------------------------------- embeddings
    @_threaded
    def node_embeddings(self, layer: str = "head") -> dict[str, np.ndarray]:
        """``{"model", "task", "factor"}`` float64 embeddings, rows in the order of
        ``data_.models``, ``data_.tasks`` and ``factors_.nodes_``. ``layer="head"``:
        each node's vector in the scoring head's first layer, the part of its scores
        that depends on it alone (encoder embedding and features, plus its factor
        values' rows); ``"encoder"``: the encoder's output, without the factor rows."""
        self._check_fitted()
        return node_embeddings(self.network_, self.graph_, layer)

    @_threaded
    def new_model_embeddings(self, model_factors: pd.DataFrame,
                             known_scores: pd.DataFrame | None = None, *,
                             files: dict | None = None, layer: str = "head") -> np.ndarray:
        """Embed models not seen in training, attached as :meth:`predict_new_models`
        attaches them: ``[n_new, d]``, one row per row of ``model_factors``."""
        self._check_fitted()
        graph, view = coldstart.new_model_graph(self, model_factors, known_scores, files or {})
        return node_embeddings(self.network_, graph, layer, view)["model"][len(self.data_.models):]

    # ------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the fitted model to a folder, atomically (weights, JSON metadata, log, data)."""
        self._check_fitted()
        return persist.save(self, path, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike, *, n_jobs: int | None = None) -> "CPPGraph":
        """Load a model folder written by :meth:`save` (no pickle: ``weights_only=True``).

        ``n_jobs`` replaces the saved thread count (``config.n_jobs``).
        """
        with limit_threads(n_jobs):
            return persist.load(cls, Path(path), n_jobs=n_jobs)

    def __repr__(self) -> str:
        fitted = f", fitted on {self.data_!r}" if hasattr(self, "data_") else ""
        return f"CPPGraph(encoder={self.config.encoder!r}{fitted})"
