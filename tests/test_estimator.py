"""The engine: training lowers the loss, determinism, no leakage, cold start, save/load."""

from __future__ import annotations

import ast
import copy
import inspect
import json

import numpy as np
import pandas as pd
import pytest
import torch

from cppgraph import coldstart, estimator
from cppgraph import config as config_module
from cppgraph.config import AUTO_SCHEDULE, LARGE_DATA_CELLS, SPARSE_DENSITY, Config
from cppgraph.data import read_canonical
from cppgraph.errors import CppGraphError, DataError, DataWarning
from cppgraph.estimator import CPPGraph
from cppgraph.normalize import refit_task_scale
from cppgraph.regression import (benchmark_regression, centered_ridge, column_correlations,
                                 known_score_regression)
from cppgraph.train import EarlyStopping

#: Short fits; the interval calibration (tests/test_intervals.py) is off here.
FAST = dict(epochs=50, patience=50, intervals=False)
#: Briefer fits, for tests of determinism and leakage, which hold for any weights.
BRIEF = dict(epochs=15, patience=15, intervals=False)


@pytest.fixture(scope="module")
def demo(demo_dir):
    return read_canonical(demo_dir)


@pytest.fixture(scope="module", params=["lightgcn", "sage"])
def fitted(request, demo):
    return CPPGraph(encoder=request.param, random_state=0, **FAST).fit(demo)


def test_training_lowers_loss(fitted):
    log = fitted.log_
    assert log[-1]["train_loss"] < 0.5 * log[0]["train_loss"]
    best = min(e["val_loss"] for e in log)
    assert best < 0.5 * log[0]["val_loss"]


def test_predict_table(fitted, demo):
    table = fitted.predict()
    assert len(table) == len(demo.models) * len(demo.tasks)
    assert table["is_observed"].sum() == demo.n_observed
    # The head is bounded to (0, 1); the residual correction may step a little outside.
    assert table["predicted_normalized"].between(-0.5, 1.5).all()
    obs = table[table["is_observed"]]
    # Raw units come back through the exact inverse of the normalization.
    np.testing.assert_allclose(
        fitted.normalizer_.transform(obs["task"], obs["predicted"]), obs["predicted_normalized"],
        atol=1e-9)
    mae = (obs["predicted_normalized"] - obs["observed_normalized"]).abs().mean()
    assert mae < 0.12  # far better than a constant: the demo's per-task spread is ~0.25


def test_same_seed_same_predictions(demo):
    a = CPPGraph(random_state=3, **BRIEF).fit(demo).predict()
    b = CPPGraph(random_state=3, **BRIEF).fit(demo).predict()
    pd.testing.assert_frame_equal(a, b)
    c = CPPGraph(random_state=4, **BRIEF).fit(demo).predict()
    assert not np.allclose(a["predicted"], c["predicted"])


def _with_score(est, edge: int, value: float):
    """Put ``value`` (normalized) on score edge ``edge``, in the graph and in the stages' matrix."""
    score = est.graph_.score.clone()
    score[edge] = value
    est.graph_ = est.graph_.with_scores(score)
    m, t = int(est.graph_.score_model[edge]), int(est.graph_.score_task[edge])
    est.training_scores_.y[m, t] = value


def test_observed_cell_does_not_see_its_own_score(fitted, demo):
    """Changing the score on an observed cell's edge leaves that cell's prediction unchanged."""
    cell = demo.scores.iloc[[0]][["model", "task"]]
    observed = set(map(tuple, demo.scores[["model", "task"]].to_numpy()))
    other = next(t for t in demo.tasks if (cell["model"].iloc[0], t) not in observed)
    probe = pd.DataFrame({"model": cell["model"], "task": [other]})
    before, unseen = fitted.predict(cell)["predicted"].iloc[0], fitted.predict(probe)["predicted"].iloc[0]
    graph, y = fitted.graph_, fitted.training_scores_.y.copy()
    try:
        _with_score(fitted, 0, 1.0 - float(graph.score[0]))  # edge 0 is that cell
        after = fitted.predict(cell)["predicted"].iloc[0]
        # ...while an unobserved cell of the same model does see it (the check can fail).
        changed = fitted.predict(probe)["predicted"].iloc[0]
    finally:
        fitted.graph_, fitted.training_scores_.y = graph, y
    assert after == before
    assert changed != unseen


def test_observed_cells_use_the_table_that_never_saw_them(fitted, demo):
    """A training cell of fold f is predicted by ID table f with fold f out of the graph."""
    folds = fitted.folds_
    assert folds.fold.min() == 0 and folds.fold.max() == fitted.fit_config_.predict_folds
    assert (folds.fold == folds.k).float().mean() == pytest.approx(0.1, abs=0.01)
    edge = int(torch.nonzero(folds.fold == 2)[0])
    cell = demo.scores.iloc[[edge]][["model", "task"]]
    from cppgraph.train import predict_pairs
    pair = torch.tensor([[int(fitted.graph_.score_model[edge])], [int(fitted.graph_.score_task[edge])]])
    view = folds.view(2)
    assert view.table == 2 and view.edges[edge] == 0 and view.edges.sum() == (folds.fold != 2).sum()
    expect = float(predict_pairs(fitted.network_, fitted.graph_, pair, view)[0])
    fitted.observed_stage_.weight_, saved = 0.0, fitted.observed_stage_.weight_
    try:
        assert fitted.predict(cell)["predicted_normalized"].iloc[0] == pytest.approx(expect, abs=1e-6)
    finally:
        fitted.observed_stage_.weight_ = saved


def test_observed_regression_does_not_see_the_cells_own_score(demo):
    """With the benchmark regression mixed in, an observed cell still never sees
    its own score; the regression does move the predictions (the check can fail)."""
    est = CPPGraph(random_state=0, observed_regression=0.5, **BRIEF).fit(demo)
    assert est.observed_stage_.weight_ == 0.5
    cells = demo.scores[["model", "task"]].iloc[:40]
    rows, cols, edge = est._cells(cells)
    fold = est.folds_.fold.numpy()[edge]
    reg = est.observed_stage_._regress(est.training_scores_, rows, cols, fold)
    i = int(np.flatnonzero(np.isfinite(reg))[0])  # a cell the regression reaches
    cell = cells.iloc[[i]]
    before = est.predict(cell)["predicted"].iloc[0]
    _with_score(est, i, 1.0 - float(est.graph_.score[i]))  # edge i is that cell
    assert est.predict(cell)["predicted"].iloc[0] == before
    est.observed_stage_.weight_ = 0.0
    assert est.predict(cell)["predicted"].iloc[0] != before


