"""``cppgraph neighbours``, ``graph``, ``embeddings`` and ``clusters``: look inside a fitted model."""

from __future__ import annotations

import json

import click

from cppgraph import inspect as cpi
from cppgraph.cli.options import (Command, InputPath, distinct_outputs, emit, output_options,
                                  plain_table, tell, threads_option)
from cppgraph.data.canonical import check_output_file, read_csv_lines
from cppgraph.estimator import CPPGraph

#: The text output of ``clusters`` lists at most this many models in a cluster of another
#: majority family (``--format json`` lists them all).
MISMATCH_ROWS = 30


@click.command("neighbours", cls=Command)
@click.argument("model_dir", type=InputPath())
@click.argument("name")
@click.option("-k", "--k", "k", type=int, default=None,
              help="How many neighbours (default 10, or all the others when fewer).")
@click.option("--by", type=click.Choice(["embedding", "scores"]), default="embedding",
              show_default=True,
              help="Cosine similarity of embeddings, or Pearson correlation of observed scores "
                   "(3 or more in common).")
@click.option("--task", "is_task", is_flag=True, help="NAME is a task: list similar tasks.")
@click.option("--new-model", type=InputPath(), default=None,
              help="NAME is a new model, the row of this model_factors.csv-style file.")
@click.option("--known-scores", type=InputPath(), default=None,
              help="With --new-model: a scores.csv of its known scores.")
@output_options
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@threads_option
def neighbours(model_dir, name, k, by, is_task, new_model, known_scores, fmt, out, force,
               threads) -> None:
    """The models (or tasks) most similar to NAME in the fitted model in MODEL_DIR.

    The last column names the 3 tasks (models) where the two differ most in
    predicted normalized score (neighbour minus NAME).
    """
    if new_model and is_task:
        raise click.UsageError("--new-model is for models; drop --task")
    if known_scores and not new_model:
        raise click.UsageError("--known-scores needs --new-model")
    if out:
        check_output_file(out, overwrite=force)
    est = CPPGraph.load(model_dir, n_jobs=threads)
    query, known, files = name, None, None
    if new_model:
        factors = read_csv_lines(new_model)
        if "model" in factors.columns:
            factors = factors[factors["model"] == name]
            if factors.empty:
                raise click.UsageError(f"{new_model} has no row for model {name!r}")
        known = read_csv_lines(known_scores) if known_scores else None
        if known is not None and "model" in known.columns:
            known = known[known["model"] == name]
        query = factors
        files = {"model_factors": new_model, "known_scores": known_scores}
    table = cpi.neighbours(est, query, k, by=by, kind="task" if is_task else "model",
                           known_scores=known, files=files)
    emit(table, fmt, out, force=force, meta={"query": name, "by": by})


@click.command("graph", cls=Command)
@click.argument("model_dir", type=InputPath())
@click.option("--knn", type=int, default=None,
              help="Link each node to its this many most similar others (default 5, or all "
                   "the others when fewer).")
@click.option("--task", "is_task", is_flag=True, help="A graph of tasks instead of models.")
@click.option("--out", "out", type=click.Path(path_type=str), required=True,
              help="File to write: .graphml, .gexf or .json (node-link).")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@threads_option
def graph(model_dir, knn, is_task, out, force, threads) -> None:
    """Write the embedding-similarity graph of the models (or tasks) in MODEL_DIR.

    Nodes carry their family and factor values and a Louvain community;
    edges carry the cosine similarity.
    """
    cpi.check_graph_path(out, overwrite=force)
    est = CPPGraph.load(model_dir, n_jobs=threads)
    g = cpi.similarity_graph(est, kind="task" if is_task else "model", knn=knn)
    cpi.export_graph(g, out, overwrite=force)
    communities = len({c for _, c in g.nodes(data="community")})
    tell(f"wrote {g.number_of_nodes()} nodes, {g.number_of_edges()} edges, "
         f"{communities} communities to {out}")


@click.command("embeddings", cls=Command)
@click.argument("model_dir", type=InputPath())
@click.option("--node-type", type=click.Choice(list(cpi.NODE_TYPES)), default="model",
              show_default=True)
@click.option("--out", "out", type=click.Path(path_type=str), required=True,
              help="File to write: .csv, .parquet, .npy (+ .names.txt) or .tsv "
                   "(TensorBoard projector, + .metadata.tsv).")
