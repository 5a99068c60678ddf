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
from contextvars import ContextVar
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
    _check_header(path)
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _check_header(path: Path) -> None:
    """A column name given twice in the header is an error (pandas would rename the
    second ``NAME.1`` and read it as another column)."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle), [])
    seen = {}
    for i, name in enumerate(header, start=1):
        name = name.strip()
        if name and name in seen:
            raise DataError(f"the header names column {name!r} twice (fields {seen[name]} and "
                            f"{i}); give each column its own name", file=path)
        seen.setdefault(name, i)


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
    """:func:`read_csv_strings` plus each row's line number in ``_line`` (for error messages).

    A quoted field may span lines; the number is the line the row starts on.
    """
    frame = read_csv_strings(path)
    frame["_line"] = _row_lines(Path(path), len(frame))
    return frame


def _row_lines(path: Path, n_rows: int) -> np.ndarray:
    """The line each data row starts on, as pandas reads the rows (blank lines skipped,
    a quoted field possibly spanning lines)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        text = None
    if text is None:
        starts = []  # unreadable here: the csv module fails on it too
    elif '"' not in text and "\r" not in text:
        # No quoting and one kind of line end (most files, and fast): a line is a row
        # unless the csv module reads it as blank (no comma, nothing but spaces).
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()
        starts = [i + 1 for i in range(1, len(lines)) if "," in lines[i] or lines[i].strip()]
    else:
        starts = _csv_row_lines(path)
    if len(starts) != n_rows:  # a layout the csv module reads otherwise: count lines simply
        return np.arange(2, n_rows + 2)
    return np.asarray(starts)


def _csv_row_lines(path: Path) -> list[int]:
    """:func:`_row_lines` by the csv module (quoted fields may span lines)."""
    starts = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = csv.reader(handle)
            next(rows, None)  # the header
            start = rows.line_num + 1
            for row in rows:
                if any(field.strip() for field in row) or len(row) > 1:
                    starts.append(start)
                start = rows.line_num + 1
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    return starts


def _check_readable(path: Path) -> None:
    """A file that is present must be a readable regular file: a dangling link, a link
    loop or a folder in its place is an error naming it, never a file silently skipped."""
    try:
        path.stat()
    except FileNotFoundError:
        raise DataError("is a broken symbolic link (its target does not exist)", file=path) from None
    except OSError as err:
        raise DataError(f"cannot be read: {err.strerror or err}", file=path) from None
    if path.is_dir():
        raise DataError("is a folder; expected a file", file=path)
    if not path.is_file():
        raise DataError("is not a regular file", file=path)


