"""Choose engine defaults on validation splits of the training data only (nested).

For each outer seed, the protocol's split is made as in ``cppgraph evaluate``;
its *training* part is split again the same way (inner seed ``1000 + seed``),
and each candidate configuration is fitted on the inner training part and
scored on the inner validation cells. The outer test cells are never read.
Prints the mean normalized MAE (or ``--metric``, on ``--unit``) per candidate
and protocol (lower is better; for ``coverage_90``, the coverage of the
nominal 90% intervals, closer to 0.9 is better, with a table of their mean
width ``width_90``); each ``--also UNIT:METRIC`` adds a table of that metric,
taken from the same predictions.

Example::

    python tools/tune.py ../shared/data/cpp_llm --input-format cpp-llm \\
        --grid encoder=lightgcn,sage --grid id_dropout=0,0.1,0.2
    python tools/tune.py ../shared/data/cpp_llm --input-format cpp-llm \\
        --setting cold-task:0.1:0 --setting cold-task:0.1:2 --grid task_prior=factors,unit
    python tools/tune.py ../shared/data/cpp_llm --input-format cpp-llm --setting random:0.05:0 \\
        --unit paper --metric mse_norm --also minmax:mae_norm --grid observed_regression=0,0.25
    python tools/tune.py ../shared/data/cpp_llm --input-format cpp-llm \\
        --setting frontier:0.1:2 --metric coverage_90 --grid frontier_level=0.8,0.9
    python tools/tune.py syn100k --setting random:0.1:0 --seeds 1 \\
        --candidate defaults --candidate lr=0.03,lr_patience=4,patience=15
    python tools/tune.py ../shared/data/cpp_llm --input-format cpp-llm --seeds 10 \\
        --setting cold-model:0.1:2:random --setting cold-model:0.1:2:suggest \\
        --grid suggest_plan=gaussian,engine --out choice.csv

``--grid`` tries every combination of its values; ``--candidate`` (instead) tries
whole configurations one by one. A last table gives each candidate's seconds
(fit and predict, mean over seeds). A cold-model setting's fourth field is how
the held-out models' known scores are chosen (``random``, ``popular`` or
``suggest``, as ``cppgraph evaluate --choose``); with ``suggest`` the engine
that chooses is the candidate's, fitted on the inner training part. An engine
fitted once at a seed serves every setting that fits the same configuration on
the same data (the known scores differ, the training part does not), and every
candidate that differs from it only in keys that act after the fit
(``suggest_plan``: one fit serves a grid over it); the seconds of a setting that
reuses one are its predictions only.
``--out`` writes the per-seed rows as CSV.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import numpy as np
import pandas as pd

from cppgraph.config import Config
from cppgraph.data import read_data
from cppgraph.evaluate.methods import CPPGraphMethod, FittedEngines
from cppgraph.evaluate.metrics import INTERVAL_LEVEL, error_metrics
from cppgraph.evaluate.runner import UNITS, score_split, unit_normalizer
from cppgraph.evaluate.splits import make_split
from cppgraph.threads import DEFAULT_THREADS, limit_threads

#: Metrics of the error of the point predictions (lower is better).
ERROR_METRICS = ("mae_norm", "mse_norm", "mae_raw", "rmse_raw")
#: (protocol, test size, known) settings tuned over by default.
SETTINGS = (("random", 0.05, 0), ("random", 0.2, 0), ("cold-model", 0.1, 0), ("cold-model", 0.1, 2))


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def candidates(grid: dict) -> list[dict]:
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def _extra_metric(cells: pd.DataFrame, norm, metric: str) -> float:
    """``metric`` of the predicted ``cells`` on the scale of ``norm`` (raw for ``*_raw``); cells
    without a prediction on that scale are left out, as in ``score_split``."""
    true, pred = cells["score"].to_numpy(dtype=float), cells["predicted"].to_numpy(dtype=float)
    if metric.endswith("_norm"):
        true = norm.transform(cells["task"], true, models=cells["model"])
        pred = norm.transform(cells["task"], pred, models=cells["model"])
    has = np.isfinite(pred)
    if not has.any():
        return float("nan")
    err = error_metrics(true[has], pred[has])
    return {"mae_norm": err["mae"], "mse_norm": err["mse"], "mae_raw": err["mae"],
            "rmse_raw": err["mse"] ** 0.5}[metric]


def label(candidate: dict) -> str:
    """``key=value,...`` of a candidate (``defaults`` for none), as ``--candidate`` takes it."""
    return ",".join(f"{k}={json.dumps(v)}" for k, v in candidate.items()) or "defaults"


def parse_candidate(spec: str) -> dict:
    """``--candidate``'s ``key=value,...`` (or ``defaults``) as a dict."""
    if spec == "defaults":
        return {}
    out = {}
    for item in spec.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--candidate takes key=value pairs separated by commas; got {spec!r}")
        out[key] = _value(value)
    return out