def test_observed_regression_setting(demo, tmp_path):
    assert CPPGraph().config.observed_regression == "task"
    auto = CPPGraph(random_state=0, observed_regression="auto", **BRIEF).fit(demo)
    assert auto.observed_stage_.weight_ in np.round(np.linspace(0, 1, 11), 2)
    train = auto.training_scores_
    assert isinstance(train.k, int) and train.predicted.shape == train.y.shape
    val = train.fold == train.k
    assert val.sum() == len(auto.folds_.validation)  # the weight is chosen on these cells
    assert np.isfinite(train.predicted[val]).all()
    loaded = CPPGraph.load(auto.save(tmp_path / "m"))
    assert loaded.observed_stage_.weight_ == auto.observed_stage_.weight_
    for bad in (1.5, -0.1, "yes", True):
        with pytest.raises(CppGraphError, match="observed_regression must be 'auto', 'task' or in"):
            Config(observed_regression=bad)


def test_cold_start_zero_and_k_known(demo):
    rng = np.random.default_rng(0)
    held = list(rng.choice(demo.models, size=6, replace=False))
    train = demo.subset(models=[m for m in demo.models if m not in held])
    est = CPPGraph(random_state=0, **FAST).fit(train)
    factors = demo.model_factors.loc[held].reset_index()
    truth = demo.scores[demo.scores["model"].isin(held)]
    zero = est.predict_new_models(factors)
    assert len(zero) == len(held) * len(demo.tasks)
    assert zero["predicted"].notna().all() and not zero["is_observed"].any()
    known = truth.sample(frac=1.0, random_state=0).groupby("model").head(3)
    rest = truth.drop(known.index)
    k3 = est.predict_new_models(factors, known)
    assert k3["is_observed"].sum() == len(known)

    def mae(pred):
        merged = rest.merge(pred, on=["model", "task"])
        y = est.normalizer_.transform(merged["task"], merged["score"])
        return float(np.abs(merged["predicted_normalized"] - y).mean())

    # Cold start from factors alone is informative (the demo's per-task spread is ~0.25);
    # three known scores reveal the demo's per-model effect, which no factor explains.
    assert mae(zero) < 0.15
    assert mae(k3) < mae(zero) - 0.005
    # With the known-score stage off (known_regression = 0, which the network's fit does
    # not read), the network alone reads them: they are score edges of the new node,
    # embedded as in the training's cold-node episodes; higher known scores give higher
    # predictions on the other tasks.
    est.known_stage_.weight_ = 0.0
    low = est.predict_new_models(factors, known.assign(score=known["score"] * 0.5))
    high = est.predict_new_models(factors, known.assign(score=(known["score"] * 1.5).clip(upper=100)))
    unknown = ~low["is_observed"]
    assert (high["predicted_normalized"][unknown] - low["predicted_normalized"][unknown]).mean() > 0.01


@pytest.fixture(scope="module")
def without_arithmetic(demo):
    """The engine fitted briefly without the task syn-arithmetic (do not modify)."""
    return CPPGraph(random_state=0, **BRIEF).fit(
        demo.subset(tasks=[t for t in demo.tasks if t != "syn-arithmetic"]))


@pytest.fixture(scope="module", params=["model", "task"])
def held_out(request, demo):
    """``(kind, held, est)``: the engine fitted briefly without two models or one task."""
    if request.param == "model":
        held = demo.models[:2]
        return "model", held, CPPGraph(random_state=0, **BRIEF).fit(demo.subset(models=demo.models[2:]))
    return "task", ["syn-arithmetic"], request.getfixturevalue("without_arithmetic")


@pytest.mark.parametrize("fold_in_steps", [0, 30])
def test_known_cell_does_not_see_its_own_score(demo, held_out, fold_in_steps):
    """Also when the known scores fit the new entity's ID vector (fold-in)."""
    kind, held, est = held_out
    plain = est.config
    est.config = plain.replace(known_path="both", fold_in_steps=fold_in_steps,
                               fold_in_penalty=0.01)
    try:
        _check_known_cell(demo, kind, held, est)
    finally:
        est.config = plain


def _check_known_cell(demo, kind, held, est):
    if kind == "model":
        factors, predict = demo.model_factors.loc[held].reset_index(), est.predict_new_models
    else:
        factors, predict = demo.task_factors.loc[held].reset_index(), est.predict_new_tasks
    known = demo.scores[demo.scores[kind].isin(held)].groupby(kind).head(4).reset_index(drop=True)
    before = predict(factors, known).set_index(["model", "task"])
    changed = known.copy()
    changed.loc[0, "score"] = 3.0
    after = predict(factors, changed).set_index(["model", "task"])
    cell = (changed.loc[0, "model"], changed.loc[0, "task"])
    assert after.loc[cell, "predicted"] == pytest.approx(before.loc[cell, "predicted"], abs=1e-9)
    assert after.loc[cell, "observed"] == 3.0
    # ... while the new entity's other predictions do use it.
    same = after.index.get_level_values(kind) == changed.loc[0, kind]
    assert (after.loc[same, "predicted"] - before.loc[same, "predicted"]).abs().max() > 1e-3


