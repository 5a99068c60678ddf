"""The heterogeneous graph of models, tasks and design-factor values.

Node types
    ``model``, ``task`` and ``factor``. A factor node is one factor value:
    ``family=LLama-2``, ``finetuned=yes``, ``ability=reasoning``,
    ``few_shot=5``; a numeric factor is binned on a log scale with 1-2-5 bin
    edges (``params_b=[5,10)``). A missing value gets no node and no edge.
Relations
    ``(model, scores, task)`` with the normalized score as ``edge_weight``;
    ``(model, has_factor, factor)``; ``(task, has_factor, factor)``; and the
    reverse of each (``rev_scores``, ``rev_has_factor``, added by
    :class:`torch_geometric.transforms.ToUndirected`), so every node type
    receives messages.
Node features
    ``model.x`` / ``task.x``: each numeric factor standardized (on a log10
    scale when all its values are positive) with a missing-value indicator.

:class:`FactorEncoder` learns the factor vocabulary, the bins and the
standardization from training data and applies them to new models or tasks
(cold start); it saves to and loads from plain JSON.
"""

from __future__ import annotations

import copy
import math
import warnings

import networkx as nx
import numpy as np
import pandas as pd
import torch
from torch_geometric.data import HeteroData
from torch_geometric.transforms import ToUndirected
from torch_geometric.utils import to_networkx as pyg_to_networkx

from cppgraph.data.dataset import CollabData
from cppgraph.errors import DataError, DataWarning
from cppgraph.nn.sparse import GraphTensors

ENTITIES = ("model", "task")
SCORES = ("model", "scores", "task")
REV_SCORES = ("task", "rev_scores", "model")
MODEL_FACTOR = ("model", "has_factor", "factor")
TASK_FACTOR = ("task", "has_factor", "factor")


def _fmt(x: float) -> str:
    return f"{x:g}"


def log_bin_edges(lo: float, hi: float) -> np.ndarray:
    """1-2-5 bin edges (..., 1, 2, 5, 10, 20, ...) covering ``[lo, hi]``, ``0 < lo <= hi``."""
    k0, k1 = math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1
    edges = np.array(sorted(m * 10.0 ** k for k in range(k0, k1 + 1) for m in (1, 2, 5)))
    first = np.searchsorted(edges, lo, side="right") - 1
    last = np.searchsorted(edges, hi, side="right")
    return edges[first:last + 1]


