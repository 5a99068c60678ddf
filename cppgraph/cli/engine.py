"""``cppgraph fit``, ``cppgraph predict`` and ``cppgraph info``."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pandas as pd

from cppgraph.cli.options import (Command, InputPath, Progress, emit, json_safe, output_options,
                                  range_option, tell, threads_option)
from cppgraph.config import MAX_SEED, Config
from cppgraph.data import read_canonical
from cppgraph.data.canonical import (check_output_file, check_output_folder, read_csv_lines,
                                     write_text_atomic)
from cppgraph.estimator import CPPGraph
from cppgraph.persist import card


@click.command(cls=Command)
@click.argument("data_dir", type=InputPath())
@click.option("--out", "out", type=click.Path(path_type=str), required=True,
              help="Model folder to write (must be new or empty).")
@click.option("--config", "config_file", type=InputPath(), default=None,
              help="TOML configuration (keys of cppgraph.config.Config); default: built-in defaults.")
@click.option("--seed", type=click.IntRange(0, MAX_SEED), default=None,
              help="Override random_state.")
@click.option("--encoder", type=click.Choice(["lightgcn", "sage"]), default=None,
              help="Override the configuration's encoder.")
@click.option("--force", is_flag=True,
              help="Replace --out if it is a model folder cppgraph wrote with nothing else in "
                   "it (never an input, nor a folder holding or inside one).")
@click.option("--every", type=click.IntRange(min=1), default=10, show_default=True,
              help="Without a progress bar (output not a terminal): print every this many epochs.")
@range_option
@threads_option
def fit(data_dir, out, config_file, seed, encoder, force, every, out_of_range, threads) -> None:
    """Fit the engine on the canonical data folder DATA_DIR and save it to --out."""
    check_output_folder(out, overwrite=force, kind="model")  # off the inputs: see Command
    config = Config.from_file(config_file) if config_file else Config()
    overrides = {k: v for k, v in (("random_state", seed), ("encoder", encoder)) if v is not None}
    overrides["n_jobs"] = threads
    data = read_canonical(data_dir, out_of_range=out_of_range)
    tag = " [SYNTHETIC data]" if data.meta.get("synthetic") else ""
    est = CPPGraph(config, **overrides)
    bar = Progress(est.config.epochs, "fit")
    bar.note(f"fitting {est.config.encoder} on {data!r}{tag}")

    def progress(entry):
        phase = entry.get("phase", "")
        if phase and entry["epoch"] == 1:
            bar.note("calibrating the prediction intervals: the same fit without a share of "
                     "the models, tasks and cells")
            bar.restart(est.config.epochs, "calibrate")
        line = (f"{phase + ' ' if phase else ''}epoch {entry['epoch']:4d}  train MSE "
                f"{entry['train_loss']:.5f}  val MSE {entry['val_loss']:.5f}  "
                f"({entry['seconds']:.1f}s)")
        show = entry["epoch"] == 1 or entry["epoch"] % every == 0
        bar.step(f"val MSE {entry['val_loss']:.5f}", line if show else None)

    try:
        est.fit(data, callback=progress)
    finally:
        bar.close()
    est.save(out, overwrite=force)
    mae = est.val_mae_
    units = est.data_.task_info["unit"].dropna().unique()
    raw = (f"{mae['raw']:.4g} {units[0]} raw, " if len(units) == 1
           and est.data_.task_info["unit"].notna().all() else "")
    click.echo(f"saved {out}: {len(est.log_)} epochs in {est.fit_seconds_:.1f}s, best epoch "
               f"{est.best_epoch_}, validation MAE {raw}{mae['normalized']:.4f} normalized "
               f"({mae['cells']} cells), benchmark-regression weight {est.observed_stage_.weight_:g}")


def _render(table: pd.DataFrame, fmt: str) -> str:
    if fmt == "csv":
        return table.to_csv(index=False)
    if fmt == "json":
        return json.dumps(json.loads(table.to_json(orient="records")), indent=1) + "\n"
    shown = table.copy()
    shown["observed"] = shown["observed"].map(lambda v: "" if pd.isna(v) else f"{v:.4g}")
    shown["observed_normalized"] = shown["observed_normalized"].map(
        lambda v: "" if pd.isna(v) else f"{v:.3f}")
    return shown.to_string(index=False, float_format=lambda v: f"{v:.4g}") + "\n"


@click.command(cls=Command)
@click.argument("model_dir", type=InputPath())
@click.option("--model", "model_name", default=None, help="One model (all its tasks, or --task).")
@click.option("--task", "task_name", default=None, help="One task (with --model: one cell).")
@click.option("--all", "all_cells", is_flag=True, help="Complete the whole matrix.")
@click.option("--new-models", type=InputPath(), default=None,
              help="Cold start: a model_factors.csv of models not seen in training.")
@click.option("--new-tasks", type=InputPath(), default=None,
              help="Cold start: a task_factors.csv of tasks not seen in training.")
@click.option("--task-info", type=InputPath(), default=None,
              help="With --new-tasks: a tasks.csv of their direction and range "
                   "(default: higher is better).")
@click.option("--known-scores", type=InputPath(), default=None,
              help="With --new-models or --new-tasks: a scores.csv of their known scores.")
@click.option("--interval", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=None, metavar="LEVEL",
              help="Add 'lower' and 'upper' columns (raw units): the prediction interval at "
                   "this level, e.g. 0.9.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True)
@click.option("--out", "out", type=click.Path(path_type=str), default=None,
              help="Write to this file instead of stdout.")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@range_option
@threads_option
def predict(model_dir, model_name, task_name, all_cells, new_models, new_tasks, task_info,
            known_scores, interval, fmt, out, force, out_of_range, threads) -> None:
    """Predict scores with the fitted model in MODEL_DIR.

    Each row has the prediction in raw units and normalized, and, for an
    observed (or known) cell, the observed value; that cell is predicted with
    its own score left out. With --interval, each row also has the interval
    that holds the true score with that probability (calibrated at fit time on
    held-out models, tasks and cells).
    """
    modes = sum([bool(all_cells), new_models is not None, new_tasks is not None,
                 model_name is not None or task_name is not None])
    if modes != 1:
        raise click.UsageError("choose one of --model/--task, --all, --new-models or --new-tasks")
    if known_scores and not (new_models or new_tasks):
        raise click.UsageError("--known-scores needs --new-models or --new-tasks")
    if task_info and not new_tasks:
        raise click.UsageError("--task-info needs --new-tasks")
    est = CPPGraph.load(model_dir, n_jobs=threads)
    data = est.data_
    known = read_csv_lines(known_scores) if known_scores else None
    if new_models:
        table = est.predict_new_models(read_csv_lines(new_models), known,
                                       out_of_range=out_of_range, interval=interval,
                                       files={"model_factors": new_models,
                                              "known_scores": known_scores})
    elif new_tasks:
        info = read_csv_lines(task_info) if task_info else None
        table = est.predict_new_tasks(read_csv_lines(new_tasks), known, task_info=info,
                                      out_of_range=out_of_range, interval=interval,
                                      files={"task_factors": new_tasks,
                                             "known_scores": known_scores,
                                             "task_info": task_info})
    else:
        models = [model_name] if model_name else data.models
        tasks = [task_name] if task_name else data.tasks
        pairs = pd.MultiIndex.from_product([models, tasks], names=["model", "task"]).to_frame(index=False)
        table = est.predict(pairs, interval=interval)
    text = _render(table, fmt)
    if out:
        write_text_atomic(out, text, overwrite=force)
        tell(f"wrote {len(table)} predictions to {out}")
    else:
        click.echo(text, nl=False)


@click.command(cls=Command)
@click.argument("model_dir", type=InputPath())
@click.option("--budget", type=int, required=True,
              help="How many tasks to propose per model (in order).")
@click.option("--model", "model_name", default=None,
              help="A training model: propose among the tasks it has no score for.")
@click.option("--new-models", type=InputPath(), default=None,
              help="A model_factors.csv of models not seen in training.")
@click.option("--known-scores", type=InputPath(), default=None,
              help="With --new-models: a scores.csv of their known scores (those tasks are "
                   "not proposed).")
@click.option("--target", "targets", multiple=True,
              help="A task whose predictions should improve (repeatable; then not itself "
                   "proposed); default: every task.")
@output_options
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@threads_option
def suggest(model_dir, budget, model_name, new_models, known_scores, targets, fmt, out, force,
            threads) -> None:
    """The --budget tasks to evaluate next on each model, in order, so that its
    predictions on the other tasks improve most.

    Each row gives, once that task and the ones above it are run, the expected
    mean absolute error (normalized scale) of the model's tasks (or --target tasks)
    that stay unknown after the whole plan, and how much that step lowered it
    (negative when a step, chosen for its own error, moves the others' a little
    the wrong way). The choice uses the fitted model's calibrated error scales,
    the correlations of the tasks' errors (a new model: the calibration fit's on
    its held-out models; a training model: the tasks' scores') and how known
    scores move its predictions; nothing is refitted.
    """
    from cppgraph.suggest import suggest as suggest_tasks

    if (model_name is None) == (new_models is None):
        raise click.UsageError("choose one of --model or --new-models")
    if known_scores and not new_models:
        raise click.UsageError("--known-scores needs --new-models")
    if budget < 1:
        raise click.BadParameter(f"must be 1 or more; got {budget}", param_hint="--budget")
    if out:
        check_output_file(out, overwrite=force)
    est = CPPGraph.load(model_dir, n_jobs=threads)
    factors = read_csv_lines(new_models) if new_models else None
    bar = Progress(1 if factors is None else len(factors), "suggest", unit="model")
    try:
        table = suggest_tasks(
            est, budget, model=model_name, model_factors=factors,
            known_scores=read_csv_lines(known_scores) if known_scores else None,
            targets=list(targets) or None,
            files={"model_factors": new_models, "known_scores": known_scores},
            progress=bar.step)
    finally:
        bar.close()
    emit(table, fmt, out, force=force)


def _card_text(card: dict) -> str:
    data, fit, saved = card["data"], card["fit"], card["saved_by"]
    tag = "  [SYNTHETIC data]" if data["synthetic"] else ""
    mae = fit["validation_mae_normalized"]
    lines = [f"model folder   {card['model_dir']}",
             f"saved by       cppgraph {saved['cppgraph']} (format {saved['format']}), "
             f"torch {saved['torch']}",
             f"training data  {data['name'] or '(unnamed)'}{tag}: {data['models']} models x "
             f"{data['tasks']} tasks, {data['observed']} scores (density {data['density']:.1%}), "
             f"fingerprint {data['fingerprint']}",
             f"fit            {fit['epochs']} epochs (best {fit['best_epoch']})"
             + (f" in {fit['seconds']:.1f}s" if fit["seconds"] is not None else ""),
             "validation     " + (f"MAE {mae:.4f} normalized on {fit['validation_cells']} cells"
                                  if mae is not None else "none"),
             "schedule       " + ", ".join(f"{k} {v}" for k, v in card["schedule"].items()),
             f"benchmark-regression weight {fit['benchmark_regression_weight']:g}",
             "known scores   of new models: {model}; of new tasks: {task}".format(
                 **fit["known_path"]),
             "settings:"]
    lines += [f"  {key} = {value!r}" for key, value in card["config"].items()]
    return "\n".join(lines) + "\n"


@click.command(cls=Command)
@click.argument("model_dir", type=InputPath())
@output_options
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
def info(model_dir, fmt, out, force) -> None:
    """The card of the fitted model in MODEL_DIR: training data (fingerprint and
    counts), fit (time, epochs, validation error), settings, and the version that
    saved it. The folder is checked as predict checks it."""
    if out:
        check_output_file(out, overwrite=force)
    model = card(CPPGraph, Path(model_dir))
    flat = pd.json_normalize(model, sep=".").T.reset_index()
    flat.columns = ["field", "value"]
    flat["value"] = flat["value"].map(lambda v: json.dumps(v) if isinstance(v, (list, dict))
                                      else v)
    if fmt == "json":
        emit(flat, "table", out, force=force,
             text=json.dumps(json_safe(model), indent=1, allow_nan=False) + "\n")
    else:
        emit(flat, fmt, out, force=force, text=_card_text(model))
