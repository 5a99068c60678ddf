"""Normalizations: exact inverses, direction handling, the paper's per-row scaling."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cppgraph.data import CollabData, read_cpp_llm
from cppgraph.errors import DataError
from cppgraph.normalize import (NORMALIZATIONS, Normalizer, make_normalizer, new_task_prior,
                                refit_task_scale, task_scale_covariance)


def tiny(higher_is_better=(True, False)):
    """3 models x 2 tasks; task b is lower-is-better by default; one gap (m3, b)."""
    scores = pd.DataFrame({"model": ["m1", "m1", "m2", "m2", "m3"],
                           "task": ["a", "b", "a", "b", "a"],
                           "score": [20.0, 1.5, 60.0, 0.5, 80.0]})
    info = pd.DataFrame({"task": ["a", "b"], "higher_is_better": list(higher_is_better),
                         "min_score": [0.0, 0.0], "max_score": [100.0, 2.0]})
    return CollabData.from_frames(scores, task_info=info, meta={"paper_rows": "model"})


def round_trip(norm, data):
    s = data.scores
    y = norm.transform(s["task"], s["score"], models=s["model"])
    x = norm.inverse_transform(s["task"], y, models=s["model"])
    return y, x


@pytest.mark.parametrize("name", NORMALIZATIONS)
def test_round_trip_real(shared_data, name):
    data = read_cpp_llm(shared_data / "cpp_llm")
    norm = make_normalizer(name).fit(data)
    y, x = round_trip(norm, data)
    assert np.isfinite(y).all()
    # Exact up to floating-point rounding of the affine map (scores are <= 100).
    np.testing.assert_allclose(x, data.scores["score"], rtol=0, atol=1e-12)
    # The fitted parameters survive JSON (no pickle) and give the same numbers.
    again = Normalizer.from_dict(json.loads(json.dumps(norm.to_dict())))
    s = data.scores
    assert np.array_equal(again.transform(s["task"], s["score"], models=s["model"]), y)


@pytest.mark.parametrize("name", ["minmax", "zscore", "logit"])
def test_round_trip_tiny_with_lower_is_better(name):
    data = tiny()
    y, x = round_trip(make_normalizer(name).fit(data), data)
    np.testing.assert_allclose(x, data.scores["score"], rtol=0, atol=1e-12)
    # Flipped: on task b the lower raw score (m2: 0.5) must map higher than m1's 1.5.
    assert y[3] > y[1]


def test_minmax_values():
    y, _ = round_trip(make_normalizer("minmax").fit(tiny()), tiny())
    # Task a: (x - 20) / 60; task b (lower is better): (1.5 - x) / 1.0.
    np.testing.assert_allclose(y, [0.0, 0.0, 40 / 60, 1.0, 1.0])


def test_zscore_values():
    y, _ = round_trip(make_normalizer("zscore").fit(tiny()), tiny())
    a = np.array([20.0, 60.0, 80.0])
    np.testing.assert_allclose(y[[0, 2, 4]], (a - a.mean()) / a.std())
    np.testing.assert_allclose(y[[1, 3]], [-1.0, 1.0])


def test_logit_uses_declared_range():
    norm = make_normalizer("logit", eps=0.01).fit(tiny())
    y, _ = round_trip(norm, tiny())
    p = 0.01 + 0.98 * 0.2  # 20 of [0, 100]
    assert y[0] == pytest.approx(np.log(p / (1 - p)))
    p = 0.01 + 0.98 * (2.0 - 0.5) / 2.0  # lower is better on [0, 2]
    assert y[3] == pytest.approx(np.log(p / (1 - p)))


def test_paper_normalization_per_model_row():
    data = tiny(higher_is_better=(True, True))
    y, x = round_trip(make_normalizer("paper").fit(data), data)
    # m1: complete row [20, 1.5] -> true min-max; m3 has a gap -> min is the filled 0.
    np.testing.assert_allclose(y[:2], [1.0, 0.0])
    np.testing.assert_allclose(y[2:4], [1.0, 0.0])
    assert y[4] == pytest.approx(1.0)  # (80 - 0) / (80 - 0)
    np.testing.assert_allclose(x, data.scores["score"], rtol=0, atol=1e-12)


def test_paper_normalization_per_task_row():
    data = tiny(higher_is_better=(True, True))
    norm = make_normalizer("paper", by="task").fit(data)
    y, _ = round_trip(norm, data)
    # Task a is complete -> (x - 20) / 60; task b has a gap -> x / 1.5.
    np.testing.assert_allclose(y, [0.0, 1.0, 40 / 60, 0.5 / 1.5, 1.0])


def test_paper_crowdsource_divides_by_model_best(shared_data):
    data = read_cpp_llm(shared_data / "cpp_llm")
    s = data.scores
    y = make_normalizer("paper").fit(data).transform(s["task"], s["score"], models=s["model"])
    best = s.groupby("model")["score"].transform("max")
    np.testing.assert_allclose(y, s["score"] / best)  # every row has a gap


def test_direction_errors():
    data = tiny(higher_is_better=(True, None))
    for name in ("minmax", "zscore", "logit"):
        with pytest.raises(DataError, match="no direction"):
            make_normalizer(name).fit(data)
    with pytest.raises(DataError, match="lower-is-better"):
        make_normalizer("paper").fit(tiny())
    with pytest.raises(DataError, match="unknown normalization 'rank'"):
        make_normalizer("rank")


def test_unknown_task_and_unfitted():
    norm = make_normalizer("minmax")
    with pytest.raises(RuntimeError, match="not fitted"):
        norm.transform(["a"], [1.0])
    norm.fit(tiny())
    with pytest.raises(DataError, match="task 'A'.*did you mean 'a'"):
        norm.transform(["A"], [1.0])


def test_logit_needs_range_and_in_range_scores():
    data = tiny()
    no_range = CollabData.from_frames(data.scores)
    with pytest.raises(DataError, match="score range"):
        make_normalizer("logit").fit(no_range)
    bad = data.scores.copy()
    bad.loc[0, "score"] = 120.0
    with pytest.raises(DataError, match="'m1', task 'a': 120 not in \\[0, 100\\]"):
        CollabData.from_frames(bad, task_info=data.task_info)
    with pytest.warns(UserWarning, match="kept"):
        kept = CollabData.from_frames(bad, task_info=data.task_info, out_of_range="allow")
    with pytest.raises(DataError, match="outside the task's declared range"):
        make_normalizer("logit").fit(kept)


def test_extended_and_with_params():
    norm = make_normalizer("minmax").fit(tiny())
    more = norm.extended(["c", "d"], [10.0, np.nan], [5.0, 2.0], [-1.0, 1.0])
    assert norm.keys_ == ["a", "b"]  # the original is unchanged
    np.testing.assert_allclose(more.transform(["a", "c"], [50.0, 0.0]), [0.5, 2.0])
    assert np.isnan(more.transform(["d"], [1.0])[0])  # unknown offset: no raw scale
    assert more.positions(["d", "a"]).tolist() == [3, 0]
    with pytest.raises(DataError, match="'e'"):
        more.positions(["e"])
    moved = more.with_params(more.shift_ + 1.0, more.scale_)
    np.testing.assert_allclose(moved.transform(["a"], [21.0]), [0.0])
    np.testing.assert_allclose(more.transform(["a"], [20.0]), [0.0])


def test_new_task_prior_prefers_tasks_sharing_factors():
    # Training tasks a (range 0-100), b (0-10), c (50-60), all in %; new task x shares
    # two factor values with c, one with a, none with b.
    scores = pd.DataFrame({"model": ["m1", "m2"] * 3, "task": list("aabbcc"),
                           "score": [0.0, 100.0, 0.0, 10.0, 50.0, 60.0]})
    info = pd.DataFrame({"task": list("abc"), "higher_is_better": True, "unit": "%"})
    data = CollabData.from_frames(scores, task_info=info)
    norm = make_normalizer("minmax").fit(data)
    new = pd.DataFrame({"higher_is_better": [True, True], "unit": ["%", "points"]},
                       index=["x", "y"])
    train_f = pd.DataFrame({"fmt": ["mc", "free", "mc"], "fam": ["p", "q", "r"]},
                           index=list("abc"))
    new_f = pd.DataFrame({"fmt": ["mc", "mc"], "fam": ["r", None]}, index=["x", "y"])
    shift, scale, sign = new_task_prior(norm, data.task_info, new)
    np.testing.assert_allclose(shift[:1], [0.0])  # median of 0, 0, 50
    np.testing.assert_allclose(scale[:1], [10.0])  # median of 100, 10, 10
    assert np.isnan(shift[1]) and np.isnan(scale[1])  # no training task in 'points'
    shift, scale, _ = new_task_prior(norm, data.task_info, new, train_f, new_f)
    np.testing.assert_allclose([shift[0], scale[0]], [50.0, 10.0])  # c alone shares 2
    assert np.isnan(shift[1])
    # No shared value at all: back to every same-unit task.
    none_f = pd.DataFrame({"fmt": ["other"], "fam": ["zz"]}, index=["x"])
    shift, scale, _ = new_task_prior(norm, data.task_info, new.loc[["x"]], train_f, none_f)
    np.testing.assert_allclose([shift[0], scale[0]], [0.0, 10.0])


def test_task_scale_covariance_by_hand():
    # % tasks a (0-100), b (0-10), c (50-60), d (20-60); points task e; lower-is-better f in %.
    scores = pd.DataFrame({"model": ["m1", "m2"] * 6, "task": list("aabbccddeeff"),
                           "score": [0.0, 100.0, 0.0, 10.0, 50.0, 60.0, 20.0, 60.0,
                                     1.0, 2.0, 3.0, 9.0]})
    info = pd.DataFrame({"task": list("abcdef"), "higher_is_better": [True] * 5 + [False],
                         "unit": ["%"] * 4 + ["points", "%"]})
    data = CollabData.from_frames(scores, task_info=info)
    norm = make_normalizer("minmax").fit(data)
    new = pd.DataFrame({"higher_is_better": [True, True, False], "unit": ["%", "points", "%"]},
                       index=["x", "y", "z"])
    cov = task_scale_covariance(norm, data.task_info, new)
    # x: shifts (0, 0, 50, 20), scales (100, 10, 10, 40) of a-d; e and f differ in unit or direction.
    shifts, scales = np.array([0.0, 0.0, 50.0, 20.0]), np.array([100.0, 10.0, 10.0, 40.0])
    d_sh, d_sc = shifts - shifts.mean(), scales - scales.mean()
    expect = np.array([[d_sh @ d_sh, d_sh @ d_sc], [d_sh @ d_sc, d_sc @ d_sc]]) / 3
    np.testing.assert_allclose(cov[0], expect)
    assert expect[0, 1] < 0  # wide tasks start low here
    assert np.isnan(cov[1]).all() and np.isnan(cov[2]).all()  # one task each: fewer than 3
    assert np.isnan(task_scale_covariance(norm, data.task_info, new, min_tasks=5)[0]).all()


def test_refit_task_scale_by_hand():
    # Prior shift 0, scale 10; one known score of 20 where the prior predicts 10 (y = 1).
    raw, y = np.array([20.0]), np.array([1.0])
    # Without a covariance, or with noise 0, the offset alone takes the mean residual.
    assert refit_task_scale(0.0, 10.0, raw, y) == (10.0, 10.0)
    assert refit_task_scale(0.0, 10.0, raw, y, np.diag([4.0, 16.0]), 0.0) == (10.0, 10.0)
    # Posterior mean: residual 10, gram x P x' + (0.1 * 10)^2 = 4 + 16 + 1 = 21,
    # update P x' * 10 / 21 = (40 / 21, 160 / 21): mostly into the scale, its prior spread larger.
    shift, scale = refit_task_scale(0.0, 10.0, raw, y, np.diag([4.0, 16.0]), 0.1)
    assert (shift, scale) == pytest.approx((40 / 21, 10 + 160 / 21))
    # A large noise keeps the prior; a negative covariance moves the offset down, scale up.
    assert refit_task_scale(0.0, 10.0, raw, y, np.diag([4.0, 16.0]), 100.0) == pytest.approx(
        (0.0, 10.0), abs=1e-3)
    shift, scale = refit_task_scale(0.0, 10.0, raw, y, np.array([[4.0, -6.0], [-6.0, 16.0]]), 0.1)
    # P x' = (-2, 10); gram 4 - 12 + 16 + 1 = 9
    assert (shift, scale) == pytest.approx((-20 / 9, 10 + 100 / 9))
    # Two scores at y = 0 and 1 with no noise fix both exactly.
    shift, scale = refit_task_scale(0.0, 10.0, np.array([5.0, 35.0]), np.array([0.0, 1.0]),
                                    np.diag([4.0, 16.0]), 1e-6)
    assert (shift, scale) == pytest.approx((5.0, 30.0), abs=1e-4)
    # A refit that would turn the scale non-positive moves the offset alone.
    assert refit_task_scale(0.0, 10.0, np.array([-100.0]), y, np.diag([1.0, 100.0]),
                            0.01) == (-110.0, 10.0)


def test_a_task_with_one_score_borrows_the_scale_of_its_unit():
    from cppgraph.data import CollabData
    scores = pd.DataFrame({"model": ["a", "b", "a", "b", "a", "a"],
                           "task": ["x", "x", "y", "y", "solo", "pts"],
                           "score": [10.0, 60.0, 30.0, 50.0, 42.0, 7.0]})
    info = pd.DataFrame({"task": ["x", "y", "solo", "pts"], "higher_is_better": True,
                         "unit": ["%", "%", "%", "points"], "min_score": [0, 0, 0, 0],
                         "max_score": [100, 100, 100, 20]})
    data = CollabData.from_frames(scores, task_info=info)
    norm = make_normalizer("minmax").fit(data)
    i = norm.positions(["solo", "pts"])
    # "solo" (%) takes the median shift (10, 30 -> 20) and range (50, 20 -> 35) of x and y.
    assert norm.shift_[i[0]] == pytest.approx(20.0) and norm.scale_[i[0]] == pytest.approx(35.0)
    assert norm.transform(["solo"], [42.0])[0] == pytest.approx(22 / 35)
    # "pts" has no other task of its unit: its own score as shift, its declared range as scale.
    assert norm.shift_[i[1]] == 7.0 and norm.scale_[i[1]] == 20.0
    z = make_normalizer("zscore").fit(data)
    assert z.scale_[z.positions(["solo"])[0]] == pytest.approx(np.median([25.0, 10.0]))
