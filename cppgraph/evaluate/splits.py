"""Seeded train/test splits of a :class:`CollabData`, one function per protocol.

Every protocol returns a :class:`Split`: the training data (only what a
method may learn from), the held-out cells to predict, and, for the cold-start
protocols, the held-out models or tasks (their factors, and ``k`` known scores
each). No test cell is in the training data or among the known scores.

==============  =============================================================
protocol        held out
==============  =============================================================
random          a share of the observed cells, uniformly
cold-model      a share of the models: all their cells but ``k`` known ones
cold-family     whole families (drawn until a share of the models is out)
scale-up        the largest model of each family with 3+ sizes
cold-task       a share of the tasks: all their cells but ``k`` known ones
frontier        the share of the models with the highest mean normalized score:
                all their cells but ``k`` known ones (models better than any seen)
==============  =============================================================
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from cppgraph.data.dataset import CollabData, removable_cells, suggest
from cppgraph.errors import DataError
from cppgraph.normalize import make_normalizer

PROTOCOLS = ("random", "cold-model", "cold-family", "scale-up", "cold-task", "frontier")
#: How ``cold-model`` chooses the known scores of a held-out model.
CHOICES = ("random", "popular", "suggest")
#: Protocols that keep ``k`` known scores of each held-out model or task.
KNOWN_PROTOCOLS = ("cold-model", "cold-task", "frontier")


@dataclass(frozen=True, eq=False)
class Split:
    """One train/test split.

    Attributes
    ----------
    protocol : str
    seed : int
    train : CollabData
        The in-matrix models and tasks with their training scores. Held-out
        (new) models and tasks are not in it.
    test : DataFrame
        ``model, task, score`` (raw) cells to predict.
    new_models, new_tasks : DataFrame
        Factor tables (indexed by name) of the held-out models / tasks;
        empty unless the protocol holds out whole entities.
    new_task_info : DataFrame
        ``tasks.csv`` metadata of the new tasks (direction, declared range, unit).
    known : DataFrame
        ``model, task, score`` cells of the new entities that a method may use.
    rank_by : {"task", "model"}
        Cells are ranked within groups of this column for the rank metrics.
    """

    protocol: str
    seed: int
    train: CollabData
    test: pd.DataFrame
    new_models: pd.DataFrame = field(default_factory=pd.DataFrame)
    new_tasks: pd.DataFrame = field(default_factory=pd.DataFrame)
    new_task_info: pd.DataFrame = field(default_factory=pd.DataFrame)
    known: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["model", "task", "score"]))
    rank_by: str = "task"

    @property
    def kind(self) -> str | None:
        """``"model"`` or ``"task"`` when whole entities are held out, else None."""
        if len(self.new_models):
            return "model"
        if len(self.new_tasks):
            return "task"
        return None

    def __repr__(self) -> str:
        new = f", {len(self.new_models)} new models" if len(self.new_models) else ""
        new += f", {len(self.new_tasks)} new tasks" if len(self.new_tasks) else ""
        return (f"Split({self.protocol!r}, seed={self.seed}, {len(self.train.scores)} training "
                f"cells, {len(self.test)} test cells{new}, {len(self.known)} known)")


def _check_share(value: float, what: str = "test size") -> None:
    if not 0 < value < 1:
        raise DataError(f"{what} must be in (0, 1); got {value}")


def split_random(data: CollabData, test_size: float, seed: int) -> tuple[CollabData, pd.DataFrame]:
    """Hold out a random share of the observed cells.

    The held-out cells are drawn uniformly (seeded), then any cell whose
    removal would leave its task with fewer than 2 training scores, or its
    model with none, is put back, so every held-out cell stays predictable.

    Returns
    -------
    (CollabData, DataFrame)
        The training data (same models, tasks and factors; fewer scores) and
        the held-out ``model, task, score`` rows.
    """
    _check_share(test_size)
    scores = data.scores
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(scores))[: int(round(test_size * len(scores)))]
    held = np.sort(np.asarray(removable_cells(scores, order), dtype=np.int64))
    return data.without(cells=held), scores.iloc[held].reset_index(drop=True)


def _hold_out_entities(data: CollabData, kind: str, chosen: list[str], known: int,
                       rng: np.random.Generator, protocol: str, seed: int,
                       pick: Callable | None = None) -> Split:
    """A split that removes the ``chosen`` models or tasks, keeping ``known`` cells of each:
    drawn at random, or ``pick(name, own cells, n)`` (the row labels of ``n`` of them)."""
    s = data.scores
    cells = s[s[kind].isin(chosen)]
    keep = []
    for name in chosen:
        own = cells.index[cells[kind] == name].to_numpy()
        n = min(known, len(own) - 1)
        picked = (rng.choice(own, size=n, replace=False) if pick is None
                  else pick(name, cells.loc[own], n))
        keep += sorted(np.asarray(picked, dtype=np.int64).tolist())
    known_cells = s.loc[keep].reset_index(drop=True)
    test = cells.drop(index=keep).reset_index(drop=True)
    train = data.without(models=chosen) if kind == "model" else data.without(tasks=chosen)
    new_models = data.model_factors.loc[chosen] if kind == "model" else pd.DataFrame()
    new_tasks = data.task_factors.loc[chosen] if kind == "task" else pd.DataFrame()
    info = data.task_info.loc[chosen] if kind == "task" else pd.DataFrame()
    return Split(protocol, seed, train, test, new_models=new_models, new_tasks=new_tasks,
                 new_task_info=info, known=known_cells, rank_by=kind)


def _removable(data: CollabData, kind: str, order, n_target: int, known: int) -> list[str]:
    """Take names from ``order`` while every remaining task keeps 2+ training scores.

    A model (task) is eligible only with more than ``known`` scores, so at
    least one of its cells is left to test.
    """
    s = data.scores
    counts = s.groupby(kind).size()
    left = s.groupby("task").size().astype(int).to_dict()
    chosen = []
    for name in order:
        if len(chosen) >= n_target:
            break
        if counts.get(name, 0) <= known:
            continue
        if kind == "model":
            tasks = s.loc[s["model"] == name, "task"]
            if any(left[t] - 1 < 2 for t in tasks):
                continue
            for t in tasks:
                left[t] -= 1
        chosen.append(name)
    return chosen


def split_cold_model(data: CollabData, test_size: float, seed: int, *, known: int = 0,
                     models=None, choose: str = "random", config=None, engines=None) -> Split:
    """Hold out a share of the models (or the given ones), keeping ``known`` scores of each.

    Models are drawn at random (seeded) among those with more than ``known``
    scores whose removal leaves every task 2+ training scores; at least one
    is held out. The ``known`` kept cells (among each model's scored tasks)
    are chosen by ``choose`` (:data:`CHOICES`): ``random`` draws them;
    ``popular`` takes the tasks with the most training scores; ``suggest``
    takes those :func:`cppgraph.suggest.suggest` proposes, in its order,
    from the engine fitted on the training part (``config``, a
    :class:`~cppgraph.config.Config`, default the built-in one; seeded with
    ``seed``), which sees the model's factors but none of its scores; its
    targets are the model's scored tasks, the ones the protocol scores.
    ``engines`` (:class:`~cppgraph.evaluate.methods.FittedEngines`) reuses that
    engine when the same training part was fitted before (e.g. for another ``known``).
    """
    if known < 0:
        raise DataError(f"known must be 0 or more; got {known}")
    if choose not in CHOICES:
        raise DataError(f"unknown choice {choose!r}; expected one of {list(CHOICES)}")
    rng = np.random.default_rng(seed)
    if models is None:
        _check_share(test_size)
        n = max(1, int(round(test_size * len(data.models))))
        chosen = _removable(data, "model", rng.permutation(data.models).tolist(), n, known)
    else:
        chosen = _checked_names(models, data.models, "model")
    if not chosen:
        raise DataError(f"no model has more than {known} scores and can be held out")
    pick = (None if choose == "random" or known == 0
            else _picker(data, chosen, choose, seed, known, config, engines))
    return _hold_out_entities(data, "model", chosen, known, rng, "cold-model", seed, pick)


def _picker(data: CollabData, chosen: list[str], choose: str, seed: int,
            known: int, config=None, engines=None) -> Callable:
    """``pick(model, its cells, n)`` for :func:`_hold_out_entities` (see :func:`split_cold_model`)."""
    train = data.without(models=chosen)
    if choose == "popular":
        count = train.scores.groupby("task").size()

        def popular(name, cells, n):
            order = cells.assign(c=count.reindex(cells["task"]).fillna(0).to_numpy())
            return order.sort_values("c", ascending=False, kind="stable").index[:n]
        return popular
    from cppgraph.estimator import CPPGraph  # torch: only for this choice
    from cppgraph.suggest import suggest as suggest_tasks

    est = CPPGraph(config, random_state=seed)
    est = est.fit(train) if engines is None else engines.get(est, train)
    s = data.scores
    # One plan for every held-out model (each has more than ``known`` scores to choose from).
    scored = {m: s.loc[s["model"] == m, "task"].tolist() for m in chosen}
    plan = suggest_tasks(est, known, model_factors=data.model_factors.loc[chosen]
                         .rename_axis("model").reset_index(),
                         candidates=scored, targets=scored)

    def suggested(name, cells, n):
        tasks = plan.loc[plan["model"] == name, "task"].iloc[:n]
        return pd.Series(cells.index, index=cells["task"]).reindex(tasks).to_numpy()
    return suggested


def split_frontier(data: CollabData, test_size: float, seed: int, *, known: int = 0) -> Split:
    """Hold out the best models: the share ``test_size`` with the highest mean normalized
    score, keeping ``known`` scores of each (drawn at random, seeded).

    A model's mean is over its observed cells on the per-task min-max scale of
    all cells (higher is better on every task). Models are taken from the
    best down, skipping those :func:`split_cold_model` could not hold out
    either (too few scores, or a task left with fewer than 2).
    """
    if known < 0:
        raise DataError(f"known must be 0 or more; got {known}")
    _check_share(test_size)
    s = data.scores
    normalized = make_normalizer("minmax").fit(data).transform(s["task"], s["score"])
    mean = pd.Series(normalized, index=s.index).groupby(s["model"]).mean()
    order = mean.sort_values(ascending=False, kind="stable").index.tolist()
    n = max(1, int(round(test_size * len(data.models))))
    chosen = _removable(data, "model", order, n, known)
    if not chosen:
        raise DataError(f"no model has more than {known} scores and can be held out")
    rng = np.random.default_rng(seed)
    return _hold_out_entities(data, "model", chosen, known, rng, "frontier", seed)


def _checked_names(names, known_names, what) -> list[str]:
    names = [str(n) for n in names]
    valid = set(known_names)
    for name in names:
        if name not in valid:
            close = suggest(name, known_names)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise DataError(f"unknown {what} {name!r}{hint}")
    return names


def _family(data: CollabData) -> pd.Series:
    if "family" not in data.model_factors.columns:
        raise DataError("this protocol needs a 'family' model factor; the data set has none "
                        f"(model factors: {list(data.model_factors.columns)})")
    return data.model_factors["family"]


def split_cold_family(data: CollabData, test_size: float, seed: int) -> Split:
    """Hold out whole model families, drawn at random until ``test_size`` of the models are out.

    Families are taken whole or not at all (skipped if removing them would
    leave a task fewer than 2 training scores); models without a family are
    never held out.
    """
    _check_share(test_size)
    family = _family(data)
    rng = np.random.default_rng(seed)
    families = sorted(family.dropna().unique())
    target = max(1, int(round(test_size * len(data.models))))
    s = data.scores
    left = s.groupby("task").size().astype(int)
    chosen = []
    for fam in rng.permutation(families):
        if len(chosen) >= target:
            break
        members = list(family.index[family == fam])
        lost = s[s["model"].isin(members)].groupby("task").size()
        after = left.sub(lost, fill_value=0)
        if (after[lost.index] < 2).any():
            continue
        left = after.astype(int)
        chosen += members
    if not chosen:
        raise DataError("no family can be held out without leaving a task with fewer than 2 scores")
    return dataclasses.replace(_hold_out_entities(data, "model", chosen, 0, rng, "cold-family", seed),
                               rank_by="task")


def split_scale_up(data: CollabData, seed: int = 0, *, min_sizes: int = 3) -> Split:
    """Hide the largest model of every family with ``min_sizes`` or more distinct sizes.

    Sizes are the ``params_b`` factor. The split itself is fixed; ``seed``
    only labels it (methods use it for their own randomness).
    """
    family = _family(data)
    if "params_b" not in data.model_factors.columns:
        raise DataError("the scale-up protocol needs a 'params_b' model factor")
    size = data.model_factors["params_b"]
    scored = set(data.scores["model"])
    chosen = []
    for fam, members in family.dropna().groupby(family.dropna()):
        sizes = size[[m for m in members.index if m in scored]].dropna()
        if sizes.nunique() >= min_sizes:
            chosen.append(sizes.idxmax())
    if not chosen:
        raise DataError(f"no family has {min_sizes} or more model sizes (params_b)")
    chosen = _removable(data, "model", chosen, len(chosen), 0)
    rng = np.random.default_rng(seed)
    return _hold_out_entities(data, "model", chosen, 0, rng, "scale-up", seed)


def split_cold_task(data: CollabData, test_size: float, seed: int, *, known: int = 0,
                    tasks=None) -> Split:
    """Hold out a share of the tasks (or the given ones), keeping ``known`` scores of each.

    At least one task is held out and at least one task stays in training.
    Cells are ranked within each held-out task (``rank_by="task"``).
    """
    if known < 0:
        raise DataError(f"known must be 0 or more; got {known}")
    rng = np.random.default_rng(seed)
    if tasks is None:
        _check_share(test_size)
        n = min(len(data.tasks) - 1, max(1, int(round(test_size * len(data.tasks)))))
        chosen = _removable(data, "task", rng.permutation(data.tasks).tolist(), n, known)
    else:
        chosen = _checked_names(tasks, data.tasks, "task")
    if not chosen or len(chosen) >= len(data.tasks):
        raise DataError("cannot hold out these tasks: at least one task must stay in training "
                        f"and each held-out task needs more than {known} scores")
    return dataclasses.replace(_hold_out_entities(data, "task", chosen, known, rng, "cold-task", seed),
                               rank_by="task")


def make_split(data: CollabData, protocol: str, seed: int, *, test_size: float | None = None,
               known: int = 0, choose: str = "random", config=None, engines=None) -> Split:
    """The split of ``protocol`` (one of :data:`PROTOCOLS`) for ``seed``.

    ``test_size`` defaults to 0.05 for ``random`` and 0.1 otherwise (share of
    cells, models or tasks); ``known`` is k for ``cold-model``, ``cold-task``
    and ``frontier``; ``choose`` how ``cold-model`` picks the known scores,
    and ``config`` the engine that suggests them (:func:`split_cold_model`;
    ``engines`` keeps it for reuse).
    """
    if protocol not in PROTOCOLS:
        raise DataError(f"unknown protocol {protocol!r}; expected one of {list(PROTOCOLS)}")
    if known and protocol not in KNOWN_PROTOCOLS:
        raise DataError(f"known scores apply to the {', '.join(KNOWN_PROTOCOLS)} protocols, "
                        f"not {protocol!r}")
    size = test_size if test_size is not None else (0.05 if protocol == "random" else 0.1)
    if protocol == "random":
        train, test = split_random(data, size, seed)
        return Split("random", seed, train, test)
    if choose != "random" and protocol != "cold-model":
        raise DataError(f"choosing the known scores applies to the cold-model protocol, not "
                        f"{protocol!r}")
    if protocol == "cold-model":
        return split_cold_model(data, size, seed, known=known, choose=choose, config=config,
                                engines=engines)
    if protocol == "cold-family":
        return split_cold_family(data, size, seed)
    if protocol == "scale-up":
        return split_scale_up(data, seed)
    if protocol == "frontier":
        return split_frontier(data, size, seed, known=known)
    return split_cold_task(data, size, seed, known=known)
