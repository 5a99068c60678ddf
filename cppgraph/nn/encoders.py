"""Graph encoders: node embeddings for models, tasks and factor values.

A model or task starts (layer 0) from the sum of

* its learned **ID vector** (per-node capacity, as in LightGCN), taken from
  one of ``tables`` cross-fitted tables (:class:`~cppgraph.nn.sparse.GraphView`);
  a node without one (new, or dropped in a cold-node episode) has zero;
* a linear map of its numeric factor features, plus a learned vector for its
  type.

Factor-value nodes have learned embeddings. Propagation then mixes in the
node's factor nodes and its score edges, so a node with no ID vector is
embedded from its factors and its known scores:

* ``lightgcn``: LightGCN propagation (symmetric normalization, no weights,
  mean of the layers) over the homogeneous view, a score edge weighted by
  ``score_floor + score``, a factor edge by 1.
* ``sage``: GraphSAGE-style layers with separate weights per relation; score
  edges send two messages, the neighbour's embedding and the embedding
  scaled by the centred score, so that low and high scores move a node in
  different directions.

Both aggregate with the sparse matmul of :class:`torch_geometric.EdgeIndex`
(:mod:`cppgraph.nn.sparse`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cppgraph.nn.sparse import SCORE_RELATIONS, EdgeWeights, GraphTensors, GraphView

NODE_TYPES = ("model", "task", "factor")


def _ids(table: Tensor, view_table: int | None, n: int, keep: Tensor | None,
         new: Tensor | None = None) -> Tensor:
    """``[n, d]`` ID vectors: the chosen table (or the mean), then ``new`` (default zero)
    for the rows past it."""
    ids = table.mean(0) if view_table is None else table[view_table]
    if ids.size(0) < n:
        ids = torch.cat([ids, ids.new_zeros(n - ids.size(0), ids.size(1)) if new is None else new])
    return ids if keep is None else ids * keep[:, None]


class NodeInputs(nn.Module):
    """Layer-0 embeddings of models, tasks and factor values."""

    def __init__(self, num_models: int, num_tasks: int, num_factors: int, model_features: int,
                 task_features: int, hidden: int, tables: int):
        super().__init__()
        self.model_id = nn.Parameter(torch.empty(tables, num_models, hidden))
        self.task_id = nn.Parameter(torch.empty(tables, num_tasks, hidden))
        self.factor = nn.Parameter(torch.empty(max(num_factors, 1), hidden))
        self.model = nn.Linear(model_features, hidden) if model_features else None
        self.task = nn.Linear(task_features, hidden) if task_features else None
        self.model_type = nn.Parameter(torch.empty(hidden))
        self.task_type = nn.Parameter(torch.empty(hidden))
        self.reset_parameters()

    def reset_parameters(self):
        nn.init.normal_(self.model_id, std=0.01)
        nn.init.normal_(self.task_id, std=0.01)
        for p in (self.factor, self.model_type, self.task_type):
            nn.init.normal_(p, std=0.1)
        for lin in (self.model, self.task):
            if lin is not None:
                lin.reset_parameters()

    def forward(self, g: GraphTensors, view: GraphView) -> dict[str, Tensor]:
        out = {}
        for kind, ids, keep, new, lin, vec, x in (
                ("model", self.model_id, view.keep_model, view.new_model_ids, self.model,
                 self.model_type, g.model_x),
                ("task", self.task_id, view.keep_task, view.new_task_ids, self.task,
                 self.task_type, g.task_x)):
            n = x.size(0)
            h = _ids(ids, view.table, n, keep, new) + vec
            out[kind] = h + lin(x) if lin is not None else h
        out["factor"] = self.factor[:g.num_factors]
        return out


def _edge_mask(g: GraphTensors, view: GraphView) -> Tensor:
    return torch.ones(g.num_scores) if view.edges is None else view.edges


class LightGCNEncoder(nn.Module):
    """LightGCN propagation over models, tasks and factor values (see the module docstring).

    Parameters
    ----------
    num_models, num_tasks, num_factors : int
        Nodes with ID vectors (models, tasks) and the factor vocabulary.
    model_features, task_features : int
        Numeric feature widths.
    hidden : int
    num_layers : int
        The output is the mean of all layers, layer 0 included.
    score_floor : float
        Added to a normalized score to weigh its edge.
    tables : int
        Cross-fitted ID tables.
    """

    def __init__(self, num_models: int, num_tasks: int, num_factors: int, model_features: int,
                 task_features: int, *, hidden: int = 32, num_layers: int = 2,
                 dropout: float = 0.0, score_floor: float = 0.1, tables: int = 1):
        super().__init__()
        self.hidden, self.num_layers, self.score_floor = hidden, num_layers, score_floor
        self.dropout = dropout
        self.inputs = NodeInputs(num_models, num_tasks, num_factors, model_features,
                                 task_features, hidden, tables)

    def reset_parameters(self):
        self.inputs.reset_parameters()

    def _weights(self, g: GraphTensors, view: GraphView) -> dict[str, Tensor]:
        """Symmetric-normalized edge weights of every relation."""
        rel = g.relations
        score_w = _edge_mask(g, view) * (self.score_floor + g.score)
        raw = {"task->model": score_w, "model->task": score_w}
        deg = {"model": torch.zeros(g.num_models), "task": torch.zeros(g.num_tasks),
               "factor": torch.zeros(g.num_factors)}
        for name, r in rel.items():
            w = raw[name].index_select(0, r.order) if name in raw else torch.ones(r.num_edges)
            raw[name] = w
            deg[name.split("->")[1]].index_add_(0, r.dst, w)
        inv = {k: v.clamp_min(1e-12).rsqrt() for k, v in deg.items()}
        out = {}
        for name, r in rel.items():
            src, dst = name.split("->")
            out[name] = raw[name] * inv[dst].index_select(0, r.dst) * inv[src].index_select(0, r.src)
        return out

    def forward(self, g: GraphTensors, view: GraphView) -> dict[str, Tensor]:
        h = self.inputs(g, view)
        h = {k: nn.functional.dropout(v, self.dropout, self.training) for k, v in h.items()}
        rel = g.relations
        # shared by the layers: the backward permutes each relation's weights once
        w = {name: EdgeWeights(rel[name], v) for name, v in self._weights(g, view).items()}
        layers = [h]
        for _ in range(self.num_layers):
            h = {dst: sum(rel[name].aggregate(h[name.split("->")[0]], w[name])
                          for name in rel if name.endswith("->" + dst))
                 for dst in NODE_TYPES}
            layers.append(h)
        return {k: torch.stack([layer[k] for layer in layers]).mean(0) for k in NODE_TYPES}

    def __repr__(self):
        return (f"{type(self).__name__}(hidden={self.hidden}, num_layers={self.num_layers}, "
                f"score_floor={self.score_floor}, tables={self.inputs.model_id.size(0)})")


class SAGEEncoder(nn.Module):
    """GraphSAGE-style heterogeneous layers with score-scaled messages (see the module docstring).

    Layer ``l`` updates node ``v`` of type ``T`` as
    ``h_v + act(W_T h_v + sum_r W_r mean_{u in N_r(v)} h_u + V_r mean_{u in N_r(v)} (y_uv - c_t) h_u)``,
    the ``V_r`` term on score relations only, ``c_t`` the mean score of the edge's task
    over the score edges in view.

    Parameters
    ----------
    num_models, num_tasks, num_factors, model_features, task_features, hidden, tables
        As :class:`LightGCNEncoder`.
    num_layers : int
    dropout : float
    """

    def __init__(self, num_models: int, num_tasks: int, num_factors: int, model_features: int,
                 task_features: int, *, hidden: int = 32, num_layers: int = 2,
                 dropout: float = 0.0, tables: int = 1):
        super().__init__()
        self.hidden, self.num_layers, self.dropout = hidden, num_layers, dropout
        self.inputs = NodeInputs(num_models, num_tasks, num_factors, model_features,
                                 task_features, hidden, tables)
        names = ("self:model", "self:task", "self:factor", "task->model", "model->task",
                 "factor->model", "factor->task", "model->factor", "task->factor",
                 "score:task->model", "score:model->task")
        self.layers = nn.ModuleList(
            nn.ModuleDict({n.replace(":", "_").replace("->", "_to_"): nn.Linear(hidden, hidden)
                           for n in names})
            for _ in range(num_layers))

    def reset_parameters(self):
        self.inputs.reset_parameters()
        for layer in self.layers:
            for lin in layer.values():
                lin.reset_parameters()

    def forward(self, g: GraphTensors, view: GraphView) -> dict[str, Tensor]:
        h = self.inputs(g, view)
        rel = g.relations
        mask = _edge_mask(g, view)
        weights = {name: r.mean_weights(mask if name in SCORE_RELATIONS else None)
                   for name, r in rel.items()}
        # A score message is scaled by the score minus its task's mean over the edges in view.
        to_task = rel["model->task"]
        task_mean = torch.zeros(g.num_tasks).index_add_(0, to_task.dst, weights["model->task"]
                                                        * g.sorted_score["model->task"])
        for name in SCORE_RELATIONS:
            task_pos = rel[name].dst if name == "model->task" else rel[name].src
            weights["score:" + name] = weights[name] * (g.sorted_score[name]
                                                          - task_mean.index_select(0, task_pos))
        # shared by the layers: the backward permutes each weight vector once
        weights = {name: EdgeWeights(rel[name.removeprefix("score:")], w)
                   for name, w in weights.items()}
        for i, layer in enumerate(self.layers):
            x = {k: nn.functional.dropout(v, self.dropout, self.training) for k, v in h.items()}
            new = {k: layer[f"self_{k}"](x[k]) for k in NODE_TYPES}
            for name, w in weights.items():
                src, dst = name.removeprefix("score:").split("->")
                key = name.replace(":", "_").replace("->", "_to_")
                new[dst] = new[dst] + layer[key](rel[name.removeprefix("score:")].aggregate(x[src], w))
            if i < self.num_layers - 1:
                new = {k: v.relu() for k, v in new.items()}
            h = {k: h[k] + new[k] for k in NODE_TYPES}
        return h

    def __repr__(self):
        return (f"{type(self).__name__}(hidden={self.hidden}, num_layers={self.num_layers}, "
                f"tables={self.inputs.model_id.size(0)})")


ENCODERS = {"lightgcn": LightGCNEncoder, "sage": SAGEEncoder}


def make_encoder(name: str, **kwargs) -> nn.Module:
    """An encoder by name (``lightgcn`` or ``sage``)."""
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; expected one of {list(ENCODERS)}")
    return ENCODERS[name](**kwargs)
