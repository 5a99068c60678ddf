"""Run the evaluation protocols on the shared data sets and write ``docs/RESULTS.md``.

Each general setting is one ``cppgraph evaluate`` run (the same library
calls); the CPP paper's own set-ups (Table 1, the HELM pilot, Tables 4 and 5)
are scored in the paper's unit beside the figures it reports. The report
gives a headline table (best baseline against the default engine), every
method's mean ± std over seeds, the command for each setting and the machine
it ran on. Per-seed scores go to ``docs/results/*.csv``; a parity plot and an
error-by-protocol plot per data set go to ``docs/figures/``.

Example::

    python tools/benchmark.py                       # everything
    python tools/benchmark.py --only cpp paper      # some groups; the others keep their sections
    python tools/benchmark.py --only cpp helm --protocols random   # some settings of them

A run of some groups keeps the other groups' sections of the existing report
word for word, each with the command and machine that made it, and the
headline table collects every group's per-seed scores from ``docs/results/``.
``--protocols`` does the same within the groups run: only their settings of
those protocols run, the others keep their subsections (each then names the
run that made it) and their per-seed scores; such a group's error-by-protocol
figure is drawn again from every setting's scores, its parity figure (which
needs the predictions of every setting) is kept.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cppgraph import __version__, plots
from cppgraph.cli.options import Progress
from cppgraph.data import read_data
from cppgraph.evaluate import paper
from cppgraph.evaluate.methods import CPPGraphMethod, make_methods
from cppgraph.evaluate.metrics import error_metrics
from cppgraph.evaluate.report import ALPHA, DEFAULT, compare_default, headline, markdown, summary_table
from cppgraph.evaluate.runner import evaluate, summarize
from cppgraph.evaluate.splits import KNOWN_PROTOCOLS
from cppgraph.threads import DEFAULT_THREADS, limit_threads

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Dataset:
    path: str  # under --data
    format: str
    title: str
    options: dict = field(default_factory=dict)

    def option_text(self) -> str:
        return "".join(f" --metric-type {m}" for m in self.options.get("metric_types", ()))


DATASETS = {
    "cpp": Dataset("cpp_llm", "cpp-llm", "CPP crowdsource (72 models x 29 tasks, 878 scores)"),
    "helm": Dataset("cpp_llm/helm_core.csv", "helm", "HELM core, accuracy-type metrics",
                    {"metric_types": ["accuracy"]}),
    "obsscaling": Dataset("obsscaling", "obsscaling",
                          "Observational-scaling base models (148 models x 8 benchmarks)"),
    "oll": Dataset("open_llm_leaderboard/v2.csv", "open-llm-leaderboard",
                   "Open LLM Leaderboard v2 (4,497 models x 6 benchmarks), 80% of cells masked"),
}

#: Methods of the slower settings (big matrices, many single-model splits).
FAST = ("task-mean", "task-model-offset", "soft-impute", "knn-models", "benchmark-ridge-logit",
        "scaling-law", "ncf-factors", "cppgraph", "cppgraph-lightgcn")
PAPER_4_5 = ("task-model-offset", "benchmark-ridge-logit", "scaling-law", "ncf-factors", "factors-only",
             "cppgraph")


@dataclass(frozen=True)
class Setting:
    data: str
    protocol: str
    size: float | None = None
    known: int = 0
    seeds: int = 5
    methods: tuple = ("all",)

    @property
    def label(self) -> str:
        size = "" if self.size is None else f" {self.size:g}"
        known = f" k={self.known}" if self.protocol in KNOWN_PROTOCOLS else ""
        return f"{self.protocol}{size}{known}"

    def command(self, d: Dataset) -> str:
        """The ``cppgraph evaluate`` command line of this setting on data set ``d``."""
        where = d.path if Path(d.path).is_absolute() else f"../shared/data/{d.path}"
        opts = f" --test-size {self.size:g}" if self.size is not None else ""
        opts += f" --known {self.known}" if self.known else ""
        methods = ",".join(self.methods)
        return (f"cppgraph evaluate {where} --input-format {d.format}"
                f"{d.option_text()} --protocol {self.protocol}{opts} --seeds {self.seeds} "
                f"--methods {methods}")


SETTINGS = (
    Setting("cpp", "random", 0.05), Setting("cpp", "random", 0.2),
    Setting("cpp", "cold-model", 0.1, 0), Setting("cpp", "cold-model", 0.1, 2),
    Setting("cpp", "cold-family", 0.1), Setting("cpp", "scale-up"),
    Setting("cpp", "cold-task", 0.1, 0), Setting("cpp", "cold-task", 0.1, 2),
    Setting("cpp", "frontier", 0.1, 2),
    Setting("helm", "random", 0.05), Setting("helm", "random", 0.2),
    Setting("helm", "cold-model", 0.1, 2), Setting("helm", "frontier", 0.1, 2),
    Setting("obsscaling", "random", 0.05), Setting("obsscaling", "random", 0.2),
    Setting("obsscaling", "cold-model", 0.1, 0), Setting("obsscaling", "cold-model", 0.1, 2),
    Setting("obsscaling", "cold-family", 0.1), Setting("obsscaling", "scale-up"),
    Setting("obsscaling", "frontier", 0.1, 2),
    Setting("oll", "random", 0.8, seeds=3),
    Setting("oll", "random", 0.2, seeds=3, methods=FAST),
    Setting("oll", "cold-model", 0.1, 2, seeds=3, methods=FAST),
    Setting("oll", "frontier", 0.1, 2, seeds=3, methods=FAST),
)

GROUPS = (*DATASETS, "paper")
#: The heading of the paper's set-ups (the ``paper`` group).
PAPER_TITLE = "The CPP paper's set-ups, in the paper's unit"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    return (f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, torch {torch.__version__} "
            f"({torch.get_num_threads()} thread{'s' if torch.get_num_threads() != 1 else ''}), "
            f"cppgraph {__version__}")


#: The run's progress bar (:class:`cppgraph.cli.options.Progress`: a bar with an ETA on a
#: terminal, plain lines in logs), set by :func:`run`; without one, lines go to stderr.
_bar = None


def _log(line: str) -> None:
    if _bar is not None:
        _bar.note(line)
    else:
        print(line, file=sys.stderr, flush=True)


def _progress(line: str) -> None:
    if _bar is not None:
        _bar.step(" ".join(line.split()[:3]), "  " + line)
    else:
        print("  " + line, file=sys.stderr, flush=True)


def fits(settings, groups, seeds: int = 5) -> int:
    """How many (method, seed) fits a run makes: the progress bar's total."""
    total = sum(len(make_methods(list(s.methods))) * s.seeds for s in settings)
    if "paper" in groups:
        total += 2 * len(make_methods(["all"])) * seeds
        total += 2 * (len(paper.TABLE4) + len(paper.TABLE5)) * len(PAPER_4_5) * seeds
    return total


