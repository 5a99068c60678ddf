"""Prediction intervals: conformal quantiles, the calibration refit, every predict path."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from cppgraph import calibrate, coldstart
from cppgraph.calibrate import MIN_SCORES, Calibration, half_widths, percentiles, top_models
from cppgraph.cli import cli as main
from cppgraph.config import Config
from cppgraph.data import read_data
from cppgraph.errors import CppGraphError, DataWarning
from cppgraph.estimator import CPPGraph
from cppgraph.evaluate.metrics import interval_metrics
from cppgraph.persist import WEIGHTS_FILE

from conftest import FAST


@pytest.fixture(scope="module")
def demo(demo_dir):
    return read_data(demo_dir)


@pytest.fixture(scope="module")
def held_est(demo):
    """Fitted without two models and one task, which come back as new ones."""
    models, tasks = demo.models[-2:], ["syn-arithmetic"]
    keep = demo.subset(models=demo.models[:-2], tasks=[t for t in demo.tasks if t not in tasks])
    return CPPGraph(random_state=0, **FAST).fit(keep), models, tasks


def _inside(table: pd.DataFrame, info: pd.DataFrame) -> None:
    """Each interval holds its prediction and lies within its task's declared range."""
    ok = table["predicted"].notna()
    t = table[ok]
    assert t["lower"].notna().all() and t["upper"].notna().all()
    assert (t["lower"] <= t["predicted"] + 1e-9).all() and (t["predicted"] <= t["upper"] + 1e-9).all()
    lo = info["min_score"].reindex(t["task"]).to_numpy()
    hi = info["max_score"].reindex(t["task"]).to_numpy()
    has_lo, has_hi = np.isfinite(lo), np.isfinite(hi)
    assert (t["lower"].to_numpy()[has_lo] >= lo[has_lo] - 1e-9).all()
    assert (t["upper"].to_numpy()[has_hi] <= hi[has_hi] + 1e-9).all()
    assert (t["upper"] > t["lower"]).mean() > 0.9


def test_conformal_quantile_by_hand():
    values = np.arange(1, 31, dtype=float)  # 30 sorted scores
    cal = Calibration(scale=np.array([0.5, 2.0]), scores={
        "cell": values, "model": {0: values * 2, 2: values * 3}})
    # rank ceil((30 + 1) * 0.9) = 28: the 28th smallest score
    assert cal.quantile("cell", 0.9) == 28.0
    assert cal.quantile("cell", 0.5) == 16.0  # ceil(15.5)
    assert cal.quantile("cell", 0.99) == np.inf  # rank 31 > 30
    # a new model uses the largest calibrated count not above its own
    assert cal.quantile("model", 0.9, known=0) == 56.0
    assert cal.quantile("model", 0.9, known=1) == 56.0
    assert cal.quantile("model", 0.9, known=7) == 84.0
    assert cal.quantile("task", 0.9) == np.inf  # nothing calibrated
    few = Calibration(scale=np.ones(1), scores={"cell": values[: MIN_SCORES - 1]})
    assert few.quantile("cell", 0.5) == np.inf
    with pytest.warns(DataWarning, match="too few calibration errors of unobserved cells"):
        assert half_widths(few, 0.5, "cell", np.array([0]))[0] == np.inf
    # half-width = quantile x the task's scale; a new task takes the mean scale
    assert half_widths(cal, 0.9, "cell", np.array([0, 1])).tolist() == [14.0, 56.0]
    assert half_widths(cal, 0.9, "model", np.array([1, 1]), np.array([0, 3])).tolist() == [112.0, 168.0]
    back = Calibration.from_dict(cal.to_dict())
    assert back.quantile("model", 0.9, known=2) == 84.0 and back.scale.tolist() == [0.5, 2.0]
    # models above the training ones use the "top" scores, or the "model" ones without them
    top = np.array([True, False])
    assert half_widths(cal, 0.9, "model", np.array([1, 1]), 0, top).tolist() == [112.0, 112.0]
    cal.scores["top"] = {0: values * 4}
    assert half_widths(cal, 0.9, "model", np.array([1, 1]), 0, top).tolist() == [224.0, 112.0]
    assert half_widths(cal, 0.9, "model", np.array([1, 1]), 3, top).tolist() == [224.0, 168.0]
    # with a top scale per task, the "top" quantile multiplies it; the others keep the scale
    cal.top_scale = np.array([1.0, 3.0])
    assert half_widths(cal, 0.9, "model", np.array([1, 0]), 0, np.array([True, True])).tolist() \
        == [336.0, 112.0]
    assert half_widths(cal, 0.9, "model", np.array([1, 1]), 0, top).tolist() == [336.0, 112.0]
    back = Calibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    assert back.top_scale.tolist() == [1.0, 3.0]
    legacy = {k: v for k, v in cal.to_dict().items() if k != "top_scale"}
    assert Calibration.from_dict(legacy).top_scale is None  # a folder from before: the scale
    for bad in ([1.0], [1.0, 0.0], [1.0, float("nan")]):
        with pytest.raises(ValueError, match="one per task"):
            Calibration.from_dict({**cal.to_dict(), "top_scale": bad})


