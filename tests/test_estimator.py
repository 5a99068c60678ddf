"""The engine: training lowers the loss, determinism, no leakage, cold start, save/load."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from cppgraph.config import Config
from cppgraph.data import read_canonical
from cppgraph.errors import CppGraphError, DataError
from cppgraph.estimator import CPPGraph
from cppgraph.graph import SCORES

FAST = dict(epochs=80, patience=80)


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
    assert table["predicted_normalized"].between(0, 1).all()
    obs = table[table["is_observed"]]
    # Raw units come back through the exact inverse of the normalization.
    np.testing.assert_allclose(
        fitted.normalizer_.transform(obs["task"], obs["predicted"]), obs["predicted_normalized"],
        atol=1e-9)
    mae = (obs["predicted_normalized"] - obs["observed_normalized"]).abs().mean()
    assert mae < 0.12  # far better than a constant: the demo's per-task spread is ~0.25


def test_same_seed_same_predictions(demo):
    a = CPPGraph(random_state=3, **FAST).fit(demo).predict()
    b = CPPGraph(random_state=3, **FAST).fit(demo).predict()
    pd.testing.assert_frame_equal(a, b)
    c = CPPGraph(random_state=4, **FAST).fit(demo).predict()
    assert not np.allclose(a["predicted"], c["predicted"])


def test_observed_cell_does_not_see_its_own_score(fitted, demo):
    """Changing the score on an observed cell's edge leaves that cell's prediction unchanged."""
    cell = demo.scores.iloc[[0]][["model", "task"]]
    before = fitted.predict(cell)["predicted"].iloc[0]
    weights = fitted.inputs_.graph[SCORES].edge_weight
    saved = weights.clone()
    try:
        weights[0] = 1.0 - weights[0]  # edge 0 is that cell
        fitted.inputs_.graph["task", "rev_scores", "model"].edge_weight[0] = weights[0]
        after = fitted.predict(cell)["predicted"].iloc[0]
        # ...while an unobserved cell of the same model does see it (the check can fail).
        observed = set(map(tuple, demo.scores[["model", "task"]].to_numpy()))
        other = next(t for t in demo.tasks if (cell["model"].iloc[0], t) not in observed)
        probe = pd.DataFrame({"model": cell["model"], "task": [other]})
        changed = fitted.predict(probe)["predicted"].iloc[0]
    finally:
        weights.copy_(saved)
        fitted.inputs_.graph["task", "rev_scores", "model"].edge_weight.copy_(saved)
    assert after == before
    assert changed != fitted.predict(probe)["predicted"].iloc[0]


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
    known = truth.groupby("model").head(3)
    rest = truth.drop(known.index)
    k3 = est.predict_new_models(factors, known)
    assert k3["is_observed"].sum() == len(known)

    def mae(pred):
        merged = rest.merge(pred, on=["model", "task"])
        y = est.normalizer_.transform(merged["task"], merged["score"])
        return float(np.abs(merged["predicted_normalized"] - y).mean())

    # Cold start from factors alone is informative (the demo's per-task spread is ~0.25).
    assert mae(zero) < 0.15
    assert np.isfinite(mae(k3))


def test_save_load_round_trip(fitted, tmp_path):
    fitted.save(tmp_path / "model")
    loaded = CPPGraph.load(tmp_path / "model")
    pd.testing.assert_frame_equal(fitted.predict(), loaded.predict())
    with pytest.raises(DataError, match="not empty"):
        fitted.save(tmp_path / "model")


def test_load_errors(fitted, tmp_path):
    with pytest.raises(CppGraphError, match="model folder not found"):
        CPPGraph.load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CppGraphError, match="not a cppgraph model folder"):
        CPPGraph.load(tmp_path / "empty")
    fitted.save(tmp_path / "m")
    (tmp_path / "m" / "weights.pt").write_bytes(b"garbage")
    with pytest.raises(CppGraphError, match="corrupted or incompatible"):
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


@pytest.mark.parametrize("name", ["default", "lightgcn", "sage"])
def test_shipped_configs_hold_every_key(name):
    from conftest import ROOT
    cfg = Config.from_file(ROOT / "configs" / f"{name}.toml")
    text = (ROOT / "configs" / f"{name}.toml").read_text()
    for key in cfg.to_dict():
        assert f"\n{key} = " in text
