"""Run methods over the seeded splits of a protocol and summarize the metrics."""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from cppgraph.data.dataset import CollabData
from cppgraph.errors import DataWarning
from cppgraph.evaluate.base import Method
from cppgraph.evaluate.metrics import METRICS, all_metrics
from cppgraph.evaluate.splits import Split, make_split
from cppgraph.normalize import Normalizer, make_normalizer

logger = logging.getLogger(__name__)

UNITS = ("minmax", "paper")


@dataclass
class Evaluation:
    """What :func:`evaluate` measured.

    Attributes
    ----------
    scores : DataFrame
        One row per (method, seed): the metrics of :data:`METRICS`,
        ``coverage`` (share of test cells with a prediction; the metrics are
        over those), ``cells`` and ``fit_seconds``.
    predictions : DataFrame
        One row per (method, seed, test cell): ``model, task, score,
        predicted`` (raw) and ``score_norm``, ``predicted_norm`` on the
        evaluation's scale.
    """

    scores: pd.DataFrame
    predictions: pd.DataFrame

    def summary(self) -> pd.DataFrame:
        """Mean and standard deviation over seeds: ``method, protocol, metric, mean, std``."""
        return summarize(self.scores)


def unit_normalizer(data: CollabData, unit: str = "minmax") -> Normalizer:
    """The scale metrics are reported on, fitted on every observed cell of ``data``.

    ``minmax``: per-task min-max over all cells (held-out ones included, so
    every method is measured on one fixed scale). ``paper``: the CPP
    reference code's normalization (:class:`cppgraph.normalize.PaperNormalizer`).
    """
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}; got {unit!r}")
    return make_normalizer(unit).fit(data)


def score_split(split: Split, method: Method, *, unit: Normalizer, seed: int,
                working: Normalizer | None = None) -> tuple[dict, pd.DataFrame]:
    """Fit-predict one method on one split; its metrics and per-cell predictions."""
    start = time.perf_counter()
    method.intervals_ = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        pred = np.asarray(method.fit_predict(split, seed=seed, norm=working), dtype=np.float64)
    seconds = time.perf_counter() - start
    test = split.test
    true_norm = unit.transform(test["task"], test["score"].to_numpy(dtype=np.float64),
                               models=test["model"])
    pred_norm = unit.transform(test["task"], pred, models=test["model"])
    has = np.isfinite(pred_norm)
    ends = {}
    if method.intervals_ is not None:
        ends = {f"{end}_norm": unit.transform(test["task"], np.asarray(v, dtype=np.float64),
                                              models=test["model"])
                for end, v in zip(("lower", "upper"), method.intervals_)}
    if not has.all():
        logger.warning("%s: %d of %d test cells have no prediction (unknown raw scale); the "
                       "metrics leave them out and 'coverage' says so", method.name,
                       int((~has).sum()), len(has))
    if has.any():
        metrics = all_metrics(groups=test[split.rank_by].to_numpy()[has], true_norm=true_norm[has],
                              pred_norm=pred_norm[has],
                              true_raw=test["score"].to_numpy(dtype=np.float64)[has],
                              pred_raw=pred[has], **{k: v[has] for k, v in ends.items()})
    else:
        metrics = dict.fromkeys(METRICS, float("nan"))
    metrics["coverage"] = float(has.mean())
    metrics.update(cells=len(test), fit_seconds=seconds)
    cells = test.assign(predicted=pred, score_norm=true_norm, predicted_norm=pred_norm, **ends)
    return metrics, cells


def evaluate(data: CollabData, protocol: str, methods: Iterable[Method], *, seeds: Iterable[int],
             test_size: float | None = None, known: int = 0, choose: str = "random",
             config=None, engines=None, unit: str = "minmax",
             splits: Callable[[int], Split] | None = None,
             progress: Callable[[str], None] | None = None) -> Evaluation:
    """Run every method on the split of each seed.

    Parameters
    ----------
    data : CollabData
    protocol : str
        One of :data:`cppgraph.evaluate.splits.PROTOCOLS` (a label only when
        ``splits`` is given).
    methods : iterable of Method
    seeds : iterable of int
        One split per seed; the seed also seeds the methods.
    test_size, known, choose, config, engines : see :func:`cppgraph.evaluate.splits.make_split`.
    unit : {"minmax", "paper"}
        Scale of the normalized metrics (:func:`unit_normalizer`). With
        ``paper``, the baselines also work on that scale, as the CPP
        reference code does; the engine always works on its own.
    splits : callable, optional
        ``seed -> Split``, replacing the protocol's split (the paper's set-ups).
    progress : callable, optional
        Receives one line per finished (seed, method).
    """
    methods = list(methods)
    norm = unit_normalizer(data, unit)
    working = norm if unit == "paper" else None
    rows, cells = [], []
    for seed in seeds:
        split = splits(seed) if splits is not None else make_split(
            data, protocol, seed, test_size=test_size, known=known, choose=choose, config=config,
            engines=engines)
        for method in methods:
            metrics, pred = score_split(split, method, unit=norm, seed=seed, working=working)
            rows.append({"method": method.name, "protocol": protocol, "seed": seed, **metrics})
            cells.append(pred.assign(method=method.name, seed=seed))
            if progress is not None:
                progress(f"seed {seed}  {method.name:<22} MAE {metrics['mae_norm']:.4f}  "
                         f"({metrics['fit_seconds']:.1f}s, {metrics['cells']} cells)")
    return Evaluation(pd.DataFrame(rows), pd.concat(cells, ignore_index=True))


def summarize(scores: pd.DataFrame) -> pd.DataFrame:
    """Long table ``method, protocol, metric, mean, std, seeds`` (std over seeds, ddof 0;
    ``seeds``: how many seeds gave a value)."""
    metrics = [m for m in (*METRICS, "coverage", "fit_seconds") if m in scores.columns]
    long = scores.melt(id_vars=["method", "protocol", "seed"], value_vars=metrics,
                       var_name="metric", value_name="value")
    out = long.groupby(["method", "protocol", "metric"], sort=False)["value"].agg(
        mean="mean", std=lambda v: float(np.std(v.dropna())) if v.notna().any() else np.nan,
        seeds=lambda v: int(v.notna().sum()))
    return out.reset_index()
