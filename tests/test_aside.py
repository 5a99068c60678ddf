"""The calibration refit beside the main fit: same numbers, errors and progress passed on,
no process left behind."""

from __future__ import annotations

import multiprocessing
import os
import time

import numpy as np
import pytest

from cppgraph.aside import Aside, AsideDied, can_run_aside
from cppgraph.data import read_data
from cppgraph.errors import CppGraphError
from cppgraph.estimator import CPPGraph
from cppgraph.threads import available_cores

needs_aside = pytest.mark.skipif(not can_run_aside(), reason="needs Linux and two cores")


@pytest.fixture(scope="module")
def demo(demo_dir):
    return read_data(demo_dir)


@pytest.fixture
def spare(monkeypatch):
    """A free core, whatever else runs (the suite's own workers among it)."""
    import cppgraph.aside as aside

    monkeypatch.setattr(aside, "spare_core", lambda: True)


def test_a_second_process_only_on_a_free_core(tmp_path, monkeypatch):
    import cppgraph.aside as aside

    loadavg = tmp_path / "loadavg"
    monkeypatch.setattr(aside, "LOADAVG", str(loadavg))
    monkeypatch.setattr(aside, "available_cores", lambda: 2)
    loadavg.write_text("0.10 0.20 0.30 1/120 4567\n")  # only this process runs
    assert aside.spare_core()
    loadavg.write_text("4.10 3.20 2.30 5/120 4567\n")  # four others
    assert not aside.spare_core()
    monkeypatch.setattr(aside, "available_cores", lambda: 8)
    assert aside.spare_core()
    loadavg.unlink()  # unreadable: as on an idle machine
    assert aside.spare_core()


def _count(n, progress):
    for i in range(n):
        progress({"epoch": i + 1})
    return {"n": n, "values": np.arange(n, dtype=np.float64)}


def _fail(message, progress):
    raise CppGraphError(message)


def _die(code, progress):
    os._exit(code)


def _sleep(seconds, progress):
    time.sleep(seconds)


@needs_aside
def test_aside_returns_the_value_and_relays_progress_in_order():
    aside = Aside(_count, 5, relay=True)
    seen = []
    value = aside.result(seen.append)
    assert value["n"] == 5 and np.array_equal(value["values"], np.arange(5.0))
    assert [e["epoch"] for e in seen] == [1, 2, 3, 4, 5]
    # entries collected while the caller worked are handed on first
    aside = Aside(_count, 3, relay=True)
    time.sleep(0.5)
    aside.collect()
    seen = []
    aside.result(seen.append)
    assert [e["epoch"] for e in seen] == [1, 2, 3]


@needs_aside
def test_aside_raises_the_childs_error_and_reports_a_death():
    with pytest.raises(CppGraphError, match="bad refit"):
        Aside(_fail, "bad refit").result()
    with pytest.raises(AsideDied, match="exit code 3"):
        Aside(_die, 3).result()


@needs_aside
def test_closing_stops_a_running_aside():
    aside = Aside(_sleep, 60)
    start = time.perf_counter()
    aside.close()
    assert time.perf_counter() - start < 10 and not multiprocessing.active_children()


@needs_aside
def test_calibration_beside_the_fit_gives_the_same_numbers(demo, spare, monkeypatch):
    import cppgraph.aside as aside

    started = []

    def counted(*args, **kwargs):
        started.append(args[0].__name__)
        return Aside(*args, **kwargs)

    monkeypatch.setattr(aside, "Aside", counted)
    fits, phases = [], []
    for beside in (True, False):
        entries = []
        est = CPPGraph(random_state=0, epochs=4, calibration_process=beside).fit(
            demo, callback=entries.append)
        fits.append(est)
        phases.append([(e.get("phase"), e["epoch"], e["val_loss"]) for e in entries])
    assert started == ["refit_errors"]  # the first fit's refit, and only that, ran beside
    a, b = (est.calibration_ for est in fits)
    np.testing.assert_array_equal(a.scale, b.scale)
    assert a.scores.keys() == b.scores.keys() == {"cell", "model", "top", "task"}
    np.testing.assert_array_equal(a.scores["cell"], b.scores["cell"])
    for kind in ("model", "top", "task"):
        assert a.scores[kind].keys() == b.scores[kind].keys()
        for k in a.scores[kind]:
            np.testing.assert_array_equal(a.scores[kind][k], b.scores[kind][k])
    # the refit's epochs reach the callback after the main fit's, as in one process
    assert phases[0] == phases[1]
    assert [p for p, *_ in phases[0]] == [None] * 4 + ["calibration"] * 4


