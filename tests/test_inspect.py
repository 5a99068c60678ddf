"""Looking inside a fitted model: embeddings, exports, neighbours, graphs, clusters, the CLI."""

from __future__ import annotations

import json

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from conftest import FAST, load_tool
from cppgraph import inspect as cpi
from cppgraph.nn.sparse import GraphView
from cppgraph.cli import cli
from cppgraph.data import read_data
from cppgraph.errors import CppGraphError
from cppgraph.estimator import CPPGraph


@pytest.fixture(scope="module")
def demo(demo_dir):
    return read_data(demo_dir)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


# ---------------------------------------------------------------- embeddings
@pytest.mark.parametrize("node_type", ["model", "task", "factor"])
def test_embeddings_frame(fast_est, demo, node_type):
    frame = cpi.embeddings(fast_est, node_type)
    names = {"model": demo.models, "task": demo.tasks, "factor": fast_est.factors_.nodes_}[node_type]
    assert list(frame.index) == list(names) and frame.index.name == node_type
    vectors = cpi.vector_columns(frame)
    assert vectors == [f"e{i}" for i in range(fast_est.config.head_hidden)]
    encoder = cpi.vector_columns(cpi.embeddings(fast_est, node_type, "encoder"))
    assert encoder == [f"e{i}" for i in range(fast_est.config.hidden)]
    assert np.isfinite(frame[vectors].to_numpy()).all()
    factors = [c for c in frame.columns if c not in vectors]
    if node_type == "factor":
        assert factors == []
    else:
        table = demo.model_factors if node_type == "model" else demo.task_factors
        assert factors == [f"factor:{c}" for c in table.columns]
        pd.testing.assert_frame_equal(frame[factors].rename(columns=lambda c: c[7:]), table,
                                      check_names=False)


def test_embeddings_are_the_vectors_the_network_scores_with(fast_est, demo):
    """``encoder``: the encoder's output; ``head`` (default): a model's row is the head's
    first layer of its encoder embedding and features plus its factor values' rows
    (eval mode, full training graph)."""
    net = fast_est.network_
    net.eval()
    with torch.no_grad():
        h = net.encoder(fast_est.graph_, GraphView())
    encoder = fast_est.node_embeddings("encoder")
    for kind in ("model", "task", "factor"):
        np.testing.assert_allclose(encoder[kind], h[kind].numpy(), rtol=1e-6)
    head, got = net.head, fast_est.node_embeddings()
    nodes = fast_est.factors_.nodes_
    i = 3
    values = demo.model_factors.loc[demo.models[i]]
    names = [f"family={values['family']}", f"finetuned={values['finetuned']}"] + [
        n for n in nodes if n.split("=")[0] in ("params_b", "tokens_b")
        and _in_bin(values[n.split("=")[0]], n)]
    rows = [nodes.index(n) for n in names]
    with torch.no_grad():
        z = torch.cat([h["model"][i], fast_est.graph_.model_x[i]])
        expected = head.model_in(z) + head.factor_in[rows].sum(0)
    assert len(rows) == 3 + (not pd.isna(values["tokens_b"]))
    np.testing.assert_allclose(got["model"][i], expected.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["factor"], head.factor_in.detach().numpy(), rtol=1e-6)
    with pytest.raises(CppGraphError, match="layer must be one of head, encoder"):
        fast_est.node_embeddings("final")


def _in_bin(value: float, node: str) -> bool:
    """Whether ``value`` falls in the bin ``name=[lo,hi)`` of a numeric factor node
    (never when it is missing)."""
    lo, hi = node.split("=[")[1].rstrip(")").split(",")
    return float(lo) <= value < float(hi)


def test_embeddings_rejects_unknown_node_type(fast_est):
    with pytest.raises(CppGraphError, match="node_type must be one of model, task, factor"):
        cpi.embeddings(fast_est, "edge")


# ------------------------------------------------------------------- exports
def test_export_csv_round_trip(fast_est, tmp_path):
    frame = cpi.embeddings(fast_est, "model")
    [path] = cpi.export_embeddings(frame, tmp_path / "emb.csv")
    back = pd.read_csv(path, index_col=0)
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)


