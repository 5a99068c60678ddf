"""Configuration of the cppgraph engine: one dataclass, whose fields are the keys of ``configs/*.toml``."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from cppgraph.errors import CppGraphError
from cppgraph.normalize import NORMALIZATIONS


@dataclass
class Config:
    """Every setting of :class:`~cppgraph.estimator.CPPGraph`.

    Attributes
    ----------
    encoder : {"lightgcn", "sage"}
        Graph encoder.
    hidden : int
        Embedding size.
    num_layers : int
        Message-passing layers.
    dropout : float
        Dropout in the encoder and the head.
    head_hidden : int
        Width of the scoring head's hidden layer.
    lr, weight_decay : float
        Adam settings.
    epochs, patience : int
        Maximum epochs; stop after ``patience`` epochs without a better
        validation loss (the best epoch's weights are kept).
    val_fraction : float
        Share of the training cells held out (never in the graph during
        training) for early stopping.
    supervision_fraction : float
        Each epoch, this share of the remaining training cells is supervised
        and removed from the message-passing graph (no target leakage).
    score_levels : int
        ``sage``: number of rating-level relations (score quantile bins).
    score_floor : float
        ``lightgcn``: added to a normalized score to weigh its edge.
    normalization : str
        One of :data:`cppgraph.normalize.NORMALIZATIONS`.
    correct_known : bool
        Cold start: move a new model's (or task's) predictions by the
        shrunk mean residual of its known scores
        (:func:`cppgraph.train.residual_correction`, equal weights).
    known_shrinkage : float
        The shrinkage of that correction: pseudo-scores of residual 0 added
        to the known ones (positive).
    correct_observed : bool
        Training models: move each prediction by the shrunk mean residual of
        the model's other training scores, each weighted by the similarity of
        its task to the predicted one (:func:`cppgraph.train.residual_similarity`
        of the training residuals). Every residual is measured with its own
        cell, and the predicted cell, out of the graph.
    observed_shrinkage : float
        The shrinkage of that correction (positive).
    observed_regression : float or "auto"
        Training models: weight in [0, 1] of a ridge regression of each task
        on the model's most correlated known tasks
        (:func:`cppgraph.train.benchmark_regression`, in logit space on the
        bounded scales), mixed into the corrected predictions (in logit space
        there too); a cell in fold ``f`` is regressed with fold ``f`` out.
        0 turns it off; ``"auto"`` chooses the weight on the validation cells
        of training (``CPPGraph.observed_weight_``), which favours the network,
        early-stopped on those very cells.
    known_regression : float
        Cold start of new models: weight in [0, 1] of a ridge regression of
        each task on the model's known tasks (over the training models,
        :func:`cppgraph.train.known_score_regression`), mixed into the
        corrected predictions (both in logit space on the bounded scales);
        new tasks likewise, transposed; 0 turns it off.
    task_prior : str
        Raw scale of a new task before its known scores: ``"factors"``, the
        median range of the same-unit training tasks that share the most
        categorical factor values with it; ``"unit"``, of all same-unit tasks
        (:func:`cppgraph.normalize.new_task_prior`).
    task_scale_noise : float
        How far a new task's known scores may stray from its raw scale, as a
        share of that scale, when they refit the prior offset and range
        together (:func:`cppgraph.normalize.refit_task_scale`, a Bayesian
        linear regression whose prior spread is that of the same-unit training
        tasks). Larger trusts the prior more; 0 refits the offset alone, to
        the mean residual of the known scores.
    predict_folds : int
        Observed cells are predicted in this many folds, each with its own
        cells removed from the graph.
    random_state : int
        Seeds torch, numpy and every split.
    n_jobs : int
        CPU threads of torch and the BLAS libraries while the estimator
        computes (:func:`cppgraph.threads.limit_threads`); 0 or less: one per
        core. The default, 1, stays fast on a machine shared with other work.
    """

    encoder: str = "sage"
    hidden: int = 32
    num_layers: int = 2
    dropout: float = 0.1
    head_hidden: int = 64
    lr: float = 0.01
    weight_decay: float = 1e-4
    epochs: int = 300
    patience: int = 40
    val_fraction: float = 0.1
    supervision_fraction: float = 0.3
    score_levels: int = 4
    score_floor: float = 0.1
    normalization: str = "minmax"
    correct_known: bool = True
    known_shrinkage: float = 2.0
    correct_observed: bool = True
    observed_shrinkage: float = 0.5
    observed_regression: float | str = 0.25
    known_regression: float = 0.5
    task_prior: str = "factors"
    task_scale_noise: float = 0.4
    predict_folds: int = 5
    random_state: int = 0
    n_jobs: int = 1

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raise :class:`CppGraphError` naming the first invalid setting."""
        def need(ok, name, expected):
            if not ok:
                raise CppGraphError(f"config {name} must be {expected}; got {getattr(self, name)!r}")
        need(self.encoder in ("lightgcn", "sage"), "encoder", "'lightgcn' or 'sage'")
        need(isinstance(self.known_regression, (int, float)) and 0 <= self.known_regression <= 1,
             "known_regression", "in [0, 1]")
        need(self.observed_regression == "auto" or (
            isinstance(self.observed_regression, (int, float))
            and not isinstance(self.observed_regression, bool)
            and 0 <= self.observed_regression <= 1), "observed_regression", "'auto' or in [0, 1]")
        need(self.task_prior in ("factors", "unit"), "task_prior", "'factors' or 'unit'")
        need(self.normalization in NORMALIZATIONS, "normalization", f"one of {list(NORMALIZATIONS)}")
        for name in ("hidden", "num_layers", "head_hidden", "epochs", "patience", "score_levels",
                     "predict_folds"):
            need(isinstance(getattr(self, name), int) and getattr(self, name) >= 1, name,
                 "a positive integer")
        need(self.predict_folds >= 2, "predict_folds", "at least 2")
        for name in ("dropout", "val_fraction", "supervision_fraction"):
            need(isinstance(getattr(self, name), (int, float)) and 0 <= getattr(self, name) < 1,
                 name, "in [0, 1)")
        need(0 < self.supervision_fraction, "supervision_fraction", "above 0")
        for name in ("lr", "weight_decay", "score_floor"):
            need(isinstance(getattr(self, name), (int, float)) and getattr(self, name) >= 0, name,
                 "a non-negative number")
        need(isinstance(self.random_state, int), "random_state", "an integer")
        need(isinstance(self.n_jobs, int) and not isinstance(self.n_jobs, bool), "n_jobs",
             "an integer (0 or less: one thread per core)")
        need(isinstance(self.correct_known, bool), "correct_known", "true or false")
        need(isinstance(self.correct_observed, bool), "correct_observed", "true or false")
        need(isinstance(self.task_scale_noise, (int, float)) and not isinstance(
            self.task_scale_noise, bool) and self.task_scale_noise >= 0, "task_scale_noise",
            "a non-negative number")
        for name in ("known_shrinkage", "observed_shrinkage"):
            need(isinstance(getattr(self, name), (int, float)) and getattr(self, name) > 0, name,
                 "a positive number")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict, *, source: str = "config") -> "Config":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise CppGraphError(f"{source}: unknown key(s) {unknown}; known keys: {sorted(known)}")
        return cls(**values)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "Config":
        """Read a TOML file whose keys are this class's fields (all optional)."""
        path = Path(path)
        try:
            values = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CppGraphError(f"{path}: config file not found") from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
            raise CppGraphError(f"{path}: cannot read as TOML: {err}") from err
        return cls.from_dict(values, source=str(path))
