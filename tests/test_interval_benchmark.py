"""``tools/interval_benchmark.py``: a part not run keeps its section of the existing file."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import load_tool


@pytest.fixture(scope="module")
def bench():
    return load_tool("interval_benchmark")


OLD = """# Prediction intervals and which benchmark to run next

## Coverage of the nominal 90% intervals

| data set | coverage_90 |
| --- | --- |
| demo | 0.900 |

Commands:

- `cppgraph evaluate demo`

Made by `python tools/interval_benchmark.py --only coverage` on: old machine.

## Which benchmarks to run on a new model

| data set | suggest |
| --- | --- |
| demo | 0.1000 |

Made by `python tools/interval_benchmark.py --only choice` on: old machine.
"""


def test_only_one_part_keeps_the_other(bench, tmp_path, monkeypatch):
    out = tmp_path / "INTERVALS.md"
    out.write_text(OLD, encoding="utf-8")
    figure = tmp_path / "figures" / "choice.png"
    monkeypatch.setattr(bench, "machine", lambda: "new machine")
    monkeypatch.setattr(bench, "choice", lambda *a: (pd.DataFrame({"data set": ["demo"],
                                                                   "suggest": ["0.0500"]}),
                                                     ["`cppgraph evaluate new`"], figure))
    monkeypatch.setattr(bench, "coverage", lambda *a: pytest.fail("coverage was not asked for"))
    bench.main(["--only", "choice", "--out", str(out)])
    text = out.read_text(encoding="utf-8")
    # the coverage section as it was, with the command that made it
    cov = text.split("## Which benchmarks")[0]
    assert cov == OLD.split("## Which benchmarks")[0]
    # the new choice section, with its own command line
    choice = text.split("## Which benchmarks")[1]
    assert "0.0500" in choice and "0.1000" not in choice and "old machine" not in choice
    assert "Made by `python tools/interval_benchmark.py --only choice --out" in choice
    assert choice.rstrip().endswith("on: new machine.") and text.count("## ") == 2
    # running the other part keeps this one word for word
    monkeypatch.setattr(bench, "coverage", lambda *a: (pd.DataFrame({"data set": ["demo"],
                                                                     "coverage_90": ["0.880"]}),
                                                       ["`cppgraph evaluate cov`"]))
    monkeypatch.setattr(bench, "choice", lambda *a: pytest.fail("choice was not asked for"))
    bench.main(["--only", "coverage", "--out", str(out)])
    again = out.read_text(encoding="utf-8")
    assert "0.880" in again and "0.900" not in again
    assert again.split("## Which benchmarks")[1] == choice