@needs_aside
def test_a_failing_fit_leaves_no_process_behind(demo, spare):
    def stop(entry):
        if entry["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        CPPGraph(random_state=0, epochs=50).fit(demo, callback=stop)
    assert not multiprocessing.active_children()


def test_no_process_beside_a_fit_on_several_threads(demo, monkeypatch):
    """A process forked from one whose threads compute can hang in its own threads: with
    ``n_jobs`` above 1 the refit stays in this process (so it does when asked, when no
    core is free now, or without a second core)."""
    import cppgraph.aside as aside

    def refuse(*args, **kwargs):
        raise AssertionError("no process beside this fit")

    assert not aside.can_run_aside(2) and not aside.can_run_aside(4)
    monkeypatch.setattr(aside, "Aside", refuse)
    monkeypatch.setattr(aside, "spare_core", lambda: True)
    if available_cores() >= 2:
        est = CPPGraph(random_state=0, epochs=2, n_jobs=2).fit(demo)
        assert est.calibration_ is not None
    monkeypatch.setattr(aside, "can_run_aside", lambda threads: True)
    est = CPPGraph(random_state=0, epochs=2, calibration_process=False).fit(demo)
    assert est.calibration_ is not None
    monkeypatch.setattr(aside, "spare_core", lambda: False)
    assert CPPGraph(random_state=0, epochs=2).fit(demo).calibration_ is not None
    monkeypatch.setattr(aside, "spare_core", lambda: True)
    monkeypatch.setattr(aside, "can_run_aside", lambda threads: False)
    assert CPPGraph(random_state=0, epochs=2).fit(demo).calibration_ is not None


@needs_aside
def test_a_refit_process_that_dies_is_run_again_here(demo, monkeypatch, spare):
    import cppgraph.aside as aside

    real = aside.Aside

    def dying(fn, *args, relay=False):
        return real(_die, 9, relay=relay)

    monkeypatch.setattr(aside, "Aside", dying)
    with pytest.warns(RuntimeWarning, match="exit code 9.*runs again in this process"):
        got = CPPGraph(random_state=0, epochs=3).fit(demo).calibration_
    want = CPPGraph(random_state=0, epochs=3, calibration_process=False).fit(demo).calibration_
    np.testing.assert_array_equal(got.scores["cell"], want.scores["cell"])


def _fit_in_worker(demo):
    est = CPPGraph(random_state=0, epochs=2).fit(demo)
    return est.calibration_ is not None


def test_a_fit_in_a_pool_worker_stays_in_its_process(demo):
    """A daemon process (a Pool's worker) may not start processes: a fit there keeps its
    calibration fit in its own process."""
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.apply(_fit_in_worker, (demo,))


@needs_aside
def test_the_process_beside_ends_with_a_killed_caller(tmp_path):
    """A caller killed outright (SIGKILL: no cleanup runs) takes the process beside it
    along."""
    import signal
    import subprocess
    import sys

    script = tmp_path / "caller.py"
    script.write_text(
        "import sys, time\n"
        "from cppgraph.aside import Aside\n"
        "def work(seconds, progress):\n"
        "    time.sleep(seconds)\n"
        "aside = Aside(work, 120)\n"
        "print(aside._proc.pid, flush=True)\n"
        "time.sleep(120)\n")
    caller = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    child = int(caller.stdout.readline())
    assert _running(child)
    caller.send_signal(signal.SIGKILL)
    caller.wait()
    for _ in range(100):
        if not _running(child):
            break
        time.sleep(0.05)
    else:
        os.kill(child, signal.SIGKILL)
        raise AssertionError("the process beside outlived its caller")


def _running(pid: int) -> bool:
    """Whether ``pid`` runs (a killed process stays a zombie until its parent reaps it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
