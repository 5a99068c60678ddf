"""``cppgraph suggest``: which tasks to evaluate next, and the cold-model choice protocol."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from cppgraph.cli import cli
from cppgraph.config import Config
from cppgraph.data import read_data
from cppgraph.errors import CppGraphError, DataError
from cppgraph.evaluate.splits import make_split
from cppgraph.stages import KnownScoreCorrection, KnownScoreMix
from cppgraph.stages.base import TrainingScores
from cppgraph.suggest import (ABS_FROM_SD, engine_update, error_moments, expected_abs,
                              gaussian_update, plan, suggest, task_correlation)


def test_plan_by_hand():
    # Task 0 correlates 0.8 with tasks 1 and 2, which correlate 0.64 with each other.
    cov = np.array([[1.0, 0.8, 0.8], [0.8, 1.0, 0.64], [0.8, 0.64, 1.0]])
    steps = plan(cov, np.zeros(3), [], [0, 1, 2], [0, 1, 2], 1)
    # Revealing task 0 leaves tasks 1 and 2 a variance 1 - 0.8^2 = 0.36 (sd 0.6);
    # revealing task 1 would leave task 0 0.36 and task 2 1 - 0.64^2 (sd 0.768): smaller gain.
    assert steps[0][0] == 0
    assert steps[0][1] == pytest.approx(ABS_FROM_SD * 0.6)
    assert steps[0][2] == pytest.approx(ABS_FROM_SD * 0.4)
    # Once task 0 is known, the next best is either of the others; a known task is
    # never chosen again, and the candidates bound the choice.
    steps = plan(cov, np.zeros(3), [0], [1, 2], [1, 2], 1)
    assert steps[0][0] in (1, 2)
    steps = plan(cov, np.zeros(3), [], [2], [0, 1, 2], 1)
    assert steps[0][0] == 2


def test_plan_follows_the_engine_update():
    # Tasks 0-3 correlate 0.9 with each other (sd 1); task 4 is independent, sd 3.
    cov = np.full((5, 5), 0.9)
    cov[4, :] = cov[:, 4] = 0.0
    np.fill_diagonal(cov, [1, 1, 1, 1, 9])
    # The conditional mean alone: revealing task 4 costs the others nothing and removes
    # the largest error (others' sd sum 4 against 3 * sqrt(1 - 0.81) + 3 = 4.31 for task 0).
    assert plan(cov, np.zeros(5), [], range(5), range(5), 1)[0][0] == 4
    # The engine moves every prediction by 0.75 / (1 + 2) of a known residual and a quarter
    # of the conditional mean: task 4's error (sd 3) would leak into every other task.
    # Task 4 known: the others move by b = 0.25 of its error, variance 1 + 0.25^2 * 9, sd
    # 1.25 each, sum 5.0. Task 0 known:
    b = 0.25 + 0.25 * 0.9  # tasks 1-3 once task 0 is known
    var_cluster = 1 - 2 * b * 0.9 + b ** 2
    var_4 = 9 + 0.25 ** 2  # sum 3 * 0.609 + 3.010 = 4.84 once task 0 is known: smaller
    engine = gaussian_update(cov, np.zeros(5), shrinkage=2.0, regression=0.25)
    steps = plan(cov, np.zeros(5), [], range(5), range(5), 1, update=engine)
    assert steps[0][0] == 0
    before = (3 * 1 + 3) / 4
    after = (3 * np.sqrt(var_cluster) + np.sqrt(var_4)) / 4
    assert steps[0][1] == pytest.approx(ABS_FROM_SD * after)
    assert steps[0][2] == pytest.approx(ABS_FROM_SD * (before - after))
    # no correction at all (shrinkage 0, regression 0): nothing moves, the largest error goes
    still = gaussian_update(cov, np.zeros(5), regression=0.0)
    mean, sd = error_moments(cov, np.zeros(5), [0], *still([[0]])[0])
    assert np.allclose(sd ** 2, np.diag(cov)) and not mean.any()
    assert plan(cov, np.zeros(5), [], range(5), range(5), 1, update=still)[0][0] == 4


def test_engine_update_by_hand():
    """The stages' own update: six training models, task 2 = 2 x task 0 on all of them,
    task 1 scored by three only (too few for its regression on task 0)."""
    x = np.arange(1.0, 7.0)
    y = np.stack([x, np.r_[1.0, 2.0, 3.0, np.nan, np.nan, np.nan], 2 * x], axis=1)
    fold = np.where(np.isfinite(y), 0, -1)
    train = TrainingScores(y, fold, 1, np.full_like(y, np.nan), bounded=False)
    est = SimpleNamespace(training_scores_=train, known_correction_=KnownScoreCorrection(2.0),
                          known_stage_=KnownScoreMix(0.25).fit(train))
    prior = np.array([3.5, 1.0, 6.0])
    ((b, m),) = engine_update(est, prior, np.array([0.5, 0.5, 0.5]))([[0]])
    # Task 0 revealed at its prior: no residual to correct; the regression of task 2 on
    # task 0 (ridge 0.1: slope 35 / 17.6, through the means 3.5 and 7) gives 7, and a
    # quarter of the way from 6 to 7 is m = 0.25. Task 1 cannot be reached: m = 0.
    assert m == pytest.approx([m[0], 0.0, 0.25])
    # Per unit of task 0's score, every task moves by 1 / (1 + 2) of the residual, and
    # task 2 by a quarter of the regression's slope on top of three quarters of that.
    assert b.shape == (3, 1)
    assert b[2, 0] == pytest.approx(0.75 / 3 + 0.25 * 35 / 17.6)
    assert b[1, 0] == pytest.approx(1 / 3)
    # the error left on task 2 once task 0 is known: e2 - b e0 + m
    cov = np.array([[1.0, 0.0, 0.9], [0.0, 1.0, 0.0], [0.9, 0.0, 1.0]])
    mean, sd = error_moments(cov, np.zeros(3), [0], b, m)
    assert mean[2] == 0.25
    assert sd[2] == pytest.approx(np.sqrt(1 - 2 * b[2, 0] * 0.9 + b[2, 0] ** 2))


def test_expected_abs():
    # the folded normal's mean at mean 1, sd 1: sqrt(2 / pi) exp(-1 / 2) + erf(1 / sqrt 2)
    assert expected_abs(1.0, 1.0) == pytest.approx(0.4839414 + 0.6826895)
    assert expected_abs(np.array([0.0, -2.0]), np.array([2.0, 0.0])) == pytest.approx(
        [2 * ABS_FROM_SD, 2.0])


def test_task_correlation_is_a_correlation_matrix():
    rng = np.random.default_rng(0)
    level = rng.normal(size=(40, 1))
    y = level + 0.3 * rng.normal(size=(40, 5))
    y[rng.random(y.shape) < 0.3] = np.nan
    corr = task_correlation(y)
    assert np.allclose(np.diag(corr), 1.0) and np.allclose(corr, corr.T)
    assert np.linalg.eigvalsh(corr).min() > 0
    off = corr[~np.eye(5, dtype=bool)]
    assert (off > 0.5).all()  # one shared level: strongly correlated, shrunk below 1


def test_task_correlation_shrinks_toward_its_prior():
    # Columns 0 and 1 share 3 rows, perfectly correlated; column 2 shares fewer than
    # MIN_OVERLAP rows with either, so its pairs take the prior alone.
    y = np.array([[0.0, 0.0, np.nan], [1.0, 1.0, np.nan], [2.0, 2.0, 5.0], [np.nan, np.nan, 1.0]])
    prior = np.full((3, 3), 0.5)
    np.fill_diagonal(prior, 1.0)
    raw = np.array([[1.0, 3 / 13 + 10 / 13 * 0.5, 0.5], [0, 1.0, 0.5], [0, 0, 1.0]])
    raw = np.triu(raw) + np.triu(raw, 1).T  # 3 shared rows: weight 3 / (3 + CORR_PRIOR)
    assert np.allclose(task_correlation(y, prior=prior), raw, atol=1e-6)
    off = task_correlation(y)  # without a prior, toward 0
    assert off[0, 1] == pytest.approx(3 / 13, abs=1e-6) and off[0, 2] == pytest.approx(0.0)


def test_new_models_plan_on_the_correlation_of_calibration_errors(fast_est, monkeypatch):
    """A new model's plan takes the task correlation of the calibration fit's errors
    (``suggest_correlation = "errors"``), a training model's that of the scores."""
    from cppgraph.suggest import error_model
    cal = fast_est.calibration_
    tasks = fast_est.data_.tasks
    corr = cal.error_corr
    assert corr.shape == (len(tasks), len(tasks)) and np.allclose(np.diag(corr), 1.0)
    scores = task_correlation(fast_est.training_scores_.y)
    assert not np.allclose(corr, scores)
    cov, _ = error_model(fast_est)
    sd = np.sqrt(np.diag(cov))
    assert np.allclose(cov, corr * np.outer(sd, sd))
    cov, _ = error_model(fast_est, new_model=False)
    assert np.allclose(cov, scores * np.outer(sd, sd))
    # Errors of task 0 that move with those of one other task alone (not the one the
    # scores' correlation picks) make that task the one to run for it.
    new = fast_est.data_.model_factors.iloc[:1].rename(index=lambda m: m + "-new").rename_axis(
        "model").reset_index()
    by_scores = fast_est.config.replace(suggest_correlation="scores")
    monkeypatch.setattr(fast_est, "config", by_scores)
    cov, _ = error_model(fast_est)
    assert np.allclose(cov, scores * np.outer(sd, sd))
    first = suggest(fast_est, 1, model_factors=new, targets=[tasks[0]])["task"].iloc[0]
    partner = next(j for j in range(1, len(tasks)) if tasks[j] != first)
    forced = np.eye(len(tasks))
    forced[0, partner] = forced[partner, 0] = 0.95
    monkeypatch.setattr(cal, "error_corr", forced)
    assert suggest(fast_est, 1, model_factors=new, targets=[tasks[0]])["task"].iloc[0] == first
    monkeypatch.setattr(fast_est, "config", by_scores.replace(suggest_correlation="errors"))
    pick = suggest(fast_est, 1, model_factors=new, targets=[tasks[0]])
    assert pick["task"].tolist() == [tasks[partner]]


