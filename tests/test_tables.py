"""A user's own long or wide score table (--input-format long / wide)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from cppgraph.cli import cli
from cppgraph.data import read_data
from cppgraph.errors import DataError

MODELS = [f"m{i}" for i in range(10)]
TASKS = ["alpha", "beta", "gamma", "delta", "loss"]


def _scores():
    rng = np.random.default_rng(0)
    grid = pd.DataFrame(np.round(rng.uniform(5, 95, (10, 5)), 2), index=MODELS, columns=TASKS)
    grid.iloc[3, 1] = np.nan  # one gap
    return grid


def _write(tmp_path):
    grid = _scores()
    size = pd.Series([1.0 + i for i in range(10)], index=MODELS)
    wide = grid.reset_index(names="name").assign(size=size.to_numpy())[["name", "size", *TASKS]]
    wide.to_csv(tmp_path / "wide.csv", index=False)
    long = grid.stack().dropna().rename("value").reset_index()
    long.columns = ["name", "bench", "value"]
    long["size"] = long["name"].map(size)
    long.to_csv(tmp_path / "long.csv", index=False)
    return tmp_path / "long.csv", tmp_path / "wide.csv"


LONG = ["--input-format", "long", "--model-col", "name", "--task-col", "bench",
        "--score-col", "value", "--model-factor", "size"]
WIDE = ["--input-format", "wide", "--model-col", "name", "--factor-cols", "size"]
COMMON = ["--lower-is-better", "loss", "--range", "0:100", "--range", "loss=0:200"]


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_long_and_wide_import_to_identical_folders(tmp_path):
    long, wide = _write(tmp_path)
    a = invoke("data", "import", long, *LONG, *COMMON, "--out", tmp_path / "a")
    b = invoke("data", "import", wide, *WIDE, *COMMON, "--out", tmp_path / "b")
    assert a.exit_code == 0 and b.exit_code == 0, (a.output, b.output)
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir())
    assert "tasks.csv" in names and "model_factors.csv" in names
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    data = read_data(tmp_path / "a")
    assert data.n_observed == 49 and data.tasks == TASKS
    info = data.task_info
    assert not info.at["loss", "higher_is_better"] and info.at["loss", "max_score"] == 200
    assert info.at["alpha", "max_score"] == 100
    assert data.model_factors.at["m2", "size"] == 3.0


@pytest.mark.parametrize("fmt, edit, args, message", [
    ("long", None, ["--score-col", "score"], "no column 'score'"),
    ("long", "conflict", [], "conflicting scores"),
    ("long", "text", [], "'n/a' is not a number"),
    ("long", None, ["--range", "gama=0:1"], "unknown task 'gama'; did you mean 'gamma'"),
    ("wide", None, ["--factor-cols", "sizes"], "no column 'sizes'"),
    ("wide", "text", [], "'n/a' is not a number"),
    ("wide", None, ["--lower-is-better", "Loss"], "unknown task 'Loss'"),
    ("long", None, ["--factor-cols", "size"], "--factor-cols: not for --input-format long"),
    ("long", None, ["--range", "0-1"], "expected TASK=LO:HI"),
])
def test_bad_input_is_a_one_line_error_and_writes_nothing(tmp_path, fmt, edit, args, message):
    long, wide = _write(tmp_path)
    path = long if fmt == "long" else wide
    frame = pd.read_csv(path, dtype=str)
    if edit == "conflict":
        frame = pd.concat([frame, frame.iloc[[0]].assign(value="1.5")])
    if edit == "text":
        frame.iloc[2, 2] = "n/a"
    frame.to_csv(path, index=False)
    base = LONG if fmt == "long" else WIDE
    options = list(base)
    for flag in args[::2]:  # an option given here replaces the default one
        if flag in options and flag != "--range":
            i = options.index(flag)
            del options[i:i + 2]
    res = invoke("data", "import", path, *options, *args, "--out", tmp_path / "out")
    assert res.exit_code == 1, res.output
    lines = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], res.stderr
    assert path.name in lines[0] or any(k in lines[0] for k in ("unknown task", "--", "range"))
    assert not (tmp_path / "out").exists()


def test_reader_options_belong_to_their_format(tmp_path, demo_dir):
    res = invoke("data", "check", demo_dir, "--model-col", "x")
    assert res.exit_code == 1 and "only for --input-format long or wide" in res.stderr


def test_an_excel_file_without_its_reader_says_what_to_install(tmp_path):
    path = tmp_path / "scores.xlsx"
    path.write_bytes(b"not really a workbook")
    with pytest.raises(DataError, match="scores.xlsx"):
        read_data(path, "long")


def test_a_long_row_without_a_score_is_left_out_with_a_warning(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text("model,task,score\na,t1,1\na,t2,\nb,t1,2\nb,t2,3\n")
    with pytest.warns(UserWarning, match=r"1 row\(s\) without a score are left out \(lines 3\)"):
        data = read_data(path, "long")
    assert data.n_observed == 3
