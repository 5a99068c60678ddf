"""``cppgraph explain``: which design factors drive the predictions of a fitted model."""

from __future__ import annotations

import sys

import click

from cppgraph import explain as cpx
from cppgraph.cli.options import (Command, InputPath, distinct_outputs, emit, output_options,
                                  plain_table, quiet, tell, threads_option)
from cppgraph.data.canonical import check_output_file
from cppgraph.estimator import CPPGraph


@click.command("explain", cls=Command)
@click.argument("model_dir", type=InputPath())
@click.option("--model", "model", default=None, help="Explain this model's predictions only.")
@click.option("--task", "task", default=None, help="Explain this task's predictions only.")
@click.option("--ablation", is_flag=True,
              help="Also refit without each factor and report the rise of the held-out MAE.")
@click.option("--seeds", type=int, default=3, show_default=True,
              help="With --ablation: splits of the training data to average over.")
@click.option("--protocol", type=click.Choice(["random", "cold-model"]), default="random",
              show_default=True,
              help="With --ablation: hold out 10% of the cells, or 10% of the models entirely.")
@click.option("--max-evals", type=int, default=None,
              help="Coalitions of the permutation SHAP estimate (more than "
                   f"{cpx.EXACT_MAX_FACTORS} factors); default 20 x (2 x factors + 1).")
@click.option("--plot", "plot", type=click.Path(path_type=str), default=None,
              help="Also write a bar chart of the importance as PNG.")
@click.option("--force", is_flag=True, help="Replace --plot and --out if they exist.")
@output_options
@threads_option
@click.pass_context
def explain(ctx, model_dir, model, task, ablation, seeds, protocol, max_evals, plot,
            force, fmt, out, threads) -> None:
    """Factor importance of the fitted model in MODEL_DIR.

    Prints the mean absolute SHAP value of each design factor over the
    predictions (all cells, or those of --model / --task); with both --model
    and --task, the SHAP value of each factor for that one prediction.
    """
    distinct_outputs(plot=plot, out=out)
    if plot:
        cpx.check_plot_path(plot, overwrite=force)
    if out:
        check_output_file(out, overwrite=force)
    est = CPPGraph.load(model_dir, n_jobs=threads)
    verbose = (ctx.obj or {}).get("verbose", 0) > 0
    shown = not quiet() and (verbose or sys.stderr.isatty())  # shap's own bar, with ETA
    result = cpx.shap_values(est, model=model, task=task, max_evals=max_evals, progress=shown)
    if model is not None and task is not None:
        one = result.one(model, task)
        head = (f"{model} on {task}: network prediction {result.prediction.iloc[0]:.4f} "
                f"(normalized) = {result.base.iloc[0]:.4f} with every factor removed "
                f"+ the SHAP values below ({result.method})\n")
        emit(one, fmt, out, force=force, text=head + plain_table(one),
             meta={"model": model, "task": task, "method": result.method,
                   "explained": "network prediction, normalized",
                   "prediction": float(result.prediction.iloc[0]),
                   "base": float(result.base.iloc[0])})
        if plot:
            cpx.importance_plot(one, plot, overwrite=force, title=f"{model} on {task}: SHAP")
            tell(f"wrote {plot}")
        if ablation:
            click.echo("(--ablation is global: run it without --model and --task)", err=True)
        return
    shap_table = cpx.global_importance(result)
    scope = "every cell" if model is None and task is None else f"the cells of {model or task}"
    head = (f"mean |SHAP| over {len(result.values)} predictions ({scope}; {result.method}; "
            "normalized-score units)\n")
    abl = None
    if ablation:
        progress = (lambda line: click.echo(line, err=True)) if shown else None
        if not quiet():
            click.echo(f"refitting without each of {len(result.factors)} factors on {seeds} "
                       f"{protocol} split(s)...", err=True)
        abl = cpx.ablation_importance(est, seeds=seeds, protocol=protocol, progress=progress)
        head += (f"ablation ({protocol}): held-out normalized MAE with every factor "
                 f"{abl.attrs['mae_all']:.4f}; delta_mae = MAE without the factor minus that\n")
    table = cpx.importance_table(shap_table, abl)
    meta = {"scope": scope, "predictions": len(result.values), "method": result.method,
            "explained": "network prediction, normalized"}
    if abl is not None:
        meta.update(ablation=protocol, mae_all=float(abl.attrs["mae_all"]))
    emit(table, fmt, out, force=force, text=head + plain_table(table), meta=meta)
    if plot:
        cpx.importance_plot(table, plot, overwrite=force, title=f"factor importance: {model_dir}")
        tell(f"wrote {plot}")
