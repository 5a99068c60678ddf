"""Sparse message passing over the score graph, with per-step edge masks.

The network sees the heterogeneous graph as a :class:`GraphTensors`: each
relation (``src -> dst``) keeps the compressed layouts of a
:class:`torch_geometric.EdgeIndex` sorted by destination (by destination, and
by source for the backward pass), which give the sparse products that aggregate
the messages (:meth:`Relation.aggregate`). Which score edges are in the graph changes
from step to step (supervised cells, held-out folds, cold-node episodes);
that is a per-edge weight (:class:`GraphView`), so the sparse structure is
built once.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, replace

import torch
from torch import Tensor
from torch_geometric import EdgeIndex

# EdgeIndex builds CSR tensors whose invariants it guarantees itself.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta",
                        category=UserWarning)
warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled",
                        category=UserWarning)


class Relation:
    """Messages from ``src`` nodes to ``dst`` nodes along ``E`` edges.

    Parameters
    ----------
    src, dst : Tensor ``[E]``
        Node positions of each edge's source and destination.
    num_src, num_dst : int
    """

    def __init__(self, src: Tensor, dst: Tensor, num_src: int, num_dst: int):
        index = EdgeIndex(torch.stack([dst, src]), sparse_size=(num_dst, num_src))
        index, self.order = index.sort_by("row")
        self.src, self.dst = src[self.order], dst[self.order]
        self.num_src, self.num_dst = num_src, num_dst
        # EdgeIndex's compressed layouts, by destination and by source (with the permutation
        # of the edges into the latter's order), with 32-bit indices where they fit: the CPU
        # kernels of the products take those without converting them first. Only these are
        # kept, not the EdgeIndex with its 64-bit copies (edge_index() builds one again).
        (rowptr, col), _ = index.get_csr()
        (colptr, row), self.csc_perm = index.get_csc()
        small = max(self.num_edges, num_src, num_dst) < 2**31 - 1
        self.csr = tuple(t.int() if small else t for t in (rowptr, col))
        self.csc = tuple(t.int() if small else t for t in (colptr, row))

    @property
    def num_edges(self) -> int:
        return len(self.order)

    def edge_index(self) -> EdgeIndex:
        """The relation as a :class:`torch_geometric.EdgeIndex` (destination, source) sorted
        by destination, built anew on each call."""
        return EdgeIndex(torch.stack([self.dst, self.src]),
                         sparse_size=(self.num_dst, self.num_src), sort_order="row")

    def mean_weights(self, mask: Tensor | None = None) -> Tensor:
        """Per-edge weights (in sorted order) of the mean over each destination's
        edges in ``mask`` (default: all)."""
        m = torch.ones(self.num_edges) if mask is None else mask.index_select(0, self.order)
        deg = torch.zeros(self.num_dst).index_add_(0, self.dst, m)
        return m / deg.clamp_min(1.0).index_select(0, self.dst)

    def aggregate(self, x: Tensor, weights: Tensor | EdgeWeights) -> Tensor:
        """``out[d] = sum_e weights[e] x[src(e)]`` over the edges into ``d``;
        ``weights`` in sorted order (:meth:`mean_weights`), or as :class:`EdgeWeights`
        of this relation to share their backward permutation with other calls."""
        if not isinstance(weights, EdgeWeights):
            weights = EdgeWeights(self, weights)
        elif weights.rel is not self:
            raise ValueError("these EdgeWeights belong to another relation")
        return _WeightedSum.apply(x, weights)


class EdgeWeights:
    """Message weights of one relation (``values``, in its sorted order) for several
    :meth:`Relation.aggregate` calls, e.g. every layer of a forward pass: their order in
    the layout by source, which each backward pass needs, is computed once, when first
    asked (:meth:`by_source`), and lives as long as they do."""

    def __init__(self, rel: Relation, values: Tensor):
        if values.requires_grad:
            raise NotImplementedError("message weights get no gradient")
        self.rel, self.values, self._by_source = rel, values, None

    def by_source(self) -> Tensor:
        if self._by_source is None:
            perm = self.rel.csc_perm
            self._by_source = self.values if perm is None else self.values.index_select(0, perm)
        return self._by_source


class _WeightedSum(torch.autograd.Function):
    """``EdgeIndex.matmul(x, input_value=weights)`` (the same sparse products, forward
    and backward) with changes that are faster on CPU: the forward is a plain CSR
    product (EdgeIndex's goes through the ``"sum"`` reduction kernel, the slower on CPU;
    the sums differ at most by float rounding, at some small widths, and are identical
    at the default widths 32 and 64), both products take the relation's cached 32-bit
    layouts, and the backward permutes the weights into the transpose's order by
    ``index_select`` rather than advanced indexing, once per :class:`EdgeWeights`. The
    weights get no gradient."""

    @staticmethod
    def forward(ctx, x: Tensor, weights: EdgeWeights) -> Tensor:
        ctx.weights = weights
        rel = weights.rel
        adj = torch.sparse_csr_tensor(*rel.csr, weights.values, (rel.num_dst, rel.num_src))
        return adj @ x.detach()

    @staticmethod
    def backward(ctx, grad: Tensor):
        weights = ctx.weights
        rel = weights.rel
        adj_t = torch.sparse_csr_tensor(*rel.csc, weights.by_source(), (rel.num_src, rel.num_dst))
        return adj_t @ grad, None


#: The two directions of the score edges.
SCORE_RELATIONS = ("task->model", "model->task")


@dataclass
class GraphTensors:
    """The heterogeneous graph as tensors (no names): nodes, relations and features.

    Attributes
    ----------
    num_models, num_tasks, num_factors : int
    score_model, score_task : Tensor ``[E]``
        The score edges; ``score`` their normalized scores.
    model_x, task_x : Tensor ``[n, k]``
        Standardized numeric factors with missing indicators.
    relations : dict
        ``"task->model"``, ``"model->task"`` (score edges, in score-edge
        order), ``"factor->model"``, ``"model->factor"``, ``"factor->task"``,
        ``"task->factor"``.
    """

    num_models: int
    num_tasks: int
    num_factors: int
    score_model: Tensor
    score_task: Tensor
    score: Tensor
    model_x: Tensor
    task_x: Tensor
    relations: dict

    @classmethod
    def build(cls, *, num_models: int, num_tasks: int, num_factors: int, score_model: Tensor,
              score_task: Tensor, score: Tensor, model_factor: Tensor, task_factor: Tensor,
              model_x: Tensor, task_x: Tensor) -> "GraphTensors":
        """``model_factor`` / ``task_factor``: ``[2, F]`` (entity, factor node) edges."""
        rel = {
            "task->model": Relation(score_task, score_model, num_tasks, num_models),
            "model->task": Relation(score_model, score_task, num_models, num_tasks),
            "factor->model": Relation(model_factor[1], model_factor[0], num_factors, num_models),
            "model->factor": Relation(model_factor[0], model_factor[1], num_models, num_factors),
            "factor->task": Relation(task_factor[1], task_factor[0], num_factors, num_tasks),
            "task->factor": Relation(task_factor[0], task_factor[1], num_tasks, num_factors),
        }
        out = cls(num_models, num_tasks, num_factors, score_model, score_task,
                  score.float(), model_x.float(), task_x.float(), rel)
        out.sorted_score = {name: out.score[rel[name].order] for name in SCORE_RELATIONS}
        return out

    @property
    def num_scores(self) -> int:
        return len(self.score)

    def with_scores(self, score: Tensor) -> "GraphTensors":
        """The same graph with other values on its score edges."""
        out = copy.copy(self)
        out.score = score.float()
        out.sorted_score = {name: out.score[self.relations[name].order] for name in SCORE_RELATIONS}
        return out


@dataclass
class GraphView:
    """What one forward pass sees of a :class:`GraphTensors`.

    Attributes
    ----------
    edges : Tensor ``[E]`` of float, optional
        1 for a score edge in the graph, 0 for one left out (default: all in).
    keep_model, keep_task : Tensor of float, optional
        1 where a node's learned ID vector is used, 0 where it is dropped
        (default: used where the node has one).
    table : int, optional
        Which cross-fitted ID table to use; ``None``: their mean.
    new_model_ids, new_task_ids : Tensor ``[n_new, hidden]``, optional
        ID vectors of the models (tasks) past the ID tables, i.e. new ones
        (default: zero), as fitted to their known scores by
        :func:`cppgraph.train.fold_in`.
    """

    edges: Tensor | None = None
    keep_model: Tensor | None = None
    keep_task: Tensor | None = None
    table: int | None = None
    new_model_ids: Tensor | None = None
    new_task_ids: Tensor | None = None

    def with_new_ids(self, kind: str, ids: Tensor) -> "GraphView":
        """The same view with ``ids`` as the ID vectors of the new models (``kind``
        ``"model"``) or tasks."""
        return replace(self, **{f"new_{kind}_ids": ids})
