"""Graph encoders: node embeddings for models, tasks and factor values.

Both encoders are inductive: a model or task node starts from its numeric
factor features (a linear map plus a learned per-type vector), never from a
learned per-node ID embedding, so a new node attached through its factor and
score edges is embedded like any other. Factor-value nodes have learned
embeddings (the vocabulary is fixed at fit time).

How observed scores shape the embeddings:

* ``lightgcn`` propagates with :class:`~torch_geometric.nn.conv.LGConv` over the
  homogeneous view of the graph, a score edge weighted by
  ``score_floor + score`` (the normalized score), a factor edge by 1; a model's
  embedding is the score-weighted mix of its tasks' embeddings.
* ``sage`` splits score edges into rating levels (GC-MC style: one relation per
  score quantile bin, thresholds learned from the training scores) and runs a
  heterogeneous :class:`~torch_geometric.nn.conv.SAGEConv` per relation
  (:class:`~torch_geometric.nn.conv.HeteroConv`), so a low and a high score
  send messages through different weights.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.data import HeteroData
from torch_geometric.nn import HeteroConv, LGConv, SAGEConv

NODE_TYPES = ("model", "task", "factor")
SCORES = ("model", "scores", "task")
REV_SCORES = ("task", "rev_scores", "model")


class _Inputs(nn.Module):
    """Layer-0 embeddings: factor-node table, and features -> hidden for models and tasks."""

    def __init__(self, num_factors: int, model_features: int, task_features: int, hidden: int):
        super().__init__()
        self.factor = nn.Embedding(max(num_factors, 1), hidden)
        self.model = nn.Linear(model_features, hidden) if model_features else None
        self.task = nn.Linear(task_features, hidden) if task_features else None
        self.model_type = nn.Parameter(torch.empty(hidden))
        self.task_type = nn.Parameter(torch.empty(hidden))
        self.reset_parameters()

    def reset_parameters(self):
        nn.init.normal_(self.factor.weight, std=0.1)
        nn.init.normal_(self.model_type, std=0.1)
        nn.init.normal_(self.task_type, std=0.1)
        for lin in (self.model, self.task):
            if lin is not None:
                lin.reset_parameters()

    def forward(self, graph: HeteroData) -> dict[str, Tensor]:
        out = {}
        for kind, lin, vec in (("model", self.model, self.model_type),
                               ("task", self.task, self.task_type)):
            n = graph[kind].num_nodes
            h = vec.expand(n, -1)
            if lin is not None:
                h = h + lin(graph[kind].x)
            out[kind] = h
        out["factor"] = self.factor.weight[:graph["factor"].num_nodes]
        return out


class LightGCNEncoder(nn.Module):
    """LightGCN propagation (``LGConv``) over the homogeneous view, score-weighted edges.

    Parameters
    ----------
    num_factors, model_features, task_features : int
        Factor vocabulary size and numeric feature widths.
    hidden : int
        Embedding size.
    num_layers : int
        Propagation steps; the output is the mean of all layers (layer 0 too).
    score_floor : float
        Added to each normalized score to weigh its edge (keeps low scores
        connected).
    """

    def __init__(self, num_factors: int, model_features: int, task_features: int, *,
                 hidden: int = 32, num_layers: int = 2, dropout: float = 0.0,
                 score_floor: float = 0.1):
        super().__init__()
        self.hidden, self.num_layers, self.dropout = hidden, num_layers, dropout
        self.score_floor = score_floor
        self.inputs = _Inputs(num_factors, model_features, task_features, hidden)
        self.convs = nn.ModuleList(LGConv() for _ in range(num_layers))

    def reset_parameters(self):
        self.inputs.reset_parameters()

    def forward(self, graph: HeteroData) -> dict[str, Tensor]:
        h0 = self.inputs(graph)
        sizes = [graph[t].num_nodes for t in NODE_TYPES]
        offset = dict(zip(NODE_TYPES, torch.tensor([0, *sizes[:-1]]).cumsum(0).tolist()))
        x = torch.cat([h0[t] for t in NODE_TYPES], dim=0)
        x = nn.functional.dropout(x, self.dropout, self.training)
        index, weight = [], []
        for et in graph.edge_types:
            ei = graph[et].edge_index
            index.append(torch.stack([ei[0] + offset[et[0]], ei[1] + offset[et[2]]]))
            if "scores" in et[1]:
                weight.append(graph[et].edge_weight.clamp(min=0) + self.score_floor)
            else:
                weight.append(torch.ones(ei.size(1)))
        edge_index, edge_weight = torch.cat(index, 1), torch.cat(weight)
        layers = [x]
        for conv in self.convs:
            x = conv(x, edge_index, edge_weight)
            layers.append(x)
        out = torch.stack(layers).mean(0)
        return dict(zip(NODE_TYPES, out.split(sizes)))

    def __repr__(self):
        return (f"{type(self).__name__}(hidden={self.hidden}, num_layers={self.num_layers}, "
                f"score_floor={self.score_floor})")


class SAGEEncoder(nn.Module):
    """Heterogeneous GraphSAGE with one relation per score level (GC-MC style).

    Parameters
    ----------
    level_edges : sequence of float
        Inner thresholds that split normalized scores into
        ``len(level_edges) + 1`` rating levels.
    """

    def __init__(self, num_factors: int, model_features: int, task_features: int, *,
                 hidden: int = 32, num_layers: int = 2, dropout: float = 0.0,
                 level_edges=(0.25, 0.5, 0.75)):
        super().__init__()
        self.hidden, self.num_layers, self.dropout = hidden, num_layers, dropout
        self.register_buffer("level_edges", torch.tensor(list(level_edges), dtype=torch.float32))
        self.inputs = _Inputs(num_factors, model_features, task_features, hidden)
        self.relations = [("model", "has_factor", "factor"), ("task", "has_factor", "factor"),
                          ("factor", "rev_has_factor", "model"), ("factor", "rev_has_factor", "task")]
        for k in range(len(level_edges) + 1):
            self.relations += [("model", f"scores_l{k}", "task"), ("task", f"rev_scores_l{k}", "model")]
        self.convs = nn.ModuleList(
            HeteroConv({rel: SAGEConv(hidden, hidden) for rel in self.relations}, aggr="mean")
            for _ in range(num_layers))

    def reset_parameters(self):
        self.inputs.reset_parameters()
        for conv in self.convs:
            conv.reset_parameters()

    def _edges(self, graph: HeteroData) -> dict:
        edges = {rel: graph[rel].edge_index for rel in self.relations[:4] if rel in graph.edge_types}
        ei, w = graph[SCORES].edge_index, graph[SCORES].edge_weight
        level = torch.bucketize(w, self.level_edges)
        for k in range(len(self.level_edges) + 1):
            sel = ei[:, level == k]
            edges[("model", f"scores_l{k}", "task")] = sel
            edges[("task", f"rev_scores_l{k}", "model")] = sel.flip(0)
        return edges

    def forward(self, graph: HeteroData) -> dict[str, Tensor]:
        h = self.inputs(graph)
        edges = self._edges(graph)
        for i, conv in enumerate(self.convs):
            h = {t: nn.functional.dropout(v, self.dropout, self.training) for t, v in h.items()}
            new = conv(h, edges)
            # Residual keeps nodes with no incoming relation in a layer.
            h = {t: (new[t] if t in new else 0) + h[t] for t in h}
            if i < len(self.convs) - 1:
                h = {t: v.relu() for t, v in h.items()}
        return h

    def __repr__(self):
        return (f"{type(self).__name__}(hidden={self.hidden}, num_layers={self.num_layers}, "
                f"levels={len(self.level_edges) + 1})")


ENCODERS = {"lightgcn": LightGCNEncoder, "sage": SAGEEncoder}


def make_encoder(name: str, **kwargs) -> nn.Module:
    """An encoder by name (``lightgcn`` or ``sage``)."""
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; expected one of {list(ENCODERS)}")
    return ENCODERS[name](**kwargs)
