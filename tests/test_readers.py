"""Every reader on the real public files: exact counts and the documented quirks."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from cppgraph.data import (
    read_cpp_llm,
    read_data,
    read_helm,
    read_obsscaling,
    read_open_llm_leaderboard,
)
from cppgraph.errors import DataError, DataWarning


def _counts(data):
    return len(data.models), len(data.tasks), data.n_observed


def test_cpp_llm_counts_and_quirks(shared_data):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        data = read_cpp_llm(shared_data / "cpp_llm")
    assert _counts(data) == (72, 29, 878)
    assert data.meta["paper_rows"] == "model"
    # Names of the score matrix win over model_feature.csv's (matched by position).
    assert "Luminous Base-13B" in data.models and "Luminous Base" not in data.models
    assert data.model_factors.at["Luminous Supreme-70B", "params_b"] == 70.0
    assert data.model_factors.at["LLama-2-7B", "params_b"] == 7.0
    assert data.model_factors.at["LLama-2-7B", "tokens_b"] == 2000.0
    assert (data.model_factors["finetuned"] == "yes").sum() == 5
    assert data.factor_kinds["model"]["family"] == "categorical"
    assert data.factor_kinds["task"]["few_shot"] == "categorical"
    assert data.task_factors.at["MMLU(5-shot)", "ability"] == "multitask"
    assert data.task_factors.at["HellaSwag(10-shot)", "few_shot"] == "10"
    # Percent scores with their declared range; the source order is kept.
    assert data.models[:3] == ["LLama-2-7B", "LLama-2-13B", "LLama-2-70B"]
    assert data.tasks[0] == "BoolQ(0-shot)" and data.tasks[-1] == "WSC"
    assert (data.task_info["max_score"] == 100).all()
    cell = data.scores[(data.scores.model == "LLama-2-70B") & (data.scores.task == "GSM8K(4-shot)")]
    assert cell["score"].tolist() == [63.99]


def test_helm_counts_and_metric_flags(shared_data):
    path = shared_data / "cpp_llm" / "helm_core.csv"
    with pytest.warns(DataWarning, match="21 metric"):
        data = read_helm(path)
    assert _counts(data) == (88, 56, 2602)
    assert data.meta["paper_rows"] == "task"
    info = data.task_info
    assert info["metric_type"].value_counts().to_dict() == {
        "accuracy": 35, "score": 6, "statistic": 6, "rating": 6, "loss": 3}
    assert not info.at["The Pile - BPB", "higher_is_better"]
    assert pd.isna(info.at["CNN/DailyMail - Density", "higher_is_better"])
    assert info.at["MMLU - EM", "higher_is_better"]
    # The paper's pilot: the first 16 rows x the first 67 models, 876 observed cells.
    pilot = data.subset(models=data.models[:67], tasks=data.tasks[:16])
    assert _counts(pilot) == (67, 16, 876)
    assert data.model_factors.at["GPT-J (6B)", "params_b"] == 6.0
    assert data.model_factors.at["ada (350M)", "params_b"] == pytest.approx(0.35)
    assert np.isnan(data.model_factors.at["text-ada-001", "params_b"])

    acc = read_helm(path, metric_types=["accuracy"])
    assert _counts(acc) == (88, 35, 2003)
    assert set(acc.task_info["metric_type"]) == {"accuracy"}


@pytest.mark.parametrize("name, counts", [
    ("base_llm_benchmark_eval.csv", (148, 8, 1144)),
    ("base_llm_benchmark_eval_sub_10b.csv", (92, 8, 730)),
    ("base_llm_leaderboard_v2_eval.csv", (72, 6, 432)),
    ("instruct_llm_benchmark_eval.csv", (27, 9, 219)),
])
def test_obsscaling_counts(shared_data, name, counts):
    data = read_obsscaling(shared_data / "obsscaling" / name)
    assert _counts(data) == counts
    assert {"family", "params_b", "tokens_b", "flops_1e21"} <= set(data.model_factors.columns)


def test_obsscaling_factors(shared_data):
    data = read_obsscaling(shared_data / "obsscaling")  # a folder means the base file
    assert _counts(data) == (148, 8, 1144)
    row = data.model_factors.loc["meta-llama/Llama-2-7b-hf"]
    assert row["family"] == "Llama-2" and row["params_b"] == 7.0 and row["tokens_b"] == 2000.0
    assert data.model_factors["family"].nunique() == 47
    # The leaderboard-v2 file has no factors of its own: they come from the base file.
    v2 = read_obsscaling(shared_data / "obsscaling" / "base_llm_leaderboard_v2_eval.csv")
    assert v2.model_factors.at["meta-llama/Llama-2-7b-hf", "params_b"] == 7.0
    assert v2.task_factors.at["leaderboard_bbh", "few_shot"] == "3"
    instruct = read_obsscaling(shared_data / "obsscaling" / "instruct_llm_benchmark_eval.csv")
    assert instruct.task_info.at["MTBench", "metric_type"] == "score"


def test_open_llm_leaderboard_dedupe_and_scores(shared_data):
    path = shared_data / "open_llm_leaderboard" / "v2.csv"
    with pytest.warns(DataWarning, match="differ only by case"):
        raw = read_open_llm_leaderboard(path)
    assert _counts(raw) == (4497, 6, 4497 * 6)
    assert raw.scores["score"].between(0, 1).all()
    # Dedupe rule: the latest submission of a model, ties broken by the smallest id.
    src = pd.read_csv(path)
    name = "AtAndDev/Qwen2.5-1.5B-continuous-learnt"
    rows = src[src.model_name == name].sort_values(
        ["metadata_submission_date", "id"], ascending=[False, True])
    assert len(rows) == 2
    kept = raw.scores[(raw.scores.model == name) & (raw.scores.task == "BBH")]["score"]
    assert kept.tolist() == [rows.iloc[0]["evaluations_bbh_value"]]
    with pytest.warns(DataWarning):
        norm = read_open_llm_leaderboard(path, scores="normalized")
    assert _counts(norm) == _counts(raw)
    assert norm.task_info["max_score"].eq(100).all()
    assert norm.task_factors.at["MMLU-Pro", "few_shot"] == "5"
    # Unknown parameter counts (<= 0 in the source) are missing, not zero.
    assert (raw.model_factors["params_b"].dropna() > 0).all()


def test_read_data_unknown_format(shared_data):
    with pytest.raises(DataError, match="unknown format 'csv'"):
        read_data(shared_data / "cpp_llm", "csv")
    with pytest.raises(DataError, match="scores must be 'raw' or 'normalized'"):
        read_open_llm_leaderboard(shared_data / "open_llm_leaderboard" / "v2.csv", scores="pct")


def test_as_data_takes_a_collab_data_a_path_or_frames(demo_dir):
    import pandas as pd

    from cppgraph.data import as_data, read_canonical
    from cppgraph.errors import CppGraphError
    data = read_canonical(demo_dir)
    assert as_data(data) is data
    assert as_data(str(demo_dir)).scores.equals(data.scores)
    frames = as_data(pd.read_csv(demo_dir / "scores.csv"),
                     model_factors=pd.read_csv(demo_dir / "model_factors.csv"),
                     tasks=pd.read_csv(demo_dir / "tasks.csv"))
    assert frames.models == data.models and frames.tasks == data.tasks
    assert frames.task_info["max_score"].equals(data.task_info["max_score"])
    with pytest.raises(CppGraphError, match="tasks go with a DataFrame"):
        as_data(data, tasks=pd.read_csv(demo_dir / "tasks.csv"))
    with pytest.raises(CppGraphError, match="got int"):
        as_data(3)
