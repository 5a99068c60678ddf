"""The README's quick start and .ci/run must stay the same commands."""

from __future__ import annotations

import re

from conftest import ROOT


def quick_start_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.strip() for line in block.splitlines() if line.strip()]


def test_quick_start_is_two_commands_and_ci_runs_them():
    commands = quick_start_commands()
    assert len(commands) == 2
    assert "pip install -e" in commands[0] and "cppgraph fit data/demo" in commands[0]
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    for command in commands:
        assert command in ci, f"{command!r} is in the README but not in .ci/run"


def python_snippets() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Python API", 1)[1]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_first_python_snippet_fits_a_dataframe_and_predicts(monkeypatch):
    snippet = python_snippets()[0]
    code = [line for line in snippet.splitlines() if line.strip()]
    assert len(code) <= 5
    monkeypatch.chdir(ROOT)
    scope: dict = {}
    exec(compile(snippet, "README.md", "exec"), scope)
    grid = scope["grid"]
    assert grid.shape == (60, 20) and grid.notna().all().all()
    assert grid.index[0] == scope["scores"]["model"].iloc[0]


def test_clone_gives_an_unfitted_copy_with_the_same_settings():
    from sklearn.base import clone

    from cppgraph import CPPGraph
    est = CPPGraph(hidden=16, random_state=4)
    copy = clone(est)
    assert copy is not est and copy.config == est.config
    assert copy.set_params(hidden=8).config.hidden == 8 and est.config.hidden == 16
    import pytest
    from cppgraph.errors import CppGraphError
    with pytest.raises(CppGraphError, match="unknown setting.*'hiden'"):
        CPPGraph(hiden=3)


def test_the_python_api_example_runs(monkeypatch, capsys):
    import runpy
    monkeypatch.chdir(ROOT)  # in this process: the imports are already paid for
    runpy.run_path(str(ROOT / "examples" / "python_api.py"), run_name="__main__")
    assert "saved, loaded, same predictions" in capsys.readouterr().out