@click.option("--layer", type=click.Choice(list(cpi.EMBEDDING_LAYERS)), default=cpi.EMBEDDING_LAYERS[0],
              show_default=True,
              help="Each node's vector in the scoring head's first layer (its encoder embedding "
                   "and factor values), or the encoder's output alone.")
@click.option("--force", is_flag=True, help="Replace existing files.")
@threads_option
def embeddings(model_dir, node_type, out, layer, force, threads) -> None:
    """Export the node embeddings of the fitted model in MODEL_DIR."""
    cpi.check_embedding_path(out, overwrite=force)
    est = CPPGraph.load(model_dir, n_jobs=threads)
    frame = cpi.embeddings(est, node_type, layer)
    written = cpi.export_embeddings(frame, out, overwrite=force)
    dims = len(cpi.vector_columns(frame))
    tell(f"wrote {len(frame)} {node_type} embeddings ({dims} dimensions) to "
         f"{', '.join(map(str, written))}")


@click.command("clusters", cls=Command)
@click.argument("model_dir", type=InputPath())
@click.option("-k", "--k", "k", type=int, default=None, help="Number of clusters.")
@click.option("--auto", is_flag=True, help="Choose k by silhouette over 2..12 (the default).")
@click.option("--by", type=click.Choice(["profile", "embedding", "encoder"]), default="profile",
              show_default=True,
              help="Cluster the predicted score profiles (each model's level removed), the "
                   "embeddings (as exported by 'cppgraph embeddings') or the encoder's output.")
@click.option("--control", default=None, metavar="FACTOR[,FACTOR...]",
              help="With --by profile: model factors whose linear effect is removed first "
                   "(e.g. finetuned).")
@click.option("--map", "map_path", type=click.Path(path_type=str), default=None,
              help="Also draw a 2-D PNG map of what is clustered, coloured by cluster, with the "
                   "largest families labelled.")
@click.option("--method", type=click.Choice(["pca", "tsne"]), default="pca", show_default=True,
              help="Projection of the map.")
@click.option("--force", is_flag=True, help="Replace --map and --out if they exist.")
@output_options
@threads_option
def clusters(model_dir, k, auto, by, control, map_path, method, force, fmt, out,
             threads) -> None:
    """Cluster the models of MODEL_DIR and compare the clusters with the families.

    The table (and --format csv) lists the clusters; --format json also gives
    k, the silhouette, the agreement with the families and the models in a
    cluster of another majority family.
    """
    if k is not None and auto:
        raise click.UsageError("choose --k N or --auto, not both")
    distinct_outputs(map=map_path, out=out)
    if map_path:
        cpi.check_map_path(map_path, overwrite=force)
    if out:
        check_output_file(out, overwrite=force)
    control = [c.strip() for c in control.split(",") if c.strip()] if control else None
    est = CPPGraph.load(model_dir, n_jobs=threads)
    result = cpi.clusters(est, k, by=by, control=control)
    how = "chosen by silhouette" if k is None else "given"
    what = {"profile": "profiles", "embedding": "embeddings", "encoder": "encoder embeddings"}[by] + (
        f" without {', '.join(control)}" if control else "")
    text = (f"clustered: {what}; k = {result.k} ({how}), "
            f"silhouette {result.silhouette[result.k]:.3f}\n"
            f"against family ({result.n_scored} models): ARI {result.ari:.3f}, "
            f"NMI {result.nmi:.3f}\n" + plain_table(result.summary()))
    if len(result.mismatches):
        more = len(result.mismatches) - MISMATCH_ROWS
        text += (f"{len(result.mismatches)} models in a cluster of another majority family"
                 + (f" (the first {MISMATCH_ROWS}; --format json lists all)" if more > 0 else "")
                 + ":\n" + plain_table(result.mismatches.head(MISMATCH_ROWS)))
    meta = {"by": by, "control": control or [], "k": result.k, "k_chosen": k is None,
            "silhouette": float(result.silhouette[result.k]), "ari": float(result.ari),
            "nmi": float(result.nmi), "models_scored": int(result.n_scored),
            "mismatches": json.loads(result.mismatches.to_json(orient="records"))}
    emit(result.summary(), fmt, out, force=force, text=text, meta=meta)
    if map_path:
        cpi.embedding_map(est, map_path, method=method, by=by, control=control, overwrite=force,
                          clustering=result)
        tell(f"wrote {map_path}")
