"""Training of an encoder and a scoring head without target leakage, and leak-free prediction.

Folds
    The score edges are split once: a validation share (never in the graph
    while the network learns, never a target; it decides early stopping)
    and ``K`` folds of the rest. The encoder has ``K`` cross-fitted ID
    tables: table ``k`` is trained only on cells outside fold ``k``, with
    fold ``k`` out of the graph.
Steps
    Each step takes one table ``k``; a share of the cells outside fold ``k``
    (at most ``batch_size``) is supervised and left out of the graph, so no
    cell's score is an input of its own prediction. A share of the models
    (``id_dropout``) lose their ID vectors for the step and keep between 0
    and :data:`COLD_EDGES` of their message edges: these cold-node episodes
    teach the network to embed a model from its factors and a few score
    edges, as it must for a new model. (Tasks keep their IDs: a model
    without one reads its scores through the tasks' vectors. A new task is
    still embedded from its factors and known scores.)
Prediction
    A cell outside the training scores: the mean ID table, every score edge
    in the graph. A training cell of fold ``k``: table ``k`` with fold ``k``
    out of the graph (its score reached neither the graph nor the ID
    vectors); a validation cell: the mean table, with the validation cells
    out of the graph.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn

from cppgraph.errors import CppGraphError
from cppgraph.nn.sparse import GraphTensors, GraphView

logger = logging.getLogger(__name__)
#: A model in a cold-node episode keeps between 0 and this many of its score edges, as a
#: new model comes with a few known scores.
COLD_EDGES = 5
#: At most this many validation cells: enough to stop early on large data.
MAX_VALIDATION = 20_000
#: The learning rate rises linearly over this many epochs (then the plateau rule takes
#: over): without it, Adam's first steps can saturate the sigmoid and a fit never
#: recovers (a HELM split, hidden 64).
WARMUP = 5


class Network(nn.Module):
    """Encoder + head: embeds the graph, then scores (model, task) pairs."""

    def __init__(self, encoder: nn.Module, head: nn.Module):
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, g: GraphTensors, view: GraphView, pairs: Tensor) -> Tensor:
        return self.head(self.head.node_terms(g, self.encoder(g, view)), pairs)

    @property
    def tables(self) -> int:
        return self.encoder.inputs.model_id.size(0)


@dataclass
class Folds:
    """Each score edge's fold: ``0 .. K-1``, or ``K`` for a validation cell."""

    fold: Tensor
    k: int

    @classmethod
    def draw(cls, n: int, k: int, val_fraction: float, generator: torch.Generator) -> "Folds":
        perm = torch.randperm(n, generator=generator)
        n_val = min(int(round(val_fraction * n)), MAX_VALIDATION) if n >= 10 else 0
        fold = torch.empty(n, dtype=torch.long)
        fold[perm[:n_val]] = k
        fold[perm[n_val:]] = torch.arange(n - n_val) % k
        return cls(fold, k)

    @property
    def validation(self) -> Tensor:
        return torch.nonzero(self.fold == self.k).squeeze(1)

    def view(self, f: int) -> GraphView:
        """How a cell of fold ``f`` is predicted (see the module docstring)."""
        return GraphView(edges=(self.fold != f).float(), table=None if f == self.k else f)


class EarlyStopping:
    """Which epoch's weights to keep, and when to stop, from the validation losses.

    An epoch's weights are kept when its loss is the lowest so far. Training
    stops after ``patience`` epochs in a row whose loss is not below ``1 -
    delta`` times the loss of the last epoch that was (the first epoch is);
    with ``delta`` 0 any lower loss resets the count. With ``train_delta``
    below 1, an epoch whose training loss is below ``1 - train_delta`` times
    that of the last epoch that was (the first epoch is) resets the count
    too: the network is still learning, as on a plateau of the validation
    loss that it leaves later (1: only the validation loss counts).
    """

    def __init__(self, patience: int, delta: float = 0.0, train_delta: float = 1.0):
        self.patience, self.delta, self.train_delta = patience, delta, train_delta
        self.best = self.mark = self.train_mark = float("inf")
        self.waited = 0

    def update(self, loss: float, train_loss: float = float("nan")) -> tuple[bool, bool, bool]:
        """Record one epoch's losses; returns (keep its weights, stop now, still learning)."""
        lowest = loss < self.best - 1e-7
        if lowest:
            self.best = loss
        learning = self.train_delta < 1 and train_loss < self.train_mark * (1.0 - self.train_delta)
        if learning:
            self.train_mark = train_loss
        if loss < self.mark * (1.0 - self.delta) - 1e-7:
            self.mark, self.waited = loss, 0
        elif learning:
            self.waited = 0
        else:
            self.waited += 1
        return lowest, self.waited >= self.patience, learning


