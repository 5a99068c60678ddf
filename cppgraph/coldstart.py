"""Cold start: models and tasks that were not in the training data.

A new model (or task) joins the fitted graph as a node without an ID
vector: its factor edges attach it to the factor-value nodes, and its known
scores, if any, become score edges, so the trained network embeds it from
both, as it learned to in its cold-node episodes. Nothing is retrained. The
known scores then move its predictions further by the known-score stages, by
its ID vector fitted to them (fold-in), or both (configuration
``known_path``; :func:`known_path` resolves ``"auto"``). A
known cell is itself predicted with its fold of the known scores out of the
graph and of the known-score stage, so its own score never reaches its
prediction.

A new task also needs a raw scale: it starts from the median shift and scale
of the training tasks of the same unit and direction that share the most
categorical factor values with it (:func:`cppgraph.normalize.new_task_prior`);
its known scores then refit offset and scale together
(:func:`cppgraph.normalize.refit_task_scale`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from cppgraph.calibrate import half_widths, top_models
from cppgraph.data.dataset import (check_names, check_ranges, parse_numbers, parse_task_info,
                                   suggest)
from cppgraph.errors import CppGraphError, DataError, DataWarning
from cppgraph.graph import add_nodes, compile_graph
from cppgraph.nn.sparse import GraphTensors, GraphView
from cppgraph.normalize import Normalizer, new_task_prior, refit_task_scale, task_scale_covariance
from cppgraph.train import fold_in, predict_pairs


def unknown_name(name: str, known, what: str, **where) -> DataError:
    """The error for a name not among ``known`` (``where``: file, line, column)."""
    close = suggest(name, known)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    return DataError(f"unknown {what} {name!r}{hint}", **where)


def parse_entities(est, kind: str, frame: pd.DataFrame, file) -> tuple[list, pd.DataFrame]:
    """Names and parsed factor table of new models or tasks."""
    index = est.model_index_ if kind == "model" else est.task_index_
    if kind not in frame.columns:
        raise DataError(f"new-{kind} factors need a {kind!r} column", file=file)
    lines = frame["_line"].to_numpy() if "_line" in frame.columns else None
    check_names(frame[kind], kind, file=file, lines=lines)
    names = [str(n) for n in frame[kind]]
    for i, name in enumerate(names):
        if name in index:
            raise DataError(f"{kind} {name!r} is already in the training data; predict it as "
                            f"one (--{kind} {name} on the command line, predict() in Python)",
                            file=file, line=None if lines is None else int(lines[i]))
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise DataError(f"new-{kind} factors list {kind} {dup!r} more than once", file=file)
    table = frame.drop(columns=["_line"], errors="ignore").set_index(kind)
    kinds = est.factors_.kinds_[kind]
    for factor, factor_kind in kinds.items():
        if factor in table.columns and factor_kind == "numeric":
            table[factor] = parse_numbers(table[factor], file=file, column=factor, lines=lines,
                                          what="a number (numeric factor)")
    unknown_cols = [c for c in table.columns if c not in kinds]
    if unknown_cols:
        warnings.warn(f"{file + ': ' if file else ''}column(s) {unknown_cols} are not {kind} "
                      f"factors of the fitted model and are ignored; its factors: {list(kinds)}",
                      DataWarning, stacklevel=4)
    return names, table


def parse_known(est, kind: str, known, names: list, file, *, info: pd.DataFrame | None = None,
                out_of_range: str = "error") -> pd.DataFrame:
    """Known raw scores of new entities, checked against both name lists and, with
    ``info`` (task metadata of their tasks), against the tasks' declared ranges."""
    if known is None:
        known = pd.DataFrame(columns=["model", "task", "score"])
    missing = [c for c in ("model", "task", "score") if c not in known.columns]
    if missing:
        raise DataError(f"known scores need columns model, task, score; missing {missing}",
                        file=file)
    lines = known["_line"].to_numpy() if "_line" in known.columns else None
    for col in ("model", "task"):
        check_names(known[col], col, file=file, lines=lines)
    known = known.assign(score=parse_numbers(known["score"], file=file, column="score",
                                             allow_missing=False, lines=lines))
    dup = known.duplicated(["model", "task"])
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise DataError("known scores list this (model, task) cell more than once", file=file,
                        line=None if lines is None else int(lines[i]))
    other = "task" if kind == "model" else "model"
    other_index = est.task_index_ if kind == "model" else est.model_index_
    for col, valid, what in ((kind, names, f"new {kind} (not in the factor table)"),
                             (other, list(other_index), other)):
        bad = np.flatnonzero(~known[col].isin(valid).to_numpy())
        if len(bad):
            i = int(bad[0])
            raise unknown_name(str(known[col].iloc[i]), valid, what, file=file, column=col,
                               line=None if lines is None else int(lines[i]))
    if info is not None:
        known = check_ranges(known, info, out_of_range, file=file, what="known score")
    return known.drop(columns=["_line"], errors="ignore").reset_index(drop=True)


