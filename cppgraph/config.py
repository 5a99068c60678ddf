"""Configuration of the cppgraph engine: one dataclass, whose fields are the keys of ``configs/*.toml``."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from cppgraph.errors import CppGraphError
from cppgraph.normalize import NORMALIZATIONS

#: The largest ``random_state`` (the fit derives further seeds from it by small offsets,
#: and numpy's global seed takes at most 2**32 - 1).
MAX_SEED = 2**31 - 1
#: From this many training cells on, the training-schedule keys set to ``"auto"`` take
#: their large-data values (:data:`AUTO_SCHEDULE`).
LARGE_DATA_CELLS = 50_000
#: The values of the training-schedule keys under ``"auto"``: (below
#: :data:`LARGE_DATA_CELLS` training cells, at or above). On large data a higher rate,
#: shorter patience and 3 folds fit about 3 times faster at nearly the same error; on
#: small data they cost accuracy. Without dropout large data fits faster again (as or
#: more accurate at 50k and 100k cells, 4% less at 1M; inner validation, ``docs/ENGINE.md``).
#: A smaller supervised share per step is faster again (1% more error on two shapes of
#: 100k cells, 16% less on a wide one); ``batch_size`` caps it from about 675,000
#: training cells on. On large data an epoch in which the training loss still falls by 2%
#: restarts the patience counts (``train_delta``): sparse and wide matrices otherwise stop
#: on a plateau of the validation loss (15% to 60% less error with it on three such
#: shapes, 1% on a dense one; 0.01 no better, and 27% slower at 1M cells); on the four
#: small real data sets 0.01 was 2% worse to 1% better, in 1.6 to 3 times the time.
AUTO_SCHEDULE = {"lr": (0.01, 0.03), "lr_patience": (8, 4), "patience": (40, 15),
                 "stop_delta": (0.0, 0.01), "predict_folds": (5, 3), "dropout": (0.1, 0.0),
                 "supervision_fraction": (0.3, 0.15), "train_delta": (1.0, 0.02)}
#: Below this density (training cells over models x tasks) ``train_delta`` under ``"auto"``
#: takes its large-data value at any size (:data:`SPARSE_KEYS`): a sparse matrix of 41,000
#: inner training cells stopped on the same plateau (39% less error with it; 11% on one of
#: 8,000, none on one of 4,000 and on the leaderboard at 4% density; ``docs/ENGINE.md``).
SPARSE_DENSITY = 0.1
SPARSE_KEYS = ("train_delta",)
#: Values of ``known_path``.
KNOWN_PATHS = ("auto", "stages", "fold-in", "both")


#: Keys that act only after the fit (on suggestions) or not on numbers (progress, where the
#: calibration fit runs): two
#: configurations that differ only in them fit the same engine.
AFTER_FIT = ("suggest_plan", "suggest_correlation", "verbose", "calibration_process")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class Config:
    """Every setting of :class:`~cppgraph.estimator.CPPGraph`.

    Attributes
    ----------
    encoder : {"lightgcn", "sage"}
        Graph encoder (:mod:`cppgraph.nn.encoders`).
    hidden : int
        Embedding size.
    num_layers : int
        Message-passing layers.
    dropout : float or "auto"
        Dropout in the encoder and the head (``"auto"``: as ``lr``).
    head_hidden : int
        Width of the scoring head's hidden layer.
    lr : float or "auto"
        Adam's learning rate. ``"auto"`` (as ``lr_patience``, ``patience``,
        ``stop_delta``, ``train_delta``, ``predict_folds``, ``dropout`` and
        ``supervision_fraction``): the first value of :data:`AUTO_SCHEDULE`
        below :data:`LARGE_DATA_CELLS` training cells, the second from there
        on (:meth:`resolved`).
    weight_decay : float
        Adam's weight decay (the ID vectors are not decayed).
    id_lr_scale : float
        The ID vectors' learning rate is ``lr`` times this.
    lr_patience : int or "auto"
        The learning rate halves after this many epochs without a lower
        validation loss (inner validation on CPP crowdsource, mean normalized
        MAE: 8 0.1000, 4 0.1031, never halving 0.1019; ``docs/ENGINE.md``).
    epochs : int
        Maximum epochs (of ``predict_folds`` steps).
    patience : int or "auto"
        Stop after this many epochs without a better validation loss (the
        best epoch's weights are kept).
    stop_delta : float or "auto"
        For ``patience``, a validation loss is better only when it is below
        ``1 - stop_delta`` times the loss of the last better epoch; 0: any fall
        counts. The kept weights are still those of the lowest loss.
    train_delta : float or "auto"
        An epoch whose training loss is below ``1 - train_delta`` times that
        of the last epoch that was restarts both ``patience`` and
        ``lr_patience`` (the network still learns, as on a plateau of the
        validation loss that it leaves later); 1: only the validation loss
        counts. ``"auto"`` takes its large-data value also on data of any
        size below :data:`SPARSE_DENSITY`.
    val_fraction : float
        Share of the training cells held out (never in the graph, never a
        target) for early stopping; at most 20,000 cells.
    supervision_fraction : float or "auto"
        Each step, this share of the usable training cells is supervised and
        removed from the message-passing graph (no target leakage) ...
    batch_size : int
        ... but at most this many cells.
    id_dropout : float
        Each step, this share of the models lose their ID vectors and all
        but 0-5 of their score edges (cold-node episodes), so that the
        network learns to embed new models from factors and known scores.
    score_floor : float
        ``lightgcn``: added to a normalized score to weigh its edge.
    normalization : str
        One of :data:`cppgraph.normalize.NORMALIZATIONS`.
    observed_regression : float, "task" or "auto"
        Training models: weight in [0, 1] of a ridge regression of each task
        on the model's most correlated known tasks, mixed into the network's
        predictions (:class:`cppgraph.stages.BenchmarkMix`); 0 turns it off;
        ``"task"`` weighs each task by the leak-free errors of the network and
        the regression on its training cells; ``"auto"`` chooses one weight on
        the validation cells.
    known_shrinkage : float
        New models and tasks: their predictions move by the mean residual of
        their known scores, shrunk by this many pseudo-residuals of 0
        (:class:`cppgraph.stages.KnownScoreCorrection`); 0 turns it off.
    known_residual_limit : float
        In that mean, each residual counts at most this much either way, on
        the normalized scale where 1 is a task's training range (``inf``: no
        limit), so that a known score far outside a narrow training range
        does not move every other prediction by as many ranges.
    known_regression : float
        New models and tasks: weight in [0, 1] of a ridge regression on their
        known scores (:class:`cppgraph.stages.KnownScoreMix`); 0 turns it off.
    known_path : str
        How a new model's (or task's) known scores move its predictions,
        beyond entering the graph as its score edges. ``"stages"``: the two
        stages above; ``"fold-in"``: its ID vector fitted to them through the
        frozen network (``fold_in_steps``), no stage; ``"both"``: fold-in,
        then the stages; ``"auto"``: for new models and new tasks apart,
        fold-in where it errs clearly less than the stages on the models
        (tasks) that the calibration fit held out, the stages otherwise
        (:func:`cppgraph.calibrate._choose_path`) and when fitted without
        intervals. ``"auto"`` costs the calibration fit one fold-in per
        known-score count where it holds out 20 or more models (tasks) at
        random: from 100 models (200 tasks) on.
    fold_in_steps : int
        Where fold-in runs (``known_path``): Adam steps that fit the new
        entities' ID vectors to their known scores through the frozen network
        (:func:`cppgraph.train.fold_in`); 0: their ID vectors stay zero.
    fold_in_penalty : float
        Weight of each fitted ID vector's squared norm against the squared
        errors of its known scores.
    task_prior : str
        Raw scale of a new task before its known scores: ``"factors"``, the
        median range of the same-unit training tasks that share the most
        categorical factor values with it; ``"unit"``, of all same-unit tasks
        (:func:`cppgraph.normalize.new_task_prior`).
    task_scale_noise : float
        How far a new task's known scores may stray from its raw scale, as a
        share of that scale, when they refit the prior offset and range
        together (:func:`cppgraph.normalize.refit_task_scale`). Larger trusts
        the prior more; 0 refits the offset alone.
    predict_folds : int or "auto"
        Folds of the training cells, and cross-fitted ID tables: a training
        cell is predicted by the table that never saw it, with its fold out
        of the graph.
    intervals : bool
        Calibrate prediction intervals at fit time: one more fit of the same
        settings without a share of the models, tasks and cells, whose
        errors on them become the intervals' conformal scores
        (:mod:`cppgraph.calibrate`). Costs about one more fit; without it
        predictions have no intervals.
    calibration_process : bool
        Run that calibration fit in a second process beside the main fit,
        each on one core, where a second core is free (Linux;
        :mod:`cppgraph.aside`) and ``n_jobs`` is 1. The numbers are the same
        either way; false keeps the whole fit in this process, one fit after
        the other.
    frontier_level : float
        A new model whose known scores (without any, its predictions) average
        at least this percentile of their tasks' training scores is a model
        above the training models: its intervals use the calibration errors
        of such models (:func:`cppgraph.calibrate.top_models`). In (0, 1];
        1 puts (almost) no model there.
    suggest_plan : str
        How :func:`cppgraph.suggest.suggest` expects a new model's predictions
        to move once the tasks it proposes are known. ``"gaussian"``: a
        Gaussian model of the known-score stages (a share of the conditional
        mean, the rest the shrunk mean residual); ``"engine"``: the fitted
        stages themselves, run on the prediction without known scores with
        each candidate task's score moved by its error scale (also where the
        new models' known scores fold in instead, ``known_path``). A
        training model always uses the conditional mean.
    suggest_correlation : str
        Which correlation of two tasks' errors on a new model
        :func:`cppgraph.suggest.suggest` assumes. ``"errors"``: that of the
        calibration fit's errors on the models it held out, predicted
        without known scores (the scores' correlation where the fit has no
        such errors); ``"scores"``: that of the training scores.
    random_state : int
        Seeds torch, numpy and every split; 0 to :data:`MAX_SEED`.
    n_jobs : int
        CPU threads of torch and the BLAS libraries while the estimator
        computes (:func:`cppgraph.threads.limit_threads`); 0 or less: one per
        core. The default, 1, stays fast on a machine shared with other work.
    verbose : bool
        ``fit`` shows a progress bar of the epochs (validation loss, ETA) and
        a summary line on stderr; no effect on the results.
    """

    encoder: str = "sage"
    hidden: int = 32
    num_layers: int = 2
    dropout: float | str = "auto"
    head_hidden: int = 64
    lr: float | str = "auto"
    weight_decay: float = 1e-4
    id_lr_scale: float = 1.0
    lr_patience: int | str = "auto"
    epochs: int = 300
    patience: int | str = "auto"
    stop_delta: float | str = "auto"
    train_delta: float | str = "auto"
    val_fraction: float = 0.1
    supervision_fraction: float | str = "auto"
    batch_size: int = 65536
    id_dropout: float = 0.2
    score_floor: float = 0.1
    normalization: str = "minmax"
    observed_regression: float | str = "task"
    known_shrinkage: float = 2.0
    known_residual_limit: float = 1.0
    known_regression: float = 0.25
    known_path: str = "stages"
    fold_in_steps: int = 100
    fold_in_penalty: float = 0.01
    task_prior: str = "factors"
    task_scale_noise: float = 0.4
    predict_folds: int | str = "auto"
    intervals: bool = True
    calibration_process: bool = True
    frontier_level: float = 0.9
    suggest_plan: str = "engine"
    suggest_correlation: str = "errors"
    random_state: int = 0
    n_jobs: int = 1
    verbose: bool = False

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raise :class:`CppGraphError` naming the first invalid setting. An ``"auto"``
        schedule key is checked as the values it resolves to (either is valid)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update({name: choices[0] for name, choices in AUTO_SCHEDULE.items()
                       if values[name] == "auto"})

        def need(ok, name, expected):
            if not ok(values[name]):
                auto = ' or "auto"' if name in AUTO_SCHEDULE else ""
                raise CppGraphError(f"config {name} must be {expected}{auto}; "
                                    f"got {getattr(self, name)!r}")

        need(lambda v: v in ("lightgcn", "sage"), "encoder", "'lightgcn' or 'sage'")
        need(lambda v: _number(v) and 0 <= v <= 1, "known_regression", "in [0, 1]")
        need(lambda v: v in ("auto", "task") or (_number(v) and 0 <= v <= 1),
             "observed_regression", "'auto', 'task' or in [0, 1]")
        need(lambda v: v in ("factors", "unit"), "task_prior", "'factors' or 'unit'")
        need(lambda v: v in KNOWN_PATHS, "known_path", f"one of {list(KNOWN_PATHS)}")
        need(lambda v: v in ("gaussian", "engine"), "suggest_plan", "'gaussian' or 'engine'")
        need(lambda v: v in ("errors", "scores"), "suggest_correlation", "'errors' or 'scores'")
        need(lambda v: v in NORMALIZATIONS, "normalization", f"one of {list(NORMALIZATIONS)}")
        for name, most in (("hidden", 4096), ("num_layers", 16), ("head_hidden", 4096),
                           ("epochs", 1_000_000), ("patience", 1_000_000),
                           ("lr_patience", 1_000_000), ("batch_size", 10**9),
                           ("predict_folds", 100)):
            need(lambda v: _integer(v) and v >= 1, name, "a positive integer")
            need(lambda v, most=most: v <= most, name, f"at most {most}")
        need(lambda v: v >= 2, "predict_folds", "at least 2")
        for name in ("dropout", "val_fraction", "supervision_fraction", "id_dropout", "stop_delta"):
            need(lambda v: _number(v) and 0 <= v < 1, name, "in [0, 1)")
        need(lambda v: v > 0, "supervision_fraction", "above 0")
        need(lambda v: _number(v) and 0 < v <= 1, "train_delta", "in (0, 1]")
        for name, what in (("lr", ""), ("weight_decay", ""), ("score_floor", ""),
                           ("known_shrinkage", " (0: off)"), ("fold_in_penalty", ""),
                           ("known_residual_limit", " (inf: no limit)"),
                           ("task_scale_noise", "")):
            need(lambda v: _number(v) and v >= 0, name, "a non-negative number" + what)
        need(lambda v: _number(v) and 0 < v <= 1000, "id_lr_scale", "a number in (0, 1000]")
        need(lambda v: _integer(v) and 0 <= v <= 10_000, "fold_in_steps",
             "an integer in [0, 10000]")
        need(lambda v: _number(v) and 0 < v <= 1, "frontier_level", "in (0, 1]")
        need(lambda v: _integer(v) and 0 <= v <= MAX_SEED, "random_state",
             f"an integer in [0, {MAX_SEED}]")
        need(_integer, "n_jobs", "an integer (0 or less: one thread per core)")
        for name in ("verbose", "intervals", "calibration_process"):
            need(lambda v: isinstance(v, bool), name, "true or false")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def resolved(self, cells: int, density: float = 1.0) -> "Config":
        """A copy whose ``"auto"`` training-schedule keys hold their values for data of
        ``cells`` training cells at ``density`` (:data:`AUTO_SCHEDULE`,
        :data:`SPARSE_DENSITY`); the other keys as they are."""
        large = cells >= LARGE_DATA_CELLS
        sparse = density < SPARSE_DENSITY
        return self.replace(**{name: values[large or (sparse and name in SPARSE_KEYS)]
                               for name, values in AUTO_SCHEDULE.items()
                               if getattr(self, name) == "auto"})

    def replace(self, **changes) -> "Config":
        """A copy with ``changes``; an unknown key is an error listing the known ones."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise CppGraphError(f"unknown setting(s) {unknown}; known: {sorted(known)}")
        return dataclasses.replace(self, **changes) if changes else self

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