def fit_network(net: Network, g: GraphTensors, *, lr: float, weight_decay: float, epochs: int,
                patience: int, val_fraction: float, supervision_fraction: float,
                id_dropout: float, batch_size: int, generator: torch.Generator,
                lr_patience: int, id_lr_scale: float, stop_delta: float = 0.0,
                train_delta: float = 1.0,
                callback: Callable[[dict], None] | None = None) -> tuple[list[dict], Folds]:
    """Train ``net`` on the score edges of ``g``; keep the best validation weights.

    The learning rate (``lr``, times ``id_lr_scale`` for the ID vectors) rises
    over :data:`WARMUP` epochs, then halves after every ``lr_patience`` epochs
    without a lower validation loss; training stops after ``patience`` epochs
    in which the validation loss did not fall below ``1 - stop_delta`` times
    its value at the last such fall (0: any fall counts). An epoch whose
    training loss fell below ``1 - train_delta`` times its value at the last
    such fall restarts both counts (:class:`EarlyStopping`). The weights of the
    epoch with the lowest validation loss are kept.

    Returns the training log (one dict per epoch of ``K`` steps, with
    ``epoch``, ``train_loss``, ``val_loss`` (MSE on the normalized scale) and
    ``seconds``) and the folds.
    """
    k = net.tables
    folds = Folds.draw(g.num_scores, k, val_fraction, generator)
    fold, y = folds.fold, g.score
    pairs_all = torch.stack([g.score_model, g.score_task])
    val = folds.validation
    val_view = folds.view(k)
    ids = [p for n, p in net.named_parameters() if n.endswith("_id")]
    rest = [p for n, p in net.named_parameters() if not n.endswith("_id")]
    # foreach: one multi-tensor update per step (the same numbers as the per-tensor
    # loop, which torch picks on CPU and which costs a fifth of a small fit)
    opt = torch.optim.Adam([{"params": rest, "weight_decay": weight_decay},
                            {"params": ids, "weight_decay": 0.0, "lr": lr * id_lr_scale}],
                           lr=lr, foreach=True)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=lr_patience)
    warm = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / (WARMUP * k)))
    stopping, best_state, log = EarlyStopping(patience, stop_delta, train_delta), None, []
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        net.train()
        losses = []
        for table in torch.randperm(k, generator=generator).tolist():
            if not ((fold != table) & (fold != k)).any():
                continue  # fewer training cells than folds
            view, sup = _episode(g, fold, table, k, supervision_fraction=supervision_fraction,
                                 id_dropout=id_dropout, batch_size=batch_size, generator=generator)
            opt.zero_grad()
            loss = nn.functional.mse_loss(net(g, view, pairs_all[:, sup]), y[sup])
            loss.backward()
            opt.step()
            if warm.last_epoch < WARMUP * k:  # afterwards the plateau rule sets the rate
                warm.step()
            losses.append(loss.item())
        train_loss = sum(losses) / len(losses) if losses else float("nan")
        net.eval()
        if len(val):
            with torch.no_grad():
                val_loss = float(nn.functional.mse_loss(net(g, val_view, pairs_all[:, val]), y[val]))
        else:
            val_loss = train_loss
        entry = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                 "seconds": time.perf_counter() - start}
        log.append(entry)
        if callback is not None:
            callback(entry)
        lowest, stop, learning = stopping.update(val_loss, train_loss)
        if learning:  # the scheduler's cooldown: this epoch neither counts nor lowers the rate
            plateau.cooldown_counter = max(plateau.cooldown_counter, 1)
        plateau.step(val_loss)
        if lowest:
            best_state = copy.deepcopy(net.state_dict())
        if stop:
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    return log, folds


def _episode(g: GraphTensors, fold: Tensor, table: int, k: int, *, supervision_fraction: float,
             id_dropout: float, batch_size: int,
             generator: torch.Generator) -> tuple[GraphView, Tensor]:
    """One training step's view of the graph and its supervised cells (see the module docstring)."""
    usable = (fold != table) & (fold != k)
    share = min(supervision_fraction, batch_size / max(int(usable.sum()), 1))
    coin = torch.rand(g.num_scores, generator=generator)
    chosen = usable & (coin < share)
    if not chosen.any():
        chosen = usable & (coin <= coin[usable].min())
    sup = torch.nonzero(chosen).squeeze(1)
    edges = (usable & ~chosen).float()
    keep_m = (torch.rand(g.num_models, generator=generator) >= id_dropout).float()
    if id_dropout > 0:
        # Cold-node episodes: a model without its ID keeps 0 to COLD_EDGES of its score edges.
        deg = torch.zeros(g.num_models).index_add_(0, g.score_model, edges)
        want = torch.randint(0, COLD_EDGES + 1, (g.num_models,), generator=generator)
        q = (want / deg.clamp_min(1.0)).clamp(max=1.0)
        coin = torch.rand(g.num_scores, generator=generator)
        cut = ((keep_m.index_select(0, g.score_model) == 0)
               & (coin >= q.index_select(0, g.score_model)))
        edges = edges * (~cut).float()
    return GraphView(edges=edges, keep_model=keep_m, table=table), sup


def predict_pairs(net: Network, g: GraphTensors, pairs: Tensor,
                  view: GraphView | None = None) -> Tensor:
    """Scores of ``pairs`` (``[2, P]``) in eval mode; default view: every edge, the mean table."""
    net.eval()
    with torch.no_grad():
        return net(g, view or GraphView(), pairs)


