"""``tools/tune.py``: the extra metrics it reports from the same predictions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from conftest import load_tool


@pytest.fixture(scope="module")
def tune():
    return load_tool("tune")


class TenthNorm:
    """A stand-in scale: a tenth of the raw score."""

    def transform(self, tasks, values, models=None):
        return np.asarray(values, dtype=np.float64) / 10


CELLS = pd.DataFrame({"model": ["a", "b", "c"], "task": ["t", "t", "u"],
                      "score": [10.0, 20.0, 30.0], "predicted": [12.0, 20.0, np.nan]})


@pytest.mark.parametrize("metric, expected", [("mae_norm", 0.1), ("mse_norm", 0.02),
                                              ("mae_raw", 1.0), ("rmse_raw", math.sqrt(2))])
def test_extra_metric_by_hand(tune, metric, expected):
    # Cells 1-2 only (cell 3 has no prediction): errors 0.2 and 0 normalized, 2 and 0 raw.
    assert tune._extra_metric(CELLS, TenthNorm(), metric) == pytest.approx(expected)


def test_extra_metric_without_predictions_is_nan(tune):
    assert math.isnan(tune._extra_metric(CELLS.assign(predicted=np.nan), TenthNorm(), "mae_norm"))


def test_also_is_checked(tune, capsys):
    with pytest.raises(SystemExit):
        tune.main(["data/demo", "--also", "minmax:r2"])
    assert "--also takes UNIT:METRIC" in capsys.readouterr().err


def test_coverage_ranks_by_distance_to_nominal(tune, monkeypatch, capsys):
    # 0.93 is closer to 0.9 than 0.85, though lower is not better for coverage; the widths
    # of the same intervals follow in the same order.
    table = pd.DataFrame({"frontier_level": [0.8, 0.9], "setting": ["frontier 0.1 k=2"] * 2,
                          "seed": [0, 0], "coverage_90": [0.93, 0.85], "width_90": [0.5, 0.3]})
    monkeypatch.setattr(tune, "read_data", lambda *args, **kwargs: None)
    monkeypatch.setattr(tune, "tune", lambda *args, **kwargs: table)
    tune.main(["data/demo", "--metric", "coverage_90", "--setting", "frontier:0.1:2",
               "--grid", "frontier_level=0.8,0.9"])
    out = capsys.readouterr().out
    rows = [line.split()[:2] for line in out.splitlines() if line.startswith(("0.8", "0.9"))]
    assert rows == [["0.8", "0.93"], ["0.9", "0.85"], ["0.8", "0.5"], ["0.9", "0.3"]]
    assert out.index("coverage_90 (mean") < out.index("width_90 (mean")


def test_tune_keeps_the_widths_of_the_intervals_it_scores(tune, demo_dir, monkeypatch):
    """With ``coverage_90``, each row also holds the scored intervals' ``width_90``; with
    an error metric there is no width column."""
    demo = tune.read_data(demo_dir)
    scored = {"coverage_90": 0.88, "width_90": 0.41, "mae_norm": 0.07}
    monkeypatch.setattr(tune, "score_split", lambda split, method, **kw: (scored, CELLS))
    run = dict(seeds=[0], settings=[("cold-model", 0.2, 0)], progress=lambda line: None)
    rows = tune.tune(demo, {"frontier_level": [0.8, 0.9]}, metric="coverage_90", **run)
    assert rows["coverage_90"].tolist() == [0.88, 0.88]
    assert rows["width_90"].tolist() == [0.41, 0.41]
    assert "width_90" not in tune.tune(demo, {"frontier_level": [0.9]}, **run)


def test_candidates_round_trip_and_bad_ones(tune, capsys):
    spec = tune.parse_candidate('lr=0.03,lr_patience=4,encoder="sage",intervals=false')
    assert spec == {"lr": 0.03, "lr_patience": 4, "encoder": "sage", "intervals": False}
    assert tune.parse_candidate(tune.label(spec)) == spec
    assert tune.parse_candidate("defaults") == {} and tune.label({}) == "defaults"
    with pytest.raises(ValueError, match="key=value pairs"):
        tune.parse_candidate("lr0.03")
    for argv, message in ((["--candidate", "lr"], "key=value pairs"),
                          (["--candidate", "lr=0.1", "--grid", "lr=0.2"], "not both")):
        with pytest.raises(SystemExit):
            tune.main(["data/demo", *argv])
        assert message in capsys.readouterr().err


def test_candidates_are_rows_with_their_seconds(tune, monkeypatch, capsys):
    table = pd.DataFrame({"candidate": ["defaults", "lr=0.03"], "setting": ["random 0.1 k=0"] * 2,
                          "seed": [0, 0], "mae_norm": [0.05, 0.04], "seconds": [10.0, 4.0]})
    seen = {}
    monkeypatch.setattr(tune, "read_data", lambda *args, **kwargs: None)
    monkeypatch.setattr(tune, "tune", lambda *args, **kwargs: seen.update(kwargs) or table)
    tune.main(["data/demo", "--setting", "random:0.1:0", "--candidate", "defaults",
               "--candidate", "lr=0.03"])
    assert seen["configs"] == [{}, {"lr": 0.03}]
    out = capsys.readouterr().out
    seconds = out.split("seconds (mean over seeds)")[1]
    # ranked by the metric (lr=0.03 first), with its seconds
    assert [line.split()[0] for line in seconds.splitlines() if line.startswith(("defaults", "lr="))] \
        == ["lr=0.03", "defaults"]
    assert "4.0" in seconds and "10.0" in seconds


def test_cold_model_choice_settings(tune, demo_dir, capsys, monkeypatch):
    """A cold-model setting's fourth field chooses the known scores; with ``suggest`` the
    candidate's engine chooses. Settings at one seed share the engines they both fit."""
    from cppgraph.data import read_data
    demo = read_data(demo_dir)
    small = demo.subset(models=demo.models[:30])
    brief = {"epochs": 3, "patience": 3}
    configs = [{**brief, "suggest_plan": plan} for plan in ("gaussian", "engine")]
    made = []

    class Counted(tune.FittedEngines):
        def __init__(self):
            super().__init__()
            made.append(self)

    monkeypatch.setattr(tune, "FittedEngines", Counted)
    table = tune.tune(small, {}, seeds=[0], configs=configs, progress=lambda line: None,
                      settings=(("cold-model", 0.2, 2, "suggest"), ("cold-model", 0.2, 2)))
    assert table["setting"].tolist() == ["cold-model 0.2 k=2 suggest"] * 2 + \
        ["cold-model 0.2 k=2"] * 2
    # the plan does not change the evaluated engine's predictions of randomly chosen scores
    rand = table[table["setting"] == "cold-model 0.2 k=2"]["mae_norm"].to_numpy()
    assert rand[0] == rand[1] and np.isfinite(table["mae_norm"]).all()
    # the choosing engine and the evaluated one, shared by both plans (the plan acts after
    # the fit); the random setting reuses the latter
    assert len(made) == 1 and made[0].fits == 2
    with pytest.raises(SystemExit):
        tune.main(["data/demo", "--setting", "random:0.1:0:suggest"])
    assert "cold-model:SIZE:K:CHOOSE" in capsys.readouterr().err