class FactorEncoder:
    """Factor vocabulary, numeric bins and feature standardization.

    Fitted on a :class:`CollabData`; then :meth:`factor_edges` and
    :meth:`numeric_features` turn any factor table with the same columns
    (training entities or new ones) into graph edges and node features.
    """

    def fit(self, data: CollabData) -> "FactorEncoder":
        self.kinds_ = {e: dict(data.factor_kinds.get(e, {})) for e in ENTITIES}
        self.categories_ = {}  # "entity:factor" -> sorted list of values
        self.bins_ = {}        # (entity, factor) -> 1-2-5 bin edges of a positive numeric factor
        self.stats_ = {}       # (entity, factor) -> (log scale?, mean, std)
        frames = {"model": data.model_factors, "task": data.task_factors}
        nodes = []
        for entity in ENTITIES:
            frame = frames[entity]
            for factor, kind in self.kinds_[entity].items():
                values = frame[factor].dropna()
                key = f"{entity}:{factor}"
                if kind == "categorical":
                    cats = sorted(map(str, values.unique()))
                    self.categories_[key] = cats
                    nodes += [f"{factor}={c}" for c in cats]
                    continue
                v = values.to_numpy(dtype=np.float64)
                if len(v) == 0:
                    continue
                positive = bool((v > 0).all())
                t = np.log10(v) if positive else v
                std = float(t.std()) if len(t) > 1 and t.std() > 0 else 1.0
                self.stats_[key] = (positive, float(t.mean()), std)
                if positive:
                    edges = log_bin_edges(float(v.min()), float(v.max()))
                    self.bins_[key] = edges.tolist()
                    nodes += [f"{factor}=[{_fmt(a)},{_fmt(b)})" for a, b in zip(edges[:-1], edges[1:])]
        self.nodes_ = nodes
        self._index = {n: i for i, n in enumerate(nodes)}
        return self

    @property
    def n_factors(self) -> int:
        return len(self.nodes_)

    def _check_fitted(self):
        if not hasattr(self, "nodes_"):
            raise RuntimeError("FactorEncoder is not fitted; call fit(data) first")

    def node_labels(self, entity: str, factor: str, values) -> list[str | None]:
        """The factor-node label of each value (``None`` for a missing or unseen value)."""
        self._check_fitted()
        key = f"{entity}:{factor}"
        out = []
        for value in values:
            if value is None or (isinstance(value, float) and math.isnan(value)):
                out.append(None)
            elif key in self.categories_:
                label = f"{factor}={value}"
                out.append(label if label in self._index else None)
            elif key in self.bins_:
                edges = self.bins_[key]
                x = float(value)
                if x <= 0:
                    out.append(None)
                    continue
                # Values beyond the training range go to the first / last bin.
                j = int(np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2))
                out.append(f"{factor}=[{_fmt(edges[j])},{_fmt(edges[j + 1])})")
            else:
                out.append(None)
        return out

    def factor_edges(self, entity: str, frame: pd.DataFrame) -> np.ndarray:
        """``[2, E]`` array of (row position in ``frame``, factor node) edges."""
        self._check_fitted()
        src, dst = [], []
        unseen = {}
        for factor in self.kinds_[entity]:
            if factor not in frame.columns:
                continue
            labels = self.node_labels(entity, factor, frame[factor].tolist())
            for i, (label, value) in enumerate(zip(labels, frame[factor].tolist())):
                if label is not None:
                    src.append(i)
                    dst.append(self._index[label])
                elif self.kinds_[entity][factor] == "categorical" and not pd.isna(value):
                    unseen.setdefault(factor, set()).add(str(value))
        if unseen:
            detail = "; ".join(f"{f}: {sorted(v)[:5]}" for f, v in unseen.items())
            warnings.warn(f"{entity} factor values never seen in training get no factor node: "
                          f"{detail}", DataWarning, stacklevel=2)
        return np.array([src, dst], dtype=np.int64).reshape(2, -1)

    def numeric_features(self, entity: str, frame: pd.DataFrame) -> np.ndarray:
        """Standardized numeric factors and missing indicators, ``[n, 2 * k]`` float32."""
        self._check_fitted()
        cols = []
        for factor, kind in self.kinds_[entity].items():
            key = f"{entity}:{factor}"
            if kind != "numeric" or key not in self.stats_:
                continue
            positive, mean, std = self.stats_[key]
            v = (frame[factor].to_numpy(dtype=np.float64) if factor in frame.columns
                 else np.full(len(frame), np.nan))
            missing = np.isnan(v) | ((v <= 0) if positive else False)
            t = np.log10(np.where(missing, 1.0, v)) if positive else v
            z = np.where(missing, 0.0, (t - mean) / std)
            cols += [z, missing.astype(np.float64)]
        if not cols:
            return np.zeros((len(frame), 0), dtype=np.float32)
        return np.stack(cols, axis=1).astype(np.float32)

    def factor_matrix(self, entity: str, frame: pd.DataFrame) -> np.ndarray:
        """Multi-hot ``[n, k]`` float32 matrix of the entity's factor-value nodes.

        Columns are the factor nodes of ``entity``'s factors, in vocabulary
        order (see :meth:`factor_columns`).
        """
        cols = self.factor_columns(entity)
        pos = {node: j for j, node in enumerate(cols)}
        with warnings.catch_warnings():  # factor_edges() itself tells about unseen values
            warnings.simplefilter("ignore", DataWarning)
            edges = self.factor_edges(entity, frame)
        out = np.zeros((len(frame), len(cols)), dtype=np.float32)
        out[edges[0], [pos[self.nodes_[k]] for k in edges[1]]] = 1.0
        return out

    def factor_columns(self, entity: str) -> list[str]:
        """Factor-node labels that belong to ``entity``'s factors, in vocabulary order."""
        self._check_fitted()
        names = {f for f in self.kinds_[entity]}
        return [n for n in self.nodes_ if n.split("=", 1)[0] in names]

    def feature_names(self, entity: str) -> list[str]:
        """Column names of :meth:`numeric_features`."""
        self._check_fitted()
        names = []
        for factor, kind in self.kinds_[entity].items():
            if kind == "numeric" and f"{entity}:{factor}" in self.stats_:
                names += [factor, f"{factor}_missing"]
        return names

    def to_dict(self) -> dict:
        self._check_fitted()
        return {"kinds": self.kinds_, "categories": self.categories_, "bins": self.bins_,
                "stats": {k: list(v) for k, v in self.stats_.items()}, "nodes": self.nodes_}

    @classmethod
    def from_dict(cls, state: dict) -> "FactorEncoder":
        enc = cls()
        enc.kinds_ = {e: dict(state["kinds"].get(e, {})) for e in ENTITIES}
        enc.categories_ = {k: list(v) for k, v in state["categories"].items()}
        enc.bins_ = {k: list(v) for k, v in state["bins"].items()}
        enc.stats_ = {k: (bool(v[0]), float(v[1]), float(v[2])) for k, v in state["stats"].items()}
        enc.nodes_ = list(state["nodes"])
        enc._index = {n: i for i, n in enumerate(enc.nodes_)}
        return enc

    def __repr__(self) -> str:
        if not hasattr(self, "nodes_"):
            return "FactorEncoder()"
        return f"FactorEncoder({self.n_factors} factor nodes)"