def new_task_normalizer(est, names: list, info: pd.DataFrame,
                        factors: pd.DataFrame) -> tuple[Normalizer, dict]:
    """The normalizer extended with prior parameters for new tasks, and the prior
    covariance of each new task's raw shift and scale where it has one.

    Under the per-task normalizations (``minmax``, ``zscore``) the parameters
    come from :func:`new_task_prior` and the covariances from
    :func:`task_scale_covariance`; ``logit`` takes the declared ranges and
    ``paper`` needs nothing (no covariances).
    """
    norm = est.normalizer_
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
    if est.config.task_prior == "factors":
        shared = dict(train_factors=_category_labels(est, est.data_.task_factors),
                      new_factors=_category_labels(est, factors.reindex(names)))
    new_info = info.reindex(names)
    shift, scale, sign = new_task_prior(norm, est.data_.task_info, new_info, **shared)
    cov = task_scale_covariance(norm, est.data_.task_info, new_info)
    return (norm.extended(names, shift, scale, sign),
            {t: c for t, c in zip(names, cov) if np.isfinite(c).all()})


def fit_new_task_scale(norm: Normalizer, known: pd.DataFrame, base: np.ndarray, cov: dict,
                       noise: float) -> Normalizer:
    """Fit new tasks' raw offset and scale to their known scores.

    ``raw = shift + sign * scale * y`` on the known cells, ``y`` being the
    prediction made without any known score. A task with a prior scale is
    refitted from it (:func:`cppgraph.normalize.refit_task_scale`, the prior
    covariance ``cov[task]`` and ``noise``); one without (no training task
    shares its unit) gets a least-squares fit from 2 or more scores (where
    the slope comes out negative, the scale that matches the spreads of
    scores and predictions), or keeps a NaN offset (no raw predictions).
    """
    shift, scale = norm.shift_.copy(), norm.scale_.copy()
    for task, cells in known.assign(y=base).groupby("task"):
        i = int(norm.positions([task])[0])
        raw, y = cells["score"].to_numpy(), norm.sign_[i] * cells["y"].to_numpy()
        if np.isnan(scale[i]):  # no scale from the training tasks: fit it, if 2+ scores allow
            if len(cells) < 2 or np.ptp(y) == 0:
                continue
            slope, _ = np.polyfit(y, raw, 1)
            if slope <= 0:  # known scores ordered against the prediction: match the spreads
                slope = np.std(raw) / np.std(y)
            if not slope > 0:
                continue
            scale[i], shift[i] = slope, raw.mean() - slope * y.mean()
        else:
            shift[i], scale[i] = refit_task_scale(shift[i], scale[i], raw, y, cov.get(task), noise)
    return norm.with_params(shift, scale)


def _category_labels(est, frame: pd.DataFrame) -> pd.DataFrame:
    """Factor-node labels of the categorical task factors in ``frame`` (None if unseen)."""
    kinds = est.factors_.kinds_["task"]
    return pd.DataFrame({f: est.factors_.node_labels("task", f, frame[f].tolist())
                         for f, kind in kinds.items() if kind == "categorical" and f in frame},
                        index=frame.index)


@dataclass
class NewEntities:
    """New models (``kind="model"``) or tasks attached to the fitted graph."""

    kind: str
    names: list
    known: pd.DataFrame
    norm: Normalizer
    scale_cov: dict
    graph: GraphTensors
    pairs: torch.Tensor          # [2, new x other] every (model, task) cell of the new entities
    cells: np.ndarray            # each known score's position in pairs
    known_edges: torch.Tensor    # the score edges of the known scores in graph


