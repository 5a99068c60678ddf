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
from cppgraph.data.dataset import CollabData, parse_numbers, suggest
from cppgraph.errors import CppGraphError, DataError, DataWarning
from cppgraph.graph import SCORES, FactorEncoder, add_nodes, build_graph
from cppgraph.nn import ScoreHead, make_encoder
from cppgraph.normalize import Normalizer, make_normalizer
from cppgraph.train import GraphInputs, Network, fit_network, predict_pairs

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
                         bounded=cfg.normalization in ("minmax", "paper"))
        return Network(encoder, head)

    def _check_fitted(self):
        if not hasattr(self, "network_"):
            raise CppGraphError("this CPPGraph is not fitted; call fit(data) or CPPGraph.load(path)")

    # ------------------------------------------------------------ predict
    def _fold_predict(self, inputs: GraphInputs, pairs: torch.Tensor, edge_of_pair: torch.Tensor,
                      n_edges: int) -> torch.Tensor:
        """Predict pairs; a pair that is a score edge is predicted with its fold removed."""
        k = self.config.predict_folds
        gen = torch.Generator().manual_seed(self.config.random_state + 1)
        fold = torch.randperm(n_edges, generator=gen) % k
        out = torch.empty(pairs.size(1))
        free = edge_of_pair < 0
        if free.any():
            out[free] = predict_pairs(self.network_, inputs, pairs[:, free])
        for f in range(k):
            sel = (~free) & (fold[edge_of_pair.clamp(min=0)] == f)
            if sel.any():
                out[sel] = predict_pairs(self.network_, inputs, pairs[:, sel], exclude=fold == f)
        return out

    def _table(self, models, tasks, pred_norm, observed_raw, raw_models=None) -> pd.DataFrame:
        norm = self.normalizer_
        m = list(models) if raw_models is None else list(raw_models)
        pred_raw = norm.inverse_transform(tasks, pred_norm, models=m)
        obs_norm = np.full(len(tasks), np.nan)
        has = ~np.isnan(observed_raw)
        if has.any():
            obs_norm[has] = norm.transform(np.asarray(tasks, dtype=object)[has], observed_raw[has],
                                           models=np.asarray(m, dtype=object)[has])
        return pd.DataFrame({"model": list(models), "task": list(tasks), "predicted": pred_raw,
                             "predicted_normalized": pred_norm, "observed": observed_raw,
                             "observed_normalized": obs_norm, "is_observed": has})

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
            (and those of its fold) left out of the graph.
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
        m = torch.tensor(pairs["model"].map(self._model_index).to_numpy(), dtype=torch.long)
        t = torch.tensor(pairs["task"].map(self._task_index).to_numpy(), dtype=torch.long)
        observed = data.scores.set_index(["model", "task"])["score"]
        edge_id = pd.Series(np.arange(len(data.scores)),
                            index=pd.MultiIndex.from_frame(data.scores[["model", "task"]]))
        key = pd.MultiIndex.from_frame(pairs[["model", "task"]])
        e = torch.tensor(edge_id.reindex(key).fillna(-1).to_numpy(dtype=np.int64))
        pred = self._fold_predict(self.inputs_, torch.stack([m, t]), e, len(data.scores)).numpy()
        obs = observed.reindex(key).to_numpy(dtype=np.float64)
        return self._table(pairs["model"], pairs["task"], pred.astype(np.float64), obs)

    def predict_new_models(self, model_factors: pd.DataFrame,
                           known_scores: pd.DataFrame | None = None, *,
                           files: dict | None = None) -> pd.DataFrame:
        """Cold start: predict every task for models not seen in training.

        Parameters
        ----------
        model_factors : DataFrame
            Column ``model`` plus factor columns (as in ``model_factors.csv``).
        known_scores : DataFrame, optional
            ``model, task, score`` rows of known (raw) scores of these models;
            they become score edges, without retraining.
        files : dict, optional
            ``{"model_factors": path, "known_scores": path}`` for error
            messages; an optional ``_line`` column gives each row's line.
        """
        self._check_fitted()
        if self.config.normalization == "paper":
            raise CppGraphError("the paper normalization is per model and cannot scale the scores "
                                "of a new model; fit with another normalization for cold start")
        files = files or {}
        ffile, sfile = files.get("model_factors"), files.get("known_scores")
        if "model" not in model_factors.columns:
            raise DataError("new-model factors need a 'model' column", file=ffile)
        names = [str(n) for n in model_factors["model"]]
        clash = [n for n in names if n in self._model_index]
        if clash:
            raise DataError(f"model(s) {clash[:5]} are already in the training data; "
                            "use predict() for them")
        if len(set(names)) != len(names):
            raise DataError("new-model factors list a model more than once")
        lines = model_factors["_line"].to_numpy() if "_line" in model_factors.columns else None
        frame = model_factors.drop(columns=["_line"], errors="ignore").set_index("model")
        kinds = self.factors_.kinds_["model"]
        for factor, kind in kinds.items():
            if factor in frame.columns and kind == "numeric":
                frame[factor] = parse_numbers(frame[factor], file=ffile, column=factor, lines=lines,
                                              what="a number (numeric factor)")
        unknown_cols = [c for c in frame.columns if c not in kinds]
        if unknown_cols:
            warnings.warn(f"{ffile + ': ' if ffile else ''}column(s) {unknown_cols} are not factors "
                          f"of the fitted model and are ignored; its factors: {list(kinds)}",
                          DataWarning, stacklevel=2)
        pos = {n: i for i, n in enumerate(names)}
        known = known_scores if known_scores is not None else pd.DataFrame(
            columns=["model", "task", "score"])
        missing = [c for c in ("model", "task", "score") if c not in known.columns]
        if missing:
            raise DataError(f"known scores need columns model, task, score; missing {missing}",
                            file=sfile)
        known = known.assign(score=parse_numbers(
            known["score"], file=sfile, column="score", allow_missing=False,
            lines=known["_line"].to_numpy() if "_line" in known.columns else None))
        if known.duplicated(["model", "task"]).any():
            raise DataError("known scores list a (model, task) cell more than once", file=sfile)
        for name in pd.unique(known["model"]):
            if name not in pos:
                raise _unknown(str(name), names, "new model (not in the factor table)")
        for name in pd.unique(known["task"]):
            if name not in self._task_index:
                raise _unknown(str(name), list(self._task_index), "task")
        y_known = self.normalizer_.transform(known["task"], known["score"].to_numpy())
        src = torch.tensor([pos[m] for m in known["model"]], dtype=torch.long)
        dst = torch.tensor([self._task_index[t] for t in known["task"]], dtype=torch.long)
        x = torch.from_numpy(self.factors_.numeric_features("model", frame))
        fe = torch.from_numpy(self.factors_.factor_edges("model", frame))
        graph = add_nodes(self.inputs_.graph, "model", x, fe, torch.stack([src, dst]),
                          torch.tensor(y_known, dtype=torch.float32))
        head_model = torch.cat([self.inputs_.head_model, self._head_inputs("model", frame)])
        inputs = GraphInputs(graph, head_model, self.inputs_.head_task)
        n_old, n_tasks = len(self.data_.models), len(self.data_.tasks)
        mm = torch.arange(len(names)).repeat_interleave(n_tasks) + n_old
        tt = torch.arange(n_tasks).repeat(len(names))
        # A known cell is predicted with its own edge (and its fold) left out.
        n_train = len(self.data_.scores)
        edge_of = {(int(s) + n_old, int(d)): n_train + i for i, (s, d) in enumerate(zip(src, dst))}
        e = torch.tensor([edge_of.get((int(a), int(b)), -1) for a, b in zip(mm, tt)])
        pred = self._fold_predict(inputs, torch.stack([mm, tt]), e,
                                  graph[SCORES].num_edges).numpy().astype(np.float64)
        models = [names[i] for i in (mm - n_old).tolist()]
        tasks = [self.data_.tasks[i] for i in tt.tolist()]
        obs = pd.Series(known["score"].astype(float).to_numpy(),
                        index=pd.MultiIndex.from_frame(known[["model", "task"]]))
        obs = obs.reindex(pd.MultiIndex.from_arrays([models, tasks])).to_numpy(dtype=np.float64)
        return self._table(models, tasks, pred, obs)

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
        }
        with atomic_folder(path, overwrite=overwrite) as tmp:
            torch.save(self.network_.state_dict(), tmp / WEIGHTS_FILE)
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
            pd.DataFrame(self.log_).to_csv(tmp / LOG_FILE, index=False)
            write_canonical(self.data_, tmp / DATA_DIR)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "CPPGraph":
        """Load a model folder written by :meth:`save` (no pickle: ``weights_only=True``)."""
        folder = Path(path)
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
            est = cls(Config.from_dict(meta["config"], source=str(folder / META_FILE)))
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
