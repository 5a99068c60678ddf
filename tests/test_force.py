"""--force replaces only cppgraph's own output folders, atomically, and never an input."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

import cppgraph.estimator  # noqa: F401 - torch's imports, before a test times a fit
from cppgraph.cli import cli
from cppgraph.data import read_canonical, write_canonical
from cppgraph.data.canonical import MARKER_FILE, _clean_stale, _put_in_place, atomic_folder
from cppgraph.errors import DataError

FAST = "epochs = 20\npatience = 20\nintervals = false\n"


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture()
def project(tmp_path, demo_dir):
    """A user's project folder: a copy of the demo data and a notes file."""
    proj = tmp_path / "proj"
    write_canonical(read_canonical(demo_dir), proj / "mydata")
    (proj / "NOTES.txt").write_text("mine")
    (tmp_path / "fast.toml").write_text(FAST)
    return proj


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_fit_force_into_a_folder_holding_the_input_deletes_nothing(project, tmp_path):
    before = _files(project)
    result = run("fit", project / "mydata", "--out", project, "--force",
                 "--config", tmp_path / "fast.toml")
    assert result.exit_code == 1 and "is the input" in result.output
    result = run("fit", project / "mydata", "--out", project / "mydata", "--force",
                 "--config", tmp_path / "fast.toml")
    assert result.exit_code == 1 and "is the input" in result.output
    assert _files(project) == before


def test_fit_force_over_a_folder_cppgraph_did_not_write_deletes_nothing(project, tmp_path):
    other = tmp_path / "mine"
    other.mkdir()
    (other / "thesis.tex").write_text("years of work")
    result = run("fit", project / "mydata", "--out", other, "--force",
                 "--config", tmp_path / "fast.toml")
    assert result.exit_code == 1 and "not a model folder written by cppgraph" in result.output
    assert (other / "thesis.tex").read_text() == "years of work"


def test_import_force_onto_its_own_source_keeps_it(project, demo_dir):
    (project / "mydata" / "README.md").write_text("my notes")
    result = run("data", "import", project / "mydata", "--format", "canonical", "--out",
                 project / "mydata", "--force")
    assert result.exit_code == 1 and "is the input" in result.output
    assert (project / "mydata" / "README.md").read_text() == "my notes"


def test_fit_force_replaces_a_model_folder(project, tmp_path):
    out = tmp_path / "model"
    for _ in range(2):
        result = run("fit", project / "mydata", "--out", out, "--force",
                     "--config", tmp_path / "fast.toml")
        assert result.exit_code == 0, result.output
    assert (out / MARKER_FILE).is_file() and (out / "data" / MARKER_FILE).is_file()
    assert not (out / ".pid").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_legacy_folders_with_only_cppgraph_files_are_replaced(tmp_path, demo_dir):
    data = read_canonical(demo_dir)
    out = tmp_path / "old"
    write_canonical(data, out)
    (out / MARKER_FILE).unlink()  # as written before the marker existed
    write_canonical(data, out, overwrite=True)
    (out / MARKER_FILE).unlink()
    (out / "extra.txt").write_text("x")
    with pytest.raises(DataError, match="not a data folder written by cppgraph"):
        write_canonical(data, out, overwrite=True)


def test_a_folder_that_appears_meanwhile_is_not_replaced(tmp_path):
    tmp, target = tmp_path / ".t.new", tmp_path / "t"
    tmp.mkdir()
    (tmp / "a").write_text("new")
    target.mkdir()
    (target / "b").write_text("someone else's")
    with pytest.raises(DataError, match="not empty"):
        _put_in_place(tmp, target, overwrite=False, kind="data")
    assert (target / "b").read_text() == "someone else's"


def test_stale_temporary_folders_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale, live = tmp_path / ".out.abc", tmp_path / ".out.def"
    for folder, pid in ((stale, dead), (live, str(os.getpid()))):
        folder.mkdir()
        (folder / ".pid").write_text(pid)
    _clean_stale(tmp_path, "out")
    assert not stale.exists() and live.exists()


