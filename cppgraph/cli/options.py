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
