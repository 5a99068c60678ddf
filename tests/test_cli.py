"""The ``cppgraph`` command line, driven through click's CliRunner (and once as a process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import cppgraph
from cppgraph.cli import cli
from cppgraph.data import read_canonical
from cppgraph.errors import DataError

# 3 models x 2 tasks, 5 of 6 cells observed.
SCORES = "model,task,score\nA,t1,1\nA,t2,2\nB,t1,3\nB,t2,4\nC,t1,5\n"

#: The marker of a data folder cppgraph wrote.
MARKER = '{"written_by": "cppgraph", "kind": "data"}'


def make_folder(root: Path, files: dict[str, str], name: str = "data") -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    for fname, text in files.items():
        (folder / fname).write_text(text, encoding="utf-8")
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def stderr_of(result) -> str:
    """stderr alone where click captures it separately, else the mixed output."""
    try:
        return result.stderr
    except ValueError:  # older click without separate stderr capture
        return result.output


def stdout_of(result) -> str:
    try:
        return result.stdout
    except ValueError:
        return result.output


def assert_one_line_error(result, *fragments: str) -> str:
    assert result.exit_code == 1, result.output
    err = stderr_of(result)
    assert "Traceback" not in result.output
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error:"), err
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


@pytest.fixture
def tiny(tmp_path) -> Path:
    return make_folder(tmp_path, {"scores.csv": SCORES}, "tiny")


# -------------------------------------------------------------- top level
def test_help_lists_data_group():
    result = invoke("--help")
    assert result.exit_code == 0
    assert "data" in result.output
    assert "--version" in result.output and "--debug" in result.output


LIGHT = """
import sys
from cppgraph.cli import cli
try:
    cli(sys.argv[1:], prog_name="cppgraph")
except SystemExit as end:
    code = end.code
print("TORCH" if "torch" in sys.modules else "NO-TORCH", code, file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["--help"], ["data", "check", "{tiny}"],
                                  ["data", "import", "{tiny}", "--format", "canonical",
                                   "--out", "{out}"], ["data", "pull", "--list"]],
                         ids=["help", "check", "import", "pull"])
def test_help_and_data_commands_do_not_load_torch(tiny, tmp_path, args):
    args = [a.format(tiny=tiny, out=tmp_path / "copy") for a in args]
    proc = subprocess.run([sys.executable, "-c", LIGHT, *args], capture_output=True, text=True)
    assert proc.stderr.strip().splitlines()[-1] == "NO-TORCH 0", proc.stderr


def test_every_listed_command_loads_with_its_name():
    from cppgraph.cli import COMMANDS
    import click
    ctx = click.Context(cli)
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert isinstance(command, click.Command) and command.name.rstrip("_") == name
    assert cli.get_command(ctx, "nonsense") is None
    assert sorted(COMMANDS) == cli.list_commands(ctx)


def test_short_help_option():
    assert invoke("-h").exit_code == 0


def test_data_help_lists_commands():
    result = invoke("data", "--help")
    assert result.exit_code == 0
    assert "import" in result.output and "check" in result.output


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0
    assert cppgraph.__version__ in result.output
    assert result.output.strip() == f"cppgraph, version {cppgraph.__version__}"


# ------------------------------------------------------------------- check
def test_check_text_summary(tiny):
    result = invoke("data", "check", tiny)
    assert result.exit_code == 0, result.output
    out = stdout_of(result)
    assert "models    3" in out
    assert "tasks     2" in out
    assert "observed  5 of 6 cells" in out
    assert "density 83.3%" in out
    assert "per-task coverage" in out


def test_check_json_summary(tiny):
    result = invoke("data", "check", tiny, "--json")
    assert result.exit_code == 0, result.output
    out = stdout_of(result).strip()
    assert len(out.splitlines()) == 1
    summary = json.loads(out)
    assert isinstance(summary, dict)
    assert summary["models"] == 3
    assert summary["tasks"] == 2
    assert summary["observed"] == 5
    assert summary["density"] == pytest.approx(5 / 6)
    assert [t["task"] for t in summary["task_coverage"]] == ["t1", "t2"]


def test_import_canonical_then_check_gives_same_summary(tmp_path):
    src = make_folder(tmp_path, {
        "scores.csv": SCORES,
        "tasks.csv": "task,higher_is_better,min_score,max_score,unit,metric_type\n"
                     "t1,true,0,10,points,score\nt2,false,,,,loss\n",
        "model_factors.csv": "model,size,family\nA,1.5,x\nB,,y\nC,3,x\n",
        "dataset.json": json.dumps({"name": "tiny"}),
    }, "src")
    out = tmp_path / "out"
    result = invoke("data", "import", src, "--format", "canonical", "--out", out)
    assert result.exit_code == 0, result.output
    assert "wrote" in stderr_of(result) and stdout_of(result) == ""
    before = json.loads(stdout_of(invoke("data", "check", src, "--json")))
    after = json.loads(stdout_of(invoke("data", "check", out, "--json")))
    assert after == before
    assert (after["models"], after["tasks"], after["observed"]) == (3, 2, 5)
    assert after["name"] == "tiny"