def methods(names, *, threads: int | None = None, intervals: tuple = (DEFAULT,)) -> list:
    """:func:`make_methods`, where only the engines named in ``intervals`` run the calibration
    refit (the report gives the default engine's coverage; the others save the fit)."""
    out = make_methods(list(names), n_jobs=threads)
    for m in out:
        if isinstance(m, CPPGraphMethod) and m.name not in intervals:
            m.overrides = {**m.overrides, "intervals": False}
    return out


def _position(s: Setting) -> int:
    """Where a setting sorts: its place in :data:`SETTINGS`, a caller's own after them."""
    return SETTINGS.index(s) if s in SETTINGS else len(SETTINGS)


def _name(s: Setting) -> str:
    """The file name (without ``.csv``) of a setting's per-seed scores."""
    return f"{s.data}-{s.label.replace(' ', '-')}"


def run_settings(settings, datasets: dict, data_root: Path, out_dir: Path, *,
                 threads: int | None = None) -> list[dict]:
    """Evaluate each setting; per-seed scores to ``out_dir``; one result dict per setting."""
    results, cache = [], {}
    for s in settings:
        d = datasets[s.data]
        if s.data not in cache:
            cache[s.data] = read_data(data_root / d.path, d.format, **d.options)
        _log(f"== {s.data}: {s.label}")
        start = time.perf_counter()
        ev = evaluate(cache[s.data], s.protocol, methods(s.methods, threads=threads),
                      seeds=range(s.seeds), test_size=s.size, known=s.known, progress=_progress)
        ev.scores.to_csv(out_dir / f"{_name(s)}.csv", index=False)
        results.append({"setting": s, "summary": ev.summary(), "scores": ev.scores,
                        "cells": ev.predictions[ev.predictions["method"] == DEFAULT],
                        "minutes": (time.perf_counter() - start) / 60})
    return results


