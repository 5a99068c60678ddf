"""The four methods of the CPP paper, re-implemented as matrix baselines.

Zhang et al. (2024), "Collaborative Performance Prediction for Large Language
Models", compare four predictors of a models x tasks score matrix:

============== ==============================================================
name           network
============== ==============================================================
mf             dot product of model and task embeddings (10 factors, no bias)
ncf            neural collaborative filtering: a GMF branch (elementwise
               product of 10-d embeddings) and an MLP branch over 20 + 20-d
               embeddings (40 -> 64 -> 32 -> 16, ReLU, dropout 0.2), their
               outputs (10 + 16) joined by one linear output
ncf-factors    ncf, with linear maps of the model and task factors (to 20-d)
               added to the ID embeddings of the MLP branch
factors-only   the ncf-factors network without ID embeddings: linear maps of
               the factors feed both branches
============== ==============================================================

Outputs are unbounded (no sigmoid). The ID embeddings of a model or task
without any observed cell get no data gradient (Adam's weight decay shrinks
them to about zero): ``mf`` then predicts about 0 for it, ``ncf`` a value
set by the task alone, ``ncf-factors`` one without its GMF term, while
``factors-only`` treats it like any other entity.

Training budget
---------------
The paper trains with SGD (lr 0.01, batch 16, MSE) for 250,000 epochs
without early stopping. Here every method shares a much smaller, documented
budget instead: 10% of the observed cells are held out for validation, Adam
(lr 0.01, weight decay 1e-5) runs on shuffled mini-batches of 64 cells with
the MSE loss for at most 500 epochs, stopping after 30 epochs without a lower
validation MSE, and the weights of the best validation epoch are kept. All
randomness (initialization, dropout, validation split, batch order) derives
from ``problem.seed``.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from cppgraph.evaluate.base import MatrixMethod
from cppgraph.evaluate.problem import Problem

#: Hidden layer widths of the MLP branch (its input: two 2 * latent vectors).
MLP_LAYERS = (64, 32, 16)
#: Dropout after every hidden layer of the MLP branch.
DROPOUT = 0.2
#: Standard deviation of the normal initial ID embeddings (as in He et al. 2017, NCF).
INIT_STD = 0.01


def _embedding(n: int, dim: int) -> nn.Embedding:
    emb = nn.Embedding(n, dim)
    nn.init.normal_(emb.weight, std=INIT_STD)
    return emb


class _MFNet(nn.Module):
    """Dot product of model and task embeddings."""

    def __init__(self, n_models: int, n_tasks: int, latent: int):
        super().__init__()
        self.model = _embedding(n_models, latent)
        self.task = _embedding(n_tasks, latent)

    def forward(self, m: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return (self.model(m) * self.task(t)).sum(-1)


class _Side(nn.Module):
    """Inputs of the GMF and MLP branches for one side (models or tasks).

    With ``ids``, the GMF vector is an ID embedding and the MLP vector an ID
    embedding plus, when factors ``x`` are given, a linear map of them.
    Without ``ids``, both vectors are linear maps of ``x``.
    """

    def __init__(self, n: int, latent: int, x: np.ndarray | None, ids: bool):
        super().__init__()
        if not ids and x is None:
            raise ValueError("a side needs ID embeddings or factors")
        self.gmf_id = _embedding(n, latent) if ids else None
        self.mlp_id = _embedding(n, 2 * latent) if ids else None
        if x is not None:
            self.register_buffer("x", torch.as_tensor(x, dtype=torch.float32))
            with warnings.catch_warnings():  # no factor columns: each map is its bias alone,
                warnings.filterwarnings("ignore", "Initializing zero-element tensors")  # no weight
                self.gmf_x = None if ids else nn.Linear(x.shape[1], latent)
                self.mlp_x = nn.Linear(x.shape[1], 2 * latent)
        else:
            self.x = self.gmf_x = self.mlp_x = None

    def forward(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = None if self.x is None else self.x[idx]
        gmf = self.gmf_id(idx) if self.gmf_id is not None else self.gmf_x(x)
        mlp = self.mlp_id(idx) if self.mlp_id is not None else 0
        if self.mlp_x is not None:
            mlp = mlp + self.mlp_x(x)
        return gmf, mlp


class _NCFNet(nn.Module):
    """GMF and MLP branches over a model side and a task side, one linear output."""

    def __init__(self, model_side: _Side, task_side: _Side, latent: int):
        super().__init__()
        self.model, self.task = model_side, task_side
        layers, width = [], 4 * latent
        for out in MLP_LAYERS:
            layers += [nn.Linear(width, out), nn.ReLU(), nn.Dropout(DROPOUT)]
            width = out
        self.mlp = nn.Sequential(*layers)
        self.out = nn.Linear(latent + width, 1)

    def forward(self, m: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        (mg, mm), (tg, tm) = self.model(m), self.task(t)
        h = torch.cat([mg * tg, self.mlp(torch.cat([mm, tm], -1))], -1)
        return self.out(h).squeeze(-1)


def _train_predict(method: "_PaperMethod", problem: Problem) -> np.ndarray:
    """Train ``method``'s network on the observed cells and predict the test cells.

    A random ``method.val_fraction`` of the observed cells (at least one when
    there are 10 or more) is held out for early stopping; the rest is trained
    on in shuffled mini-batches with Adam and the MSE loss, and the weights of
    the epoch with the lowest validation MSE are kept.

    Parameters
    ----------
    method : _PaperMethod
        Supplies the network (:meth:`_PaperMethod.network`) and the budget.
    problem : Problem

    Returns
    -------
    ndarray of float64
        Predictions of the cells ``(problem.rows, problem.cols)``.
    """
    obs_r, obs_c = np.nonzero(problem.observed)
    n = obs_r.size
    if n == 0:
        raise ValueError(f"{method!r} needs at least one observed cell")
    # Validation cells: a random share, at least one from 10 cells on, never all.
    k = min(max(int(round(method.val_fraction * n)), int(n >= 10)), n - 1)
    val = np.zeros(n, dtype=bool)
    val[np.random.default_rng(problem.seed).choice(n, size=k, replace=False)] = True
    cells = [torch.as_tensor(a) for a in (obs_r, obs_c)]
    target = torch.as_tensor(problem.y[obs_r, obs_c], dtype=torch.float32)
    tr, va = torch.as_tensor(~val), torch.as_tensor(val)
    m_tr, t_tr, y_tr = cells[0][tr], cells[1][tr], target[tr]
    m_va, t_va, y_va = cells[0][va], cells[1][va], target[va]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(problem.seed)
        gen = torch.Generator().manual_seed(problem.seed)
        net = method.network(problem)
        opt = torch.optim.Adam(net.parameters(), lr=method.lr, weight_decay=method.weight_decay)
        best, best_state, wait = np.inf, None, 0
        for _ in range(method.max_epochs):
            net.train()
            for b in torch.randperm(len(y_tr), generator=gen).split(method.batch_size):
                opt.zero_grad()
                loss = torch.mean((net(m_tr[b], t_tr[b]) - y_tr[b]) ** 2)
                loss.backward()
                opt.step()
            if not len(y_va):
                continue
            net.eval()
            with torch.no_grad():
                mse = torch.mean((net(m_va, t_va) - y_va) ** 2).item()
            if mse < best:
                best, wait = mse, 0
                best_state = {key: v.detach().clone() for key, v in net.state_dict().items()}
            else:
                wait += 1
                if wait >= method.patience:
                    break
        if best_state is not None:
            net.load_state_dict(best_state)
        net.eval()
        with torch.no_grad():
            pred = net(torch.tensor(problem.rows), torch.tensor(problem.cols))
    return pred.numpy().astype(np.float64)


class _PaperMethod(MatrixMethod):
    """A network of the CPP paper trained with the budget of this module.

    Parameters
    ----------
    latent : int
        GMF / MF embedding size; the MLP branch embeddings are ``2 * latent``.
    lr, weight_decay : float
        Adam settings.
    batch_size : int
        Cells per mini-batch.
    max_epochs, patience : int
        Epoch budget and early-stopping patience (epochs without a lower
        validation MSE).
    val_fraction : float
        Share of the observed cells held out for early stopping.
    """

    def __init__(self, *, latent: int = 10, lr: float = 0.01, weight_decay: float = 1e-5,
                 batch_size: int = 64, max_epochs: int = 500, patience: int = 30,
                 val_fraction: float = 0.1):
        self.latent = latent
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.val_fraction = val_fraction

    def network(self, problem: Problem) -> nn.Module:
        """The untrained network for ``problem`` (built under the seeded RNG)."""
        raise NotImplementedError

    def complete(self, problem: Problem) -> np.ndarray:
        return _train_predict(self, problem)


class MF(_PaperMethod):
    """Matrix factorization: dot product of model and task embeddings, no biases."""

    name = "mf"

    def network(self, problem: Problem) -> nn.Module:
        return _MFNet(*problem.y.shape, self.latent)


class _NCFMethod(_PaperMethod):
    """An NCF network whose sides use ID embeddings (``ids``) and/or factors (``factors``)."""

    ids, factors = True, False

    def network(self, problem: Problem) -> nn.Module:
        n_models, n_tasks = problem.y.shape
        mx, tx = (problem.model_x, problem.task_x) if self.factors else (None, None)
        return _NCFNet(_Side(n_models, self.latent, mx, ids=self.ids),
                       _Side(n_tasks, self.latent, tx, ids=self.ids), self.latent)


class NCF(_NCFMethod):
    """Neural collaborative filtering over model and task IDs (GMF + MLP)."""

    name = "ncf"


class NCFFactors(_NCFMethod):
    """NCF with linear maps of the factors added to the MLP branch's ID embeddings."""

    name = "ncf-factors"
    factors = True


class FactorsOnly(_NCFMethod):
    """The NCF-factors network without ID embeddings: both branches see only factors."""

    name = "factors-only"
    ids, factors = False, True
