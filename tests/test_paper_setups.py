"""The CPP paper's set-ups on the shared data, and the benchmark tool's tables and report."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import DEMO, load_tool

from cppgraph.data import read_data
from cppgraph.evaluate import paper
from cppgraph.evaluate.methods import METHODS, CPPGraphMethod


@pytest.fixture(scope="module")
def cpp(shared_data):
    return read_data(shared_data / "cpp_llm", "cpp-llm")


def test_helm_pilot_matrix(shared_data):
    with pytest.warns(Warning):
        helm = read_data(shared_data / "cpp_llm" / "helm_core.csv", "helm")
    pilot = paper.helm_pilot_data(helm)
    assert (len(pilot.tasks), len(pilot.models), pilot.n_observed) == (16, 67, 876)
    assert pilot.models == helm.models[:67] and pilot.tasks == helm.tasks[:16]
    split = paper.helm_pilot_split(pilot, 0)
    assert len(split.test) == 438 and len(split.train.scores) == 438


def test_table1_split(cpp):
    split = paper.table1_split(cpp, 3)
    assert len(split.test) == round(0.05 * cpp.n_observed) and split.rank_by == "task"
    assert len(split.train.scores) + len(split.test) == cpp.n_observed


@pytest.mark.parametrize("known", [0, 2])
def test_table4_and_5_hide_the_named_entity(cpp, known):
    for name in paper.TABLE4:
        split = paper.table4_splits(cpp, name, known)(1)
        assert name not in split.train.models and split.rank_by == "model"
        assert len(split.known) == known and set(split.test["model"]) == {name}
        assert len(split.test) + known == (cpp.scores["model"] == name).sum()
    for name in paper.TABLE5:
        split = paper.table5_splits(cpp, name, known)(1)
        assert name not in split.train.tasks and split.rank_by == "task"
        assert len(split.known) == known and set(split.test["task"]) == {name}


def fake_long(names, methods, value):
    """Long summary rows for every (known, name, method) with ``value(known, name, method)``."""
    rows = []
    for known in (0, 2):
        for name in names:
            for m in methods:
                for metric in ("mse_norm", "rank_acc", "rank_mae2"):
                    rows.append({"known": known, "name": name, "method": m, "metric": metric,
                                 "mean": value(known, name, m) if metric == "mse_norm" else 0.5,
                                 "std": 0.0})
    return pd.DataFrame(rows)


def test_paper_tables_count_wins():
    bench = load_tool("benchmark")
    better = list(paper.TABLE4)[:7]

    def t4(known, name, method):
        ref = paper.TABLE4[name][1][known][0]
        return ref * (0.5 if (method != "cppgraph" or name in better) else 2.0)

    table, line = bench.paper_table4(fake_long(paper.TABLE4, bench.PAPER_4_5, t4), 0)
    assert len(table) == 13 and table["model"].iloc[-1] == "**mean**"
    assert line.startswith("cppgraph has the lower MSE on 7 of 12 models")
    table, line = bench.paper_table5(fake_long(
        paper.TABLE5, bench.PAPER_4_5, lambda k, n, m: paper.TABLE5[n][1][k] * (0.9 if k else 1.1)))
    assert len(table) == 8 and line == "cppgraph has the lower MSE in 4 of 8 (task, k) cells."


def test_benchmark_report_on_demo(tmp_path, monkeypatch):
    bench = load_tool("benchmark")
    datasets = {"demo": bench.Dataset(str(DEMO), "canonical", "Demo (synthetic)")}
    settings = [bench.Setting("demo", "random", 0.1, seeds=2, methods=("task-mean", "cppgraph")),
                bench.Setting("demo", "cold-model", 0.1, 2, seeds=2,
                              methods=("task-mean", "cppgraph"))]
    steps = []
    monkeypatch.setattr(bench, "_progress", steps.append)
    # the report's form is under test here, not the engine: a brief fit, no intervals
    monkeypatch.setitem(METHODS, "cppgraph", lambda: CPPGraphMethod(
        "cppgraph", intervals=False, epochs=10, patience=10))
    results = bench.run_settings(settings, datasets, tmp_path, tmp_path)
    assert len(steps) == bench.fits(settings, {"demo"}) == 8  # the progress bar's total
    assert sorted(p.name for p in tmp_path.glob("*.csv")) == ["demo-cold-model-0.1-k=2.csv",
                                                              "demo-random-0.1.csv"]
    paths = bench.figures(results, tmp_path, datasets)
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths["demo"])
    text = bench.report(results, None, paths, datasets, tmp_path, "python tools/benchmark.py")
    headline = text.split("## Headline")[1].split("\n## ")[0]
    assert "| Demo: random 0.1 | task-mean " in headline
    assert "| Demo: cold-model 0.1 k=2 | task-mean " in headline
    assert "--protocol cold-model --test-size 0.1 --known 2 --seeds 2 --methods task-mean,cppgraph" in text
    assert "![parity](demo-parity.png)" in text
