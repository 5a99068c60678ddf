"""Factor importance: SHAP values of the design factors, ablation, plot and the CLI."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from cppgraph import explain as cpx
from cppgraph.cli import cli
from cppgraph.data import read_data
from cppgraph.errors import CppGraphError
from cppgraph.estimator import CPPGraph


@pytest.fixture(scope="module")
def demo(demo_dir):
    return read_data(demo_dir)


@pytest.fixture(scope="module")
def one_task(fast_est):
    return cpx.shap_values(fast_est, task=fast_est.data_.tasks[0])


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_factors_partition_the_inputs(fast_est, demo):
    facs = cpx.factors(fast_est)
    assert [f.label for f in facs] == [f"{e}:{n}" for e in ("model", "task")
                                       for n in demo.factor_kinds[e]]
    enc = fast_est.factors_
    for entity in ("model", "task"):
        cols = np.concatenate([f.x_cols for f in facs if f.entity == entity])
        assert sorted(cols.tolist()) == list(range(len(enc.feature_names(entity))))  # each once
        nodes = np.concatenate([f.nodes for f in facs if f.entity == entity])
        assert sorted(enc.nodes_[n] for n in nodes) == sorted(enc.factor_columns(entity))
    params = next(f for f in facs if f.label == "model:params_b")
    assert enc.feature_names("model")[params.x_cols[0]] == "params_b"
    assert all(enc.nodes_[n].startswith("params_b=") for n in params.nodes)
    assert len(params.nodes) > 1


def test_removing_a_factor_zeroes_its_inputs_and_edges(fast_est):
    family = next(f for f in cpx.factors(fast_est) if f.label == "model:family")
    params = next(f for f in cpx.factors(fast_est) if f.label == "model:params_b")
    g = fast_est.graph_
    out = cpx._without(g, [family, params])
    assert (out.model_x[:, torch.from_numpy(params.x_cols)] == 0).all()
    others = np.setdiff1d(np.arange(g.model_x.size(1)), params.x_cols)
    assert torch.equal(out.model_x[:, others], g.model_x[:, others])
    assert torch.equal(out.task_x, g.task_x)
    gone = torch.from_numpy(np.concatenate([family.nodes, params.nodes]))
    fwd, rev = out.relations["model->factor"], out.relations["factor->model"]
    assert not torch.isin(fwd.dst, gone).any() and not torch.isin(rev.src, gone).any()
    before = g.relations["model->factor"]
    n = len(fast_est.data_.models)
    assert fwd.num_edges == before.num_edges - n - int((fast_est.data_.model_factors["params_b"] > 0).sum())
    assert sorted(zip(fwd.src.tolist(), fwd.dst.tolist())) == sorted(zip(rev.dst.tolist(),
                                                                       rev.src.tolist()))
    assert out.relations["factor->task"] is g.relations["factor->task"]
    # the original graph is untouched
    assert torch.isin(before.dst, torch.from_numpy(family.nodes)).sum() == n


def test_shap_values_add_up_to_the_prediction(fast_est, one_task):
    sv = one_task
    assert sv.method == "exact" and list(sv.values.columns) == [f.label for f in sv.factors]
    assert len(sv.values) == len(fast_est.data_.models)
    np.testing.assert_allclose(sv.base + sv.values.sum(axis=1), sv.prediction, atol=1e-6)
    # the all-removed prediction is the network run on inputs with every factor zeroed
    rows, cols, edge = fast_est._cells(sv.values.index.to_frame(index=False))
    assert (cols == 0).all() and (edge >= 0).sum() == (fast_est.data_.scores["task"]
                                                       == fast_est.data_.tasks[0]).sum()
    bare = fast_est._network_predict(rows, cols, edge, graph=cpx._without(fast_est.graph_, sv.factors))
    np.testing.assert_allclose(sv.base.to_numpy(), bare, atol=1e-6)
    full = fast_est._network_predict(rows, cols, edge)
    np.testing.assert_allclose(sv.prediction.to_numpy(), full, atol=1e-6)


def test_observed_cells_are_explained_without_their_own_score(fast_est):
    """Changing an observed score must not move its own explained prediction."""
    s = fast_est.data_.scores.iloc[0]
    before = cpx.shap_values(fast_est, model=s["model"], task=s["task"])
    graph = fast_est.graph_
    try:
        changed = graph.score.clone()
        changed[0] = 1.0 - changed[0]
        fast_est.graph_ = graph.with_scores(changed)
        after = cpx.shap_values(fast_est, model=s["model"], task=s["task"])
        moved = cpx.shap_values(fast_est, model=s["model"], task=fast_est.data_.tasks[-1])
    finally:
        fast_est.graph_ = graph
    pd.testing.assert_frame_equal(before.values, after.values)
    # the changed score does reach the predictions of other cells (the check can fail)
    assert not np.allclose(moved.prediction.to_numpy(), cpx.shap_values(
        fast_est, model=s["model"], task=fast_est.data_.tasks[-1]).prediction.to_numpy())


def test_one_cell_matches_the_column(fast_est, one_task):
    model, task = fast_est.data_.models[3], fast_est.data_.tasks[0]
    cell = cpx.shap_values(fast_est, model=model, task=task)
    np.testing.assert_allclose(cell.values.iloc[0].to_numpy(),
                               one_task.values.loc[(model, task)].to_numpy(), atol=1e-6)
    table = cell.one(model, task)
    assert list(table.columns) == ["factor", "entity", "shap"]
    assert (np.diff(table["shap"].abs().to_numpy()) <= 1e-12).all()


def test_exact_values_are_the_shapley_formula(fast_est, monkeypatch):
    """With three factors, one cell's values are the Shapley formula over its 8 coalitions."""
    three = cpx.factors(fast_est)[:3]
    monkeypatch.setattr(cpx, "factors", lambda est: three)
    model, task = fast_est.data_.models[5], fast_est.data_.tasks[2]
    sv = cpx.shap_values(fast_est, model=model, task=task)
    assert sv.method == "exact" and list(sv.values.columns) == [f.label for f in three]
    rows, cols, edge = fast_est._cells(pd.DataFrame({"model": [model], "task": [task]}))

    def v(kept: set) -> float:
        gone = [f for i, f in enumerate(three) if i not in kept]
        return float(fast_est._network_predict(rows, cols, edge,
                                               graph=cpx._without(fast_est.graph_, gone))[0])

    assert sv.base.iloc[0] == pytest.approx(v(set()), abs=1e-6)
    for i in range(3):  # weights |S|! (2 - |S|)! / 3!: 1/3, 1/6, 1/6, 1/3
        j, k = [x for x in range(3) if x != i]
        phi = ((v({i}) - v(set())) / 3 + (v({i, j}) - v({j})) / 6
               + (v({i, k}) - v({k})) / 6 + (v({i, j, k}) - v({j, k})) / 3)
        assert sv.values.iloc[0, i] == pytest.approx(phi, abs=1e-6)