def test_suggest_never_proposes_a_known_task(fast_est, demo_dir):
    demo = read_data(demo_dir)
    name = demo.models[0]
    have = set(demo.scores.loc[demo.scores["model"] == name, "task"])
    left = [t for t in demo.tasks if t not in have]
    table = suggest(fast_est, len(left) - 1, model=name)  # all but one: one stays to predict
    assert set(table["task"]) < set(left) and table["task"].is_unique
    assert table["rank"].tolist() == list(range(1, len(left)))
    factors = demo.model_factors.iloc[:2].rename(index=lambda m: m + "-new").rename_axis("model").reset_index()
    known = pd.DataFrame({"model": factors["model"][0], "task": demo.tasks[:3], "score": 50.0})
    planned = []
    table = suggest(fast_est, 4, model_factors=factors, known_scores=known,
                    progress=planned.append)
    assert len(table) == 8 and planned == factors["model"].tolist()  # one call per model
    first = table[table["model"] == factors["model"][0]]
    assert not set(first["task"]) & set(demo.tasks[:3])
    assert (table["expected_mae"] > 0).all()
    # each step's reduction is the fall of the expected error it brings (a step may raise
    # the others' error a little: it is chosen for its own error, then known)
    assert np.allclose(-first["expected_mae"].diff().dropna(), first["reduction"].iloc[1:])