def test_task_scales_by_hand():
    """The task error scale: mean absolute leak-free residual shrunk toward the mean of
    all cells by SCALE_PRIOR (5) pseudo-cells; the top scale: over the cells at or above
    the frontier_level percentile of their task, shrunk toward the task's scale."""
    assert calibrate.SCALE_PRIOR == 5.0
    y = np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6], [0.9, 0.8]])
    pred = np.array([[0.2, 0.2], [0.3, 0.5], [0.4, 0.6], [0.5, 0.7]])
    ts = SimpleNamespace(y=y, known=np.ones_like(y, dtype=bool), predicted=pred,
                         fold=np.zeros_like(y, dtype=np.int64))
    est = SimpleNamespace(training_scores_=ts, data_=SimpleNamespace(tasks=["a", "b"]),
                          observed_stage_=SimpleNamespace(apply=lambda p, *_: p),
                          config=Config(frontier_level=0.75))
    # errors: a 0.1 0 0.1 0.4, b 0 0.1 0 0.1; mean of all cells 0.1
    a, b = (0.6 + 5 * 0.1) / 9, (0.2 + 5 * 0.1) / 9
    scale, top = calibrate.task_scales(est)
    np.testing.assert_allclose(scale.to_numpy(), [a, b])
    # mid-rank percentiles of the last row: 7/8 in both tasks, the only cells >= 0.75
    np.testing.assert_allclose(top.to_numpy(), [(0.4 + 5 * a) / 6, (0.1 + 5 * b) / 6])
    # without the top scale (the refit's own unobserved cells need only the task scale)
    alone, none = calibrate.task_scales(est, top=False)
    np.testing.assert_allclose(alone.to_numpy(), [a, b])
    assert none is None


def test_choose_path_by_hand():
    """The default path stays unless another's mean error per held-out entity is lower by
    more than PATH_T (1) standard errors of the paired difference, over at least
    MIN_PATH_ENTITIES (20) entities."""
    assert (calibrate.PATH_T, calibrate.MIN_PATH_ENTITIES) == (1.0, 20)
    names = np.repeat([f"m{i}" for i in range(24)], 2)  # two cells per entity
    base = np.linspace(0.2, 0.75, 24)

    def errors(per_entity):
        return pd.DataFrame({"name": names, "err": np.repeat(per_entity, 2)})

    # differences 0.10, 0.11, 0.09, 0.10 (x6): mean 0.1, sd 0.0072, t = 68
    better = errors(base - np.tile([0.10, 0.11, 0.09, 0.10], 6))
    # differences 0.1, -0.1, 0.05, -0.05 (x6): mean 0, t = 0
    mixed = errors(base - np.tile([0.1, -0.1, 0.05, -0.05], 6))
    # differences 0.1, -0.07 (x12): mean 0.015, sd 0.0868, t = 0.85
    below = errors(base - np.tile([0.1, -0.07], 12))
    # differences 0.1, -0.06 (x12): mean 0.02, sd 0.0817, t = 1.20
    above = errors(base - np.tile([0.1, -0.06], 12))
    choose, base = calibrate._choose_path, errors(base)
    assert choose({"stages": base, "fold-in": better}, "stages") == "fold-in"
    assert choose({"stages": base, "fold-in": mixed}, "stages") == "stages"
    assert choose({"stages": base, "fold-in": below}, "stages") == "stages"
    assert choose({"stages": base, "fold-in": above}, "stages") == "fold-in"
    assert choose({"stages": better, "fold-in": base}, "stages") == "stages"
    # fewer than 20 entities in common: no evidence
    assert choose({"stages": base.iloc[:38], "fold-in": better.iloc[:38]}, "stages") == "stages"
    assert choose({"stages": base}, "stages") == "stages"