def test_many_cells_take_shaps_exact_explainer_with_the_same_values(fast_est, one_task,
                                                                     monkeypatch):
    """Above :data:`~cppgraph.explain.EXACT_EXPLAINER_CELLS` cells the values come from
    shap's Exact explainer instead of the kernel solve: the same exact Shapley values."""
    monkeypatch.setattr(cpx, "EXACT_EXPLAINER_CELLS", 2)
    again = cpx.shap_values(fast_est, task=fast_est.data_.tasks[0])
    assert again.method == "exact" and len(again.values) >= 2
    pd.testing.assert_frame_equal(again.values, one_task.values, atol=1e-9)
    pd.testing.assert_series_equal(again.base, one_task.base, atol=1e-9)


def test_permutation_estimate_is_seeded_and_adds_up(fast_est, monkeypatch):
    monkeypatch.setattr(cpx, "EXACT_MAX_FACTORS", 3)
    model = fast_est.data_.models[0]
    a = cpx.shap_values(fast_est, model=model, max_evals=60)
    b = cpx.shap_values(fast_est, model=model, max_evals=60)
    assert a.method == "permutation"
    pd.testing.assert_frame_equal(a.values, b.values)
    np.testing.assert_allclose(a.base + a.values.sum(axis=1), a.prediction, atol=1e-6)


def test_strongest_demo_factor_ranks_first(demo):
    """The demo's latent is log compute: parameter count is its strongest factor by construction."""
    default = CPPGraph(intervals=False).fit(demo)
    table = cpx.global_importance(cpx.shap_values(default))
    assert table.loc[0, "factor"] == "params_b", table.to_string()
    assert table["share"].sum() == pytest.approx(1.0)
    assert list(table["rank"]) == list(range(1, len(table) + 1))


