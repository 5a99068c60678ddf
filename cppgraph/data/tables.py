"""A user's own score table: one row per (model, task, score) ("long"), or a models x
tasks grid with a few model columns ("wide"), from a CSV or Excel file.

Both readers give a :class:`~cppgraph.data.dataset.CollabData` through
:meth:`CollabData.from_frames`, so they share its checks (conflicting repeated
cells, non-numeric scores, out-of-range scores) and name the file, line and
column of a bad cell.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from cppgraph.data.canonical import _check_readable, read_csv_lines
from cppgraph.data.dataset import (CollabData, _did_you_mean, _is_missing, _missing_mask,
                                   check_names, parse_numbers)
from cppgraph.errors import DataError, DataWarning

#: File suffixes read as Excel workbooks (the first sheet).
EXCEL = (".xlsx", ".xlsm", ".xls")


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """A CSV or Excel file as strings, with each row's line (row) number in ``_line``."""
    path = Path(path)
    if not os.path.lexists(path):
        raise DataError("file not found", file=path)
    _check_readable(path)
    if path.suffix.lower() not in EXCEL:
        return read_csv_lines(path)
    try:
        frame = pd.read_excel(path, dtype=str, keep_default_na=False, na_values=[""])
    except ImportError as err:
        raise DataError(f"reading Excel needs an extra package ({err}); install it with "
                        "`pip install openpyxl`, or save the sheet as CSV", file=path) from None
    except (ValueError, OSError) as err:
        raise DataError(f"cannot read as an Excel workbook: {err}", file=path) from err
    frame.columns = [str(c).strip() for c in frame.columns]
    frame["_line"] = np.arange(2, len(frame) + 2)
    return frame


def parse_range(text: str) -> tuple[str | None, float, float]:
    """``"TASK=LO:HI"`` (or ``"LO:HI"``, every task) as ``(task or None, lo, hi)``."""
    task, _, bounds = text.rpartition("=") if "=" in text else (None, "", text)
    parts = bounds.split(":")
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise DataError(f"range {text!r}: expected TASK=LO:HI or LO:HI with numbers, "
                        "e.g. MMLU=0:100") from None
    if not lo < hi:
        raise DataError(f"range {text!r}: LO must be below HI")
    return (task.strip() or None) if task is not None else None, lo, hi


def _require(frame: pd.DataFrame, columns: Iterable[str], path, what: str) -> None:
    have = [c for c in frame.columns if c != "_line"]
    missing = [c for c in columns if c not in have]
    if missing:
        hints = "".join(_did_you_mean(c, have) for c in missing[:1])
        raise DataError(f"no column {missing[0]!r} ({what}){hints}; the columns are {have}",
                        file=path)


def _task_info(tasks: list[str], *, lower_is_better: Iterable[str],
               higher_is_better: Iterable[str], ranges: Iterable[str]) -> pd.DataFrame:
    """Direction and declared range of each task, from the command's options; a task
    named there that is not in the table is an error."""
    lower, higher = list(lower_is_better), list(higher_is_better)
    bounds, default = {}, (np.nan, np.nan)
    for text in ranges:
        task, lo, hi = parse_range(text)
        if task is None:
            default = (lo, hi)
        else:
            bounds[task] = (lo, hi)
    known = set(tasks)
    for option, names in (("--lower-is-better", lower), ("--higher-is-better", higher),
                          ("--range", list(bounds))):
        for name in names:
            if name not in known:
                raise DataError(f"{option}: unknown task {name!r}{_did_you_mean(name, tasks)}")
    both = sorted(set(lower) & set(higher))
    if both:
        raise DataError(f"task {both[0]!r} is given as both higher- and lower-is-better")
    lo = [bounds.get(t, default)[0] for t in tasks]
    hi = [bounds.get(t, default)[1] for t in tasks]
    return pd.DataFrame({"task": tasks, "higher_is_better": [t not in set(lower) for t in tasks],
                         "min_score": lo, "max_score": hi})


def _model_factors(frame: pd.DataFrame, model_col: str, columns: list[str], path) -> pd.DataFrame:
    """One row per model of the ``columns`` of a long table; a model whose rows disagree
    on a factor is an error naming both lines."""
    out = []
    for model, rows in frame.groupby(model_col, sort=False):
        row = {"model": model}
        for col in columns:
            present = rows[~_missing_mask(rows[col])]
            values = present[col].astype(str).str.strip()
            if values.nunique() > 1:
                a, b = values.iloc[0], values[values != values.iloc[0]].iloc[0]
                lines = present["_line"][values.isin([a, b])].tolist()[:2]
                raise DataError(f"model {model!r} has two values of {col!r}: {a!r} and {b!r} "
                                f"(lines {lines[0]} and {lines[1]})", file=path, column=col)
            row[col] = values.iloc[0] if len(values) else np.nan
        out.append(row)
    return pd.DataFrame(out, columns=["model", *columns])


