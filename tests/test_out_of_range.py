"""Scores outside their task's declared range: a warning naming the cells, an error past
a tolerance, ``--clip`` / ``--allow-out-of-range``; known scores held to the same rule;
the ObsScaling reader's ranges come from each column's metric and values."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from cppgraph.cli import cli
from cppgraph.data import read_canonical, read_data
from cppgraph.errors import DataError, DataWarning

TASKS = "task,min_score,max_score\nt1,0,100\nt2,0,100\nt3,0,1\n"


def _folder(tmp_path, rows):
    folder = tmp_path / "data"
    folder.mkdir()
    lines = ["model,task,score"] + [f"{m},{t},{s}" for m, t, s in rows]
    (folder / "scores.csv").write_text("\n".join(lines) + "\n")
    (folder / "tasks.csv").write_text(TASKS)
    return folder


GOOD = [("A", "t1", 50), ("A", "t2", 60), ("B", "t1", 40), ("B", "t3", 0.5)]


@pytest.mark.parametrize("bad", [150, -40, 1e300])
def test_a_score_far_outside_its_range_is_an_error_naming_the_cell(tmp_path, bad):
    folder = _folder(tmp_path, GOOD + [("C", "t2", bad)])
    with pytest.raises(DataError) as err:
        read_canonical(folder)
    text = str(err.value)
    assert "scores.csv" in text and "'C'" in text and "'t2'" in text
    assert f"{bad:g}" in text and "line 6" in text and "--clip" in text


def test_a_score_just_outside_its_range_is_kept_with_a_warning(tmp_path):
    folder = _folder(tmp_path, GOOD + [("C", "t2", 100.5)])
    with pytest.warns(DataWarning, match=r"'C', task 't2': 100.5 not in \[0, 100\]"):
        data = read_canonical(folder)
    assert data.scores["score"].max() == 100.5


def test_clip_clips_and_allow_keeps_with_a_warning(tmp_path):
    folder = _folder(tmp_path, GOOD + [("C", "t2", 150), ("C", "t3", -2)])
    with pytest.warns(DataWarning, match="2 score.s. clipped"):
        clipped = read_canonical(folder, out_of_range="clip")
    cells = clipped.scores.set_index(["model", "task"])["score"]
    assert cells[("C", "t2")] == 100 and cells[("C", "t3")] == 0
    with pytest.warns(DataWarning, match="2 score.s. outside .* kept"):
        kept = read_canonical(folder, out_of_range="allow")
    cells = kept.scores.set_index(["model", "task"])["score"]
    assert cells[("C", "t2")] == 150 and cells[("C", "t3")] == -2


def test_a_task_without_a_declared_range_is_not_checked(tmp_path):
    folder = _folder(tmp_path, GOOD)
    (folder / "tasks.csv").write_text("task,higher_is_better\nt1,true\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        (folder / "scores.csv").write_text("model,task,score\nA,t1,1e6\nB,t1,-3\n")
        assert read_canonical(folder).scores["score"].max() == 1e6


def test_the_cli_refuses_or_follows_the_choice(tmp_path):
    folder = _folder(tmp_path, GOOD + [("C", "t2", 150)])
    runner = CliRunner()
    res = runner.invoke(cli, ["data", "check", str(folder)])
    assert res.exit_code == 1 and "150 not in [0, 100]" in res.output
    assert "Traceback" not in res.output
    res = runner.invoke(cli, ["data", "check", str(folder), "--clip", "--json"])
    assert res.exit_code == 0
    res = runner.invoke(cli, ["data", "check", str(folder), "--clip", "--allow-out-of-range"])
    assert res.exit_code == 2 and "choose one of" in res.output
    out = tmp_path / "imported"
    res = runner.invoke(cli, ["data", "import", str(folder), "--format", "canonical",
                               "--out", str(out)])
    assert res.exit_code == 1 and not out.exists()
    res = runner.invoke(cli, ["data", "import", str(folder), "--format", "canonical",
                               "--out", str(out), "--clip"])
    assert res.exit_code == 0
    assert read_canonical(out).scores["score"].max() == 100


@pytest.mark.parametrize("bad", [150, 1e300])
def test_known_scores_are_held_to_the_same_rule(fast_est, bad):
    task = fast_est.data_.tasks[0]
    lo, hi = fast_est.data_.task_info.loc[task, ["min_score", "max_score"]]
    factors = pd.DataFrame({"model": ["new"], "family": ["aurora"], "params_b": [7.0]})
    known = pd.DataFrame({"model": ["new"], "task": [task], "score": [bad]})
    with pytest.raises(DataError, match=f"known score.*'new', task '{task}'"):
        fast_est.predict_new_models(factors, known)
    with pytest.warns(DataWarning, match="clipped"):
        clipped = fast_est.predict_new_models(factors, known, out_of_range="clip")
    row = clipped[clipped["task"] == task].iloc[0]
    assert row["observed"] == hi
    assert np.isfinite(clipped["predicted"]).all()
    assert lo <= clipped["predicted"].min()


# ObsScaling's emergent-capability and post-training files: a few rows in the source's
# column naming (values as published for these models).
EMERGENT = """Model,parsinlu_qa_2_acc,ipa_transliterate_2_exact_match,ipa_transliterate_2_bleu,arithmetic_2da_2_acc
meta-llama/Llama-2-7b-hf,0.2514,0.0718,27.2388,0.977
meta-llama/Llama-2-70b-hf,0.3590,0.2812,53.0610,0.999
meta-llama/Meta-Llama-3-70B,0.5905,0.3390,59.3051,1.0
EleutherAI/pythia-70m-deduped,0.2381,0.0,0.0300,0.009
"""
POST = """Model,"bbh_fewshot_navigate_3_exact_match,strict-match","bbh_fewshot_navigate_3_exact_match,strict-match,norm","gsm8k_5_exact_match,strict-match"
meta-llama/Llama-2-7b-hf,0.42,-0.16,0.068
meta-llama/Llama-2-70b-hf,0.58,0.16,0.52
EleutherAI/pythia-70m-deduped,0.0,-1.0,0.0
EleutherAI/pythia-160m-deduped,0.2,-0.6,0.01
"""


def test_obsscaling_ranges_follow_each_columns_metric(tmp_path):
    (tmp_path / "base_llm_emergent_capability_eval.csv").write_text(EMERGENT)
    (tmp_path / "base_llm_post_training_eval.csv").write_text(POST)
    emergent = read_data(tmp_path / "base_llm_emergent_capability_eval.csv", "obsscaling")
    info = emergent.task_info
    assert tuple(info.loc["ipa_transliterate_2_bleu", ["min_score", "max_score", "unit"]]) == (
        0.0, 100.0, "BLEU")
    assert tuple(info.loc["parsinlu_qa_2_acc", ["min_score", "max_score"]]) == (0.0, 1.0)
    post = read_data(tmp_path / "base_llm_post_training_eval.csv", "obsscaling")
    norm = post.task_info.loc["bbh_fewshot_navigate_3_exact_match,strict-match,norm"]
    assert (norm["min_score"], norm["max_score"], norm["unit"]) == (-1.0, 1.0, "chance-normalized")
    plain = post.task_info.loc["gsm8k_5_exact_match,strict-match"]
    assert (plain["min_score"], plain["max_score"]) == (0.0, 1.0)


def test_obsscaling_bleu_predictions_are_not_clipped_to_one(tmp_path):
    (tmp_path / "e.csv").write_text(EMERGENT)
    data = read_data(tmp_path / "e.csv", "obsscaling")
    from cppgraph.estimator import CPPGraph
    est = CPPGraph(random_state=0, epochs=20, patience=20, intervals=False).fit(data)
    pred = est.predict()
    bleu = pred[pred["task"] == "ipa_transliterate_2_bleu"]["predicted"]
    assert bleu.max() > 1.0 and bleu.max() <= 100.0
