"""``cppgraph evaluate``: accuracy of the engine and the baselines under a protocol."""

from __future__ import annotations

import click

from cppgraph.cli.data import _reader_options
from cppgraph.cli.options import (Command, InputPath, Progress, distinct_outputs, emit,
                                  output_options, range_option, tell, threads_option)
from cppgraph.config import Config
from cppgraph.data import FORMATS, METRIC_TYPES, read_data
from cppgraph.data.canonical import check_output_file, write_text_atomic
from cppgraph.evaluate.methods import METHODS, make_methods
from cppgraph.evaluate.metrics import HIGHER_IS_BETTER
from cppgraph.evaluate.report import parity_plot, summary_table
from cppgraph.evaluate.runner import UNITS, evaluate as run_evaluation
from cppgraph.evaluate.splits import CHOICES, PROTOCOLS
from cppgraph.plots import check_png_path


def _methods_option(ctx, param, value):
    names = [n.strip() for v in value for n in v.split(",") if n.strip()]
    if value and not names:
        raise click.BadParameter("names no method; leave it out for all of them, or name some "
                                 f"of: {', '.join(METHODS)}")
    return names or ["all"]


@click.command("evaluate", cls=Command)
@click.argument("data_dir", type=InputPath())
@click.option("--input-format", "input_format", type=click.Choice(list(FORMATS)),
              default="canonical", show_default=True, help="Format of DATA_DIR.")
@click.option("--metric-type", "metric_types", type=click.Choice(list(METRIC_TYPES)), multiple=True,
              help="helm: keep only metrics of this type (repeatable).")
@click.option("--protocol", type=click.Choice(list(PROTOCOLS)), default="random", show_default=True)
@click.option("--test-size", type=float, default=None,
              help="Share held out: of the cells (random, default 0.05), the models (cold-model, "
                   "cold-family, frontier, default 0.1) or the tasks (cold-task, default 0.1).")
@click.option("--known", type=int, default=0, show_default=True,
              help="cold-model, cold-task, frontier: scores kept known per held-out model or "
                   "task.")
@click.option("--choose", type=click.Choice(list(CHOICES)), default="random", show_default=True,
              help="cold-model: how the --known scores of a held-out model are chosen among "
                   "its scored tasks: at random, the tasks with the most scores (popular), or "
                   "as 'cppgraph suggest' proposes from the engine fitted on the training part.")
@click.option("--seeds", type=int, default=5, show_default=True,
              help="Number of seeded splits (seeds 0 .. N-1).")
@click.option("--methods", "methods", multiple=True, callback=_methods_option,
              help=f"Comma-separated, repeatable; 'all' (default) or some of: {', '.join(METHODS)}.")
@click.option("--normalization", type=click.Choice(list(UNITS)), default="minmax",
              show_default=True,
              help="Scale of the normalized metrics: per-task min-max, or the CPP paper's.")
@click.option("--predictions", type=click.Path(path_type=str), default=None,
              help="Also write every test cell's prediction (all methods and seeds) to this CSV.")
@click.option("--plot", type=click.Path(path_type=str), default=None,
              help="Also write a parity plot (PNG) of the test cells: one panel per method, "
                   "every seed, normalized scale.")
@click.option("--config", "config_file", type=InputPath(), default=None,
              help="TOML configuration of the cppgraph methods and of --choose suggest's "
                   "engine (keys of cppgraph.config.Config; cppgraph-lightgcn and "
                   "cppgraph-sage still set their encoder); default: built-in defaults.")
@click.option("--force", is_flag=True,
              help="Replace the --predictions, --plot and --out files if they exist.")
@output_options
@range_option
@threads_option
def evaluate(data_dir, input_format, metric_types, protocol, test_size, known, choose, seeds, methods,
             normalization, predictions, plot, config_file, force, fmt, out, out_of_range,
             threads) -> None:
    """Measure methods on held-out cells of DATA_DIR under a protocol.

    Each seed makes one split; every method learns from its training part
    and predicts its test cells. Prints mean ± std over seeds of each metric
    (the table is sorted by normalized MAE); --format csv and json give
    records with keys method, protocol, metric, mean, std, seeds.
    """
    if seeds < 1:
        raise click.BadParameter(f"must be 1 or more; got {seeds}", param_hint="--seeds")
    if known < 0:
        raise click.BadParameter(f"must be 0 or more; got {known}", param_hint="--known")
    if choose != "random" and protocol != "cold-model":
        raise click.BadParameter(f"applies to --protocol cold-model, not {protocol}",
                                 param_hint="--choose")
    distinct_outputs(predictions=predictions, plot=plot, out=out)
    for path in (predictions, out):
        if path:
            check_output_file(path, overwrite=force)  # before the long run, not after
    if plot:
        check_png_path(plot, overwrite=force)
    config = Config.from_file(config_file) if config_file else None
    data = read_data(data_dir, input_format, out_of_range=out_of_range,
                     **_reader_options(input_format, None, metric_types))
    chosen = make_methods(methods, n_jobs=threads, config=config)
    bar = Progress(seeds * len(chosen), "evaluate")
    bar.note(f"evaluating {len(chosen)} method(s) on {data!r}, protocol {protocol}, "
             f"{seeds} seed(s)")
    try:
        result = run_evaluation(data, protocol, chosen, seeds=range(seeds), test_size=test_size,
                                known=known, choose=choose, config=config, unit=normalization,
                                progress=lambda line: bar.step(" ".join(line.split()[:5]), line))
    finally:
        bar.close()
    summary = result.summary()
    if predictions:
        write_text_atomic(predictions, result.predictions.to_csv(index=False), overwrite=force)
        tell(f"wrote {len(result.predictions)} predictions to {predictions}")
    if plot:
        name = data.meta.get("name") or data_dir
        parity_plot(result.predictions, plot,
                    title=f"{name}: {protocol}, {seeds} seed(s), {normalization} scale")
        tell(f"wrote {plot}")
    records = summary.assign(protocol=protocol)[["method", "protocol", "metric", "mean", "std",
                                                 "seeds"]]
    better = ", ".join(m for m in HIGHER_IS_BETTER)
    text = (f"protocol {protocol}; normalized metrics on the {normalization} scale; "
            f"higher is better for {better}, lower for the rest\n"
            + summary_table(summary).to_string(index=False) + "\n")
    emit(records, fmt, out, force=force, text=text)
