"""The canonical collaborative data set: scores, task metadata and design factors.

Every reader produces a :class:`CollabData`, and everything downstream (graph
building, training, evaluation) consumes one. Construction validates the
tables; see :meth:`CollabData.from_frames`.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import warnings
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from cppgraph.errors import CppGraphError, DataError, DataWarning

#: Columns of the long score table.
SCORE_COLUMNS = ("model", "task", "score")
#: Per-task metadata columns (``tasks.csv``), in order.
TASK_INFO_COLUMNS = ("higher_is_better", "min_score", "max_score", "unit", "metric_type")
#: Allowed values of ``metric_type``.
METRIC_TYPES = ("accuracy", "score", "rating", "loss", "statistic")
FACTOR_KINDS = ("numeric", "categorical")
#: What to do with scores outside their task's declared range (``min_score``,
#: ``max_score``): ``"error"`` warns about cells within :data:`RANGE_TOLERANCE`
#: of the range and refuses cells beyond it, ``"clip"`` clips every such cell to
#: the range, ``"allow"`` keeps them; each names the cells in a warning.
OUT_OF_RANGE = ("error", "clip", "allow")
#: Share of a task's declared range by which a score may pass it with only a warning.
RANGE_TOLERANCE = 0.01

_TRUE = {"true", "yes", "1", "y", "t"}
_FALSE = {"false", "no", "0", "n", "f"}


def _name_key(name: str) -> str:
    return " ".join(str(name).split()).casefold()


def _is_missing(cell) -> bool:
    """True for None, NA, NaN and blank strings."""
    if cell is None or cell is pd.NA:
        return True
    if isinstance(cell, (float, np.floating)):
        return math.isnan(cell)
    return isinstance(cell, str) and cell.strip() == ""


def _missing_mask(values) -> np.ndarray:
    """:func:`_is_missing` of every cell of ``values`` at once (data sets have millions)."""
    raw = np.asarray(values)
    if raw.dtype.kind in "fc":  # a numeric column: only NaN is missing
        return np.isnan(raw)
    if raw.dtype.kind in "iub":
        return np.zeros(raw.shape, dtype=bool)
    raw = raw.astype(object, copy=False)
    # each distinct cell tested once; NA-like cells (None, NaN, NA) get code -1, which
    # reads the True appended after the distinct cells' blank flags
    codes, distinct = pd.factorize(raw, use_na_sentinel=True)
    blank = np.fromiter((isinstance(c, str) and not c.strip() for c in distinct), bool,
                        len(distinct))
    return np.append(blank, True)[codes]


def _first_missing(values) -> int | None:
    """Position of the first cell of ``values`` that :func:`_is_missing` calls missing, or None."""
    missing = np.flatnonzero(_missing_mask(values))
    return int(missing[0]) if len(missing) else None


def check_names(values, column: str, *, file=None, lines=None) -> None:
    """An empty name among ``values`` (a ``column`` of model or task names) is an error
    naming its line (``lines``: each row's line number, or None)."""
    i = _first_missing(values)
    if i is not None:
        raise DataError(f"empty {column} name", file=file, line=_where(lines, i), column=column)


def _where(lines, i):
    return None if lines is None else int(lines[i])


def parse_numbers(values: pd.Series, *, file=None, column=None, lines=None,
                  labels=None, allow_missing=True, what="a number") -> np.ndarray:
    """Convert a column of raw cells to float64, failing loudly on bad cells.

    Parameters
    ----------
    values : pandas.Series
        Raw cells (strings or numbers). Empty strings and NaN count as missing.
    file, column : optional
        Where the values come from, for the error message.
    lines : sequence of int, optional
        1-based line number in ``file`` of each value.
    labels : sequence of str, optional
        Per-value column label (for wide files, where the column varies).
    allow_missing : bool
        If False, a missing cell is an error too.

    Raises
    ------
    DataError
        Naming the file, line, column and value of the first bad cell.
    """
    raw = values.to_numpy(dtype=object)
    fast = _parse_plain_numbers(raw, allow_missing)
    if fast is not None:
        return fast
    out = np.empty(len(raw), dtype=np.float64)
    for i, cell in enumerate(raw):
        col = labels[i] if labels is not None else column
        if cell is None or cell is pd.NA or (isinstance(cell, float) and math.isnan(cell)):
            number = math.nan
        elif isinstance(cell, (int, float, np.integer, np.floating)) and not isinstance(cell, bool):
            number = float(cell)
        else:
            text = str(cell).strip()
            if text == "":
                number = math.nan
            else:
                try:
                    number = float(text)
                except ValueError:
                    raise DataError(f"{text!r} is not {what}", file=file,
                                    line=_where(lines, i), column=col, value=text) from None
                if math.isnan(number):
                    raise DataError(f"{text!r} is not {what}", file=file,
                                    line=_where(lines, i), column=col, value=text)
        if math.isnan(number):
            if not allow_missing:
                raise DataError(f"missing value; expected {what}", file=file,
                                line=_where(lines, i), column=col)
        elif math.isinf(number):
            raise DataError(f"{cell!r} is infinite; expected a finite number", file=file,
                            line=_where(lines, i), column=col, value=cell)
        out[i] = number
    return out


def _parse_plain_numbers(raw: np.ndarray, allow_missing: bool) -> np.ndarray | None:
    """:func:`parse_numbers` of a column of only strings or only numbers (not bools), by
    ``float`` of each cell in C; None where the cell-by-cell rules must decide (a cell that
    is no number, blank, infinite or "nan", or a missing one where none may be)."""
    if pd.api.types.infer_dtype(raw, skipna=True) not in ("string", "floating", "integer",
                                                           "mixed-integer-float", "empty"):
        return None
    try:
        out = raw.astype(np.float64)
    except (TypeError, ValueError):
        return None
    bad = ~np.isfinite(out)
    if bad.any():
        missing = pd.isna(raw)
        if (bad & ~missing).any() or not allow_missing:
            return None
    return out


def parse_bools(values: pd.Series, *, file=None, column=None, lines=None) -> pd.Series:
    """Parse yes/no, true/false or 1/0 cells to a nullable boolean Series."""
    out = []
    for i, cell in enumerate(values.to_numpy(dtype=object)):
        if _is_missing(cell):
            out.append(pd.NA)
            continue
        if isinstance(cell, (bool, np.bool_)):
            out.append(bool(cell))
            continue
        text = str(cell).strip().lower()
        if text in _TRUE:
            out.append(True)
        elif text in _FALSE:
            out.append(False)
        else:
            raise DataError(f"{cell!r} is not a boolean; expected true or false", file=file,
                            line=_where(lines, i), column=column, value=cell)
    return pd.Series(out, index=values.index, dtype="boolean")


def check_ranges(cells: pd.DataFrame, info: pd.DataFrame, out_of_range: str = "error", *,
                 file=None, what: str = "score") -> pd.DataFrame:
    """Hold ``cells`` (columns ``model``, ``task``, ``score``, optional ``_line``)
    to their tasks' declared ranges in ``info`` (indexed by task).

    Returns ``cells`` (clipped where ``out_of_range="clip"``). See
    :data:`OUT_OF_RANGE`; a task without a declared bound is not checked
    against it.

    Raises
    ------
    DataError
        Under ``"error"``, naming the cells that pass their range by more
        than :data:`RANGE_TOLERANCE` of it.
    """
    if out_of_range not in OUT_OF_RANGE:
        raise CppGraphError(f"out_of_range must be one of {list(OUT_OF_RANGE)}; "
                            f"got {out_of_range!r}")
    lo = cells["task"].map(info["min_score"]).to_numpy(dtype=np.float64)
    hi = cells["task"].map(info["max_score"]).to_numpy(dtype=np.float64)
    x = cells["score"].to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        outside = (x < lo) | (x > hi)
        tol = RANGE_TOLERANCE * np.where(np.isfinite(hi - lo), hi - lo, 0.0)
        far = (x < lo - tol) | (x > hi + tol)
    if not outside.any():
        return cells
    lines = cells["_line"].to_numpy() if "_line" in cells.columns else None
    where = f"{file}: " if file else ""

    def named(mask) -> str:
        idx = np.flatnonzero(mask)
        shown = "; ".join(
            f"model {cells['model'].iat[i]!r}, task {cells['task'].iat[i]!r}: {x[i]:g} not in "
            f"[{lo[i]:g}, {hi[i]:g}]" + (f" (line {int(lines[i])})" if lines is not None else "")
            for i in idx[:5])
        return shown + (f" (and {len(idx) - 5} more)" if len(idx) > 5 else "")

    if out_of_range == "error" and far.any():
        raise DataError(f"{int(far.sum())} {what}(s) outside their task's declared range "
                        f"(min_score, max_score) by more than {RANGE_TOLERANCE:.0%} of it: "
                        f"{named(far)}. Fix the scores or the range, or clip them to the range "
                        "(--clip, out_of_range='clip') or keep them "
                        "(--allow-out-of-range, out_of_range='allow')", file=file)
    if out_of_range == "clip":
        warnings.warn(f"{where}{int(outside.sum())} {what}(s) clipped to their task's declared "
                      f"range: {named(outside)}", DataWarning, stacklevel=3)
        return cells.assign(score=np.where(outside, np.clip(x, lo, hi), x))
    warnings.warn(f"{where}{int(outside.sum())} {what}(s) outside their task's declared range, "
                  f"kept: {named(outside)}", DataWarning, stacklevel=3)
    return cells


def _categorical(values: pd.Series) -> pd.Series:
    """Categorical factor values as stripped strings (object dtype), missing as NaN."""
    def one(cell):
        if _is_missing(cell):
            return np.nan
        if isinstance(cell, (float, np.floating)) and float(cell).is_integer():
            cell = int(cell)
        text = str(cell).strip()
        return text if text else np.nan
    return pd.Series([one(c) for c in values.to_numpy(dtype=object)], index=values.index, dtype=object)


def infer_factor_kind(values: pd.Series) -> str:
    """``"numeric"`` if every present value parses as a number, else ``"categorical"``.

    A ``nan`` or ``inf`` among numbers makes the column numeric, so that reading it
    fails on that cell instead of turning the factor categorical.
    """
    present = [c for c in values.to_numpy(dtype=object) if not _is_missing(c)]
    if not present:
        return "categorical"
    finite = False
    for cell in present:
        if isinstance(cell, bool):
            return "categorical"
        try:
            finite |= math.isfinite(float(str(cell).strip()))
        except ValueError:
            return "categorical"
    return "numeric" if finite else "categorical"


def removable_cells(scores: pd.DataFrame, order) -> list:
    """The row labels of ``order`` (in that order) that can leave ``scores`` while every
    task keeps 2 or more scores and every model 1 or more, so each stays predictable."""
    left_task = scores.groupby("task").size()
    left_model = scores.groupby("model").size()
    held = []
    for i in order:
        model, task = scores.at[i, "model"], scores.at[i, "task"]
        if left_task[task] > 2 and left_model[model] > 1:
            left_task[task] -= 1
            left_model[model] -= 1
            held.append(i)
    return held


def suggest(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Close matches of ``name`` among ``candidates`` (case-insensitive first)."""
    candidates = list(candidates)
    key = _name_key(name)
    exact = [c for c in candidates if _name_key(c) == key and c != name]
    by_key = {_name_key(c): c for c in candidates}
    close = [by_key[k] for k in difflib.get_close_matches(key, list(by_key), n=n, cutoff=0.6)]
    seen, out = set(), []
    for c in exact + close:
        if c not in seen and c != name:
            seen.add(c)
            out.append(c)
    return out[:n]


def _did_you_mean(name, candidates) -> str:
    close = suggest(name, candidates)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def _warn_case_variants(names: Iterable[str], what: str, file) -> None:
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(_name_key(name), []).append(name)
    clashes = [sorted(g) for g in groups.values() if len(g) > 1]
    if clashes:
        shown = "; ".join(" vs ".join(repr(n) for n in g) for g in clashes[:5])
        more = f" (and {len(clashes) - 5} more)" if len(clashes) > 5 else ""
        where = f"{file}: " if file else ""
        warnings.warn(f"{where}{len(clashes)} {what} name(s) differ only by case or whitespace: "
                      f"{shown}{more}. If they are the same {what}, use one spelling.",
                      DataWarning, stacklevel=3)


@dataclass(frozen=True, eq=False)
class CollabData:
    """A models x tasks score matrix with task metadata and design factors.

    Build instances with :meth:`from_frames` (which validates) or a reader;
    the attributes are then consistent with each other:

    Attributes
    ----------
    scores : pandas.DataFrame
        Long table with columns ``model``, ``task``, ``score`` (float64, raw
        units), one row per observed cell, sorted by model then task order.
    task_info : pandas.DataFrame
        Indexed by ``task`` in task order; columns ``higher_is_better``
        (nullable boolean: missing means the metric has no direction),
        ``min_score`` / ``max_score`` (the metric's possible range, NaN if
        unknown), ``unit`` and ``metric_type`` (one of :data:`METRIC_TYPES`).
    model_factors : pandas.DataFrame
        Indexed by ``model``, one row per model in model order (all-missing
        rows allowed); numeric columns float64, categorical columns strings.
    task_factors : pandas.DataFrame
        Indexed by ``task``, one row per task in task order.
    factor_kinds : dict
        ``{"model": {factor: "numeric"|"categorical"}, "task": {...}}``.
    meta : dict
        Data-set level metadata: ``name``, ``description``, ``source``,
        ``synthetic`` (bool) and ``paper_rows`` (``"model"`` or ``"task"``:
        the rows of the source's wide file, for the paper's normalization).
    """

    scores: pd.DataFrame
    task_info: pd.DataFrame
    model_factors: pd.DataFrame
    task_factors: pd.DataFrame
    factor_kinds: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ build
    @classmethod
    def from_frames(cls, scores: pd.DataFrame, *, task_info: pd.DataFrame | None = None,
                    model_factors: pd.DataFrame | None = None,
                    task_factors: pd.DataFrame | None = None,
                    factor_kinds: Mapping | None = None, meta: Mapping | None = None,
                    files: Mapping[str, object] | None = None,
                    models: Iterable[str] | None = None,
                    tasks: Iterable[str] | None = None,
                    out_of_range: str | None = "error") -> "CollabData":
        """Validate raw tables and assemble a :class:`CollabData`.

        Parameters
        ----------
        scores : pandas.DataFrame
            Columns ``model``, ``task``, ``score``; an optional ``_line``
            column gives each row's line in its file, for error messages.
        task_info : pandas.DataFrame, optional
            Column ``task`` (or index) plus any of :data:`TASK_INFO_COLUMNS`.
        model_factors, task_factors : pandas.DataFrame, optional
            First column ``model`` / ``task`` (or the index), then factors.
        factor_kinds : mapping, optional
            Declared kinds; undeclared factor columns are inferred.
        meta : mapping, optional
            Data-set metadata (see the class docstring).
        files : mapping, optional
            File name of each table (keys ``scores``, ``task_info``,
            ``model_factors``, ``task_factors``) for error messages.
        models, tasks : iterable of str, optional
            Preferred order of models / tasks (the source's order).
        out_of_range : {"error", "clip", "allow"} or None
            Scores outside their task's declared range: see
            :data:`OUT_OF_RANGE` (None: not checked, for data checked before).

        Raises
        ------
        DataError
            On a missing column, a non-numeric or infinite score, conflicting
            duplicate cells, or a malformed factor table.
        """
        files = dict(files or {})
        meta = dict(meta or {})
        sfile = files.get("scores")
        declared = {}
        for entity, kinds in (factor_kinds or {}).items():
            if not isinstance(kinds, Mapping):
                raise DataError(f"factor_kinds: {entity!r} must map factor names to "
                                f"{list(FACTOR_KINDS)}; got {kinds!r}", file=files.get("meta"))
            declared[entity] = dict(kinds)

        missing = [c for c in SCORE_COLUMNS if c not in scores.columns]
        if missing:
            got = [str(c) for c in scores.columns if c != "_line"]
            raise DataError(f"missing column(s) {missing}; expected columns {list(SCORE_COLUMNS)}, "
                            f"got {got}", file=sfile)
        if len(scores) == 0:
            raise DataError("no scores: expected at least one row (model, task, score)", file=sfile)
        lines = scores["_line"].to_numpy() if "_line" in scores.columns else None
        for col in ("model", "task"):
            check_names(scores[col], col, file=sfile, lines=lines)
        values = parse_numbers(scores["score"], file=sfile, column="score", lines=lines,
                               allow_missing=False, what="a number (the score)")
        long = pd.DataFrame({"model": scores["model"].astype(str).to_numpy(dtype=object),
                             "task": scores["task"].astype(str).to_numpy(dtype=object),
                             "score": values})
        if lines is not None:
            long["_line"] = lines

        # Duplicate cells: identical repeats are dropped, conflicting ones are errors.
        dup = long.duplicated(["model", "task"], keep=False)
        if dup.any():
            for (model, task), grp in long[dup].groupby(["model", "task"], sort=False):
                if grp["score"].nunique() > 1:
                    where = (f" (lines {', '.join(str(x) for x in grp['_line'])})"
                             if "_line" in grp else "")
                    raise DataError(f"model {model!r}, task {task!r} has conflicting scores "
                                    f"{grp['score'].tolist()}{where}", file=sfile)
            n_rep = int(long.duplicated(["model", "task"]).sum())
            warnings.warn(f"{sfile + ': ' if sfile else ''}{n_rep} repeated (model, task) row(s) "
                          "with identical scores were merged", DataWarning, stacklevel=2)
            long = long.drop_duplicates(["model", "task"], keep="first")

        # Orders: explicit order first, then first appearance.
        model_order = _ordered(models, long["model"])
        task_order = _ordered(tasks, long["task"])

        # Per-task metadata.
        info = parse_task_info(task_info, task_order, files.get("task_info"))
        extra = [t for t in info.index if t not in set(task_order)]
        if extra:
            warnings.warn(f"{files.get('task_info') or 'task metadata'}: {len(extra)} task(s) have "
                          f"no scores and are ignored: {extra[:5]}", DataWarning, stacklevel=2)
        info = info.reindex(task_order)
        # an empty metric_type follows the direction (data/README.md)
        hib = info["higher_is_better"]
        implied = np.where(hib.isna().to_numpy(), "statistic",
                           np.where(hib.fillna(True).to_numpy(dtype=bool), "accuracy", "loss"))
        info["metric_type"] = info["metric_type"].where(info["metric_type"].notna(),
                                                        pd.Series(implied, index=info.index))
        if out_of_range is not None:
            long = check_ranges(long, info, out_of_range, file=sfile)


        _warn_case_variants(model_order, "model", sfile)
        _warn_case_variants(task_order, "task", sfile)

        # Factor tables.
        for entity, kinds in declared.items():
            bad = {f: k for f, k in kinds.items() if k not in FACTOR_KINDS}
            if entity not in ("model", "task") or bad:
                raise DataError(f"factor_kinds: unknown entity {entity!r} or kind(s) {bad}; expected "
                                f"'model'/'task' mapping factors to {list(FACTOR_KINDS)}",
                                file=files.get("meta"))
        mf, mk = _factor_frame(model_factors, "model", model_order, declared.get("model", {}),
                               files.get("model_factors"))
        tf, tk = _factor_frame(task_factors, "task", task_order, declared.get("task", {}),
                               files.get("task_factors"))

        rank_m = {m: i for i, m in enumerate(model_order)}
        rank_t = {t: i for i, t in enumerate(task_order)}
        long = long.assign(_m=long["model"].map(rank_m), _t=long["task"].map(rank_t))
        long = long.sort_values(["_m", "_t"], kind="stable")
        long = long[list(SCORE_COLUMNS)].reset_index(drop=True)

        meta.setdefault("name", "")
        meta.setdefault("description", "")
        meta.setdefault("source", "")
        meta.setdefault("synthetic", False)
        for key in ("name", "description", "source"):
            if not isinstance(meta[key], str):
                raise DataError(f"{key} must be a text; got {meta[key]!r}", file=files.get("meta"))
        if not isinstance(meta["synthetic"], (bool, np.bool_)):
            raise DataError(f"synthetic must be true or false (a JSON boolean); got "
                            f"{meta['synthetic']!r}", file=files.get("meta"))
        meta["synthetic"] = bool(meta["synthetic"])
        if meta.get("paper_rows") not in (None, "model", "task"):
            raise DataError(f"paper_rows must be 'model' or 'task'; got {meta['paper_rows']!r}",
                            file=files.get("meta"))
        meta.setdefault("paper_rows", None)
        return cls(scores=long, task_info=info, model_factors=mf, task_factors=tf,
                   factor_kinds={"model": mk, "task": tk}, meta=meta)

    # ------------------------------------------------------------ accessors
    @property
    def models(self) -> list[str]:
        """Model names in model order."""
        return list(self.model_factors.index)

    @property
    def tasks(self) -> list[str]:
        """Task names in task order."""
        return list(self.task_info.index)

    @property
    def n_observed(self) -> int:
        return len(self.scores)

    @property
    def density(self) -> float:
        """Share of the models x tasks cells that are observed."""
        cells = len(self.models) * len(self.tasks)
        return self.n_observed / cells if cells else 0.0

    def wide(self) -> pd.DataFrame:
        """The score matrix as a models x tasks DataFrame (NaN where unobserved)."""
        table = self.scores.pivot(index="model", columns="task", values="score")
        return table.reindex(index=self.models, columns=self.tasks)

    def subset(self, *, models: Iterable[str] | None = None,
               tasks: Iterable[str] | None = None) -> "CollabData":
        """A new data set restricted to the given models and/or tasks (order kept).

        Raises
        ------
        DataError
            If a name is unknown (with close matches). A task left without
            scores is dropped with a warning.
        """
        keep_m = self.models if models is None else list(models)
        keep_t = self.tasks if tasks is None else list(tasks)
        for names, known, what in ((keep_m, self.models, "model"), (keep_t, self.tasks, "task")):
            known_set = set(known)
            for name in names:
                if name not in known_set:
                    raise DataError(f"unknown {what} {name!r}{_did_you_mean(name, known)}")
        s = self.scores[self.scores["model"].isin(keep_m) & self.scores["task"].isin(keep_t)]
        scored = set(s["model"])
        present_m = [m for m in keep_m if m in scored]
        return CollabData.from_frames(
            s, task_info=self.task_info.loc[keep_t].reset_index(),
            model_factors=self.model_factors.loc[present_m].reset_index(),
            task_factors=self.task_factors.loc[keep_t].reset_index(),
            factor_kinds=self.factor_kinds, meta=self.meta, models=present_m, tasks=keep_t,
            out_of_range=None)

    def without(self, *, models: Iterable[str] = (), tasks: Iterable[str] = (),
                cells=None) -> "CollabData":
        """The same data without the given models and tasks (and every score of theirs)
        and without the score rows labelled ``cells``; unlike :meth:`subset`, no
        checks and no reordering (the names must be known)."""
        models, tasks = set(models), set(tasks)
        s = self.scores if cells is None else self.scores.drop(index=cells)
        keep_m = [m for m in self.models if m not in models]
        keep_t = [t for t in self.tasks if t not in tasks]
        return dataclasses.replace(
            self, scores=s[~s["model"].isin(models) & ~s["task"].isin(tasks)].reset_index(drop=True),
            model_factors=self.model_factors.loc[keep_m], task_factors=self.task_factors.loc[keep_t],
            task_info=self.task_info.loc[keep_t])

    def select_tasks(self, metric_types: Iterable[str]) -> "CollabData":
        """Keep only the tasks whose ``metric_type`` is one of ``metric_types``."""
        metric_types = list(metric_types)
        bad = [m for m in metric_types if m not in METRIC_TYPES]
        if bad:
            raise DataError(f"unknown metric type(s) {bad}; expected some of {list(METRIC_TYPES)}")
        keep = [t for t in self.tasks if self.task_info.at[t, "metric_type"] in metric_types]
        if not keep:
            raise DataError(f"no task has metric type {metric_types}")
        return self.subset(tasks=keep)

    def summary(self) -> dict:
        """Counts, density and per-task coverage as a JSON-serialisable dict."""
        n_models = len(self.models)
        per_task = []
        grouped = self.scores.groupby("task", sort=False)["score"]
        stats = pd.DataFrame({"observed": grouped.size(), "min": grouped.min(),
                              "max": grouped.max()})
        for task in self.tasks:
            row = self.task_info.loc[task]
            hib = row["higher_is_better"]
            per_task.append({
                "task": task,
                "observed": int(stats.at[task, "observed"]),
                "coverage": float(stats.at[task, "observed"]) / n_models if n_models else 0.0,
                "min": float(stats.at[task, "min"]),
                "max": float(stats.at[task, "max"]),
                "higher_is_better": None if pd.isna(hib) else bool(hib),
                "metric_type": row["metric_type"],
                "unit": None if pd.isna(row["unit"]) else str(row["unit"]),
            })
        per_model = self.scores.groupby("model").size()

        def factors(frame, kinds):
            return [{"factor": c, "kind": kinds[c], "present": int(frame[c].notna().sum()),
                     **({"values": int(frame[c].nunique())} if kinds[c] == "categorical" else {})}
                    for c in frame.columns]

        return {
            "name": self.meta.get("name", ""),
            "synthetic": bool(self.meta.get("synthetic", False)),
            "models": n_models,
            "tasks": len(self.tasks),
            "observed": self.n_observed,
            "density": self.density,
            "scores_per_model": {"min": int(per_model.min()), "median": float(per_model.median()),
                                 "max": int(per_model.max())},
            "metric_types": {k: int(v) for k, v in
                             self.task_info["metric_type"].value_counts().items()},
            "task_coverage": per_task,
            "model_factors": factors(self.model_factors, self.factor_kinds["model"]),
            "task_factors": factors(self.task_factors, self.factor_kinds["task"]),
        }

    def equals(self, other: "CollabData") -> bool:
        """True if every table, the factor kinds and the metadata are identical."""
        return (isinstance(other, CollabData)
                and self.scores.equals(other.scores)
                and self.task_info.equals(other.task_info)
                and self.model_factors.equals(other.model_factors)
                and self.task_factors.equals(other.task_factors)
                and self.factor_kinds == other.factor_kinds
                and self.meta == other.meta)

    def __repr__(self) -> str:
        tag = " synthetic" if self.meta.get("synthetic") else ""
        name = f" {self.meta['name']!r}" if self.meta.get("name") else ""
        return (f"CollabData({len(self.models)} models x {len(self.tasks)} tasks, "
                f"{self.n_observed} observed, density {self.density:.1%}{name}{tag})")


def _ordered(preferred, appearing: pd.Series) -> list[str]:
    seen = set()
    out = []
    present = set(appearing.to_numpy(dtype=object))
    for name in list(preferred or []):
        if name in present and name not in seen:
            seen.add(name)
            out.append(name)
    for name in pd.unique(appearing):
        if name not in seen:
            seen.add(name)
            out.append(name)
    return out


def _key_column(frame: pd.DataFrame, key: str, file) -> pd.DataFrame:
    if key not in frame.columns:
        if frame.index.name == key:
            frame = frame.reset_index()
        else:
            first = str(frame.columns[0]) if len(frame.columns) else None
            raise DataError(f"first column must be {key!r}; got {first!r}", file=file)
    return frame


def parse_task_info(task_info: pd.DataFrame | None, task_order, file=None) -> pd.DataFrame:
    """Validate a ``tasks.csv``-style table; one row per task of ``task_order``.

    Columns of the result: ``higher_is_better`` (nullable boolean), ``min_score``,
    ``max_score``, ``unit``, ``metric_type``. A task without a row (or no table
    at all) is higher-is-better with no declared range.
    """
    empty = pd.DataFrame(index=pd.Index(task_order, name="task"))
    if task_info is None:
        info = empty
        lines = None
    else:
        frame = _key_column(task_info, "task", file)
        lines = frame["_line"].to_numpy() if "_line" in frame.columns else None
        dup = frame["task"].duplicated(keep=False)
        if dup.any():
            name = frame.loc[dup, "task"].iloc[0]
            raise DataError(f"task {name!r} appears more than once", file=file,
                            line=_where(lines, int(np.flatnonzero(dup.to_numpy())[1])))
        info = frame.set_index(frame["task"].astype(str)).drop(columns=["task"])
        info.index.name = "task"
    out = pd.DataFrame(index=info.index)
    out["higher_is_better"] = (parse_bools(info["higher_is_better"], file=file,
                                           column="higher_is_better", lines=lines)
                               if "higher_is_better" in info else
                               pd.Series(True, index=info.index, dtype="boolean"))
    for col in ("min_score", "max_score"):
        out[col] = (parse_numbers(info[col], file=file, column=col, lines=lines)
                    if col in info else np.nan)
    out["unit"] = _categorical(info["unit"]) if "unit" in info else pd.Series(np.nan, index=info.index, dtype=object)
    if "metric_type" in info:
        mt = _categorical(info["metric_type"])
        for i, v in enumerate(mt.to_numpy(dtype=object)):
            if isinstance(v, str) and v not in METRIC_TYPES:
                raise DataError(f"unknown metric_type {v!r}; expected one of {list(METRIC_TYPES)}",
                                file=file, line=_where(lines, i), column="metric_type", value=v)
        out["metric_type"] = mt
    else:
        out["metric_type"] = pd.Series(np.nan, index=info.index, dtype=object)
    bad = np.flatnonzero((out["min_score"] >= out["max_score"]).to_numpy())
    if len(bad):
        i = int(bad[0])
        t = out.index[i]
        raise DataError(f"task {t!r}: min_score {out.at[t, 'min_score']} must be below "
                        f"max_score {out.at[t, 'max_score']}", file=file, line=_where(lines, i))
    # Tasks without a metadata row get the defaults.
    out = out.reindex(list(out.index) + [t for t in task_order if t not in out.index])
    out["higher_is_better"] = out["higher_is_better"].astype("boolean")
    fill = [t for t in task_order if t not in info.index]
    out.loc[fill, "higher_is_better"] = True
    out["unit"] = out["unit"].astype(object)
    out["metric_type"] = out["metric_type"].astype(object)
    return out


#: The largest magnitude a numeric factor may have (FLOPs are about 1e25; the factor
#: encoder bins on a log scale, which overflows near 1e308).
MAX_FACTOR = 1e100


def _factor_frame(frame, key, order, declared, file):
    """Validate a factor table; return it indexed by ``key`` in ``order`` and its kinds."""
    index = pd.Index(order, name=key)
    if frame is None:
        return pd.DataFrame(index=index), {}
    frame = _key_column(frame, key, file)
    lines = frame["_line"].to_numpy() if "_line" in frame.columns else None
    frame = frame.drop(columns=[c for c in ("_line",) if c in frame.columns])
    names = frame[key]
    check_names(names, key, file=file, lines=lines)
    names = names.astype(str)
    dup = names.duplicated(keep=False).to_numpy()
    if dup.any():
        second = int(np.flatnonzero(dup)[1])
        raise DataError(f"{key} {names.iloc[second]!r} has more than one factor row", file=file,
                        line=_where(lines, second), column=key, value=names.iloc[second])
    known = set(order)
    unknown = [n for n in names if n not in known]
    if unknown:
        hints = "; ".join(f"{n!r}{_did_you_mean(n, order)}" for n in unknown[:5])
        more = f" (and {len(unknown) - 5} more)" if len(unknown) > 5 else ""
        warnings.warn(f"{file + ': ' if file else ''}factor rows for {len(unknown)} {key}(s) "
                      f"with no scores are ignored: {hints}{more}", DataWarning, stacklevel=3)
    out = pd.DataFrame(index=pd.Index(names.to_numpy(dtype=object), name=key))
    kinds = {}
    for col in frame.columns:
        if col == key:
            continue
        col_name = str(col)
        if col_name.startswith("Unnamed:") or col_name.strip() == "":
            raise DataError(f"factor column {col_name!r} has no name", file=file)
        kind = declared.get(col_name) or infer_factor_kind(frame[col])
        kinds[col_name] = kind
        series = frame[col].reset_index(drop=True)
        if kind == "numeric":
            values = parse_numbers(series, file=file, column=col_name, lines=lines,
                                   what="a number (numeric factor)")
            big = np.flatnonzero(np.abs(np.nan_to_num(values)) > MAX_FACTOR)
            if len(big):
                i = int(big[0])
                raise DataError(f"{values[i]:g} is beyond {MAX_FACTOR:g} in absolute value; a "
                                "numeric factor must be a plausible quantity", file=file,
                                line=_where(lines, i), column=col_name, value=series.iloc[i])
            out[col_name] = values
        else:
            out[col_name] = _categorical(series).to_numpy(dtype=object)
    out = out[~out.index.duplicated()]
    out = out.reindex(index)
    for col, kind in kinds.items():
        out[col] = out[col].astype(np.float64 if kind == "numeric" else object)
    return out, kinds
