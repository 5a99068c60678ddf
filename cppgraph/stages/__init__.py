"""Post-hoc stages: steps that adjust the network's normalized predictions.

Each stage is fitted on the training scores and the network's leak-free
predictions of them (:class:`~cppgraph.stages.base.TrainingScores`), then
applied to new predictions. In-matrix cells and new models or tasks have a
stage each:

* :class:`~cppgraph.stages.benchmark.BenchmarkMix` (``observed_regression``):
  a training model's prediction mixed with a ridge regression of the task on
  the model's most correlated known tasks;
* :class:`~cppgraph.stages.correction.KnownScoreCorrection`
  (``known_shrinkage``, ``known_residual_limit``): a new model's (or task's)
  predictions moved by the shrunk mean residual of its known scores, each
  residual limited to a training range;
* :class:`~cppgraph.stages.known.KnownScoreMix` (``known_regression``): then
  mixed with a ridge regression on its known scores.
"""

from cppgraph.stages.base import TrainingScores, blend
from cppgraph.stages.benchmark import BenchmarkMix
from cppgraph.stages.correction import KnownScoreCorrection
from cppgraph.stages.known import KnownScoreMix

__all__ = ["BenchmarkMix", "KnownScoreCorrection", "KnownScoreMix", "TrainingScores", "blend"]
