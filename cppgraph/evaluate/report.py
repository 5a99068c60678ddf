"""Readable tables from evaluation summaries: per-method tables and the headline comparison."""

from __future__ import annotations

import pandas as pd

from cppgraph.evaluate.metrics import HIGHER_IS_BETTER, METRICS

#: The engine's default configuration in method tables.
DEFAULT = "cppgraph"
#: Significance level of the paired test behind a "leads" or "behind" verdict.
ALPHA = 0.05


def is_engine(method: str) -> bool:
    """Whether a method name is one of the cppgraph engine's configurations."""
    return method == DEFAULT or method.startswith(DEFAULT + "-")


def summary_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Methods x metrics as ``mean ± std`` strings (the mean alone from one seed), best
    normalized MAE first."""
    if "seeds" not in summary.columns:
        summary = summary.assign(seeds=2)
    wide = summary.pivot_table(index="method", columns="metric", values=["mean", "std", "seeds"],
                               sort=False)
    order = wide[("mean", "mae_norm")].sort_values().index
    cols = [m for m in (*METRICS, "coverage", "fit_seconds") if ("mean", m) in wide.columns]
    out = pd.DataFrame(index=order)
    for m in cols:
        mean, std = wide.loc[order, ("mean", m)], wide.loc[order, ("std", m)]
        seeds = wide.loc[order, ("seeds", m)]
        digits = 2 if m in ("fit_seconds", "rmse_raw", "mae_raw") else 4
        out[m] = [("" if pd.isna(a) else f"{a:.{digits}f}" if n <= 1 else
                   f"{a:.{digits}f} ± {b:.{digits}f}") for a, b, n in zip(mean, std, seeds)]
    if "coverage" in out.columns and (wide.loc[order, ("mean", "coverage")] == 1).all():
        out = out.drop(columns="coverage")
    return out.rename(columns={"fit_seconds": "fit_s"}).rename_axis("method").reset_index()


def markdown(table: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table of the cells as strings."""
    rows = [list(map(str, table.columns)), ["---"] * len(table.columns)]
    rows += table.astype(str).values.tolist()
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)


def compare_default(summary: pd.DataFrame, metric: str = "mae_norm",
                    scores: pd.DataFrame | None = None, alpha: float = ALPHA) -> dict:
    """The default engine against the best method that is not the engine, on one metric.

    Returns ``best`` (the baseline with the best mean), ``best_mean``,
    ``best_std``, ``mean``, ``std`` (of :data:`DEFAULT`), ``p`` and ``verdict``.

    With ``scores`` (per-seed rows: ``method``, ``seed`` and a column per
    metric, as :attr:`Evaluation.scores`) the verdict is a paired t-test over
    the seeds, which share their splits: ``"leads"`` or ``"behind"`` when the
    two-sided p-value is below ``alpha``, else ``"ahead, not significant"``,
    ``"behind, not significant"`` or ``"tied"``; ``p`` is that p-value (NaN
    below 2 seeds, which gives a not-significant verdict). Without ``scores``
    (``p`` NaN): ``"leads"`` when the default is at least as good as every
    baseline, ``"within 1 std"`` when it trails the best one by at most that
    baseline's standard deviation over seeds, else ``"behind"``.
    """
    rows = summary[summary["metric"] == metric].set_index("method")
    if DEFAULT not in rows.index:
        raise ValueError(f"the summary has no {DEFAULT!r} rows for {metric!r}")
    base = rows[[not is_engine(m) for m in rows.index]].dropna(subset=["mean"])
    if base.empty:
        raise ValueError("the summary has no baseline to compare with")
    higher = metric in HIGHER_IS_BETTER
    best = base["mean"].idxmax() if higher else base["mean"].idxmin()
    mean, std = rows.loc[DEFAULT, "mean"], rows.loc[DEFAULT, "std"]
    b_mean, b_std = base.loc[best, "mean"], base.loc[best, "std"]
    gap = (b_mean - mean) if higher else (mean - b_mean)
    p = float("nan")
    if scores is None:
        verdict = "leads" if gap <= 0 else ("within 1 std" if gap <= b_std else "behind")
    else:
        p = paired_p(scores, DEFAULT, best, metric)
        if p < alpha:
            verdict = "leads" if gap < 0 else "behind"
        else:
            verdict = ("tied" if gap == 0 else "ahead, not significant" if gap < 0
                       else "behind, not significant")
    return {"best": best, "best_mean": b_mean, "best_std": b_std, "mean": mean, "std": std,
            "p": p, "verdict": verdict}


def paired_p(scores: pd.DataFrame, a: str, b: str, metric: str) -> float:
    """Two-sided p-value of a paired t-test of methods ``a`` and ``b`` on ``metric`` over the
    seeds both have (NaN below 2 seeds; 1.0 when every paired difference is 0)."""
    from scipy.stats import ttest_rel

    wide = scores.pivot_table(index="seed", columns="method", values=metric)
    if a not in wide.columns or b not in wide.columns:
        raise ValueError(f"the per-seed scores have no {a!r} or no {b!r} rows for {metric!r}")
    pair = wide[[a, b]].dropna()
    if len(pair) < 2:
        return float("nan")
    diff = (pair[a] - pair[b]).to_numpy()
    if not diff.any():
        return 1.0
    return float(ttest_rel(pair[a], pair[b]).pvalue)


def headline(summaries: dict[str, pd.DataFrame], metric: str = "mae_norm",
             scores: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """One row per setting (``label -> summary``): best baseline vs the default engine, with
    the paired test's p-value where ``scores`` (``label -> per-seed scores``) are given, and
    the default engine's ``coverage_90`` and ``width_90`` where any summary has them."""
    rows = []
    for label, summary in summaries.items():
        c = compare_default(summary, metric, None if scores is None else scores[label])
        row = {"setting": label,
               "best baseline": f"{c['best']} {c['best_mean']:.4f} ± {c['best_std']:.4f}",
               DEFAULT: f"{c['mean']:.4f} ± {c['std']:.4f}"}
        if scores is not None:
            row["p"] = "" if pd.isna(c["p"]) else f"{c['p']:.3f}"
        row["verdict"] = c["verdict"]
        own = summary[summary["method"] == DEFAULT].set_index("metric")
        for m in ("coverage_90", "width_90"):
            value = own["mean"].get(m, float("nan"))
            row[m] = "" if pd.isna(value) else f"{value:.3f} ± {own.loc[m, 'std']:.3f}"
        rows.append(row)
    table = pd.DataFrame(rows)
    empty = [m for m in ("coverage_90", "width_90") if (table[m] == "").all()]
    return table.drop(columns=empty)


def parity_plot(predictions: pd.DataFrame, path, *, title: str = "") -> None:
    """A parity plot of an evaluation's test cells (:attr:`Evaluation.predictions`): one panel
    per method, every seed, on the evaluation's normalized scale, best MAE first."""
    from cppgraph import plots

    cells = predictions.dropna(subset=["score_norm", "predicted_norm"])
    mae = (cells["predicted_norm"] - cells["score_norm"]).abs().groupby(cells["method"]).mean()
    panels = {m: (cells.loc[cells["method"] == m, "score_norm"].to_numpy(),
                  cells.loc[cells["method"] == m, "predicted_norm"].to_numpy())
              for m in mae.sort_values(kind="stable").index}
    plots.parity(panels, path, title=title)
