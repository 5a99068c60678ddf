"""``tools/benchmark.py --only`` and ``--protocols``: the groups and settings not run keep
their sections of the existing report word for word, and their per-seed scores still enter
the headline table."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import load_tool


@pytest.fixture()
def bench(monkeypatch):
    bench = load_tool("benchmark")
    datasets = {"a": bench.Dataset("a", "canonical", "Set A (2 models)"),
                "b": bench.Dataset("b", "canonical", "Set B")}
    monkeypatch.setattr(bench, "DATASETS", datasets)
    monkeypatch.setattr(bench, "SETTINGS", (bench.Setting("a", "random", 0.1, seeds=2),
                                            bench.Setting("b", "random", 0.1, seeds=2)))
    monkeypatch.setattr(bench, "GROUPS", ("a", "b", "paper"))
    monkeypatch.setattr(bench, "machine", lambda: "new machine")
    monkeypatch.setattr(bench, "fits", lambda *a: 1)
    monkeypatch.setattr(bench, "figures", lambda results, fig_dir, datasets, kept=(): {
        r["setting"].data: (fig_dir / "p.png", fig_dir / "e.png") for r in results})
    monkeypatch.setattr(bench, "run_paper",
                        lambda *a, **k: pytest.fail("paper was not asked for"))
    return bench


def scores(default_mae: float) -> pd.DataFrame:
    """Per-seed scores of two methods over two seeds (the default engine's MAE given)."""
    return pd.DataFrame({"method": ["cppgraph", "cppgraph", "task-mean", "task-mean"],
                         "protocol": "random", "seed": [0, 1, 0, 1],
                         "mae_norm": [default_mae, default_mae + 0.01, 0.2, 0.22]})


def ran(bench, data: str, default_mae: float):
    """A stand-in for ``run_settings`` that writes and returns one setting's scores."""
    def run_settings(settings, datasets, data_root, out_dir, **kwargs):
        assert [s.data for s in settings] == [data]
        s = settings[0]
        table = scores(default_mae)
        table.to_csv(out_dir / f"{bench._name(s)}.csv", index=False)
        from cppgraph.evaluate.runner import summarize
        return [{"setting": s, "summary": summarize(table), "scores": table, "minutes": 0.5}]
    return run_settings


OLD = """# Results

Made by `python tools/benchmark.py` on: old machine.

## Headline: the default engine against the best baseline

| setting | best baseline | cppgraph |
| --- | --- | --- |
| old | old | old |

## The CPP paper's set-ups, in the paper's unit

Old paper tables.

## Set A (2 models)

Old A tables.

## Set B

Old B tables.

## Notes

- old notes
"""


def test_only_some_groups_keep_the_others(bench, tmp_path, monkeypatch):
    out = tmp_path / "RESULTS.md"
    out.write_text(OLD, encoding="utf-8")
    (tmp_path / "results").mkdir()
    scores(0.15).to_csv(tmp_path / "results" / "b-random-0.1.csv", index=False)
    monkeypatch.setattr(bench, "run_settings", ran(bench, "a", 0.1))
    bench.main(["--only", "a", "--out", str(out), "--data", str(tmp_path)])
    text = out.read_text(encoding="utf-8")
    sections = {s.split("\n", 1)[0]: s for s in text.split("\n## ")[1:]}
    # kept word for word, with the command and machine of the run that made them
    assert sections["Set B"] == ("Set B\n\nMade by `python tools/benchmark.py` on: old "
                                 "machine.\n\nOld B tables.\n")
    assert "Old paper tables." in sections["The CPP paper's set-ups, in the paper's unit"]
    assert "old machine" in sections["The CPP paper's set-ups, in the paper's unit"]
    # the group run now, with this run's command, and both groups in the headline
    assert "Old A tables." not in text
    assert ("Made by `python tools/benchmark.py --only a` on: new machine."
            in sections["Set A (2 models)"])
    head = sections["Headline: the default engine against the best baseline"]
    assert "| Set A: random 0.1 | task-mean 0.2100 ± 0.0100 | 0.1050 ± 0.0050 |" in head
    assert "| Set B: random 0.1 | task-mean 0.2100 ± 0.0100 | 0.1550 ± 0.0050 |" in head
    assert "| old |" not in head and "old notes" not in text
    # Set B's row is an earlier run's: the headline says it collects, not that it made them
    assert head.startswith("Headline: the default engine against the best baseline\n\n"
                           "Collected by `python tools/benchmark.py --only a` on: new machine, "
                           "from the per-seed scores of this run and of the earlier runs")
    assert list(sections)[1:] == ["The CPP paper's set-ups, in the paper's unit",
                                  "Set A (2 models)", "Set B", "Notes"]
    # rerunning the other group keeps the new section of the first word for word
    monkeypatch.setattr(bench, "run_settings", ran(bench, "b", 0.12))
    bench.main(["--only", "b", "--out", str(out), "--data", str(tmp_path)])
    again = {s.split("\n", 1)[0]: s for s in out.read_text(encoding="utf-8").split("\n## ")[1:]}
    assert again["Set A (2 models)"] == sections["Set A (2 models)"]
    assert "| Set B: random 0.1 | task-mean 0.2100 ± 0.0100 | 0.1250 ± 0.0050 |" in \
        again["Headline: the default engine against the best baseline"]
    # a run of the paper's set-ups alone collects every headline row from earlier runs
    monkeypatch.setattr(bench, "run_paper", lambda *a, **k: {"table1": "new"})
    monkeypatch.setattr(bench, "run_settings", lambda settings, *a, **k: [] if not settings
                        else pytest.fail("no data set group was asked for"))
    monkeypatch.setattr(bench, "paper_sections", lambda res, made: [
        "## The CPP paper's set-ups, in the paper's unit", "", made, "", "New paper tables.", ""])
    bench.main(["--only", "paper", "--out", str(out), "--data", str(tmp_path)])
    last = {s.split("\n", 1)[0]: s for s in out.read_text(encoding="utf-8").split("\n## ")[1:]}
    assert last["Headline: the default engine against the best baseline"].startswith(
        "Headline: the default engine against the best baseline\n\nCollected by `python "
        "tools/benchmark.py --only paper` on: new machine, from the per-seed scores of the "
        "earlier runs that the sections below name.")
    assert "Made by `python tools/benchmark.py --only paper` on: new machine." in \
        last["The CPP paper's set-ups, in the paper's unit"]
    assert last["Set A (2 models)"] == again["Set A (2 models)"]


def test_nothing_to_keep_is_a_clear_error_before_any_run(bench, tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "run_settings", lambda *a, **k: pytest.fail("ran before checking"))
    out = tmp_path / "RESULTS.md"
    with pytest.raises(SystemExit, match="does not exist, so there is nothing to keep"):
        bench.main(["--only", "a", "--out", str(out)])
    out.write_text(OLD.replace("## Set B", "## Set C"), encoding="utf-8")
    with pytest.raises(SystemExit, match=r"no section '## Set B'.*--only \.\.\. b"):
        bench.main(["--only", "a", "paper", "--out", str(out)])
    out.write_text(OLD, encoding="utf-8")
    with pytest.raises(SystemExit, match=r"b-random-0.1.csv is missing, so b cannot keep"):
        bench.main(["--only", "a", "paper", "--out", str(out)])


def test_some_protocols_keep_the_other_settings(bench, tmp_path, monkeypatch):
    cold = bench.Setting("a", "cold-model", 0.1, seeds=2)
    monkeypatch.setattr(bench, "SETTINGS", (bench.Setting("a", "random", 0.1, seeds=2), cold,
                                            bench.Setting("b", "random", 0.1, seeds=2)))
    out = tmp_path / "RESULTS.md"
    out.write_text(OLD.replace("Old A tables.", "Old A figures.\n\n### random 0.1\n\nOld A random."
                               "\n\n### cold-model 0.1 k=0\n\nOld A cold."), encoding="utf-8")
    (tmp_path / "results").mkdir()
    scores(0.3).to_csv(tmp_path / "results" / "a-cold-model-0.1-k=0.csv", index=False)
    scores(0.15).to_csv(tmp_path / "results" / "b-random-0.1.csv", index=False)
    monkeypatch.setattr(bench, "run_settings", ran(bench, "a", 0.1))
    bench.main(["--only", "a", "--protocols", "random", "--out", str(out),
                "--data", str(tmp_path)])
    text = out.read_text(encoding="utf-8")
    sections = {s.split("\n", 1)[0]: s for s in text.split("\n## ")[1:]}
    a = sections["Set A (2 models)"]
    new = "Made by `python tools/benchmark.py --only a --protocols random` on: new machine."
    old = "Made by `python tools/benchmark.py` on: old machine."
    # each subsection names its run: the new random one, the kept cold-model one word for word
    assert a.index("### random 0.1\n\n" + new) < a.index("### cold-model 0.1 k=0\n\n" + old
                                                             + "\n\nOld A cold.\n")
    assert "Old A random." not in a and "every setting's scores" in a
    assert sections["Set B"].startswith("Set B\n\n" + old + "\n\nOld B tables.")
    head = sections["Headline: the default engine against the best baseline"]
    rows = [line.split(" | ")[:3] for line in head.split("\n") if line.startswith("| Set ")]
    assert rows == [["| Set A: random 0.1", "task-mean 0.2100 ± 0.0100", "0.1050 ± 0.0050"],
                    ["| Set A: cold-model 0.1 k=0", "task-mean 0.2100 ± 0.0100", "0.3050 ± 0.0050"],
                    ["| Set B: random 0.1", "task-mean 0.2100 ± 0.0100", "0.1550 ± 0.0050"]]
    # a protocol that no setting of the groups run has is a clear error
    with pytest.raises(SystemExit, match="--protocols frontier: no setting"):
        bench.main(["--only", "a", "--protocols", "frontier", "--out", str(out)])


def test_a_group_whose_settings_name_their_runs_is_kept(bench, tmp_path, monkeypatch):
    # the report of runs with --protocols: no "Made by" at the top nor under the group's
    # title, one under each setting's heading
    made = "Made by `python tools/benchmark.py --only b --protocols random` on: old machine."
    text = OLD.replace("Made by `python tools/benchmark.py` on: old machine.\n\n", "")
    text = text.replace("Old B tables.", f"Old B figures.\n\n### random 0.1\n\n{made}\n\nOld B random.")
    out = tmp_path / "RESULTS.md"
    out.write_text(text.replace("Old paper tables.", f"{made}\n\nOld paper tables."), encoding="utf-8")
    (tmp_path / "results").mkdir()
    scores(0.15).to_csv(tmp_path / "results" / "b-random-0.1.csv", index=False)
    monkeypatch.setattr(bench, "run_settings", ran(bench, "a", 0.1))
    bench.main(["--only", "a", "--out", str(out), "--data", str(tmp_path)])
    sections = {s.split("\n", 1)[0]: s for s in out.read_text(encoding="utf-8").split("\n## ")[1:]}
    assert sections["Set B"] == f"Set B\n\nOld B figures.\n\n### random 0.1\n\n{made}\n\nOld B random.\n"
    # running one protocol of that group keeps its other settings, each with its own line
    cold = bench.Setting("b", "cold-model", 0.1, seeds=2)
    monkeypatch.setattr(bench, "SETTINGS", (*bench.SETTINGS, cold))
    scores(0.3).to_csv(tmp_path / "results" / "b-cold-model-0.1-k=0.csv", index=False)
    out.write_text(out.read_text(encoding="utf-8").replace(
        "Old B random.", f"Old B random.\n\n### cold-model 0.1 k=0\n\n{made}\n\nOld B cold."),
        encoding="utf-8")
    monkeypatch.setattr(bench, "run_settings", ran(bench, "b", 0.12))
    bench.main(["--only", "b", "--protocols", "random", "--out", str(out), "--data", str(tmp_path)])
    b = {s.split("\n", 1)[0]: s for s in out.read_text(encoding="utf-8").split("\n## ")[1:]}["Set B"]
    assert f"### cold-model 0.1 k=0\n\n{made}\n\nOld B cold.\n" in b and "Old B random." not in b
    # a setting without its own line (and none at the top) cannot be kept
    monkeypatch.setattr(bench, "run_settings", ran(bench, "a", 0.1))
    out.write_text(text.replace(f"{made}\n\nOld B random.", "Old B random."), encoding="utf-8")
    with pytest.raises(SystemExit, match=r"no section '## Set B' with the command"):
        bench.main(["--only", "a", "--out", str(out), "--data", str(tmp_path)])


def test_largest_error_names_the_cell_and_the_mse_without_it(bench):
    cells = pd.DataFrame({"method": ["cppgraph"] * 4 + ["task-mean"],
                          "seed": [0, 0, 1, 1, 0], "model": ["m1", "m2", "m1", "m2", "m2"],
                          "task": ["t"] * 5, "score": [1.0, 2.0, 1.0, 2.0, 2.0],
                          "predicted": [1.5, 5.0, 1.0, 2.5, 99.0],
                          "score_norm": [0.5, 1.0, 0.5, 1.0, 1.0],
                          "predicted_norm": [0.6, 2.0, 0.5, 0.8, 50.0]})
    worst = bench.largest_error(type("Ev", (), {"predictions": cells})())
    # the other method's larger error does not count; seed 0 keeps one cell, seed 1 two
    assert (worst["seed"], worst["model"], worst["predicted"]) == (0, "m2", 5.0)
    assert worst["squared"] == pytest.approx(1.0)
    assert worst["mse_without"] == pytest.approx((0.01 + (0.0 + 0.04) / 2) / 2)
    assert "seed 0, m2 on t, observed 2 and predicted 5" in bench.largest_error_line(worst)
