"""``tools/scale_benchmark.py``: a part not run keeps the figures of its last run."""

from __future__ import annotations

import json

import pytest
from conftest import load_tool

from cppgraph.cli import cli


@pytest.fixture(scope="module")
def bench():
    return load_tool("scale_benchmark")


SCALE = [{"size": "10k", "method": "cppgraph", "wall_s": 9.0, "rss_mb": 400.0,
          "timed_out": False, "mae_norm": 0.0425, "coverage_90": 0.911, "seconds": 8.5},
         {"size": "10k", "method": "svd", "wall_s": 2.0, "rss_mb": 300.0, "timed_out": False,
          "mae_norm": 0.0857, "coverage_90": None, "seconds": 1.7},
         {"size": "10k", "method": "cppgraph fit (CLI, all cells)", "wall_s": 12.5,
          "rss_mb": 410.0, "timed_out": False}]
ACCURACY = json.dumps([{"method": "cppgraph", "metric": "mae_norm", "mean": 0.04, "std": 0.001},
                       {"method": "svd", "metric": "mae_norm", "mean": 0.08, "std": 0.002}])
DEFAULT = "default: 1 thread, the calibration fit beside when a core is free"
THREADS = [{"load": 0, "setting": DEFAULT, "threads": 1, "wall_s": 10.0,
            "runs": [10.0, 9.0, 11.0], "timed_out": False},
           {"load": 4, "setting": DEFAULT, "threads": 1, "wall_s": 27.0,
            "runs": [27.0, 26.0, 28.0], "timed_out": False}]


def _shape(label, cpp, svd, *, timed_out=False):
    return {"shape": label, "models": 1000, "tasks": 500, "density": 0.2, "cells": 99879,
            "timed_out": timed_out,
            "results": None if timed_out else [
                {"method": "cppgraph", "metric": "mae_norm", "mean": cpp, "std": 0.001},
                {"method": "svd", "metric": "mae_norm", "mean": svd, "std": 0.002},
                {"method": "soft-impute", "metric": "mae_norm", "mean": 0.07, "std": 0.003},
                {"method": "mf", "metric": "mae_norm", "mean": 0.1, "std": 0.004},
                {"method": "cppgraph", "metric": "mae_raw", "mean": 1.0, "std": 0.1}]}


def test_shapes_part_reports_each_shape_against_its_best_baseline(bench, tmp_path, monkeypatch):
    """One row per shape with every method's MAE and cppgraph's ratio to the best baseline
    (soft-impute's 0.07 here, below svd's 0.08), also in the headline; a stopped run reads
    as stopped; the other parts keep their figures."""
    out = tmp_path / "SCALE.md"
    old = {"accuracy": {"command": "python tools/scale_benchmark.py", "results": ACCURACY}}
    out.with_suffix(".json").write_text(json.dumps(old))
    rows = [_shape("wide", 0.035, 0.08), _shape("sparse", 0.105, 0.08, timed_out=True)]
    monkeypatch.setattr(bench, "shapes_part", lambda work: rows)
    bench.main(["--out", str(out), "--only", "shapes"])
    text = out.read_text()
    assert ("| wide | 1,000 x 500, 20% | 99,879 | 0.0350 ± 0.0010 | 0.0800 ± 0.0020 | "
            "0.0700 ± 0.0030 | 0.1000 ± 0.0040 | 0.50 |") in text
    assert "| sparse | 1,000 x 500, 20% | 99,879 | stopped after" in text
    assert "Other shapes, the same ratio: 0.50 (wide, 1,000 x 500 at 20%)." in text
    assert "Made by `python tools/scale_benchmark.py --only shapes`." in text
    assert "| cppgraph | 0.0400 ± 0.0010 |" in text
    saved = json.loads(out.with_suffix(".json").read_text())
    assert saved["shapes"]["results"] == rows and saved["accuracy"] == old["accuracy"]


