"""Baseline methods on tiny matrices with known answers; every method through the runner."""

from __future__ import annotations

import numpy as np
import pytest

from cppgraph.data import read_canonical
from cppgraph.evaluate import baselines as B
from cppgraph.evaluate.methods import METHODS, make_methods
from cppgraph.evaluate.problem import Problem
from cppgraph.evaluate.runner import evaluate
from cppgraph.errors import DataError


def problem(y, test, *, log_params=None, family=None, seed=0):
    """A Problem over ``y`` whose test cells (a boolean mask) are hidden."""
    y = np.asarray(y, dtype=float)
    rows, cols = np.nonzero(test)
    n_m, n_t = y.shape
    return Problem(y=np.where(test, np.nan, y), rows=rows, cols=cols,
                   model_x=np.zeros((n_m, 1)), task_x=np.zeros((n_t, 1)),
                   log_params=np.full(n_m, np.nan) if log_params is None else np.asarray(log_params),
                   log_tokens=np.full(n_m, np.nan),
                   family=np.full(n_m, -1) if family is None else np.asarray(family),
                   n_train_models=n_m, n_train_tasks=n_t, seed=seed)


def mask(shape, share, seed):
    rng = np.random.default_rng(seed)
    m = rng.random(shape) < share
    m[:, :1] = False  # every model keeps a score
    m[:2] = False     # every task keeps two
    return m


def test_task_mean_by_hand():
    y = np.array([[0.2, 0.4], [0.6, 0.0], [0.1, 0.9]])
    test = np.array([[False, False], [False, True], [False, False]])
    assert B.TaskMean().complete(problem(y, test)).tolist() == pytest.approx([0.65])


def test_additive_methods_recover_an_additive_matrix():
    rng = np.random.default_rng(0)
    y = rng.uniform(0.2, 0.6, size=(20, 1)) + rng.uniform(0, 0.3, size=(1, 8))
    test = mask(y.shape, 0.2, 1)
    p = problem(y, test)
    exact = y[test]
    offset = B.TaskModelOffset(shrink=1e-6).complete(p)
    assert np.abs(offset - exact).max() < 1e-3
    mean_err = np.abs(B.TaskMean().complete(p) - exact).mean()
    assert np.abs(offset - exact).mean() < 0.05 * mean_err


@pytest.mark.parametrize("method,ratio", [(B.SoftImpute(), 0.5), (B.TruncatedSVD(), 0.5),
                                          (B.ObservationalScaling(), 0.8)])
@pytest.mark.parametrize("seed", [1, 2])
def test_low_rank_methods_beat_the_additive_fit_on_a_low_rank_matrix(method, ratio, seed):
    rng = np.random.default_rng(seed)
    u, v = rng.normal(size=(40, 2)), rng.normal(size=(2, 10))
    y = rng.uniform(0.3, 0.5, size=(40, 1)) + rng.uniform(0, 0.2, size=(1, 10)) + 0.1 * (u @ v)
    test = mask(y.shape, 0.15, seed)
    p = problem(y, test, seed=3)
    err = np.abs(method.complete(p) - y[test]).mean()
    base = np.abs(B.TaskModelOffset().complete(p) - y[test]).mean()
    assert err < ratio * base


def test_knn_uses_the_most_similar_models():
    rng = np.random.default_rng(2)
    proto = rng.normal(size=(3, 12))
    y = 0.5 + 0.1 * np.repeat(proto, 6, axis=0) + 0.005 * rng.normal(size=(18, 12))
    test = mask(y.shape, 0.1, 4)
    p = problem(y, test)
    err = np.abs(B.KNNModels(k=5).complete(p) - y[test]).mean()
    assert err < 0.3 * np.abs(B.TaskModelOffset().complete(p) - y[test]).mean()


