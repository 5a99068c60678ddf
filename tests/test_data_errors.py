"""Every bad-input case raises a DataError (or warns) with a message that says where and what.

The inputs are small hand-written files in ``tmp_path``; no shared data is needed.
Messages are checked for the file name, the line (``line N``; the header is line 1),
the column and the offending value, where they apply.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from cppgraph.data import import_data, read_canonical, read_cpp_llm, read_helm
from cppgraph.data import canonical as canonical_module
from cppgraph.errors import DataError, DataWarning

# 2 models x 2 tasks, fully observed.
SCORES = "model,task,score\nA,t1,1\nA,t2,2\nB,t1,3\nB,t2,4\n"

#: The marker of a data folder cppgraph wrote.
MARKER = '{"written_by": "cppgraph", "kind": "data"}'


def make_folder(root: Path, files: dict[str, str | bytes], name: str = "data") -> Path:
    """Write ``files`` (name -> text or bytes) into a new folder ``root/name``."""
    folder = root / name
    folder.mkdir(parents=True)
    for fname, content in files.items():
        path = folder / fname
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return folder


def read_error(folder: Path, reader=read_canonical) -> str:
    """The message of the DataError that reading ``folder`` raises."""
    with pytest.raises(DataError) as info:
        reader(folder)
    return str(info.value)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> content)."""
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ----------------------------------------------------------- 1. unreadable
def test_binary_scores_file(tmp_path):
    folder = make_folder(tmp_path, {"scores.csv": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe"})
    msg = read_error(folder)
    assert "scores.csv" in msg
    assert "cannot read as CSV" in msg
    assert "utf-8" in msg


def test_scores_not_utf8(tmp_path):
    folder = make_folder(tmp_path, {"scores.csv": "model,task,score\nCaf\u00e9,t1,1\n"
                                    .encode("latin-1")})
    msg = read_error(folder)
    assert "scores.csv" in msg
    assert "cannot read as CSV" in msg
    assert "utf-8" in msg


def test_scores_unterminated_quote(tmp_path):
    folder = make_folder(tmp_path, {"scores.csv": 'model,task,score\nA,t1,1\nA,"t2,2\nB,t1,3\n'})
    msg = read_error(folder)
    assert "scores.csv" in msg
    assert "cannot read as CSV" in msg


def test_scores_row_with_too_many_fields(tmp_path):
    folder = make_folder(tmp_path, {"scores.csv": "model,task,score\nA,t1,1\nA,t2,2,7\nB,t1,3\n"})
    msg = read_error(folder)
    assert "scores.csv" in msg
    assert "line 3" in msg
    assert "Expected 3 fields" in msg


def test_scores_first_row_with_too_many_fields(tmp_path):
    folder = make_folder(tmp_path, {"scores.csv": SCORES.replace("A,t1,1\n", "A,t1,1,5,6\n")})
    msg = read_error(folder)
    assert "scores.csv" in msg
    assert "line 2" in msg


def test_empty_scores_file(tmp_path):
    folder = make_folder(tmp_path, {"scores.csv": ""})
    msg = read_error(folder)
    assert "scores.csv" in msg
    assert "cannot read as CSV" in msg


def test_scores_header_only(tmp_path):
    folder = make_folder(tmp_path, {"scores.csv": "model,task,score\n"})
    msg = read_error(folder)
    assert "scores.csv" in msg
    assert "no scores" in msg


def test_folder_without_scores(tmp_path):
    folder = make_folder(tmp_path, {"tasks.csv": "task,unit\nt1,%\n"})
    msg = read_error(folder)
    assert str(folder) in msg
    assert "no scores.csv" in msg
    assert "model,task,score" in msg


def test_path_does_not_exist(tmp_path):
    missing = tmp_path / "nowhere"
    msg = read_error(missing)
    assert str(missing) in msg
    assert "not found" in msg


def test_file_where_folder_expected(tmp_path):
    folder = make_folder(tmp_path, {"scores.csv": SCORES})
    msg = read_error(folder / "scores.csv")
    assert "scores.csv" in msg
    assert "expected a folder" in msg


def test_bad_dataset_json(tmp_path):
    folder = make_folder(tmp_path, {"scores.csv": SCORES, "dataset.json": "{not json"})
    msg = read_error(folder)
    assert "dataset.json" in msg
    assert "JSON" in msg


# ------------------------------------------------------- 2. missing columns
def test_scores_without_score_column(tmp_path):
    folder = make_folder(tmp_path, {"scores.csv": "model,task\nA,t1\nA,t2\nB,t1\nB,t2\n"})
    msg = read_error(folder)
    assert "scores.csv" in msg
    assert "['score']" in msg                      # what is missing
    assert "['model', 'task', 'score']" in msg     # what is expected


def test_scores_with_wrong_score_column_name(tmp_path):
    folder = make_folder(tmp_path, {"scores.csv": SCORES.replace(",score", ",value")})
    msg = read_error(folder)
    assert "scores.csv" in msg
    assert "'value'" in msg
    assert "model,task,score" in msg


def test_missing_column_message_hides_internal_columns(tmp_path):
    folder = make_folder(tmp_path, {"scores.csv": "model,task\nA,t1\nA,t2\nB,t1\nB,t2\n"})
    msg = read_error(folder)
    assert "_line" not in msg


def test_model_factors_first_column_not_model(tmp_path):
    folder = make_folder(tmp_path, {"scores.csv": SCORES,
                                    "model_factors.csv": "name,size\nA,1\nB,2\n"})
    msg = read_error(folder)
    assert "model_factors.csv" in msg
    assert "'model'" in msg
    assert "'name'" in msg


def test_tasks_csv_unexpected_column(tmp_path):
    folder = make_folder(tmp_path, {"scores.csv": SCORES,
                                    "tasks.csv": "task,ability\nt1,x\nt2,y\n"})
    msg = read_error(folder)
    assert "tasks.csv" in msg
    assert "'ability'" in msg
    assert "task_factors.csv" in msg


# ---------------------------------------------------------- 3. bad scores
def test_non_numeric_score(tmp_path):
    folder = make_folder(tmp_path, {"scores.csv": SCORES.replace("A,t2,2", "A,t2,abc")})
    msg = read_error(folder)
    assert "scores.csv" in msg
    assert "line 3" in msg
    assert "'score'" in msg
    assert "'abc'" in msg


def test_non_numeric_score_attributes(tmp_path):
    folder = make_folder(tmp_path, {"scores.csv": SCORES.replace("A,t2,2", "A,t2,abc")})
    with pytest.raises(DataError) as info:
        read_canonical(folder)
    err = info.value
    assert Path(err.file).name == "scores.csv"
    assert (err.line, err.column, err.value) == (3, "score", "abc")


@pytest.mark.parametrize("text", ["inf", "-Infinity"])
def test_infinite_score(tmp_path, text):
    folder = make_folder(tmp_path, {"scores.csv": SCORES.replace("B,t1,3", f"B,t1,{text}")})
    msg = read_error(folder)
    assert "scores.csv" in msg
    assert "line 4" in msg
    assert "'score'" in msg
    assert repr(text) in msg
    assert "infinite" in msg


@pytest.mark.parametrize("text", ["nan", "NaN"])
def test_nan_score(tmp_path, text):
    folder = make_folder(tmp_path, {"scores.csv": SCORES.replace("A,t2,2", f"A,t2,{text}")})
    msg = read_error(folder)
    assert "scores.csv" in msg
    assert "line 3" in msg
    assert "'score'" in msg
    assert repr(text) in msg


def test_empty_score(tmp_path):
    folder = make_folder(tmp_path, {"scores.csv": SCORES.replace("A,t2,2", "A,t2,")})
    msg = read_error(folder)
    assert "scores.csv" in msg
    assert "line 3" in msg
    assert "'score'" in msg
    assert "missing" in msg


def test_empty_model_name(tmp_path):
    folder = make_folder(tmp_path, {"scores.csv": SCORES.replace("A,t2,2", ",t2,2")})
    msg = read_error(folder)
    assert "scores.csv" in msg
    assert "line 3" in msg
    assert "'model'" in msg
    assert "empty model name" in msg


# ------------------------------------------------------------ 4. duplicates
def test_conflicting_duplicate(tmp_path):
    folder = make_folder(tmp_path, {"scores.csv": SCORES + "A,t1,9\n"})
    msg = read_error(folder)
    assert "scores.csv" in msg
    assert "'A'" in msg and "'t1'" in msg
    assert "lines 2, 6" in msg
    assert "1.0" in msg and "9.0" in msg


def test_identical_duplicate_is_merged_with_warning(tmp_path):
    folder = make_folder(tmp_path, {"scores.csv": SCORES + "A,t1,1\n"})
    with pytest.warns(DataWarning, match="repeated") as record:
        data = read_canonical(folder)
    assert any("scores.csv" in str(w.message) for w in record)
    assert data.n_observed == 4
    assert data.wide().at["A", "t1"] == 1.0


# -------------------------------------------------------------- 5. thin task
def test_task_with_one_score_is_kept(tmp_path):
    folder = make_folder(tmp_path, {"scores.csv": SCORES + "A,t3,5\n"})
    data = read_canonical(folder)
    assert data.tasks == ["t1", "t2", "t3"] and data.wide().at["A", "t3"] == 5.0


def test_task_with_zero_scores_via_subset(tmp_path):
    folder = make_folder(tmp_path, {"scores.csv": "model,task,score\nA,t1,1\nB,t1,2\nB,t2,4\n"})
    data = read_canonical(folder)
    with pytest.warns(DataWarning, match="no scores are ignored: 't2'"):
        sub = data.subset(models=["A"])
    assert sub.tasks == ["t1"]  # a task left without scores is no longer in the data


# --------------------------------------------- 6. factor rows, unknown models
@pytest.mark.parametrize("bad_name", ["GPT-4 ", "gpt4"])
def test_factor_row_for_unknown_model_warns_with_suggestion(tmp_path, bad_name):
    scores = SCORES.replace("A,", "GPT-4,")
    folder = make_folder(tmp_path, {"scores.csv": scores,
                                    "model_factors.csv": f"model,size\nGPT-4,1\nB,2\n{bad_name},3\n"})
    with pytest.warns(DataWarning) as record:
        data = read_canonical(folder)
    messages = [str(w.message) for w in record if issubclass(w.category, DataWarning)]
    hit = [m for m in messages if "ignored" in m]
    assert len(hit) == 1
    assert "model_factors.csv" in hit[0]
    assert repr(bad_name) in hit[0]
    assert "did you mean 'GPT-4'" in hit[0]
    # Loaded anyway; the unknown row is ignored.
    assert data.models == ["GPT-4", "B"]
    assert bad_name not in data.model_factors.index
    assert data.model_factors.at["GPT-4", "size"] == 1.0


def test_task_info_row_for_unknown_task_warns(tmp_path):
    folder = make_folder(tmp_path, {"scores.csv": SCORES, "tasks.csv": "task,unit\nt1,%\nt3,%\n"})
    with pytest.warns(DataWarning, match=r"tasks\.csv.*no scores.*'t3'"):
        data = read_canonical(folder)
    assert data.tasks == ["t1", "t2"]


# ----------------------------------------------------- 7. case / whitespace
def test_model_names_differing_by_case(tmp_path):
    folder = make_folder(tmp_path, {"scores.csv": SCORES + "Llama-7B,t1,1\nllama-7b,t2,2\n"})
    with pytest.warns(DataWarning, match="case or whitespace") as record:
        data = read_canonical(folder)
    msg = next(str(w.message) for w in record if "case or whitespace" in str(w.message))
    assert "'Llama-7B'" in msg and "'llama-7b'" in msg
    assert "scores.csv" in msg
    assert len(data.models) == 4


def test_model_names_differing_by_whitespace(tmp_path):
    folder = make_folder(tmp_path, {"scores.csv": SCORES + "A ,t1,5\nA ,t2,6\n"})
    with pytest.warns(DataWarning, match="case or whitespace") as record:
        read_canonical(folder)
    msg = next(str(w.message) for w in record if "case or whitespace" in str(w.message))
    assert "'A'" in msg and "'A '" in msg


def test_task_names_differing_by_case(tmp_path):
    folder = make_folder(tmp_path, {"scores.csv": SCORES + "A,T1,5\nB,T1,6\n"})
    with pytest.warns(DataWarning, match=r"task name.*'T1' vs 't1'"):
        read_canonical(folder)


# ------------------------------------------------ 8. factor and task tables
def test_non_numeric_value_in_declared_numeric_factor(tmp_path):
    folder = make_folder(tmp_path, {
        "scores.csv": SCORES,
        "model_factors.csv": "model,size\nA,1\nB,big\n",
        "dataset.json": json.dumps({"factor_kinds": {"model": {"size": "numeric"}}}),
    })
    msg = read_error(folder)
    assert "model_factors.csv" in msg
    assert "line 3" in msg
    assert "'size'" in msg
    assert "'big'" in msg


def test_undeclared_mixed_factor_is_categorical(tmp_path):
    folder = make_folder(tmp_path, {"scores.csv": SCORES,
                                    "model_factors.csv": "model,size\nA,1\nB,big\n"})
    data = read_canonical(folder)
    assert data.factor_kinds["model"]["size"] == "categorical"


def test_duplicate_factor_row(tmp_path):
    folder = make_folder(tmp_path, {"scores.csv": SCORES,
                                    "model_factors.csv": "model,size\nA,1\nA,2\nB,3\n"})
    msg = read_error(folder)
    assert "model_factors.csv" in msg
    assert "line 3" in msg
    assert "'A'" in msg


def test_unknown_factor_kind_names_dataset_json(tmp_path):
    folder = make_folder(tmp_path, {
        "scores.csv": SCORES,
        "model_factors.csv": "model,size\nA,1\nB,2\n",
        "dataset.json": json.dumps({"factor_kinds": {"model": {"size": "int"}}}),
    })
    msg = read_error(folder)
    assert "'int'" in msg
    assert "dataset.json" in msg


@pytest.mark.parametrize("value", ["maybe", "2"])
def test_bad_higher_is_better(tmp_path, value):
    folder = make_folder(tmp_path, {"scores.csv": SCORES,
                                    "tasks.csv": f"task,higher_is_better\nt1,true\nt2,{value}\n"})
    msg = read_error(folder)
    assert "tasks.csv" in msg
    assert "line 3" in msg
    assert "'higher_is_better'" in msg
    assert repr(value) in msg


def test_unknown_metric_type(tmp_path):
    folder = make_folder(tmp_path, {"scores.csv": SCORES,
                                    "tasks.csv": "task,metric_type\nt1,accuracy\nt2,percent\n"})
    msg = read_error(folder)
    assert "tasks.csv" in msg
    assert "line 3" in msg
    assert "'metric_type'" in msg
    assert "'percent'" in msg
    assert "accuracy" in msg  # lists the allowed values


def test_non_numeric_min_score(tmp_path):
    folder = make_folder(tmp_path, {"scores.csv": SCORES,
                                    "tasks.csv": "task,min_score\nt1,zero\nt2,1\n"})
    msg = read_error(folder)
    assert "tasks.csv" in msg
    assert "line 2" in msg
    assert "'min_score'" in msg
    assert "'zero'" in msg


@pytest.mark.parametrize("low, high", [("5", "5"), ("10", "5")])
def test_min_score_not_below_max_score(tmp_path, low, high):
    folder = make_folder(tmp_path, {"scores.csv": SCORES,
                                    "tasks.csv": f"task,min_score,max_score\nt1,0,1\nt2,{low},{high}\n"})
    msg = read_error(folder)
    assert "tasks.csv" in msg
    assert "'t2'" in msg
    assert f"min_score {float(low)}" in msg
    assert f"max_score {float(high)}" in msg


def test_min_score_not_below_max_score_names_line(tmp_path):
    folder = make_folder(tmp_path, {"scores.csv": SCORES,
                                    "tasks.csv": "task,min_score,max_score\nt1,0,1\nt2,5,5\n"})
    msg = read_error(folder)
    assert "line 3" in msg


def test_duplicate_task_row(tmp_path):
    folder = make_folder(tmp_path, {"scores.csv": SCORES, "tasks.csv": "task,unit\nt1,%\nt1,%\n"})
    msg = read_error(folder)
    assert "tasks.csv" in msg
    assert "line 3" in msg
    assert "'t1'" in msg


# ------------------------------------------------------ 9. wide-format files
CROWD = ",t1,t2\nA,1,2\nB,3,4\nC,5,6\n"


def test_cpp_llm_non_numeric_cell(tmp_path):
    folder = make_folder(tmp_path, {"crowdsource_performance.csv": CROWD.replace("B,3,4", "B,3,x")})
    msg = read_error(folder, read_cpp_llm)
    assert "crowdsource_performance.csv" in msg
    assert "line 3" in msg
    assert "'t2'" in msg
    assert "'x'" in msg


def test_cpp_llm_reads_tiny_folder(tmp_path):
    folder = make_folder(tmp_path, {"crowdsource_performance.csv": CROWD.replace("C,5,6", "C,5,"),
                                    "model_feature.csv": "Model Name,family,Layers\nA,f,2\nB,f,3\nC,g,4\n"})
    data = read_cpp_llm(folder)
    assert (len(data.models), len(data.tasks), data.n_observed) == (3, 2, 5)
    assert data.model_factors.at["C", "layers"] == 4.0


def test_cpp_llm_model_feature_row_count(tmp_path):
    folder = make_folder(tmp_path, {"crowdsource_performance.csv": CROWD,
                                    "model_feature.csv": "Model Name,family\nA,f\nB,f\n"})
    msg = read_error(folder, read_cpp_llm)
    assert "model_feature.csv" in msg
    assert "2 model rows" in msg
    assert "crowdsource_performance.csv has 3" in msg


def test_cpp_llm_model_feature_names(tmp_path):
    folder = make_folder(tmp_path, {"crowdsource_performance.csv": CROWD,
                                    "model_feature.csv": "Model Name,family\nA,f\nZ,f\nC,g\n"})
    msg = read_error(folder, read_cpp_llm)
    assert "model_feature.csv" in msg
    assert "line 3" in msg
    assert "'Model Name'" in msg
    assert "'Z'" in msg and "'B'" in msg


def test_cpp_llm_model_feature_non_numeric(tmp_path):
    folder = make_folder(tmp_path, {"crowdsource_performance.csv": CROWD,
                                    "model_feature.csv": "Model Name,Layers\nA,2\nB,many\nC,4\n"})
    msg = read_error(folder, read_cpp_llm)
    assert "model_feature.csv" in msg
    assert "line 3" in msg
    assert "'Layers'" in msg
    assert "'many'" in msg


def test_cpp_llm_missing_score_file(tmp_path):
    folder = make_folder(tmp_path, {"model_feature.csv": "Model Name\nA\n"})
    msg = read_error(folder, read_cpp_llm)
    assert "crowdsource_performance.csv" in msg
    assert "not found" in msg


def test_cpp_llm_duplicate_model(tmp_path):
    folder = make_folder(tmp_path, {"crowdsource_performance.csv": CROWD.replace("C,", "A,")})
    msg = read_error(folder, read_cpp_llm)
    assert "crowdsource_performance.csv" in msg
    assert "'A'" in msg


def test_helm_non_numeric_cell(tmp_path):
    path = tmp_path / "helm_core.csv"
    path.write_text("Metric,M1,M2,M3\nQA - EM,0.5,0.6,-\nSum - EM,0.1,oops,0.3\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        read_helm(path)
    msg = str(info.value)
    assert "helm_core.csv" in msg
    assert "line 3" in msg
    assert "'M2'" in msg
    assert "'oops'" in msg


# ---------------------------------------------------- 10. all-or-nothing import
def _bad_source(tmp_path):
    return make_folder(tmp_path, {"scores.csv": SCORES.replace("A,t2,2", "A,t2,abc")}, "bad")


def _good_source(tmp_path):
    return make_folder(tmp_path, {"scores.csv": SCORES}, "good")


def test_import_bad_source_leaves_nothing(tmp_path):
    src = _bad_source(tmp_path)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(DataError, match="'abc'"):
        import_data(src, "canonical", dest / "out")
    assert list(dest.iterdir()) == []


def test_import_failure_while_writing_leaves_nothing(tmp_path, monkeypatch):
    src = _good_source(tmp_path)
    dest = tmp_path / "dest"
    dest.mkdir()

    def fail_half_way(data, folder):
        (folder / "scores.csv").write_text("partial", encoding="utf-8")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(canonical_module, "_write_tables", fail_half_way)
    with pytest.raises(DataError, match="No space left") as info:
        import_data(src, "canonical", dest / "out")
    assert "out" in str(info.value)
    assert list(dest.iterdir()) == []


def test_import_failure_while_writing_keeps_existing_folder(tmp_path, monkeypatch):
    src = _good_source(tmp_path)
    dest = tmp_path / "dest"
    out = make_folder(dest, {"scores.csv": "old", "notes.txt": "keep me"}, "out")
    before = snapshot(out)

    def fail(data, folder):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(canonical_module, "_write_tables", fail)
    with pytest.raises(DataError):
        import_data(src, "canonical", out, overwrite=True)
    assert snapshot(out) == before
    assert [p.name for p in dest.iterdir()] == ["out"]


def test_import_refuses_non_empty_out(tmp_path):
    src = _good_source(tmp_path)
    dest = tmp_path / "dest"
    out = make_folder(dest, {"scores.csv": "old", "notes.txt": "keep me"}, "out")
    before = snapshot(out)
    with pytest.raises(DataError) as info:
        import_data(src, "canonical", out)
    msg = str(info.value)
    assert str(out) in msg
    assert "not empty" in msg and "--force" in msg
    assert snapshot(out) == before
    assert [p.name for p in dest.iterdir()] == ["out"]


def test_import_refuses_non_empty_out_before_reading(tmp_path):
    # The output check comes first: a bad source is not even read.
    src = _bad_source(tmp_path)
    out = make_folder(tmp_path / "dest", {"notes.txt": "keep me"}, "out")
    with pytest.raises(DataError, match="not empty"):
        import_data(src, "canonical", out)
    assert snapshot(out) == {"notes.txt": b"keep me"}


def test_import_out_is_a_file(tmp_path):
    src = _good_source(tmp_path)
    out = tmp_path / "out.txt"
    out.write_text("x", encoding="utf-8")
    with pytest.raises(DataError, match="not a folder"):
        import_data(src, "canonical", out)
    assert out.read_text(encoding="utf-8") == "x"


def test_import_force_replaces_out(tmp_path):
    src = _good_source(tmp_path)
    dest = tmp_path / "dest"
    out = make_folder(dest, {"scores.csv": "old", "tasks.csv": "stale", ".cppgraph": MARKER}, "out")
    data = import_data(src, "canonical", out, overwrite=True)
    assert not (out / "tasks.csv").read_text(encoding="utf-8").startswith("stale")
    assert read_canonical(out).equals(data)
    assert [p.name for p in dest.iterdir()] == ["out"]


def test_import_into_empty_existing_out(tmp_path):
    src = _good_source(tmp_path)
    out = tmp_path / "dest" / "out"
    out.mkdir(parents=True)
    import_data(src, "canonical", out)
    assert (out / "scores.csv").is_file()
    assert [p.name for p in out.parent.iterdir()] == ["out"]


def test_import_round_trip_without_warnings(tmp_path):
    src = make_folder(tmp_path, {
        "scores.csv": SCORES + "C,t1,5\n",
        "tasks.csv": "task,higher_is_better,min_score,max_score,unit,metric_type\n"
                     "t1,true,0,10,points,score\nt2,false,,,,loss\n",
        "model_factors.csv": "model,size,family\nA,1.5,x\nB,,y\nC,3,\n",
        "task_factors.csv": "task,ability\nt1,math\nt2,\n",
        "dataset.json": json.dumps({"name": "tiny", "factor_kinds": {"model": {"size": "numeric"}}}),
    }, "src")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        data = import_data(src, "canonical", tmp_path / "out")
        again = read_canonical(tmp_path / "out")
    assert again.equals(data)
    assert again.meta["name"] == "tiny"