def test_export_npy_round_trip(fast_est, tmp_path):
    frame = cpi.embeddings(fast_est, "task")
    written = cpi.export_embeddings(frame, tmp_path / "emb.npy")
    assert [p.name for p in written] == ["emb.npy", "emb.names.txt"]
    np.testing.assert_array_equal(np.load(written[0]), frame[cpi.vector_columns(frame)].to_numpy())
    assert written[1].read_text().splitlines() == list(frame.index)


def test_export_tsv_projector_pair(fast_est, tmp_path):
    frame = cpi.embeddings(fast_est, "model")
    vectors, meta = cpi.export_embeddings(frame, tmp_path / "proj.tsv")
    assert meta.name == "proj.metadata.tsv"
    np.testing.assert_array_equal(np.loadtxt(vectors, delimiter="\t"),
                                  frame[cpi.vector_columns(frame)].to_numpy())
    back = pd.read_csv(meta, sep="\t", keep_default_na=False)
    assert list(back.columns) == ["model", "family", "params_b", "tokens_b", "finetuned"]
    assert list(back["model"]) == list(frame.index)
    assert list(back["family"]) == list(frame["factor:family"])
    # A missing factor value is an empty field.
    missing = frame["factor:tokens_b"].isna().to_numpy()
    assert (back["tokens_b"].astype(str).to_numpy()[missing] == "").all()


def test_export_tsv_factor_nodes_have_names_only(fast_est, tmp_path):
    frame = cpi.embeddings(fast_est, "factor")
    _, meta = cpi.export_embeddings(frame, tmp_path / "f.tsv")
    assert meta.read_text().splitlines() == list(frame.index)  # one column: no header


def test_export_parquet(fast_est, tmp_path):
    frame = cpi.embeddings(fast_est, "model")
    path = tmp_path / "emb.parquet"
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        try:
            import fastparquet  # noqa: F401
        except ImportError:
            with pytest.raises(CppGraphError, match="pip install pyarrow"):
                cpi.export_embeddings(frame, path)
            assert not path.exists()
            return
    cpi.export_embeddings(frame, path)
    pd.testing.assert_frame_equal(pd.read_parquet(path), frame, check_dtype=False)


def test_export_errors(fast_est, tmp_path):
    frame = cpi.embeddings(fast_est, "model")
    with pytest.raises(CppGraphError, match=r"unsupported embedding format '\.xlsx'.*\.csv, "
                                            r"\.parquet, \.npy, \.tsv"):
        cpi.export_embeddings(frame, tmp_path / "emb.xlsx")
    existing = tmp_path / "emb.csv"
    existing.write_text("keep me")
    with pytest.raises(CppGraphError, match="file exists"):
        cpi.export_embeddings(frame, existing)
    assert existing.read_text() == "keep me"
    cpi.export_embeddings(frame, existing, overwrite=True)
    assert len(pd.read_csv(existing)) == len(frame)


def test_export_pair_is_all_or_nothing(fast_est, tmp_path):
    """An existing sidecar stops the export before the main file is written."""
    frame = cpi.embeddings(fast_est, "model")
    (tmp_path / "p.metadata.tsv").write_text("keep me")
    with pytest.raises(CppGraphError, match="file exists"):
        cpi.export_embeddings(frame, tmp_path / "p.tsv")
    assert not (tmp_path / "p.tsv").exists()
    assert (tmp_path / "p.metadata.tsv").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.metadata.tsv"]  # no temporary left


def test_failed_write_leaves_nothing(fast_est, tmp_path, monkeypatch):
    frame = cpi.embeddings(fast_est, "model")

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savetxt", broken)
    with pytest.raises(CppGraphError, match="No space left"):
        cpi.export_embeddings(frame, tmp_path / "p.tsv")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- neighbours
