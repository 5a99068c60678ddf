"""Round trips: import -> canonical folder -> read gives identical tables."""

from __future__ import annotations

import pytest

from cppgraph.data import import_data, read_canonical, read_data, write_canonical

SOURCES = [
    ("cpp-llm", "cpp_llm", {}),
    ("helm", "cpp_llm/helm_core.csv", {}),
    ("obsscaling", "obsscaling/base_llm_benchmark_eval.csv", {}),
    ("obsscaling", "obsscaling/instruct_llm_benchmark_eval.csv", {}),
    ("open-llm-leaderboard", "open_llm_leaderboard/v2.csv", {"scores": "normalized"}),
]


@pytest.mark.filterwarnings("ignore::cppgraph.errors.DataWarning")
@pytest.mark.parametrize("fmt, rel, options", SOURCES, ids=[s[1] for s in SOURCES])
def test_round_trip_real_data(shared_data, tmp_path, fmt, rel, options):
    original = import_data(shared_data / rel, fmt, tmp_path / "out", **options)
    back = read_canonical(tmp_path / "out")
    assert back.equals(original)
    assert back.scores["score"].tolist() == original.scores["score"].tolist()
    # Writing what was read gives the same bytes again.
    write_canonical(back, tmp_path / "again")
    for name in ("scores.csv", "tasks.csv", "model_factors.csv", "task_factors.csv", "dataset.json"):
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "again" / name).read_bytes()
    # The canonical format is itself a reader format.
    assert read_data(tmp_path / "out", "canonical").equals(original)


def test_round_trip_keeps_types(shared_data, tmp_path):
    original = import_data(shared_data / "cpp_llm", "cpp-llm", tmp_path / "cpp")
    back = read_canonical(tmp_path / "cpp")
    assert back.factor_kinds == original.factor_kinds
    assert back.task_factors["few_shot"].tolist() == original.task_factors["few_shot"].tolist()
    assert str(back.task_info["higher_is_better"].dtype) == "boolean"
    assert back.model_factors["params_b"].dtype == "float64"


def test_overwrite_replaces_only_when_asked(shared_data, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    data = read_data(shared_data / "obsscaling" / "base_llm_benchmark_eval_sub_10b.csv", "obsscaling")
    with pytest.raises(Exception, match="not empty"):
        write_canonical(data, out)
    # A folder cppgraph did not write is not replaced, even when asked.
    with pytest.raises(Exception, match="not a data folder written by cppgraph"):
        write_canonical(data, out, overwrite=True)
    assert (out / "mine.txt").read_text() == "keep me"
    write_canonical(data, tmp_path / "ours")
    write_canonical(data, tmp_path / "ours", overwrite=True)
    assert read_canonical(tmp_path / "ours").equals(data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ours", "out"]  # no temporary folders left
