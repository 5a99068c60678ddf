"""Options shared by several commands."""

from __future__ import annotations

import functools

import click

from cppgraph.threads import DEFAULT_THREADS, limit_threads


def threads_option(command):
    """Add ``--threads N`` to a command that computes; the command runs with torch and
    the BLAS libraries limited to N threads and receives ``threads``."""
    @click.option("--threads", type=int, default=DEFAULT_THREADS, show_default=True,
                  help="CPU threads for the computation (0: one per core). More than 1 pays "
                       "off only on an otherwise idle machine.")
    @functools.wraps(command)
    def wrapped(*args, threads, **kwargs):
        with limit_threads(threads) as count:
            return command(*args, threads=count, **kwargs)
    return wrapped


def range_option(command):
    """Add ``--clip`` and ``--allow-out-of-range`` to a command that reads scores; the
    command receives ``out_of_range`` (see ``cppgraph.data.dataset.OUT_OF_RANGE``)."""
    @click.option("--allow-out-of-range", "allow", is_flag=True,
                  help="Keep scores outside their task's declared range (with a warning).")
    @click.option("--clip", is_flag=True,
                  help="Clip scores outside their task's declared range to it (with a warning). "
                       "Default: more than 1% of the range outside is an error.")
    @functools.wraps(command)
    def wrapped(*args, clip, allow, **kwargs):
        if clip and allow:
            raise click.UsageError("choose one of --clip and --allow-out-of-range")
        mode = "clip" if clip else "allow" if allow else "error"
        return command(*args, out_of_range=mode, **kwargs)
    return wrapped
