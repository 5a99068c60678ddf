"""``cppgraph data``: import public score matrices and check data folders."""

from __future__ import annotations

import functools
import json

import click
import pandas as pd

from cppgraph.cli.options import (OUTPUTS, Group, InputPath, Progress, emit, json_safe, range_option,
                                  tell)
from cppgraph.data import FORMATS, METRIC_TYPES, import_data, read_data, tables


def table_options(command):
    """Options of ``--input-format long`` and ``wide`` (a user's own CSV or Excel table);
    the command receives them as ``table``, a dict."""
    options = [
        click.option("--model-col", default=None, help="long, wide: the model name column "
                     "[default: model]."),
        click.option("--task-col", default=None, help="long: the task name column [default: task]."),
        click.option("--score-col", default=None, help="long: the score column [default: score]."),
        click.option("--model-factor", "model_factors", multiple=True, metavar="COL",
                     help="long: a column taken as a model factor (repeatable)."),
        click.option("--factor-cols", default=None, metavar="COL[,COL...]",
                     help="wide: model columns that are factors, not tasks."),
        click.option("--higher-is-better", multiple=True, metavar="TASK",
                     help="long, wide: a higher-is-better task (the default; repeatable)."),
        click.option("--lower-is-better", multiple=True, metavar="TASK",
                     help="long, wide: a lower-is-better task (repeatable)."),
        click.option("--range", "ranges", multiple=True, metavar="[TASK=]LO:HI",
                     help="long, wide: a task's declared score range, or without TASK every "
                          "other task's (repeatable)."),
    ]

    @functools.wraps(command)
    def wrapped(*args, model_col, task_col, score_col, model_factors, factor_cols,
                higher_is_better, lower_is_better, ranges, **kwargs):
        table = {"model_col": model_col, "task_col": task_col, "score_col": score_col,
                 "model_factors": model_factors, "lower_is_better": lower_is_better,
                 "higher_is_better": higher_is_better, "ranges": ranges,
                 "factor_cols": [c.strip() for c in factor_cols.split(",") if c.strip()]
                 if factor_cols else None}
        return command(*args, table=table, **kwargs)
    for option in reversed(options):
        wrapped = option(wrapped)
    return wrapped


def _reader_options(fmt: str, scores: str | None, metric_types: tuple[str, ...],
                    table: dict | None = None) -> dict:
    options = dict(tables.table_options(fmt, table or {}))
    if scores is not None:
        if fmt != "open-llm-leaderboard":
            raise click.UsageError("--scores applies only to --input-format open-llm-leaderboard")
        options["scores"] = scores
    if metric_types:
        if fmt != "helm":
            raise click.UsageError("--metric-type applies only to --input-format helm")
        options["metric_types"] = list(metric_types)
    return options


