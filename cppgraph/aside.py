"""Work run beside the caller in a second process, on a second core.

A fit's calibration refit (:func:`cppgraph.calibrate.refit_errors`) needs
nothing the main fit learns, so where a core is free it runs in a forked
process while the main fit trains, each on one thread (unlike several
threads of one process, two processes do not wait for each other,
:mod:`cppgraph.threads`). Where other work keeps the cores busy it stays in
the fit's process (:func:`spare_core`): there a second process would only
share the same cores. The child computes exactly what the caller would (it
seeds its own generators), so the numbers are the same either way.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import time
from typing import Callable

from cppgraph.errors import CppGraphError
from cppgraph.threads import available_cores


def can_run_aside(threads: int = 1) -> bool:
    """Whether :class:`Aside` can run here for work on ``threads`` threads: Linux
    (processes are forked: nothing is imported or copied again) with at least two cores
    for this process, which is not itself a daemon process (e.g. a worker of a
    ``multiprocessing.Pool``: those may not start processes), and one thread (a process
    forked from one whose threads compute can hang in its own)."""
    return (threads == 1 and sys.platform == "linux"
            and "fork" in multiprocessing.get_all_start_methods()
            and available_cores() >= 2 and not multiprocessing.current_process().daemon)


#: How many times :func:`spare_core` looks, and how long it waits between looks (s).
LOOKS, LOOK_WAIT = 3, 0.01
#: The kernel's load figures, whose fourth field is "runnable threads/all threads".
LOADAVG = "/proc/loadavg"


def spare_core() -> bool:
    """Whether a core is free for a second process now: fewer threads of other work
    ready to run than this process's cores less one, at the quietest of
    :data:`LOOKS` looks (the kernel's count of runnable threads, ``/proc/loadavg``). On a
    machine busy with other work a second process only takes a share of the
    same cores (the scheduler shares them by session) and costs time."""
    fewest = None
    for i in range(LOOKS):
        if i:
            time.sleep(LOOK_WAIT)
        try:
            with open(LOADAVG) as f:
                running = int(f.read().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):
            return True
        fewest = running if fewest is None else min(fewest, running)
    # the count includes this process's own thread: a core is free when fewer others run
    # than the cores less this one
    return fewest < available_cores()


class AsideDied(CppGraphError):
    """The process of an :class:`Aside` ended without sending its result."""


class Aside:
    """``fn(*args, progress)`` in a forked process; :meth:`result` waits for it.

    ``progress`` is ``None``, or (with ``relay=True``) a function whose calls
    reach the caller as the entries that :meth:`collect` and :meth:`result`
    hand on. An exception of ``fn`` is raised again by :meth:`result`.
    """

    def __init__(self, fn: Callable, *args, relay: bool = False):
        ctx = multiprocessing.get_context("fork")
        self._conn, child_end = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=_child, args=(child_end, fn, args, relay, os.getpid()),
                                 daemon=True)
        self._proc.start()
        child_end.close()
        self._pending: list = []
        self._done = None

    def collect(self) -> None:
        """Receive what has arrived, without waiting (keeps the pipe from filling)."""
        while self._done is None and self._conn.poll():
            self._receive()

    def _receive(self) -> None:
        try:
            kind, value = self._conn.recv()
        except (EOFError, OSError):
            self._proc.join()
            self._done = ("died", self._proc.exitcode)
            return
        if kind == "progress":
            self._pending.append(value)
        else:
            self._done = (kind, value)

    def result(self, progress: Callable[[dict], None] | None = None):
        """Wait for ``fn``'s value; hand each progress entry to ``progress`` (those that
        came earlier first)."""
        try:
            while True:
                for entry in self._pending:
                    if progress is not None:
                        progress(entry)
                self._pending = []
                if self._done is not None:
                    break
                self._receive()
        finally:
            self.close()
        kind, value = self._done
        if kind == "error":
            raise value
        if kind == "died":
            raise AsideDied(f"the process beside this one ended without a result "
                            f"(exit code {value})")
        return value

    def close(self) -> None:
        """Stop the process if it still runs (e.g. the caller failed first)."""
        if self._proc.is_alive() and self._done is None:
            self._proc.kill()
        self._proc.join()
        self._conn.close()


def _child(conn, fn: Callable, args: tuple, relay: bool, parent: int) -> None:
    _die_with_parent(parent)
    progress = (lambda entry: conn.send(("progress", entry))) if relay else None
    try:
        message = ("value", fn(*args, progress))
    except BaseException as exc:  # noqa: BLE001 - handed to the caller, which raises it
        message = ("error", exc)
    try:
        try:
            conn.send(message)
        except OSError:
            raise
        except Exception:  # noqa: BLE001 - an exception that does not pickle
            conn.send(("error", CppGraphError(f"{type(message[1]).__name__}: {message[1]}")))
    except OSError:  # the caller stopped listening (it failed or was interrupted)
        pass
    finally:
        conn.close()


#: prctl's option that sends the calling process a signal when its parent ends.
_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """Have the kernel kill this process when its parent ends, however it ends (a
    killed fit leaves no refit computing on)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # no prctl: the daemon flag still stops it at exit
        return
    if os.getppid() != parent:  # the parent ended before the signal was asked for
        os._exit(1)
