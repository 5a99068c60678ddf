"""The canonical on-disk form: a folder of CSV files (plus an optional JSON).

========================  ========  ==============================================
file                      required  content
========================  ========  ==============================================
``scores.csv``            yes       ``model,task,score``: one row per observed cell
``tasks.csv``             no        ``task`` + :data:`~cppgraph.data.dataset.TASK_INFO_COLUMNS`
``model_factors.csv``     no        ``model`` + one column per model factor
``task_factors.csv``      no        ``task`` + one column per task factor
``dataset.json``          no        name, description, source, synthetic,
                                    paper_rows, factor_kinds
========================  ========  ==============================================

The row order of ``model_factors.csv`` and ``tasks.csv`` is the model and task
order. See ``data/README.md`` for the full description.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from cppgraph.data.dataset import TASK_INFO_COLUMNS, CollabData
from cppgraph.errors import DataError

SCORES_FILE = "scores.csv"
TASKS_FILE = "tasks.csv"
MODEL_FACTORS_FILE = "model_factors.csv"
TASK_FACTORS_FILE = "task_factors.csv"
META_FILE = "dataset.json"
FORMAT_VERSION = 1


def read_csv_strings(path: str | os.PathLike, *, na_values=("",)) -> pd.DataFrame:
    """Read a CSV file as strings (no type guessing), failing with a DataError.

    A row with more fields than the header is an error naming its line (pandas
    would otherwise take the extra leading fields as an index, or drop them).
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=list(na_values),
                                encoding="utf-8-sig", index_col=False)
    except FileNotFoundError:
        raise DataError("file not found", file=path) from None
    except IsADirectoryError:
        raise DataError("expected a CSV file, got a folder", file=path) from None
    except pd.errors.ParserWarning:
        raise DataError(_long_row(path), file=path) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as err:
        raise DataError(f"cannot read as CSV: {str(err).strip().splitlines()[0]}", file=path) from err
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _long_row(path: Path) -> str:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = csv.reader(handle)
        width = len(next(rows))
        for line, row in enumerate(rows, start=2):
            if len(row) > width:
                return (f"cannot read as CSV: line {line} has {len(row)} fields but the header "
                        f"has {width}")
    return "cannot read as CSV: rows have more fields than the header"


def read_csv_lines(path: str | os.PathLike) -> pd.DataFrame:
    """:func:`read_csv_strings` plus each row's line number in ``_line`` (for error messages)."""
    frame = read_csv_strings(path)
    frame["_line"] = np.arange(2, len(frame) + 2)
    return frame


def read_canonical(path: str | os.PathLike) -> CollabData:
    """Read a canonical data folder.

    Parameters
    ----------
    path : str or path-like
        Folder holding at least ``scores.csv``.

    Returns
    -------
    CollabData

    Raises
    ------
    DataError
        If the folder or ``scores.csv`` is missing, or any table is invalid.

    Examples
    --------
    >>> data = read_canonical("data/demo")  # doctest: +SKIP
    >>> data.summary()["models"]  # doctest: +SKIP
    60
    """
    folder = Path(path)
    if not folder.is_dir():
        if folder.is_file():
            raise DataError("expected a folder of canonical CSV files (scores.csv, ...), "
                            "got a file; use --format to read other files", file=folder)
        raise DataError("folder not found", file=folder)
    scores_path = folder / SCORES_FILE
    if not scores_path.is_file():
        raise DataError(f"no {SCORES_FILE} in this folder; a canonical data folder needs "
                        f"{SCORES_FILE} with columns model,task,score", file=folder)
    scores = read_csv_lines(scores_path)
    extra = [c for c in scores.columns if c not in ("model", "task", "score", "_line")]
    if extra:
        raise DataError(f"unexpected column(s) {extra}; expected exactly model,task,score",
                        file=scores_path)

    def optional(name):
        p = folder / name
        return (read_csv_lines(p), str(p)) if p.is_file() else (None, None)

    task_info, tasks_file = optional(TASKS_FILE)
    model_factors, mf_file = optional(MODEL_FACTORS_FILE)
    task_factors, tf_file = optional(TASK_FACTORS_FILE)
    if task_info is not None:
        extra = [c for c in task_info.columns if c not in ("task", "_line", *TASK_INFO_COLUMNS)]
        if extra:
            raise DataError(f"unexpected column(s) {extra}; expected task and some of "
                            f"{list(TASK_INFO_COLUMNS)} (factors belong in {TASK_FACTORS_FILE})",
                            file=tasks_file)

    meta, kinds = {}, {}
    meta_path = folder / META_FILE
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise DataError(f"cannot read as JSON: {err}", file=meta_path) from err
        if not isinstance(meta, dict):
            raise DataError("expected a JSON object", file=meta_path)
        kinds = meta.pop("factor_kinds", {}) or {}
        meta.pop("format_version", None)
        if not isinstance(kinds, dict):
            raise DataError("factor_kinds must be an object", file=meta_path)

    order_m = list(model_factors["model"]) if model_factors is not None and "model" in model_factors else None
    order_t = list(task_info["task"]) if task_info is not None and "task" in task_info else None
    return CollabData.from_frames(
        scores, task_info=task_info, model_factors=model_factors, task_factors=task_factors,
        factor_kinds=kinds, meta=meta, models=order_m, tasks=order_t,
        files={"scores": str(scores_path), "task_info": tasks_file, "model_factors": mf_file,
               "task_factors": tf_file, "meta": str(meta_path)})


