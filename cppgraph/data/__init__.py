"""Data layer: the canonical collaborative data set, its readers and writer."""

from cppgraph.data.canonical import read_canonical, write_canonical
from cppgraph.data.dataset import METRIC_TYPES, CollabData
from cppgraph.data import tables
from cppgraph.data.readers import (
    FORMATS,
    as_data,
    import_data,
    read_cpp_llm,
    read_data,
    read_helm,
    read_obsscaling,
    read_open_llm_leaderboard,
)

__all__ = [
    "CollabData",
    "METRIC_TYPES",
    "FORMATS",
    "read_data",
    "as_data",
    "import_data",
    "read_canonical",
    "write_canonical",
    "read_cpp_llm",
    "read_helm",
    "read_obsscaling",
    "read_open_llm_leaderboard",
]
