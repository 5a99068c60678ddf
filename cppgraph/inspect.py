"""Look inside a fitted model: node embeddings, neighbours, similarity graphs, clusters.

Every function takes a fitted :class:`~cppgraph.estimator.CPPGraph`. A node's
embedding is its vector in the scoring head's first layer on the full training
graph: the part of each of its scores that depends on the node alone, made of
its encoder embedding and its factor values
(:meth:`~cppgraph.estimator.CPPGraph.node_embeddings`; ``layer="encoder"``
gives the encoder's output alone).

Embedding frames
    :func:`embeddings` returns one row per node, indexed by name (index name
    ``model``, ``task`` or ``factor``), with the vector in columns
    ``e0 .. e{d-1}``; model and task rows also carry their factor values in
    columns ``factor:<name>`` (``factor:family``, ``factor:params_b``, ...).
    :func:`export_embeddings` writes such a frame as ``.csv``, ``.parquet``,
    ``.npy`` or a TensorBoard-projector ``.tsv`` pair.

Examples
--------
>>> from cppgraph import inspect as cpi  # doctest: +SKIP
>>> frame = cpi.embeddings(est, "model")  # doctest: +SKIP
>>> cpi.neighbours(est, "syn-aurora-9.9b", k=5)  # doctest: +SKIP
>>> cpi.export_graph(cpi.similarity_graph(est, knn=5), "models.graphml")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd

from cppgraph.data.canonical import check_output_file, write_files_atomic
from cppgraph.errors import CppGraphError, DataError
from cppgraph.coldstart import unknown_name as _unknown
from cppgraph.estimator import CPPGraph
from cppgraph.regression import shrink_correlation
from cppgraph.train import EMBEDDING_LAYERS

NODE_TYPES = ("model", "task", "factor")
KINDS = ("model", "task")
FAMILY = "family"
FACTOR_PREFIX = "factor:"
EMBEDDING_FORMATS = (".csv", ".parquet", ".npy", ".tsv")
GRAPH_FORMATS = (".graphml", ".gexf", ".json")
_VECTOR = re.compile(r"^e\d+$")


def _choice(value: str, allowed: tuple, what: str) -> None:
    if value not in allowed:
        raise CppGraphError(f"{what} must be one of {', '.join(allowed)}; got {value!r}")


# ---------------------------------------------------------------- embeddings
def _names(est: CPPGraph, node_type: str) -> list[str]:
    if node_type == "factor":
        return list(est.factors_.nodes_)
    return list(est.data_.models if node_type == "model" else est.data_.tasks)


def _factor_table(est: CPPGraph, kind: str) -> pd.DataFrame:
    """The ``kind``'s factor values, rows in data order (one column per factor)."""
    frame = est.data_.model_factors if kind == "model" else est.data_.task_factors
    return frame.reindex(_names(est, kind))


def embeddings(est: CPPGraph, node_type: str = "model",
               layer: str = EMBEDDING_LAYERS[0]) -> pd.DataFrame:
    """The fitted network's embeddings of one node type.

    Parameters
    ----------
    est : CPPGraph
        A fitted estimator.
    node_type : {"model", "task", "factor"}
    layer : {"head", "encoder"}
        As :meth:`~cppgraph.estimator.CPPGraph.node_embeddings` (:data:`EMBEDDING_LAYERS`).

    Returns
    -------
    DataFrame
        Indexed by model name, task name or factor-node label
        (``family=aurora``, ``params_b=[5,10)``); columns ``e0 .. e{d-1}``
        (float64), then, for models and tasks, one ``factor:<name>`` column per
        factor with the entity's value (NaN where missing).
    """
    est._check_fitted()
    _choice(node_type, NODE_TYPES, "node_type")
    vectors = est.node_embeddings(layer)[node_type]
    names = _names(est, node_type)
    frame = pd.DataFrame(vectors, index=pd.Index(names, name=node_type),
                         columns=[f"e{i}" for i in range(vectors.shape[1])])
    if node_type in KINDS:
        factors = _factor_table(est, node_type).add_prefix(FACTOR_PREFIX)
        frame = frame.join(factors.set_axis(frame.index))
    return frame


def vector_columns(frame: pd.DataFrame) -> list[str]:
    """The embedding columns (``e0, e1, ...``) of an embedding frame."""
    return [c for c in frame.columns if _VECTOR.match(str(c))]


def _sibling(path: Path, suffix: str) -> Path:
    """``<stem><suffix>`` beside ``path``."""
    return path.with_name(path.stem + suffix)