def run_paper(data_root: Path, out_dir: Path, seeds: int = 5, *, threads: int | None = None) -> dict:
    """The paper's set-ups in its unit: ``{"table1", "helm-pilot": summary, "table4", "table5":
    long frame of (known, name, method, metric, mean, std)}``."""
    cpp = read_data(data_root / DATASETS["cpp"].path, "cpp-llm")
    helm = paper.helm_pilot_data(read_data(data_root / DATASETS["helm"].path, "helm"))
    out = {}
    for key, data, splits in (("table1", cpp, lambda s: paper.table1_split(cpp, s)),
                              ("helm-pilot", helm, lambda s: paper.helm_pilot_split(helm, s))):
        _log(f"== paper: {key}")
        ev = evaluate(data, key, methods(["all"], threads=threads, intervals=()),
                      seeds=range(seeds), unit="paper",
                      splits=splits, progress=_progress)
        ev.scores.to_csv(out_dir / f"paper-{key}.csv", index=False)
        out[key] = ev.summary()
        if key == "table1":
            out["table1-largest"] = largest_error(ev)
    for key, names, make in (("table4", paper.TABLE4, paper.table4_splits),
                             ("table5", paper.TABLE5, paper.table5_splits)):
        frames, scores = [], []
        for known in (0, 2):
            for name in names:
                _log(f"== paper: {key} {name} k={known}")
                ev = evaluate(cpp, key, methods(PAPER_4_5, threads=threads, intervals=()),
                              seeds=range(seeds),
                              unit="paper", splits=make(cpp, name, known), progress=_progress)
                frames.append(ev.summary().assign(known=known, name=name))
                scores.append(ev.scores.assign(known=known, name=name))
        pd.concat(scores).to_csv(out_dir / f"paper-{key}.csv", index=False)
        out[key] = pd.concat(frames, ignore_index=True)
    return out


def largest_error(ev) -> dict:
    """The default engine's held-out cell with the largest squared error (paper unit), and
    the engine's mean MSE over seeds without it."""
    cells = ev.predictions[ev.predictions["method"] == DEFAULT].reset_index(drop=True)
    sq = (cells["predicted_norm"] - cells["score_norm"]) ** 2
    worst = int(sq.idxmax())
    rest = [error_metrics(seed["score_norm"], seed["predicted_norm"])["mse"]
            for _, seed in cells.drop(index=worst).dropna(subset=["predicted_norm"]).groupby("seed")]
    row = cells.loc[worst]
    return {"seed": int(row["seed"]), "model": row["model"], "task": row["task"],
            "score": float(row["score"]), "predicted": float(row["predicted"]),
            "score_norm": float(row["score_norm"]), "predicted_norm": float(row["predicted_norm"]),
            "squared": float(sq[worst]), "mse_without": float(np.mean(rest))}


def largest_error_line(w: dict) -> str:
    return (f"The largest squared error of cppgraph: seed {w['seed']}, {w['model']} on {w['task']}, "
            f"observed {w['score']:.4g} and predicted {w['predicted']:.4g} in the task's unit; on the "
            f"paper's scale (each cell over its model's best score) {w['score_norm']:.3f} against "
            f"{w['predicted_norm']:.3f}, a squared error of {w['squared']:.3g}. Without that cell "
            f"the mean MSE over seeds is {w['mse_without']:.3g}.")


def _pct(x) -> str:
    return f"{100 * x:.2f}"


def _pm(mean, std, fmt="{:.2e}") -> str:
    return f"{fmt.format(mean)} ± {fmt.format(std)}"