def test_fold_in_reads_known_scores_through_the_frozen_network(demo):
    """With the known-score stages off, fitting a new model's ID vector to its known
    scores lowers the error on its other tasks; the network's weights do not move, and
    a prohibitive penalty keeps the vector near zero (about no fold-in)."""
    rng = np.random.default_rng(1)
    held = list(rng.choice(demo.models, size=8, replace=False))
    train = demo.subset(models=[m for m in demo.models if m not in held])
    off = dict(FAST, intervals=False, known_shrinkage=0, known_regression=0)
    est = CPPGraph(random_state=0, **off).fit(train)
    factors = demo.model_factors.loc[held].reset_index()
    truth = demo.scores[demo.scores["model"].isin(held)]
    known = truth.sample(frac=1.0, random_state=0).groupby("model").head(3)
    rest = truth.drop(known.index)

    def mae(config):
        est.config = config
        merged = rest.merge(est.predict_new_models(factors, known), on=["model", "task"])
        return float((merged["score"] - merged["predicted"]).abs().mean())

    plain = est.config
    weights = {k: v.clone() for k, v in est.network_.state_dict().items()}
    folding = plain.replace(known_path="fold-in", fold_in_steps=100, fold_in_penalty=0.01)
    without, folded = mae(plain), mae(folding)
    assert folded < 0.9 * without, (folded, without)
    assert all(torch.equal(v, weights[k]) for k, v in est.network_.state_dict().items())
    assert all(p.requires_grad for p in est.network_.parameters())
    stiff = mae(folding.replace(fold_in_penalty=1e9))
    assert abs(stiff - without) < 0.05 * (without - folded)  # Adam leaves it near zero
    # A new model's embedding is the one its predictions use: fold-in moves it.
    row, scores = factors.iloc[[0]], known[known["model"] == factors.at[0, "model"]]
    est.config = plain
    bare, no_scores = est.new_model_embeddings(row, scores), est.new_model_embeddings(row)
    est.config = folding
    assert not np.allclose(est.new_model_embeddings(row, scores), bare, atol=1e-3)
    np.testing.assert_allclose(est.new_model_embeddings(row), no_scores)
    est.config = plain


def test_known_path_chooses_what_known_scores_move(demo):
    """``known_path``: "fold-in" is fold-in without the stages (as "both" with the fitted
    stages off), "stages" the stages without fold-in (as "both" with no steps); without
    known scores every path predicts the same; "auto" follows the calibration's choice
    by kind, and the stages without a calibration."""
    from cppgraph.calibrate import Calibration
    held = list(np.random.default_rng(2).choice(demo.models, size=4, replace=False))
    est = CPPGraph(random_state=0, **BRIEF).fit(
        demo.subset(models=[m for m in demo.models if m not in held]))
    factors = demo.model_factors.loc[held].reset_index()
    known = demo.scores[demo.scores["model"].isin(held)].groupby("model").head(3)
    plain = est.config

    def pred(scores=known, **keys):
        est.config = plain.replace(**keys)
        try:
            return est.predict_new_models(factors, scores)["predicted"].to_numpy()
        finally:
            est.config = plain

    fold, stages = pred(known_path="fold-in"), pred(known_path="stages")
    np.testing.assert_allclose(stages, pred(known_path="both", fold_in_steps=0))
    shrinkage, weight = est.known_correction_.shrinkage, est.known_stage_.weight_
    est.known_correction_.shrinkage, est.known_stage_.weight_ = 0.0, 0.0  # the stages off
    try:
        np.testing.assert_allclose(fold, pred(known_path="both"))
    finally:
        est.known_correction_.shrinkage, est.known_stage_.weight_ = shrinkage, weight
    assert np.abs(fold - stages).max() > 1e-3
    none = known.iloc[:0]
    np.testing.assert_allclose(pred(none, known_path="fold-in"), pred(none, known_path="stages"))
    assert est.calibration_ is None
    np.testing.assert_allclose(pred(known_path="auto"), stages)
    est.calibration_ = Calibration(np.ones(len(est.data_.tasks)), known_path={"model": "fold-in"})
    try:
        np.testing.assert_allclose(pred(known_path="auto"), fold)
        assert coldstart.known_path(est, "task") == "stages"
    finally:
        est.calibration_ = None


def test_folder_from_before_known_path_folds_in_where_it_had_steps(fast_est, tmp_path):
    """A folder written before ``known_path`` ran fold-in, before the stages, only with
    ``fold_in_steps`` above 0: it loads as "both" or "stages"; a new folder keeps the
    calibration's choice."""
    folder = fast_est.save(tmp_path / "m")
    assert set(fast_est.calibration_.known_path) == {"model", "task"}
    assert set(fast_est.calibration_.known_path.values()) <= {"stages", "fold-in"}
    assert CPPGraph.load(folder).calibration_.known_path == fast_est.calibration_.known_path
    meta_path = folder / "model.json"
    meta = json.loads(meta_path.read_text())
    del meta["config"]["known_path"]
    del meta["calibration"]["known_path"]
    for steps, path in ((0, "stages"), (100, "both")):
        meta["config"]["fold_in_steps"] = steps
        meta_path.write_text(json.dumps(meta))
        back = CPPGraph.load(folder)
        assert back.config.known_path == path and back.calibration_.known_path is None
        assert coldstart.known_path(back, "model") == path


def test_predictions_stay_in_the_declared_range(demo):
    est = CPPGraph(random_state=0, **BRIEF).fit(demo.subset(models=demo.models[1:]))
    factors = demo.model_factors.loc[demo.models[:1]].reset_index()
    tasks = [t for t in demo.tasks if demo.task_info.at[t, "max_score"] == 100][:4]
    known = pd.DataFrame({"model": demo.models[0], "task": tasks, "score": 100.0})
    pred = est.predict_new_models(factors, known)
    acc = pred[pred["task"].map(demo.task_info["max_score"]) == 100]
    assert acc["predicted"].max() <= 100.0 and acc["predicted"].max() > 90


