"""The engine as an evaluated method, and the registry of every method by name."""

from __future__ import annotations

import copy
import warnings
from typing import Callable

import numpy as np
import pandas as pd

from cppgraph.config import AFTER_FIT, Config
from cppgraph.data.dataset import CollabData
from cppgraph.errors import DataError, DataWarning
from cppgraph.estimator import CPPGraph
from cppgraph.evaluate import baselines, paper_methods
from cppgraph.evaluate.base import Method
from cppgraph.evaluate.metrics import INTERVAL_LEVEL
from cppgraph.evaluate.splits import Split
from cppgraph.normalize import Normalizer


class FittedEngines:
    """Fitted engines by (training data, configuration), for evaluations that fit the
    same configuration on the same training data several times: the cold-model runs
    that differ only in how many and which known scores the held-out models keep
    (``tools/interval_benchmark.py``). A fit is deterministic (the same data,
    configuration and seed give the same engine) and prediction does not change an
    engine, so a reused engine predicts exactly what a new fit would."""

    def __init__(self):
        self.engines: list[CPPGraph] = []

    @property
    def fits(self) -> int:
        return len(self.engines)

    def get(self, est: CPPGraph, data: CollabData) -> CPPGraph:
        """``est`` fitted on ``data``, or the engine fitted on the same data
        (:meth:`CollabData.equals`) before with a configuration that differs at most in
        keys that act after the fit (:data:`~cppgraph.config.AFTER_FIT`), carrying
        ``est``'s configuration."""
        def fitted(config: Config) -> dict:
            return {k: v for k, v in config.to_dict().items() if k not in AFTER_FIT}

        for engine in self.engines:
            if fitted(engine.config) == fitted(est.config) and engine.data_.equals(data):
                if engine.config == est.config:
                    return engine
                shared = copy.copy(engine)  # the same fitted parts, est's after-fit keys
                shared.config = est.config
                shared.fit_config_ = engine.fit_config_.replace(
                    **{k: getattr(est.config, k) for k in AFTER_FIT})
                return shared
        self.engines.append(est.fit(data))
        return est


class CPPGraphMethod(Method):
    """The cppgraph engine: fit on the training data, then predict the test cells.

    In-matrix cells use :meth:`CPPGraph.predict`; new models and tasks use the
    cold-start path (:meth:`CPPGraph.predict_new_models` /
    :meth:`~CPPGraph.predict_new_tasks`) with their known scores. The engine
    always works on its own configured normalization, fitted on the training
    cells, whatever scale the evaluation reports in.

    Parameters
    ----------
    name : str
    ensemble : int
        Number of seeds whose raw predictions are averaged; ``spread_`` then
        holds the standard deviation over them, per test cell. An ensemble
        gives no intervals.
    config : Config, optional
        Defaults to the built-in defaults; ``overrides`` replace single keys.
    engines : FittedEngines, optional
        Reuse an engine fitted before on the same training data.
    """

    def __init__(self, name: str = "cppgraph", *, ensemble: int = 1, config: Config | None = None,
                 engines: FittedEngines | None = None, **overrides):
        self.name, self.ensemble, self.config, self.overrides = name, ensemble, config, overrides
        self.engines = engines

    def fit_predict(self, split: Split, *, seed: int, norm: Normalizer | None = None) -> np.ndarray:
        runs = []
        for member in range(self.ensemble):
            overrides = {**self.overrides, "random_state": seed * 1000 + member}
            if self.ensemble > 1:  # the members' intervals are not those of their mean
                overrides["intervals"] = False
            est = CPPGraph(self.config, **overrides)
            est = est.fit(split.train) if self.engines is None else self.engines.get(est, split.train)
            runs.append(_engine_predictions(est, split, INTERVAL_LEVEL if est.config.intervals
                                            else None))
        runs = np.stack(runs)  # [members, columns, cells]
        self.spread_ = runs[:, 0].std(axis=0)
        self.intervals_ = tuple(runs[:, 1:].mean(axis=0)) if runs.shape[1] == 3 else None
        return runs[:, 0].mean(axis=0)


def _engine_predictions(est: CPPGraph, split: Split, interval: float | None = None) -> np.ndarray:
    """``[1 or 3, cells]``: raw predictions of the test cells, and with ``interval`` the
    interval's lower and upper ends."""
    test = split.test[["model", "task"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # unseen factor values, unknown raw scale
        if split.kind is None:
            table = est.predict(test, interval=interval)
        elif split.kind == "model":
            table = est.predict_new_models(split.new_models.rename_axis("model").reset_index(),
                                           split.known, interval=interval)
        else:
            table = est.predict_new_tasks(split.new_tasks.rename_axis("task").reset_index(),
                                          split.known, interval=interval,
                                          task_info=split.new_task_info.rename_axis("task").reset_index())
    cols = ["predicted"] if interval is None else ["predicted", "lower", "upper"]
    table = table.set_index(["model", "task"])[cols].reindex(pd.MultiIndex.from_frame(test))
    return table.to_numpy(dtype=np.float64).T


#: Method name -> factory, in the order tables list them.
METHODS: dict[str, Callable[[], Method]] = {
    "task-mean": baselines.TaskMean,
    "task-model-offset": baselines.TaskModelOffset,
    "soft-impute": baselines.SoftImpute,
    "svd": baselines.TruncatedSVD,
    "knn-models": baselines.KNNModels,
    "benchmark-ridge": baselines.BenchmarkRidge,
    "benchmark-ridge-logit": lambda: baselines.BenchmarkRidge(logit=True),
    "scaling-law": baselines.ScalingLaw,
    "obs-scaling": baselines.ObservationalScaling,
    "mf": paper_methods.MF,
    "ncf": paper_methods.NCF,
    "ncf-factors": paper_methods.NCFFactors,
    "factors-only": paper_methods.FactorsOnly,
    "cppgraph": lambda: CPPGraphMethod("cppgraph"),
    "cppgraph-lightgcn": lambda: CPPGraphMethod("cppgraph-lightgcn", encoder="lightgcn"),
    "cppgraph-sage": lambda: CPPGraphMethod("cppgraph-sage", encoder="sage"),
    "cppgraph-ensemble": lambda: CPPGraphMethod("cppgraph-ensemble", ensemble=5),
}


def make_methods(names, *, n_jobs: int | None = None,
                 config: Config | None = None) -> list[Method]:
    """Methods by name; ``"all"`` stands for every method of :data:`METHODS`.

    ``n_jobs`` sets the engine's threads (``Config.n_jobs``) in the cppgraph methods;
    ``config`` replaces their built-in defaults (their own overrides, such as the
    encoder of ``cppgraph-lightgcn``, still apply).
    """
    names = [n for name in names for n in (METHODS if name == "all" else [name])]
    out, seen = [], set()
    for name in names:
        if name not in METHODS:
            raise DataError(f"unknown method {name!r}; expected 'all' or some of {list(METHODS)}")
        if name not in seen:
            seen.add(name)
            method = METHODS[name]()
            method.name = name
            if config is not None and isinstance(method, CPPGraphMethod):
                method.config = config
            if n_jobs is not None and isinstance(method, CPPGraphMethod):
                method.overrides = {**method.overrides, "n_jobs": n_jobs}
            out.append(method)
    return out
