"""The ``cppgraph`` command line: parses options, calls the library, formats results.

Library errors (:class:`~cppgraph.errors.CppGraphError`) become a one-line
``error: ...`` message and exit code 1; ``--debug`` shows the full traceback.
Output piped into a reader that stops early (``| head``) ends quietly.
Each command's module is imported only when that command runs, so that
``--help`` and the ``data`` commands start without loading torch.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import warnings

import click

from cppgraph import __version__
from cppgraph.errors import CppGraphError, DataWarning


#: The commands, imported when run: name -> (module, attribute, one-line help).
COMMANDS = {
    "data": ("cppgraph.cli.data", "data",
             "Import score matrices into the canonical form and check data folders."),
    "fit": ("cppgraph.cli.engine", "fit", "Fit the engine on a canonical data folder."),
    "predict": ("cppgraph.cli.engine", "predict", "Predict scores with a fitted model."),
    "suggest": ("cppgraph.cli.engine", "suggest",
                "Which tasks to evaluate next on a model, to improve its other predictions."),
    "info": ("cppgraph.cli.engine", "info",
             "A fitted model's card: training data, fit, settings, version."),
    "evaluate": ("cppgraph.cli.evaluate", "evaluate",
                 "Measure the engine and the baselines on held-out cells."),
    "neighbours": ("cppgraph.cli.inspect", "neighbours",
                   "The models (or tasks) most similar to one, in a fitted model."),
    "graph": ("cppgraph.cli.inspect", "graph",
              "Write the embedding-similarity graph of the models (or tasks)."),
    "embeddings": ("cppgraph.cli.inspect", "embeddings", "Export the node embeddings."),
    "clusters": ("cppgraph.cli.inspect", "clusters",
                 "Cluster the models and compare the clusters with the families."),
    "explain": ("cppgraph.cli.explain", "explain", "Factor importance of a fitted model."),
}


class _Group(click.Group):
    """A click group that loads its commands on use (:data:`COMMANDS`) and turns
    library errors into one-line messages."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str):
        if name not in COMMANDS:
            return None
        module, attribute, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attribute)

    def format_commands(self, ctx: click.Context, formatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][2]) for name in self.list_commands(ctx)])

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except CppGraphError as err:
            if (ctx.obj or {}).get("debug"):
                raise
            click.echo(f"error: {err}", err=True)
            ctx.exit(1)
        except BrokenPipeError:
            _silence_stdout()
            ctx.exit(1)
        except OSError as err:
            if (ctx.obj or {}).get("debug"):
                raise
            where = f"{err.filename}: " if getattr(err, "filename", None) else ""
            click.echo(f"error: {where}{err.strerror or err}", err=True)
            ctx.exit(1)
        except Exception as err:  # noqa: BLE001 - never show users a raw traceback
            if (ctx.obj or {}).get("debug"):
                raise
            click.echo(f"internal error: {type(err).__name__}: {err} "
                       "(run with --debug for the traceback)", err=True)
            ctx.exit(1)


def _silence_stdout() -> None:
    """Point stdout at the null device, so that the interpreter's last flush
    into a closed pipe raises nothing (the recipe of Python's ``signal`` docs)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (e.g. captured)
        pass


def _show_warning(message, category, filename, lineno, file=None, line=None):
    if issubclass(category, DataWarning) or logging.getLogger("cppgraph").isEnabledFor(logging.INFO):
        click.echo(f"warning: {message}", err=True)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="cppgraph")
@click.option("-v", "--verbose", count=True, help="More output (-v: progress details, -vv: debug).")
@click.option("-q", "--quiet", is_flag=True, help="No progress output: results, warnings and errors only.")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool, debug: bool) -> None:
    """Predict how LLMs score on benchmarks they were never run on.

    cppgraph learns from the sparse matrix of published scores (models x
    tasks) and the design factors of models and tasks.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    ctx.obj["verbose"] = 0 if quiet else verbose
    ctx.obj["quiet"] = quiet
    level = logging.DEBUG if verbose >= 2 else logging.INFO if verbose == 1 else logging.WARNING
    logger = logging.getLogger("cppgraph")
    logger.setLevel(level)
    # One handler, bound to the current stderr (a new one on every invocation).
    for old in [h for h in logger.handlers if getattr(h, "_cppgraph_cli", False)]:
        logger.removeHandler(old)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler._cppgraph_cli = True
    logger.addHandler(handler)
    warnings.simplefilter("always", DataWarning)
    warnings.showwarning = _show_warning


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="cppgraph")