def test_unknown_names_suggest_close_matches(fast_est):
    with pytest.raises(CppGraphError, match="syn-aurora"):
        cpx.shap_values(fast_est, model="syn-aurora-9.9")
    with pytest.raises(CppGraphError, match="unknown task"):
        cpx.shap_values(fast_est, task="nope")
    with pytest.raises(CppGraphError, match="unknown factor"):
        cpx.ablation_importance(fast_est, only=["param"])


def test_without_factor(demo):
    cut = cpx.without_factor(demo, "model", "params_b")
    assert "params_b" not in cut.model_factors.columns
    assert "params_b" not in cut.factor_kinds["model"]
    assert "params_b" in demo.model_factors.columns  # the original is unchanged
    fitted = CPPGraph(epochs=2, patience=2, intervals=False).fit(cut)
    assert not any(n.startswith("params_b=") for n in fitted.factors_.nodes_)


@pytest.fixture()
def brief_est(fast_est):
    """``fast_est`` whose configuration asks for brief fits: the ablation refits with it."""
    est = copy.copy(fast_est)
    est.config = fast_est.config.replace(epochs=10, patience=10)
    return est


def test_ablation_importance(brief_est):
    table = cpx.ablation_importance(brief_est, seeds=1, only=["params_b", "task:ability"])
    assert list(table.columns) == ["factor", "entity", "mae_without", "delta_mae", "delta_std",
                                   "rank"]
    assert set(zip(table["factor"], table["entity"])) == {("params_b", "model"),
                                                          ("ability", "task")}
    np.testing.assert_allclose(table["delta_mae"], table["mae_without"] - table.attrs["mae_all"])
    assert (table["delta_mae"].diff().dropna() <= 0).all()
    assert table["delta_std"].isna().all()  # one seed: no spread to show
    with pytest.raises(CppGraphError, match="seeds"):
        cpx.ablation_importance(brief_est, seeds=0)
    with pytest.raises(CppGraphError, match="protocol"):
        cpx.ablation_importance(brief_est, protocol="cold-task")


def test_ablation_on_held_out_models(brief_est):
    table = cpx.ablation_importance(brief_est, seeds=1, protocol="cold-model", only=["family"])
    assert list(table["factor"]) == ["family"] and np.isfinite(table["delta_mae"]).all()


def test_importance_plot(one_task, tmp_path):
    table = cpx.importance_table(cpx.global_importance(one_task))
    path = cpx.importance_plot(table, tmp_path / "imp.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(CppGraphError, match="exists"):
        cpx.importance_plot(table, path)
    with pytest.raises(CppGraphError, match="PNG"):
        cpx.importance_plot(table, tmp_path / "imp.jpg")
    assert not (tmp_path / "imp.jpg").exists()


def test_cli_explain(fast_model_dir, fast_est, tmp_path):
    task = fast_est.data_.tasks[0]
    res = run("explain", fast_model_dir, "--task", task, "--plot", tmp_path / "t.png")
    assert res.exit_code == 0, res.output
    assert "mean |SHAP|" in res.output and "params_b" in res.output
    assert (tmp_path / "t.png").is_file()
    model = fast_est.data_.models[0]
    res = run("explain", fast_model_dir, "--model", model, "--task", task)
    assert res.exit_code == 0, res.output
    assert f"{model} on {task}" in res.output and "shap" in res.output


def test_cli_explain_errors(fast_model_dir, tmp_path):
    res = run("explain", fast_model_dir, "--model", "syn-aurora-9.9")
    assert res.exit_code == 1 and "error:" in res.output and "syn-aurora-9.9b" in res.output
    existing = tmp_path / "x.png"
    existing.write_bytes(b"mine")
    res = run("explain", fast_model_dir, "--plot", existing)
    assert res.exit_code == 1 and "exists" in res.output
    assert existing.read_bytes() == b"mine"
    res = run("explain", fast_model_dir, "--plot", tmp_path / "x.svg")
    assert res.exit_code == 1 and "PNG" in res.output
    res = run("explain", tmp_path / "nothing-here")
    assert res.exit_code == 1 and "error:" in res.output
