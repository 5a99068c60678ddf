"""One output convention: every command that prints results takes --format json (valid
JSON on stdout), csv and --out; -k/--k and the older option spellings still work."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
from click.testing import CliRunner

from cppgraph.cli import cli
from cppgraph.estimator import CPPGraph


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _commands(model_dir, demo_dir):
    model, task = "syn-aurora-762m-ft", "syn-trivia-mc"
    return {
        "data check": ["data", "check", demo_dir],
        "predict": ["predict", model_dir, "--model", model],
        "evaluate": ["evaluate", demo_dir, "--methods", "task-mean,svd", "--seeds", "1"],
        "neighbours": ["neighbours", model_dir, model, "-k", "3"],
        "clusters": ["clusters", model_dir, "--k", "3"],
        "explain": ["explain", model_dir, "--model", model, "--task", task],
        "info": ["info", model_dir],
    }


COMMANDS = ["data check", "predict", "evaluate", "neighbours", "clusters", "explain", "info"]


@pytest.mark.parametrize("name", COMMANDS)
def test_every_result_command_prints_json_csv_and_writes_out(fast_model_dir, demo_dir, tmp_path,
                                                            name):
    args = _commands(fast_model_dir, demo_dir)[name]
    res = invoke(*args, "--format", "json")
    assert res.exit_code == 0, res.output
    parsed = json.loads(res.stdout)
    assert parsed
    res = invoke(*args, "--format", "csv")
    assert res.exit_code == 0, res.output
    assert len(pd.read_csv(io.StringIO(res.stdout))) >= 1
    out = tmp_path / "result.json"
    res = invoke(*args, "--format", "json", "--out", out)
    assert res.exit_code == 0 and res.stdout == ""
    written = json.loads(out.read_text())
    assert type(written) is type(parsed) and len(written) == len(parsed)
    res = invoke(*args, "--format", "json", "--out", out)
    assert res.exit_code == 1 and "exists" in res.output


def test_older_spellings_still_work(demo_dir, tmp_path):
    assert json.loads(invoke("data", "check", demo_dir, "--json").stdout)["models"] == 60
    assert invoke("data", "check", demo_dir, "--format", "canonical").exit_code == 0
    res = invoke("data", "import", demo_dir, "--format", "canonical", "--out", tmp_path / "a")
    assert res.exit_code == 0 and res.stdout == ""
    res = invoke("data", "import", demo_dir, "--input-format", "canonical", "--out",
                 tmp_path / "b")
    assert res.exit_code == 0
    res = invoke("data", "check", demo_dir, "--format", "xml")
    assert res.exit_code == 2 and "neither an output format" in res.output


def test_one_seed_prints_no_spread(demo_dir):
    res = invoke("evaluate", demo_dir, "--methods", "task-mean", "--seeds", "1")
    assert res.exit_code == 0 and "±" not in res.stdout
    res = invoke("evaluate", demo_dir, "--methods", "task-mean", "--seeds", "2")
    assert "±" in res.stdout


def test_quiet_drops_progress_but_keeps_results(demo_dir, tmp_path):
    config = tmp_path / "short.toml"
    config.write_text("epochs = 12\npatience = 12\nintervals = false\n")
    loud = invoke("fit", demo_dir, "--out", tmp_path / "a", "--config", config, "--every", "5")
    assert loud.exit_code == 0 and "epoch   10" in loud.stderr and "saved" in loud.stdout
    quiet = invoke("-q", "fit", demo_dir, "--out", tmp_path / "b", "--config", config)
    assert quiet.exit_code == 0 and quiet.stderr == "" and "saved" in quiet.stdout
    res = invoke("-q", "evaluate", demo_dir, "--methods", "task-mean", "--seeds", "2",
                 "--format", "csv", "--out", tmp_path / "e.csv", "--plot", tmp_path / "e.png")
    assert res.exit_code == 0 and res.stderr == "" and res.stdout == ""
    assert "task-mean" in (tmp_path / "e.csv").read_text() and (tmp_path / "e.png").exists()
    # Without -q the written files are confirmed on stderr.
    res = invoke("evaluate", demo_dir, "--methods", "task-mean", "--seeds", "1",
                 "--out", tmp_path / "f.txt")
    assert f"wrote {tmp_path / 'f.txt'}" in res.stderr


def test_help_texts_show_plain_percent_signs():
    res = invoke("explain", "--help")
    assert "10% of the cells" in res.output and "%%" not in res.output


def test_info_shows_the_schedule_the_fit_ran_with(fast_model_dir):
    """``"auto"`` keys appear as set in the settings, and with the values used (the demo's
    small-data ones; ``patience`` as the fit set it) on the schedule line."""
    res = invoke("info", fast_model_dir)
    assert res.exit_code == 0, res.output
    assert ("schedule       lr 0.01, lr_patience 8, patience 40, stop_delta 0.0, predict_folds 5"
            in res.stdout)
    assert "  lr = 'auto'" in res.stdout and "  patience = 40" in res.stdout
    # the setting, and above it the path it resolves to (under "auto", the calibration's)
    path = CPPGraph.load(fast_model_dir).calibration_.known_path
    assert "  known_path = 'stages'" in res.stdout
    assert (f"known scores   of new models: {path['model']}; of new tasks: {path['task']}"
            in res.stdout)
