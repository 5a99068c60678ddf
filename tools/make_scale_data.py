"""Generate a SYNTHETIC low-rank score matrix of any size, as a canonical data folder.

Used to measure the engine at scale (``tools/scale_benchmark.py``). Nothing
here is a real model or benchmark: names start with ``syn-``.

Structure
---------
Models belong to ``ceil(models / 10)`` families; ``params_b`` is log-uniform
on [0.1, 100]. Each model has a latent vector of rank ``RANK``::

    u_m = fam[f_m] + SIZE_SLOPE * (log10(params_b) - 1) * size_dir + own_m

``fam[f] ~ N(0, FAMILY_SD^2 I)`` and ``own_m ~ N(0, OWN_SD^2 I)``: the family
and the size explain part of the latent, the model's own part ``own_m`` only
its scores reveal. Tasks have a latent ``v_t ~ N(0, I / RANK)``, a
difficulty ``d_t ~ N(0, 1)`` and a chance floor ``g_t`` from their output
format; task factors are ``ability`` (the latent direction the task loads on
most, ``RANK`` values) and ``output_format``. With ``eps ~ N(0, NOISE_SD)``::

    score = 100 * (g_t + (1 - g_t) * sigmoid(2 * u_m . v_t + SIZE_EFFECT * (log10(params_b) - 1) - d_t + eps))

Each cell is observed with probability ``density``; then cells are revealed
until every model and every task has at least 2 scores.

Usage: ``python tools/make_scale_data.py --models 500 --tasks 50 --density 0.5
--seed 0 --out syn-500x50``. The same arguments always give byte-identical
files.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import pandas as pd

from cppgraph.data import CollabData, write_canonical
from cppgraph.errors import CppGraphError

RANK = 3
FAMILY_SD = 0.6
OWN_SD = 0.8
SIZE_SLOPE = 0.5
SIZE_EFFECT = 0.8
NOISE_SD = 0.25
FORMATS = {"4 choice": 0.25, "2 choice": 0.5, "free-form": 0.0}


def make_scale_data(n_models: int, n_tasks: int, density: float, seed: int = 0) -> CollabData:
    """The synthetic data set (see the module docstring)."""
    if n_models < 2 or n_tasks < 2 or not 0 < density <= 1:
        raise ValueError("need at least 2 models and 2 tasks, and a density in (0, 1]")
    rng = np.random.default_rng(seed)
    n_fam = math.ceil(n_models / 10)
    family = rng.integers(0, n_fam, n_models)
    log_params = rng.uniform(-1, 2, n_models)
    size_dir = rng.normal(size=RANK)
    size_dir /= np.linalg.norm(size_dir)
    fam = rng.normal(0, FAMILY_SD, (n_fam, RANK))
    u = (fam[family] + SIZE_SLOPE * (log_params - 1)[:, None] * size_dir
         + rng.normal(0, OWN_SD, (n_models, RANK)))
    v = rng.normal(0, 1 / math.sqrt(RANK), (n_tasks, RANK))
    difficulty = rng.normal(0, 1, n_tasks)
    fmt = rng.choice(list(FORMATS), n_tasks)
    floor = np.array([FORMATS[f] for f in fmt])
    z = (2 * u @ v.T + SIZE_EFFECT * (log_params - 1)[:, None] - difficulty[None, :]
         + rng.normal(0, NOISE_SD, (n_models, n_tasks)))
    score = 100 * (floor + (1 - floor) / (1 + np.exp(-z)))

    observed = rng.random((n_models, n_tasks)) < density
    for axis, need in ((1, 2), (0, 2)):  # every model, then every task, gets 2 scores or more
        counts = observed.sum(axis=axis)
        for i in np.flatnonzero(counts < need):
            line = observed[i] if axis == 1 else observed[:, i]
            free = np.flatnonzero(~line)
            line[rng.choice(free, need - counts[i], replace=False)] = True

    models = [f"syn-m{i:0{len(str(n_models))}d}" for i in range(n_models)]
    tasks = [f"syn-t{j:0{len(str(n_tasks))}d}" for j in range(n_tasks)]
    m, t = np.nonzero(observed)
    scores = pd.DataFrame({"model": np.asarray(models, dtype=object)[m],
                           "task": np.asarray(tasks, dtype=object)[t],
                           "score": np.round(score[m, t], 2)})
    model_factors = pd.DataFrame({"model": models,
                                  "family": [f"fam{f:03d}" for f in family],
                                  "params_b": np.round(10.0 ** log_params, 3)})
    task_factors = pd.DataFrame({"task": tasks,
                                 "ability": [f"ability{k}" for k in np.abs(v).argmax(axis=1)],
                                 "output_format": fmt})
    task_info = pd.DataFrame({"task": tasks, "higher_is_better": True, "min_score": 0.0,
                              "max_score": 100.0, "unit": "%", "metric_type": "accuracy"})
    meta = {"name": f"synthetic-{n_models}x{n_tasks}",
            "description": (f"SYNTHETIC low-rank scores: {n_models} models x {n_tasks} tasks, "
                            f"density {density:g}, rank {RANK} plus family and size effects. "
                            "Not real benchmark results."),
            "source": (f"tools/make_scale_data.py --models {n_models} --tasks {n_tasks} "
                       f"--density {density:g} --seed {seed}"),
            "synthetic": True}
    return CollabData.from_frames(scores, task_info=task_info, model_factors=model_factors,
                                  task_factors=task_factors,
                                  factor_kinds={"model": {"family": "categorical",
                                                          "params_b": "numeric"},
                                                "task": {"ability": "categorical",
                                                         "output_format": "categorical"}},
                                  meta=meta, models=models, tasks=tasks)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, required=True)
    parser.add_argument("--tasks", type=int, required=True)
    parser.add_argument("--density", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--force", action="store_true", help="replace --out if it is a data folder")
    args = parser.parse_args(argv)
    try:
        data = make_scale_data(args.models, args.tasks, args.density, args.seed)
        write_canonical(data, args.out, overwrite=args.force)
    except (CppGraphError, ValueError) as err:
        raise SystemExit(f"error: {err}") from None
    print(f"wrote {args.out}: {data!r}")


if __name__ == "__main__":
    main()
