"""The post-hoc stages on tiny hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from cppgraph.stages import BenchmarkMix, KnownScoreCorrection, KnownScoreMix, TrainingScores, blend


def _train(y, fold, predicted=None, bounded=False, k=2):
    y = np.asarray(y, dtype=float)
    fold = np.asarray(fold)
    predicted = np.where(fold >= 0, y, np.nan) if predicted is None else np.asarray(predicted, float)
    return TrainingScores(np.where(fold >= 0, y, np.nan), fold, k, predicted, bounded)


def test_blend_linear_and_logit():
    assert blend(np.array([0.2]), np.array([0.6]), 0.25, bounded=False) == pytest.approx(0.3)
    # In logit space: logit(out) = 0.75 logit(0.2) + 0.25 logit(0.6).
    z = 0.75 * np.log(0.2 / 0.8) + 0.25 * np.log(0.6 / 0.4)
    assert blend(np.array([0.2]), np.array([0.6]), 0.25, bounded=True) == pytest.approx(
        1 / (1 + np.exp(-z)))
    assert blend(np.array([0.0]), np.array([0.5]), 0.5, bounded=True)[0] < 1e-3  # near 0 stays


def test_benchmark_mix_by_hand():
    # Task 1 = 2 * task 0 + 0.1 over 6 models; model 6 knows task 0 only.
    x = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.45])
    y = np.stack([x, 2 * x + 0.1], axis=1)
    fold = np.zeros(y.shape, dtype=int)
    fold[6, 1] = -1
    fold[5, 1] = 1  # a cell of fold 1
    stage = BenchmarkMix(0.5).fit(_train(y, fold, k=2))
    pred = np.array([0.5])
    out = stage.apply(pred, np.array([6]), np.array([1]), np.array([-1]), _train(y, fold, k=2))
    # Ridge with intercept (penalty 0.1) of task 1 on task 0 over models 0-5; the mix is halfway.
    xs, ts = x[:6], 2 * x[:6] + 0.1
    sxx = ((xs - xs.mean()) ** 2).sum()
    slope = ((xs - xs.mean()) * (ts - ts.mean())).sum() / (sxx + 0.1)
    reg = ts.mean() + slope * (0.45 - xs.mean())
    assert out[0] == pytest.approx(0.5 * 0.5 + 0.5 * reg)
    # A cell of fold 1 is regressed without fold 1: its own score is no training value.
    again = y.copy()
    again[5, 1] = 0.0
    r1 = stage._regress(_train(y, fold, k=2), np.array([5]), np.array([1]), np.array([1]))
    r2 = stage._regress(_train(again, fold, k=2), np.array([5]), np.array([1]), np.array([1]))
    assert r1 == pytest.approx(r2)
    assert BenchmarkMix(0.0).fit(_train(y, fold)).apply(pred, np.array([6]), np.array([1]),
                                                        np.array([-1]), _train(y, fold)) is pred


def test_benchmark_mix_auto_weight():
    # Validation cells (fold k=2) where the network is off by 0.2 and the regression exact:
    # the whole weight goes to the regression.
    x = np.linspace(0.0, 1.0, 40)
    y = np.stack([x, 0.5 * x + 0.1], axis=1)
    fold = np.zeros(y.shape, dtype=int)
    fold[[6, 7], 1] = 2
    predicted = np.where(fold >= 0, y, np.nan)
    predicted[[6, 7], 1] += 0.2
    stage = BenchmarkMix("auto").fit(TrainingScores(y, fold, 2, predicted, False))
    assert stage.weight_ == 1.0
    predicted[[6, 7], 1] = y[[6, 7], 1]  # a perfect network: no weight (ties: the smaller)
    assert BenchmarkMix("auto").fit(TrainingScores(y, fold, 2, predicted, False)).weight_ == 0.0


def test_known_score_mix_by_hand():
    # Task 1 = 2 * task 0 + 0.1 over 6 training models; a new model knows task 0 = 0.45.
    x = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    y = np.stack([x, 2 * x + 0.1], axis=1)
    train = _train(y, np.zeros(y.shape, dtype=int))
    stage = KnownScoreMix(0.5).fit(train)
    pred = np.array([[0.4, 0.6]])
    out = stage.apply(pred, np.array([[0.45, np.nan]]), train)
    # Ridge (0.1) slope on 6 rows: sum((x - m)(2x - 2m)) / (sum((x - m)^2) + 0.1).
    sxx = ((x - x.mean()) ** 2).sum()
    reg = (2 * x.mean() + 0.1) + 2 * sxx / (sxx + 0.1) * (0.45 - x.mean())
    assert out[0, 1] == pytest.approx(0.5 * 0.6 + 0.5 * reg)
    # A new model without known scores keeps its predictions.
    assert stage.apply(pred, np.array([[np.nan, np.nan]]), train) is pred


def test_known_score_correction_by_hand():
    prior = np.array([[0.5, 0.5, 0.5], [0.2, 0.2, 0.2]])
    pred = prior + 0.01
    known = np.array([[0.8, 0.6, np.nan], [np.nan, np.nan, np.nan]])
    out = KnownScoreCorrection(2.0).apply(pred, known, prior)
    # Row 0: residuals 0.3 and 0.1, shrunk by 2 pseudo-residuals of 0: 0.4 / 4 = 0.1.
    np.testing.assert_allclose(out[0], pred[0] + 0.1)
    np.testing.assert_allclose(out[1], pred[1])  # no known score: unchanged
    assert KnownScoreCorrection(0.0).apply(pred, known, prior) is pred


def test_known_score_correction_limits_each_residual():
    prior = np.full((2, 3), 0.5)
    # Row 0: a known score 6 training ranges above the prediction, and one 0.1 above;
    # row 1: one 0.3 below, inside the limit.
    known = np.array([[6.5, 0.6, np.nan], [0.2, np.nan, np.nan]])
    out = KnownScoreCorrection(2.0, limit=1.0).apply(prior, known, prior)
    # Row 0: (min(6, 1) + 0.1) / (2 + 2) = 0.275; row 1: -0.3 / (1 + 2) = -0.1.
    np.testing.assert_allclose(out[:, 2], 0.5 + np.array([0.275, -0.1]))
    unlimited = KnownScoreCorrection(2.0).apply(prior, known, prior)
    np.testing.assert_allclose(unlimited[:, 2], 0.5 + np.array([6.1 / 4, -0.1]))


def test_benchmark_mix_per_task_weights():
    # Task 1 is a linear copy of task 0 and the network is off by 0.1 on both: there the
    # regression, nearly exact (its ridge penalty shrinks it a little), gets a large
    # weight. On task 2, unrelated to the others, the network is exact: weight 0.
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, 60)
    y = np.stack([x, 0.5 * x + 0.2, rng.uniform(0, 1, 60)], axis=1)
    fold = rng.integers(0, 3, y.shape)  # folds per cell, as the engine draws them
    predicted = y.copy()
    predicted[:, 0] += 0.1
    predicted[:, 1] += 0.1
    stage = BenchmarkMix("task").fit(TrainingScores(y, fold, 3, predicted, False))
    assert stage.task_weights_[1] > 0.5 and stage.task_weights_[0] > 0.2
    assert stage.task_weights_[2] == 0.0
    assert stage.weight_ == pytest.approx(stage.task_weights_.mean())