def test_only_one_part_keeps_the_others(bench, tmp_path, monkeypatch):
    out = tmp_path / "SCALE.md"
    old = {"scale": {"command": "python tools/scale_benchmark.py", "results": SCALE},
           "accuracy": {"command": "python tools/scale_benchmark.py", "results": ACCURACY},
           "threads": {"command": "python tools/scale_benchmark.py",
                       "results": [dict(r, wall_s=99.0) for r in THREADS]}}
    out.with_suffix(".json").write_text(json.dumps(old))
    for part in ("scale_part", "accuracy_part"):
        monkeypatch.setattr(bench, part, lambda work: pytest.fail("a kept part was run"))
    monkeypatch.setattr(bench, "threads_part", lambda work: THREADS)
    bench.main(["--out", str(out), "--only", "threads"])
    text = out.read_text()
    # The kept parts' figures, and the new run's threads in place of the old ones.
    assert "| 10k | 0.0425 | svd 0.0857 | 8.5 | 12.5 | 410 |" in text
    assert "| cppgraph | 0.0400 ± 0.0010 |" in text
    assert f"| 4 | {DEFAULT} | 27.0 | 27.0, 26.0, 28.0 | 2.70 |" in text and "99.0" not in text
    assert "Made by `python tools/scale_benchmark.py --only threads`." in text
    saved = json.loads(out.with_suffix(".json").read_text())
    assert saved["threads"] == {"command": "python tools/scale_benchmark.py --only threads",
                                "results": THREADS}
    assert saved["scale"] == old["scale"] and saved["accuracy"] == old["accuracy"]


def test_a_first_partial_run_reports_only_its_part(bench, tmp_path, monkeypatch):
    out = tmp_path / "SCALE.md"
    monkeypatch.setattr(bench, "accuracy_part", lambda work: ACCURACY)
    bench.main(["--out", str(out), "--only", "accuracy"])
    text = out.read_text()
    assert "cppgraph / best baseline: 0.500." in text
    assert "## Fit and predict" not in text and "## The quick-start fit" not in text
    assert set(json.loads(out.with_suffix(".json").read_text())) == {"accuracy"}


def test_sizes_rerun_some_sizes_and_keep_the_others(bench, tmp_path, monkeypatch):
    out = tmp_path / "SCALE.md"
    big = [dict(r, size="100k", seconds=(r.get("seconds") or 0) * 10) for r in SCALE]
    old = {"scale": {"command": "python tools/scale_benchmark.py", "results": SCALE + big}}
    out.with_suffix(".json").write_text(json.dumps(old))
    new = [dict(r, mae_norm=0.0411) if r["method"] == "cppgraph" else r for r in SCALE]
    asked = []
    monkeypatch.setattr(bench, "scale_part", lambda work, sizes: asked.append(sizes) or new)
    bench.main(["--out", str(out), "--only", "scale", "--sizes", "10k"])
    assert asked == [("10k",)]
    saved = json.loads(out.with_suffix(".json").read_text())["scale"]
    assert saved["results"] == new + big  # the new 10k rows, the kept 100k ones, in size order
    command = "python tools/scale_benchmark.py --only scale --sizes 10k"
    assert saved["sizes"] == {"10k": command, "100k": "python tools/scale_benchmark.py"}
    text = out.read_text()
    assert "| 10k | 0.0411 | svd 0.0857 |" in text and "| 100k | 0.0425 | svd 0.0857 |" in text
    assert (f"Made by `{command}` (10k) and `python tools/scale_benchmark.py` (100k)."
            in text)
    # a later run of another part keeps both sizes and their commands
    monkeypatch.setattr(bench, "threads_part", lambda work: THREADS)
    bench.main(["--out", str(out), "--only", "threads"])
    assert json.loads(out.with_suffix(".json").read_text())["scale"] == saved


def test_sizes_need_the_scale_part_and_earlier_figures(bench, tmp_path, monkeypatch):
    out = tmp_path / "SCALE.md"
    monkeypatch.setattr(bench, "scale_part", lambda work, sizes: pytest.fail("ran"))
    with pytest.raises(SystemExit, match="leaves out"):
        bench.main(["--out", str(out), "--only", "threads", "--sizes", "10k"])
    with pytest.raises(SystemExit, match="no scale figures for the other sizes"):
        bench.main(["--out", str(out), "--only", "scale", "--sizes", "10k"])


def test_report_only_runs_nothing_and_rewrites_the_report(bench, tmp_path, monkeypatch):
    out = tmp_path / "SCALE.md"
    saved = {"accuracy": {"command": "python tools/scale_benchmark.py", "results": ACCURACY},
             "threads": {"command": "python tools/scale_benchmark.py --only threads",
                         "results": THREADS}}
    out.with_suffix(".json").write_text(json.dumps(saved))
    for part in ("scale_part", "accuracy_part", "threads_part"):
        monkeypatch.setattr(bench, part, lambda work: pytest.fail("a part was run"))
    bench.main(["--out", str(out), "--report-only"])
    text = out.read_text()
    assert "| cppgraph | 0.0400 ± 0.0010 |" in text
    assert f"| 0 | {DEFAULT} | 10.0 | 10.0, 9.0, 11.0 | 1.00 |" in text
    assert json.loads(out.with_suffix(".json").read_text()) == saved
    with pytest.raises(SystemExit, match="runs no part"):
        bench.main(["--out", str(out), "--report-only", "--only", "threads"])


