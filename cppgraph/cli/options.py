"""Options shared by several commands."""

from __future__ import annotations

import functools

import click

from cppgraph.threads import DEFAULT_THREADS, limit_threads


class InputPath(click.Path):
    """A file or folder that a command reads: its outputs may not be, contain or lie
    inside it (see :class:`Command`)."""

    def __init__(self):
        super().__init__(path_type=str)


class Command(click.Command):
    """A command whose outputs never replace what it reads: while it runs, the values of
    its :class:`InputPath` parameters are protected
    (:func:`cppgraph.data.canonical.protect_inputs`)."""

    def invoke(self, ctx: click.Context):
        from cppgraph.data.canonical import protect_inputs
        inputs = [ctx.params.get(p.name) for p in self.params if isinstance(p.type, InputPath)]
        with protect_inputs(inputs):
            return super().invoke(ctx)


class Group(click.Group):
    """A group of :class:`Command` s."""

    command_class = Command


def distinct_outputs(**paths) -> None:
    """A usage error when two of a command's output options (``name=path``, e.g.
    ``out=...``; None when not given) name the same file."""
    from pathlib import Path
    seen = {}
    for name, path in paths.items():
        if path:
            option, key = "--" + name.replace("_", "-"), Path(path).resolve()
            if key in seen:
                raise click.UsageError(f"{seen[key]} and {option} name the same file {path}; "
                                       "give each its own")
            seen[key] = option


def threads_option(command):
    """Add ``--threads N`` to a command that computes; the command runs with torch and
    the BLAS libraries limited to N threads and receives ``threads``."""
    @click.option("--threads", type=click.IntRange(min=0), default=DEFAULT_THREADS,
                  show_default=True,
                  help="CPU threads for the computation (0: one per core). More than 1 pays "
                       "off only on an otherwise idle machine.")
    @functools.wraps(command)
    def wrapped(*args, threads, **kwargs):
        with limit_threads(threads) as count:
            return command(*args, threads=count, **kwargs)
    return wrapped


def range_option(command):
    """Add ``--clip`` and ``--allow-out-of-range`` to a command that reads scores; the
    command receives ``out_of_range`` (see ``cppgraph.data.dataset.OUT_OF_RANGE``)."""
    @click.option("--allow-out-of-range", "allow", is_flag=True,
                  help="Keep scores outside their task's declared range (with a warning).")
    @click.option("--clip", is_flag=True,
                  help="Clip scores outside their task's declared range to it (with a warning). "
                       "Default: more than 1% of the range outside is an error.")
    @functools.wraps(command)
    def wrapped(*args, clip, allow, **kwargs):
        if clip and allow:
            raise click.UsageError("choose one of --clip and --allow-out-of-range")
        mode = "clip" if clip else "allow" if allow else "error"
        return command(*args, out_of_range=mode, **kwargs)
    return wrapped


#: Output formats of the commands that print results.
OUTPUTS = ("table", "csv", "json")


def output_options(command):
    """Add ``--format table|csv|json`` and ``--out FILE`` to a command that prints
    results; it receives ``fmt`` and ``out`` (print with :func:`emit`)."""
    @click.option("--out", "out", type=click.Path(path_type=str), default=None,
                  help="Write the result to this file instead of stdout (--force replaces it).")
    @click.option("--format", "fmt", type=click.Choice(OUTPUTS), default="table",
                  show_default=True, help="Output format.")
    @functools.wraps(command)
    def wrapped(*args, **kwargs):
        return command(*args, **kwargs)
    return wrapped


def plain_table(frame) -> str:
    """Plain-text table; text columns (names, member lists) aligned left."""
    import pandas as pd
    frame = frame.copy()
    for col in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[col]):
            values = frame[col].map(str)
            width = max([len(str(col))] + list(values.str.len()))
            frame[col] = values.str.ljust(width)
            frame = frame.rename(columns={col: str(col).ljust(width)})
    text = frame.to_string(index=False, float_format=lambda v: f"{v:.4f}")
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


def emit(table, fmt: str, out: str | None = None, *, force: bool = False, text: str | None = None,
         meta: dict | None = None) -> None:
    """Print (or write to ``out``) a result: ``table`` (a DataFrame) as a plain table
    (or ``text``, when given), CSV or JSON records; ``meta`` adds fields to the JSON
    (an object with the records under ``rows``)."""
    import json

    from cppgraph.data.canonical import write_text_atomic
    if fmt == "csv":
        body = table.to_csv(index=False)
    elif fmt == "json":
        rows = json.loads(table.to_json(orient="records"))
        body = json.dumps({**json_safe(meta), "rows": rows} if meta else rows, indent=1,
                          ensure_ascii=False, allow_nan=False) + "\n"
    else:
        body = text if text is not None else plain_table(table)
    if out:
        write_text_atomic(out, body, overwrite=force)
        tell(f"wrote {out}")
    else:
        click.echo(body, nl=False)


def json_safe(value):
    """``value`` with every NaN or infinite number replaced by None (null in JSON, as
    pandas writes the rows; NaN is not JSON)."""
    import math
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def quiet() -> bool:
    """Whether ``cppgraph -q`` asked for no progress output."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and (ctx.find_root().obj or {}).get("quiet"))


def tell(line: str) -> None:
    """A confirmation on stderr ("wrote FILE"), not shown under ``-q``."""
    if not quiet():
        click.echo(line, err=True)


class Progress:
    """Progress of long work on stderr: a bar with ETA (tqdm) on a terminal, plain
    lines otherwise (logs, pipes), nothing under ``-q``."""

    def __init__(self, total: int, desc: str, *, unit: str = "it"):
        import sys
        self.silent = quiet()
        self.bar = None
        if not self.silent and sys.stderr.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=unit == "B",
                            file=sys.stderr, leave=False, dynamic_ncols=True)

    def step(self, status: str = "", line: str | None = None, *, n: int = 1) -> None:
        """``n`` units done; ``status`` goes beside the bar, ``line`` (if any) is printed
        where there is no bar."""
        if self.silent:
            return
        if self.bar is not None:
            if status:
                self.bar.set_postfix_str(status, refresh=False)
            self.bar.update(n)
        elif line is not None:
            click.echo(line, err=True)

    def restart(self, total: int, desc: str) -> None:
        """Start the bar again from 0 for the next phase of the work."""
        if self.bar is not None:
            self.bar.reset(total=total)
            self.bar.set_description_str(desc, refresh=False)

    def note(self, line: str) -> None:
        """A message (not shown under ``-q``)."""
        if not self.silent:
            (self.bar.write if self.bar is not None else lambda t: click.echo(t, err=True))(line)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
