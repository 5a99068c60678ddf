"""Factor importance: which design factors drive a fitted model's predictions.

Two measures, so that they can be compared:

SHAP values (:func:`shap_values`, :func:`global_importance`)
    Shapley values, computed with the ``shap`` library, of the design factors
    for the network's predictions (encoder and factor-aware head; the
    residual corrections are left out). A factor is *removed* by zeroing it,
    as in the CPP paper: its standardized numeric input becomes the training
    mean, its missing flag 0, and its factor-value nodes lose their edges and
    head inputs, for every model (or task) at once. The SHAP value of a
    factor for one (model, task) prediction is its average marginal effect
    over orders of removal; the values of a prediction add up to its
    prediction minus the all-removed prediction (``base``). A prediction of
    an observed cell is made with the cell's fold out of the graph, as in
    :meth:`~cppgraph.estimator.CPPGraph.predict`. The global importance of a
    factor is its mean absolute SHAP value over the predictions.

Ablation importance (:func:`ablation_importance`)
    The engine is refitted without one factor at a time on a split of the
    training data (random cells, or whole models held out); the importance
    is the rise of the normalized MAE on the held-out cells over the refit
    with every factor (positive: the factor helps).

Examples
--------
>>> from cppgraph import explain  # doctest: +SKIP
>>> sv = explain.shap_values(est)  # doctest: +SKIP
>>> explain.global_importance(sv).head()  # doctest: +SKIP
>>> explain.ablation_importance(est, seeds=3)  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from cppgraph.data import CollabData
from cppgraph.errors import CppGraphError
from cppgraph.coldstart import unknown_name as _unknown
from cppgraph.estimator import CPPGraph
from cppgraph.graph import ENTITIES
from cppgraph.nn.sparse import GraphTensors, Relation

#: Factor counts up to this get exact Shapley values (2**F coalitions); more get
#: the permutation estimate.
EXACT_MAX_FACTORS = 10
#: From this many explained cells on, exact values come from shap's ``Exact`` explainer:
#: ``KernelExplainer`` (used below it) solves one regression per cell, about 0.3 ms each
#: (66 of the 69 s over the 200,000 cells of a 2,000 x 100 model), while ``Exact``
#: handles every cell at once after compiling its numba code, about 6 s per process;
#: both give the same values (to 1e-15). The two cost the same near 25,000 cells.
EXACT_EXPLAINER_CELLS = 25_000


@dataclass(frozen=True)
class Factor:
    """Where one design factor enters the network."""

    entity: str          # "model" or "task"
    name: str
    x_cols: np.ndarray   # columns of the graph's node features (value, missing flag)
    nodes: np.ndarray    # its factor-value nodes

    @property
    def label(self) -> str:
        return f"{self.entity}:{self.name}"


def factors(est: CPPGraph) -> list[Factor]:
    """Every design factor of the fitted model that has at least one input."""
    est._check_fitted()
    enc = est.factors_
    node_id = {n: i for i, n in enumerate(enc.nodes_)}
    out = []
    for entity in ENTITIES:
        numeric = enc.feature_names(entity)
        columns = enc.factor_columns(entity)
        for name in enc.kinds_[entity]:
            x_cols = np.array([i for i, c in enumerate(numeric) if c in (name, f"{name}_missing")],
                              dtype=np.int64)
            nodes = np.array([node_id[c] for c in columns if c.split("=", 1)[0] == name],
                             dtype=np.int64)
            if len(x_cols) or len(nodes):
                out.append(Factor(entity, name, x_cols, nodes))
    return out


def _without(graph: GraphTensors, removed: list[Factor]) -> GraphTensors:
    """``graph`` with the ``removed`` factors zeroed for every model and task: numeric
    inputs at the training mean (0), and no edges to their factor-value nodes (which
    also removes them from the head's factor inputs)."""
    out = copy.copy(graph)
    out.relations = dict(graph.relations)
    for entity in ENTITIES:
        mine = [f for f in removed if f.entity == entity]
        if not mine:
            continue
        x = getattr(graph, f"{entity}_x").clone()
        for f in mine:
            x[:, torch.from_numpy(f.x_cols)] = 0.0
        setattr(out, f"{entity}_x", x)
        nodes = torch.from_numpy(np.concatenate([f.nodes for f in mine]))
        for name, side in ((f"factor->{entity}", "src"), (f"{entity}->factor", "dst")):
            r = graph.relations[name]
            keep = ~torch.isin(getattr(r, side), nodes)
            out.relations[name] = Relation(r.src[keep], r.dst[keep], r.num_src, r.num_dst)
    return out


def _pairs(est: CPPGraph, model: str | None, task: str | None) -> pd.DataFrame:
    """The (model, task) pairs to explain: one model's row, one task's column, one cell or all."""
    data = est.data_
    for name, known, what in ((model, data.models, "model"), (task, data.tasks, "task")):
        if name is not None and name not in set(known):
            raise _unknown(name, known, what)
    models = data.models if model is None else [model]
    tasks = data.tasks if task is None else [task]
    return pd.MultiIndex.from_product([models, tasks], names=["model", "task"]).to_frame(index=False)


@dataclass
class ShapResult:
    """SHAP values of the design factors for a set of predictions.

    Attributes
    ----------
    values : DataFrame
        One row per (model, task) pair (MultiIndex), one column per factor
        label (``model:params_b``, ``task:ability``, ...); normalized-score units.
    base : Series
        Each pair's prediction with every factor removed.
    prediction : Series
        Each pair's network prediction (normalized); ``base + values.sum(axis=1)``.
    factors : list of Factor
    method : str
        ``"exact"`` or ``"permutation"``.
    """

    values: pd.DataFrame
    base: pd.Series
    prediction: pd.Series
    factors: list
    method: str

    def one(self, model: str, task: str) -> pd.DataFrame:
        """One prediction's factors: ``factor, entity, value, shap``, largest ``|shap|`` first."""
        row = self.values.loc[(model, task)]
        return (pd.DataFrame({"factor": [f.name for f in self.factors],
                              "entity": [f.entity for f in self.factors],
                              "shap": row.to_numpy()})
                .assign(order=lambda d: -d["shap"].abs()).sort_values("order", kind="stable")
                .drop(columns="order").reset_index(drop=True))


class _RemoveMasker:
    """A shap masker that removes the masked-out factors: a coalition row is 1 where a
    factor is kept and 0 where it is removed (a background of zeros). A plain callable:
    shap's tabular maskers compile numba code on first use, which took longer than the
    network's own passes for one cell."""

    def __init__(self, n: int):
        self.shape = (1, n)

    def __call__(self, mask: np.ndarray, x: np.ndarray) -> np.ndarray:
        return (x * mask)[None, :]


def shap_values(est: CPPGraph, *, model: str | None = None, task: str | None = None,
                max_evals: int | None = None, progress: bool = False) -> ShapResult:
    """SHAP values of every design factor for the network's predictions.

    Parameters
    ----------
    est : CPPGraph
        A fitted estimator.
    model, task : str, optional
        Explain only this model's row, this task's column, or this one cell;
        default every cell of the training matrix.
    max_evals : int, optional
        Coalitions evaluated by the permutation estimate (used beyond
        :data:`EXACT_MAX_FACTORS` factors); default ``20 * (2 * F + 1)``.
        Seeded with ``est.config.random_state``.
    progress : bool
        Show ``shap``'s progress bar.
    """
    import shap

    est._check_fitted()
    pairs = _pairs(est, model, task)
    facs = factors(est)
    if not facs:
        raise CppGraphError("the model has no design factors to explain")
    rows, cols, edge = est._cells(pairs)

    whole = []  # the prediction with every factor: the explainers ask for it more than once

    def one(keep: np.ndarray) -> np.ndarray:
        if keep.all() and whole:
            return whole[0]
        out = est._network_predict(rows, cols, edge, graph=_without(est.graph_, [
            f for f, k in zip(facs, keep) if not k]))
        if keep.all():
            whole.append(out)
        return out

    def predict(coalitions: np.ndarray) -> np.ndarray:
        return np.stack([one(row) for row in coalitions > 0.5])

    n = len(facs)
    names = [f.label for f in facs]
    if n <= EXACT_MAX_FACTORS and len(pairs) < EXACT_EXPLAINER_CELLS:
        # Kernel SHAP over all 2**F coalitions solves for the exact Shapley values, without
        # the numba compilation of shap's Exact explainer (:data:`EXACT_EXPLAINER_CELLS`)
        explainer = shap.KernelExplainer(predict, np.zeros((1, n)), feature_names=names)
        values = explainer.shap_values(np.ones((1, n)), nsamples=2 ** n, l1_reg=False,
                                       silent=not progress)
        values, base, method = np.asarray(values)[0].T, explainer.expected_value, "exact"
    else:
        if n <= EXACT_MAX_FACTORS:
            explainer, method, evals = shap.explainers.Exact(
                predict, _RemoveMasker(n), feature_names=names), "exact", 2 ** n
        else:
            explainer, method, evals = shap.explainers.Permutation(
                predict, _RemoveMasker(n), feature_names=names, seed=est.config.random_state), \
                "permutation", max_evals or 20 * (2 * n + 1)
        out = explainer(np.ones((1, n)), silent=not progress, max_evals=evals)
        values, base = np.asarray(out.values[0]).reshape(n, -1).T, out.base_values[0]
    key = pd.MultiIndex.from_frame(pairs)  # values: [pairs, factors]
    base = pd.Series(np.asarray(base, dtype=np.float64).reshape(-1), index=key, name="base")
    prediction = pd.Series(one(np.ones(n, dtype=bool)), index=key, name="prediction")
    return ShapResult(pd.DataFrame(values, index=key, columns=names), base, prediction, facs,
                      method)


def global_importance(result: ShapResult) -> pd.DataFrame:
    """Mean absolute SHAP value per factor, largest first.

    Columns ``factor, entity, mean_abs_shap, share`` (of the sum over
    factors) and ``rank`` (1 = most important).
    """
    mean_abs = result.values.abs().mean(axis=0).to_numpy()
    frame = pd.DataFrame({"factor": [f.name for f in result.factors],
                          "entity": [f.entity for f in result.factors],
                          "mean_abs_shap": mean_abs,
                          "share": mean_abs / mean_abs.sum() if mean_abs.sum() > 0 else np.nan})
    frame = frame.sort_values("mean_abs_shap", ascending=False, kind="stable").reset_index(drop=True)
    frame["rank"] = np.arange(1, len(frame) + 1)
    return frame


# ------------------------------------------------------------------ ablation
def without_factor(data: CollabData, entity: str, name: str) -> CollabData:
    """``data`` with one design factor dropped (its column and its kind)."""
    frame = data.model_factors if entity == "model" else data.task_factors
    kinds = {e: {f: k for f, k in data.factor_kinds.get(e, {}).items()
                 if not (e == entity and f == name)} for e in ENTITIES}
    change = {f"{entity}_factors": frame.drop(columns=[name], errors="ignore"),
              "factor_kinds": kinds}
    return dataclasses.replace(data, **change)


def ablation_importance(est: CPPGraph, *, seeds: int = 3, protocol: str = "random",
                        test_size: float = 0.1, only: list[str] | None = None,
                        progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Refit without each factor; the rise of the held-out normalized MAE.

    For each of ``seeds`` splits of the training data (seed
    ``random_state + i``), the engine with ``est``'s configuration is fitted
    on the rest once with every factor and once without each factor (without
    the interval calibration, which the MAE does not use).

    Parameters
    ----------
    protocol : {"random", "cold-model"}
        Hold out ``test_size`` of the cells at random, or of the models
        entirely (their predictions then rest on factors alone);
        :func:`cppgraph.evaluate.splits.make_split`.
    only : list of str, optional
        Factor names or labels (``model:family``) to ablate; default all.

    Returns
    -------
    DataFrame
        ``factor, entity, mae_without, delta_mae, delta_std`` (sample std
        over seeds, NaN with one seed) and ``rank`` (1 = largest rise),
        largest first; ``mae_all`` is in ``attrs``.
    """
    from cppgraph.evaluate.methods import CPPGraphMethod
    from cppgraph.evaluate.runner import score_split, unit_normalizer
    from cppgraph.evaluate.splits import make_split

    est._check_fitted()
    if seeds < 1:
        raise CppGraphError(f"seeds must be at least 1; got {seeds}")
    if protocol not in ("random", "cold-model"):
        raise CppGraphError(f"protocol must be 'random' or 'cold-model'; got {protocol!r}")
    facs = _selected(factors(est), only)
    data, cfg = est.data_, est.config
    unit = unit_normalizer(data)
    method = CPPGraphMethod("ablation", config=cfg.replace(intervals=False))
    full, rows = [], []
    for i in range(seeds):
        seed = cfg.random_state + i
        split = make_split(data, protocol, seed, test_size=test_size)
        base = score_split(split, method, unit=unit, seed=seed)[0]["mae_norm"]
        full.append(base)
        for f in facs:
            new = f"new_{f.entity}s"  # held-out entities lose the factor too
            cut = dataclasses.replace(split, train=without_factor(split.train, f.entity, f.name),
                                      **{new: getattr(split, new).drop(columns=[f.name],
                                                                       errors="ignore")})
            mae = score_split(cut, method, unit=unit, seed=seed)[0]["mae_norm"]
            rows.append({"factor": f.name, "entity": f.entity, "seed": seed,
                         "mae_without": mae, "delta": mae - base})
            if progress is not None:
                progress(f"split {i + 1}/{seeds}: without {f.label:<28} MAE {mae:.4f} "
                         f"(all factors {base:.4f})")
    long = pd.DataFrame(rows)
    out = (long.groupby(["factor", "entity"], sort=False)
           .agg(mae_without=("mae_without", "mean"), delta_mae=("delta", "mean"),
                delta_std=("delta", "std"))  # over seeds; NaN for one seed
           .reset_index().sort_values("delta_mae", ascending=False, kind="stable")
           .reset_index(drop=True))
    out["rank"] = np.arange(1, len(out) + 1)
    out.attrs["mae_all"] = float(np.mean(full))
    return out


def _selected(facs: list[Factor], only: list[str] | None) -> list[Factor]:
    if only is None:
        return facs
    by_label = {f.label: f for f in facs}
    chosen = []
    for name in only:
        hits = [f for f in facs if name in (f.name, f.label)]
        if not hits:
            raise _unknown(name, list(by_label), "factor")
        chosen += [f for f in hits if f not in chosen]
    return chosen


# ---------------------------------------------------------------------- plot
def check_plot_path(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Fail early unless :func:`importance_plot` can write ``path`` (a new ``.png`` file)."""
    from cppgraph.plots import check_png_path

    return check_png_path(path, overwrite=overwrite, what="the importance plot")


#: Importance columns the plot knows, with their axis labels.
MEASURES = {"mean_abs_shap": "mean |SHAP| (normalized score)",
            "delta_mae": "MAE rise when refitted without it",
            "shap": "SHAP value (normalized score)"}


def importance_plot(table: pd.DataFrame, path: str | os.PathLike, *, title: str = "",
                    overwrite: bool = False, top: int = 20) -> Path:
    """Horizontal bar chart of factor importance (PNG, written atomically).

    ``table`` has ``factor`` and ``entity`` and one or more of the
    :data:`MEASURES` columns (as from :func:`importance_table` or
    :meth:`ShapResult.one`); each gets its own panel, factors in table order.
    """
    from cppgraph.plots import figure, save_figure
    path = check_plot_path(path, overwrite=overwrite)
    measures = [(c, lab) for c, lab in MEASURES.items()
                if c in table.columns and table[c].notna().any()]
    if not measures:
        raise CppGraphError("nothing to plot: the table has no importance column")
    shown = table.head(top).iloc[::-1]
    labels = [f"{f} ({e})" for f, e in zip(shown["factor"], shown["entity"])]
    fig, axes = figure(1, len(measures), figsize=(4.2 * len(measures) + 1.5,
                                                  0.32 * len(shown) + 1.2), sharey=True)
    for ax, (col, lab) in zip(axes[0], measures):
        vals = shown[col].to_numpy(dtype=float)
        err = shown["delta_std"].to_numpy(dtype=float) if col == "delta_mae" and \
            "delta_std" in shown and shown["delta_std"].notna().all() else None
        ax.barh(labels, vals, xerr=err, color=["#4477aa" if v >= 0 else "#cc6677" for v in vals])
        ax.axvline(0, color="0.3", lw=0.8)
        ax.set_xlabel(lab, fontsize=8)
        ax.tick_params(labelsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    return path


def importance_table(shap_table: pd.DataFrame | None,
                     ablation: pd.DataFrame | None = None) -> pd.DataFrame:
    """Both measures side by side, one row per factor, in SHAP order (else ablation order)."""
    if shap_table is None and ablation is None:
        raise CppGraphError("no importance to tabulate")
    if shap_table is None:
        return ablation.drop(columns="rank").assign(ablation_rank=ablation["rank"])
    out = shap_table.rename(columns={"rank": "shap_rank"})
    if ablation is not None:
        out = out.merge(ablation.rename(columns={"rank": "ablation_rank"}),
                        on=["factor", "entity"], how="left")
    return out