def attach(est, kind: str, names: list, table: pd.DataFrame, known: pd.DataFrame,
           norm: Normalizer, scale_cov: dict) -> NewEntities:
    """Add the new entities to the fitted graph, with their known scores as score edges."""
    data = est.data_
    n_old = len(data.models) if kind == "model" else len(data.tasks)
    n_other = len(data.tasks) if kind == "model" else len(data.models)
    other_index = est.task_index_ if kind == "model" else est.model_index_
    pos = {n: i for i, n in enumerate(names)}
    new_ids = known[kind].map(pos).to_numpy(dtype=np.int64)
    other_ids = known["task" if kind == "model" else "model"].map(other_index).to_numpy(dtype=np.int64)
    new_col = torch.arange(len(names)).repeat_interleave(n_other) + n_old
    other_col = torch.arange(n_other).repeat(len(names))
    pairs = torch.stack([new_col, other_col] if kind == "model" else [other_col, new_col])
    edges = torch.from_numpy(np.stack([new_ids, other_ids])).reshape(2, -1)
    hetero = add_nodes(est.hetero_, kind, torch.from_numpy(est.factors_.numeric_features(kind, table)),
                       torch.from_numpy(est.factors_.factor_edges(kind, table)), edges,
                       torch.zeros(len(known)))
    n_train = est.hetero_["model", "scores", "task"].num_edges
    return NewEntities(kind, names, known, norm, scale_cov, compile_graph(hetero), pairs,
                       new_ids * n_other + other_ids, torch.arange(n_train, n_train + len(known)))


def known_path(est, kind: str) -> str:
    """``"stages"``, ``"fold-in"`` or ``"both"``: how known scores move the predictions
    of new entities of ``kind`` (``"model"`` or ``"task"``) under ``est``'s
    ``known_path``; ``"auto"`` takes the calibration's choice (``"stages"`` without
    one)."""
    path = est.config.known_path
    if path == "auto":
        cal = est.calibration_
        path = (cal.known_path or {}).get(kind, "stages") if cal is not None else "stages"
    return path


def known_view(est, new: NewEntities, use: np.ndarray,
               norm: Normalizer) -> tuple[GraphTensors, GraphView, np.ndarray, np.ndarray]:
    """The graph with the ``use``-d known scores of ``new`` on their score edges (the
    others out), and the view that predicts from them: where fold-in runs
    (:func:`known_path`), the new entities' ID vectors fitted to those scores (with
    their edges out of the graph while fitting). Also the normalized ``use``-d scores
    and which of them are usable."""
    known, cells = new.known[use], new.cells[use]
    y = norm.transform(known["task"], known["score"].to_numpy(), models=known["model"].to_numpy())
    usable = np.isfinite(y)  # a new task of unknown raw scale cannot use its scores
    g = new.graph
    score = g.score.clone()
    mask = torch.ones(g.num_scores)
    mask[new.known_edges] = 0.0
    on = new.known_edges[torch.from_numpy(use)][torch.from_numpy(usable)]
    mask[on] = 1.0
    score[on] = torch.tensor(y[usable], dtype=torch.float32)
    g = g.with_scores(score)
    view = GraphView(edges=mask)
    cfg = est.config
    if known_path(est, new.kind) != "stages" and cfg.fold_in_steps and usable.any():
        fitting = mask.clone()
        fitting[on] = 0.0
        ids = fold_in(est.network_, g, GraphView(edges=fitting), new.kind, len(new.names),
                      new.pairs[:, torch.from_numpy(cells[usable])],
                      torch.tensor(y[usable], dtype=torch.float32),
                      steps=cfg.fold_in_steps, penalty=cfg.fold_in_penalty)
        view = view.with_new_ids(new.kind, ids)
    return g, view, y, usable