COMMANDS = [{"size": size, "command": name, "wall_s": wall, "rss_mb": 500.0 * (1 + i),
             "timed_out": False}
            for i, size in enumerate(("100k", "1M"))
            for name, wall in (("predict --all", 9.4 * (1 + 4 * i)), ("graph", 7.4 + 16.6 * i))]


def test_commands_part_reports_a_column_pair_per_size(bench, tmp_path, monkeypatch):
    out = tmp_path / "SCALE.md"
    old = {"accuracy": {"command": "python tools/scale_benchmark.py", "results": ACCURACY}}
    out.with_suffix(".json").write_text(json.dumps(old))
    monkeypatch.setattr(bench, "commands_part", lambda work: COMMANDS)
    bench.main(["--out", str(out), "--only", "commands"])
    text = out.read_text()
    assert "| command | 100k: wall (s) | 100k: peak RSS (MB) | 1M: wall (s) | 1M: peak RSS (MB) |" \
        in text
    assert "| `predict --all` | 9.4 | 500 | 47.0 | 1000 |" in text
    assert "| `graph` | 7.4 | 500 | 24.0 | 1000 |" in text
    assert "Made by `python tools/scale_benchmark.py --only commands`." in text
    assert "| cppgraph | 0.0400 ± 0.0010 |" in text  # the kept part
    assert ("Each command on a fitted model, start-up and loading included: 7 to 9 s at 100k "
            "(slowest: `predict --all`); 24 to 47 s at 1M (slowest: `predict --all`).") in text


def test_timed_commands_parse_as_the_cli_takes_them(bench, tmp_path):
    """Every command the commands part runs is one the CLI accepts (options, choices)."""
    model = tmp_path / "model"
    model.mkdir()
    runs = bench._model_commands(model, tmp_path, "some-model")
    assert {args[0] for _, args in runs} >= {"predict", "neighbours", "suggest", "clusters",
                                             "embeddings", "graph", "explain"}
    for _, args in runs:
        command = cli.get_command(None, args[0])
        command.make_context(args[0], list(args[1:]))  # raises on an unknown option or value


def test_commands_part_fits_a_missing_model_once_and_names_the_first_model(bench, tmp_path,
                                                                           monkeypatch):
    for label in bench.COMMAND_SIZES:
        folder = tmp_path / f"syn-{label}"
        folder.mkdir()
        (folder / "scores.csv").write_text("model,task,score\n")
        (folder / "model_factors.csv").write_text('model,family\n"m, first",f\nm2,f\n')
    (tmp_path / "model-1M").mkdir()
    (tmp_path / "model-1M" / "model.json").write_text("{}")  # 1M has a model already
    ran = []
    monkeypatch.setattr(bench, "_run", lambda cmd, **kw: ran.append(cmd[1:]) or (1.0, 2.0, "",
                                                                                  False))
    rows = bench.commands_part(tmp_path)
    fits = [cmd for cmd in ran if cmd[0] == "fit"]
    assert fits == [["fit", str(tmp_path / "syn-100k"), "--out", str(tmp_path / "model-100k"),
                     "--force"]]
    timed = [cmd for cmd in ran if cmd[0] != "fit"]
    assert len(rows) == len(timed) == 2 * len(bench._model_commands(tmp_path, tmp_path, "x"))
    assert ["neighbours", str(tmp_path / "model-100k"), "m, first"] in timed


def test_a_stopped_run_reads_as_stopped_in_every_table(bench):
    assert bench._wall({"wall_s": 2400.4, "timed_out": True}) == "stopped after 2400"
    assert bench._wall({"wall_s": 12.34, "timed_out": False}) == "12.3"
    rows = [{"size": "1M", "command": "explain", "wall_s": 2400.4, "rss_mb": 900.0,
             "timed_out": True}]
    assert "| `explain` | stopped after 2400 | 900 |" in "\n".join(bench.commands_section(rows, []))