def test_calibration_keeps_its_known_path():
    cal = calibrate.Calibration(np.ones(3), known_path={"model": "fold-in", "task": "stages"})
    back = calibrate.Calibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    assert back.known_path == {"model": "fold-in", "task": "stages"}
    for bad in ({"model": "auto"}, {"entity": "stages"}, ["stages"]):
        with pytest.raises(ValueError, match="known_path"):
            calibrate.Calibration.from_dict({**cal.to_dict(), "known_path": bad})


def test_top_models_by_hand():
    y = np.array([[0.1, 0.2], [0.5, 0.4], [0.9, np.nan], [0.3, 0.8]])
    ts = SimpleNamespace(y=y, known=np.isfinite(y))
    # task 0 holds 0.1 0.3 0.5 0.9: mid-rank percentile of 0.9 is (3 + 4) / 8, of 1.0 is 1,
    # of 0.3 is (1 + 2) / 8; task 1 holds 0.2 0.4 0.8: 0.8 is (2 + 3) / 6
    assert percentiles(y, np.array([0, 0, 0, 1]), np.array([0.9, 1.0, 0.3, 0.8])).tolist() == \
        [7 / 8, 1.0, 3 / 8, 5 / 6]
    est = SimpleNamespace(training_scores_=ts, data_=SimpleNamespace(tasks=["a", "b"]),
                          normalizer_=SimpleNamespace(transform=lambda t, v, models=None: v),
                          config=Config())
    known = pd.DataFrame({"model": ["n1", "n1", "n2"], "task": ["a", "b", "a"],
                          "score": [1.0, 0.8, 0.9]})
    predicted = pd.DataFrame({"model": ["n1", "n1", "n3", "n3", "n2"],
                              "task": ["a", "b", "a", "b", "b"], "value": [0.0, 0.0, 1.0, 0.9, 1.0]})
    # n1 by its known scores: (1 + 5/6) / 2 >= 0.9 (its low predictions are not used);
    # n2: 7/8 < 0.9; n3 has no known score, so its predictions count: (1 + 1) / 2
    assert top_models(est, ["n1", "n2", "n3"], known, predicted).tolist() == [True, False, True]
    # The level is the configuration's frontier_level: at 0.85, n2 (7/8) is above it too.
    est.config = Config(frontier_level=0.85)
    assert top_models(est, ["n1", "n2", "n3"], known, predicted).tolist() == [True, True, True]


def test_bad_levels_and_missing_calibration():
    cal = Calibration(scale=np.ones(1), scores={"cell": np.arange(30.0)})
    for level in (0, 1, 1.5, -0.1):
        with pytest.raises(CppGraphError, match="level must be in"):
            half_widths(cal, level, "cell", np.array([0]))
    with pytest.raises(CppGraphError, match="fitted without intervals"):
        half_widths(None, 0.9, "cell", np.array([0]))
    with pytest.raises(ValueError, match="not finite"):
        Calibration.from_dict({"scale": [1.0], "scores": {"cell": [1.0, float("nan")]}})


def test_error_correlation_is_kept_with_the_weights(fast_est, fast_model_dir, tmp_path):
    """A model folder keeps the calibration's task error correlation in its weights file;
    a folder without it (saved before it was kept) loads without one, and one of the
    wrong shape is refused."""
    back = CPPGraph.load(fast_model_dir)
    np.testing.assert_array_equal(back.calibration_.error_corr, fast_est.calibration_.error_corr)
    assert "error_corr" not in fast_est.calibration_.to_dict()
    for name, change in (("old", lambda s: s.pop("error_corr")),
                         ("bad", lambda s: s.update(error_corr=s["error_corr"][:1]))):
        folder = tmp_path / name
        shutil.copytree(fast_model_dir, folder)
        state = torch.load(folder / WEIGHTS_FILE, weights_only=True)
        change(state)
        torch.save(state, folder / WEIGHTS_FILE)
        if name == "old":
            assert CPPGraph.load(folder).calibration_.error_corr is None
        else:
            with pytest.raises(CppGraphError, match="task error correlation is not a"):
                CPPGraph.load(folder)