def test_neighbours_by_embedding(fast_est, demo):
    name = demo.models[3]
    table = cpi.neighbours(fast_est, name, k=5)
    assert list(table.columns) == ["model", "similarity", "most_different_tasks"]
    assert len(table) == 5 and name not in set(table["model"])
    assert table["similarity"].is_monotonic_decreasing
    frame = cpi.embeddings(fast_est, "model")[cpi.vector_columns(cpi.embeddings(fast_est, "model"))]
    a, b = frame.loc[name].to_numpy(), frame.loc[table["model"].iloc[0]].to_numpy()
    assert table["similarity"].iloc[0] == pytest.approx(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    # The 3 tasks named are the largest gaps in predicted normalized score.
    pred = fast_est.predict().pivot(index="model", columns="task", values="predicted_normalized")
    gap = (pred.loc[table["model"].iloc[0]] - pred.loc[name])
    expected = list(gap.abs().sort_values(ascending=False).index[:3])
    shown = [part.split(" (")[0] for part in table["most_different_tasks"].iloc[0].split("; ")]
    assert shown == expected


def test_neighbours_by_scores(fast_est, demo):
    name = demo.models[0]
    table = cpi.neighbours(fast_est, name, k=4, by="scores")
    assert list(table.columns) == ["model", "shrunk_correlation", "correlation", "n_common",
                                   "most_different_tasks"]
    assert (table["n_common"] >= 3).all() and table["shrunk_correlation"].is_monotonic_decreasing
    y = demo.scores.assign(y=fast_est.y_).pivot(index="model", columns="task", values="y")
    other = table["model"].iloc[0]
    both = y.loc[[name, other]].dropna(axis=1)
    assert table["correlation"].iloc[0] == pytest.approx(np.corrcoef(both.to_numpy())[0, 1])
    assert table["n_common"].iloc[0] == both.shape[1]
    n = table["n_common"].to_numpy()
    assert np.allclose(table["shrunk_correlation"], table["correlation"] * n / (n + 5))


def test_a_perfect_correlation_on_few_cells_ranks_below_a_strong_one_on_many():
    from cppgraph.regression import shrink_correlation
    assert shrink_correlation(0.9995, 3) < shrink_correlation(0.9, 20)


def test_neighbours_of_a_task(fast_est, demo):
    table = cpi.neighbours(fast_est, demo.tasks[0], k=3, kind="task")
    assert list(table.columns) == ["task", "similarity", "most_different_models"]
    assert set(table["task"]) <= set(demo.tasks) - {demo.tasks[0]}


def test_neighbours_errors(fast_est, demo):
    with pytest.raises(CppGraphError, match=r"unknown model 'syn-aurora-9\.9B'; did you mean "
                                            r"'syn-aurora-9\.9b'"):
        cpi.neighbours(fast_est, "syn-aurora-9.9B")
    with pytest.raises(CppGraphError, match="unknown task"):
        cpi.neighbours(fast_est, "syn-trivia", kind="task")
    n = len(demo.models) - 1
    with pytest.raises(CppGraphError, match=f"k must be between 1 and {n}"):
        cpi.neighbours(fast_est, demo.models[0], k=n + 1)
    assert len(cpi.neighbours(fast_est, demo.models[0], k=n)) == n
    assert len(cpi.neighbours(fast_est, demo.models[0])) == 10  # the default
    with pytest.raises(CppGraphError, match="by must be one of embedding, scores"):
        cpi.neighbours(fast_est, demo.models[0], by="vibes")


def test_neighbours_of_a_new_model(fast_est, demo):
    """A cold-start model is embedded through the same graph path as predict_new_models."""
    row = demo.model_factors.iloc[[7]].reset_index().assign(model="clone")
    table = cpi.neighbours(fast_est, row, k=3)
    assert table["similarity"].iloc[0] > 0.9
    # Its embedding is the one the cold-start path gives (factor edges, no score edges).
    vector = fast_est.new_model_embeddings(row)
    assert vector.shape == (1, fast_est.config.head_hidden)
    known = demo.scores[demo.scores["model"] == demo.models[7]].assign(model="clone")
    with_scores = cpi.neighbours(fast_est, row, k=3, by="scores", known_scores=known)
    assert with_scores["model"].iloc[0] == demo.models[7]  # the same scores: correlation 1
    assert with_scores["correlation"].iloc[0] == pytest.approx(1.0)
    with pytest.raises(CppGraphError, match="no model shares 3 or more observed scores"):
        cpi.neighbours(fast_est, row, by="scores")
    with pytest.raises(CppGraphError, match="one-row factor table; got 2 rows"):
        cpi.neighbours(fast_est, pd.concat([row, row.assign(model="other")]))


def test_new_model_embedding_matches_the_cold_start_graph(fast_est, demo):
    """Re-attaching a training model's own factors and scores as a new node gives its
    embedding without its ID vector."""
    i = 5
    name = demo.models[i]
    row = demo.model_factors.iloc[[i]].reset_index().assign(model="twin")
    known = demo.scores[demo.scores["model"] == name].assign(model="twin")
    twin = fast_est.new_model_embeddings(row, known, layer="encoder")[0]
    # The twin sees the same neighbourhood as the original model (LightGCN/SAGE are
    # symmetric in that); the original's own embedding moves only through the twin's edges.
    assert twin.shape == (fast_est.config.hidden,)
    assert np.isfinite(twin).all()
    keep = torch.ones(len(demo.models))
    keep[i] = 0.0
    with torch.no_grad():
        original = fast_est.network_.encoder(fast_est.graph_, GraphView(keep_model=keep))["model"][i]
    cos = twin @ original.numpy() / np.linalg.norm(twin) / np.linalg.norm(original.numpy())
    assert cos > 0.95


# ---------------------------------------------------------- similarity graph
def test_similarity_graph(fast_est, demo):
    g = cpi.similarity_graph(fast_est, knn=4)
    assert set(g.nodes) == set(demo.models)
    assert all(g.degree(n) >= 4 for n in g.nodes)
    node = g.nodes[demo.models[0]]
    assert node["family"] == demo.model_factors.loc[demo.models[0], "family"]
    assert isinstance(node["params_b"], float) and isinstance(node["community"], int)
    for _, attrs in g.nodes(data=True):
        assert all(v is not None and not (isinstance(v, float) and np.isnan(v))
                   for v in attrs.values())
    emb = cpi.embeddings(fast_est, "model")[cpi.vector_columns(cpi.embeddings(fast_est, "model"))]
    u, v, s = next(iter(g.edges(data="similarity")))
    a, b = emb.loc[u].to_numpy(), emb.loc[v].to_numpy()
    assert s == pytest.approx(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    # Deterministic communities (seeded Louvain).
    again = cpi.similarity_graph(fast_est, knn=4)
    assert dict(g.nodes(data="community")) == dict(again.nodes(data="community"))


def test_nearest_in_blocks_matches_the_full_ranking(monkeypatch):
    """Blockwise k nearest: the same neighbours, order and similarities as ranking the
    whole cosine matrix (self excluded, ties to the lower index), ties included."""
    rng = np.random.default_rng(0)
    vectors = rng.integers(-2, 3, size=(23, 3)).astype(float)  # small integers: many ties
    vectors[5] = vectors[11] = vectors[17]  # exact duplicates
    vectors[8] = 0.0  # no direction: similarity 0 with every other row
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-300)
    sim = unit @ unit.T
    np.fill_diagonal(sim, -np.inf)
    monkeypatch.setattr(cpi, "SIMILARITY_BLOCK", 4)
    for k in (1, 3, 22):
        index, value = cpi._nearest(vectors, k)
        expected = np.argsort(-sim, axis=1, kind="stable")[:, :k]
        np.testing.assert_array_equal(index, expected)
        np.testing.assert_allclose(value, np.take_along_axis(sim, expected, 1), atol=1e-12)


def test_similarity_graph_errors(fast_est, demo):
    with pytest.raises(CppGraphError, match=f"knn must be between 1 and {len(demo.models) - 1}"):
        cpi.similarity_graph(fast_est, knn=len(demo.models))


@pytest.mark.parametrize("suffix", [".graphml", ".gexf", ".json"])
def test_export_graph_round_trip(fast_est, tmp_path, suffix):
    g = cpi.similarity_graph(fast_est, knn=3)
    path = cpi.export_graph(g, tmp_path / f"g{suffix}")
    if suffix == ".graphml":
        back = nx.read_graphml(path)
    elif suffix == ".gexf":
        back = nx.read_gexf(path)
    else:
        back = nx.node_link_graph(json.loads(path.read_text()), edges="edges")
    assert set(back.nodes) == set(g.nodes) and back.number_of_edges() == g.number_of_edges()
    name = next(iter(g.nodes))
    for key in ("family", "community", "params_b", "finetuned"):
        assert back.nodes[name][key] == g.nodes[name][key]
    u, v, s = next(iter(g.edges(data="similarity")))
    assert back.edges[u, v]["similarity"] == pytest.approx(s)


def test_export_graph_errors(fast_est, tmp_path):
    g = cpi.similarity_graph(fast_est, knn=3)
    with pytest.raises(CppGraphError, match=r"unsupported graph format '\.dot'.*\.graphml, "
                                            r"\.gexf, \.json"):
        cpi.export_graph(g, tmp_path / "g.dot")
    (tmp_path / "g.graphml").write_text("keep me")
    with pytest.raises(CppGraphError, match="file exists"):
        cpi.export_graph(g, tmp_path / "g.graphml")
    assert (tmp_path / "g.graphml").read_text() == "keep me"
    cpi.export_graph(g, tmp_path / "g.graphml", overwrite=True)
    assert nx.read_graphml(tmp_path / "g.graphml").number_of_nodes() == len(g)


# ------------------------------------------------------------------ clusters
def test_clusters_auto_and_given_k(fast_est, demo):
    auto = cpi.clusters(fast_est)
    assert list(auto.silhouette.index) == list(range(2, 13))
    assert auto.k == auto.silhouette.idxmax()
    assert auto.labels.nunique() == auto.k and list(auto.labels.index) == demo.models
    sizes = auto.labels.value_counts().sort_index()
    assert sizes.is_monotonic_decreasing  # cluster 0 is the largest
    assert 0 <= auto.nmi <= 1 and auto.n_scored == len(demo.models)
    fixed = cpi.clusters(fast_est, k=4)
    assert fixed.k == 4 and list(fixed.silhouette.index) == [4]
    summary = fixed.summary()
    assert summary["size"].sum() == len(demo.models)
    # A model is a mismatch exactly when its cluster's majority family is another.
    majority = dict(zip(summary["cluster"], summary["majority_family"]))
    family = demo.model_factors["family"]
    expected = {m for m, c in fixed.labels.items() if family[m] != majority[c]}
    assert set(fixed.mismatches["model"]) == expected
    with pytest.raises(CppGraphError, match=f"k must be between 2 and {len(demo.models) - 1}"):
        cpi.clusters(fast_est, k=1)


def test_clusters_scores_against_family(fast_est):
    from sklearn.metrics import adjusted_rand_score
    result = cpi.clusters(fast_est, k=3)
    family = fast_est.data_.model_factors["family"]
    assert result.ari == pytest.approx(adjusted_rand_score(family, result.labels[family.index]))


def test_clustering_recovers_demo_families(demo, demo_dir, tmp_path):
    """The demo's families are known by construction (a family-by-ability profile).

    The default engine's predicted profiles, with the fine-tuning effect left
    out, and its embeddings recover them (docs/INSPECT.md); the encoder's output
    alone does not. With the family labels shuffled across the models, the
    embeddings do not cluster by them: they carry the families because the
    families shape the scores, not because the family is one of their inputs.
    """
    k = demo.model_factors["family"].nunique()
    default = CPPGraph(intervals=False).fit(demo)
    profile = cpi.clusters(default, k, control=["finetuned"])
    embedding = cpi.clusters(default, k, by="embedding")
    encoder = cpi.clusters(default, k, by="encoder")
    assert profile.ari >= 0.6, f"ARI {profile.ari:.3f}, NMI {profile.nmi:.3f}"
    assert embedding.ari >= 0.6, f"ARI {embedding.ari:.3f}, NMI {embedding.nmi:.3f}"
    assert encoder.ari < 0.4
    shuffled = read_data(load_tool("shuffle_factor").shuffle_factor(demo_dir, tmp_path / "demo"))
    noise = cpi.clusters(CPPGraph(intervals=False).fit(shuffled), k, by="embedding")
    assert noise.ari < 0.2, f"ARI {noise.ari:.3f} against shuffled families"


def test_profiles(fast_est, demo):
    # The profiles come from the network alone: an engine without the benchmark
    # regression predicts exactly what they are built from.
    bare = CPPGraph(random_state=0, **FAST, observed_regression=0, intervals=False).fit(demo)
    raw = bare.predict().set_index(["model", "task"])["predicted_normalized"]
    wide = raw.unstack("task").reindex(index=demo.models, columns=demo.tasks).to_numpy()
    logit = np.log(wide / (1 - wide))
    centred = logit - logit.mean(axis=1, keepdims=True)
    prof = cpi.profiles(fast_est)
    np.testing.assert_allclose(prof.to_numpy(), centred / centred.std(axis=0), rtol=1e-5, atol=1e-6)
    assert list(prof.index) == demo.models and list(prof.columns) == demo.tasks
    ctl = cpi.profiles(fast_est, control=["finetuned"])
    np.testing.assert_allclose(ctl.std(axis=0, ddof=0).to_numpy(), 1.0)
    ft = (demo.model_factors["finetuned"] == "yes").to_numpy()
    # no fine-tuning effect left: both groups have the same mean profile
    np.testing.assert_allclose(ctl[ft].mean().to_numpy(), ctl[~ft].mean().to_numpy(), atol=1e-9)
    assert not np.allclose(prof[ft].mean().to_numpy(), prof[~ft].mean().to_numpy(), atol=1e-3)
    with pytest.raises(CppGraphError, match="unknown model factor"):
        cpi.profiles(fast_est, control=["finetune"])
    with pytest.raises(CppGraphError, match="profile"):
        cpi.clusters(fast_est, 3, by="embedding", control=["finetuned"])


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_embedding_map(fast_est, tmp_path, method):
    path = cpi.embedding_map(fast_est, tmp_path / "map.png", method=method)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(CppGraphError, match="file exists"):
        cpi.embedding_map(fast_est, path, method=method)
    with pytest.raises(CppGraphError, match="unsupported map format"):
        cpi.embedding_map(fast_est, tmp_path / "map.jpg")
    profile = cpi.embedding_map(fast_est, tmp_path / "profile.png", method=method, by="profile",
                                control=["finetuned"])
    assert profile.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------- CLI
def test_cli_neighbours(fast_model_dir, demo):
    result = run("neighbours", fast_model_dir, demo.models[2], "-k", 3)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["model", "similarity", "most_different_tasks"]
    assert len(lines) == 4
    scores = run("neighbours", fast_model_dir, demo.models[2], "-k", 2, "--by", "scores")
    assert scores.exit_code == 0 and "correlation" in scores.stdout
    task = run("neighbours", fast_model_dir, demo.tasks[1], "--task", "-k", 2)
    assert task.exit_code == 0 and "most_different_models" in task.stdout


def test_cli_neighbours_of_a_new_model(fast_model_dir, tmp_path):
    factors = tmp_path / "new.csv"
    factors.write_text("model,family,params_b,tokens_b,finetuned\nnew-a,aurora,13,1000,no\n"
                       "new-b,helix,1.5,,yes\n")
    result = run("neighbours", fast_model_dir, "new-b", "--new-model", factors, "-k", 2)
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 3
    missing = run("neighbours", fast_model_dir, "new-c", "--new-model", factors)
    assert missing.exit_code != 0 and "no row for model 'new-c'" in missing.output


def test_cli_neighbours_errors(fast_model_dir, demo):
    result = run("neighbours", fast_model_dir, "syn-aurora-9.9B")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: unknown model 'syn-aurora-9.9B'; did you mean")
    too_many = run("neighbours", fast_model_dir, demo.models[0], "-k", 500)
    assert too_many.exit_code == 1
    assert f"k must be between 1 and {len(demo.models) - 1}" in too_many.stderr


@pytest.mark.parametrize("suffix", [".csv", ".npy", ".tsv"])
def test_cli_embeddings(fast_model_dir, tmp_path, suffix, fast_est):
    out = tmp_path / f"emb{suffix}"
    result = run("embeddings", fast_model_dir, "--node-type", "task", "--out", out)
    assert result.exit_code == 0, result.output
    assert f"wrote {len(fast_est.data_.tasks)} task embeddings" in result.stderr
    again = run("embeddings", fast_model_dir, "--out", out)
    assert again.exit_code == 1 and "file exists" in again.stderr
    forced = run("embeddings", fast_model_dir, "--out", out, "--force")
    assert forced.exit_code == 0, forced.output


def test_cli_embeddings_loaded_model_matches(fast_model_dir, fast_est, tmp_path):
    """A saved and loaded model gives the same embeddings as the fitted one."""
    out = tmp_path / "m.csv"
    assert run("embeddings", fast_model_dir, "--out", out).exit_code == 0
    back = pd.read_csv(out, index_col=0)
    frame = cpi.embeddings(fast_est, "model")
    cols = cpi.vector_columns(frame)
    np.testing.assert_allclose(back[cols].to_numpy(), frame[cols].to_numpy(), rtol=1e-6)


def test_cli_embeddings_bad_suffix_writes_nothing(fast_model_dir, tmp_path):
    result = run("embeddings", fast_model_dir, "--out", tmp_path / "emb.xlsx")
    assert result.exit_code == 1 and result.stderr.startswith("error: ")
    assert "unsupported embedding format" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_cli_graph(fast_model_dir, tmp_path, demo):
    out = tmp_path / "g.graphml"
    result = run("graph", fast_model_dir, "--knn", 3, "--out", out)
    assert result.exit_code == 0, result.output
    g = nx.read_graphml(out)
    assert set(g.nodes) == set(demo.models)
    assert all("community" in a and "family" in a for _, a in g.nodes(data=True))
    assert run("graph", fast_model_dir, "--out", out).exit_code == 1
    bad = run("graph", fast_model_dir, "--knn", 0, "--out", tmp_path / "h.json")
    assert bad.exit_code == 1 and "knn must be between" in bad.stderr
    assert not (tmp_path / "h.json").exists()


def test_cli_clusters(fast_model_dir, tmp_path):
    result = run("clusters", fast_model_dir, "--k", 3, "--map", tmp_path / "map.png")
    assert result.exit_code == 0, result.output
    assert "k = 3 (given)" in result.stdout and "ARI" in result.stdout and "NMI" in result.stdout
    assert "majority_family" in result.stdout
    assert (tmp_path / "map.png").is_file()
    auto = run("clusters", fast_model_dir, "--auto")
    assert auto.exit_code == 0 and "chosen by silhouette" in auto.stdout
    both = run("clusters", fast_model_dir, "--k", 3, "--auto")
    assert both.exit_code == 2
    bad = run("clusters", fast_model_dir, "--map", tmp_path / "map.svg")
    assert bad.exit_code == 1 and "unsupported map format" in bad.stderr


def test_cli_clusters_lists_a_few_mismatches_as_text_and_all_as_json(fast_model_dir,
                                                                    monkeypatch):
    from cppgraph.cli import inspect as cli_inspect
    every = json.loads(run("clusters", fast_model_dir, "--k", 3, "--format", "json").stdout)
    assert len(every["mismatches"]) > 2
    monkeypatch.setattr(cli_inspect, "MISMATCH_ROWS", 2)
    text = run("clusters", fast_model_dir, "--k", 3).stdout
    assert (f"{len(every['mismatches'])} models in a cluster of another majority family "
            "(the first 2; --format json lists all):") in text
    listed = text.split("--format json lists all):\n")[1].splitlines()
    assert [line.split()[0] for line in listed[1:]] == [m["model"] for m in every["mismatches"][:2]]
    again = json.loads(run("clusters", fast_model_dir, "--k", 3, "--format", "json").stdout)
    assert again["mismatches"] == every["mismatches"]


def test_silhouette_of_a_sample_on_many_models(fast_est, monkeypatch):
    """Above SILHOUETTE_SAMPLE models each k is scored on a seeded sample of that many."""
    from sklearn.metrics import silhouette_score
    monkeypatch.setattr(cpi, "SILHOUETTE_SAMPLE", 20)
    result = cpi.clusters(fast_est)
    x = cpi._model_vectors(fast_est, "profile", None)
    seed = fast_est.config.random_state
    rows = np.sort(np.random.default_rng(seed).choice(len(x), 20, replace=False))
    for k, value in result.silhouette.items():
        labels = cpi._kmeans(x, k, seed)  # on every model; scored on the sample
        assert value == pytest.approx(silhouette_score(x[rows], labels[rows]))
    assert result.k == result.silhouette.idxmax()
    pd.testing.assert_series_equal(cpi.clusters(fast_est).silhouette, result.silhouette)


def test_cli_clusters_by_and_control(fast_model_dir, fast_est, tmp_path):
    result = run("clusters", fast_model_dir, "--k", 4, "--control", "finetuned", "--map",
                 tmp_path / "p.png")
    assert result.exit_code == 0, result.output
    assert "profiles without finetuned" in result.stdout and (tmp_path / "p.png").is_file()
    expected = cpi.clusters(fast_est, 4, control=["finetuned"])
    assert f"ARI {expected.ari:.3f}" in result.stdout
    emb = run("clusters", fast_model_dir, "--k", 4, "--by", "embedding")
    assert emb.exit_code == 0 and "clustered: embeddings;" in emb.stdout
    enc = run("clusters", fast_model_dir, "--k", 4, "--by", "encoder")
    assert enc.exit_code == 0 and "clustered: encoder embeddings;" in enc.stdout
    assert f"ARI {cpi.clusters(fast_est, 4, by='encoder').ari:.3f}" in enc.stdout
    bad = run("clusters", fast_model_dir, "--control", "finetune")
    assert bad.exit_code == 1 and "unknown model factor" in bad.stderr and "finetuned" in bad.stderr
    mixed = run("clusters", fast_model_dir, "--by", "embedding", "--control", "finetuned")
    assert mixed.exit_code == 1 and "profile" in mixed.stderr


def test_shuffle_factor_tool(demo_dir, tmp_path):
    tool = load_tool("shuffle_factor")
    out = tool.shuffle_factor(demo_dir, tmp_path / "s", seed=0)
    before, after = read_data(demo_dir).model_factors, read_data(out).model_factors
    assert sorted(after["family"]) == sorted(before["family"])
    assert (after["family"] != before["family"]).mean() > 0.5
    pd.testing.assert_frame_equal(after.drop(columns="family"), before.drop(columns="family"))
    with pytest.raises(SystemExit, match="exists"):
        tool.shuffle_factor(demo_dir, out)
    with pytest.raises(SystemExit, match="no model factor column 'famly'"):
        tool.shuffle_factor(demo_dir, tmp_path / "t", factor="famly")


def test_default_neighbour_counts_fit_few_models(demo):
    """On a fit with fewer models than the default counts, the defaults take all the others."""
    few = demo.without(models=demo.models[5:])
    est = CPPGraph(epochs=2, patience=2, intervals=False).fit(few)
    assert len(cpi.neighbours(est, few.models[0])) == 4
    assert cpi.similarity_graph(est).graph["knn"] == 4
    with pytest.raises(CppGraphError, match="k must be between 1 and 4"):
        cpi.neighbours(est, few.models[0], k=5)