def build_graph(data: CollabData, encoder: FactorEncoder, *, score_edges: pd.DataFrame | None = None,
                normalized: np.ndarray | None = None) -> HeteroData:
    """Build the heterogeneous graph of ``data``.

    Parameters
    ----------
    data : CollabData
        Gives the models, tasks and their factors (node order = data order).
    encoder : FactorEncoder
        Fitted factor vocabulary.
    score_edges : DataFrame, optional
        The (model, task) cells to put into the graph as ``scores`` edges;
        default all of ``data.scores``. Pass a subset to keep cells out of
        message passing (held-out or supervised cells).
    normalized : array, optional
        The normalized score of each score edge (its ``edge_weight``); if not
        given, the edges' ``normalized`` column is used.

    Returns
    -------
    torch_geometric.data.HeteroData
    """
    models = {m: i for i, m in enumerate(data.models)}
    tasks = {t: i for i, t in enumerate(data.tasks)}
    edges = data.scores if score_edges is None else score_edges
    if normalized is None:
        if "normalized" not in edges.columns:
            raise ValueError("pass normalized= or a 'normalized' column in score_edges")
        normalized = edges["normalized"].to_numpy()
    normalized = np.asarray(normalized, dtype=np.float32)
    if len(normalized) != len(edges):
        raise ValueError(f"normalized has {len(normalized)} values for {len(edges)} edges")
    try:
        src = edges["model"].map(models).to_numpy(dtype=np.int64)
        dst = edges["task"].map(tasks).to_numpy(dtype=np.int64)
    except (TypeError, ValueError) as err:  # NaN from an unknown name
        raise DataError("score edges name models or tasks that are not in the data") from err

    g = HeteroData()
    g["model"].num_nodes = len(models)
    g["task"].num_nodes = len(tasks)
    g["factor"].num_nodes = encoder.n_factors
    g["model"].x = torch.from_numpy(encoder.numeric_features("model", data.model_factors))
    g["task"].x = torch.from_numpy(encoder.numeric_features("task", data.task_factors))
    g[SCORES].edge_index = torch.from_numpy(np.stack([src, dst]))
    g[SCORES].edge_weight = torch.from_numpy(normalized)
    g[MODEL_FACTOR].edge_index = torch.from_numpy(encoder.factor_edges("model", data.model_factors))
    g[TASK_FACTOR].edge_index = torch.from_numpy(encoder.factor_edges("task", data.task_factors))
    return ToUndirected()(g)


