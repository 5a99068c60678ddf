"""How many CPU threads the computations use.

Torch and numpy's BLAS default to one thread per core. On a machine shared
with other busy processes those threads wait for each other at every
operation and a run gets many times slower; the work cppgraph does is small
per operation, so one thread is the default everywhere (``n_jobs`` of the
estimator, ``--threads`` of the command line). ``docs/SCALE.md`` has the
measurements.
"""

from __future__ import annotations

import functools
import os
from contextlib import contextmanager

from cppgraph.errors import CppGraphError

#: Threads used when none are asked for.
DEFAULT_THREADS = 1


def available_cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def resolve_threads(n: int | None) -> int:
    """The thread count for ``n``: ``None`` is :data:`DEFAULT_THREADS`, ``0`` or less
    is one per available core; more threads than cores is an error (they would
    only wait for each other)."""
    if n is None:
        return DEFAULT_THREADS
    if isinstance(n, bool) or not isinstance(n, int):
        raise CppGraphError(f"the number of threads must be an integer; got {n!r}")
    cores = available_cores()
    if n > cores:
        raise CppGraphError(f"{n} threads asked for, but this process has {cores} CPU core(s); "
                            f"use at most {cores} (0: one per core)")
    return cores if n <= 0 else n


@contextmanager
def limit_threads(n: int | None):
    """Run the block with torch and the BLAS libraries on ``n`` threads (see
    :func:`resolve_threads`) and torch's deterministic algorithms, so that
    several threads give the same numbers as one; the previous settings come
    back afterwards."""
    import torch
    from threadpoolctl import threadpool_limits

    count = resolve_threads(n)
    before = torch.get_num_threads()
    deterministic = (torch.are_deterministic_algorithms_enabled(),
                     torch.is_deterministic_algorithms_warn_only_enabled())
    torch.set_num_threads(count)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        with threadpool_limits(limits=count):
            yield count
    finally:
        torch.set_num_threads(before)
        torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])


def threaded(method):
    """Run a method of an object with a ``config.n_jobs`` under :func:`limit_threads`."""
    @functools.wraps(method)
    def wrapped(self, *args, **kwargs):
        with limit_threads(self.config.n_jobs):
            return method(self, *args, **kwargs)
    return wrapped
