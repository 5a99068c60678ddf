"""Measure the engine on randomly held-out cells (5% by default), over several seeds.

For each seed, ``--test-size`` of the observed cells are held out
(:func:`cppgraph.evaluate.split_random`), the engine is fitted on the rest and
predicts them. Errors are on the per-task min-max scale of the training cells
(the engine's default unit). ``--set KEY=VALUE`` overrides configuration keys
(repeatable), e.g. to compare score-shaping choices.

Example::

    python tools/holdout_check.py ../shared/data/cpp_llm --format cpp-llm --encoder sage
    python tools/holdout_check.py data/demo --set score_levels=1
"""

from __future__ import annotations

import argparse
import json
import warnings

import numpy as np
import pandas as pd

from cppgraph.data import read_data
from cppgraph.estimator import CPPGraph
from cppgraph.evaluate import error_metrics, split_random


def holdout_errors(data, *, seeds, test_size: float = 0.05, **config) -> pd.DataFrame:
    """One row per seed: ``cells``, ``mae_norm``, ``mse_norm``, ``fit_seconds``, ``epochs``."""
    rows = []
    for seed in seeds:
        train, test = split_random(data, test_size, seed)
        est = CPPGraph(random_state=seed, **config).fit(train)
        pred = est.predict(test[["model", "task"]])
        y = est.normalizer_.transform(test["task"], test["score"])
        errors = error_metrics(y, pred["predicted_normalized"])
        rows.append({"seed": seed, "cells": len(test), "mae_norm": errors["mae"],
                     "mse_norm": errors["mse"], "fit_seconds": est.fit_seconds_,
                     "epochs": len(est.log_)})
    return pd.DataFrame(rows)


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="data source (a canonical folder by default)")
    parser.add_argument("--format", default="canonical", help="reader format of DATA")
    parser.add_argument("--encoder", default="lightgcn", choices=["lightgcn", "sage"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--test-size", type=float, default=0.05)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a configuration key")
    args = parser.parse_args(argv)
    config = {"encoder": args.encoder}
    for item in args.set:
        key, _, value = item.partition("=")
        config[key] = _value(value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = read_data(args.data, args.format)
        table = holdout_errors(data, seeds=args.seeds, test_size=args.test_size, **config)
    print(f"{data!r}, {args.test_size:.0%} held out, seeds {args.seeds}, {config}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    agg = table[["mae_norm", "mse_norm", "fit_seconds"]].agg(["mean", "std"])
    print(agg.to_string(float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
