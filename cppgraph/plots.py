"""PNG figures: evaluation results here; inspection maps and importance charts call
:func:`figure` and :func:`save_figure`.

Figures are built with matplotlib's object API (``Figure``), never through
``pyplot``: the caller's backend and open figures are left alone.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cppgraph.data.canonical import check_output_file, write_files_atomic
from cppgraph.errors import CppGraphError


def figure(rows: int = 1, cols: int = 1, *, figsize, **kwargs):
    """A new ``Figure`` (not registered with ``pyplot``) and its ``[rows, cols]`` axes."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(rows, cols, squeeze=False, **kwargs)


def colormap(name: str):
    """A named matplotlib colormap (``colormap("tab10")(i)`` is a colour)."""
    return matplotlib.colormaps[name]


def check_png_path(path: str | os.PathLike, *, overwrite: bool = False,
                   what: str = "the plot") -> Path:
    """Fail early (before long work) unless a figure can be written to ``path``: a ``.png``
    path, new unless ``overwrite``."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise CppGraphError(f"{path}: {what} is written as PNG; give a .png path")
    return check_output_file(path, overwrite=overwrite)


def save_figure(fig, path: str | os.PathLike, *, dpi: int = 120) -> None:
    """Write ``fig`` as PNG to ``path`` atomically, replacing it (callers check first).

    Raises :class:`~cppgraph.errors.DataError` naming ``path`` when it cannot
    be written; nothing is left behind.
    """
    write_files_atomic({Path(path): lambda p: fig.savefig(p, format="png", dpi=dpi,
                                                         bbox_inches="tight")},
                       overwrite=True)


def parity(panels: dict[str, tuple[np.ndarray, np.ndarray]], path: str | os.PathLike, *,
           title: str = "", unit: str = "normalized score") -> None:
    """Predicted against true scores, one panel per label, with the MAE in each title.

    ``panels`` maps a label to ``(true, predicted)`` arrays.
    """
    n = len(panels)
    if n == 0:
        raise ValueError("parity plot: no panels")
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = figure(rows, cols, figsize=(3.6 * cols, 3.5 * rows))
    for ax, (label, (true, pred)) in zip(axes.flat, panels.items()):
        true, pred = np.asarray(true, float), np.asarray(pred, float)
        ok = np.isfinite(true) & np.isfinite(pred)
        true, pred = true[ok], pred[ok]
        lo = min(true.min(initial=0.0), pred.min(initial=0.0))
        hi = max(true.max(initial=1.0), pred.max(initial=1.0))
        ax.plot([lo, hi], [lo, hi], color="0.6", lw=1, zorder=1)
        ax.scatter(true, pred, s=6, alpha=0.35, color="tab:blue", zorder=2, linewidths=0)
        mae = float(np.mean(np.abs(pred - true))) if len(true) else float("nan")
        ax.set_title(f"{label}\nMAE {mae:.3f}, {len(true)} cells", fontsize=9)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_aspect("equal")
        ax.set_xlabel(f"true {unit}", fontsize=8)
        ax.set_ylabel(f"predicted {unit}", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def error_bars(table: pd.DataFrame, path: str | os.PathLike, *, metric: str = "normalized MAE",
               title: str = "") -> None:
    """Grouped bars: ``mean`` ± ``std`` of each ``method`` in each ``setting`` (long table).

    An optional ``note`` column is written above its bar (e.g. which baseline it is).
    """
    if table.empty:
        raise ValueError("error plot: empty table")
    settings = list(dict.fromkeys(table["setting"]))
    methods = list(dict.fromkeys(table["method"]))
    width = 0.8 / len(methods)
    x = np.arange(len(settings))
    fig, axes = figure(figsize=(max(5.0, 1.3 * len(settings) + 2), 3.8))
    ax, colors = axes[0, 0], colormap("tab10")
    for i, method in enumerate(methods):
        rows = table[table["method"] == method].set_index("setting").reindex(settings)
        pos = x + (i - (len(methods) - 1) / 2) * width
        ax.bar(pos, rows["mean"], width, yerr=rows["std"], capsize=2, label=method,
               color=colors(i % 10), error_kw={"lw": 0.8})
        if "note" in rows.columns:
            for px, top, note in zip(pos, rows["mean"] + rows["std"].fillna(0), rows["note"]):
                if isinstance(note, str) and np.isfinite(top):
                    ax.text(px, top, " " + note, rotation=90, ha="center", va="bottom",
                            fontsize=6)
    ax.set_xticks(x)
    ax.set_xticklabels(settings, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(metric)
    ax.margins(y=0.25)
    ax.legend(fontsize=7, frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def lines(table: pd.DataFrame, path: str | os.PathLike, *, x: str, panel: str,
          metric: str = "normalized MAE", title: str = "") -> None:
    """One panel per value of ``panel``; in each, ``mean`` ± ``std`` against ``x``, one line
    per ``method`` (long table)."""
    if table.empty:
        raise ValueError("line plot: empty table")
    panels = list(dict.fromkeys(table[panel]))
    fig, axes = figure(1, len(panels), figsize=(3.4 * len(panels), 3.2))
    colors = colormap("tab10")
    for ax, name in zip(axes[0], panels):
        part = table[table[panel] == name]
        for i, method in enumerate(dict.fromkeys(part["method"])):
            rows = part[part["method"] == method].sort_values(x)
            ax.errorbar(rows[x], rows["mean"], yerr=rows["std"], marker="o", ms=3, lw=1,
                        capsize=2, label=method, color=colors(i % 10))
        ax.set_title(str(name), fontsize=9)
        ax.set_xlabel(x)
        ax.set_xticks(sorted(part[x].unique()))
    axes[0, 0].set_ylabel(metric)
    axes[0, 0].legend(fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
