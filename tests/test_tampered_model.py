"""A model folder is checked as a whole: tampered data, metadata or weights are errors."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from cppgraph.errors import CppGraphError
from cppgraph.estimator import CPPGraph
from cppgraph.stages.benchmark import BenchmarkMix


@pytest.fixture()
def folder(fast_model_dir, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(fast_model_dir, copy)
    return copy


def _edit_meta(folder, change):
    path = folder / "model.json"
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


def test_the_untouched_copy_loads(folder):
    assert CPPGraph.load(folder).predict()["predicted"].notna().all()


@pytest.mark.parametrize("name, old, new", [
    ("tasks.csv", ",100.0,", ",1.0,"),
    ("dataset.json", '"demo-synthetic"', '"renamed"'),
])
def test_changed_training_data_files_are_refused(folder, name, old, new):
    path = folder / "data" / name
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(CppGraphError, match="training data was modified after saving"):
        CPPGraph.load(folder)


def test_a_missing_training_data_file_is_named(folder):
    (folder / "data" / "scores.csv").unlink()
    with pytest.raises(CppGraphError, match="scores.csv: the training data is missing"):
        CPPGraph.load(folder)


@pytest.mark.parametrize("change, message", [
    (lambda m: m["normalizer"]["scale"].__setitem__(0, float("nan")), "normalizer scale"),
    (lambda m: m["normalizer"]["scale"].pop(), "normalizer scale has"),
    (lambda m: m.__setitem__("observed_weight", 1e300), "observed_weight"),
    (lambda m: m["observed_task_weights"].__setitem__(0, 1.5), "observed_task_weights"),
    (lambda m: m["observed_task_weights"].pop(), "observed task weights for"),
    (lambda m: m["config"].__setitem__("num_layers", 10**6), "num_layers must be at most 16"),
    (lambda m: m["config"].__setitem__("predict_folds", 10**9), "predict_folds must be at most"),
    (lambda m: m["schedule"].__setitem__("predict_folds", 10**9), "predict_folds must be at most"),
    (lambda m: m["schedule"].__setitem__("predict_folds", 2), "do not match|corrupted"),
    (lambda m: m["schedule"].__setitem__("hidden", 8), "unknown schedule key"),
    (lambda m: m.__setitem__("config", None), "corrupted or incompatible"),
], ids=["nan-scale", "short-scale", "huge-weight", "task-weight", "short-task-weights",
        "layers", "folds", "fit-folds", "fewer-fit-folds", "other-schedule-key", "null-config"])
def test_bad_metadata_values_are_refused(folder, change, message):
    _edit_meta(folder, change)
    with pytest.raises(CppGraphError, match=message):
        CPPGraph.load(folder)


def test_loading_takes_the_saved_benchmark_mix(folder, fast_est, monkeypatch):
    """A folder holds the benchmark mix's task weights, so loading does not fit the mix
    again; one saved without them fits it, with the same predictions either way."""
    expected = fast_est.predict()["predicted"]
    with monkeypatch.context() as m:
        m.setattr(BenchmarkMix, "fit", lambda self, train: pytest.fail("the mix was refitted"))
        loaded = CPPGraph.load(folder)
    assert loaded.observed_stage_.weight_ == fast_est.observed_stage_.weight_
    assert (loaded.predict()["predicted"] == expected).all()
    _edit_meta(folder, lambda meta: meta.pop("observed_task_weights"))
    assert (CPPGraph.load(folder).predict()["predicted"] == expected).all()


def test_nan_weights_are_refused(folder):
    state = torch.load(folder / "weights.pt", weights_only=True)
    key = next(iter(state["network"]))
    state["network"][key] = state["network"][key] * float("nan")
    torch.save(state, folder / "weights.pt")
    with pytest.raises(CppGraphError, match="non-finite weights"):
        CPPGraph.load(folder)


@pytest.mark.parametrize("name, content", [("weights.pt", b""),
                                           ("training_log.csv", b"\x00\xff,\n\"unclosed")])
def test_empty_or_corrupt_files_are_refused(folder, name, content):
    (folder / name).write_bytes(content)
    with pytest.raises(CppGraphError, match=name.split(".")[0]):
        CPPGraph.load(folder)
