"""cppgraph: collaborative performance prediction for large language models.

Predicts how a model will score on a benchmark it was never run on, from the
sparse matrix of published scores and the design factors of models and tasks.
"""

import logging

__version__ = "0.2.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

from cppgraph.errors import CppGraphError, DataError, DataWarning  # noqa: E402

#: Names imported on first use, so that ``import cppgraph`` stays light.
_LAZY = {"CPPGraph": "cppgraph.estimator", "Config": "cppgraph.config",
         "CollabData": "cppgraph.data", "read_data": "cppgraph.data",
         "read_canonical": "cppgraph.data", "write_canonical": "cppgraph.data",
         "import_data": "cppgraph.data"}

__all__ = ["__version__", "CppGraphError", "DataError", "DataWarning", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cppgraph' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