def paper_table1(summary: pd.DataFrame, reference: dict) -> pd.DataFrame:
    """Methods in the paper's four metrics, ours (mean ± std) then the paper's rows."""
    wide = summary.pivot_table(index="method", columns="metric", values=["mean", "std"],
                               sort=False)
    order = wide[("mean", "mse_norm")].sort_values().index
    rows = []
    for m in order:
        get = lambda metric, k: wide.loc[m, (k, metric)]  # noqa: E731
        rows.append({"method": m, "MSE": _pm(get("mse_norm", "mean"), get("mse_norm", "std")),
                     "L1": _pm(get("mae_norm", "mean"), get("mae_norm", "std")),
                     "rank accuracy %": f"{_pct(get('rank_acc', 'mean'))} ± "
                                        f"{_pct(get('rank_acc', 'std'))}",
                     "MAE@2 %": f"{_pct(get('rank_mae2', 'mean'))} ± {_pct(get('rank_mae2', 'std'))}"})
    for name, ref in reference.items():
        rows.append({"method": f"*paper: {name}*",
                     "MSE": f"{ref['mse_norm']:.2e}" if "mse_norm" in ref else "",
                     "L1": f"{ref['mae_norm']:.2e}" if "mae_norm" in ref else "",
                     "rank accuracy %": _pct(ref["rank_acc"]), "MAE@2 %": _pct(ref["rank_mae2"])})
    return pd.DataFrame(rows)


def bar_check(summary: pd.DataFrame, bars: dict) -> str:
    """``metric: ours vs bar`` for the default engine, with whether it clears the bar."""
    ours = summary[summary["method"] == DEFAULT].set_index("metric")["mean"]
    parts = []
    for metric, (bar, higher) in bars.items():
        ok = ours[metric] > bar if higher else ours[metric] < bar
        parts.append(f"{metric} {ours[metric]:.4g} {'>' if higher else '<'} {bar:.4g}: "
                     f"{'yes' if ok else '**no**'}")
    return "; ".join(parts)


def paper_table4(frame: pd.DataFrame, known: int) -> tuple[pd.DataFrame, str]:
    """Per model: the paper's CPP-k figures and each method's MSE; mean row; wins line."""
    f = frame[frame["known"] == known]
    mse = f[f["metric"] == "mse_norm"].pivot_table(index="name", columns="method", values="mean",
                                                   sort=False)
    ours = f[f["method"] == DEFAULT].pivot_table(index="name", columns="metric", values="mean",
                                                 sort=False)
    rows, ref_mse = [], []
    for name, (label, figs) in paper.TABLE4.items():
        p_mse, p_acc, p_mae2 = figs[known]
        ref_mse.append(p_mse)
        row = {"model": label, "paper MSE / rank acc / MAE@2": f"{p_mse:.2e} / {_pct(p_acc)} / "
                                                               f"{_pct(p_mae2)}",
               f"{DEFAULT} MSE / rank acc / MAE@2": f"{ours.loc[name, 'mse_norm']:.2e} / "
                                                   f"{_pct(ours.loc[name, 'rank_acc'])} / "
                                                   f"{_pct(ours.loc[name, 'rank_mae2'])}"}
        row.update({f"{m} MSE": f"{mse.loc[name, m]:.2e}" for m in PAPER_4_5 if m != DEFAULT})
        rows.append(row)
    means = mse.reindex(list(paper.TABLE4)).mean()
    mean_row = {"model": "**mean**", "paper MSE / rank acc / MAE@2": f"{np.mean(ref_mse):.2e}",
                f"{DEFAULT} MSE / rank acc / MAE@2": f"{means[DEFAULT]:.2e}"}
    mean_row.update({f"{m} MSE": f"{means[m]:.2e}" for m in PAPER_4_5 if m != DEFAULT})
    rows.append(mean_row)
    wins = int((mse.reindex(list(paper.TABLE4))[DEFAULT].to_numpy() < np.array(ref_mse)).sum())
    line = (f"{DEFAULT} has the lower MSE on {wins} of {len(ref_mse)} models; mean MSE "
            f"{means[DEFAULT]:.2e} against the paper's {np.mean(ref_mse):.2e}.")
    return pd.DataFrame(rows), line


