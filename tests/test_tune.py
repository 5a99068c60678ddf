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
