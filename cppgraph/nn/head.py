"""The factor-aware scoring head: (model, task) embeddings + factors -> one score."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cppgraph.nn.sparse import GraphTensors

#: Standard deviation of the dot product's initial weights: the product is quadratic in
#: them, and a small start keeps Adam's first steps from saturating the sigmoid.
DOT_INIT = 0.05


class ScoreHead(nn.Module):
    """Scores a (model, task) pair from the two embeddings and the two entities' factors.

    With ``z_m = [h_m, x_m]`` (embedding and numeric features) and ``F_m``
    the model's factor-value nodes (likewise for the task)::

        a     = relu(A z_m + sum_{f in F_m} P_f + B z_t + sum_{f in F_t} Q_f + C (h_m * h_t))
        logit = w . a + (U z_m) . (V z_t) + b(h_m) + b'(h_t)

    The first line is an MLP over ``[h_m, h_t, h_m * h_t, x_m, x_t,
    multi-hot factors]`` whose first layer is computed per node (the
    multi-hot part as a sparse sum of the factor nodes' rows), so a pair
    costs ``O(hidden)``; the dot product is the matrix-factorization term.
    With ``bounded=True`` the output passes through a sigmoid, i.e. lies in
    (0, 1), the range of min-max normalized scores.
    """

    def __init__(self, hidden: int, model_features: int, task_features: int, num_factors: int, *,
                 mlp_hidden: int = 64, dropout: float = 0.0, bounded: bool = True):
        super().__init__()
        self.bounded, self.dropout = bounded, dropout
        self.model_in = nn.Linear(hidden + model_features, mlp_hidden)
        self.task_in = nn.Linear(hidden + task_features, mlp_hidden, bias=False)
        self.factor_in = nn.Parameter(torch.empty(max(num_factors, 1), mlp_hidden))
        self.pair_in = nn.Linear(hidden, mlp_hidden, bias=False)
        self.out = nn.Linear(mlp_hidden, 1)
        self.model_dot = nn.Linear(hidden + model_features, hidden, bias=False)
        self.task_dot = nn.Linear(hidden + task_features, hidden, bias=False)
        self.model_bias = nn.Linear(hidden, 1)
        self.task_bias = nn.Linear(hidden, 1, bias=False)
        self.reset_parameters()

    def reset_parameters(self):
        nn.init.normal_(self.factor_in, std=0.01)
        for module in (self.model_in, self.task_in, self.pair_in, self.out, self.model_bias,
                       self.task_bias):
            module.reset_parameters()
        nn.init.normal_(self.model_dot.weight, std=DOT_INIT)
        nn.init.normal_(self.task_dot.weight, std=DOT_INIT)

    def node_terms(self, g: GraphTensors, h: dict[str, Tensor]) -> dict[str, Tensor]:
        """Everything that depends on one node only (computed once per forward)."""
        ones = {name: torch.ones(r.num_edges) for name, r in g.relations.items()
                if name.startswith("factor->")}
        z_m, z_t = torch.cat([h["model"], g.model_x], 1), torch.cat([h["task"], g.task_x], 1)
        rel = g.relations
        return {
            "model_in": self.model_in(z_m) + rel["factor->model"].aggregate(
                self.factor_in[:g.num_factors], ones["factor->model"]),
            "task_in": self.task_in(z_t) + rel["factor->task"].aggregate(
                self.factor_in[:g.num_factors], ones["factor->task"]),
            "model_dot": self.model_dot(z_m), "task_dot": self.task_dot(z_t),
            "model_bias": self.model_bias(h["model"]).squeeze(-1),
            "task_bias": self.task_bias(h["task"]).squeeze(-1),
            "model": h["model"], "task": h["task"],
        }

    def node_vectors(self, g: GraphTensors, h: dict[str, Tensor]) -> dict[str, Tensor]:
        """Each node's vector in the first layer, the part of ``a`` that depends on it
        alone: ``A z_m + sum_{f in F_m} P_f`` for a model, ``B z_t + sum_{f in F_t} Q_f``
        for a task and the row ``P_f`` (= ``Q_f``) of a factor value (``[n, mlp_hidden]``)."""
        terms = self.node_terms(g, h)
        return {"model": terms["model_in"], "task": terms["task_in"],
                "factor": self.factor_in[:g.num_factors]}

    def forward(self, terms: dict[str, Tensor], pairs: Tensor) -> Tensor:
        """Scores of ``pairs`` (``[2, P]`` model and task positions)."""
        m, t = pairs

        def at(name: str, index: Tensor) -> Tensor:
            # index_select: the same values as terms[name][index], with a backward
            # (index_add) cheaper on CPU than advanced indexing's
            return terms[name].index_select(0, index)

        a = at("model_in", m) + at("task_in", t) + self.pair_in(at("model", m) * at("task", t))
        a = nn.functional.dropout(a.relu(), self.dropout, self.training)
        logit = (self.out(a).squeeze(-1) + (at("model_dot", m) * at("task_dot", t)).sum(-1)
                 + at("model_bias", m) + at("task_bias", t))
        return torch.sigmoid(logit) if self.bounded else logit

    def __repr__(self):
        return (f"{type(self).__name__}(hidden={self.model_dot.out_features}, "
                f"mlp_hidden={self.out.in_features}, bounded={self.bounded})")
