"""Evaluation: protocols (seeded splits), metrics, baseline methods and the runner."""

from cppgraph.evaluate.metrics import METRICS, all_metrics, error_metrics
from cppgraph.evaluate.splits import PROTOCOLS, Split, make_split, split_random

__all__ = ["METRICS", "PROTOCOLS", "Split", "all_metrics", "error_metrics", "make_split",
           "split_random"]
