"""Measure cold start: how well held-out models are predicted from factors and k known scores.

For each seed, ``--held`` models are removed from the data, the engine is fitted
on the rest, and each held-out model is predicted from its factors plus its
first k observed scores (k from ``--known``). The error is the mean absolute
error on the normalized scale over the held-out models' cells that are not
among the first ``max(--known)`` scores (the same cells for every k).

Example::

    python tools/cold_start_check.py data/demo --encoder lightgcn --seeds 0 1 2
    python tools/cold_start_check.py ../shared/data/cpp_llm --format cpp-llm
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import pandas as pd

from cppgraph.data import read_data
from cppgraph.estimator import CPPGraph


def cold_start_errors(data, *, encoder: str, seeds, held: int, known) -> pd.DataFrame:
    """One row per (seed, k): normalized MAE on the held-out models' remaining cells."""
    rows = []
    k_max = max(known)
    for seed in seeds:
        rng = np.random.default_rng(seed)
        out = list(rng.choice(data.models, size=held, replace=False))
        train = data.subset(models=[m for m in data.models if m not in out])
        est = CPPGraph(encoder=encoder, random_state=seed).fit(train)
        factors = data.model_factors.loc[out].reset_index()
        truth = data.scores[data.scores["model"].isin(out)]
        rest = truth.drop(truth.groupby("model").head(k_max).index)
        for k in known:
            given = truth.groupby("model").head(k) if k else None
            pred = est.predict_new_models(factors, given)
            merged = rest.merge(pred, on=["model", "task"])
            y = est.normalizer_.transform(merged["task"], merged["score"])
            rows.append({"seed": seed, "k": k, "cells": len(merged),
                         "mae_norm": float(np.abs(merged["predicted_normalized"] - y).mean())})
    return pd.DataFrame(rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="data source (a canonical folder by default)")
    parser.add_argument("--format", default="canonical", help="reader format of DATA")
    parser.add_argument("--encoder", default="lightgcn", choices=["lightgcn", "sage"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--held", type=int, default=6, help="models held out per seed")
    parser.add_argument("--known", type=int, nargs="+", default=[0, 1, 3])
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = read_data(args.data, args.format)
        table = cold_start_errors(data, encoder=args.encoder, seeds=args.seeds, held=args.held,
                                  known=args.known)
    summary = table.groupby("k")["mae_norm"].agg(["mean", "std"])
    print(f"{data!r}, encoder {args.encoder}, seeds {args.seeds}, {args.held} held-out models")
    print(summary.to_string(float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