def test_cold_start_new_tasks(demo):
    held = ["syn-arithmetic", "syn-web-bpb"]
    est = CPPGraph(random_state=0, **FAST).fit(demo.subset(tasks=[t for t in demo.tasks if t not in held]))
    factors = demo.task_factors.loc[held].reset_index()
    info = demo.task_info.loc[held].reset_index()
    with pytest.warns(DataWarning, match="raw scale of new task"):
        zero = est.predict_new_tasks(factors, task_info=info)
    assert len(zero) == 2 * len(est.data_.models)
    # Raw predictions come from the median range of same-unit training tasks; the only
    # bits/byte task has no such task, so its raw scale stays unknown without known scores.
    assert zero["predicted_normalized"].notna().all()
    assert zero.loc[zero["task"] == "syn-web-bpb", "predicted"].isna().all()
    assert zero.loc[zero["task"] == "syn-arithmetic", "predicted"].between(0, 100).all()
    truth = demo.scores[demo.scores["task"].isin(held) & demo.scores["model"].isin(est.data_.models)]
    known = truth.groupby("task").head(3)
    pred = est.predict_new_tasks(factors, known, task_info=info)
    assert pred["predicted"].notna().all() and pred["is_observed"].sum() == len(known)
    rest = truth.drop(known.index).merge(pred, on=["model", "task"])
    # The lower-is-better task: better-ranked (normalized) predictions are lower raw scores.
    bpb = pred[pred["task"] == "syn-web-bpb"]
    assert bpb["predicted"].corr(bpb["predicted_normalized"]) < -0.99
    for task, cells in rest.groupby("task"):
        assert cells["score"].corr(cells["predicted"], method="spearman") > 0.3, task
    with pytest.raises(DataError, match="already in the training data"):
        est.predict_new_tasks(demo.task_factors.loc[["syn-trivia-mc"]].reset_index())
    with pytest.raises(DataError, match="unknown model"):
        est.predict_new_tasks(factors, known.head(1).assign(model="nobody"))


def test_new_task_known_scores_refit_offset_and_scale(demo, without_arithmetic):
    # The known scores of a new % task refit its prior raw offset and range together,
    # weighed by the spread of the other % tasks; task_scale_noise 0 moves the offset alone.
    held, est = ["syn-arithmetic"], without_arithmetic
    info = demo.task_info.loc[held]
    norm, cov = coldstart.new_task_normalizer(est, held, info, demo.task_factors.loc[held])
    assert cov[held[0]].shape == (2, 2) and np.linalg.eigvalsh(cov[held[0]]).min() >= 0
    i = int(norm.positions(held)[0])
    prior = norm.shift_[i], norm.scale_[i]
    # Two known scores on a range 20 points narrower than the prior's, starting 20 higher.
    y = np.array([0.1, 0.9])
    known = pd.DataFrame({"model": est.data_.models[:2], "task": held[0],
                          "score": prior[0] + 20 + (prior[1] - 20) * y})
    fitted = coldstart.fit_new_task_scale(norm, known, y, cov, est.config.task_scale_noise)
    expect = refit_task_scale(*prior, known["score"].to_numpy(), y, cov[held[0]],
                              est.config.task_scale_noise)
    assert (fitted.shift_[i], fitted.scale_[i]) == pytest.approx(expect)
    # Both move toward the scores' range, part of the way.
    assert prior[0] < fitted.shift_[i] < prior[0] + 20
    assert prior[1] - 20 < fitted.scale_[i] < prior[1]
    offset = coldstart.fit_new_task_scale(norm, known, y, cov, 0.0)
    assert offset.scale_[i] == prior[1]
    assert offset.shift_[i] == pytest.approx(np.mean(known["score"] - prior[1] * y))
    assert np.delete(offset.shift_, i).tolist() == np.delete(norm.shift_, i).tolist()


def test_save_load_round_trip(fitted, tmp_path):
    fitted.save(tmp_path / "model")
    loaded = CPPGraph.load(tmp_path / "model")
    pd.testing.assert_frame_equal(fitted.predict(), loaded.predict())
    with pytest.raises(DataError, match="not empty"):
        fitted.save(tmp_path / "model")
    assert loaded.config == fitted.config
    # A folder of the previous format is refused with a message naming both versions.
    meta_path = tmp_path / "model" / "model.json"
    meta = json.loads(meta_path.read_text())
    meta.update(format_version=1, cppgraph_version="0.1.0")
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CppGraphError, match=r"model format 1 \(written by cppgraph 0.1.0\) is not "
                                            r"supported .* \(format 2\); refit"):
        CPPGraph.load(tmp_path / "model")


def test_load_errors(fitted, tmp_path):
    with pytest.raises(CppGraphError, match="model folder not found"):
        CPPGraph.load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CppGraphError, match="not a cppgraph model folder"):
        CPPGraph.load(tmp_path / "empty")
    fitted.save(tmp_path / "m")
    (tmp_path / "m" / "weights.pt").write_bytes(b"garbage")
    with pytest.raises(CppGraphError, match="weights.pt: cannot read the weights"):
        CPPGraph.load(tmp_path / "m")


def test_unknown_names_suggest(fitted, demo):
    name = demo.models[0]
    with pytest.raises(DataError, match=f"did you mean '{name}'"):
        fitted.predict(pd.DataFrame({"model": [name.upper()], "task": [demo.tasks[0]]}))


def test_config_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('encoder = "sage"\nhidden = 16\n')
    assert Config.from_file(path).hidden == 16
    path.write_text("hiden = 16\n")
    with pytest.raises(CppGraphError, match="unknown key"):
        Config.from_file(path)
    with pytest.raises(CppGraphError, match="encoder must be"):
        Config(encoder="gat")
    with pytest.raises(CppGraphError, match="task_prior must be"):
        Config(task_prior="median")
    for level in (0, 1.5, True, "high"):
        with pytest.raises(CppGraphError, match=r"frontier_level must be in \(0, 1\]"):
            Config(frontier_level=level)
    for bad in (-1, 1.5, True, 20_000):
        with pytest.raises(CppGraphError, match=r"fold_in_steps must be an integer in \[0, 10000\]"):
            Config(fold_in_steps=bad)
    with pytest.raises(CppGraphError, match="known_path must be one of"):
        Config(known_path="network")
    with pytest.raises(CppGraphError, match="fold_in_penalty must be a non-negative number"):
        Config(fold_in_penalty=-0.1)
    for bad in (-0.5, float("nan"), "none"):
        with pytest.raises(CppGraphError, match="known_residual_limit must be a non-negative"):
            Config(known_residual_limit=bad)
    path.write_text("known_residual_limit = inf\n")  # TOML's infinity: no limit
    assert Config.from_file(path).known_residual_limit == float("inf")
    for bad in (0, -3, 2.5):
        with pytest.raises(CppGraphError, match="lr_patience must be a positive integer"):
            Config(lr_patience=bad)
    for bad in (0, -1, True, "fast", 1e4):
        with pytest.raises(CppGraphError, match=r"id_lr_scale must be a number in \(0, 1000\]"):
            Config(id_lr_scale=bad)
    for bad in (-0.1, 1.0, True, "fast"):
        with pytest.raises(CppGraphError, match=r'stop_delta must be in \[0, 1\) or "auto"'):
            Config(stop_delta=bad)
    for bad in (0, -0.1, 1.5, True, "fast"):
        with pytest.raises(CppGraphError, match=r'train_delta must be in \(0, 1\] or "auto"'):
            Config(train_delta=bad)


