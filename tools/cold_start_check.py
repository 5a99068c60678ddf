"""Measure cold start: held-out models (or tasks) predicted from factors and k known scores.

For each seed, ``--held`` models (``--entity task``: tasks) are removed from the
data, the engine is fitted on the rest, and each held-out one is predicted from
its factors plus k of its observed scores, for each k of ``--known``. The
known scores are drawn at random (seeded); every k is scored on the same
cells: those not among the first ``max(--known)`` drawn.

Errors are on the per-task min-max scale of the full data set (so that held-out
tasks have one too), from the raw predictions: ``mae_norm`` (NaN for a new task
with no known score, whose raw scale is unknown) and ``spearman``, the rank
correlation of predicted and true scores along each held-out model or task,
averaged. ``--no-correct`` switches off the residual correction of known
scores (``correct_known``), to see what the score edges alone do.

Example::

    python tools/cold_start_check.py data/demo --encoder lightgcn --seeds 0 1 2
    python tools/cold_start_check.py ../shared/data/cpp_llm --format cpp-llm --entity task
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import pandas as pd

from cppgraph.data import read_data
from cppgraph.estimator import CPPGraph
from cppgraph.normalize import make_normalizer


def cold_start_errors(data, *, encoder: str, seeds, held: int, known, entity: str = "model",
                      **config) -> pd.DataFrame:
    """One row per (seed, k): cells scored, ``mae_norm`` and ``spearman``."""
    truth_norm = make_normalizer("minmax").fit(data)
    other = "task" if entity == "model" else "model"
    names = data.models if entity == "model" else data.tasks
    rows = []
    k_max = max(known)
    for seed in seeds:
        rng = np.random.default_rng(seed)
        out = [str(n) for n in rng.choice(names, size=held, replace=False)]
        keep = [n for n in names if n not in out]
        train = data.subset(models=keep) if entity == "model" else data.subset(tasks=keep)
        est = CPPGraph(encoder=encoder, random_state=seed, **config).fit(train)
        truth = data.scores[data.scores[entity].isin(out)]
        truth = truth[truth[other].isin(train.tasks if entity == "model" else train.models)]
        truth = truth.sample(frac=1.0, random_state=seed)
        rest = truth.drop(truth.groupby(entity).head(k_max).index)
        factors = (data.model_factors if entity == "model" else data.task_factors).loc[out]
        for k in known:
            given = truth.groupby(entity).head(k) if k else None
            if entity == "model":
                pred = est.predict_new_models(factors.reset_index(), given)
            else:
                info = data.task_info.loc[out].reset_index()
                pred = est.predict_new_tasks(factors.reset_index(), given, task_info=info)
            merged = rest.merge(pred, on=["model", "task"])
            y = truth_norm.transform(merged["task"], merged["score"])
            p = truth_norm.transform(merged["task"], merged["predicted"])
            rho = [g["score"].corr(g["predicted_normalized"], method="spearman")
                   for _, g in merged.groupby(entity) if len(g) >= 3]
            rows.append({"seed": seed, "k": k, "cells": len(merged),
                         "mae_norm": float(np.abs(p - y).mean()),
                         "spearman": float(np.nanmean(rho)) if rho else float("nan")})
    return pd.DataFrame(rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="data source (a canonical folder by default)")
    parser.add_argument("--format", default="canonical", help="reader format of DATA")
    parser.add_argument("--entity", default="model", choices=["model", "task"],
                        help="hold out models (default) or tasks")
    parser.add_argument("--encoder", default="lightgcn", choices=["lightgcn", "sage"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--held", type=int, default=6, help="models or tasks held out per seed")
    parser.add_argument("--known", type=int, nargs="+", default=[0, 1, 3])
    parser.add_argument("--shrinkage", type=float, default=None,
                        help="known_shrinkage (default: the configuration's)")
    parser.add_argument("--no-correct", action="store_true",
                        help="switch the residual correction of known scores off")
    args = parser.parse_args(argv)
    config = {}
    if args.shrinkage is not None:
        config["known_shrinkage"] = args.shrinkage
    if args.no_correct:
        config["correct_known"] = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = read_data(args.data, args.format)
        table = cold_start_errors(data, encoder=args.encoder, seeds=args.seeds, held=args.held,
                                  known=args.known, entity=args.entity, **config)
    summary = table.groupby("k")[["mae_norm", "spearman"]].agg(["mean", "std"])
    print(f"{data!r}, encoder {args.encoder}, seeds {args.seeds}, {args.held} held-out "
          f"{args.entity}s, {config or 'default configuration'}")
    print(summary.to_string(float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