def tune(data, grid: dict, *, seeds, settings=SETTINGS, unit: str = "minmax",
         metric: str = "mae_norm", also=(), progress=print, threads: int = 1,
         configs: list[dict] | None = None) -> pd.DataFrame:
    """One row per (candidate, setting, outer seed): the inner validation ``metric``,
    on the ``unit`` scale fitted on the outer training part, a column
    ``"UNIT:METRIC"`` for each such pair in ``also``, ``seconds`` (fit and predict)
    and ``candidate`` (:func:`label`). The candidates are ``configs`` if given, else
    every combination of ``grid``."""
    rows = []
    for seed in seeds:
        engines = FittedEngines()  # one seed's fits, shared by its settings
        for protocol, size, known, *choose in settings:
            choose = choose[0] if choose else "random"
            name = f"{protocol} {size:g} k={known}" + (f" {choose}" if choose != "random" else "")
            outer = make_split(data, protocol, seed, test_size=size, known=known)
            inner_data = outer.train
            inner = None if choose == "suggest" else make_split(
                inner_data, protocol, 1000 + seed, test_size=size, known=known, choose=choose)
            norm = unit_normalizer(inner_data, unit)
            extra = {pair: unit_normalizer(inner_data, pair.split(":")[0]) for pair in also}
            for cand in (configs if configs is not None else candidates(grid)):
                config = {"n_jobs": threads, **cand}
                start = time.perf_counter()
                if choose == "suggest":  # the candidate's engine chooses
                    inner = make_split(inner_data, protocol, 1000 + seed, test_size=size,
                                       known=known, choose=choose, config=Config(**config),
                                       engines=engines)
                method = CPPGraphMethod("candidate", engines=engines, **config)
                metrics, cells = score_split(inner, method, unit=norm, seed=seed)
                seconds = time.perf_counter() - start
                if metric not in metrics:
                    raise SystemExit(f"{metric}: candidate {cand} gives no intervals "
                                     "(intervals = false)")
                rows.append({**cand, "candidate": label(cand), "setting": name, "seed": seed,
                             "seconds": seconds, metric: metrics[metric],
                             **({"width_90": metrics["width_90"]} if metric == "coverage_90" else {}),
                             **{pair: _extra_metric(cells, n, pair.split(":")[1])
                                for pair, n in extra.items()}})
                progress(f"{name:<22} seed {seed} {cand}: {metrics[metric]:.4f}")
    return pd.DataFrame(rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data")
    parser.add_argument("--input-format", default="canonical")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--metric-types", default=None, metavar="TYPE[,TYPE...]",
                        help="helm format: keep only tasks of these metric types (e.g. accuracy)")
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                        help="configuration key and the values to try (repeatable)")
    parser.add_argument("--candidate", action="append", default=[], metavar="K=V,K=V",
                        help="one whole configuration to try (repeatable; 'defaults': the "
                             "built-in one); instead of --grid")
    parser.add_argument("--setting", action="append", default=[],
                        metavar="PROTOCOL:SIZE:K[:CHOOSE]",
                        help="protocol, test size and known scores to tune on, and for "
                             "cold-model how the known scores are chosen (repeatable; "
                             "default: random 0.05 and 0.2, cold-model 0.1 with k 0 and 2)")
    parser.add_argument("--unit", choices=UNITS, default="minmax",
                        help="scale of the metric (paper: the paper's per-model normalization)")
    parser.add_argument("--metric", choices=(*ERROR_METRICS, "coverage_90", "width_90"),
                        default="mae_norm", help="metric to compare (coverage_90 and width_90: "
                        "of the 90%% intervals; candidates need intervals = true)")
    parser.add_argument("--also", action="append", default=[], metavar="UNIT:METRIC",
                        help="also report this metric on this unit, from the same predictions "
                             "(repeatable; e.g. minmax:mae_norm)")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help="CPU threads (0: one per core)")
    parser.add_argument("--out", default=None, help="write the per-seed rows to this CSV file")
    args = parser.parse_args(argv)
    with limit_threads(args.threads) as threads:
        run(parser, args, threads)


def run(parser, args, threads: int) -> None:
    for pair in args.also:
        unit, _, metric = pair.partition(":")
        if unit not in UNITS or metric not in ERROR_METRICS:
            parser.error(f"--also takes UNIT:METRIC with UNIT in {UNITS} and METRIC one of "
                         f"{', '.join(ERROR_METRICS)}; got {pair!r}")
    settings = []
    for item in args.setting:
        fields = item.split(":")
        if len(fields) not in (3, 4) or (len(fields) == 4 and fields[0] != "cold-model"):
            parser.error(f"--setting takes PROTOCOL:SIZE:K, or cold-model:SIZE:K:CHOOSE; "
                         f"got {item!r}")
        settings.append((fields[0], float(fields[1]), int(fields[2]), *fields[3:]))
    settings = tuple(settings) or SETTINGS
    grid = {}
    for item in args.grid:
        key, _, values = item.partition("=")
        grid[key] = [_value(v) for v in values.split(",")]
    if grid and args.candidate:
        parser.error("give --grid or --candidate, not both")
    try:
        configs = [parse_candidate(c) for c in args.candidate] or (None if grid else [{}])
    except ValueError as err:
        parser.error(str(err))
    options = {"metric_types": args.metric_types.split(",")} if args.metric_types else {}
    table = tune(read_data(args.data, args.input_format, **options), grid, seeds=range(args.seeds),
                 settings=settings, unit=args.unit, metric=args.metric, also=args.also,
                 threads=threads, configs=configs)
    if args.out:
        table.to_csv(args.out, index=False)
    keys = list(grid) if configs is None else ["candidate"]
    order = None
    widths = ["width_90"] if args.metric == "coverage_90" else []  # tune() keeps them then
    for column in [args.metric, *widths, *args.also, *(["seconds"] if "seconds" in table else [])]:
        summary = table.pivot_table(index=keys, columns="setting", values=column, aggfunc="mean")
        summary["mean"] = summary.mean(axis=1)
        if order is None:
            rank = ((summary["mean"] - INTERVAL_LEVEL).abs() if column == "coverage_90"
                    else summary["mean"])
            order = rank.sort_values(kind="stable").index
        title = f"{args.unit}:{args.metric}" if column == args.metric else column
        print(f"\n{title} (mean over seeds)\n{summary.reindex(order).round(4).to_string()}")


if __name__ == "__main__":
    main()