def read_long(source: str | os.PathLike, *, model_col: str = "model", task_col: str = "task",
              score_col: str = "score", model_factors: Iterable[str] = (),
              lower_is_better: Iterable[str] = (), higher_is_better: Iterable[str] = (),
              ranges: Iterable[str] = (), out_of_range: str = "error") -> CollabData:
    """Read a table with one row per (model, task, score).

    Parameters
    ----------
    source : CSV or Excel file
    model_col, task_col, score_col : str
        The columns holding the model name, the task name and the score.
    model_factors : columns
        Further columns taken as model design factors (the same value on
        every row of a model).
    lower_is_better, higher_is_better : task names
        Directions (default: higher is better).
    ranges : ``"TASK=LO:HI"`` or ``"LO:HI"`` (every task without its own)
        Declared score ranges.
    out_of_range : {"error", "clip", "allow"}
        See :data:`~cppgraph.data.dataset.OUT_OF_RANGE`.
    """
    path = Path(source)
    frame = read_table(path)
    factors = list(model_factors)
    _require(frame, [model_col, task_col, score_col], path, "--model-col, --task-col, --score-col")
    _require(frame, factors, path, "--model-factor")
    for col in (model_col, task_col):
        check_names(frame[col], col, file=path, lines=frame["_line"].to_numpy())
    frame[model_col] = frame[model_col].astype(str).str.strip()
    frame[task_col] = frame[task_col].astype(str).str.strip()
    scores = pd.DataFrame({"model": frame[model_col], "task": frame[task_col],
                           "score": frame[score_col], "_line": frame["_line"]})
    empty = pd.Series(_missing_mask(scores["score"]), index=scores.index)
    if empty.any():  # as an empty cell of a wide table: not observed
        warnings.warn(f"{path}: {int(empty.sum())} row(s) without a score are left out (lines "
                      f"{', '.join(map(str, scores['_line'][empty].head(5)))}"
                      f"{', ...' if empty.sum() > 5 else ''})", DataWarning, stacklevel=2)
        scores = scores[~empty]
    tasks = list(dict.fromkeys(scores["task"]))
    info = _task_info(tasks, lower_is_better=lower_is_better, higher_is_better=higher_is_better,
                      ranges=ranges)
    mf = _model_factors(frame, model_col, factors, path) if factors else None
    return CollabData.from_frames(scores, task_info=info, model_factors=mf, tasks=tasks,
                                  files={"scores": str(path), "model_factors": str(path)},
                                  out_of_range=out_of_range)


def read_wide(source: str | os.PathLike, *, model_col: str = "model",
              factor_cols: Iterable[str] = (), lower_is_better: Iterable[str] = (),
              higher_is_better: Iterable[str] = (), ranges: Iterable[str] = (),
              out_of_range: str = "error") -> CollabData:
    """Read a models x tasks grid: ``model_col`` names the models, ``factor_cols`` are
    model factors, every other column is a task. Other parameters as :func:`read_long`."""
    path = Path(source)
    frame = read_table(path)
    factors = list(factor_cols)
    _require(frame, [model_col], path, "--model-col")
    _require(frame, factors, path, "--factor-cols")
    tasks = [c for c in frame.columns if c not in (model_col, "_line", *factors)]
    if not tasks:
        raise DataError("no task columns: every column is the model or a factor", file=path)
    models = frame[model_col]
    for i, cell in enumerate(models.to_numpy(dtype=object)):
        if _is_missing(cell):
            raise DataError("empty model name", file=path, column=model_col,
                            line=int(frame["_line"].iloc[i]))
    models = models.astype(str).str.strip()
    dup = models.duplicated(keep=False).to_numpy()
    if dup.any():
        lines = frame["_line"][dup].tolist()[:2]
        raise DataError(f"model {models[dup].iloc[0]!r} has two rows (lines {lines[0]} and "
                        f"{lines[1]})", file=path, column=model_col)
    lines = np.repeat(frame["_line"].to_numpy(), len(tasks))
    cells = frame[tasks].to_numpy(dtype=object).reshape(-1)
    values = parse_numbers(pd.Series(cells), file=path, lines=lines,
                           labels=list(np.tile(tasks, len(frame))), what="a number (a score)")
    keep = ~np.isnan(values)
    scores = pd.DataFrame({"model": np.repeat(models.to_numpy(dtype=object), len(tasks))[keep],
                           "task": np.tile(np.array(tasks, dtype=object), len(frame))[keep],
                           "score": values[keep], "_line": lines[keep]})
    info = _task_info(tasks, lower_is_better=lower_is_better, higher_is_better=higher_is_better,
                      ranges=ranges)
    mf = frame[factors].assign(model=models)[["model", *factors]] if factors else None
    if mf is not None:
        mf["_line"] = frame["_line"]
    return CollabData.from_frames(scores, task_info=info, model_factors=mf, tasks=tasks,
                                  models=list(models),
                                  files={"scores": str(path), "model_factors": str(path)},
                                  out_of_range=out_of_range)


def table_options(fmt: str, options: Mapping) -> dict:
    """The options of :func:`read_long` / :func:`read_wide` that apply to ``fmt``; an
    option given for the other reader is an error."""
    own = {"long": ("model_col", "task_col", "score_col", "model_factors"),
           "wide": ("model_col", "factor_cols")}
    shared = ("lower_is_better", "higher_is_better", "ranges")
    flag = {"model_factors": "--model-factor", "ranges": "--range"}
    given = {k: v for k, v in options.items() if v not in (None, (), [])}
    names = lambda keys: ", ".join(flag.get(k, "--" + k.replace("_", "-")) for k in keys)  # noqa: E731
    if fmt not in own:
        if given:
            raise DataError(f"{names(given)}: only for --input-format long or wide")
        return {}
    wrong = [k for k in given if k not in own[fmt] + shared]
    if wrong:
        raise DataError(f"{names(wrong)}: not for --input-format {fmt}")
    return given
