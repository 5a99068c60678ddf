"""``cppgraph fit`` and ``cppgraph predict`` from the command line."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
from click.testing import CliRunner

from cppgraph.cli import cli


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, demo_dir):
    folder = tmp_path_factory.mktemp("fit")
    config = folder / "fast.toml"
    config.write_text("epochs = 60\npatience = 60\nintervals = false\n")
    result = run("fit", demo_dir, "--out", folder / "model", "--config", config, "--seed", 1,
                 "--every", 20)
    assert result.exit_code == 0, result.output
    return folder / "model"


def test_fit_reports_progress_and_summary(model_dir):
    assert (model_dir / "weights.pt").is_file() and (model_dir / "model.json").is_file()
    meta = json.loads((model_dir / "model.json").read_text())
    assert meta["config"]["random_state"] == 1 and meta["config"]["epochs"] == 60
    assert meta["synthetic"] is True
    log = pd.read_csv(model_dir / "training_log.csv")
    assert list(log.columns) == ["epoch", "train_loss", "val_loss", "seconds"]


def test_fit_output_lines(tmp_path, demo_dir):
    config = tmp_path / "c.toml"
    config.write_text("epochs = 20\npatience = 20\nencoder = 'sage'\n")
    result = run("fit", demo_dir, "--out", tmp_path / "m", "--config", config, "--every", 10)
    assert result.exit_code == 0, result.output
    assert "epoch   10" in result.stderr and "val MSE" in result.stderr
    # the interval calibration's refit reports its own epochs
    assert "calibrating the prediction intervals" in result.stderr
    assert "calibration epoch   10" in result.stderr
    assert "SYNTHETIC" in result.stderr
    assert "best epoch" in result.stdout and "validation MAE" in result.stdout
    assert "benchmark-regression weight" in result.stdout
    # The demo's tasks are in % and in bits/byte: no raw MAE that averages the two.
    assert "raw" not in result.stdout and "normalized" in result.stdout


def test_predict_one_cell_one_model_all(model_dir, demo_dir):
    from cppgraph.data import read_canonical
    data = read_canonical(demo_dir)
    model, task = data.scores.iloc[0]["model"], data.scores.iloc[0]["task"]
    one = run("predict", model_dir, "--model", model, "--task", task, "--format", "json")
    assert one.exit_code == 0, one.output
    rows = json.loads(one.stdout)
    assert len(rows) == 1 and rows[0]["is_observed"] is True
    assert rows[0]["observed"] == data.scores.iloc[0]["score"]
    assert set(rows[0]) == {"model", "task", "predicted", "predicted_normalized", "observed",
                            "observed_normalized", "is_observed"}
    by_model = run("predict", model_dir, "--model", model, "--format", "csv")
    assert len(pd.read_csv(io.StringIO(by_model.stdout))) == len(data.tasks)
    table = run("predict", model_dir, "--model", model)
    assert "predicted_normalized" in table.stdout.splitlines()[0]
    everything = run("predict", model_dir, "--all", "--format", "csv")
    frame = pd.read_csv(io.StringIO(everything.stdout))
    assert len(frame) == len(data.models) * len(data.tasks)


def test_predict_new_models(model_dir, tmp_path):
    factors = tmp_path / "new.csv"
    factors.write_text("model,family,params_b,tokens_b,finetuned\nnew-a,aurora,13,1000,no\n"
                       "new-b,helix,1.5,,yes\n")
    scores = tmp_path / "known.csv"
    scores.write_text("model,task,score\nnew-a,syn-trivia-mc,55\n")
    result = run("predict", model_dir, "--new-models", factors, "--known-scores", scores,
                 "--format", "csv")
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(io.StringIO(result.stdout))
    assert len(frame) == 2 * 20 and frame["predicted"].notna().all()
    assert frame["is_observed"].sum() == 1


def test_predict_new_tasks(model_dir, tmp_path):
    factors = tmp_path / "tasks.csv"
    factors.write_text("task,ability,task_family,output_format,few_shot\n"
                       "new-quiz,knowledge,trivia,4 choice,5\n")
    info = tmp_path / "info.csv"
    info.write_text("task,higher_is_better,min_score,max_score,unit\nnew-quiz,true,0,100,%\n")
    scores = tmp_path / "known.csv"
    scores.write_text("model,task,score\nsyn-aurora-762m-ft,new-quiz,41\n"
                      "syn-iris-6.24b,new-quiz,77.5\n")
    result = run("predict", model_dir, "--new-tasks", factors, "--task-info", info,
                 "--known-scores", scores, "--format", "csv")
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(io.StringIO(result.stdout))
    assert len(frame) == 60 and frame["predicted"].between(0, 100).all()
    assert frame["is_observed"].sum() == 2
    result = run("predict", model_dir, "--task-info", info, "--all")
    assert result.exit_code == 2 and "--task-info needs --new-tasks" in result.output


def test_predict_out_file_is_not_overwritten(model_dir, tmp_path):
    out = tmp_path / "p.csv"
    out.write_text("mine")
    result = run("predict", model_dir, "--all", "--out", out)
    assert result.exit_code == 1 and "exists" in result.stderr
    assert out.read_text() == "mine"
    assert run("predict", model_dir, "--all", "--out", out, "--force").exit_code == 0
    assert out.read_text().lstrip().startswith("model")


@pytest.mark.parametrize("args, code, message", [
    (["--model", "SYN-AURORA-762M-FT"], 1, "did you mean 'syn-aurora-762m-ft'"),
    (["--model", "syn-aurora-762m-ft", "--task", "trivia"], 1, "unknown task 'trivia'"),
    (["--all", "--model", "x"], 2, "choose one of"),
    ([], 2, "choose one of"),
])
def test_predict_bad_input(model_dir, args, code, message):
    result = run("predict", model_dir, *args)
    assert result.exit_code == code
    assert message in (result.stderr or result.output)
    assert "Traceback" not in result.output


def test_predict_bad_files(model_dir, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("model,family,params_b\nnew-y,aurora,big\n")
    result = run("predict", model_dir, "--new-models", bad)
    assert result.exit_code == 1
    assert "bad.csv, line 2, column 'params_b': 'big' is not a number" in result.stderr
    result = run("predict", model_dir, "--known-scores", bad, "--all")
    assert result.exit_code == 2
    result = run("predict", tmp_path, "--all")
    assert result.exit_code == 1 and "not a cppgraph model folder" in result.stderr


@pytest.mark.parametrize("factors, known, message", [
    ("new-a,aurora,13\n,helix,2\n", None, "new.csv, line 3, column 'model': empty model name"),
    ("new-a,aurora,13\n", "new-a,syn-trivia-mc,55\nnew-b,syn-trivia-mc,50\n",
     "known.csv, line 3, column 'model': unknown new model"),
    ("new-a,aurora,13\n", "new-a,,55\n", "known.csv, line 2, column 'task': empty task name"),
], ids=["empty-new-model", "unknown-known-model", "empty-known-task"])
def test_predict_names_the_line_of_an_empty_or_unknown_name(model_dir, tmp_path, factors, known,
                                                            message):
    (tmp_path / "new.csv").write_text("model,family,params_b\n" + factors)
    args = ["--new-models", tmp_path / "new.csv"]
    if known is not None:
        (tmp_path / "known.csv").write_text("model,task,score\n" + known)
        args += ["--known-scores", tmp_path / "known.csv"]
    result = run("predict", model_dir, *args)
    assert result.exit_code == 1 and message in result.stderr


def test_new_task_metadata_and_raw_scale_warnings(model_dir, tmp_path):
    factors = tmp_path / "nt.csv"
    factors.write_text("task,ability,task_family,output_format,few_shot\n"
                       "new-t,knowledge,trivia,4 choice,5\n")
    info = tmp_path / "ti.csv"
    info.write_text("task,higher_is_better,min_score,max_score,unit\nother-t,true,0,100,%\n")
    result = run("predict", model_dir, "--new-tasks", factors, "--task-info", info)
    assert result.exit_code == 1
    assert "ti.csv, line 2, column 'task': task 'other-t' is not one of the new tasks" in \
        result.stderr
    known = tmp_path / "k.csv"
    known.write_text("model,task,score\nsyn-aurora-762m-ft,new-t,30\nsyn-aurora-2.49b-ft,new-t,35\n"
                     "syn-aurora-6.06b-ft,new-t,55\n")
    result = run("predict", model_dir, "--new-tasks", factors, "--known-scores", known,
                 "--format", "csv")
    assert result.exit_code == 0 and "no declared range: its raw predictions" in result.stderr
    frame = pd.read_csv(io.StringIO(result.stdout))
    assert frame["predicted"].max() > 55 + 25  # what the warning is about
    info.write_text("task,higher_is_better,min_score,max_score,unit\nnew-t,true,0,100,%\n")
    result = run("predict", model_dir, "--new-tasks", factors, "--known-scores", known,
                 "--task-info", info, "--format", "csv")
    assert result.exit_code == 0 and "no declared range" not in result.stderr
    assert pd.read_csv(io.StringIO(result.stdout))["predicted"].between(0, 100).all()
    # two known scores, no unit: each known cell without its own score has one left
    known.write_text("model,task,score\nsyn-aurora-762m-ft,new-t,30\nsyn-aurora-2.49b-ft,new-t,35\n")
    result = run("predict", model_dir, "--new-tasks", factors, "--known-scores", known,
                 "--format", "csv")
    assert result.exit_code == 0 and "2 known cell(s) get no raw prediction" in result.stderr
    frame = pd.read_csv(io.StringIO(result.stdout))
    assert frame.loc[frame["is_observed"], "predicted"].isna().all()


def test_fit_bad_input(tmp_path, demo_dir):
    config = tmp_path / "c.toml"
    config.write_text("epoch = 5\n")
    result = run("fit", demo_dir, "--out", tmp_path / "m", "--config", config)
    assert result.exit_code == 1 and "unknown key(s) ['epoch']" in result.stderr
    assert not (tmp_path / "m").exists()
    result = run("fit", tmp_path / "nowhere", "--out", tmp_path / "m")
    assert result.exit_code == 1 and "folder not found" in result.stderr
