"""Optional input files that are present but unusable are errors naming them; strict types."""

from __future__ import annotations

import os

import pytest

from cppgraph.data import read_canonical
from cppgraph.errors import DataError

SCORES = "model,task,score\nA,t1,1\nA,t2,2\nB,t1,3\nB,t2,4\n"


def _folder(tmp_path, **files):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "scores.csv").write_text(SCORES)
    for name, text in files.items():
        (folder / name.replace("__", ".")).write_text(text)
    return folder


@pytest.mark.parametrize("name", ["tasks.csv", "model_factors.csv", "task_factors.csv",
                                  "dataset.json", "scores.csv"])
@pytest.mark.parametrize("fault", ["dangling", "loop", "folder"])
def test_a_present_but_unusable_file_is_an_error(tmp_path, name, fault):
    folder = _folder(tmp_path)
    path = folder / name
    path.unlink(missing_ok=True)
    if fault == "dangling":
        path.symlink_to(folder / "nowhere.csv")
    elif fault == "loop":
        os.symlink(path, path)
    else:
        path.mkdir()
    with pytest.raises(DataError) as err:
        read_canonical(folder)
    assert name in str(err.value)
    assert {"dangling": "broken symbolic link", "loop": "cannot be read",
            "folder": "is a folder"}[fault] in str(err.value)


@pytest.mark.parametrize("value", ['"false"', '"true"', "1", "null"])
def test_synthetic_must_be_a_json_boolean(tmp_path, value):
    folder = _folder(tmp_path, dataset__json='{"synthetic": %s}' % value)
    with pytest.raises(DataError, match="dataset.json.*synthetic must be true or false"):
        read_canonical(folder)


def test_name_must_be_a_text(tmp_path):
    folder = _folder(tmp_path, dataset__json='{"name": 7}')
    with pytest.raises(DataError, match="name must be a text; got 7"):
        read_canonical(folder)


@pytest.mark.parametrize("kinds", ['"x"', '{"model": [1]}', '{"model": null}',
                                   '{"model": {"params_b": 3}}'])
def test_factor_kinds_must_map_factors_to_kinds(tmp_path, kinds):
    folder = _folder(tmp_path, dataset__json='{"factor_kinds": %s}' % kinds)
    with pytest.raises(DataError, match="dataset.json.*factor_kinds"):
        read_canonical(folder)


@pytest.mark.parametrize("cell", ["nan", "inf", "-inf"])
def test_a_non_finite_numeric_factor_is_an_error_naming_the_cell(tmp_path, cell):
    folder = _folder(tmp_path, model_factors__csv=f"model,params_b\nA,7\nB,{cell}\n")
    with pytest.raises(DataError) as err:
        read_canonical(folder)
    text = str(err.value)
    assert "model_factors.csv" in text and "line 3" in text and "params_b" in text


def test_an_overflowing_numeric_factor_is_an_error_naming_the_cell(tmp_path):
    folder = _folder(tmp_path, model_factors__csv="model,params_b\nA,7\nB,1e308\n")
    with pytest.raises(DataError, match=r"model_factors.csv.*line 3.*params_b.*beyond 1e\+100"):
        read_canonical(folder)


def test_the_leaderboard_v1_file_is_refused_with_a_hint(tmp_path):
    from cppgraph.data import read_data
    path = tmp_path / "huggingface_v1.csv"
    path.write_text("id,model_name,evaluations_arc_value,evaluations_hellaswag_value\n1,m,0.5,0.6\n")
    with pytest.raises(DataError, match="huggingface_v1.csv.*Open LLM Leaderboard v1.*only the v2"):
        read_data(path, "open-llm-leaderboard")


def test_lines_after_a_multi_line_field_and_blank_lines_are_right(tmp_path):
    folder = _folder(tmp_path)
    (folder / "scores.csv").write_text('model,task,score\n"a model\nwith a\nlong name",t1,1\n'
                                       'B,t1,2\n\nB,t2,abc\n')
    with pytest.raises(DataError, match=r"scores.csv.*line 7.*abc"):
        read_canonical(folder)
