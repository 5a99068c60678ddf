"""Shared fixtures. The real public data sets are read in place from ../shared/data."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

# One thread per test process: the suite runs one process per core (pytest-xdist), and
# BLAS or OpenMP pools of one thread per core in each process would oversubscribe them.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CPPGRAPH_SHARED_DATA", ROOT.parent / "shared" / "data"))
DEMO = ROOT / "data" / "demo"


def load_tool(name: str):
    """``tools/<name>.py`` as a module, registered in ``sys.modules`` (dataclasses need it)."""
    key = f"cppgraph_tools_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, ROOT / "tools" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


@pytest.fixture(autouse=True)
def no_outside_downloads(monkeypatch, tmp_path_factory):
    """Downloads go to a closed local port and a temporary cache unless a test says
    otherwise (``tests/test_pull.py`` serves files from its own local server)."""
    monkeypatch.setenv("CPPGRAPH_PULL_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("CPPGRAPH_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data; skipped when absent, except under CI where it must exist."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but the shared data folder {SHARED_DATA} is missing")
        pytest.skip(f"shared data folder {SHARED_DATA} not found")
    return SHARED_DATA


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    return DEMO


#: A short training run: enough for tests that look inside a fitted model.
FAST = dict(epochs=40, patience=40)


@pytest.fixture(scope="session")
def fast_est(demo_dir):
    """The engine fitted briefly on the demo data (shared: do not modify)."""
    from cppgraph.data import read_data
    from cppgraph.estimator import CPPGraph
    return CPPGraph(random_state=0, **FAST).fit(read_data(demo_dir))


@pytest.fixture(scope="session")
def fast_model_dir(fast_est, tmp_path_factory):
    """``fast_est`` saved to a model folder."""
    return fast_est.save(tmp_path_factory.mktemp("fast") / "model")
