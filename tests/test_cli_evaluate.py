"""``cppgraph evaluate`` from the command line."""

from __future__ import annotations

import json

import pandas as pd
from click.testing import CliRunner

from cppgraph.cli import cli
from cppgraph.evaluate.metrics import METRICS


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_json_records(demo_dir, tmp_path):
    brief = tmp_path / "brief.toml"  # a short fit, the intervals calibrated
    brief.write_text("epochs = 20\npatience = 20\n")
    result = run("evaluate", demo_dir, "--methods", "task-mean,svd", "--methods", "cppgraph",
                 "--seeds", 2, "--format", "json", "--config", brief)
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert {tuple(sorted(r)) for r in records} == {("mean", "method", "metric", "protocol", "seeds",
                                                   "std")}
    table = pd.DataFrame(records)
    assert set(table["method"]) == {"task-mean", "svd", "cppgraph"}
    assert set(METRICS) <= set(table["metric"]) and (table["protocol"] == "random").all()
    mae = table[table["metric"] == "mae_norm"].set_index("method")["mean"]
    assert mae["cppgraph"] < mae["task-mean"]
    coverage = table[table["metric"] == "coverage_90"].set_index("method")
    assert coverage.at["cppgraph", "seeds"] == 2 and coverage.at["svd", "seeds"] == 0
    assert "seed 1" in result.stderr  # progress goes to stderr


def test_table_and_cold_model(demo_dir, tmp_path):
    out = tmp_path / "cells.csv"
    result = run("evaluate", demo_dir, "--protocol", "cold-model", "--known", 2, "--seeds", 1,
                 "--methods", "task-model-offset", "--predictions", out)
    assert result.exit_code == 0, result.output
    assert "task-model-offset" in result.stdout and "mae_norm" in result.stdout
    cells = pd.read_csv(out)
    assert {"model", "task", "score", "predicted", "method", "seed"} <= set(cells.columns)
    # The file is not overwritten without --force, and the run stops before any work.
    again = run("evaluate", demo_dir, "--seeds", 1, "--methods", "task-mean", "--predictions", out)
    assert again.exit_code == 1 and "file exists" in again.stderr
    assert "evaluating" not in again.stderr
    assert pd.read_csv(out).equals(cells)


def test_bad_options(demo_dir, tmp_path):
    bad = run("evaluate", demo_dir, "--methods", "sdv")
    assert bad.exit_code == 1 and "unknown method 'sdv'" in bad.stderr
    bad = run("evaluate", demo_dir, "--known", 2, "--methods", "task-mean")
    assert bad.exit_code == 1 and "known scores apply" in bad.stderr
    bad = run("evaluate", demo_dir, "--seeds", 0)
    assert bad.exit_code == 2 and "--seeds" in bad.stderr
    bad = run("evaluate", tmp_path / "nowhere", "--methods", "task-mean")
    assert bad.exit_code == 1 and "nowhere" in bad.stderr


def test_parity_plot(demo_dir, tmp_path, monkeypatch):
    import cppgraph.evaluate.report as report

    seen = {}
    real = report.parity_plot

    def spy(predictions, path, **kwargs):
        seen["methods"] = list(dict.fromkeys(predictions["method"]))
        seen["rows"] = len(predictions)
        real(predictions, path, **kwargs)

    monkeypatch.setattr("cppgraph.cli.evaluate.parity_plot", spy)
    png = tmp_path / "parity.png"
    result = run("evaluate", demo_dir, "--seeds", 2, "--methods", "task-mean,svd", "--plot", png)
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"wrote {png}" in result.stderr
    assert sorted(seen["methods"]) == ["svd", "task-mean"] and seen["rows"] > 0
    # Not a PNG path, or an existing file without --force: refused before any work.
    for path, message in ((tmp_path / "parity.pdf", "give a .png path"), (png, "file exists")):
        again = run("evaluate", demo_dir, "--seeds", 1, "--methods", "task-mean", "--plot", path)
        assert again.exit_code == 1 and message in again.stderr, again.output
        assert "evaluating" not in again.stderr
    assert not (tmp_path / "parity.pdf").exists()
    forced = run("evaluate", demo_dir, "--seeds", 1, "--methods", "task-mean", "--plot", png,
                 "--force")
    assert forced.exit_code == 0, forced.output


def test_config_reaches_the_engine(demo_dir, tmp_path):
    config = tmp_path / "short.toml"
    config.write_text("epochs = 3\npatience = 3\nintervals = false\n")
    result = run("evaluate", demo_dir, "--methods", "cppgraph,cppgraph-lightgcn", "--seeds", 1,
                 "--config", config, "--format", "json")
    assert result.exit_code == 0, result.output
    table = pd.DataFrame(json.loads(result.stdout)).set_index(["method", "metric"])
    # intervals = false reached both engines: neither reports a coverage.
    assert table.loc[("cppgraph", "coverage_90"), "seeds"] == 0
    assert table.loc[("cppgraph-lightgcn", "coverage_90"), "seeds"] == 0
    bad = tmp_path / "bad.toml"
    bad.write_text("epochz = 3\n")
    result = run("evaluate", demo_dir, "--methods", "cppgraph", "--seeds", 1, "--config", bad)
    assert result.exit_code == 1 and "bad.toml" in result.stderr and "epochz" in result.stderr
    assert "evaluating" not in result.stderr  # refused before any work
