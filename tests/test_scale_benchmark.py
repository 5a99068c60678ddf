"""``tools/scale_benchmark.py``: a part not run keeps the figures of its last run."""

from __future__ import annotations

import json

import pytest
from conftest import load_tool


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
THREADS = [{"load": 0, "threads": 1, "wall_s": 10.0, "timed_out": False},
           {"load": 4, "threads": 1, "wall_s": 27.0, "timed_out": False}]


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
    assert "| 4 | 1 | 27.0 | 2.70 |" in text and "99.0" not in text
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