@pytest.mark.parametrize("logit", [False, True])
def test_benchmark_ridge_on_related_tasks(logit):
    rng = np.random.default_rng(3)
    x = rng.uniform(-2, 2, size=(60, 1))
    y = 1 / (1 + np.exp(-(x @ rng.uniform(0.5, 1.5, size=(1, 6)) + rng.normal(size=(1, 6)) * 0.3)))
    test = mask(y.shape, 0.1, 5)
    p = problem(y, test)
    err = np.abs(B.BenchmarkRidge(logit=logit).complete(p) - y[test]).mean()
    assert err < 0.5 * np.abs(B.TaskModelOffset().complete(p) - y[test]).mean()
    if logit:  # the logit link fits sigmoid-shaped relations better than a straight line
        assert err <= np.abs(B.BenchmarkRidge().complete(p) - y[test]).mean()


def test_scaling_law_extrapolates_within_a_family():
    # Scores follow a sigmoid of log-parameters, one curve per family; predict each largest model.
    log_params = np.tile(np.log([1.0, 3.0, 7.0, 13.0, 70.0]), 3)
    family = np.repeat([0, 1, 2], 5)
    offset = np.repeat([-4.0, -3.0, -2.0], 5)
    y = 1 / (1 + np.exp(-(0.8 * log_params[:, None] + offset[:, None] + np.array([[0.0, 0.5, 1.0]]))))
    test = np.zeros_like(y, dtype=bool)
    test[[4, 9, 14], 1] = True
    p = problem(y, test, log_params=log_params, family=family)
    err = np.abs(B.ScalingLaw().complete(p) - y[test]).max()
    assert err < 0.01
    assert err < np.abs(B.TaskModelOffset().complete(p) - y[test]).max()


def test_every_method_runs_on_the_demo_and_is_deterministic(demo_dir):
    data = read_canonical(demo_dir)
    small = data.subset(models=data.models[:30])
    methods = make_methods(["all"])
    assert [m.name for m in methods] == list(METHODS)
    for m in methods:  # the engine's methods briefly, to save time; only the default with intervals
        if m.name.startswith("cppgraph"):
            m.overrides = {**m.overrides, "epochs": 30, "patience": 30}
        if m.name in ("cppgraph-lightgcn", "cppgraph-sage", "cppgraph-ensemble"):
            m.overrides["intervals"] = False
        if m.name == "cppgraph-ensemble":
            m.ensemble = 2
    first = evaluate(small, "random", methods, seeds=[0], test_size=0.1)
    scores = first.scores.set_index("method")
    assert scores["mae_norm"].notna().all() and (scores["coverage"] == 1).all()
    assert (scores["mae_norm"] < scores.at["task-mean", "mae_norm"] * 1.5).all()
    # the engine gives intervals (an ensemble does not), the baselines none
    assert 0.5 < scores.at["cppgraph", "coverage_90"] <= 1 and scores.at["cppgraph", "width_90"] > 0
    assert scores[["coverage_90", "width_90"]].drop(["cppgraph", "cppgraph-lightgcn",
                                                     "cppgraph-sage"]).isna().all().all()
    repeat = make_methods(["task-model-offset", "ncf", "cppgraph"])
    # the point predictions do not depend on the intervals
    repeat[-1].overrides = {"intervals": False, "epochs": 30, "patience": 30}
    again = evaluate(small, "random", repeat, seeds=[0], test_size=0.1)
    merged = first.predictions.merge(again.predictions, on=["method", "seed", "model", "task"])
    assert len(merged) == len(again.predictions)  # every cell of the second run matched
    np.testing.assert_allclose(merged["predicted_x"], merged["predicted_y"])


@pytest.mark.parametrize("protocol,known", [("cold-model", 2), ("cold-task", 2), ("scale-up", 0)])
def test_methods_predict_new_entities(demo_dir, protocol, known):
    data = read_canonical(demo_dir)
    methods = make_methods(["task-model-offset", "scaling-law", "ncf-factors", "cppgraph"])
    methods[-1].overrides = {"epochs": 15, "patience": 15, "intervals": False}  # brief
    result = evaluate(data, protocol, methods, seeds=[0], known=known)
    assert result.scores["mae_norm"].notna().all()
    assert (result.scores["coverage"] == 1).all()


def test_unknown_method_names_suggest_the_list():
    with pytest.raises(DataError, match="unknown method 'sdv'"):
        make_methods(["sdv"])
