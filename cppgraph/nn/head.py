"""The factor-aware scoring head: (model, task) embeddings + factors -> one score."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ScoreHead(nn.Module):
    """MLP over ``[h_m, h_t, h_m * h_t, f_m, f_t]`` plus model and task bias terms.

    ``f_m`` / ``f_t`` are the entity's factor inputs: its numeric features and
    the multi-hot vector of its factor-value nodes. The biases are linear in
    the embeddings (inductive: a new model gets one too). With
    ``bounded=True`` the output passes through a sigmoid, i.e. lies in (0, 1),
    the range of min-max normalized scores.
    """

    def __init__(self, hidden: int, model_inputs: int, task_inputs: int, *,
                 mlp_hidden: int = 64, dropout: float = 0.0, bounded: bool = True):
        super().__init__()
        self.bounded = bounded
        width = 3 * hidden + model_inputs + task_inputs
        self.mlp = nn.Sequential(nn.Linear(width, mlp_hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(mlp_hidden, 1))
        self.model_bias = nn.Linear(hidden, 1)
        self.task_bias = nn.Linear(hidden, 1)

    def reset_parameters(self):
        for module in (*self.mlp, self.model_bias, self.task_bias):
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def forward(self, h_model: Tensor, h_task: Tensor, f_model: Tensor, f_task: Tensor) -> Tensor:
        z = torch.cat([h_model, h_task, h_model * h_task, f_model, f_task], dim=-1)
        out = self.mlp(z) + self.model_bias(h_model) + self.task_bias(h_task)
        out = out.squeeze(-1)
        return torch.sigmoid(out) if self.bounded else out

    def __repr__(self):
        return f"{type(self).__name__}(in={self.mlp[0].in_features}, bounded={self.bounded})"