def _write_tables(data: CollabData, folder: Path) -> None:
    data.scores.to_csv(folder / SCORES_FILE, index=False)
    info = data.task_info.copy()
    info["higher_is_better"] = info["higher_is_better"].map(
        lambda v: "" if pd.isna(v) else ("true" if v else "false"))
    info.to_csv(folder / TASKS_FILE, index_label="task")
    data.model_factors.to_csv(folder / MODEL_FACTORS_FILE, index_label="model")
    data.task_factors.to_csv(folder / TASK_FACTORS_FILE, index_label="task")
    meta = {"format_version": FORMAT_VERSION, **data.meta, "factor_kinds": data.factor_kinds}
    (folder / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n",
                                    encoding="utf-8")


def check_output_folder(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Fail early if ``path`` cannot receive a new data folder; return it as a Path."""
    target = Path(path)
    if target.exists():
        if not target.is_dir():
            raise DataError("exists and is not a folder", file=target)
        if any(target.iterdir()) and not overwrite:
            raise DataError("folder exists and is not empty; choose another output folder "
                            "or allow overwriting (--force)", file=target)
    return target


def write_canonical(data: CollabData, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``data`` as a canonical folder, atomically.

    The tables are written to a temporary folder beside ``path`` which is then
    renamed into place, so a failure leaves no half-written folder. With
    ``overwrite=True`` an existing folder is replaced as a whole (any other file
    in it is removed), and only once the new one is complete.

    Raises
    ------
    DataError
        If ``path`` exists and is not empty (without ``overwrite``), exists as
        a file, or cannot be written.
    """
    with atomic_folder(path, overwrite=overwrite) as tmp:
        _write_tables(data, tmp)
    return Path(path)


@contextmanager
def atomic_folder(path: str | os.PathLike, *, overwrite: bool = False):
    """Yield a temporary folder that replaces ``path`` when the block succeeds.

    On any error the temporary folder is removed and ``path`` is untouched.
    """
    target = check_output_folder(path, overwrite=overwrite)
    parent = target.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=parent))
        # mkdtemp makes a private folder (0700); give it the usual umask-based mode.
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)
    except OSError as err:
        raise DataError(f"cannot create the output folder: {err.strerror or err}", file=target) from err
    try:
        yield tmp
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=parent))
            old.rmdir()
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(target)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(f"cannot write the folder: {err.strerror or err}", file=target) from err
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_output_file(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Fail early unless ``path`` can be written: a new file (or, with ``overwrite``, a file)."""
    target = Path(path)
    if target.exists() and not overwrite:
        raise DataError("file exists; choose another output file or allow overwriting (--force)",
                        file=target)
    if target.is_dir():
        raise DataError("is a folder; expected a file path", file=target)
    if not target.resolve().parent.is_dir():
        raise DataError("the folder to write into does not exist", file=target)
    return target


def write_files_atomic(writers: dict, *, overwrite: bool = False) -> list[Path]:
    """Write several files all-or-nothing: temporary files beside each, then renames.

    ``writers`` maps each target path to a function that writes a given
    (temporary) path. Every target is checked first
    (:func:`check_output_file`); on any error the temporary files are removed
    and no target is touched. Files get the usual permissions (umask).
    """
    targets = [check_output_file(p, overwrite=overwrite) for p in writers]
    temps: list[str] = []
    umask = os.umask(0)
    os.umask(umask)
    current = targets[0]
    try:
        for target, write in zip(targets, writers.values()):
            current = target
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=target.suffix,
                                       dir=target.resolve().parent)
            os.close(fd)
            temps.append(tmp)
            write(Path(tmp))
            os.chmod(tmp, 0o666 & ~umask)
        for tmp, target in zip(temps, targets):
            current = target
            os.replace(tmp, target)
    except OSError as err:
        raise DataError(f"cannot write: {err.strerror or err}", file=current) from err
    finally:
        for tmp in temps:
            Path(tmp).unlink(missing_ok=True)
    return targets


def write_text_atomic(path: str | os.PathLike, text: str, *, overwrite: bool = False) -> Path:
    """Write ``text`` to ``path`` through a temporary file renamed into place.

    An existing file is only replaced with ``overwrite=True``.
    """
    write = lambda p: p.write_text(text, encoding="utf-8")  # noqa: E731
    return write_files_atomic({Path(path): write}, overwrite=overwrite)[0]