def test_interval_metrics_by_hand():
    truth = np.array([0.5, 0.5, 0.5, 0.5])
    pred = np.array([0.5, 0.6, 0.8, 0.1])
    lower = np.array([0.4, 0.55, 0.6, 0.0])
    upper = np.array([0.6, 0.75, 1.0, 0.3])
    m = interval_metrics(truth, pred, lower, upper)
    assert m["coverage_90"] == 0.25  # only the first interval holds 0.5
    assert m["width_90"] == pytest.approx((0.2 + 0.2 + 0.4 + 0.3) / 4)
    # widths 0.2, 0.2, 0.4, 0.3 against errors 0, 0.1, 0.3, 0.4: ranks 1.5 1.5 4 3 / 1 2 3 4
    assert m["width_rho"] == pytest.approx(np.corrcoef([1.5, 1.5, 4, 3], [1, 2, 3, 4])[0, 1])


def test_every_predict_path_gets_intervals_inside_the_range(held_est, demo):
    est, models, tasks = held_est
    assert est.calibration_ is not None
    assert set(est.calibration_.scores) == {"cell", "model", "top", "task"}
    table = est.predict(interval=0.9)
    _inside(table, demo.task_info)
    observed = table[table["is_observed"]]
    assert len(observed) and observed["lower"].notna().all()
    wide = est.predict(interval=0.5)
    assert ((wide["upper"] - wide["lower"]) <= (table["upper"] - table["lower"]) + 1e-9).all()
    factors = demo.model_factors.loc[models].reset_index()
    known = demo.scores[demo.scores["model"].isin(models) & ~demo.scores["task"].isin(tasks)]
    cold = est.predict_new_models(factors, interval=0.9)
    warm = est.predict_new_models(factors, known.groupby("model").head(3), interval=0.9)
    for t in (cold, warm):
        _inside(t, demo.task_info)
    # more known scores, narrower intervals (the same task scale, a lower quantile)
    width = lambda t: (t["upper"] - t["lower"]).mean()  # noqa: E731
    assert width(warm) < width(cold)
    # new models are less certain than unobserved cells of training models
    assert width(cold) > width(table)
    info = demo.task_info.loc[tasks].reset_index()
    truth = demo.scores[demo.scores["task"].isin(tasks) & demo.scores["model"].isin(est.data_.models)]
    new_task = est.predict_new_tasks(demo.task_factors.loc[tasks].reset_index(), truth.head(4),
                                     task_info=info, interval=0.9)
    _inside(new_task, demo.task_info)
    assert "lower" not in est.predict().columns


def test_intervals_survive_save_and_load(fast_est, tmp_path):
    path = fast_est.save(tmp_path / "m")
    back = CPPGraph.load(path)
    a, b = fast_est.predict(interval=0.9), back.predict(interval=0.9)
    np.testing.assert_allclose(a["lower"], b["lower"], rtol=1e-5)
    np.testing.assert_allclose(a["upper"], b["upper"], rtol=1e-5)


def test_fitted_without_intervals_says_so(demo):
    est = CPPGraph(random_state=0, epochs=3, patience=3, intervals=False).fit(demo)
    assert est.calibration_ is None
    with pytest.raises(CppGraphError, match="intervals = true"):
        est.predict(interval=0.9)


def test_cli_predict_interval(fast_model_dir):
    runner = CliRunner()
    res = runner.invoke(main, ["predict", str(fast_model_dir), "--all", "--interval", "0.9",
                               "--format", "csv"])
    assert res.exit_code == 0, res.output
    header = res.output.splitlines()[0].split(",")
    assert header[:5] == ["model", "task", "predicted", "lower", "upper"]
    for bad in ("0", "1", "1.5", "x"):
        res = runner.invoke(main, ["predict", str(fast_model_dir), "--all", "--interval", bad])
        assert res.exit_code == 2 and "--interval" in res.output