def test_schedule_settings_reach_the_optimizer(demo, monkeypatch):
    """``lr_patience`` is the plateau rule's patience; the ID vectors learn at ``lr``
    times ``id_lr_scale``, the other weights at ``lr``."""
    seen = {}

    class Recording(torch.optim.lr_scheduler.ReduceLROnPlateau):
        def __init__(self, opt, **kwargs):
            seen.update(patience=kwargs["patience"], lrs=[g["lr"] for g in opt.param_groups])
            super().__init__(opt, **kwargs)

    monkeypatch.setattr(torch.optim.lr_scheduler, "ReduceLROnPlateau", Recording)
    CPPGraph(random_state=0, epochs=1, intervals=False, lr=0.02, lr_patience=3,
             id_lr_scale=4.0).fit(demo)
    assert seen == {"patience": 3, "lrs": [0.02, 0.08]}


def test_early_stopping_by_hand():
    """The weights of the lowest loss are kept; with ``delta`` only a fall of that share
    below the last counted loss resets ``patience`` (hand-computed sequence)."""
    losses = [1.0, 0.995, 0.98, 0.979, 0.978]
    plain = EarlyStopping(patience=2)
    assert [plain.update(x) for x in losses] == [(True, False, False)] * 5
    strict = EarlyStopping(patience=2, delta=0.01)
    # 0.995 is lowest but not below 0.99 (counts 1); 0.98 is (resets); 0.979 and 0.978
    # are not below 0.9702: the second of them stops.
    assert [strict.update(x)[:2] for x in losses] == [(True, False), (True, False),
                                                      (True, False), (True, False), (True, True)]
    assert (strict.best, strict.mark) == (0.978, 0.98)
    rising = EarlyStopping(patience=3, delta=0.5)
    assert [rising.update(x)[:2] for x in (2.0, 3.0, 1.5, 0.9)] == [
        (True, False), (False, False), (True, False), (True, False)]


def test_early_stopping_waits_while_the_training_loss_falls():
    """With ``train_delta`` 0.1 an epoch whose training loss is below 0.9 times that of the
    last epoch that was restarts the count even when the validation loss is flat (hand-computed:
    training losses 1.0, 0.8 (< 0.9), 0.75 (not < 0.72), 0.6 (< 0.72), 0.59, 0.58)."""
    val = [0.5, 0.6, 0.6, 0.6, 0.6, 0.6]
    train = [1.0, 0.8, 0.75, 0.6, 0.59, 0.58]
    waiting = EarlyStopping(patience=2, train_delta=0.1)
    assert [waiting.update(v, t) for v, t in zip(val, train)] == [
        (True, False, True), (False, False, True), (False, False, False),
        (False, False, True), (False, False, False), (False, True, False)]
    assert waiting.train_mark == 0.6
    # train_delta 1 (the default): only the validation loss counts, as without training losses
    only_val = EarlyStopping(patience=2)
    assert [only_val.update(v, t)[1:] for v, t in zip(val, train)][:3] == [
        (False, False), (False, False), (True, False)]


def test_learning_epochs_do_not_lower_the_rate(demo, monkeypatch):
    """An epoch whose training loss fell by ``train_delta`` is a cooldown epoch of the
    plateau rule: the rate never drops at its end. The same fit with ``train_delta`` 1
    drops it at the end of such an epoch (so the check can fail)."""
    rates = []

    class Recording(torch.optim.lr_scheduler.ReduceLROnPlateau):
        def step(self, metrics, epoch=None):
            super().step(metrics, epoch)
            rates.append(self.optimizer.param_groups[0]["lr"])

    monkeypatch.setattr(torch.optim.lr_scheduler, "ReduceLROnPlateau", Recording)

    def drops_after_learning(train_delta):
        rates.clear()
        est = CPPGraph(random_state=0, epochs=30, patience=1000, lr_patience=1, intervals=False,
                       train_delta=train_delta).fit(demo)
        train, low, drops = [e["train_loss"] for e in est.log_], float("inf"), []
        for i, loss in enumerate(train):
            if loss < low * (1 - 1e-3):
                low = loss
                drops.append(i > 0 and rates[i] < rates[i - 1])
        return drops

    assert not any(drops_after_learning(1e-3))
    assert any(drops_after_learning(1.0))


def test_auto_schedule_by_data_size():
    """``"auto"`` schedule keys take one value below ``LARGE_DATA_CELLS`` training cells and
    another from there on (``train_delta`` also below ``SPARSE_DENSITY``); numbers a user
    sets stay; "auto" fits no other key."""
    small, large = Config().resolved(LARGE_DATA_CELLS - 1), Config().resolved(LARGE_DATA_CELLS)
    assert [getattr(small, k) for k in AUTO_SCHEDULE] == [v[0] for v in AUTO_SCHEDULE.values()]
    assert [getattr(large, k) for k in AUTO_SCHEDULE] == [v[1] for v in AUTO_SCHEDULE.values()]
    assert (large.lr, large.lr_patience, large.patience, large.predict_folds) == (0.03, 4, 15, 3)
    assert (small.dropout, large.dropout) == (0.1, 0.0)
    mine = Config(lr=0.005, predict_folds=7).resolved(10**7)
    assert (mine.lr, mine.predict_folds, mine.patience) == (0.005, 7, 15)
    # below SPARSE_DENSITY, small data takes train_delta's large-data value, and only it
    sparse = Config().resolved(LARGE_DATA_CELLS - 1, density=SPARSE_DENSITY / 2)
    assert sparse.train_delta == AUTO_SCHEDULE["train_delta"][1] < 1
    assert sparse.replace(train_delta=small.train_delta) == small
    assert Config().resolved(LARGE_DATA_CELLS - 1, density=SPARSE_DENSITY) == small
    assert Config(train_delta=0.5).resolved(10, density=0.01).train_delta == 0.5
    with pytest.raises(CppGraphError, match='patience must be a positive integer or "auto"'):
        Config(patience="fast")
    with pytest.raises(CppGraphError, match="hidden must be a positive integer; got 'auto'"):
        Config(hidden="auto")
    with pytest.raises(CppGraphError, match=r'dropout must be in \[0, 1\) or "auto"; got 1.0'):
        Config(dropout=1.0)
    for key in ("known_regression", "random_state"):  # a bool is not a number here
        with pytest.raises(CppGraphError, match=f"{key} must be"):
            Config(**{key: True})