def test_temporary_folders_carry_their_runs_pid_in_the_name(tmp_path):
    """A killed run's temporary folder is found stale by the pid in its name, also where
    the kill came before its pid file was written, or after an old folder was swapped
    into it (which has none); a live run's, another target's and an unknown one stay."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    live = str(os.getpid())
    names = {f".out.{dead}.abc12345": False, f".out.{dead}.old.abc12345": False,
             f".out.{live}.abc12345": True, f".out.5.{dead}.abc12345": True,
             ".out.abc12345": True}
    for name in names:
        (tmp_path / name).mkdir()
    _clean_stale(tmp_path, "out")
    assert {name: (tmp_path / name).exists() for name in names} == names
    made = []
    with atomic_folder(tmp_path / "out", kind="data") as folder:
        made.append(folder.name)
    assert made[0].startswith(f".out.{live}.")


def _started(proc) -> float:
    """Wait until ``proc`` (a ``cppgraph fit``) has read its data and starts to fit (its
    first line on stderr); the time of that moment."""
    for line in proc.stderr:
        if line.startswith("fitting"):
            break
    return time.perf_counter()


def test_killed_force_fits_leave_the_old_or_the_new_model(project, tmp_path):
    """SIGKILL at random points of ``fit --force`` over a model, between the start of the
    fit and the end of the run (training, saving, replacing the folder): the path always
    holds a whole model, and the next run leaves no temporary folder."""
    out = tmp_path / "model"
    args = ["fit", str(project / "mydata"), "--out", str(out), "--force", "--config",
            str(tmp_path / "fast.toml")]
    cmd = [sys.executable, "-m", "cppgraph.cli", *args]
    start = time.perf_counter()  # torch imported already (above), as the processes below are
    # timed from their first line, which comes after their imports
    assert run(*args).exit_code == 0
    window = time.perf_counter() - start  # reading, the fit, the save and the replacement
    rng = random.Random(0)
    killed = 0
    for _ in range(3):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
        _started(proc)
        time.sleep(rng.uniform(0.0, window))
        proc.send_signal(signal.SIGKILL)
        killed += proc.wait() == -signal.SIGKILL  # not when it ended first
        proc.stderr.close()
        assert (out / "model.json").is_file() and (out / "weights.pt").is_file()
    assert killed >= 1
    assert run(*args).exit_code == 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _model(project, tmp_path, name="model"):
    out = tmp_path / name
    result = run("fit", project / "mydata", "--out", out, "--config", tmp_path / "fast.toml")
    assert result.exit_code == 0, result.output
    return out


def test_force_replaces_only_a_model_folder_with_nothing_else_in_it(project, tmp_path):
    fit = ("fit", project / "mydata", "--force", "--config", tmp_path / "fast.toml", "--out")
    model = _model(project, tmp_path)
    (model / ".pid").write_text("1")  # as a run killed right after its final rename leaves it
    assert run(*fit, model).exit_code == 0
    (model / "NOTES.txt").write_text("mine")
    (model / "sub").mkdir()
    (model / "sub" / "keep.csv").write_text("a\n1\n")
    before = _files(model)
    result = run(*fit, model)
    assert result.exit_code == 1 and "it also holds NOTES.txt, sub" in result.output
    assert _files(model) == before
    # a folder without the marker that holds only a file named like a model's
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "model.json").write_text('{"mine": 1}')
    result = run(*fit, mine)
    assert result.exit_code == 1 and "no .cppgraph marker" in result.output
    assert (mine / "model.json").read_text() == '{"mine": 1}'
    # a data folder cppgraph wrote is not a model folder
    before = _files(project / "mydata")
    write_canonical(read_canonical(project / "mydata"), tmp_path / "copy")
    result = run(*fit, tmp_path / "copy")
    assert result.exit_code == 1 and "marker is that of a data folder" in result.output
    assert _files(project / "mydata") == before


def test_outputs_never_replace_or_enter_an_input(project, tmp_path):
    model = _model(project, tmp_path)
    meta = (model / "model.json").read_bytes()
    result = run("predict", model, "--all", "--format", "csv", "--out", model / "model.json",
                 "--force")
    assert result.exit_code == 1 and "lies inside the input" in result.output
    result = run("predict", model, "--all", "--out", model / "new.csv")
    assert result.exit_code == 1 and not (model / "new.csv").exists()
    assert (model / "model.json").read_bytes() == meta
    new = tmp_path / "new.csv"
    new.write_text("model,family,params_b\nfresh,aurora,7\n")
    result = run("predict", model, "--new-models", new, "--format", "csv", "--out", new,
                 "--force")
    assert result.exit_code == 1 and "is the input" in result.output
    assert new.read_text() == "model,family,params_b\nfresh,aurora,7\n"
    scores = (project / "mydata" / "scores.csv").read_bytes()
    for option in ("--predictions", "--out"):
        result = run("evaluate", project / "mydata", "--methods", "task-mean", "--seeds", "1",
                     option, project / "mydata" / "scores.csv", "--force")
        assert result.exit_code == 1 and "lies inside the input" in result.output
    assert (project / "mydata" / "scores.csv").read_bytes() == scores
