"""Exceptions and warnings raised by cppgraph.

Every error a user can cause derives from :class:`CppGraphError`; the CLI turns
these into a one-line message and exit code 1.
"""

from __future__ import annotations

import os


class CppGraphError(Exception):
    """Base class of the errors a user can cause (bad input, bad options)."""


class DataError(CppGraphError, ValueError):
    """A data file is unreadable or its content is invalid.

    Parameters
    ----------
    message : str
        What is wrong and what was expected.
    file : str or path-like, optional
        The file concerned.
    line : int, optional
        1-based line number in the file (the header is line 1).
    column : str, optional
        The column (or wide-file row/column label) concerned.
    value : object, optional
        The offending value.
    """

    def __init__(self, message, *, file=None, line=None, column=None, value=None):
        self.message = message
        self.file = os.fspath(file) if file is not None else None
        self.line = line
        self.column = column
        self.value = value
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.file is not None:
            where.append(self.file)
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.column is not None:
            where.append(f"column {str(self.column)!r}")  # a plain str, not numpy's repr
        prefix = ", ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message


class DataWarning(UserWarning):
    """Something in the data looks wrong but does not stop the work."""
