"""Evaluation protocols (splits), metrics by hand, and the runner."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cppgraph.data import read_canonical
from cppgraph.errors import DataError
from cppgraph.evaluate import error_metrics, make_split, split_random
from cppgraph.evaluate.metrics import all_metrics, mean_spearman, r2_score, rank_metrics
from cppgraph.evaluate.splits import split_cold_model, split_cold_task


@pytest.fixture(scope="module")
def demo(demo_dir):
    return read_canonical(demo_dir)


def _cells(frame):
    return set(zip(frame["model"], frame["task"]))


def test_split_random_holds_out_cells_not_in_training(demo):
    train, test = split_random(demo, 0.2, seed=3)
    assert len(train.scores) + len(test) == len(demo.scores)
    assert abs(len(test) - 0.2 * len(demo.scores)) < 0.03 * len(demo.scores)
    assert not _cells(train.scores) & _cells(test)
    # Every held-out cell stays predictable: its task keeps 2+ and its model 1+ training scores.
    assert train.scores.groupby("task").size().min() >= 2
    assert set(test["model"]) <= set(train.scores["model"])
    assert test.equals(split_random(demo, 0.2, seed=3)[1])
    assert not test.equals(split_random(demo, 0.2, seed=4)[1])
    with pytest.raises(DataError, match="test size"):
        split_random(demo, 1.5, seed=0)


@pytest.mark.parametrize("known", [0, 2])
def test_cold_model_hides_the_models(demo, known):
    split = make_split(demo, "cold-model", 1, test_size=0.1, known=known)
    held = list(split.new_models.index)
    assert len(held) == round(0.1 * len(demo.models))
    assert not set(held) & set(split.train.models)
    assert not set(held) & set(split.train.scores["model"])
    assert set(split.test["model"]) == set(held) and split.rank_by == "model"
    assert (split.known.groupby("model").size() == known).all() if known else split.known.empty
    # Test cells + known cells are exactly the held-out models' cells.
    theirs = demo.scores[demo.scores["model"].isin(held)]
    assert _cells(split.test) | _cells(split.known) == _cells(theirs)
    assert not _cells(split.test) & _cells(split.known)
    assert split.train.scores.groupby("task").size().min() >= 2


def test_cold_family_holds_out_whole_families(demo):
    split = make_split(demo, "cold-family", 0, test_size=0.2)
    family = demo.model_factors["family"]
    held_families = set(family[split.new_models.index])
    assert set(family.index[family.isin(held_families)]) == set(split.new_models.index)
    assert not held_families & set(family[split.train.models])
    assert split.known.empty


def test_scale_up_hides_each_familys_largest(demo):
    split = make_split(demo, "scale-up", 0)
    factors = demo.model_factors
    for model in split.new_models.index:
        fam = factors.loc[factors["family"] == factors.at[model, "family"], "params_b"]
        assert factors.at[model, "params_b"] == fam.max()
        assert fam.nunique() >= 3
    assert not set(split.new_models.index) & set(split.train.models)


@pytest.mark.parametrize("known", [0, 3])
def test_cold_task_hides_the_tasks(demo, known):
    split = make_split(demo, "cold-task", 2, test_size=0.1, known=known)
    held = list(split.new_tasks.index)
    assert held and not set(held) & set(split.train.tasks)
    assert not set(held) & set(split.train.scores["task"])
    assert list(split.new_task_info.index) == held
    assert (split.known.groupby("task").size() == known).all() if known else split.known.empty
    assert set(split.test["task"]) == set(held)


def test_frontier_holds_out_the_best_models():
    # Hand-made: 6 models x 3 tasks, task "c" lower-is-better; each model's mean normalized
    # score (per-task min-max) is known by construction.
    from cppgraph.data import CollabData

    rows = [("m1", 10, 20, 9), ("m2", 20, 40, 7), ("m3", 30, 60, 5), ("m4", 40, 80, 3),
            ("m5", 50, 100, 1), ("m6", 45, 90, 2)]
    scores = pd.DataFrame([(m, t, v) for m, a, b, c in rows for t, v in (("a", a), ("b", b),
                                                                           ("c", c))],
                          columns=["model", "task", "score"])
    info = pd.DataFrame({"task": ["a", "b", "c"], "higher_is_better": [True, True, False]})
    data = CollabData.from_frames(scores, task_info=info)
    # Means: m5 1.0, m6 0.875, m4 0.75, ...: the top third is m5 and m6.
    split = make_split(data, "frontier", 0, test_size=1 / 3, known=1)
    assert sorted(split.new_models.index) == ["m5", "m6"] and split.rank_by == "model"
    assert (split.known.groupby("model").size() == 1).all()
    assert _cells(split.test) | _cells(split.known) == _cells(scores[scores["model"].isin(["m5", "m6"])])
    assert not set(split.train.models) & {"m5", "m6"}


def test_frontier_on_the_demo(demo):
    from cppgraph.normalize import make_normalizer

    split = make_split(demo, "frontier", 3, test_size=0.1, known=2)
    s = demo.scores
    mean = pd.Series(make_normalizer("minmax").fit(demo).transform(s["task"], s["score"]),
                     index=s.index).groupby(s["model"]).mean()
    held = set(split.new_models.index)
    assert len(held) == round(0.1 * len(demo.models))
    assert mean[list(held)].min() > mean.drop(index=list(held)).max()  # better than all seen
    assert (split.known.groupby("model").size() == 2).all()


def test_named_entities_and_bad_protocol_options(demo):
    split = split_cold_model(demo, 0.1, 0, models=["syn-aurora-762m-ft"], known=1)
    assert list(split.new_models.index) == ["syn-aurora-762m-ft"] and len(split.known) == 1
    with pytest.raises(DataError, match="did you mean"):
        split_cold_model(demo, 0.1, 0, models=["syn-aurora-762m"])
    with pytest.raises(DataError, match="at least one task must stay"):
        split_cold_task(demo, 0.1, 0, tasks=demo.tasks)
    with pytest.raises(DataError, match="unknown protocol"):
        make_split(demo, "sideways", 0)
    with pytest.raises(DataError, match="known scores apply"):
        make_split(demo, "random", 0, known=2)


def test_error_metrics_by_hand():
    out = error_metrics([0.0, 1.0, 0.5], [0.5, 1.0, 0.0])
    assert out["mae"] == pytest.approx(1.0 / 3)
    assert out["mse"] == pytest.approx(0.5 / 3)
    with pytest.raises(ValueError):
        error_metrics([1.0], [1.0, 2.0])


def test_r2_and_spearman_by_hand():
    # SST = 2 (mean 2), SSE = 0.5 -> 1 - 0.25.
    assert r2_score([1.0, 2.0, 3.0], [1.5, 2.0, 2.5]) == pytest.approx(0.75)
    assert np.isnan(r2_score([1.0, 1.0], [0.0, 2.0]))
    groups = ["a"] * 4 + ["b"] * 3 + ["c"] * 2
    truth = [1, 2, 3, 4, 1, 2, 3, 5, 6]
    pred = [1, 2, 3, 4, 3, 2, 1, 6, 5]
    # group a: rho 1; group b: rho -1; group c has 2 cells (left out): mean 0.
    assert mean_spearman(groups, truth, pred) == pytest.approx(0.0)
    assert mean_spearman(groups[:4], truth[:4], pred[:4]) == pytest.approx(1.0)


def test_rank_metrics_by_hand():
    groups = ["a"] * 6 + ["b"]
    truth = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]
    # Predicted ranks in a: 1, 2, 6, 3, 4, 5 (true 1..6); b: a single cell, ranked right.
    pred = [0.95, 0.85, 0.05, 0.60, 0.50, 0.40, 0.0]
    out = rank_metrics(groups, truth, pred)
    assert out["rank_acc"] == pytest.approx(3 / 7)  # the first two cells and b
    assert out["rank_mae2"] == pytest.approx(6 / 7)  # all but the third cell (3 ranks off)


def test_all_metrics_skip_missing_raw_predictions():
    out = all_metrics(groups=["t", "t", "t"], true_norm=[0.0, 0.5, 1.0], pred_norm=[0.1, 0.5, 0.8],
                      true_raw=[10.0, 20.0, 30.0], pred_raw=[12.0, np.nan, 26.0])
    assert out["mae_raw"] == pytest.approx(3.0)
    assert out["rmse_raw"] == pytest.approx(np.sqrt((4 + 16) / 2))
    assert out["mae_norm"] == pytest.approx(0.1)


def test_make_methods_config_keeps_each_methods_encoder():
    from cppgraph.config import Config
    from cppgraph.evaluate.methods import make_methods
    config = Config(encoder="sage", epochs=7)
    plain, light, base = make_methods(["cppgraph", "cppgraph-lightgcn", "task-mean"],
                                      config=config, n_jobs=1)
    assert plain.config is config and light.config is config
    assert light.overrides == {"encoder": "lightgcn", "n_jobs": 1}
    assert not hasattr(base, "config")
