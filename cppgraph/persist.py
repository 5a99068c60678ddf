"""Saving and loading fitted models: a folder of weights, JSON metadata, log and data.

Weights load with ``torch.load(..., weights_only=True)`` (no pickle); the
weights file also holds the training folds and the calibration's task error
correlation (a matrix of tasks by tasks: binary, not JSON); the metadata is
plain JSON. A folder written by another format version is
refused with a message that names both versions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cppgraph import __version__
from cppgraph.calibrate import Calibration
from cppgraph.coldstart import known_path
from cppgraph.config import AUTO_SCHEDULE, Config
from cppgraph.data.canonical import (OUTPUT_FILES, SCORES_FILE, atomic_folder, read_canonical,
                                     write_canonical)
from cppgraph.errors import CppGraphError
from cppgraph.graph import FactorEncoder
from cppgraph.normalize import Normalizer
from cppgraph.train import Folds

WEIGHTS_FILE = "weights.pt"
META_FILE = "model.json"
LOG_FILE = "training_log.csv"
DATA_DIR = "data"
#: 2: ID-vector network with cross-fitted tables (cppgraph 0.2).
FORMAT_VERSION = 2


def fingerprint(folder: Path) -> str:
    """SHA-256 (first 16 hex digits) of every file of a canonical data folder: scores,
    tasks, factors and metadata, each by name and bytes."""
    h = hashlib.sha256()
    for name in sorted(OUTPUT_FILES["data"]):
        path = folder / name
        if path.is_file():
            h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _finite(name: str, values, folder: Path, *, low=-np.inf, high=np.inf) -> None:
    """Every value of ``values`` finite and within [low, high], or an error naming it."""
    arr = np.asarray(values, dtype=np.float64)
    if not (np.isfinite(arr).all() and (arr >= low).all() and (arr <= high).all()):
        raise CppGraphError(f"{folder / META_FILE}: {name} must be finite numbers in "
                            f"[{low}, {high}]; the model folder is corrupted")


def _config_to_json(config: dict) -> dict:
    """Settings as strict JSON holds them: an infinite number (``known_residual_limit =
    inf``) as the text ``"inf"``, which JSON has no number for."""
    return {k: str(v) if isinstance(v, float) and math.isinf(v) else v for k, v in config.items()}


def _config_from_json(config: dict) -> dict:
    """:func:`_config_to_json` undone (a folder saved before wrote ``Infinity``, which
    Python's reader takes as the number)."""
    numbers = {f.name for f in dataclasses.fields(Config) if f.type == "float"}
    return {k: float(v) if k in numbers and v in ("inf", "-inf") else v
            for k, v in dict(config).items()}


def save(est, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``est`` (fitted) to the folder ``path`` atomically."""
    meta = {
        "format_version": FORMAT_VERSION,
        "cppgraph_version": __version__,
        "torch_version": torch.__version__,
        "config": _config_to_json(est.config.to_dict()),
        "schedule": {name: getattr(est.fit_config_, name) for name in AUTO_SCHEDULE},
        "models": est.data_.models,
        "tasks": est.data_.tasks,
        "normalizer": est.normalizer_.to_dict(),
        "factors": est.factors_.to_dict(),
        "data_name": est.data_.meta.get("name", ""),
        "synthetic": bool(est.data_.meta.get("synthetic", False)),
        "best_epoch": est.best_epoch_,
        "fit_seconds": est.fit_seconds_,
        "val_mae": est.val_mae_,
        "observed_weight": est.observed_stage_.weight_,
        "observed_task_weights": est.observed_stage_.state()["task_weights"],
        "calibration": None if est.calibration_ is None else est.calibration_.to_dict(),
    }
    state = {"network": est.network_.state_dict(), "folds": est.folds_.fold}
    if est.calibration_ is not None and est.calibration_.error_corr is not None:
        state["error_corr"] = torch.from_numpy(est.calibration_.error_corr)
    with atomic_folder(path, overwrite=overwrite, kind="model") as tmp:
        torch.save(state, tmp / WEIGHTS_FILE)
        pd.DataFrame(est.log_).to_csv(tmp / LOG_FILE, index=False)
        write_canonical(est.data_, tmp / DATA_DIR)
        meta["data_fingerprint"] = fingerprint(tmp / DATA_DIR)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return Path(path)


def load(cls, folder: Path, *, n_jobs: int | None = None):
    """Load a folder written by :func:`save` as an instance of ``cls``."""
    if not folder.is_dir():
        raise CppGraphError(f"{folder}: model folder not found")
    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CppGraphError(f"{folder}: not a cppgraph model folder (no {META_FILE})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CppGraphError(f"{folder / META_FILE}: corrupted model metadata: {err}") from err
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        version = meta.get("format_version") if isinstance(meta, dict) else None
        written = meta.get("cppgraph_version", "an unknown version") if isinstance(meta, dict) else "?"
        raise CppGraphError(f"{folder}: model format {version!r} (written by cppgraph {written}) "
                            f"is not supported by cppgraph {__version__} (format "
                            f"{FORMAT_VERSION}); refit the model with this version")
    try:
        config = _config_from_json(meta["config"])
        config.setdefault("stop_delta", 0.0)  # a folder from before the key stopped as 0 does
        config.setdefault("train_delta", 1.0)  # and by the validation loss alone
        config.setdefault("known_residual_limit", float("inf"))  # and counted residuals in full
        # and ran fold-in (before the stages) only where it had steps
        config.setdefault("known_path", "both" if config.get("fold_in_steps") else "stages")
        if n_jobs is not None:
            config["n_jobs"] = n_jobs
        est = cls(Config.from_dict(config, source=str(folder / META_FILE)))
        schedule = meta.get("schedule") or {}
        unknown = sorted(set(schedule) - set(AUTO_SCHEDULE))
        if unknown:
            raise CppGraphError(f"{folder / META_FILE}: unknown schedule key(s) {unknown}; "
                                "the model folder is corrupted")
        if not (folder / DATA_DIR / SCORES_FILE).is_file():
            raise CppGraphError(f"{folder / DATA_DIR / SCORES_FILE}: the training data is "
                                "missing; the model folder is incomplete")
        if fingerprint(folder / DATA_DIR) != meta["data_fingerprint"]:
            raise CppGraphError(f"{folder / DATA_DIR}: training data was modified after saving")
        data = read_canonical(folder / DATA_DIR, out_of_range=None)  # checked at fit
        est.data_ = data
        # the values the fit ran with (a folder without them ran with concrete ones)
        est.fit_config_ = est.config.replace(**schedule).resolved(len(data.scores),
                                                                  data.density)
        norm = meta["normalizer"]
        for key in ("shift", "scale", "sign"):
            if len(norm[key]) != len(norm["keys"]):
                raise CppGraphError(f"{folder / META_FILE}: normalizer {key} has "
                                    f"{len(norm[key])} values for {len(norm['keys'])} tasks; "
                                    "the model folder is corrupted")
        _finite("normalizer shift", norm["shift"], folder)
        _finite("normalizer scale", norm["scale"], folder, low=1e-300)
        _finite("observed_weight", [meta["observed_weight"]], folder, low=0.0, high=1.0)
        est.normalizer_ = Normalizer.from_dict(norm)
        est.factors_ = FactorEncoder.from_dict(meta["factors"])
        est._prepare()
        est.network_ = est._new_network()
        try:
            state = torch.load(folder / WEIGHTS_FILE, weights_only=True)
        except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as err:
            why = str(err) or f"{type(err).__name__} (is the file empty or cut short?)"
            raise CppGraphError(f"{folder / WEIGHTS_FILE}: cannot read the weights: {why}") from err
        bad = [k for k, v in state["network"].items() if not torch.isfinite(v).all()]
        if bad:
            raise CppGraphError(f"{folder / WEIGHTS_FILE}: non-finite weights in {bad[:3]}; "
                                "the model folder is corrupted")
        est.network_.load_state_dict(state["network"])
        est.network_.eval()
        fold = state["folds"]
        if fold.shape != (len(data.scores),) or fold.min() < 0 or fold.max() > est.fit_config_.predict_folds:
            raise CppGraphError(f"{folder / WEIGHTS_FILE}: the folds do not match the training data")
        est.folds_ = Folds(fold.long(), est.fit_config_.predict_folds)
        observed = None  # a folder saved without the mix's task weights fits it again
        if "observed_task_weights" in meta:
            weights = meta["observed_task_weights"]
            if weights is not None:
                if len(weights) != len(data.tasks):
                    raise CppGraphError(f"{folder / META_FILE}: {len(weights)} observed task "
                                        f"weights for {len(data.tasks)} tasks; the model "
                                        "folder is corrupted")
                _finite("observed_task_weights", weights, folder, low=0.0, high=1.0)
            observed = {"weight": meta["observed_weight"], "task_weights": weights}
        est._fit_stages(observed)
        cal = meta.get("calibration")
        est.calibration_ = None if cal is None else Calibration.from_dict(cal)
        if cal is not None and len(est.calibration_.scale) != len(data.tasks):
            raise CppGraphError(f"{folder / META_FILE}: the calibration has "
                                f"{len(est.calibration_.scale)} task scales for "
                                f"{len(data.tasks)} tasks; the model folder is corrupted")
        if cal is not None and "error_corr" in state:  # absent from older folders
            corr = state["error_corr"].double().numpy()
            n = len(data.tasks)
            if corr.shape != (n, n) or not np.isfinite(corr).all():
                raise CppGraphError(f"{folder / WEIGHTS_FILE}: the task error correlation is "
                                    f"not a {n} x {n} matrix of finite numbers; the model "
                                    "folder is corrupted")
            est.calibration_.error_corr = corr
    except CppGraphError:
        raise
    except (KeyError, TypeError, RuntimeError, OSError, ValueError, AttributeError, EOFError,
            pickle.UnpicklingError) as err:
        raise CppGraphError(f"{folder}: corrupted or incompatible model folder: {err}") from err
    log = folder / LOG_FILE
    try:
        est.log_ = pd.read_csv(log).to_dict("records") if log.is_file() else []
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise CppGraphError(f"{log}: cannot read the training log: {err}") from err
    est.best_epoch_ = meta.get("best_epoch")
    est.fit_seconds_ = meta.get("fit_seconds")
    est.val_mae_ = meta.get("val_mae")
    return est


def card(cls, folder: Path, *, n_jobs: int | None = None) -> dict:
    """A model folder's card: versions, training data, fit and configuration (the
    folder is loaded, and so checked, first)."""
    est = load(cls, folder, n_jobs=n_jobs)
    meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    data = est.data_
    return {
        "model_dir": str(folder),
        "saved_by": {"cppgraph": meta.get("cppgraph_version"), "torch": meta.get("torch_version"),
                     "format": meta.get("format_version")},
        "data": {"name": data.meta.get("name", ""), "synthetic": bool(data.meta.get("synthetic")),
                 "fingerprint": meta.get("data_fingerprint"), "models": len(data.models),
                 "tasks": len(data.tasks), "observed": data.n_observed,
                 "density": round(data.density, 4)},
        "fit": {"seconds": est.fit_seconds_, "epochs": len(est.log_),
                "best_epoch": est.best_epoch_,
                "validation_mae_normalized": (est.val_mae_ or {}).get("normalized"),
                "validation_mae_raw": (est.val_mae_ or {}).get("raw"),
                "validation_cells": (est.val_mae_ or {}).get("cells"),
                "benchmark_regression_weight": est.observed_stage_.weight_,
                "known_path": {kind: known_path(est, kind) for kind in ("model", "task")}},
        "config": _config_to_json(est.config.to_dict()),
        "schedule": {name: getattr(est.fit_config_, name) for name in AUTO_SCHEDULE},
    }