def test_sparse_data_fit_resolves_train_delta_by_density(demo, monkeypatch):
    """A fit reads its data's density: below the threshold ``train_delta`` takes its
    large-data value, the other keys their small-data ones."""
    assert demo.density > 0.5
    fits = {}
    for threshold in (demo.density + 0.01, demo.density):
        monkeypatch.setattr(config_module, "SPARSE_DENSITY", threshold)
        est = CPPGraph(random_state=0, epochs=1, intervals=False).fit(demo)
        fits[threshold] = est.fit_config_
    sparse, dense = fits[demo.density + 0.01], fits[demo.density]
    assert sparse.train_delta == AUTO_SCHEDULE["train_delta"][1] and dense.train_delta == 1.0
    assert sparse.lr == dense.lr == AUTO_SCHEDULE["lr"][0]


def test_large_data_fit_runs_the_large_schedule(demo, tmp_path, monkeypatch):
    """A fit on data at or above the threshold trains with the large-data values (3 ID
    tables, the higher rate), keeps ``config`` as given, and loads back with them."""
    seen = {}

    class Recording(torch.optim.lr_scheduler.ReduceLROnPlateau):
        def __init__(self, opt, **kwargs):
            seen.update(patience=kwargs["patience"], lr=opt.param_groups[0]["lr"])
            super().__init__(opt, **kwargs)

    monkeypatch.setattr(torch.optim.lr_scheduler, "ReduceLROnPlateau", Recording)
    monkeypatch.setattr(config_module, "LARGE_DATA_CELLS", len(demo.scores))
    est = CPPGraph(random_state=0, epochs=1, intervals=False).fit(demo)
    assert seen == {"patience": 4, "lr": 0.03}
    assert est.config.predict_folds == "auto" and est.fit_config_.predict_folds == 3
    assert est.network_.tables == 3 and int(est.folds_.fold.max()) == 3
    monkeypatch.setattr(config_module, "LARGE_DATA_CELLS", 10**9)  # loading must not re-decide
    back = CPPGraph.load(est.save(tmp_path / "m"))
    assert back.fit_config_.predict_folds == 3 and back.network_.tables == 3
    pairs = demo.scores[["model", "task"]].head(20)
    assert np.allclose(back.predict(pairs)["predicted"], est.predict(pairs)["predicted"])
    assert back.fit_config_.stop_delta == AUTO_SCHEDULE["stop_delta"][1] > 0


def test_folder_from_before_stop_delta_loads_with_the_rule_it_ran(fast_est, tmp_path):
    """A model folder whose settings and schedule lack ``stop_delta`` and ``train_delta``
    (written before the keys) loads with 0 and 1, the rules its fit ran with, and predicts
    as before; without ``known_residual_limit`` its known residuals count in full."""
    folder = fast_est.save(tmp_path / "m")
    meta_path = folder / "model.json"
    meta = json.loads(meta_path.read_text())
    for key in ("stop_delta", "train_delta"):
        del meta["config"][key]
        meta["schedule"].pop(key)
    del meta["config"]["known_residual_limit"]  # nor the limit on known residuals
    meta_path.write_text(json.dumps(meta))
    back = CPPGraph.load(folder)
    assert back.config.stop_delta == 0.0 and back.fit_config_.stop_delta == 0.0
    assert back.config.train_delta == 1.0 and back.fit_config_.train_delta == 1.0
    assert back.config.known_residual_limit == back.known_correction_.limit == np.inf
    pairs = fast_est.data_.scores[["model", "task"]].head(5)
    assert np.allclose(back.predict(pairs)["predicted"], fast_est.predict(pairs)["predicted"])


def test_folder_without_residual_limit_is_strict_json(fast_est, tmp_path):
    """``known_residual_limit = inf`` is saved as the text "inf" (JSON has no infinite
    number) and loads as the number; a folder that wrote ``Infinity`` loads the same."""
    est = copy.copy(fast_est)
    est.config = fast_est.config.replace(known_residual_limit=float("inf"))
    folder = est.save(tmp_path / "m")

    def refuse(name):
        raise AssertionError(f"model.json holds {name}, which strict JSON readers refuse")

    meta = json.loads((folder / "model.json").read_text(), parse_constant=refuse)
    assert meta["config"]["known_residual_limit"] == "inf"
    back = CPPGraph.load(folder)
    assert back.config.known_residual_limit == back.known_correction_.limit == np.inf
    meta["config"]["known_residual_limit"] = float("inf")  # as folders saved before wrote it
    (folder / "model.json").write_text(json.dumps(meta))
    assert "Infinity" in (folder / "model.json").read_text()
    assert CPPGraph.load(folder).config.known_residual_limit == np.inf


