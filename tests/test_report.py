"""Report tables and figures: the headline verdicts, markdown, PNG output."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cppgraph import plots
from cppgraph.evaluate.report import compare_default, headline, is_engine, markdown, summary_table


def summary(rows):
    """``rows``: (method, metric, mean, std)."""
    return pd.DataFrame(rows, columns=["method", "metric", "mean", "std"]).assign(protocol="random")


@pytest.mark.parametrize("ours, verdict", [(0.09, "leads"), (0.10, "leads"), (0.105, "within 1 std"),
                                           (0.12, "behind")])
def test_compare_default_verdicts(ours, verdict):
    s = summary([("cppgraph", "mae_norm", ours, 0.01), ("cppgraph-ensemble", "mae_norm", 0.01, 0.0),
                 ("knn-models", "mae_norm", 0.10, 0.01), ("task-mean", "mae_norm", 0.20, 0.01)])
    c = compare_default(s)
    # Other engine configurations are not baselines, however good.
    assert (c["best"], c["best_mean"], c["mean"], c["verdict"]) == ("knn-models", 0.10, ours, verdict)


def test_compare_default_higher_is_better_and_errors():
    s = summary([("cppgraph", "spearman", 0.7, 0.05), ("knn-models", "spearman", 0.8, 0.02),
                 ("svd", "spearman", 0.6, 0.0)])
    c = compare_default(s, "spearman")
    assert (c["best"], c["verdict"]) == ("knn-models", "behind")
    with pytest.raises(ValueError, match="no 'cppgraph'"):
        compare_default(summary([("svd", "mae_norm", 0.1, 0.0)]))
    with pytest.raises(ValueError, match="no baseline"):
        compare_default(summary([("cppgraph", "mae_norm", 0.1, 0.0)]))


def per_seed(rows):
    """``rows``: method -> per-seed mae_norm."""
    return pd.DataFrame([{"method": m, "seed": i, "mae_norm": v}
                         for m, vals in rows.items() for i, v in enumerate(vals)])


def test_paired_verdicts():
    # Hand-computed: differences -0.01, -0.012, -0.008, -0.011, -0.009 (mean -0.01, sd
    # 0.00158): t = -14.1 on 4 degrees of freedom, p = 0.00015.
    scores = per_seed({"cppgraph": [0.09, 0.088, 0.092, 0.089, 0.091],
                       "svd": [0.10, 0.10, 0.10, 0.10, 0.10], "task-mean": [0.2] * 5})
    s = scores.groupby("method")["mae_norm"].agg(["mean", "std"]).reset_index().assign(
        metric="mae_norm")
    c = compare_default(s, scores=scores)
    assert c["best"] == "svd" and c["verdict"] == "leads" and c["p"] == pytest.approx(1.5e-4, rel=0.05)
    # The same means, but the differences flip sign between seeds: not significant.
    noisy = per_seed({"cppgraph": [0.07, 0.11, 0.08, 0.12, 0.07], "svd": [0.10] * 5,
                      "task-mean": [0.2] * 5})
    c = compare_default(s, scores=noisy)
    assert c["verdict"] == "ahead, not significant" and 0.05 < c["p"] < 1
    behind = per_seed({"cppgraph": [0.11, 0.112, 0.108, 0.111, 0.109], "svd": [0.10] * 5,
                       "task-mean": [0.2] * 5})
    sb = behind.groupby("method")["mae_norm"].agg(["mean", "std"]).reset_index().assign(
        metric="mae_norm")
    assert compare_default(sb, scores=behind)["verdict"] == "behind"
    # One seed cannot be tested; equal scores are tied.
    one = per_seed({"cppgraph": [0.09], "svd": [0.10]})
    s1 = one.assign(std=0.0).rename(columns={"mae_norm": "mean"}).assign(metric="mae_norm")
    c = compare_default(s1, scores=one)
    assert np.isnan(c["p"]) and c["verdict"] == "ahead, not significant"
    same = per_seed({"cppgraph": [0.1, 0.2], "svd": [0.1, 0.2]})
    s2 = same.groupby("method")["mae_norm"].agg(["mean", "std"]).reset_index().assign(
        metric="mae_norm")
    assert compare_default(s2, scores=same)["verdict"] == "tied"
    table = headline({"x": s}, scores={"x": scores})
    assert list(table.columns) == ["setting", "best baseline", "cppgraph", "p", "verdict"]
    assert table.loc[0, "p"] == "0.000" and table.loc[0, "verdict"] == "leads"


def test_headline_and_markdown():
    s = summary([("cppgraph", "mae_norm", 0.0872, 0.017), ("svd", "mae_norm", 0.0897, 0.02)])
    table = headline({"CPP: random 0.05": s})
    assert table.to_dict("records") == [{"setting": "CPP: random 0.05",
                                         "best baseline": "svd 0.0897 ± 0.0200",
                                         "cppgraph": "0.0872 ± 0.0170", "verdict": "leads"}]
    assert markdown(table).splitlines()[:2] == ["| setting | best baseline | cppgraph | verdict |",
                                                "| --- | --- | --- | --- |"]
    assert is_engine("cppgraph-sage") and not is_engine("cppgraphx") and is_engine("cppgraph")
    # the default engine's interval metrics join the row when a summary has them
    s = summary([("cppgraph", "mae_norm", 0.0872, 0.017), ("svd", "mae_norm", 0.0897, 0.02),
                 ("cppgraph", "coverage_90", 0.9012, 0.031), ("cppgraph", "width_90", 0.41, 0.05),
                 ("svd", "coverage_90", float("nan"), float("nan"))])
    row = headline({"CPP: random 0.05": s}).to_dict("records")[0]
    assert (row["coverage_90"], row["width_90"]) == ("0.901 ± 0.031", "0.410 ± 0.050")


def test_summary_table_orders_by_mae():
    s = summary([("a", "mae_norm", 0.3, 0.0), ("b", "mae_norm", 0.1, 0.01),
                 ("a", "fit_seconds", 2.0, 0.5), ("b", "fit_seconds", 1.0, 0.0)])
    t = summary_table(s)
    assert t["method"].tolist() == ["b", "a"]
    assert t.loc[0, "mae_norm"] == "0.1000 ± 0.0100" and t.loc[1, "fit_s"] == "2.00 ± 0.50"


def test_plots_write_png(tmp_path):
    plots.parity({"one": ([0.1, 0.5, 0.9], [0.2, 0.4, 1.0]), "two": ([0.0], [0.0])},
                 tmp_path / "p.png", title="t")
    table = pd.DataFrame({"setting": ["s1", "s1", "s2", "s2"], "method": ["a", "b", "a", "b"],
                          "mean": [0.1, 0.2, 0.3, 0.1], "std": [0.01, 0.0, 0.02, 0.0],
                          "note": [None, "knn", None, "svd"]})
    plots.error_bars(table, tmp_path / "e.png")
    for name in ("p.png", "e.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.png", "p.png"]  # no temporary left
    with pytest.raises(ValueError, match="no panels"):
        plots.parity({}, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_failed_figure_write_leaves_nothing(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from cppgraph.errors import DataError

    def broken(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", broken)
    with pytest.raises(DataError, match="No space left") as err:
        plots.parity({"one": ([0.1, 0.5], [0.2, 0.4])}, tmp_path / "p.png")
    assert "p.png" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_plots_leave_the_callers_backend_and_figures_alone(tmp_path):
    import matplotlib
    import matplotlib.pyplot as plt
    old = matplotlib.get_backend()
    plt.switch_backend("pdf")
    before = plt.figure()
    try:
        plots.parity({"a": (np.array([0.1, 0.5]), np.array([0.2, 0.4]))}, tmp_path / "p.png")
        plots.error_bars(pd.DataFrame({"setting": ["s"], "method": ["m"], "mean": [0.1],
                                       "std": [0.01]}), tmp_path / "e.png")
        assert matplotlib.get_backend() == "pdf"
        assert plt.get_fignums() == [before.number]
        assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    finally:
        plt.close(before)
        plt.switch_backend(old)
