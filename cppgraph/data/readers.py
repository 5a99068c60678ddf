"""Readers of public score matrices into the canonical :class:`CollabData`.

One public function per format; :data:`FORMATS` maps the CLI's format names to
them, in the documented order. Each reader names the file, line and column of
any bad cell.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from cppgraph.data.canonical import (
    check_output_folder,
    read_canonical,
    read_csv_lines,
    read_csv_strings,
    write_canonical,
)
from cppgraph.data.dataset import METRIC_TYPES, CollabData, parse_numbers
from cppgraph.data.tables import read_long, read_wide
from cppgraph.errors import CppGraphError, DataError, DataWarning

logger = logging.getLogger(__name__)

# Known benchmarks: factors stated by the benchmark or leaderboard documentation.
# A factor left out is unknown here (gaps are allowed).
_BENCHMARKS = {
    # observational-scaling base/instruct files
    "MMLU": {"ability": "knowledge", "task_family": "mmlu", "output_format": "4 choice"},
    "ARC-C": {"ability": "reasoning", "task_family": "arc", "output_format": "4 choice"},
    "HellaSwag": {"ability": "commonsense", "task_family": "hellaswag", "output_format": "4 choice"},
    "Winograd": {"ability": "commonsense", "task_family": "winogrande", "output_format": "binary choice"},
    "Winogrande": {"ability": "commonsense", "task_family": "winogrande", "output_format": "binary choice"},
    "XWinograd": {"ability": "commonsense", "task_family": "winogrande", "output_format": "binary choice"},
    "TruthfulQA": {"ability": "truthfulness", "task_family": "truthfulqa", "output_format": "multiple choice"},
    "GSM8K": {"ability": "math", "task_family": "gsm8k", "output_format": "free-form"},
    "HumanEval": {"ability": "programming", "task_family": "humaneval", "output_format": "free-form"},
    "Arena-Elo": {"ability": "chat", "task_family": "chatbot-arena", "output_format": "free-form"},
    "MTBench": {"ability": "chat", "task_family": "mt-bench", "output_format": "free-form"},
    # Open LLM Leaderboard v2 (few-shot counts as documented by the leaderboard)
    "IFEval": {"ability": "instruction following", "task_family": "ifeval",
               "output_format": "free-form", "few_shot": "0"},
    "BBH": {"ability": "reasoning", "task_family": "big-bench", "output_format": "multiple choice",
            "few_shot": "3"},
    "MATH Lvl 5": {"ability": "math", "task_family": "math", "output_format": "free-form",
                   "few_shot": "4"},
    "GPQA": {"ability": "knowledge", "task_family": "gpqa", "output_format": "4 choice",
             "few_shot": "0"},
    "MuSR": {"ability": "reasoning", "task_family": "musr", "output_format": "multiple choice",
             "few_shot": "0"},
    "MMLU-Pro": {"ability": "knowledge", "task_family": "mmlu", "output_format": "10 choice",
                 "few_shot": "5"},
}
_OBS_LEADERBOARD_TASKS = {"leaderboard_bbh": "BBH", "leaderboard_gpqa": "GPQA",
                          "leaderboard_ifeval": "IFEval", "leaderboard_math_hard": "MATH Lvl 5",
                          "leaderboard_mmlu_pro": "MMLU-Pro", "leaderboard_musr": "MuSR"}
_TASK_FACTOR_KINDS = {"ability": "categorical", "task_family": "categorical",
                      "output_format": "categorical", "few_shot": "categorical"}


def _task_factor_table(tasks, names=None) -> pd.DataFrame:
    rows = []
    for task in tasks:
        known = _BENCHMARKS.get((names or {}).get(task, task), {})
        rows.append({"task": task, **known})
    frame = pd.DataFrame(rows, columns=["task", "ability", "task_family", "output_format",
                                        "few_shot"])
    return frame.dropna(axis=1, how="all")


def _wide_to_long(values: pd.DataFrame, *, file, rows: str, first_line: int = 2) -> pd.DataFrame:
    """Melt a wide matrix of raw cells to (model, task, score), parsing every cell.

    ``rows`` says what the wide file's rows are (``"model"`` or ``"task"``).
    Errors name the line of the cell's row and its column header.
    """
    row_names = list(values.index)
    col_names = list(values.columns)
    cells = values.to_numpy(dtype=object)
    r, c = np.divmod(np.arange(cells.size), cells.shape[1])  # row-major cell coordinates
    flat = pd.Series(cells[r, c])
    parsed = parse_numbers(flat, file=file, lines=r + first_line,
                           labels=[col_names[j] for j in c], what="a number (a score)")
    keep = ~np.isnan(parsed)
    row_lab = np.array(row_names, dtype=object)[r[keep]]
    col_lab = np.array(col_names, dtype=object)[c[keep]]
    model, task = (row_lab, col_lab) if rows == "model" else (col_lab, row_lab)
    return pd.DataFrame({"model": model, "task": task, "score": parsed[keep]})


def _check_unique(names, *, file, what):
    seen = {}
    for i, name in enumerate(names):
        if name in seen:
            raise DataError(f"{what} {name!r} appears twice (positions {seen[name] + 1} and {i + 1})",
                            file=file, value=name)
        seen[name] = i


def _require(frame: pd.DataFrame, columns, file):
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"missing column(s) {missing}", file=file)


# ----------------------------------------------------------------- cpp-llm
_CPP_MODEL_FACTORS = {
    # source column -> (canonical name, kind, scale)
    "family": ("family", "categorical", None),
    "Finetuning": ("finetuned", "categorical", None),
    "Parameter Size(M)": ("params_b", "numeric", 1e-3),
    "Pretraining Dataset Size(B)": ("tokens_b", "numeric", None),
    "GPUh": ("gpu_hours", "numeric", None),
    "FLOPs": ("flops", "numeric", None),
    "Context window": ("context_window", "numeric", None),
    "batch size(M)": ("batch_size_m", "numeric", None),
    "Layers": ("layers", "numeric", None),
    "Number Heads": ("heads", "numeric", None),
    "Key/Value Size": ("kv_size", "numeric", None),
    "bottleneck activation size": ("bottleneck_size", "numeric", None),
    "Carbon Emission (tCO2Eq)": ("carbon_tco2eq", "numeric", None),
}
_CPP_TASK_FACTORS = {"ability": "ability", "family": "task_family", "output": "output_format",
                     "few-shot": "few_shot"}


def read_cpp_llm(source: str | os.PathLike, *, out_of_range: str = "error") -> CollabData:
    """Read the CPP paper's collaborative data (``crowdsource_performance.csv`` and friends).

    Parameters
    ----------
    source : folder
        Holding ``crowdsource_performance.csv`` (wide: models x tasks, percent
        scores), ``model_feature.csv`` (same models in the same row order; a few
        names differ, e.g. ``Luminous Base`` vs ``Luminous Base-13B``: rows are
        matched by position and the score matrix's names are kept) and
        ``benchmark_feature.csv`` (transposed task factors). The factor files
        are optional.

    Notes
    -----
    Factors are renamed to canonical names (``params_b`` in billions,
    ``tokens_b``, ``family``, ``finetuned``, ...); values are otherwise kept as
    published (the source's quirks, such as FLOPs in mixed units, remain).
    """
    folder = Path(source)
    if not folder.is_dir():
        raise DataError("expected the folder holding crowdsource_performance.csv "
                        "(and model_feature.csv, benchmark_feature.csv)", file=folder)
    spath = folder / "crowdsource_performance.csv"
    wide = read_csv_strings(spath)
    first = wide.columns[0]
    wide = wide.rename(columns={first: "model"})
    wide.columns = [str(c).strip() for c in wide.columns]
    models = wide["model"].fillna("").astype(str).str.strip()
    for i, name in enumerate(models):
        if not name:
            raise DataError("empty model name", file=spath, line=i + 2, column="model")
    _check_unique(list(models), file=spath, what="model")
    _check_unique(list(wide.columns), file=spath, what="task")
    tasks = [c for c in wide.columns if c != "model"]
    values = wide[tasks].set_axis(list(models), axis=0)
    scores = _wide_to_long(values, file=spath, rows="model")
    task_info = pd.DataFrame({"task": tasks, "higher_is_better": True, "min_score": 0.0,
                              "max_score": 100.0, "unit": "%", "metric_type": "accuracy"})
    files = {"scores": str(spath)}

    model_factors, kinds_m = None, {}
    mpath = folder / "model_feature.csv"
    if mpath.is_file():
        feats = read_csv_strings(mpath)
        _require(feats, ["Model Name"], mpath)
        if len(feats) != len(models):
            raise DataError(f"{len(feats)} model rows, but crowdsource_performance.csv has "
                            f"{len(models)}; the two files must list the same models in the same "
                            "order", file=mpath)
        fnames = feats["Model Name"].fillna("").astype(str).str.strip()
        renamed = []
        for i, (fname, sname) in enumerate(zip(fnames, models)):
            if fname != sname:
                if not (sname.startswith(fname) or fname.startswith(sname)):
                    raise DataError(f"row {i + 1} is model {fname!r} but row {i + 1} of "
                                    f"crowdsource_performance.csv is {sname!r}; the files must "
                                    "list the same models in the same order", file=mpath,
                                    line=i + 2, column="Model Name", value=fname)
                renamed.append(f"{fname!r} -> {sname!r}")
        if renamed:
            logger.info("%s: matched by position: %s", mpath, ", ".join(renamed))
        model_factors = pd.DataFrame({"model": list(models)})
        for col, (name, kind, scale) in _CPP_MODEL_FACTORS.items():
            if col not in feats.columns:
                continue
            if kind == "numeric":
                v = parse_numbers(feats[col], file=mpath, column=col,
                                  lines=np.arange(2, len(feats) + 2))
                model_factors[name] = v * scale if scale else v
            else:
                model_factors[name] = feats[col].str.strip().str.lower() if name == "finetuned" \
                    else feats[col].str.strip()
            kinds_m[name] = kind
        files["model_factors"] = str(mpath)

    task_factors, kinds_t = None, {}
    bpath = folder / "benchmark_feature.csv"
    if bpath.is_file():
        bench = read_csv_strings(bpath)
        bench = bench.set_index(bench.columns[0])
        bench.columns = [str(c).strip() for c in bench.columns]
        bench.index = [str(i).strip() for i in bench.index]
        unknown = [t for t in bench.columns if t not in set(tasks)]
        if unknown:
            raise DataError(f"task column(s) {unknown} are not tasks of "
                            "crowdsource_performance.csv", file=bpath)
        task_factors = pd.DataFrame({"task": tasks})
        for row, name in _CPP_TASK_FACTORS.items():
            if row in bench.index:
                task_factors[name] = bench.loc[row].reindex(tasks).to_numpy(dtype=object)
                kinds_t[name] = "categorical"
        files["task_factors"] = str(bpath)

    return CollabData.from_frames(
        scores, task_info=task_info, model_factors=model_factors, task_factors=task_factors,
        factor_kinds={"model": kinds_m, "task": kinds_t}, models=list(models), tasks=tasks,
        files=files, out_of_range=out_of_range,
        meta={"name": "cpp-crowdsource", "source": "CPP_LLM data/crowdsource_performance.csv "
              "(github.com/Don-Joey/CPP_LLM)", "paper_rows": "model",
              "description": "Scores collected from papers, technical reports and model cards; "
                             "percent units, prompt settings vary."})


# -------------------------------------------------------------------- helm
def _helm_metric(task: str) -> dict:
    metric = task.rsplit(" - ", 1)[-1].strip()
    if "BPB" in metric:
        return {"higher_is_better": False, "metric_type": "loss", "unit": "bits/byte"}
    if metric in ("Coverage", "Density", "Compression"):
        return {"higher_is_better": pd.NA, "metric_type": "statistic", "unit": None}
    if metric.startswith("HumanEval-"):
        return {"higher_is_better": True, "metric_type": "rating", "unit": "rating"}
    if metric in ("SummaC", "QAFactEval", "BERTScore (F1)"):
        return {"higher_is_better": True, "metric_type": "score", "unit": None}
    return {"higher_is_better": True, "metric_type": "accuracy", "unit": "fraction",
            "min_score": 0.0, "max_score": 1.0}


_SIZE = re.compile(r"\((\d+(?:\.\d+)?)\s*([MB])\)\s*$")


def read_helm(source: str | os.PathLike, *, metric_types=None,
              out_of_range: str = "error") -> CollabData:
    """Read the HELM core leaderboard table (``helm_core.csv``).

    Parameters
    ----------
    source : file
        Transposed: rows are ``Scenario - Metric``, columns are models, ``-``
        marks a missing cell.
    metric_types : iterable of str, optional
        Keep only metrics of these types. Every metric is typed in
        ``tasks.csv``: ``accuracy`` (higher is better, in [0, 1]: EM, F1,
        ROUGE, ...), ``score`` (higher is better, unbounded: SummaC, ...),
        ``rating`` (human ratings), ``loss`` (bits per byte: lower is better)
        and ``statistic`` (coverage, density, compression: no direction).

    Notes
    -----
    Model factor ``params_b`` is taken from a size in the model's name where
    there is one, e.g. ``GPT-J (6B)``; HELM states no other factors.
    """
    path = Path(source)
    wide = read_csv_strings(path, na_values=["", "-"])
    first = wide.columns[0]
    tasks = wide[first].fillna("").astype(str).str.strip()
    for i, t in enumerate(tasks):
        if not t:
            raise DataError("empty metric name", file=path, line=i + 2, column=str(first))
    _check_unique(list(tasks), file=path, what="metric")
    models = [str(c).strip() for c in wide.columns[1:]]
    _check_unique(models, file=path, what="model")
    values = wide.iloc[:, 1:].set_axis(list(tasks), axis=0).set_axis(models, axis=1)
    scores = _wide_to_long(values, file=path, rows="task")
    info = pd.DataFrame([{"task": t, **_helm_metric(t)} for t in tasks])
    if metric_types is not None:
        metric_types = list(metric_types)
        bad = [m for m in metric_types if m not in METRIC_TYPES]
        if bad:
            raise DataError(f"unknown metric type(s) {bad}; expected some of {list(METRIC_TYPES)}")
        info = info[info["metric_type"].isin(metric_types)]
        if info.empty:
            raise DataError(f"no metric of type {metric_types}", file=path)
        scores = scores[scores["task"].isin(set(info["task"]))]
    flagged = info[info["metric_type"] != "accuracy"]
    if len(flagged):
        counts = flagged["metric_type"].value_counts().to_dict()
        warnings.warn(f"{path}: {len(flagged)} metric(s) are not higher-is-better accuracies and "
                      f"are flagged in tasks.csv (metric_type): {counts}; select with "
                      "--metric-type accuracy to leave them out", DataWarning, stacklevel=2)
    params = []
    for m in models:
        match = _SIZE.search(m)
        params.append(float(match.group(1)) * (1e-3 if match.group(2) == "M" else 1.0)
                      if match else np.nan)
    model_factors = pd.DataFrame({"model": models, "params_b": params})
    return CollabData.from_frames(
        scores, task_info=info, model_factors=model_factors,
        factor_kinds={"model": {"params_b": "numeric"}, "task": {}},
        models=models, tasks=list(info["task"]),
        files={"scores": str(path), "task_info": str(path)}, out_of_range=out_of_range,
        meta={"name": "helm-core", "source": "HELM classic core leaderboard (crfm.stanford.edu/helm)",
              "paper_rows": "task",
              "description": "HELM core scenarios x models; metrics typed by metric_type."})


# --------------------------------------------------------------- obsscaling
_OBS_FACTORS = {"Model Family": ("family", "categorical", None),
                "Model Size (B)": ("params_b", "numeric", None),
                "Pretraining Data Size (T)": ("tokens_b", "numeric", 1e3),
                "FLOPs (1E21)": ("flops_1e21", "numeric", None)}
_OBS_BASE_FILE = "base_llm_benchmark_eval.csv"


def _obs_task_info(scores: pd.DataFrame, tasks: list, path) -> pd.DataFrame:
    """Each ObsScaling column's range and unit, from its name (the source's metric
    naming) and its values; every metric is higher-is-better.

    - ``..._bleu``: BLEU, 0 to 100.
    - ``...,norm``: accuracy normalized for chance, ``(acc - chance) / (1 - chance)``,
      at most 1; the lower bound is -1 (chance 1/2) or the lowest value seen.
    - ``Arena-Elo``, ``MTBench``: chat ratings rescaled by the source, no range.
    - any other: a fraction in [0, 1]; a column with values above 1 is taken as
      percent (0 to 100) when they fit, else it gets no range, with a warning.
    """
    low = scores.groupby("task")["score"].min()
    high = scores.groupby("task")["score"].max()
    rows, unranged = [], []
    for task in tasks:
        lo, hi = low.get(task, np.nan), high.get(task, np.nan)
        if task in ("Arena-Elo", "MTBench"):
            row = (np.nan, np.nan, "rescaled by source", "score")
        elif task.endswith("_bleu"):
            row = (0.0, 100.0, "BLEU", "score")
        elif task.endswith(",norm"):
            row = (min(-1.0, lo), 1.0, "chance-normalized", "score")
        elif not hi > 1.0:
            row = (0.0, 1.0, "fraction", "accuracy")
        elif lo >= 0.0 and hi <= 100.0:
            row = (0.0, 100.0, "%", "accuracy")
        else:
            row = (np.nan, np.nan, np.nan, "score")
            unranged.append(task)
        rows.append((task, True, *row))
    if unranged:
        warnings.warn(f"{path}: {len(unranged)} column(s) are neither fractions nor percents and "
                      f"get no declared range: {unranged[:5]}", DataWarning, stacklevel=3)
    return pd.DataFrame(rows, columns=["task", "higher_is_better", "min_score", "max_score",
                                       "unit", "metric_type"])


def read_obsscaling(source: str | os.PathLike, *, out_of_range: str = "error") -> CollabData:
    """Read an observational-scaling evaluation CSV (Ruan et al., 2024).

    Parameters
    ----------
    source : file or folder
        One of the ``*_eval.csv`` files: column ``Model``, the factor columns
        ``Model Family``, ``Model Size (B)``, ``Pretraining Data Size (T)``,
        ``FLOPs (1E21)`` where present, then one column per benchmark
        (ranges and units from :func:`_obs_task_info`). A folder means its
        ``base_llm_benchmark_eval.csv``. A file without factor columns (the
        leaderboard-v2 file) takes them from ``base_llm_benchmark_eval.csv`` in
        the same folder, joined on ``Model``, when that file exists.
    """
    path = Path(source)
    if path.is_dir():
        path = path / _OBS_BASE_FILE
    frame = read_csv_strings(path)
    _require(frame, ["Model"], path)
    models = frame["Model"].fillna("").astype(str).str.strip()
    for i, m in enumerate(models):
        if not m:
            raise DataError("empty model name", file=path, line=i + 2, column="Model")
    _check_unique(list(models), file=path, what="model")
    factor_src = frame
    lines = np.arange(2, len(frame) + 2)
    files = {"scores": str(path)}
    if not any(c in frame.columns for c in _OBS_FACTORS):
        base = path.parent / _OBS_BASE_FILE
        if base.is_file() and base != path:
            base_frame = read_csv_strings(base)
            _require(base_frame, ["Model"], base)
            factor_src = base_frame.set_index(base_frame["Model"].str.strip()).reindex(list(models))
            factor_src = factor_src.reset_index(drop=True)
            lines = None
            files["model_factors"] = str(base)
        else:
            warnings.warn(f"{path}: no factor columns and no {_OBS_BASE_FILE} beside it; "
                          "the data set has no model factors", DataWarning, stacklevel=2)
    else:
        files["model_factors"] = str(path)
    tasks = [c for c in frame.columns if c != "Model" and c not in _OBS_FACTORS]
    values = frame[tasks].set_axis(list(models), axis=0)
    scores = _wide_to_long(values, file=path, rows="model")
    names = {t: _OBS_LEADERBOARD_TASKS.get(t, t) for t in tasks}
    info = _obs_task_info(scores, tasks, path)
    model_factors = pd.DataFrame({"model": list(models)})
    kinds = {}
    for col, (name, kind, scale) in _OBS_FACTORS.items():
        if col in factor_src.columns:
            if kind == "numeric":
                v = parse_numbers(factor_src[col], file=files["model_factors"], column=col, lines=lines)
                model_factors[name] = v * scale if scale else v
            else:
                model_factors[name] = factor_src[col].to_numpy(dtype=object)
            kinds[name] = kind
    task_factors = _task_factor_table(tasks, names)
    return CollabData.from_frames(
        scores, task_info=info, model_factors=model_factors, task_factors=task_factors,
        factor_kinds={"model": kinds, "task": {c: _TASK_FACTOR_KINDS[c] for c in task_factors.columns
                                               if c != "task"}},
        models=list(models), tasks=tasks, files=files, out_of_range=out_of_range,
        meta={"name": f"obsscaling-{path.stem}", "paper_rows": None,
              "source": f"ObsScaling eval_results/{path.name} (github.com/ryoungj/ObsScaling)",
              "description": "Observational scaling laws evaluation results."})


# ---------------------------------------------------- open llm leaderboard
_OLL_TASKS = {"ifeval": "IFEval", "bbh": "BBH", "math": "MATH Lvl 5", "gpqa": "GPQA",
              "musr": "MuSR", "mmlu_pro": "MMLU-Pro"}
_OLL_FACTORS = {"metadata_params_billions": ("params_b", "numeric"),
                "model_architecture": ("architecture", "categorical"),
                "model_type": ("model_type", "categorical"),
                "model_precision": ("precision", "categorical"),
                "metadata_base_model": ("base_model", "categorical"),
                "features_is_merged": ("merged", "categorical"),
                "features_is_moe": ("moe", "categorical"),
                "metadata_hub_license": ("license", "categorical")}


def read_open_llm_leaderboard(source: str | os.PathLike, *, scores: str = "raw",
                              out_of_range: str = "error") -> CollabData:
    """Read the Open LLM Leaderboard v2 table (one row per evaluated submission).

    Parameters
    ----------
    source : file
        The leaderboard CSV with columns ``model_name`` and
        ``evaluations_<benchmark>_value`` / ``..._normalized_score``.
    scores : {"raw", "normalized"}
        ``raw``: the accuracy-type value in [0, 1]; ``normalized``: the
        leaderboard's chance-corrected score in [0, 100].

    Notes
    -----
    A model submitted more than once (e.g. in two precisions) keeps one row:
    the latest ``metadata_submission_date``, ties broken by the smallest
    ``id``. A parameter count of 0 or less means "unknown" and becomes missing.
    """
    if scores not in ("raw", "normalized"):
        raise DataError(f"scores must be 'raw' or 'normalized'; got {scores!r}")
    path = Path(source)
    frame = read_csv_lines(path)
    suffix = "value" if scores == "raw" else "normalized_score"
    score_cols = {f"evaluations_{k}_{suffix}": v for k, v in _OLL_TASKS.items()}
    header = " ".join(frame.columns).lower()
    if not any(c in frame.columns for c in score_cols) and any(
            v1 in header for v1 in ("arc", "hellaswag", "truthfulqa", "winogrande")):
        raise DataError("this looks like the Open LLM Leaderboard v1 file (ARC, HellaSwag, MMLU, "
                        "TruthfulQA, Winogrande, GSM8K); only the v2 file (huggingface_v2.csv, "
                        "IFEval to MMLU-Pro) is read by --input-format open-llm-leaderboard", file=path)
    _require(frame, ["id", "model_name", "metadata_submission_date", *score_cols], path)
    frame["model_name"] = frame["model_name"].fillna("").astype(str).str.strip()
    empty = frame.index[frame["model_name"] == ""]
    if len(empty):
        raise DataError("empty model name", file=path, line=int(frame.at[empty[0], "_line"]),
                        column="model_name")
    n_rows = len(frame)
    frame = frame.sort_values(["model_name", "metadata_submission_date", "id"],
                              ascending=[True, False, True], na_position="last", kind="stable")
    frame = frame.drop_duplicates("model_name", keep="first")
    frame = frame.sort_values("_line", kind="stable")
    if len(frame) < n_rows:
        logger.info("%s: %d repeated submissions dropped (kept the latest per model)",
                    path, n_rows - len(frame))
    models = list(frame["model_name"])
    lines = frame["_line"].to_numpy()
    long = []
    for col, task in score_cols.items():
        v = parse_numbers(frame[col], file=path, column=col, lines=lines)
        keep = ~np.isnan(v)
        long.append(pd.DataFrame({"model": np.array(models, dtype=object)[keep], "task": task,
                                  "score": v[keep], "_line": lines[keep]}))
    long = pd.concat(long, ignore_index=True)
    tasks = list(score_cols.values())
    info = pd.DataFrame({"task": tasks, "higher_is_better": True,
                         "min_score": 0.0, "max_score": 1.0 if scores == "raw" else 100.0,
                         "unit": "fraction" if scores == "raw" else "normalized points",
                         "metric_type": "accuracy"})
    model_factors = pd.DataFrame({"model": models})
    kinds = {}
    for col, (name, kind) in _OLL_FACTORS.items():
        if col not in frame.columns:
            continue
        if kind == "numeric":
            v = parse_numbers(frame[col], file=path, column=col, lines=lines)
            v[v <= 0] = np.nan
            model_factors[name] = v
        else:
            vals = frame[col].to_numpy(dtype=object)
            if name in ("merged", "moe"):
                vals = np.array([{"true": "yes", "false": "no"}.get(str(x).lower(), x)
                                 for x in vals], dtype=object)
            model_factors[name] = vals
        kinds[name] = kind
    task_factors = _task_factor_table(tasks)
    return CollabData.from_frames(
        long, task_info=info, model_factors=model_factors, task_factors=task_factors,
        factor_kinds={"model": kinds, "task": dict(_TASK_FACTOR_KINDS)},
        models=models, tasks=tasks, files={"scores": str(path), "model_factors": str(path)},
        out_of_range=out_of_range, meta={"name": f"open-llm-leaderboard-v2-{scores}", "paper_rows": None,
              "source": "Hugging Face Open LLM Leaderboard v2 (huggingface.co/spaces/"
                        "open-llm-leaderboard)",
              "description": f"Open LLM Leaderboard v2, {scores} scores, one row per model."})


# --------------------------------------------------------------- registry
#: Format name -> reader, in the documented order.
FORMATS: dict[str, Callable[..., CollabData]] = {
    "cpp-llm": read_cpp_llm,
    "helm": read_helm,
    "obsscaling": read_obsscaling,
    "open-llm-leaderboard": read_open_llm_leaderboard,
    "canonical": read_canonical,
    "long": read_long,
    "wide": read_wide,
}


def read_data(source: str | os.PathLike, format: str = "canonical", **options) -> CollabData:
    """Read ``source`` with the reader of ``format`` (a key of :data:`FORMATS`).

    ``options`` are passed to the reader (``metric_types`` for ``helm``,
    ``scores`` for ``open-llm-leaderboard``, ``out_of_range`` for all:
    :data:`~cppgraph.data.dataset.OUT_OF_RANGE`).
    """
    if format not in FORMATS:
        raise DataError(f"unknown format {format!r}; expected one of {list(FORMATS)}")
    return FORMATS[format](source, **options)


def as_data(data, *, model_factors: pd.DataFrame | None = None,
            task_factors: pd.DataFrame | None = None,
            tasks: pd.DataFrame | None = None) -> CollabData:
    """A :class:`CollabData` from one, from a canonical folder's path, or from a long
    DataFrame of scores (columns ``model, task, score``) with the optional tables of
    the canonical folder (``model_factors``: column ``model`` then factors;
    ``task_factors``: ``task`` then factors; ``tasks``: ``task`` and the columns of
    ``tasks.csv``), validated by :meth:`CollabData.from_frames`."""
    frames = {"model_factors": model_factors, "task_factors": task_factors, "task_info": tasks}
    given = [k for k, v in (("model_factors", model_factors), ("task_factors", task_factors),
                            ("tasks", tasks)) if v is not None]
    if isinstance(data, pd.DataFrame):  # orders as read_canonical takes them
        order = {"models": model_factors, "tasks": tasks}
        order = {k: list(v[k[:-1]]) for k, v in order.items()
                 if isinstance(v, pd.DataFrame) and k[:-1] in v.columns}
        return CollabData.from_frames(data, **frames, **order)
    if given:
        raise CppGraphError(f"{', '.join(given)} go with a DataFrame of scores; got "
                            f"{type(data).__name__}")
    if isinstance(data, CollabData):
        return data
    if isinstance(data, (str, os.PathLike)):
        return read_canonical(data)
    raise CppGraphError(f"expected a CollabData, a data folder's path or a DataFrame of scores; "
                        f"got {type(data).__name__}")


def import_data(source: str | os.PathLike, format: str, out: str | os.PathLike, *,
                overwrite: bool = False, **options) -> CollabData:
    """Read ``source`` in ``format`` and write it as a canonical folder ``out``.

    The output folder is checked before reading and written atomically, so a
    failed import leaves nothing behind and never touches an existing folder
    (unless ``overwrite``, and then only once the new folder is complete).
    """
    check_output_folder(out, overwrite=overwrite, protect=[source])
    data = read_data(source, format, **options)
    write_canonical(data, out, overwrite=overwrite, protect=[source])
    return data
