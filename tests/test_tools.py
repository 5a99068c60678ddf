"""Scripts under tools/ run on the demo data."""

from __future__ import annotations

import importlib.util

import numpy as np

from conftest import ROOT
from cppgraph.data import read_canonical


def load_tool(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cold_start_check(demo_dir):
    tool = load_tool("cold_start_check")
    table = tool.cold_start_errors(read_canonical(demo_dir), encoder="lightgcn", seeds=[0],
                                   held=3, known=[0, 2])
    assert table["k"].tolist() == [0, 2]
    # Both k are scored on the same cells: those beyond each model's first 2 scores.
    assert table["cells"].nunique() == 1 and table["cells"].iloc[0] > 0
    assert np.isfinite(table["mae_norm"]).all() and (table["mae_norm"] < 0.3).all()


def test_cold_start_check_new_tasks(demo_dir):
    tool = load_tool("cold_start_check")
    table = tool.cold_start_errors(read_canonical(demo_dir), encoder="lightgcn", seeds=[0],
                                   held=2, known=[0, 3], entity="task", epochs=40, patience=40)
    # With no known score a new task has no raw scale: no raw error, but a ranking.
    assert np.isnan(table["mae_norm"].iloc[0]) and np.isfinite(table["mae_norm"].iloc[1])
    assert (table["spearman"] > 0).all()


def test_holdout_check(demo_dir):
    tool = load_tool("holdout_check")
    table = tool.holdout_errors(read_canonical(demo_dir), seeds=[0], test_size=0.1,
                                epochs=40, patience=40)
    assert table["cells"].iloc[0] > 50
    assert 0 < table["mae_norm"].iloc[0] < 0.3 and table["mse_norm"].iloc[0] > 0