def predict_pass(est, new: NewEntities, use: np.ndarray, *,
                 prior: np.ndarray | None = None) -> tuple[np.ndarray, Normalizer]:
    """Normalized predictions of every cell of ``new.pairs`` from the ``use``-d known
    scores, and the normalizer that maps them to raw units (for new tasks, fitted to
    those scores against ``prior``, the predictions made without any)."""
    known, cells = new.known[use], new.cells[use]
    norm = new.norm
    if prior is not None and new.kind == "task" and norm is not est.normalizer_:
        norm = fit_new_task_scale(norm, known, prior[cells], new.scale_cov,
                                  est.config.task_scale_noise)
    g, view, y, usable = known_view(est, new, use, norm)
    pred = predict_pairs(est.network_, g, new.pairs, view).numpy()
    pred = pred.astype(np.float64)
    if prior is not None and usable.any() and known_path(est, new.kind) != "fold-in":
        n_other = len(pred) // len(new.names)
        values = np.full(len(pred), np.nan)
        values[cells[usable]] = y[usable]
        values = values.reshape(-1, n_other)
        pred = est.known_correction_.apply(pred.reshape(-1, n_other), values,
                                           prior.reshape(-1, n_other)).reshape(-1)
        pred = est.known_stage_.apply(pred.reshape(-1, n_other), values, est.training_scores_,
                                      transpose=new.kind == "task").reshape(-1)
    return pred, norm


def _only_new_tasks(task_info, names: list, file) -> None:
    """A task metadata row for a task that is not among the new ones is an error."""
    if task_info is None or "task" not in task_info.columns:
        return
    wanted = set(names)
    for i, task in enumerate(task_info["task"]):
        if isinstance(task, str) and task.strip() and task not in wanted:
            line = int(task_info["_line"].iloc[i]) if "_line" in task_info.columns else None
            close = suggest(task, names)
            hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
            raise DataError(f"task {task!r} is not one of the new tasks{hint}; the task "
                            f"metadata describes the new tasks only: {names[:5]}", file=file,
                            line=line, column="task")


def _warn_extrapolation(names: list, known: pd.DataFrame, info: pd.DataFrame,
                        tasks: np.ndarray, pred: np.ndarray, norm) -> None:
    """Warn when a new task without a declared range gets raw predictions (``pred``, of
    the rows of ``tasks``) far outside its known scores: more than their span beyond
    them (its raw scale then comes from a line through few points)."""
    for name in names:
        row = info.loc[name]
        have = known.loc[known["task"] == name, "score"].astype(float)
        if len(have) < 2 or not (np.isnan(row["min_score"]) or np.isnan(row["max_score"])):
            continue
        lo, hi = float(have.min()), float(have.max())
        span = max(hi - lo, 1e-12)
        at = np.flatnonzero(tasks == name)
        raw = norm.inverse_transform(np.full(len(at), name, dtype=object), pred[at])
        raw = raw[np.isfinite(raw)]
        if len(raw) and (raw.max() > hi + span or raw.min() < lo - span):
            warnings.warn(f"new task {name!r} has no declared range: its raw predictions "
                          f"({raw.min():.4g} to {raw.max():.4g}) extend a line through its "
                          f"{len(have)} known scores ({lo:.4g} to {hi:.4g}) well beyond them; "
                          "min_score and max_score in the task metadata (--task-info) bound "
                          "them", DataWarning, stacklevel=4)


