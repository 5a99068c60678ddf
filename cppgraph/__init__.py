"""cppgraph: collaborative performance prediction for large language models.

Predicts how a model will score on a benchmark it was never run on, from the
sparse matrix of published scores and the design factors of models and tasks.
"""

import logging

__version__ = "0.2.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

from cppgraph.errors import CppGraphError, DataError, DataWarning  # noqa: E402

__all__ = ["__version__", "CppGraphError", "DataError", "DataWarning"]