def _clean_text(value) -> str:
    """A TSV/lines-safe string: missing -> empty, tabs and newlines -> spaces."""
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return ""
    return re.sub(r"[\t\r\n]+", " ", str(value))


def _metadata_tsv(frame: pd.DataFrame, path: Path) -> None:
    """TensorBoard projector metadata: name + factor columns, with a header row.

    The projector reads a single-column file without a header, so a frame
    without factor columns (factor nodes) gets the names alone.
    """
    extra = [c for c in frame.columns if str(c).startswith(FACTOR_PREFIX)]
    rows = [[_clean_text(name)] + [_clean_text(frame.at[name, c]) for c in extra]
            for name in frame.index]
    lines = ["\t".join(r) for r in rows]
    if extra:
        header = [frame.index.name or "name"] + [c[len(FACTOR_PREFIX):] for c in extra]
        lines.insert(0, "\t".join(_clean_text(h) for h in header))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _parquet_engine() -> None:
    if not any(importlib.util.find_spec(m) for m in ("pyarrow", "fastparquet")):
        raise CppGraphError("writing .parquet needs pyarrow or fastparquet; install one "
                            "(pip install pyarrow) or choose .csv, .npy or .tsv")


def _suffix(path: Path, formats: tuple, what: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in formats:
        raise CppGraphError(f"{path}: unsupported {what} format {path.suffix or '(none)'!r}; "
                            f"use one of {', '.join(formats)}")
    return suffix


def check_embedding_path(path: str | os.PathLike, *, overwrite: bool = False) -> list[Path]:
    """The files :func:`export_embeddings` would write to ``path``; fails early if it cannot."""
    path = Path(path)
    suffix = _suffix(path, EMBEDDING_FORMATS, "embedding")
    if suffix == ".parquet":
        _parquet_engine()
    sidecar = {".npy": ".names.txt", ".tsv": ".metadata.tsv"}.get(suffix)
    targets = [path] + ([_sibling(path, sidecar)] if sidecar else [])
    return [check_output_file(t, overwrite=overwrite) for t in targets]


def export_embeddings(frame: pd.DataFrame, path: str | os.PathLike, *,
                      overwrite: bool = False) -> list[Path]:
    """Write an embedding frame (:func:`embeddings`), in the format its suffix names.

    Parameters
    ----------
    frame : DataFrame
        As returned by :func:`embeddings`.
    path : str or path-like
        ``.csv`` (the whole frame, index first), ``.parquet`` (the whole
        frame; needs pyarrow or fastparquet), ``.npy`` (the vectors only, plus
        ``<stem>.names.txt``, one name per line) or ``.tsv`` (TensorBoard
        projector: ``<stem>.tsv`` vectors without header, plus
        ``<stem>.metadata.tsv``, a header row then name and factor values).
    overwrite : bool
        Replace existing files; otherwise an existing target is an error.

    Returns
    -------
    list of Path
        The files written. Writing is all-or-nothing: on any error no target
        file is created or changed.
    """
    targets = check_embedding_path(path, overwrite=overwrite)
    path, suffix = targets[0], targets[0].suffix.lower()
    vectors = frame[vector_columns(frame)].to_numpy(dtype=np.float64)
    if suffix == ".csv":
        writers = {path: lambda p: frame.to_csv(p)}
    elif suffix == ".parquet":
        writers = {path: lambda p: frame.to_parquet(p)}
    elif suffix == ".npy":
        names = "".join(_clean_text(n) + "\n" for n in frame.index)
        writers = {path: lambda p: np.save(p, vectors),
                   targets[1]: lambda p: p.write_text(names, encoding="utf-8")}
    else:
        writers = {path: lambda p: np.savetxt(p, vectors, fmt="%.17g", delimiter="\t"),
                   targets[1]: lambda p: _metadata_tsv(frame, p)}
    return write_files_atomic(writers, overwrite=overwrite)


# ---------------------------------------------------------------- neighbours
@dataclass
class _Query:
    """The entity whose neighbours are looked for (a training entity's scores and
    predictions are read from the fitted model where needed: None here)."""

    name: str
    vector: np.ndarray                # embedding
    observed: pd.Series | None = None   # normalized observed scores, by the other kind's names
    predicted: pd.Series | None = None  # normalized predictions, by the other kind's names


def _wide(values: pd.Series, est: CPPGraph, kind: str) -> pd.DataFrame:
    """``kind`` x other-kind matrix of a (model, task)-indexed series, in data order."""
    wide = values.unstack("task").reindex(index=est.data_.models, columns=est.data_.tasks)
    return wide if kind == "model" else wide.T


def _observed(est: CPPGraph, kind: str) -> pd.DataFrame:
    s = est.data_.scores
    return _wide(pd.Series(est.y_, index=pd.MultiIndex.from_frame(s[["model", "task"]])), est, kind)


def _predicted(est: CPPGraph, kind: str, names: list[str]) -> pd.DataFrame:
    """Normalized predictions of the ``kind`` entities ``names`` (rows, in that order) on
    every entity of the other kind (columns, in data order): only those rows are predicted."""
    other, others = ("task", est.data_.tasks) if kind == "model" else ("model", est.data_.models)
    pairs = pd.MultiIndex.from_product([names, others], names=[kind, other]).to_frame(index=False)
    table = est.predict(pairs[["model", "task"]])
    return table.pivot(index=kind, columns=other, values="predicted_normalized").reindex(
        index=names, columns=others)


def _known_query(est: CPPGraph, name: str, kind: str) -> _Query:
    names = _names(est, kind)
    if name not in names:
        raise _unknown(str(name), names, kind)
    return _Query(name, est.node_embeddings()[kind][names.index(name)])


def _new_model_query(est: CPPGraph, factors: pd.DataFrame,
                     known_scores: pd.DataFrame | None, files: dict | None) -> _Query:
    if len(factors) != 1:
        raise CppGraphError(f"a new model is given by a one-row factor table; got {len(factors)} rows")
    if "model" not in factors.columns:
        raise DataError("the new model's factors need a 'model' column",
                        file=(files or {}).get("model_factors"))
    name = str(factors["model"].iloc[0])
    with warnings.catch_warnings():  # predict_new_models below warns once
        warnings.simplefilter("ignore")
        vector = est.new_model_embeddings(factors, known_scores, files=files)[0]
    table = est.predict_new_models(factors, known_scores, files=files)
    tasks = table.set_index("task")
    return _Query(name, vector, tasks["observed_normalized"].reindex(est.data_.tasks),
                  tasks["predicted_normalized"].reindex(est.data_.tasks))


def _cosine(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1) * np.linalg.norm(vector)
    return matrix @ vector / np.where(norms > 0, norms, 1.0)


def _pearson(others: pd.DataFrame, query: pd.Series, min_common: int) -> tuple[pd.Series, pd.Series]:
    """Pearson correlation of each row of ``others`` with ``query`` over their common cells."""
    common = (others.notna() & query.notna().to_numpy()).sum(axis=1)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        corr = others.apply(lambda row: row.corr(query), axis=1)
    return corr.where(common >= min_common), common


def _most_different(query: pd.Series, row: pd.Series, n: int = 3) -> str:
    """The ``n`` columns where ``row`` and ``query`` differ most, with ``row - query``."""
    diff = (row - query).dropna()
    top = diff.abs().sort_values(ascending=False, kind="stable").index[:n]
    return "; ".join(f"{c} ({diff[c]:+.3f})" for c in top)


def neighbours(est: CPPGraph, name: str | pd.DataFrame, k: int | None = None, *,
               by: str = "embedding",
               kind: str = "model", known_scores: pd.DataFrame | None = None,
               min_common: int = 3, files: dict | None = None) -> pd.DataFrame:
    """The ``k`` models (or tasks) most similar to one.

    Parameters
    ----------
    est : CPPGraph
        A fitted estimator.
    name : str or DataFrame
        A training model or task; or, for ``kind="model"``, a new model given
        by a one-row factor table (column ``model`` plus factor columns, as in
        :meth:`~cppgraph.estimator.CPPGraph.predict_new_models`), embedded
        through its factor edges and ``known_scores``.
    k : int, optional
        How many; at most the number of other models (tasks). Default 10, or
        all the others when there are fewer.
    by : {"embedding", "scores"}
        ``embedding``: cosine similarity of the embeddings (:func:`embeddings`).
        ``scores``: Pearson correlation of the normalized observed scores
        over the tasks (models) both have scores on, only where there are at
        least ``min_common``, ranked shrunk toward 0 by the number of common
        cells (:func:`~cppgraph.regression.shrink_correlation`, as
        ``knn-models`` does); fewer than ``k`` rows come back when fewer
        entities qualify.
    kind : {"model", "task"}
    known_scores : DataFrame, optional
        With a new model: its known raw scores (``model, task, score``).
    min_common : int
        ``by="scores"``: fewest common observed cells.
    files : dict, optional
        File names for error messages (as in ``predict_new_models``).

    Returns
    -------
    DataFrame
        ``<kind>``, ``similarity`` (cosine) or ``shrunk_correlation``,
        ``correlation`` and ``n_common`` (Pearson), and ``most_different_<other kind>s``: the 3
        tasks (models) where the two differ most in predicted normalized
        score, each with the neighbour's minus the query's prediction; most
        similar first.
    """
    est._check_fitted()
    _choice(by, ("embedding", "scores"), "by")
    _choice(kind, KINDS, "kind")
    if isinstance(name, pd.DataFrame):
        if kind != "model":
            raise CppGraphError("a new entity given by its factors is supported for models only")
        query = _new_model_query(est, name, known_scores, files)
    else:
        query = _known_query(est, name, kind)
    names = _names(est, kind)
    other_rows = np.array([n != query.name for n in names], dtype=bool)
    others = [n for n, keep in zip(names, other_rows) if keep]
    k = min(10, len(others)) if k is None else k
    if not 1 <= k <= len(others):
        raise CppGraphError(f"k must be between 1 and {len(others)} (the other {kind}s); got {k}")
    if by == "embedding":
        vectors = est.node_embeddings()[kind][other_rows]
        score = pd.Series(_cosine(vectors, query.vector), index=others)
        columns = {"similarity": score}
    else:
        observed = _observed(est, kind)
        mine = observed.loc[query.name] if query.observed is None else query.observed
        score, common = _pearson(observed.loc[others], mine, min_common)
        if score.notna().sum() == 0:
            raise CppGraphError(f"no {kind} shares {min_common} or more observed scores with "
                                f"{query.name!r} ({int(mine.notna().sum())} observed); "
                                "use by='embedding' (--by embedding)")
        columns = {"shrunk_correlation": shrink_correlation(score, common),
                   "correlation": score, "n_common": common}
        score = columns["shrunk_correlation"]
    top = score.dropna().sort_values(ascending=False, kind="stable").index[:k]
    other = "task" if kind == "model" else "model"
    out = pd.DataFrame({kind: list(top), **{c: v.reindex(top).to_numpy() for c, v in columns.items()}})
    # one prediction pass for the rows shown (and the query's, for a training entity)
    mine = [] if query.predicted is not None else [query.name]
    predicted = _predicted(est, kind, mine + list(top))
    own = predicted.loc[query.name] if mine else query.predicted
    out[f"most_different_{other}s"] = [_most_different(own, predicted.loc[n]) for n in top]
    return out


# ---------------------------------------------------------- similarity graph
#: Rows of the cosine-similarity matrix computed at a time by :func:`_nearest`.
SIMILARITY_BLOCK = 1024


def _nearest(vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` most cosine-similar other rows, most similar first (ties: lower
    index first), and their similarities: ``[n, k]`` each. The similarity matrix is
    computed :data:`SIMILARITY_BLOCK` rows at a time, so memory grows with ``n``, not
    ``n**2``."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms > 0, norms, 1.0)
    n = len(unit)
    index, value = np.empty((n, k), dtype=np.int64), np.empty((n, k))
    for start in range(0, n, SIMILARITY_BLOCK):
        sim = unit[start:start + SIMILARITY_BLOCK] @ unit.T
        rows = np.arange(len(sim))
        sim[rows, start + rows] = -np.inf  # not its own neighbour
        kth = -np.partition(-sim, k - 1, axis=1)[:, k - 1]  # each row's k-th largest
        for r in rows:
            cand = np.flatnonzero(sim[r] >= kth[r])
            best = cand[np.lexsort((cand, -sim[r, cand]))[:k]]
            index[start + r], value[start + r] = best, sim[r, best]
    return index, value


def _node_attributes(est: CPPGraph, kind: str) -> dict[str, dict]:
    """GraphML-safe attributes of each node: family (models) and factor values.

    Categorical values are strings, numeric values floats; a missing numeric
    value is left out, a missing family is ``""``.
    """
    kinds = est.factors_.kinds_[kind]
    table = _factor_table(est, kind)
    out = {}
    for name, row in table.iterrows():
        attrs = {"type": kind}
        if kind == "model":
            attrs[FAMILY] = ""
        for factor in table.columns:
            value = row[factor]
            if pd.isna(value):
                continue
            attrs[factor] = float(value) if kinds.get(factor) == "numeric" else str(value)
        out[name] = attrs
    return out


def similarity_graph(est: CPPGraph, kind: str = "model", knn: int | None = None) -> nx.Graph:
    """The k-nearest-neighbour graph of models (or tasks) by embedding cosine similarity.

    Parameters
    ----------
    est : CPPGraph
        A fitted estimator.
    kind : {"model", "task"}
    knn : int, optional
        Each node is linked to its ``knn`` most similar others (the graph is
        undirected, so a node can have more links); default 5, or all the
        others when there are fewer.

    Returns
    -------
    networkx.Graph
        Nodes are names with attributes ``type``, ``family`` (models; ``""``
        if unknown), one attribute per factor (string or float; a missing
        numeric value is absent) and ``community`` (int, from
        :func:`networkx.community.louvain_communities` seeded with
        ``est.config.random_state``, largest community 0). Edges carry
        ``similarity`` (cosine) and ``weight = (1 + similarity) / 2``, the
        non-negative weight the communities are found with.
    """
    est._check_fitted()
    _choice(kind, KINDS, "kind")
    names = _names(est, kind)
    knn = min(5, len(names) - 1) if knn is None else knn
    if not 1 <= knn <= len(names) - 1:
        raise CppGraphError(f"knn must be between 1 and {len(names) - 1} (the other {kind}s); "
                            f"got {knn}")
    index, value = _nearest(est.node_embeddings()[kind], knn)
    graph = nx.Graph(kind=kind, knn=knn)
    for name, attrs in _node_attributes(est, kind).items():
        graph.add_node(name, **attrs)
    for i in range(len(names)):
        for j, s in zip(index[i].tolist(), value[i].tolist()):
            graph.add_edge(names[i], names[j], similarity=s, weight=(1.0 + s) / 2.0)
    communities = nx.community.louvain_communities(graph, weight="weight",
                                                   seed=est.config.random_state)
    ordered = sorted(communities, key=lambda c: (-len(c), min(c)))
    for c, members in enumerate(ordered):
        for node in members:
            graph.nodes[node]["community"] = c
    return graph


def _node_link(graph: nx.Graph) -> dict:
    try:
        return nx.node_link_data(graph, edges="edges")
    except TypeError:  # networkx < 3.4
        return nx.node_link_data(graph, link="edges")


def check_graph_path(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Fail early unless :func:`export_graph` can write ``path``."""
    path = Path(path)
    _suffix(path, GRAPH_FORMATS, "graph")
    return check_output_file(path, overwrite=overwrite)


def export_graph(graph: nx.Graph, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write a graph in the format its suffix names, atomically.

    Parameters
    ----------
    graph : networkx.Graph
    path : str or path-like
        ``.graphml`` (:func:`networkx.write_graphml`), ``.gexf``
        (:func:`networkx.write_gexf`) or ``.json`` (node-link data,
        :func:`networkx.node_link_data` with ``edges="edges"``).
    overwrite : bool
        Replace an existing file; otherwise it is an error.
    """
    path = check_graph_path(path, overwrite=overwrite)
    suffix = path.suffix.lower()
    if suffix == ".graphml":
        write = lambda p: nx.write_graphml(graph, p)  # noqa: E731
    elif suffix == ".gexf":
        write = lambda p: nx.write_gexf(graph, p)  # noqa: E731
    else:
        text = json.dumps(_node_link(graph), indent=1, allow_nan=False) + "\n"
        write = lambda p: p.write_text(text, encoding="utf-8")  # noqa: E731
    return write_files_atomic({path: write}, overwrite=overwrite)[0]


# ------------------------------------------------------------------ clusters
@dataclass
class ClusterResult:
    """Clusters of the model embeddings and how well they match the model families.

    Attributes
    ----------
    labels : Series
        Cluster (0 = largest) of each model, indexed by model name.
    k : int
        Number of clusters.
    silhouette : Series
        Silhouette score by number of clusters tried (only ``k`` when given).
    ari, nmi : float
        Adjusted Rand index and normalized mutual information of the clusters
        against the ``family`` factor, over the models with a family (NaN
        without any).
    n_scored : int
        Models with a family.
    mismatches : DataFrame
        ``model, family, cluster, cluster_family``: models whose cluster's
        majority family is not their own.
    family : Series
        Each model's family (NaN where unknown).
    """

    labels: pd.Series
    k: int
    silhouette: pd.Series
    ari: float
    nmi: float
    n_scored: int
    mismatches: pd.DataFrame
    family: pd.Series

    def summary(self, max_members: int = 8) -> pd.DataFrame:
        """One row per cluster: size, majority family, its share, the first members."""
        rows = []
        for c, members in self.labels.groupby(self.labels):
            fams = self.family.reindex(members.index).dropna()
            top = _majority(fams)
            rows.append({"cluster": int(c), "size": len(members), "majority_family": top or "",
                         "share": float((fams == top).mean()) if len(fams) else float("nan"),
                         "members": _first(list(members.index), max_members)})
        return pd.DataFrame(rows)


def _first(names: list[str], n: int) -> str:
    more = f", ... (+{len(names) - n})" if len(names) > n else ""
    return ", ".join(names[:n]) + more


def _majority(values: pd.Series) -> str | None:
    """The most common value (ties: the first in sorted order); None if empty."""
    if values.empty:
        return None
    counts = values.value_counts()
    return sorted(counts.index[counts == counts.max()])[0]


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def _kmeans(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans
    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)


def _by_size(labels: np.ndarray) -> np.ndarray:
    """Relabel clusters 0, 1, ... from the largest (ties: the first appearing)."""
    ids, first, counts = np.unique(labels, return_index=True, return_counts=True)
    rank = {int(v): i for i, v in enumerate(ids[np.lexsort((first, -counts))])}
    return np.array([rank[int(v)] for v in labels], dtype=int)


def _network_wide(est: CPPGraph) -> pd.DataFrame:
    """Models x tasks: the network's prediction of every cell, without the residual
    corrections (a score cell is predicted with its fold out of the graph)."""
    models, tasks = est.data_.models, est.data_.tasks
    pairs = pd.DataFrame({"model": np.repeat(models, len(tasks)),
                          "task": np.tile(tasks, len(models))})
    pred = est._network_predict(*est._cells(pairs))
    return pd.DataFrame(pred.reshape(len(models), len(tasks)), index=pd.Index(models, name="model"),
                        columns=pd.Index(tasks, name="task"))


def profiles(est: CPPGraph, control: list[str] | None = None) -> pd.DataFrame:
    """Each model's predicted score profile over the tasks, its overall level removed.

    The profile is built from the network's predictions, not from
    :meth:`CPPGraph.predict`: the residual corrections that ``predict`` adds
    carry each model's own deviations and the noise of its observed cells,
    which blur the shared structure of a family. An observed cell is
    predicted with its fold out of the graph, as everywhere. Steps:

    1. the scoring head's output on the logit scale where it is bounded
       (the logit of the sigmoid output, clipped to ``[1e-6, 1 - 1e-6]``);
    2. minus each model's mean over the tasks: what is left is what the
       model does better or worse than its own level;
    3. with ``control``, minus the least-squares linear effect of those model
       factors (their inputs to the scoring head: standardized numeric value
       and missing flag, one column per categorical value), so that, say,
       fine-tuned models do not group by being fine-tuned;
    4. each task scaled to unit standard deviation over the models, so that
       every task counts alike in the distances (a task whose scores spread
       widely would otherwise dominate).

    Returns
    -------
    DataFrame
        Models x tasks, in data order.
    """
    from cppgraph.explain import factors
    est._check_fitted()
    wide = _network_wide(est)
    x = wide.to_numpy()
    if est.network_.head.bounded:
        x = np.clip(x, 1e-6, 1 - 1e-6)
        x = np.log(x / (1 - x))
    x = x - x.mean(axis=1, keepdims=True)
    if control:
        known = {f.name: f for f in factors(est) if f.entity == "model"}
        for name in control:
            if name not in known:
                raise _unknown(name, list(known), "model factor")
        enc, frame = est.factors_, est.data_.model_factors
        numeric, multi = enc.numeric_features("model", frame), enc.factor_matrix("model", frame)
        names = [c.split("=", 1)[0] for c in enc.factor_columns("model")]
        design = np.column_stack(
            [np.ones(len(x))] + [numeric[:, known[name].x_cols] for name in control]
            + [multi[:, [j for j, n in enumerate(names) if n == name]] for name in control])
        coef = np.linalg.lstsq(design, x, rcond=None)[0]
        x = x - design @ coef
    spread = x.std(axis=0)
    x = x / np.where(spread > 1e-12, spread, 1.0)
    return pd.DataFrame(x, index=wide.index, columns=wide.columns)


def _model_vectors(est: CPPGraph, by: str, control: list[str] | None) -> np.ndarray:
    """What the models are clustered and mapped by (see :func:`clusters`)."""
    _choice(by, ("profile", "embedding", "encoder"), "by")
    if control and by != "profile":
        raise CppGraphError("control factors apply to profiles (by='profile')")
    if by == "profile":
        return profiles(est, control).to_numpy()
    return _unit_rows(_model_embeddings(est, by))


def _model_embeddings(est: CPPGraph, by: str) -> np.ndarray:
    return est.node_embeddings("encoder" if by == "encoder" else "head")["model"]


#: Above this many models, :func:`clusters` scores each k by the silhouette of this many
#: (a seeded random sample): the full one costs time quadratic in the models (over a
#: minute at 20,000).
SILHOUETTE_SAMPLE = 5000


def clusters(est: CPPGraph, k: int | None = None, *, by: str = "profile",
             control: list[str] | None = None) -> ClusterResult:
    """K-means clusters of the models, compared with the model families.

    ``by="profile"`` clusters the models' predicted score profiles
    (:func:`profiles`, with ``control``); ``by="embedding"`` their embeddings
    (:func:`embeddings`) and ``by="encoder"`` the encoder's output, each scaled
    to unit length (clusters by direction, as the cosine similarity of
    :func:`neighbours` and :func:`similarity_graph`). K-means uses 10 starts
    seeded with ``est.config.random_state``.

    Parameters
    ----------
    est : CPPGraph
        A fitted estimator.
    k : int, optional
        Number of clusters, ``2 .. n_models - 1``; default: the one with the
        best silhouette score over ``2 .. min(12, n_models - 1)`` (over a sample of
        :data:`SILHOUETTE_SAMPLE` models where there are more).
    by : {"profile", "embedding", "encoder"}
    control : list of str, optional
        Model factors whose effect the profiles leave out (``by="profile"``).

    Returns
    -------
    ClusterResult
    """
    from sklearn.metrics import (adjusted_rand_score, normalized_mutual_info_score,
                                 silhouette_score)
    est._check_fitted()
    names = _names(est, "model")
    n = len(names)
    if n < 3:
        raise CppGraphError(f"clustering needs at least 3 models; the model has {n}")
    if k is not None and not 2 <= k <= n - 1:
        raise CppGraphError(f"k must be between 2 and {n - 1} (models - 1); got {k}")
    x = _model_vectors(est, by, control)
    seed = est.config.random_state
    tried = [k] if k is not None else list(range(2, min(12, n - 1) + 1))
    runs = {c: _kmeans(x, c, seed) for c in tried}
    # on many models the silhouette (quadratic in them) is that of a seeded random sample
    rows = (np.sort(np.random.default_rng(seed).choice(n, SILHOUETTE_SAMPLE, replace=False))
            if n > SILHOUETTE_SAMPLE else np.arange(n))
    sil = pd.Series({c: float(silhouette_score(x[rows], lab[rows]))
                     if len(set(lab[rows])) > 1 else float("nan") for c, lab in runs.items()},
                    name="silhouette")
    best = k if k is not None else int(sil.idxmax())
    labels = pd.Series(_by_size(runs[best]), index=pd.Index(names, name="model"), name="cluster")
    family = _families(est)
    scored = family.dropna()
    if len(scored):
        ari = float(adjusted_rand_score(scored, labels[scored.index]))
        nmi = float(normalized_mutual_info_score(scored, labels[scored.index]))
    else:
        ari = nmi = float("nan")
    mismatches = _mismatches(labels, family)
    return ClusterResult(labels, best, sil, ari, nmi, len(scored), mismatches, family)


def _families(est: CPPGraph) -> pd.Series:
    """Each model's family as a string (NaN where missing or without a family factor)."""
    table = _factor_table(est, "model")
    if FAMILY not in table.columns:
        return pd.Series(np.nan, index=table.index, dtype=object)
    return table[FAMILY].map(lambda v: np.nan if pd.isna(v) else str(v)).astype(object)


def _mismatches(labels: pd.Series, family: pd.Series) -> pd.DataFrame:
    majority = {c: _majority(family.reindex(m.index).dropna()) for c, m in labels.groupby(labels)}
    rows = [{"model": m, "family": family[m], "cluster": int(c), "cluster_family": majority[c]}
            for m, c in labels.items()
            if not pd.isna(family[m]) and majority[c] is not None and family[m] != majority[c]]
    return pd.DataFrame(rows, columns=["model", "family", "cluster", "cluster_family"])


# ------------------------------------------------------------- embedding map
def _project(x: np.ndarray, method: str, seed: int) -> np.ndarray:
    """2-D coordinates: PCA (SVD of the centred rows) or t-SNE."""
    if method == "pca":
        centred = x - x.mean(axis=0)
        u, s, _ = np.linalg.svd(centred, full_matrices=False)
        out = u[:, :2] * s[:2]
        return np.pad(out, ((0, 0), (0, 2 - out.shape[1])))
    from sklearn.manifold import TSNE
    perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca",
                random_state=seed).fit_transform(x)


def check_map_path(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Fail early unless :func:`embedding_map` can write ``path`` (a new ``.png`` file)."""
    path = Path(path)
    _suffix(path, (".png",), "map")
    return check_output_file(path, overwrite=overwrite)


def embedding_map(est: CPPGraph, path: str | os.PathLike, *, method: str = "pca",
                  by: str = "embedding", control: list[str] | None = None,
                  overwrite: bool = False, max_families: int = 10,
                  clustering: "ClusterResult | None" = None, label_families: int = 5) -> Path:
    """A 2-D PNG map of the models: coloured by cluster when ``clustering`` is given
    (the legend names each cluster's majority family), else by family; the
    ``label_families`` largest families are written at their centre.

    Parameters
    ----------
    est : CPPGraph
        A fitted estimator.
    path : str or path-like
        A ``.png`` file (written atomically; an existing one only with
        ``overwrite``).
    method : {"pca", "tsne"}
        The projection to 2-D.
    by, control
        What is mapped: the embeddings (default), the encoder's output or the
        predicted profiles, as in :func:`clusters`.
    max_families : int
        Coloured by family: the most common families get their own colour
        and legend entry; the others are drawn grey as ``other``.
    clustering : ClusterResult, optional
        From :func:`clusters` with the same ``by`` and ``control``.
    label_families : int
        How many of the largest families get a text label.
    """
    from cppgraph.plots import colormap, figure, save_figure
    est._check_fitted()
    _choice(method, ("pca", "tsne"), "method")
    path = check_map_path(path, overwrite=overwrite)
    names = _names(est, "model")
    if len(names) < 3:
        raise CppGraphError(f"an embedding map needs at least 3 models; the model has {len(names)}")
    xy = _project(_model_vectors(est, by, control) if by == "profile"
                  else _model_embeddings(est, by), method, est.config.random_state)
    family = _families(est).fillna("(no family)")
    if clustering is not None:
        labels = clustering.labels.reindex(names).to_numpy()
        summary = clustering.summary().set_index("cluster")
        group = pd.Series([f"cluster {c}" for c in labels], index=names)
        shown = [f"cluster {c}" for c in range(clustering.k)]
        legend = {f"cluster {c}": f"cluster {c}: {summary.at[c, 'majority_family']}"
                  for c in range(clustering.k)}
        title = f"cluster (k = {clustering.k}): majority family"
    else:
        shown = list(family.value_counts().index[:max_families])
        group = family.where(family.isin(shown), "other")
        legend, title = {f: f for f in shown}, "family"
    fig, axes = figure(figsize=(6.8, 5.4))
    ax, colours = axes[0, 0], colormap("tab10" if len(shown) <= 10 else "tab20")
    groups = [(g, colours(i % colours.N)) for i, g in enumerate(shown)] + [("other", "0.7")]
    for label, colour in groups:
        mask = (group == label).to_numpy()
        if mask.any():
            ax.scatter(xy[mask, 0], xy[mask, 1], s=22, color=colour,
                       label=f"{legend.get(label, label)} ({int(mask.sum())})", alpha=0.85,
                       linewidths=0)
    known = family[family != "(no family)"]
    for fam in known.value_counts().index[:label_families]:
        at = xy[(family == fam).to_numpy()].mean(axis=0)
        ax.annotate(str(fam), at, fontsize=7, ha="center", va="center", weight="bold",
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "0.5", "alpha": 0.8})
    what = {"embedding": "model embeddings", "encoder": "encoder embeddings"}.get(by) or (
        "predicted profiles" + (f" without {', '.join(control)}" if control else ""))
    ax.set_title(f"{what} ({method.upper()}), {len(names)} models; labels: the "
                 f"{label_families} largest families at their centre", fontsize=9)
    ax.set_xlabel(f"{method} 1")
    ax.set_ylabel(f"{method} 2")
    ax.legend(fontsize=7, loc="best", title=title, title_fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    return path