def test_refit_cap_leaves_out_whole_models(monkeypatch):
    monkeypatch.setattr(calibrate, "MAX_REFIT_CELLS", 5)
    scores = pd.DataFrame({"model": list("aaabbcccc"), "task": list("xyzxyxyzw")})
    rng = np.random.default_rng(0)
    spare = calibrate._spare_models(scores, rng)
    left = scores[~scores["model"].isin(spare)]
    assert 0 < len(left) <= 5 and spare == sorted(set(spare)) and set(spare) <= set("abc")
    # The same seed spares the same models.
    assert calibrate._spare_models(scores, np.random.default_rng(0)) == spare
    assert calibrate._spare_models(scores.iloc[:5], rng) == []


def test_calibration_refit_keeps_to_the_cap(demo, monkeypatch):
    cap = len(demo.scores) // 3
    monkeypatch.setattr(calibrate, "MAX_REFIT_CELLS", cap)
    sizes = []
    fit = CPPGraph.fit

    def spy(self, data, **kwargs):
        sizes.append(len(data.scores))
        return fit(self, data, **kwargs)

    monkeypatch.setattr(CPPGraph, "fit", spy)
    # in this process, so that the spy sees the refit
    est = CPPGraph(random_state=0, epochs=5, calibration_process=False).fit(demo)
    assert sizes[0] == len(demo.scores) and 0 < sizes[1] <= cap
    assert len(est.calibration_.scores["cell"]) > 0
    assert all(len(v) > 0 for v in est.calibration_.scores["model"].values())


def test_refit_keeps_the_signed_errors_of_held_out_models(fast_est):
    """``"residuals"``: the held-out models' errors without known scores, signed, by task;
    their sizes are the ``"model"`` and ``"top"`` scores at 0 known (none drawn away here)."""
    errors = calibrate.refit_errors(fast_est.data_, fast_est.fit_config_, fast_est.normalizer_,
                                    fast_est.training_scores_.y)
    res = errors["residuals"]
    assert res.shape[1] == len(fast_est.data_.tasks)
    seen = res[np.isfinite(res)]
    assert (seen > 0).any() and (seen < 0).any()
    sizes = np.concatenate([errors["model"][0][0], errors["top"][0][0]])
    assert len(sizes) < calibrate.MAX_SCORES
    np.testing.assert_allclose(np.sort(np.abs(seen)), np.sort(sizes))


def test_refit_keeps_the_errors_of_the_path_it_chooses(fast_est, monkeypatch):
    """Under ``known_path = "auto"`` the refit tries fold-in beside the stages only with
    at least MIN_PATH_ENTITIES entities held out at random (the demo's 60 models give
    12), and keeps the errors of the path chosen; without known scores both are one."""
    args = (fast_est.data_, fast_est.fit_config_.replace(known_path="auto"),
            fast_est.normalizer_, fast_est.training_scores_.y)
    tried, pick = [], {}

    def choose(errors, default):
        tried.append(sorted(errors))
        return pick.get("path", default)

    monkeypatch.setattr(calibrate, "_choose_path", choose)
    stages = calibrate.refit_errors(*args)
    assert tried == [["stages"], ["stages"]] and stages["paths"] == {"model": "stages",
                                                                      "task": "stages"}
    monkeypatch.setattr(calibrate, "MIN_PATH_ENTITIES", 1)
    tried.clear()
    pick["path"] = "fold-in"
    folded = calibrate.refit_errors(*args)
    assert tried[0] == ["fold-in", "stages"] and folded["paths"]["model"] == "fold-in"
    for kind in ("model", "top"):
        np.testing.assert_array_equal(folded[kind][0][0], stages[kind][0][0])
    assert not np.allclose(np.sort(folded["model"][2][0]), np.sort(stages["model"][2][0]))