def test_bad_budgets(fast_est, fast_model_dir):
    name = fast_est.data_.models[0]
    for budget in (0, -1, 2.5, True):
        with pytest.raises(CppGraphError, match="budget must be a positive"):
            suggest(fast_est, budget, model=name)
    with pytest.raises(DataError, match="task\\(s\\) left to evaluate; the budget 99"):
        suggest(fast_est, 99, model=name)
    runner = CliRunner()
    for budget in ("0", "-2"):
        res = runner.invoke(cli, ["suggest", str(fast_model_dir), "--model", name, "--budget", budget])
        assert res.exit_code == 2 and "--budget" in res.output
    res = runner.invoke(cli, ["suggest", str(fast_model_dir), "--model", name, "--budget", "99"])
    assert res.exit_code == 1 and "budget 99 asks for more" in res.output
    res = runner.invoke(cli, ["suggest", str(fast_model_dir), "--model", "nope", "--budget", "1"])
    assert res.exit_code == 1 and "unknown model 'nope'" in res.output
    res = runner.invoke(cli, ["suggest", str(fast_model_dir), "--model", name, "--budget", "2",
                              "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert [r["rank"] for r in rows] == [1, 2] and set(rows[0]) == {
        "model", "rank", "task", "expected_mae", "reduction"}


def test_cold_model_choices(demo_dir):
    demo = read_data(demo_dir)
    splits = {c: make_split(demo, "cold-model", 3, known=2, choose=c)
              for c in ("random", "popular")}
    # the same held-out models whatever the choice
    assert set(splits["random"].new_models.index) == set(splits["popular"].new_models.index)
    train = splits["popular"].train
    count = train.scores.groupby("task").size()
    for name, cells in demo.scores[demo.scores["model"].isin(splits["popular"].new_models.index)].groupby("model"):
        kept = splits["popular"].known.loc[splits["popular"].known["model"] == name, "task"]
        top = count.reindex(cells["task"]).sort_values(ascending=False, kind="stable")
        assert sorted(count[kept]) == sorted(top.iloc[:2].tolist())
    with pytest.raises(DataError, match="unknown choice"):
        make_split(demo, "cold-model", 0, known=2, choose="best")
    with pytest.raises(DataError, match="applies to the cold-model protocol"):
        make_split(demo, "frontier", 0, known=2, choose="popular")


def test_suggest_choice_keeps_scored_tasks(demo_dir):
    demo = read_data(demo_dir)
    small = demo.subset(models=demo.models[:30])
    brief = Config(epochs=10, patience=10)  # the choosing engine's configuration
    split = make_split(small, "cold-model", 0, test_size=0.2, known=2, choose="suggest",
                       config=brief)
    scored = small.scores.groupby("model")["task"].apply(set)
    known = split.known.groupby("model")["task"].apply(list)
    assert set(known.index) == set(split.new_models.index)
    for name, tasks in known.items():
        assert len(tasks) == 2 and set(tasks) <= scored[name]
    # the test cells are the held-out models' other scores
    test = split.test.groupby("model")["task"].apply(set)
    for name in known.index:
        assert test[name] == scored[name] - set(known[name])
    # the configuration is the choosing engine's: without intervals it cannot suggest
    with pytest.raises(CppGraphError, match="fitted without intervals"):
        make_split(small, "cold-model", 0, test_size=0.2, known=2, choose="suggest",
                   config=brief.replace(intervals=False))


def test_reused_engines_predict_what_new_fits_do(demo_dir):
    """Runs over several K and choices at one seed fit the engine, and the engine that
    suggests, once; their predictions and intervals are those of fresh fits."""
    from cppgraph.evaluate.methods import CPPGraphMethod, FittedEngines
    from cppgraph.evaluate.runner import evaluate
    demo = read_data(demo_dir)
    small = demo.subset(models=demo.models[:30])
    brief = dict(epochs=2, patience=2)  # equality is checked, not accuracy
    engines = FittedEngines()

    def run(known, choose, reuse):
        method = CPPGraphMethod(engines=engines if reuse else None, **brief)
        return evaluate(small, "cold-model", [method], seeds=[1], test_size=0.2, known=known,
                        choose=choose, config=Config(**brief),
                        engines=engines if reuse else None).predictions

    for known, choose in ((1, "suggest"), (2, "random"), (2, "suggest")):
        reused = run(known, choose, True)
    assert engines.fits == 2  # the evaluated engine (seed 1000) and the choosing one (seed 1)
    fresh = run(2, "suggest", False)
    assert engines.fits == 2 and {"lower_norm", "upper_norm"} <= set(fresh.columns)
    pd.testing.assert_frame_equal(reused, fresh)
    # other training data (every model) is a fit of its own
    from cppgraph import CPPGraph
    first = engines.get(CPPGraph(**brief), small)
    assert engines.fits == 3
    # a configuration that differs only in how suggest plans shares that fit, with its own keys
    other = engines.get(CPPGraph(**brief, suggest_plan="gaussian"), small)
    assert engines.fits == 3 and other is not first
    assert other.config.suggest_plan == "gaussian" and other.fit_config_.suggest_plan == "gaussian"
    assert first.config.suggest_plan == "engine"
    assert other.network_ is first.network_
    engines.get(CPPGraph(**brief, n_jobs=2), small)  # other threads: other numbers
    assert engines.fits == 4


def test_targets_steer_the_choice(fast_est, fast_model_dir, monkeypatch):
    from cppgraph.suggest import error_model
    # the Gaussian plan, whose update is written out below
    monkeypatch.setattr(fast_est, "config", fast_est.config.replace(suggest_plan="gaussian"))
    data = fast_est.data_
    new = data.model_factors.iloc[:1].rename(index=lambda m: m + "-new").rename_axis(
        "model").reset_index()
    name = new["model"][0]
    target, pool = data.tasks[0], list(data.tasks[1:])
    cov, noise = error_model(fast_est)
    ti = fast_est.task_index_
    # With one target and no known score, the first step is the candidate that
    # narrows the target's error most once the engine moves the prediction by the known
    # residual: shrunk mean (1 / (1 + shrinkage)) and conditional mean, mixed.
    w, s = fast_est.config.known_regression, fast_est.config.known_shrinkage
    i = ti[target]
    after = {}
    for t in pool:
        j = ti[t]
        b = w * cov[i, j] / (cov[j, j] + noise[j]) + (1 - w) / (1 + s)
        after[t] = cov[i, i] - 2 * b * cov[i, j] + b * b * (cov[j, j] + noise[j])
    table = suggest(fast_est, 1, model_factors=new, candidates={name: pool}, targets=[target])
    assert table["task"].tolist() == [min(after, key=after.get)]
    # its expected error is that of the target alone
    assert table["expected_mae"].iloc[0] == pytest.approx(
        ABS_FROM_SD * np.sqrt(min(after.values())))
    # A dict gives each model its own targets; without targets every task counts.
    same = suggest(fast_est, 1, model_factors=new, candidates={name: pool},
                   targets={name: [target]})
    assert same.equals(table)
    every = suggest(fast_est, 1, model_factors=new, candidates={name: pool})
    assert every["expected_mae"].iloc[0] != pytest.approx(table["expected_mae"].iloc[0])
    trained = data.models[0]
    have = sorted(data.scores.loc[data.scores["model"] == trained, "task"])
    with pytest.raises(DataError, match="unknown task 'nope'"):
        suggest(fast_est, 1, model=trained, targets=["nope"])
    with pytest.raises(DataError, match="already has a score on every target task"):
        suggest(fast_est, 1, model=trained, targets=have[:2])
    left = [t for t in data.tasks if t not in have]
    # a training model's next scores join the graph at its next fit: the conditional mean
    # (on the training scores' correlation); a named target is not itself a candidate
    cov, noise = error_model(fast_est, new_model=False)
    alone = plan(cov, noise, [ti[t] for t in have], [ti[t] for t in left[1:]], [ti[left[0]]], 1)
    one = suggest(fast_est, 1, model=trained, targets=[left[0]])
    assert one["task"].iloc[0] == data.tasks[alone[0][0]] != left[0]
    assert one["expected_mae"].iloc[0] == pytest.approx(alone[0][1]) and alone[0][1] > 0
    # a plan that would evaluate every target leaves nothing to predict
    with pytest.raises(DataError, match="leaving none to predict"):
        suggest(fast_est, len(left), model=trained)
    assert len(suggest(fast_est, len(left) - 1, model=trained)) == len(left) - 1
    res = CliRunner().invoke(cli, ["suggest", str(fast_model_dir), "--model", trained,
                                   "--budget", "1", "--target", left[0], "--format", "json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)[0]["expected_mae"] == pytest.approx(
        suggest(fast_est, 1, model=trained, targets=[left[0]])["expected_mae"].iloc[0])
    res = CliRunner().invoke(cli, ["suggest", str(fast_model_dir), "--model", trained,
                                   "--budget", "1", "--target", "nope"])
    assert res.exit_code == 1 and "unknown task 'nope'" in res.output


def test_engine_plan_moves_the_prior_by_the_stages(fast_est, monkeypatch):
    """``suggest_plan = "engine"``: a new model's choice follows :func:`engine_update` on
    its prediction without known scores (what ``predict_new_models`` gives it)."""
    from cppgraph.suggest import error_model
    monkeypatch.setattr(fast_est, "config", fast_est.config.replace(suggest_plan="engine"))
    data, ti = fast_est.data_, fast_est.task_index_
    new = data.model_factors.iloc[:1].rename(index=lambda m: m + "-new").rename_axis(
        "model").reset_index()
    name = new["model"][0]
    target, pool = data.tasks[0], list(data.tasks[1:])
    table = suggest(fast_est, 1, model_factors=new, candidates={name: pool}, targets=[target])
    alone = fast_est.predict_new_models(new)
    alone = alone.set_index("task").reindex(data.tasks)
    prior = fast_est.normalizer_.transform(data.tasks, alone["predicted"].to_numpy(dtype=float))
    cov, noise = error_model(fast_est)
    update = engine_update(fast_est, prior, np.sqrt(np.diag(cov)))
    after = {}
    for t in pool:
        mean, sd = error_moments(cov, noise, [ti[t]], *update([[ti[t]]])[0])
        after[t] = float(expected_abs(mean[ti[target]], sd[ti[target]]))
    assert table["task"].tolist() == [min(after, key=after.get)]
    assert table["expected_mae"].iloc[0] == pytest.approx(min(after.values()))
    # the Gaussian model of the same stages chooses on other figures
    monkeypatch.setattr(fast_est, "config", fast_est.config.replace(suggest_plan="gaussian"))
    other = suggest(fast_est, 1, model_factors=new, candidates={name: pool}, targets=[target])
    assert other["expected_mae"].iloc[0] != pytest.approx(table["expected_mae"].iloc[0])


def test_fold_in_plans_on_the_stages(fast_est, monkeypatch):
    """Where new models' known scores fold in (``known_path``), the plan still models the
    known-score stages: the same plan as with ``"stages"``, for either ``suggest_plan``."""
    new = fast_est.data_.model_factors.iloc[:2].rename(index=lambda m: m + "-new").rename_axis(
        "model").reset_index()

    base = fast_est.config

    def plan_with(**keys):
        monkeypatch.setattr(fast_est, "config", base.replace(**keys))
        return suggest(fast_est, 3, model_factors=new)

    for plan in ("gaussian", "engine"):
        staged = plan_with(known_path="stages", suggest_plan=plan)
        pd.testing.assert_frame_equal(plan_with(known_path="fold-in", suggest_plan=plan), staged)
    # the plan does follow the stages' settings (so the equality above is not vacuous)
    other = plan_with(known_path="fold-in", suggest_plan="gaussian", known_shrinkage=0.0,
                      known_regression=1.0)
    assert not np.allclose(other["expected_mae"], plan_with(
        known_path="fold-in", suggest_plan="gaussian")["expected_mae"])


def test_the_plan_does_not_depend_on_the_string_hash_seed(fast_model_dir, demo_dir, tmp_path):
    """Known task names are a set; the plan walks them in task order, so that processes
    with different string-hash seeds give byte-identical suggestions."""
    demo = read_data(demo_dir)
    new = demo.model_factors.head(12).rename(index=lambda m: m + "-new").rename_axis("model")
    new.reset_index().to_csv(tmp_path / "new.csv", index=False)
    rng = np.random.default_rng(0)
    pd.DataFrame([{"model": m, "task": t, "score": 40.0 + 10 * i}
                  for m in new.index
                  for i, t in enumerate(rng.choice(demo.tasks, 4, replace=False))]
                 ).to_csv(tmp_path / "known.csv", index=False)
    outputs = []
    for seed in (1, 2, 3):
        out = tmp_path / f"suggest-{seed}.csv"
        proc = subprocess.run(
            [sys.executable, "-m", "cppgraph.cli", "suggest", str(fast_model_dir), "--new-models",
             str(tmp_path / "new.csv"), "--known-scores", str(tmp_path / "known.csv"),
             "--budget", "2", "--format", "csv", "--out", str(out)],
            env=dict(os.environ, PYTHONHASHSEED=str(seed)), capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1] == outputs[2]