def predict_observed(net: Network, g: GraphTensors, folds: Folds, edges: Tensor,
                     drop: Tensor | None = None) -> Tensor:
    """Leak-free predictions of score edges ``edges`` (indices): each by the view of its fold.

    ``drop`` (a boolean mask over the score edges) takes further edges out of
    every view, e.g. other held-out cells.
    """
    out = torch.empty(len(edges))
    pairs = torch.stack([g.score_model[edges], g.score_task[edges]])
    edge_fold = folds.fold[edges]
    for f in range(folds.k + 1):
        sel = edge_fold == f
        if sel.any():
            view = folds.view(f)
            if drop is not None:
                view.edges = view.edges * (~drop).float()
            out[sel] = predict_pairs(net, g, pairs[:, sel], view)
    return out


def score_matrix(g: GraphTensors) -> np.ndarray:
    """The dense ``[models, tasks]`` normalized scores of the score edges (NaN where unknown)."""
    y = np.full((g.num_models, g.num_tasks), np.nan)
    y[g.score_model.numpy(), g.score_task.numpy()] = g.score.numpy()
    return y


def observed_matrix(net: Network, g: GraphTensors, folds: Folds) -> tuple:
    """Dense ``[models, tasks]`` arrays of the score edges: normalized scores
    (:func:`score_matrix`), folds (-1 where unknown) and leak-free predictions
    (:func:`predict_observed`)."""
    shape = (g.num_models, g.num_tasks)
    m, t = g.score_model.numpy(), g.score_task.numpy()
    fold, pred = np.full(shape, -1), np.full(shape, np.nan)
    fold[m, t] = folds.fold.numpy()
    pred[m, t] = predict_observed(net, g, folds, torch.arange(g.num_scores)).numpy()
    return score_matrix(g), fold, pred


def predict_cells(net: Network, g: GraphTensors, folds: Folds, rows: np.ndarray,
                  cols: np.ndarray, edge: np.ndarray) -> np.ndarray:
    """The network's normalized predictions of cells ``(rows, cols)``: a cell without a
    score edge (``edge < 0``) by :func:`predict_pairs`, one with score edge ``edge`` by
    its fold's view (:func:`predict_observed`)."""
    out = np.empty(len(rows))
    free = edge < 0
    if free.any():
        out[free] = predict_pairs(net, g, torch.from_numpy(np.stack([rows[free], cols[free]]))).numpy()
    if (~free).any():
        out[~free] = predict_observed(net, g, folds, torch.from_numpy(edge[~free])).numpy()
    return out


#: Adam's learning rate when :func:`fold_in` fits new nodes' ID vectors.
FOLD_IN_LR = 0.05


def fold_in(net: Network, g: GraphTensors, view: GraphView, kind: str, n_new: int,
            pairs: Tensor, targets: Tensor, *, steps: int, penalty: float) -> Tensor:
    """ID vectors ``[n_new, hidden]`` of the new models (or tasks), the last ``n_new``
    rows of their type in ``g``, fitted to their known normalized scores ``targets``
    of ``pairs``: ``steps`` Adam steps on the squared errors plus ``penalty`` times
    each vector's squared norm, every weight of ``net`` frozen (eval mode, ``view``).
    Zero vectors with no steps or no targets."""
    hidden = net.encoder.inputs.model_id.size(-1)
    ids = torch.zeros(n_new, hidden, requires_grad=True)
    if steps < 1 or len(targets) == 0:
        return ids.detach()
    opt = torch.optim.Adam([ids], lr=FOLD_IN_LR)
    net.eval()
    frozen = [p for p in net.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        for _ in range(steps):
            opt.zero_grad()
            pred = net(g, view.with_new_ids(kind, ids), pairs)
            loss = ((pred - targets) ** 2).sum() + penalty * (ids ** 2).sum()
            loss.backward()
            opt.step()
    finally:
        for p in frozen:
            p.requires_grad_(True)
    return ids.detach()


#: What :func:`node_embeddings` can return (the default first).
EMBEDDING_LAYERS = ("head", "encoder")


def node_embeddings(net: Network, g: GraphTensors, layer: str = "head",
                    view: GraphView | None = None) -> dict[str, np.ndarray]:
    """Float64 node embeddings of every node type (eval mode; default view: every score
    edge, the mean ID table). ``"head"``: each node's vector in the scoring head's first
    layer (:meth:`~cppgraph.nn.ScoreHead.node_vectors`); ``"encoder"``: the encoder's
    output."""
    if layer not in EMBEDDING_LAYERS:
        raise CppGraphError(f"layer must be one of {', '.join(EMBEDDING_LAYERS)}; got {layer!r}")
    net.eval()
    with torch.no_grad():
        h = net.encoder(g, view or GraphView())
        if layer == "head":
            h = net.head.node_vectors(g, h)
    return {kind: h[kind].detach().numpy().astype(np.float64) for kind in ("model", "task", "factor")}