def paper_table5(frame: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Per task and k: the paper's MSE and each method's."""
    mse = frame[frame["metric"] == "mse_norm"]
    rows, wins, total = [], 0, 0
    for name, (label, figs) in paper.TABLE5.items():
        for known in (0, 2):
            got = mse[(mse["name"] == name) & (mse["known"] == known)].set_index("method")["mean"]
            total += 1
            wins += int(got[DEFAULT] < figs[known])
            rows.append({"task": label, "known": f"T{known}", "paper MSE": f"{figs[known]:.4g}",
                         **{f"{m} MSE": f"{got[m]:.4g}" for m in (DEFAULT, *[
                             x for x in PAPER_4_5 if x != DEFAULT])}})
    return pd.DataFrame(rows), f"{DEFAULT} has the lower MSE in {wins} of {total} (task, k) cells."


def figures(results: list[dict], fig_dir: Path, datasets: dict, kept: list[dict] = ()) -> dict:
    """A parity plot and an error-by-protocol plot per data set of ``results``; ``key ->
    (parity, error)`` paths. ``kept``: saved results of settings not run now; a data set
    with some of them keeps its parity plot, and its error plot draws them too."""
    made = {}
    for key in dict.fromkeys(r["setting"].data for r in results):
        mine = [r for r in results if r["setting"].data == key]
        others = [r for r in kept if r["setting"].data == key]
        parity_path = fig_dir / f"{key}-parity.png"
        if not others:
            panels = {r["setting"].label: (r["cells"]["score_norm"].to_numpy(),
                                           r["cells"]["predicted_norm"].to_numpy()) for r in mine}
            plots.parity(panels, parity_path, title=f"{datasets[key].title}: {DEFAULT}, all seeds")
        mine = sorted(mine + others, key=lambda r: _position(r["setting"]))
        bars = []
        for r in mine:
            c = compare_default(r["summary"])
            s = r["summary"][r["summary"]["metric"] == "mae_norm"].set_index("method")
            bars.append({"setting": r["setting"].label, "method": DEFAULT, "mean": c["mean"],
                         "std": c["std"]})
            bars.append({"setting": r["setting"].label, "method": "best baseline",
                         "mean": c["best_mean"], "std": c["best_std"], "note": c["best"]})
            if "task-mean" in s.index:
                bars.append({"setting": r["setting"].label, "method": "task-mean",
                             "mean": s.loc["task-mean", "mean"], "std": s.loc["task-mean", "std"]})
        error_path = fig_dir / f"{key}-error-by-protocol.png"
        plots.error_bars(pd.DataFrame(bars), error_path, title=datasets[key].title)
        made[key] = (parity_path, error_path)
    return made


def saved_results(settings, res_dir: Path, *, whole: bool = True) -> list[dict]:
    """The per-seed scores of ``settings`` as an earlier run wrote them to ``res_dir``, with
    their summaries (what the headline table needs of a setting not run now): settings of
    groups not run (``whole``), or settings left out by ``--protocols``."""
    out = []
    for s in settings:
        path = res_dir / f"{_name(s)}.csv"
        if not path.is_file():
            how = f"run it too (--only ... {s.data})" if whole else \
                f"run it too (leave out --protocols, or add {s.protocol})"
            raise SystemExit(f"{path} is missing, so {s.data} cannot keep its results: {how}")
        scores = pd.read_csv(path)
        out.append({"setting": s, "summary": summarize(scores), "scores": scores})
    return out


def kept_sections(path: Path, keys, datasets: dict) -> dict[str, list[str]]:
    """The sections of the groups ``keys`` in the existing report ``path``, word for word,
    each with the "Made by" line of the run that made it (a report written before the
    sections had their own takes the one at its top)."""
    if not path.is_file():
        raise SystemExit(f"{path} does not exist, so there is nothing to keep: "
                         "run every group (without --only)")
    chunks = re.split(r"(?m)^(?=## )", path.read_text(encoding="utf-8"))
    top = re.search(r"(?m)^Made by `.*$", chunks[0])
    sections = {c.split("\n", 1)[0][3:]: c.rstrip("\n").split("\n") for c in chunks[1:]}
    out = {}
    for key in keys:
        title = PAPER_TITLE if key == "paper" else datasets[key].title
        lines = sections.get(title)
        own = lines is not None and (_made_line(lines) is not None
                                     or _each_subsection_made(lines))
        if lines is None or (top is None and not own):
            raise SystemExit(f"{path} has no section '## {title}' with the command that made it, "
                             f"so {key} cannot keep its results: run it too (--only ... {key})")
        if not own:
            lines = [lines[0], "", top.group(0), *lines[1:]]
        out[key] = [*lines, ""]
    return out


def _made_line(section: list[str]) -> str | None:
    """The "Made by" line right under a section's heading, or None."""
    return next((line for line in section[1:4] if line.startswith("Made by `")), None)


def _subsections(section: list[str]) -> dict[str, list[str]]:
    """The ``### `` subsections of ``section``: title -> lines, from the heading on."""
    subs, at = {}, None
    for line in section:
        if line.startswith("### "):
            at = line[4:]
            subs[at] = []
        if at is not None:
            subs[at].append(line)
    return subs


def _each_subsection_made(section: list[str]) -> bool:
    """Whether ``section`` has subsections and each names the run that made it."""
    subs = _subsections(section)
    return bool(subs) and all(_made_line(sub) is not None for sub in subs.values())


def kept_settings(path: Path, settings, datasets: dict) -> dict:
    """The subsections of ``settings`` (settings not run now of groups run now) in the
    existing report ``path``, word for word, each with the "Made by" line of the run that
    made it (its own, or its group's)."""
    groups = kept_sections(path, dict.fromkeys(s.data for s in settings), datasets)
    out = {}
    for s in settings:
        lines = groups[s.data]
        # the group's line, if it has one (kept_sections: else each setting has its own)
        made = _made_line(lines)
        sub = _subsections(lines).get(s.label)
        if sub is None:
            raise SystemExit(f"{path} has no subsection '### {s.label}' under "
                             f"'## {datasets[s.data].title}', so it cannot keep its results: "
                             f"run it too (leave out --protocols, or add {s.protocol})")
        while sub and not sub[-1].strip():
            sub.pop()
        out[s] = [*(sub if _made_line(sub) is not None else [sub[0], "", made, *sub[1:]]), ""]
    return out


def report(results: list[dict], paper_results: dict | None, figure_paths: dict,
           datasets: dict, doc_dir: Path, command: str, *, kept: dict | None = None,
           kept_results: list[dict] | None = None, kept_subs: dict | None = None) -> str:
    """The report of ``results`` (and ``paper_results``) made now by ``command``, with the
    sections ``kept`` (group -> lines) of groups not run and the subsections ``kept_subs``
    (setting -> lines) of settings not run in groups run now, whose per-seed scores
    (``kept_results``) join the headline table."""
    kept, kept_subs = kept or {}, kept_subs or {}
    made = f"Made by `{command}` on: {machine()}."
    order = list(datasets)

    every = sorted([*results, *(kept_results or [])],
                   key=lambda r: (order.index(r["setting"].data), _position(r["setting"])))
    lines = ["# Results", "",
             "Each section names the command and the machine that made it: `python "
             "tools/benchmark.py --only GROUP ...` reruns some groups and keeps the other "
             "sections as they are. The headline table collects the per-seed scores of every "
             "setting (`docs/results/`).", "",
             "Unless a section says otherwise, normalized metrics are on the per-task min-max "
             "scale of all observed cells of the data set, raw metrics in the tasks' own units. "
             "Each seed is one split; mean ± standard deviation over seeds. `fit_s` is the time to "
             f"fit and predict one split; only `{DEFAULT}` runs the calibration refit of its "
             "intervals (about one more fit), the other engine configurations fit without it. "
             "Rank metrics (`rank_acc`: predicted rank equals the true rank; `rank_mae2`: "
             "within 2) rank the held-out cells within each task, or within each held-out "
             "model for `cold-model` and `scale-up`. The protocols, metrics and "
             "methods are in `cppgraph/evaluate/`.", ""]
    if every:
        # rows of settings not run now come from the runs their sections name
        collected = made if not (kept_results or kept_subs) else (
            f"Collected by `{command}` on: {machine()}, from the per-seed scores of "
            f"{'this run and of ' if results else ''}the earlier runs that the sections below "
            "name.")
        lines += ["## Headline: the default engine against the best baseline", "", collected, "",
                  f"Normalized MAE, mean ± std over seeds. The best baseline is the one with the "
                  f"lowest mean. Every method sees the same split at a given seed, so the verdict "
                  f"is a paired t-test over the seeds of {DEFAULT} against that baseline: `leads` "
                  f"or `behind` when the two-sided p-value is below {ALPHA}, else `ahead, not "
                  f"significant` or `behind, not significant`. `coverage_90`: share of the held-out "
                  f"cells inside {DEFAULT}'s nominal 90% prediction interval; `width_90`: the "
                  f"intervals' mean width on the normalized scale (`docs/INTERVALS.md`).", ""]
        label = {id(r): f"{datasets[r['setting'].data].title.split(' (')[0]}: {r['setting'].label}"
                 for r in every}
        lines += [markdown(headline({label[id(r)]: r["summary"] for r in every},
                                    scores={label[id(r)]: r["scores"] for r in every})), ""]
    if paper_results:
        lines += paper_sections(paper_results, made)
    elif "paper" in kept:
        lines += kept["paper"]
    ran = set(r["setting"].data for r in results)
    for key in (k for k in datasets if k in ran or k in kept):
        if key not in ran:
            lines += kept[key]
            continue
        partial = any(s.data == key for s in kept_subs)
        lines += [f"## {datasets[key].title}", ""] + ([] if partial else [made, ""])
        parity_path, error_path = figure_paths[key]
        lines += [f"![error by protocol]({os.path.relpath(error_path, doc_dir)})", "",
                  f"![parity]({os.path.relpath(parity_path, doc_dir)})", ""]
        if partial:
            lines += ["Each setting names the run that made it. The error-by-protocol figure "
                      "is drawn from every setting's scores below; the parity figure is "
                      "from the last run of the whole group.", ""]
        now = {r["setting"]: r for r in results if r["setting"].data == key}
        mine = [*now, *(s for s in kept_subs if s.data == key)]
        for s in sorted(mine, key=_position):
            if s not in now:
                lines += kept_subs[s]
                continue
            lines += [f"### {s.label}", ""] + ([made, ""] if partial else [])
            lines += [f"`{s.command(datasets[key])}` ({s.seeds} seeds, "
                      f"{now[s]['minutes']:.1f} min)", "",
                      markdown(summary_table(now[s]["summary"])), ""]
    lines += notes()
    return "\n".join(lines) + "\n"


def paper_sections(res: dict, made: str) -> list[str]:
    lines = [f"## {PAPER_TITLE}", "", made, "",
             "Scored with `--normalization paper`: the reference code's min-max per row of the "
             "wide file, gaps filled with 0, over all cells (for the crowdsource file, a score "
             "divided by its model's best score). The baselines work on that scale too; the "
             "engine works on its own per-task scale and is scored on the paper's. Paper "
             "figures are from `PAPER.md`; the paper's variances are not comparable to our "
             "standard deviations and are left out. 5 seeds.", ""]
    if "table1" in res:
        lines += ["### Table 1: crowdsource matrix, 5% of the cells held out at random", "",
                  "Ranks within each task over the held-out cells (the released notebook's "
                  "choice). With about 44 held-out cells over 29 tasks most rank groups are "
                  "one or two cells, so rank accuracy is high for every method.", "",
                  markdown(paper_table1(res["table1"], paper.TABLE1)), "",
                  "Bar (the paper's best, NCF + factors): " + bar_check(res["table1"], {
                      "mse_norm": (1.25e-2, False), "mae_norm": (7.88e-2, False),
                      "rank_acc": (0.4545, True), "rank_mae2": (0.8454, True)}), ""]
        if "table1-largest" in res:
            lines += [largest_error_line(res["table1-largest"]), ""]
    if "helm-pilot" in res:
        lines += ["### HELM pilot: first 16 tasks x first 67 models of `helm_core.csv`, 50/50",
                  "", "876 observed cells; ranks within each task over the held-out cells.", "",
                  markdown(paper_table1(res["helm-pilot"], {"MF (approximate)": paper.HELM_PILOT})),
                  "", "Bar: " + bar_check(res["helm-pilot"], {"rank_acc": (0.10, True),
                                                               "rank_mae2": (0.39, True)}), ""]
    if "table4" in res:
        for known in (0, 2):
            table, line = paper_table4(res["table4"], known)
            lines += [f"### Table 4: one large model held out, CPP-{known}", "",
                      f"All of the model's scores hidden{'' if not known else ', 2 kept (drawn by seed)'}; "
                      "ranks within the held-out model. MSE on the paper's scale; rank figures in %.",
                      "", markdown(table), "", line, ""]
    if "table5" in res:
        table, line = paper_table5(res["table5"])
        lines += ["### Table 5: a brand-new task, 0 (T0) or 2 (T2) of its scores known", "",
                  markdown(table), "", line, ""]
    return lines


def notes() -> list[str]:
    return ["## Notes", "",
            "- On one machine a run repeats exactly. On another CPU the floating-point kernels "
            "can differ in the last digits, and where that moves an early-stopping epoch a "
            "split's figure moves visibly.",
            "- The paper's methods (`mf`, `ncf`, `ncf-factors`, `factors-only`) are re-implemented "
            "from its description and trained with Adam (lr 0.01, weight decay 1e-5, batch 64) for "
            "at most 500 epochs with early stopping (patience 30) on 10% of the training cells, "
            "instead of the reference code's 250,000 SGD epochs. Their embeddings start at "
            "standard deviation 0.01 (the NCF paper's convention); this value was chosen after "
            "seeing Table 1 results, and MF's Table 1 figure depends on it.",
            "- On Table 4 (a held-out model) the re-implemented `ncf-factors` gives the held-out "
            "model ID embeddings that never received a gradient, while `factors-only`, the same "
            "network without ID embeddings, does not need them; how the paper's code treats them "
            "is not known. On Table 5 (a held-out task) BoolQ's `task_family` value belongs to "
            "no training task and BoolQ's level is far above the mean on the paper's per-model "
            "scale, so a method that learns a new task's level from other tasks lands below it; "
            "the engine takes a new task's raw range from the training tasks sharing the most "
            "factor values (`task_prior`).",
            "- The engine's defaults were chosen with `tools/tune.py` on validation splits of the "
            "training data only (see `docs/ENGINE.md`): most on CPP crowdsource and HELM, those of "
            "new models' known scores and intervals also on the observational-scaling data, the "
            "leaderboard and synthetic data; never on the test cells of these sections. The engine "
            "(learned ID vectors propagated with the factor nodes, then the post-hoc stages) is "
            "described in `docs/ENGINE.md`.", ""]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"),
                        help="folder holding cpp_llm/, obsscaling/, open_llm_leaderboard/")
    parser.add_argument("--only", nargs="+", choices=GROUPS, default=None,
                        help="run only these groups (data sets, or 'paper' for the paper's "
                             "set-ups); the others keep their sections of --out")
    parser.add_argument("--protocols", nargs="+", default=None,
                        help="run only the settings of these protocols in the groups run; "
                             "their other settings keep their subsections of --out")
    parser.add_argument("--out", default=str(ROOT / "docs" / "RESULTS.md"))
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help="CPU threads of every method (0: one per core)")
    args = parser.parse_args(argv)
    with limit_threads(args.threads) as threads:
        run(args, threads)


