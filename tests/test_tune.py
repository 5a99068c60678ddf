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
    # 0.93 is closer to 0.9 than 0.85, though lower is not better for coverage.
    table = pd.DataFrame({"frontier_level": [0.8, 0.9], "setting": ["frontier 0.1 k=2"] * 2,
                          "seed": [0, 0], "coverage_90": [0.93, 0.85]})
    monkeypatch.setattr(tune, "read_data", lambda *args, **kwargs: None)
    monkeypatch.setattr(tune, "tune", lambda *args, **kwargs: table)
    tune.main(["data/demo", "--metric", "coverage_90", "--setting", "frontier:0.1:2",
               "--grid", "frontier_level=0.8,0.9"])
    rows = [line.split()[0] for line in capsys.readouterr().out.splitlines()
            if line.startswith(("0.8", "0.9"))]
    assert rows == ["0.8", "0.9"]