def test_new_task_prior_by_factors(demo):
    # syn-trivia-open shares ability, family and few-shot with syn-trivia-mc: under
    # task_prior="factors" it starts from that task's raw range, else from the median.
    held = ["syn-trivia-open"]
    train = demo.subset(tasks=[t for t in demo.tasks if t not in held])
    factors = demo.task_factors.loc[held].reset_index()
    info = demo.task_info.loc[held].reset_index()
    got = {}
    for prior in ("factors", "unit"):
        est = CPPGraph(random_state=0, task_prior=prior, **BRIEF).fit(train)
        pred = est.predict_new_tasks(factors, task_info=info)
        got[prior] = pred.set_index("model")["predicted"]
        norm, _ = coldstart.new_task_normalizer(est, held, info.set_index("task"),
                                                factors.set_index("task"))
        got[prior + "_range"] = (norm.shift_[-1], norm.scale_[-1])
    mc = train.scores[train.scores["task"] == "syn-trivia-mc"]["score"]
    assert got["factors_range"] == pytest.approx((mc.min(), mc.max() - mc.min()))
    assert got["unit_range"] != pytest.approx(got["factors_range"])
    assert not np.allclose(got["factors"], got["unit"])


@pytest.mark.parametrize("name", ["default", "lightgcn", "sage", "network-only"])
def test_shipped_configs_hold_every_key(name):
    from conftest import ROOT
    cfg = Config.from_file(ROOT / "configs" / f"{name}.toml")
    text = (ROOT / "configs" / f"{name}.toml").read_text()
    for key in cfg.to_dict():
        assert f"\n{key} = " in text


def test_known_score_regression_by_hand():
    # Column 1 = 2 * column 0 + 0.1 on the training rows; column 2 unrelated but known.
    x = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    scores = np.stack([x, 2 * x + 0.1, np.full(6, 0.5)], axis=1)
    known = np.ones(scores.shape, dtype=bool)
    new = np.array([[0.45, 0.0, 0.0], [0.0, 0.0, 0.0]])
    new_known = np.array([[True, False, False], [False, False, False]])
    out = known_score_regression(scores, known, new, new_known, ridge=0.0)
    np.testing.assert_allclose(out[0], [0.45, 1.0, 0.5])
    assert np.isnan(out[1]).all()  # no known cell
    # Too few training rows know both columns: no prediction.
    known[2:, 1] = False
    out = known_score_regression(scores, known, new, new_known, ridge=0.0)
    assert np.isnan(out[0, 1]) and np.isfinite(out[0, 2])
    # The ridge penalty pulls the slope towards 0, the prediction towards the column mean 0.6.
    shrunk = known_score_regression(scores, np.ones_like(known), new, new_known, ridge=1.0)
    assert 0.6 < shrunk[0, 1] < 1.0


def test_known_score_regression_matches_one_ridge_per_cell():
    # Each cell is its own ridge fit over the training rows that know its column and all
    # of the row's known columns; rows that share a set of known columns are fitted once.
    rng = np.random.default_rng(3)
    scores = rng.random((40, 6))
    known = rng.random(scores.shape) < 0.7
    new = rng.random((5, 6))
    new_known = np.array([[1, 0, 1, 0, 0, 0], [1, 0, 1, 0, 0, 0], [0, 1, 0, 0, 0, 0],
                          [0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 0, 0]], dtype=bool)
    out = known_score_regression(scores, known, new, new_known, ridge=0.1)
    for i, row in enumerate(new_known):
        cols = np.flatnonzero(row)
        for c in range(6):
            rows = known[:, cols].all(axis=1) & known[:, c] if len(cols) else None
            if rows is None or rows.sum() < max(5, len(cols) + 2):
                assert np.isnan(out[i, c])
                continue
            mean, x_mean, coef = centered_ridge(scores[np.ix_(rows, cols)], scores[rows, c], 0.1)
            assert out[i, c] == pytest.approx(mean + (new[i, cols] - x_mean) @ coef, abs=1e-12)


def test_known_score_regression_in_logit_space_by_hand():
    # logit(column 1) = logit(column 0) + 1 on the training rows: exact in logit space only.
    z = np.linspace(-2.0, 2.0, 6)
    scores = np.stack([1 / (1 + np.exp(-z)), 1 / (1 + np.exp(-(z + 1)))], axis=1)
    known = np.ones(scores.shape, dtype=bool)
    new = np.array([[1 / (1 + np.exp(-0.5)), 0.0]])
    new_known = np.array([[True, False]])
    out = known_score_regression(scores, known, new, new_known, ridge=0.0, logit=True)
    np.testing.assert_allclose(out[0], [new[0, 0], 1 / (1 + np.exp(-1.5))])
    linear = known_score_regression(scores, known, new, new_known, ridge=0.0)
    assert abs(linear[0, 1] - out[0, 1]) > 1e-3
    # Values at the bounds are clipped to [0.01, 0.99] before the logit: a known 1.0 on a
    # column equal to the predicted one gives 0.99, not 1.
    x = np.linspace(0.0, 1.0, 6)
    top = known_score_regression(np.stack([x, x], axis=1), known, np.array([[1.0, 0.0]]),
                                 new_known, ridge=0.0, logit=True)
    assert top[0, 1] == pytest.approx(0.99)


def test_benchmark_regression_by_hand():
    # Column 1 = 2 * column 0 + 0.1; column 2 anti-correlated with column 0; column 3 noise.
    x = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.45])
    y = np.stack([x, 2 * x + 0.1, 1 - x + 0.01 * np.arange(7) % 2,
                  [0.3, 0.9, 0.1, 0.5, 0.7, 0.2, 0.4]], axis=1)
    known = np.ones(y.shape, dtype=bool)
    known[6, 1] = False  # predict (6, 1): row 6 knows columns 0, 2 and 3
    out = benchmark_regression(y, known, np.array([6]), np.array([1]), n_features=1, alpha=0.0)
    np.testing.assert_allclose(out, [2 * 0.45 + 0.1])  # column 0, the most correlated, alone
    # Too few rows know both the target and the feature: the cell gets no prediction.
    sparse = known.copy()
    sparse[2:6, 1] = False
    assert np.isnan(benchmark_regression(y, sparse, np.array([6]), np.array([1]), n_features=1))
    # A row knowing no other column: no prediction either.
    lonely = known.copy()
    lonely[6, [0, 2, 3]] = False
    assert np.isnan(benchmark_regression(y, lonely, np.array([6]), np.array([1])))
    with pytest.raises(ValueError, match="unknown cells only"):
        benchmark_regression(y, known, np.array([0]), np.array([1]))