def test_check_cpp_llm_format_on_tiny_folder(tmp_path):
    folder = make_folder(tmp_path, {"crowdsource_performance.csv": ",t1,t2\nA,1,2\nB,3,4\nC,5,\n"})
    result = invoke("data", "check", "--format", "cpp-llm", folder, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(stdout_of(result))
    assert (summary["models"], summary["tasks"], summary["observed"]) == (3, 2, 5)


# -------------------------------------------------------------- bad input
@pytest.mark.parametrize("files, fragments", [
    ({"scores.csv": SCORES.replace("A,t2,2", "A,t2,abc")}, ["scores.csv", "line 3", "'abc'"]),
    ({"scores.csv": SCORES + "A,t1,9\n"}, ["scores.csv", "conflicting"]),
    ({"scores.csv": SCORES, "tasks.csv": "task,metric_type\nt1,percent\n"},
     ["tasks.csv", "line 2", "'percent'"]),
    ({"tasks.csv": "task\nt1\n"}, ["no scores.csv"]),
], ids=["non-numeric", "conflict", "metric-type", "no-scores"])
def test_check_bad_input_one_line_error(tmp_path, files, fragments):
    folder = make_folder(tmp_path, files, "bad")
    result = invoke("data", "check", folder)
    assert_one_line_error(result, str(folder), *fragments)
    assert stdout_of(result) == ""


def test_check_missing_path(tmp_path):
    result = invoke("data", "check", tmp_path / "nowhere")
    assert_one_line_error(result, "nowhere", "not found")


def test_check_binary_scores(tmp_path):
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "scores.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    result = invoke("data", "check", folder)
    assert_one_line_error(result, "scores.csv", "cannot read as CSV")


def test_check_header_only_scores(tmp_path):
    folder = make_folder(tmp_path, {"scores.csv": "model,task,score\n"}, "empty")
    result = invoke("data", "check", folder)
    assert_one_line_error(result, "scores.csv")


def test_debug_propagates_the_exception(tmp_path):
    folder = make_folder(tmp_path, {"scores.csv": SCORES.replace("A,t2,2", "A,t2,abc")}, "bad")
    result = invoke("--debug", "data", "check", folder)
    assert result.exit_code != 0
    assert isinstance(result.exception, DataError)
    assert result.exception.line == 3
    assert "error:" not in stderr_of(result)


def test_import_bad_source_leaves_no_output(tmp_path):
    src = make_folder(tmp_path, {"scores.csv": SCORES.replace("A,t2,2", "A,t2,abc")}, "bad")
    dest = tmp_path / "dest"
    dest.mkdir()
    result = invoke("data", "import", src, "--format", "canonical", "--out", dest / "out")
    assert_one_line_error(result, "scores.csv", "'abc'")
    assert list(dest.iterdir()) == []


def test_import_refuses_non_empty_out_without_force(tmp_path, tiny):
    out = make_folder(tmp_path / "dest", {"scores.csv": "old", "notes.txt": "keep"}, "out")
    before = snapshot(out)
    result = invoke("data", "import", tiny, "--format", "canonical", "--out", out)
    assert_one_line_error(result, str(out), "not empty", "--force")
    assert snapshot(out) == before
    assert [p.name for p in out.parent.iterdir()] == ["out"]


def test_import_force_replaces_out(tmp_path, tiny):
    out = make_folder(tmp_path / "dest", {"scores.csv": "old", "tasks.csv": "stale", ".cppgraph": MARKER}, "out")
    result = invoke("data", "import", tiny, "--format", "canonical", "--out", out, "--force")
    assert result.exit_code == 0, result.output
    assert not (out / "tasks.csv").read_text(encoding="utf-8").startswith("stale")
    assert (out / "scores.csv").read_text(encoding="utf-8").startswith("model,task,score")
    assert [p.name for p in out.parent.iterdir()] == ["out"]
    summary = json.loads(stdout_of(invoke("data", "check", out, "--json")))
    assert summary["observed"] == 5


# ------------------------------------------------------------ usage errors
def _assert_usage_error(result, *fragments):
    assert result.exit_code == 2, result.output
    assert "Usage:" in result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output


def test_scores_option_needs_open_llm_leaderboard(tmp_path, tiny):
    out = tmp_path / "out"
    result = invoke("data", "import", tiny, "--format", "canonical", "--out", out,
                    "--scores", "raw")
    _assert_usage_error(result, "--scores", "open-llm-leaderboard")
    assert not out.exists()


def test_metric_type_option_needs_helm(tmp_path, tiny):
    out = tmp_path / "out"
    result = invoke("data", "import", tiny, "--format", "cpp-llm", "--out", out,
                    "--metric-type", "accuracy")
    _assert_usage_error(result, "--metric-type", "helm")
    assert not out.exists()


def test_unknown_format(tmp_path, tiny):
    result = invoke("data", "import", tiny, "--format", "xlsx", "--out", tmp_path / "out")
    _assert_usage_error(result, "--format", "'xlsx'")
    result = invoke("data", "check", tiny, "--format", "xlsx")
    _assert_usage_error(result, "--format")


def test_unknown_metric_type_value(tmp_path):
    result = invoke("data", "import", tmp_path, "--format", "helm", "--out", tmp_path / "out",
                    "--metric-type", "bogus")
    _assert_usage_error(result, "'bogus'")


def test_missing_out_option(tiny):
    result = invoke("data", "import", tiny, "--format", "canonical")
    _assert_usage_error(result, "--out")


# ---------------------------------------------------------------- warnings
def test_warning_for_unknown_model_factor_row(tmp_path):
    folder = make_folder(tmp_path, {
        "scores.csv": SCORES.replace("A,", "GPT-4,"),
        "model_factors.csv": "model,size\nGPT-4,1\nB,2\nC,3\ngpt4,4\n",
    })
    result = invoke("data", "check", folder, "--json")
    assert result.exit_code == 0, result.output
    err = stderr_of(result)
    warning_lines = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warning_lines) == 1, err
    assert "model_factors.csv" in warning_lines[0]
    assert "did you mean 'GPT-4'" in warning_lines[0]
    assert "Traceback" not in err
    # The JSON on stdout is untouched by the warning (where click separates the streams).
    try:
        summary = json.loads(result.stdout)
    except ValueError:
        return
    assert summary["models"] == 3