def predict_new(est, kind: str, factors: pd.DataFrame, known, *, task_info=None,
                out_of_range: str = "error", files: dict, interval: float | None = None,
                predict_known: bool = True) -> pd.DataFrame:
    """The prediction table of every cell of new models or tasks (see the module docstring).

    ``predict_known=False`` leaves the known cells' predictions NaN and skips the
    passes that predict them without their own scores (for callers that score only
    the unknown cells)."""
    if kind == "model" and est.normalizer_.by == "model":
        raise CppGraphError("the paper normalization is per model and cannot scale the scores "
                            "of a new model; fit with another normalization for cold start")
    names, table = parse_entities(est, kind, factors, files.get(f"{kind}_factors"))
    scale_cov = {}
    if kind == "model":
        norm, info = est.normalizer_, est.data_.task_info
    else:
        _only_new_tasks(task_info, names, files.get("task_info"))
        new_info = parse_task_info(task_info, names, files.get("task_info"))
        norm, scale_cov = new_task_normalizer(est, names, new_info, table)
        info = pd.concat([est.data_.task_info, new_info.reindex(names)])
    known = parse_known(est, kind, known, names, files.get("known_scores"), info=info,
                        out_of_range=out_of_range)
    new = attach(est, kind, names, table, known, norm, scale_cov)
    prior, _ = predict_pass(est, new, np.zeros(len(known), dtype=bool))
    pred, norm = predict_pass(est, new, np.ones(len(known), dtype=bool), prior=prior)
    if norm is not est.normalizer_ and kind == "task":
        unscaled = [t for t, i in zip(names, norm.positions(names)) if np.isnan(norm.shift_[i])]
        if unscaled:
            warnings.warn(f"the raw scale of new task(s) {unscaled[:5]} is unknown (no "
                          "training task of the same unit and direction, and fewer than 2 "
                          "known scores): only normalized predictions are given; a unit "
                          "shared with training tasks in the task metadata (--task-info) "
                          "gives raw ones", DataWarning, stacklevel=3)
    no_raw = np.zeros(len(pred), dtype=bool)
    if len(known) and not predict_known:
        pred[new.cells] = np.nan
    elif len(known):
        # A known cell is predicted by the same steps run without its fold of known scores.
        k = min(est.fit_config_.predict_folds, len(known))
        gen = torch.Generator().manual_seed(est.config.random_state + 2)
        fold = (torch.randperm(len(known), generator=gen) % k).numpy()
        for f in range(k):
            pred_f, norm_f = predict_pass(est, new, fold != f, prior=prior)
            held = fold == f
            at = new.cells[held]
            raw = norm_f.inverse_transform(known["task"][held], pred_f[at],
                                           models=known["model"][held])
            again = norm.transform(known["task"][held], raw, models=known["model"][held])
            pred[at] = np.where(np.isfinite(again), again, pred_f[at])
            no_raw[at] = ~np.isfinite(raw)
        if no_raw.any():
            warnings.warn(f"{int(no_raw.sum())} known cell(s) get no raw prediction: without "
                          "their own score their new task has fewer than 2 known scores and "
                          "no raw scale from training tasks of the same unit and direction",
                          DataWarning, stacklevel=3)
    data = est.data_
    all_models = np.asarray(data.models + (names if kind == "model" else []), dtype=object)
    all_tasks = np.asarray(data.tasks + (names if kind == "task" else []), dtype=object)
    row_models = all_models[new.pairs[0].numpy()].tolist()
    row_tasks = all_tasks[new.pairs[1].numpy()].tolist()
    if kind == "task":
        _warn_extrapolation(names, known, info, np.asarray(row_tasks, dtype=object), pred, norm)
    obs = pd.Series(known["score"].astype(float).to_numpy(),
                    index=pd.MultiIndex.from_frame(known[["model", "task"]]))
    obs = obs.reindex(pd.MultiIndex.from_arrays([row_models, row_tasks])).to_numpy(dtype=np.float64)
    half = None
    if interval is not None:  # each new entity by its number of known scores
        counts = known[kind].value_counts().reindex(names, fill_value=0).to_numpy()
        own = (new.pairs[0] - len(data.models) if kind == "model" else new.pairs[1] - len(data.tasks))
        top = None
        if kind == "model":  # models above the training ones, by their known scores
            top = top_models(est, names, known, pd.DataFrame(
                {"model": row_models, "task": row_tasks, "value": pred}))[own.numpy()]
        half = half_widths(est.calibration_, interval, kind,
                           new.pairs[1].numpy() if kind == "model" else None,
                           counts[own.numpy()], top)
    return est.table(row_models, row_tasks, pred, obs, norm=norm, info=info, no_raw=no_raw,
                     half_width=half)


def new_model_graph(est, model_factors: pd.DataFrame, known_scores,
                    files: dict) -> tuple[GraphTensors, GraphView]:
    """The fitted graph with new models attached, and the view that embeds them as
    :func:`predict_new` predicts them (for their embeddings)."""
    names, table = parse_entities(est, "model", model_factors, files.get("model_factors"))
    known = parse_known(est, "model", known_scores, names, files.get("known_scores"),
                        info=est.data_.task_info)
    if len(known) and est.normalizer_.by == "model":
        raise CppGraphError("the paper normalization is per model and cannot scale the scores "
                            "of a new model; give its factors only")
    new = attach(est, "model", names, table, known, est.normalizer_, {})
    g, view, _, _ = known_view(est, new, np.ones(len(known), dtype=bool), est.normalizer_)
    return g, view
