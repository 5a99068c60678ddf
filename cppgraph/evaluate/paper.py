"""The CPP paper's own evaluation set-ups and the figures it reports.

Zhang et al., *Collaborative Performance Prediction for Large Language
Models* (EMNLP 2024). Each set-up is a ``seed -> Split`` function for
:func:`cppgraph.evaluate.runner.evaluate`, to be scored with
``unit="paper"`` (the reference code's normalization), the only unit in which
the figures below compare.

==========  ===================================================================
set-up      split
==========  ===================================================================
table1      crowdsource matrix, 5% of the observed cells held out at random
helm-pilot  first 16 tasks x first 67 models of ``helm_core.csv``, 50% held out
table4      one named large model held out, 0 or 2 of its scores known
table5      one named task held out, 0 or 2 of its scores known
==========  ===================================================================

Rank metrics are taken within each task over the held-out cells (the
released notebook's choice) for ``table1`` and ``helm-pilot``, within the
held-out model for ``table4`` and within the held-out task for ``table5``.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

from cppgraph.data.dataset import CollabData
from cppgraph.evaluate.splits import Split, split_cold_model, split_cold_task, split_random

#: Table 1 (crowdsource, random 5%, 5 splits): method -> metric -> mean.
TABLE1 = {
    "MF": {"mse_norm": 2.16e-2, "mae_norm": 9.47e-2, "rank_acc": 0.4433, "rank_mae2": 0.8316},
    "NCF": {"mse_norm": 1.58e-2, "mae_norm": 8.94e-2, "rank_acc": 0.4176, "rank_mae2": 0.8498},
    "NCF + factors": {"mse_norm": 1.25e-2, "mae_norm": 7.88e-2, "rank_acc": 0.4545,
                      "rank_mae2": 0.8454},
    "factors only": {"mse_norm": 1.75e-2, "mae_norm": 8.57e-2, "rank_acc": 0.3347,
                     "rank_mae2": 0.8408},
}

#: HELM pilot (MF without factors, 50/50): rank accuracy and MAE@2, approximate.
HELM_PILOT = {"rank_acc": 0.10, "rank_mae2": 0.39}
HELM_PILOT_SHAPE = (16, 67)

#: Table 4: crowdsource model name -> (paper label, {known: (MSE, rank acc, MAE@2)}).
TABLE4 = {
    "LLama-2-70B": ("LLaMA2-70B", {0: (1.34e-2, .167, .500), 2: (1.79e-2, .091, .545)}),
    "Llama 3 70B": ("Llama3-70B", {0: (5.63e-2, .143, .714), 2: (1.70e-2, .200, .900)}),
    "LLaMA-65B": ("LLaMA-65B", {0: (1.73e-2, .240, .800), 2: (1.88e-2, .173, .717)}),
    "Luminous Supreme-70B": ("Luminous Supreme-70B",
                             {0: (6.06e-2, .2727, .6363), 2: (1.45e-2, .167, .833)}),
    "Pythia-12B": ("Pythia-12B", {0: (2.19e-2, .2142, .7142), 2: (1.57e-2, .333, .667)}),
    "Yi-9b": ("Yi-9b", {0: (3.20e-2, .444, 1.0), 2: (0.90e-2, .714, 1.0)}),
    "Baichuan 2-13B-Base": ("Baichuan2-13B", {0: (2.70e-2, .5714, 1.0), 2: (1.00e-2, .400, 1.0)}),
    "Qwen-14B": ("Qwen-14B", {0: (1.05e-2, .333, 1.0), 2: (3.10e-2, .250, .917)}),
    "TigerBot-70b": ("TigerBot-70B", {0: (8.02e-2, .125, .750), 2: (4.40e-2, .250, .833)}),
    "Gemma-7b": ("Gemma-7B", {0: (4.94e-2, .1579, .4736), 2: (10.2e-2, .264, .588)}),
    "Falcon-180B": ("Falcon-180B", {0: (5.00e-2, .1458, .5714), 2: (3.20e-2, .2394, .636)}),
    "Gopher - 280B": ("Gopher-280B", {0: (14.48e-2, .1538, .6153), 2: (10.87e-2, .2733, .6649)}),
}

#: Table 5: crowdsource task name -> (paper label, {known: MSE}).
TABLE5 = {
    "BoolQ(0-shot)": ("BoolQ", {0: 0.02201, 2: 0.0182}),
    "BIG-bench hard(3-shot)": ("BIG-bench hard", {0: 0.07103, 2: 0.00725}),
    "HellaSwag(10-shot)": ("HellaSwag (10-shot)", {0: 0.03414, 2: 0.02506}),
    "HumanEval(pass@1)": ("HumanEval", {0: 0.1244, 2: 0.0763}),
}


def helm_pilot_data(helm: CollabData) -> CollabData:
    """The HELM pilot matrix: the first 16 tasks x the first 67 models, in file order."""
    n_tasks, n_models = HELM_PILOT_SHAPE
    return helm.subset(models=helm.models[:n_models], tasks=helm.tasks[:n_tasks])


def table1_split(data: CollabData, seed: int) -> Split:
    """Table 1: 5% of the crowdsource cells held out at random."""
    train, test = split_random(data, 0.05, seed)
    return Split("table1", seed, train, test)


def helm_pilot_split(pilot: CollabData, seed: int) -> Split:
    """HELM pilot: half of the cells of :func:`helm_pilot_data` held out at random."""
    train, test = split_random(pilot, 0.5, seed)
    return Split("helm-pilot", seed, train, test)


def table4_splits(data: CollabData, model: str, known: int) -> Callable[[int], Split]:
    """Table 4: ``model`` held out with ``known`` of its scores kept (drawn by seed)."""
    return partial(_cold_model, data, model, known)


def table5_splits(data: CollabData, task: str, known: int) -> Callable[[int], Split]:
    """Table 5: ``task`` held out with ``known`` of its scores kept (drawn by seed)."""
    return partial(_cold_task, data, task, known)


def _cold_model(data: CollabData, model: str, known: int, seed: int) -> Split:
    return split_cold_model(data, 0.0, seed, known=known, models=[model])


def _cold_task(data: CollabData, task: str, known: int, seed: int) -> Split:
    return split_cold_task(data, 0.0, seed, known=known, tasks=[task])