def _benchmark_regression_cell(y, known, m, t, n_features, alpha, min_rows):
    """benchmark_regression's rule for one cell, written out plainly."""
    corr = column_correlations(y, known, min_rows)
    cand = [c for c in np.argsort(-np.abs(np.nan_to_num(corr[t], nan=-1.0)), kind="stable")
            if c != t and np.isfinite(corr[t, c])]
    feats = sorted([c for c in cand if known[m, c]][:n_features])
    while feats:
        fit_rows = known[:, t] & known[:, feats].all(axis=1)
        if fit_rows.sum() >= min_rows:
            mean, x_mean, coef = centered_ridge(y[np.ix_(fit_rows, feats)], y[fit_rows, t], alpha)
            return mean + (y[m, feats] - x_mean) @ coef
        feats = feats[:-1]
    return np.nan


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_benchmark_regression_matches_the_cell_rule(seed):
    # Sparse and dense columns, so that cells share fits, drop features and go without.
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(60, 3)) @ rng.normal(size=(3, 8)) + 0.3 * rng.normal(size=(60, 8))
    known = rng.random(y.shape) < np.linspace(0.15, 0.9, 8)
    y = np.where(known, y, np.nan)
    rows, cols = np.nonzero(~known)
    finite = []
    for n_features, min_rows in ((3, 5), (2, 9), (1, 3)):
        out = benchmark_regression(y, known, rows, cols, n_features=n_features, alpha=0.1,
                                   min_rows=min_rows)
        expected = [_benchmark_regression_cell(y, known, m, t, n_features, 0.1, min_rows)
                    for m, t in zip(rows, cols)]
        np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)
        finite.append(np.isfinite(out).mean())
    assert min(finite) < 1 and max(finite) > 0.5  # cells with and without a fit


def test_benchmark_regression_in_logit_space():
    # Column 1 is exactly logit-linear in column 0; row 6 lies beyond the others.
    x = np.array([0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.95])
    logit = np.log(x / (1 - x))
    y = np.stack([x, 1 / (1 + np.exp(-(1.5 * logit + 0.2)))], axis=1)
    known = np.ones(y.shape, dtype=bool)
    known[6, 1] = False
    out = benchmark_regression(y, known, np.array([6]), np.array([1]), n_features=1, alpha=0.0,
                               logit=True)
    np.testing.assert_allclose(out, y[6, 1:])
    # Regressed linearly, the same cell leaves [0, 1].
    assert benchmark_regression(y, known, np.array([6]), np.array([1]), n_features=1, alpha=0.0) > 1


def test_a_task_with_one_score_gets_every_prediction(demo):
    """A task observed once stays a node: every model gets a finite prediction of it."""
    solo = demo.scores[demo.scores["task"] == "syn-arithmetic"].iloc[[0]]
    scores = pd.concat([demo.scores[demo.scores["task"] != "syn-arithmetic"], solo])
    data = type(demo).from_frames(scores, task_info=demo.task_info.reset_index(),
                                  model_factors=demo.model_factors.reset_index(),
                                  task_factors=demo.task_factors.reset_index(),
                                  factor_kinds=demo.factor_kinds, models=demo.models,
                                  tasks=demo.tasks)
    est = CPPGraph(random_state=0, **BRIEF).fit(data)
    table = est.predict()
    cells = table[table["task"] == "syn-arithmetic"]
    assert len(cells) == len(demo.models)
    assert cells["predicted"].notna().all() and cells["predicted"].between(0, 100).all()
    assert cells["is_observed"].sum() == 1


def test_verbose_fit_reports_on_stderr_and_quiet_fit_says_nothing(demo_dir, capsys):
    from cppgraph import CPPGraph
    CPPGraph(epochs=5, patience=5, intervals=False, verbose=True).fit(str(demo_dir))
    err = capsys.readouterr().err
    assert "fitted CollabData(60 models" in err and "validation MAE" in err
    CPPGraph(epochs=5, patience=5, intervals=False).fit(str(demo_dir))
    assert capsys.readouterr().err == ""


def test_estimator_class_stays_short():
    """The estimator composes the network, the stages and the modules around it; its
    class stays under 300 lines (the rest lives in those modules)."""
    tree = ast.parse(inspect.getsource(estimator))
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "CPPGraph"]
    assert cls.end_lineno - cls.lineno + 1 < 300


def test_a_known_score_far_outside_its_range_moves_the_rest_by_one_range_at_most(fast_est):
    """A new model's known score five training ranges above its prediction (as on a task
    whose few training scores lie close together) counts as one range
    (``known_residual_limit``): the other predictions move by ``1 / (1 + known_shrinkage)``
    past what the network reads from the edge, not by ``5 / (1 + known_shrinkage)``."""
    from cppgraph.stages import KnownScoreCorrection, KnownScoreMix

    est = copy.copy(fast_est)
    est.known_stage_ = KnownScoreMix(0.0).fit(est.training_scores_)  # the correction alone
    assert est.known_correction_.limit == est.config.known_residual_limit == 1.0
    factors = fast_est.data_.model_factors.head(1).reset_index().assign(model="probe")
    task = fast_est.data_.tasks[0]
    alone = est.predict_new_models(factors).set_index("task")
    far = est.normalizer_.inverse_transform([task], [alone.loc[task, "predicted_normalized"] + 5])
    known = pd.DataFrame({"model": ["probe"], "task": [task], "score": far})

    def others(correction):
        est.known_correction_ = correction
        table = est.predict_new_models(factors, known, out_of_range="allow").set_index("task")
        return table.drop(index=task)["predicted_normalized"]

    network = others(KnownScoreCorrection(0.0))
    limited = others(KnownScoreCorrection(2.0, limit=1.0))
    unlimited = others(KnownScoreCorrection(2.0))
    info = fast_est.data_.task_info.loc[network.index]
    ends = np.sort([est.normalizer_.transform(network.index, info[end]) for end in
                    ("min_score", "max_score")], axis=0)  # the declared range, normalized
    np.testing.assert_allclose(limited, np.clip(network + 1 / 3, *ends), atol=1e-6)
    np.testing.assert_allclose(unlimited, np.clip(network + 5 / 3, *ends), atol=1e-6)
    assert (unlimited == ends[1]).mean() > 0.5  # unlimited: most at the top of their range
