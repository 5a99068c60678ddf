"""Thread limits of torch and the BLAS libraries."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner
from threadpoolctl import threadpool_info

from cppgraph.cli import cli
from cppgraph.config import MAX_SEED, Config
from cppgraph.errors import CppGraphError
from cppgraph.threads import DEFAULT_THREADS, available_cores, limit_threads, resolve_threads


def _blas_threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


def test_limit_threads_sets_and_restores():
    before = torch.get_num_threads()
    with limit_threads(1) as n:
        assert n == 1
        assert torch.get_num_threads() == 1
        assert _blas_threads() <= {1}
    assert torch.get_num_threads() == before


def test_resolve_threads():
    assert resolve_threads(None) == DEFAULT_THREADS == 1
    cores = available_cores()
    assert resolve_threads(cores) == cores and resolve_threads(1) == 1
    assert resolve_threads(0) == resolve_threads(-1) == cores  # one per available core
    with pytest.raises(CppGraphError, match="integer"):
        resolve_threads(1.5)
    with pytest.raises(CppGraphError, match=f"at most {cores}"):
        resolve_threads(cores + 1)


def test_cli_refuses_more_threads_than_cores_and_bad_seeds(tmp_path, demo_dir):
    for args, message in (([f"--threads={available_cores() + 1}"], "at most"),
                          (["--threads=-1"], "x>=0"), (["--seed=-1"], "--seed"),
                          ([f"--seed={MAX_SEED + 1}"], "--seed"), (["--every=0"], "--every")):
        result = CliRunner().invoke(cli, ["fit", str(demo_dir), "--out", str(tmp_path / "m"),
                                          *args])
        assert result.exit_code != 0 and message in result.output, (args, result.output)
        assert "internal error" not in result.output and not (tmp_path / "m").exists()
    with pytest.raises(CppGraphError, match="random_state"):
        Config(random_state=-1)


def test_config_n_jobs_must_be_an_integer():
    assert Config().n_jobs == 1
    with pytest.raises(CppGraphError, match="n_jobs"):
        Config(n_jobs="two")


def test_estimator_runs_with_its_n_jobs(fast_est, monkeypatch):
    seen = []
    real = torch.nn.functional.linear

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "linear", spy)
    fast_est.predict(fast_est.data_.scores[["model", "task"]].head(3))
    assert seen and set(seen) == {fast_est.config.n_jobs}


def test_cli_threads_option(fast_model_dir):
    runner = CliRunner()
    ok = runner.invoke(cli, ["predict", str(fast_model_dir), "--model", "syn-aurora-9.9b",
                             "--format", "csv", "--threads", "2"])
    assert ok.exit_code == 0, ok.output
    assert ok.output.count("\n") == 21  # header + 20 tasks
    bad = runner.invoke(cli, ["predict", str(fast_model_dir), "--all", "--threads", "x"])
    assert bad.exit_code == 2 and "--threads" in bad.output