def format_summary(summary: dict) -> str:
    """A readable text report of :meth:`CollabData.summary`."""
    lines = []
    title = summary["name"] or "data set"
    if summary["synthetic"]:
        title += "  [SYNTHETIC: generated data, not real scores]"
    lines.append(title)
    cells = summary["models"] * summary["tasks"]
    lines.append(f"models    {summary['models']}")
    lines.append(f"tasks     {summary['tasks']}")
    lines.append(f"observed  {summary['observed']} of {cells} cells "
                 f"(density {summary['density']:.1%})")
    spm = summary["scores_per_model"]
    lines.append(f"scores per model: min {spm['min']}, median {spm['median']:g}, max {spm['max']}")
    lines.append("metric types: " + ", ".join(f"{k} {v}" for k, v in summary["metric_types"].items()))
    undirected = [t["task"] for t in summary["task_coverage"] if t["higher_is_better"] is None]
    if undirected:
        lines.append(f"without a direction ({len(undirected)}; fit cannot use them: set their "
                     "higher_is_better or leave them out): " + ", ".join(undirected[:5])
                     + (", ..." if len(undirected) > 5 else ""))
    for key, label in (("model_factors", "model factors"), ("task_factors", "task factors")):
        facs = summary[key]
        if not facs:
            lines.append(f"{label}: none")
            continue
        parts = []
        for f in facs:
            extra = f", {f['values']} values" if "values" in f else ""
            parts.append(f"{f['factor']} ({f['kind']}{extra}, {f['present']} present)")
        lines.append(f"{label}: " + "; ".join(parts))
    table = pd.DataFrame(summary["task_coverage"])
    table["coverage"] = (table["coverage"] * 100).map("{:.0f}%".format)
    table["direction"] = table["higher_is_better"].map(
        {True: "higher", False: "lower"}).fillna("none")
    table = table[["task", "observed", "coverage", "min", "max", "direction", "unit", "metric_type"]]
    table["unit"] = table["unit"].fillna("")
    lines.append("")
    lines.append("per-task coverage:")
    lines.append(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return "\n".join(lines)


@click.group(cls=Group)
def data() -> None:
    """Import score matrices into the canonical form and check data folders."""


_FORMAT = click.Choice(list(FORMATS))


@data.command("import")
@click.argument("source", type=InputPath())
@click.option("--input-format", "--format", "fmt", type=_FORMAT, required=True,
              help="Format of SOURCE (cpp-llm: a folder; helm, open-llm-leaderboard: a file; "
                   "obsscaling: a file or folder; canonical: a folder).")
@click.option("--out", "out", type=click.Path(path_type=str), required=True,
              help="Folder to write the canonical CSVs to (must be new or empty).")
@click.option("--force", is_flag=True,
              help="Replace --out if it is a data folder cppgraph wrote with nothing else in "
                   "it (never an input, nor a folder holding or inside one).")
@click.option("--scores", type=click.Choice(["raw", "normalized"]), default=None,
              help="open-llm-leaderboard: raw values in [0,1] (default) or the leaderboard's "
                   "normalized 0-100 scores.")
@click.option("--metric-type", "metric_types", type=click.Choice(list(METRIC_TYPES)),
              multiple=True, help="helm: keep only metrics of this type (repeatable).")
@table_options
@range_option
def import_(source, fmt, out, force, scores, metric_types, table, out_of_range) -> None:
    """Read SOURCE in format --format and write the canonical CSVs to --out.

    Nothing is written unless the whole import succeeds.
    """
    collab = import_data(source, fmt, out, overwrite=force, out_of_range=out_of_range,
                         **_reader_options(fmt, scores, metric_types, table))
    tell(f"wrote {out}: {collab!r}")


def _input_or_output(ctx, param, value):
    """``data check --format``: an output format, or (the older spelling) PATH's format."""
    if value is None or value in OUTPUTS:
        return value
    if value in FORMATS:
        ctx.meta["input_format"] = value
        return None
    raise click.BadParameter(f"{value!r} is neither an output format ({', '.join(OUTPUTS)}) "
                             f"nor an input format ({', '.join(FORMATS)})")


@data.command("check")
@click.argument("path", type=InputPath())
@click.option("--input-format", "input_format", type=_FORMAT, default=None,
              help="Format of PATH (default canonical).")
@click.option("--format", "fmt", default=None, callback=_input_or_output,
              metavar="[table|csv|json]",
              help="Output: a readable summary, the per-task coverage as CSV, or the summary "
                   "as one JSON object.")
@click.option("--json", "as_json", is_flag=True, hidden=True)
@click.option("--out", "out", type=click.Path(path_type=str), default=None,
              help="Write the result to this file instead of stdout.")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@table_options
@range_option
@click.pass_context
def check(ctx, path, input_format, fmt, as_json, out, force, table, out_of_range) -> None:
    """Validate a data folder (or file) and print a summary.

    The summary gives models, tasks, observed cells, density and per-task
    coverage.
    """
    input_format = input_format or ctx.meta.get("input_format") or "canonical"
    fmt = "json" if as_json else fmt or "table"
    collab = read_data(path, input_format, out_of_range=out_of_range,
                       **_reader_options(input_format, None, (), table))
    summary = collab.summary()
    coverage = pd.DataFrame(summary["task_coverage"])
    if fmt == "json":
        text = json.dumps(json_safe(summary), ensure_ascii=False, allow_nan=False) + "\n"
        emit(coverage, "table", out, force=force, text=text)
    else:
        emit(coverage, fmt, out, force=force, text=format_summary(summary) + "\n")


@data.command("pull")
@click.argument("name", required=False)
@click.option("--list", "show_list", is_flag=True, help="List the known sources and stop.")
@click.option("--out", "out", type=click.Path(path_type=str), default=None,
              help="Folder to write the canonical CSVs to [default: NAME].")
@click.option("--cache", type=click.Path(path_type=str), default=None,
              help="Folder of downloaded files [default: the user's cache folder, or "
                   "$CPPGRAPH_CACHE].")
@click.option("--refresh", is_flag=True, help="Download again even when the cache has the files.")
@click.option("--force", is_flag=True,
              help="Replace --out if it is a data folder cppgraph wrote with nothing else in "
                   "it (never an input, nor a folder holding or inside one).")
@click.option("--format", "fmt", type=click.Choice(OUTPUTS), default="table", show_default=True,
              help="--list output format.")
@range_option
def pull(name, show_list, out, cache, refresh, force, fmt, out_of_range) -> None:
    """Download the public score matrix NAME and write it as a canonical folder.

    The files come from a pinned commit of their repository, are checked
    against their sha256 and kept in a cache: a second pull makes no
    request. --list shows the sources.
    """
    from cppgraph.data import pull as sources

    if show_list:
        table = pd.DataFrame([{"name": s.name, "holds": s.holds, "licence": s.licence,
                               "files": s.origin} for s in sources.SOURCES.values()])
        text = "\n".join(f"{s.name}\n  {s.holds}\n  licence: {s.licence}\n  files: {s.origin}"
                         for s in sources.SOURCES.values()) + "\n"
        emit(table, fmt, None, text=text)
        return
    if name is None:
        raise click.UsageError("give a source NAME, or --list to see them")
    out = out or name
    report = _DownloadProgress()
    try:
        collab = sources.pull(name, out, cache=cache, refresh=refresh, overwrite=force,
                              report=report, out_of_range=out_of_range)
    finally:
        report.close()
    tell(f"wrote {out}: {collab!r}")


class _DownloadProgress:
    """``report`` of :func:`cppgraph.data.pull.pull`: a byte bar per file on a terminal, a
    line per file otherwise, nothing under -q (:class:`~cppgraph.cli.options.Progress`)."""

    def __init__(self):
        self.file, self.bar, self.done = None, None, 0

    def __call__(self, file, done: int, total: int) -> None:
        if file is not self.file:
            self.close()
            self.file, self.done = file, 0
            self.bar = Progress(total, file.path.rsplit("/", 1)[-1], unit="B")
            self.bar.note(f"downloading {file.repo}/{file.path} at {file.commit[:10]} "
                          f"({total:,} bytes)")
        self.bar.step(n=done - self.done)
        self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.bar = None