def read_canonical(path: str | os.PathLike, *, out_of_range: str | None = "error") -> CollabData:
    """Read a canonical data folder.

    Parameters
    ----------
    path : str or path-like
        Folder holding at least ``scores.csv``.
    out_of_range : {"error", "clip", "allow"}
        Scores outside their task's declared range
        (:data:`~cppgraph.data.dataset.OUT_OF_RANGE`).

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
                            "got a file; other formats are read with --input-format (data check, "
                            "data import, evaluate), and fit takes a canonical folder (cppgraph "
                            "data import FILE --input-format NAME --out FOLDER)", file=folder)
        raise DataError("folder not found", file=folder)
    scores_path = folder / SCORES_FILE
    if not os.path.lexists(scores_path):
        raise DataError(f"no {SCORES_FILE} in this folder; a canonical data folder needs "
                        f"{SCORES_FILE} with columns model,task,score", file=folder)
    _check_readable(scores_path)
    scores = read_csv_lines(scores_path)
    extra = [c for c in scores.columns if c not in ("model", "task", "score", "_line")]
    if extra:
        raise DataError(f"unexpected column(s) {extra}; expected exactly model,task,score",
                        file=scores_path)

    def optional(name):
        p = folder / name
        if not os.path.lexists(p):
            return None, None
        _check_readable(p)
        return read_csv_lines(p), str(p)

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
    if os.path.lexists(meta_path):
        _check_readable(meta_path)
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
        factor_kinds=kinds, meta=meta, models=order_m, tasks=order_t, out_of_range=out_of_range,
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


#: Written into every folder cppgraph writes; ``--force`` replaces only such folders.
MARKER_FILE = ".cppgraph"
#: The writing process's id, in a folder being written (see :func:`atomic_folder`).
PID_FILE = ".pid"
#: The files each kind of output folder holds.
OUTPUT_FILES = {
    "data": {SCORES_FILE, TASKS_FILE, MODEL_FACTORS_FILE, TASK_FACTORS_FILE, META_FILE},
    "model": {"weights.pt", "model.json", "training_log.csv", "data"},
}
#: The files without which a folder that has no marker (written before the marker
#: existed) is not taken for one of cppgraph's.
_ESSENTIAL_FILES = {"data": {SCORES_FILE}, "model": {"weights.pt", "model.json", "data"}}

#: The inputs of the running command (see :func:`protect_inputs`).
_INPUTS: ContextVar[tuple] = ContextVar("cppgraph_inputs", default=())


@contextmanager
def protect_inputs(paths):
    """Within the block, no output file or folder may be, contain or lie inside one of
    ``paths`` (the files and folders a command reads): :func:`check_output_file` and
    :func:`check_output_folder` refuse them."""
    token = _INPUTS.set(_INPUTS.get() + tuple(str(p) for p in paths if p))
    try:
        yield
    finally:
        _INPUTS.reset(token)


def _refuse_inputs(target: Path, protect=()) -> None:
    """Raise if ``target`` is one of the inputs (``protect`` and those of
    :func:`protect_inputs`), lies inside one, or contains one."""
    resolved = target.resolve()
    for source in (*protect, *_INPUTS.get()):
        src = Path(source).resolve()
        if resolved == src or resolved in src.parents:
            raise DataError(f"is the input {source} or contains it; choose another output",
                            file=target)
        if src in resolved.parents:
            raise DataError(f"lies inside the input {source}; choose an output outside it",
                            file=target)


def _not_replaceable(folder: Path, kind: str) -> str | None:
    """Why ``folder`` is not a folder of ``kind`` that cppgraph wrote with nothing else in
    it, or None when it is one."""
    # a run killed just after putting its folder in place leaves its pid file there
    names = {p.name for p in folder.iterdir()} - {MARKER_FILE, PID_FILE}
    marker = folder / MARKER_FILE
    if marker.is_file():
        try:
            marked = json.loads(marker.read_text(encoding="utf-8")).get("kind")
        except (OSError, ValueError, AttributeError):
            marked = None
        if marked != kind:
            return (f"its {MARKER_FILE} marker is that of a {marked} folder"
                    if isinstance(marked, str) else f"its {MARKER_FILE} marker is not cppgraph's")
    elif not _ESSENTIAL_FILES[kind] <= names:
        return f"no {MARKER_FILE} marker"
    foreign = sorted(names - OUTPUT_FILES[kind])
    if foreign:
        return "it also holds " + ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
    data = folder / "data"
    if kind == "model" and data.exists():
        why = _not_replaceable(data, "data") if data.is_dir() else "not a folder"
        return None if why is None else f"{data.name}/: {why}"
    return None


def check_output_folder(path: str | os.PathLike, *, overwrite: bool = False, kind: str = "data",
                        protect=()) -> Path:
    """Fail early if ``path`` cannot receive a new folder of ``kind`` (``"data"`` or
    ``"model"``); return it as a Path.

    An existing non-empty folder is replaced only with ``overwrite``, and only
    if cppgraph wrote it as a folder of that kind and it holds nothing else
    (its marker file, and only the files cppgraph writes there); the output
    is never, contains or lies inside one of the inputs (``protect`` and those
    of :func:`protect_inputs`).
    """
    target = Path(path)
    _refuse_inputs(target, protect)
    if target.exists():
        if not target.is_dir():
            raise DataError("exists and is not a folder", file=target)
        if any(target.iterdir()):
            if not overwrite:
                raise DataError("folder exists and is not empty; choose another output folder "
                                "or allow overwriting (--force)", file=target)
            why = _not_replaceable(target, kind)
            if why:
                raise DataError(f"folder exists and is not a {kind} folder written by cppgraph "
                                f"with nothing else in it ({why}); --force replaces only those: "
                                "choose another output folder", file=target)
    return target


def write_canonical(data: CollabData, path: str | os.PathLike, *, overwrite: bool = False,
                    protect=()) -> Path:
    """Write ``data`` as a canonical folder, atomically.

    The tables are written to a temporary folder beside ``path`` which then
    takes its place in one step, so a failure leaves no half-written folder.
    With ``overwrite=True`` an existing folder that cppgraph wrote is replaced
    as a whole (see :func:`check_output_folder`; ``protect`` lists inputs the
    output must not be or contain).

    Raises
    ------
    DataError
        If ``path`` exists and is not empty (without ``overwrite``), was not
        written by cppgraph, exists as a file, or cannot be written.
    """
    with atomic_folder(path, overwrite=overwrite, kind="data", protect=protect) as tmp:
        _write_tables(data, tmp)
    return Path(path)


_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2


def _renameat2(src: Path, dst: Path, flags: int) -> bool:
    """Linux ``renameat2``; False where the system has no such call (then the caller
    falls back to plain renames)."""
    import ctypes
    import errno
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        call = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    if call(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(dst))


def _clean_stale(parent: Path, name: str) -> None:
    """Remove the temporary folders that earlier runs on ``name`` left when killed: one
    whose name or pid file names a process that no longer runs (the name carries the
    pid of the run that made it, from its first moment, and keeps it when the folder
    holds an old folder swapped out), or, with neither (folders of older versions),
    one untouched for a minute."""
    import time
    for tmp in parent.glob(f".{name}.*"):
        if not tmp.is_dir():
            continue
        try:
            pid = int((tmp / PID_FILE).read_text())
        except (OSError, ValueError):
            parts = tmp.name[len(name) + 2:].split(".")  # PID.RANDOM or PID.old.RANDOM
            if parts[0].isdigit() and (len(parts) == 2 or (len(parts) == 3 and parts[1] == "old")):
                pid = int(parts[0])
            else:
                try:
                    if time.time() - tmp.stat().st_mtime > 60:
                        shutil.rmtree(tmp, ignore_errors=True)
                except OSError:
                    pass
                continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            pass


@contextmanager
def atomic_folder(path: str | os.PathLike, *, overwrite: bool = False, kind: str = "data",
                  protect=()):
    """Yield a temporary folder that takes the place of ``path`` when the block succeeds.

    The new folder gets cppgraph's marker. It takes the place of an existing
    one in one atomic exchange (Linux ``renameat2``), and without
    ``overwrite`` it never replaces a folder that appeared in the meantime.
    On any error the temporary folder is removed and ``path`` is untouched;
    temporary folders left by killed runs are removed on the next run.
    """
    target = check_output_folder(path, overwrite=overwrite, kind=kind, protect=protect)
    parent = target.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        _clean_stale(parent, target.name)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", dir=parent))
        # mkdtemp makes a private folder (0700); give it the usual umask-based mode.
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)
        (tmp / PID_FILE).write_text(str(os.getpid()))
    except OSError as err:
        raise DataError(f"cannot create the output folder: {err.strerror or err}", file=target) from err
    try:
        yield tmp
        (tmp / MARKER_FILE).write_text(json.dumps({"written_by": "cppgraph", "kind": kind}) + "\n")
        _put_in_place(tmp, target, overwrite=overwrite, kind=kind)
        (target / PID_FILE).unlink(missing_ok=True)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(f"cannot write the folder: {err.strerror or err}", file=target) from err
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _put_in_place(tmp: Path, target: Path, *, overwrite: bool, kind: str) -> None:
    """Move the finished ``tmp`` to ``target`` (see :func:`atomic_folder`)."""
    if target.exists() and any(target.iterdir()):
        # Checked again: the folder may have appeared or changed since the first check.
        check_output_folder(target, overwrite=overwrite, kind=kind)
        if _renameat2(tmp, target, _RENAME_EXCHANGE):
            shutil.rmtree(tmp, ignore_errors=True)  # now the old folder
            return
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.old.", dir=tmp.parent))
        old.rmdir()
        target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
        return
    if target.exists():
        target.rmdir()  # empty
    if not _renameat2(tmp, target, _RENAME_NOREPLACE):
        if target.exists():
            raise DataError("folder appeared while writing; choose another output folder",
                            file=target)
        tmp.rename(target)


def check_output_file(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Fail early unless ``path`` can be written: a new file (or, with ``overwrite``, a file),
    neither an input of the running command nor inside one (:func:`protect_inputs`)."""
    target = Path(path)
    _refuse_inputs(target)
    if target.is_dir():
        raise DataError("is a folder; expected a file path", file=target)
    if target.exists() and not overwrite:
        raise DataError("file exists; choose another output file or allow overwriting (--force)",
                        file=target)
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