def test_skipping_the_known_cells_keeps_the_others(held_est, demo):
    """The calibration predicts new entities' unknown cells only (``predict_known=False``):
    the known cells are NaN, every other cell as in the full prediction."""
    est, models, tasks = held_est
    factors = demo.model_factors.loc[models].reset_index()
    known = demo.scores[demo.scores["model"].isin(models) & ~demo.scores["task"].isin(tasks)]
    known = known.groupby("model").head(3)[["model", "task", "score"]]
    full = est.predict_new_models(factors, known)
    part = coldstart.predict_new(est, "model", factors, known, files={}, predict_known=False)
    is_known = full["is_observed"].to_numpy()
    assert is_known.sum() == len(known)
    assert part["predicted"][is_known].isna().all()
    np.testing.assert_array_equal(part["predicted"][~is_known], full["predicted"][~is_known])


def test_task_scale_on_a_subset_of_large_data(fast_est, monkeypatch):
    cap = 100
    monkeypatch.setattr(calibrate, "MAX_SCALE_CELLS", cap)
    seen = []
    apply = fast_est.observed_stage_.apply

    def spy(pred, rows, cols, fold, train):
        seen.append(len(rows))
        return apply(pred, rows, cols, fold, train)

    monkeypatch.setattr(fast_est.observed_stage_, "apply", spy)
    for scale in calibrate.task_scales(fast_est):
        assert list(scale.index) == fast_est.data_.tasks
        assert np.isfinite(scale).all() and (scale > 0).all()
    assert seen == [cap]


def test_conformity_scores_by_hand(monkeypatch):
    """Each kind's errors over its scale: unobserved cells and new models over the task
    scale (cells also their refit-scaled scores as they are), models above the training
    ones over the top scale, new tasks over the mean task scale."""
    tasks = ["a", "b"]
    monkeypatch.setattr(calibrate, "task_scales", lambda est, top=True: (
        pd.Series([1.0, 2.0], index=tasks), pd.Series([4.0, 8.0], index=tasks)))
    err, on = np.array([2.0, 4.0]), np.array(["a", "b"])
    errors = {"cell": ((err, on), np.array([7.0])), "model": {0: (err, on)},
              "top": {0: (err, on), 2: (err * 4, on)}, "task": {1: (np.array([3.0]), None)}}
    cal = calibrate.fit_calibration(SimpleNamespace(), errors=errors)
    assert cal.scores["cell"].tolist() == [2.0, 2.0, 7.0]
    assert cal.scores["model"][0].tolist() == [2.0, 2.0]
    assert cal.scores["top"][0].tolist() == [0.5, 0.5]  # 2 over 4, 4 over 8
    assert cal.scores["top"][2].tolist() == [2.0, 2.0]
    assert cal.scores["task"][1].tolist() == [2.0]  # 3 over the mean scale 1.5
    assert cal.scale.tolist() == [1.0, 2.0] and cal.top_scale.tolist() == [4.0, 8.0]


def test_cell_scores_use_both_scales(demo, monkeypatch):
    """Each held-out unobserved cell gives two scores: its error over the fitted model's
    task scale and over the refit's own. With the refit's scale replaced by the fitted
    model's the two are equal; with four times that, the second is a quarter of the first.
    The new-model, top and new-task scores use the fitted model's scales only."""
    real = calibrate.task_scales

    def fitted(factor):
        first = {}

        def scales(est, top=True):
            if est.fit_config_.intervals:  # the fitted model, called first
                first["scales"] = real(est)
                return first["scales"]
            return tuple(s.reindex(est.data_.tasks) * factor for s in first["scales"])
        return scales

    cals = []
    for factor in (1.0, 4.0):
        monkeypatch.setattr(calibrate, "task_scales", fitted(factor))
        cals.append(CPPGraph(random_state=0, epochs=5, calibration_process=False)
                    .fit(demo).calibration_)
    same, quarter = (c.scores["cell"] for c in cals)
    assert len(same) >= 2 * MIN_SCORES and len(same) % 2 == 0
    np.testing.assert_array_equal(same[0::2], same[1::2])
    first = same[0::2]
    np.testing.assert_allclose(quarter, np.sort(np.concatenate([first, first / 4])), rtol=1e-12)
    for kind in ("model", "top", "task"):
        assert cals[0].scores[kind].keys() == cals[1].scores[kind].keys()
        for k, v in cals[0].scores[kind].items():
            np.testing.assert_array_equal(v, cals[1].scores[kind][k])