def compile_graph(graph: HeteroData) -> GraphTensors:
    """The tensors the network computes on (:class:`~cppgraph.nn.sparse.GraphTensors`)."""
    scores = graph[SCORES]
    return GraphTensors.build(
        num_models=graph["model"].num_nodes, num_tasks=graph["task"].num_nodes,
        num_factors=graph["factor"].num_nodes, score_model=scores.edge_index[0],
        score_task=scores.edge_index[1], score=scores.edge_weight,
        model_factor=graph[MODEL_FACTOR].edge_index, task_factor=graph[TASK_FACTOR].edge_index,
        model_x=graph["model"].x, task_x=graph["task"].x)


def add_nodes(graph: HeteroData, kind: str, x: torch.Tensor, factor_edges: torch.Tensor,
              score_edges: torch.Tensor, score_weights: torch.Tensor) -> HeteroData:
    """A copy of ``graph`` with new ``kind`` nodes (``"model"`` or ``"task"``) appended.

    ``factor_edges`` is ``[2, E]`` (new-node position, factor node),
    ``score_edges`` is ``[2, S]`` (new-node position, node of the other kind)
    with normalized ``score_weights``. New nodes get indices
    ``graph[kind].num_nodes + position``.
    """
    out = copy.copy(graph)  # new stores, shared tensors
    n_old = graph[kind].num_nodes
    out[kind].x = torch.cat([graph[kind].x, x])
    out[kind].num_nodes = n_old + x.size(0)
    fe = factor_edges.clone()
    fe[0] += n_old
    rel = (kind, "has_factor", "factor")
    for et, extra in ((rel, fe), (("factor", "rev_has_factor", kind), fe.flip(0))):
        out[et].edge_index = torch.cat([graph[et].edge_index, extra], 1)
    se = score_edges.clone()
    se[0] += n_old
    if kind == "task":
        se = se.flip(0)
    ei = torch.cat([graph[SCORES].edge_index, se], 1)
    w = torch.cat([graph[SCORES].edge_weight, score_weights.to(graph[SCORES].edge_weight.dtype)])
    out[SCORES].edge_index, out[SCORES].edge_weight = ei, w
    out[REV_SCORES].edge_index, out[REV_SCORES].edge_weight = ei.flip(0), w
    return out


def to_networkx(graph: HeteroData, data: CollabData, encoder: FactorEncoder) -> nx.DiGraph:
    """A networkx view of ``graph`` with readable node names.

    Nodes are named ``model:<name>``, ``task:<name>``, ``factor:<label>`` and
    carry ``type`` and ``name``; ``scores`` edges carry ``weight`` (the
    normalized score). Reverse relations are left out (the graph is directed
    from models to tasks and from entities to factors).
    """
    forward = HeteroData()
    for node_type in graph.node_types:
        forward[node_type].num_nodes = graph[node_type].num_nodes
    for edge_type in (SCORES, MODEL_FACTOR, TASK_FACTOR):
        forward[edge_type].edge_index = graph[edge_type].edge_index
    forward[SCORES].weight = graph[SCORES].edge_weight
    forward[MODEL_FACTOR].weight = torch.ones(forward[MODEL_FACTOR].num_edges)
    forward[TASK_FACTOR].weight = torch.ones(forward[TASK_FACTOR].num_edges)
    g = pyg_to_networkx(forward, edge_attrs=["weight"])
    names = {"model": data.models, "task": data.tasks, "factor": encoder.nodes_}
    mapping, offset = {}, 0
    for node_type in forward.node_types:
        for i, name in enumerate(names[node_type]):
            mapping[offset + i] = f"{node_type}:{name}"
            g.nodes[offset + i]["name"] = name
        offset += forward[node_type].num_nodes
    for _, _, attrs in g.edges(data=True):
        attrs["type"] = attrs["type"][1]
    return nx.relabel_nodes(g, mapping)