def run(args, threads: int) -> None:
    groups = set(args.only or GROUPS)
    out = Path(args.out)
    res_dir, fig_dir = out.parent / "results", out.parent / "figures"
    res_dir.mkdir(parents=True, exist_ok=True)
    fig_dir.mkdir(parents=True, exist_ok=True)
    data_root = Path(args.data)
    settings = [s for s in SETTINGS if s.data in groups]
    if args.protocols:
        unknown = sorted(set(args.protocols) - {s.protocol for s in settings})
        if unknown:
            raise SystemExit(f"--protocols {' '.join(unknown)}: no setting of the groups run "
                             f"has that protocol")
        # a group left with none of them keeps its whole section
        groups = ({s.data for s in settings if s.protocol in args.protocols}
                  | (groups & {"paper"} & set(args.only or ())))
    settings = [s for s in settings if s.data in groups]
    skipped = [s for s in settings if args.protocols and s.protocol not in args.protocols]
    settings = [s for s in settings if s not in skipped]
    keep = [g for g in GROUPS if g not in groups]  # checked before the long run
    kept = kept_sections(out, keep, DATASETS) if keep else {}
    kept_subs = kept_settings(out, skipped, DATASETS) if skipped else {}
    kept_results = saved_results([s for s in SETTINGS if s.data in keep], res_dir)
    skipped_results = saved_results(skipped, res_dir, whole=False)
    global _bar
    _bar = Progress(fits(settings, groups), "benchmark", unit="fit")
    try:
        results = run_settings(settings, DATASETS, data_root, res_dir, threads=threads)
        paper_results = run_paper(data_root, res_dir, threads=threads) if "paper" in groups else None
    finally:
        _bar.close()
        _bar = None
    paths = figures(results, fig_dir, DATASETS, skipped_results)
    command = "python tools/benchmark.py" + (f" --only {' '.join(args.only)}" if args.only else "")
    command += f" --protocols {' '.join(args.protocols)}" if args.protocols else ""
    out.write_text(report(results, paper_results, paths, DATASETS, out.parent, command,
                          kept=kept, kept_results=kept_results + skipped_results,
                          kept_subs=kept_subs), encoding="utf-8")
    _log(f"wrote {out}")


if __name__ == "__main__":
    main()