def test_verbose_info_messages_on_every_invocation(tmp_path):
    folder = make_folder(tmp_path, {"crowdsource_performance.csv": ",t1,t2\nA,1,2\nB-7B,3,4\n",
                                    "model_feature.csv": "Model Name,family\nA,f\nB,g\n"})
    for _ in range(2):
        result = invoke("-v", "data", "check", "--format", "cpp-llm", folder, "--json")
        assert result.exit_code == 0, result.output
        assert "matched by position: 'B' -> 'B-7B'" in stderr_of(result)


# ----------------------------------------------------- installed console script
def test_console_script_bad_folder(tmp_path):
    script = Path(sys.executable).parent / "cppgraph"
    if not script.is_file():
        pytest.skip(f"console script {script} not installed")
    folder = make_folder(tmp_path, {"scores.csv": SCORES.replace("A,t2,2", "A,t2,abc")}, "bad")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    proc = subprocess.run([str(script), "data", "check", str(folder)], capture_output=True,
                          text=True, timeout=60, env=env)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert "scores.csv" in lines[0] and "line 3" in lines[0] and "'abc'" in lines[0]


def test_closed_output_pipe_ends_quietly(tmp_path, tiny):
    """``cppgraph ... | head`` where head has already gone: no error message, no traceback."""
    script = Path(sys.executable).parent / "cppgraph"
    if not script.exists():
        pytest.skip(f"console script {script} not installed")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    proc = subprocess.Popen([str(script), "data", "check", str(tiny)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    proc.stdout.close()  # the reader is gone before the command writes anything
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert err.decode() == ""


# ------------------------------------------------------------ shared data
def test_check_shared_cpp_llm(shared_data):
    result = invoke("data", "check", "--format", "cpp-llm", shared_data / "cpp_llm", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(stdout_of(result))
    assert (summary["models"], summary["tasks"], summary["observed"]) == (72, 29, 878)


def test_a_column_named_twice_is_an_error(tmp_path):
    wide = tmp_path / "w.csv"
    wide.write_text("Model,MMLU,MMLU\na,1,2\nb,2,3\n")
    result = invoke("data", "import", wide, "--input-format", "wide", "--model-col", "Model",
                    "--out", tmp_path / "out")
    assert result.exit_code == 1 and not (tmp_path / "out").exists()
    assert "w.csv: the header names column 'MMLU' twice (fields 2 and 3)" in result.output


def test_metric_type_follows_the_direction_and_check_names_undirected_tasks(tmp_path):
    folder = make_folder(tmp_path, {
        "scores.csv": SCORES,
        "tasks.csv": "task,higher_is_better,metric_type\nt1,false,\nt2,,\n"}, "d")
    data = read_canonical(folder)
    assert data.task_info["metric_type"].tolist() == ["loss", "statistic"]
    result = invoke("data", "check", folder)
    assert result.exit_code == 0
    assert "without a direction (1; fit cannot use them" in result.output and ": t2" in result.output
    result = invoke("fit", folder, "--out", tmp_path / "m")
    assert result.exit_code == 1 and "set their higher_is_better" in result.output


def test_json_output_writes_null_for_missing_numbers(capsys):
    from cppgraph.cli.options import emit
    emit(pd.DataFrame({"a": [1.0, float("nan")]}), "json", meta={"ari": float("nan"),
                                                                  "k": [float("inf"), 2]})
    assert json.loads(capsys.readouterr().out) == {"ari": None, "k": [None, 2],
                                                   "rows": [{"a": 1.0}, {"a": None}]}
