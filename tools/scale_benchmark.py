"""Measure the engine at scale and on a shared machine; writes ``docs/SCALE.md``.

Five parts, each with its command in the report:

1. **Scale.** Synthetic low-rank folders from ``tools/make_scale_data.py``
   (10k, 100k and 1M observed cells). On a 10% random hold-out: fit and
   predict wall time, peak RSS and normalized MAE of ``cppgraph`` and of
   ``svd``, ``soft-impute`` and ``mf``, each run in its own process (so that
   the peak RSS is its own, with that of the process beside it where the fit
   starts one); then ``cppgraph fit`` on the whole folder from the command line.
2. **Accuracy on 500 x 50.** ``cppgraph evaluate`` on the synthetic
   500 x 50 matrix at 50% density, random 10%, 3 seeds.
3. **Other shapes.** The same on a wide matrix and on two sparse ones
   (:data:`SHAPES`), 2 seeds.
4. **Threads on a shared machine.** The quick-start fit on an idle machine
   and with 4 other CPU-bound processes running, with the defaults (one
   thread, the calibration fit in a second process where a core is free), in
   one process, and with one thread per core (3 runs each, the median).
5. **Commands on a fitted model.** Wall time and peak RSS of each command a
   user runs on a fitted model (``predict --all``, ``neighbours``,
   ``suggest``, ``clusters``, ``embeddings``, ``graph``, ``explain``), start-up
   and loading included, on the models of the 100k and 1M folders (fitted
   first where ``--work`` holds none).

Each run also writes its raw figures to ``docs/SCALE.json``; with ``--only``, the
parts not run keep the figures of their last run from there, and with ``--sizes`` the
scale part reruns only those sizes and keeps the others' rows; each section names the
command that made it. Run it alone: other work on the machine distorts the times.
Usage: ``python tools/scale_benchmark.py [--out docs/SCALE.md] [--only threads accuracy shapes
scale commands] [--sizes 10k 100k 1M]`` (``--report-only``: rewrite the report from the JSON file).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"10k": (200, 100), "100k": (2000, 100), "1M": (20000, 100)}
DENSITY = 0.5
BASELINES = ("svd", "soft-impute", "mf")
#: The parts, in the order they run (and their sections appear).
PARTS = ("threads", "accuracy", "shapes", "scale", "commands")
#: Matrices of other shapes for the shapes part: (models, tasks, density). The last one
#: has fewer than 50,000 training cells, so it trains with the small-data schedule (but
#: for ``train_delta``, which is that of large data below 10% density).
SHAPES = {"wide": (1000, 500, 0.2), "sparse": (10000, 200, 0.05),
          "sparse, small": (5000, 200, 0.05)}
SHAPE_SEEDS = 2
#: The sizes whose fitted models the commands part runs on.
COMMAND_SIZES = ("100k", "1M")
#: The quick-start fits run this many times in each setting (the median is reported: the
#: machine's speed drifts), unless a run takes longer than REPEAT_UNDER_S.
REPEATS, REPEAT_UNDER_S = 3, 60.0
#: A run that takes longer is stopped and reported as such.
RUN_LIMIT_S = 2400
#: The ``cppgraph`` command of this interpreter's environment (found without activating it).
_BESIDE = Path(sys.executable).with_name("cppgraph")
CPPGRAPH = str(_BESIDE) if _BESIDE.is_file() else "cppgraph"

WORKER = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
from cppgraph.data import read_canonical
from cppgraph.evaluate.methods import make_methods
from cppgraph.evaluate.runner import score_split, unit_normalizer
from cppgraph.evaluate.splits import make_split
from cppgraph.threads import limit_threads
folder, name = sys.argv[1], sys.argv[2]
data = read_canonical(folder)
split = make_split(data, "random", 0, test_size=0.1)
unit = unit_normalizer(data)
with limit_threads(1):
    start = time.perf_counter()
    metrics, _ = score_split(split, make_methods([name])[0], unit=unit, seed=0)
    seconds = time.perf_counter() - start
print(json.dumps({"mae_norm": metrics["mae_norm"], "coverage_90": metrics.get("coverage_90"),
                  "seconds": seconds, "cells": len(split.train.scores)}))
"""


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _tree_rss_mb(pid: int) -> float:
    """Resident memory (MB) of process ``pid`` and all its descendants together (0 once gone)."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                total += next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    stack += [int(c) for c in f.read().split()]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total / 1024


def _run(cmd: list[str], *, limit: float = RUN_LIMIT_S) -> tuple[float, float, str, bool]:
    """Wall seconds, peak RSS (MB) of the child and the processes it starts (the fit's
    calibration refit runs in one beside it; their sum, sampled every 50 ms, or the
    largest single process's peak if that is more), its stdout, and whether it timed out."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, cwd=ROOT)
        timed_out, peak = False, 0.0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - start > limit:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                timed_out = True
                break
            peak = max(peak, _tree_rss_mb(proc.pid))
            time.sleep(0.05)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0 and not timed_out:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{err.read()[-2000:]}")
        return wall, max(peak, usage.ru_maxrss / 1024), out.read(), timed_out


def make_data(folder: Path, models: int, tasks: int, density: float, seed: int = 0) -> Path:
    if not (folder / "scores.csv").is_file():
        subprocess.run([sys.executable, "tools/make_scale_data.py", "--models", str(models),
                        "--tasks", str(tasks), "--density", str(density), "--seed", str(seed),
                        "--out", str(folder)], check=True, cwd=ROOT, capture_output=True)
    return folder


def _fit_command(folder: Path, model: Path) -> list[str]:
    """``cppgraph fit`` of a whole folder into ``model``: the scale part times it, and the
    commands part runs on the model it leaves."""
    return [CPPGRAPH, "fit", str(folder), "--out", str(model), "--force"]


def scale_part(work: Path, sizes=tuple(SIZES)) -> list[dict]:
    rows = []
    for label, (models, tasks) in ((k, v) for k, v in SIZES.items() if k in sizes):
        folder = make_data(work / f"syn-{label}", models, tasks, DENSITY)
        for name in ("cppgraph", *BASELINES):
            _log(f"scale {label}: {name}")
            wall, rss, out, timed_out = _run([sys.executable, "-c", WORKER, str(folder), name])
            row = {"size": label, "method": name, "wall_s": wall, "rss_mb": rss,
                   "timed_out": timed_out}
            if not timed_out:
                row.update(json.loads(out.strip().splitlines()[-1]))
            rows.append(row)
            _log(f"  {row}")
        _log(f"scale {label}: cppgraph fit (command line)")
        wall, rss, _, timed_out = _run(_fit_command(folder, work / f"model-{label}"))
        rows.append({"size": label, "method": "cppgraph fit (CLI, all cells)", "wall_s": wall,
                     "rss_mb": rss, "timed_out": timed_out})
        _log(f"  {rows[-1]}")
    return rows


def accuracy_part(work: Path) -> str:
    folder = make_data(work / "syn-500x50", 500, 50, DENSITY)
    _log("accuracy: 500 x 50")
    _, _, out, _ = _run(_evaluate_command(folder, 3))
    return out


def _evaluate_command(folder: Path, seeds: int) -> list[str]:
    return [CPPGRAPH, "evaluate", str(folder), "--protocol", "random", "--test-size", "0.1",
            "--seeds", str(seeds), "--methods", "cppgraph,svd,soft-impute,mf", "--format", "json"]


def shapes_part(work: Path) -> list[dict]:
    rows = []
    for label, (models, tasks, density) in SHAPES.items():
        folder = make_data(work / f"syn-{models}x{tasks}-{density:g}", models, tasks, density)
        _log(f"shapes: {label}, {models} x {tasks} at {density:g}")
        _, _, out, timed_out = _run(_evaluate_command(folder, SHAPE_SEEDS))
        with open(folder / "scores.csv", newline="", encoding="utf-8") as f:
            cells = sum(1 for _ in csv.reader(f)) - 1
        rows.append({"shape": label, "models": models, "tasks": tasks, "density": density,
                     "cells": cells, "timed_out": timed_out,
                     "results": None if timed_out else json.loads(out)})
        _log(f"  {rows[-1]}")
    return rows


def _mae(records) -> dict:
    """method -> (mean, std) of the normalized MAE in the records of one
    ``cppgraph evaluate --format json`` run (none: empty)."""
    return {r["method"]: (r["mean"], r["std"]) for r in records or ()
            if r["metric"] == "mae_norm"}


def _over_best(mae: dict) -> float:
    """cppgraph's MAE over the best baseline's (``mae`` as :func:`_mae` gives)."""
    return mae["cppgraph"][0] / min(m for n, (m, _) in mae.items() if n != "cppgraph")


def shapes_section(rows: list[dict], made: list[str]) -> list[str]:
    lines = ["## Other shapes, random 10%", "", *made,
             f"`cppgraph evaluate DATA --protocol random --test-size 0.1 --seeds {SHAPE_SEEDS} "
             "--methods cppgraph,svd,soft-impute,mf`, DATA from `python tools/make_scale_data.py "
             "--models M --tasks T --density D --seed 0`. Normalized MAE, mean ± std over the "
             "seeds; `x best` is cppgraph's over the best baseline's. Below 50,000 training "
             "cells (about 56,000 observed) the default trains with the small-data schedule, "
             "but for `train_delta`, which below 10% density is that of large data.", "",
             "| shape | models x tasks, density | observed cells | cppgraph | svd | soft-impute "
             "| mf | x best |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        where = f"{r['models']:,} x {r['tasks']:,}, {r['density']:.0%}"
        if r["timed_out"]:
            lines.append(f"| {r['shape']} | {where} | {r['cells']:,} | stopped after "
                         f"{RUN_LIMIT_S} s | | | | |")
            continue
        mae = _mae(r["results"])
        lines.append(f"| {r['shape']} | {where} | {r['cells']:,} | "
                     + " | ".join(f"{mae[n][0]:.4f} ± {mae[n][1]:.4f}"
                                  for n in ("cppgraph", *BASELINES))
                     + f" | {_over_best(mae):.2f} |")
    return lines + [""]


def _model_commands(model: Path, out: Path, first_model: str) -> list[tuple[str, list[str]]]:
    """(label, arguments) of each command the commands part times on ``model``."""
    m = str(model)
    return [
        ("predict --all", ["predict", m, "--all", "--format", "csv", "--out",
                           str(out / "all.csv"), "--force"]),
        ("predict --all --interval 0.9", ["predict", m, "--all", "--interval", "0.9", "--format",
                                          "csv", "--out", str(out / "all-90.csv"), "--force"]),
        ("neighbours MODEL", ["neighbours", m, first_model]),
        ("suggest --model MODEL --budget 3", ["suggest", m, "--model", first_model,
                                              "--budget", "3"]),
        ("clusters --by embedding --k 9", ["clusters", m, "--by", "embedding", "--k", "9"]),
        ("embeddings", ["embeddings", m, "--out", str(out / "embeddings.csv"), "--force"]),
        ("graph", ["graph", m, "--out", str(out / "graph.graphml"), "--force"]),
        ("explain", ["explain", m]),
    ]


def commands_part(work: Path) -> list[dict]:
    rows = []
    for label in COMMAND_SIZES:
        models, tasks = SIZES[label]
        folder = make_data(work / f"syn-{label}", models, tasks, DENSITY)
        model = work / f"model-{label}"
        if not (model / "model.json").is_file():
            _log(f"commands {label}: fitting the model first (not timed)")
            _run(_fit_command(folder, model))
        with open(folder / "model_factors.csv", newline="", encoding="utf-8") as f:
            first = next(csv.DictReader(f))["model"]
        out = work / f"outputs-{label}"
        out.mkdir(exist_ok=True)
        for name, args in _model_commands(model, out, first):
            _log(f"commands {label}: {name}")
            wall, rss, _, timed_out = _run([CPPGRAPH, *args])
            rows.append({"size": label, "command": name, "wall_s": wall, "rss_mb": rss,
                         "timed_out": timed_out})
            _log(f"  {rows[-1]}")
    return rows


def _busy() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)


def _settings() -> list[tuple[str, int, bool]]:
    """The quick-start fit's settings on a shared machine: (label, --threads, whether the
    calibration fit may run in a process beside the main fit)."""
    from cppgraph.threads import available_cores

    cores = available_cores()
    return [("default: 1 thread, the calibration fit beside when a core is free", 1, True),
            ("1 thread, one process (`calibration_process = false`)", 1, False),
            (f"{cores} threads (one per core)", cores, True)]


def threads_part(work: Path) -> list[dict]:
    rows = []
    one_process = work / "one-process.toml"
    one_process.write_text("calibration_process = false\n")
    for load in (0, 4):
        procs = [_busy() for _ in range(load)]
        try:
            time.sleep(1.0 if load else 0.0)
            for label, threads, beside in _settings():
                extra = [] if beside else ["--config", str(one_process)]
                walls, timed_out = [], False
                while len(walls) < REPEATS and not timed_out:
                    _log(f"threads: load {load}, {label}, run {len(walls) + 1}")
                    wall, _, _, timed_out = _run(
                        [CPPGRAPH, "fit", "data/demo", "--out", str(work / "demo-model"),
                         "--force", "--threads", str(threads), *extra], limit=1200)
                    walls.append(wall)
                    if wall > REPEAT_UNDER_S:
                        break
                rows.append({"load": load, "setting": label, "threads": threads,
                             "wall_s": statistics.median(walls), "runs": walls,
                             "timed_out": timed_out})
                _log(f"  {rows[-1]}")
        finally:
            for p in procs:
                p.kill()
                p.wait()
    return rows


def _fmt(v, spec="{:.1f}") -> str:
    return "n/a" if v is None or v != v else spec.format(v)


def _wall(row: dict) -> str:
    """A timed run's wall seconds, or how long it ran before it was stopped."""
    return ("stopped after " + _fmt(row["wall_s"], "{:.0f}") if row["timed_out"]
            else _fmt(row["wall_s"]))


def headline(scale: list[dict] | None, accuracy: str | None,
             threads: list[dict] | None, model_commands: list[dict] | None = None,
             shapes: list[dict] | None = None) -> list[str]:
    """The answers first: accuracy against the best baseline, time and memory per size."""
    lines = ["## Headline", ""]
    if scale:
        lines += ["| observed cells | cppgraph mae_norm | best baseline | cppgraph fit + predict "
                  "(s) | `cppgraph fit`, all cells (s) | peak RSS (MB) |",
                  "|---|---|---|---|---|---|"]
        for size in dict.fromkeys(r["size"] for r in scale):
            rows = {r["method"]: r for r in scale if r["size"] == size}
            ours = rows.get("cppgraph", {})
            fit = next((r for m, r in rows.items() if m.startswith("cppgraph fit")), {})
            base = [r for m, r in rows.items() if m in BASELINES and not r["timed_out"]]
            best = min(base, key=lambda r: r["mae_norm"]) if base else None
            lines.append(
                f"| {size} | {_fmt(ours.get('mae_norm'), '{:.4f}')} | "
                + (f"{best['method']} {best['mae_norm']:.4f}" if best else "n/a")
                + f" | {_fmt(ours.get('seconds'))} | {_fmt(fit.get('wall_s'))} | "
                f"{_fmt(max(ours.get('rss_mb') or 0, fit.get('rss_mb') or 0), '{:.0f}')} |")
        lines.append("")
    if accuracy:
        lines += [f"Synthetic 500 x 50, half observed: cppgraph's normalized MAE is "
                  f"{_over_best(_mae(json.loads(accuracy))):.2f} times the best matrix "
                  "completion's.", ""]
    ratios = []
    for r in shapes or ():
        mae = _mae(r["results"])
        if "cppgraph" in mae:
            ratios.append(f"{_over_best(mae):.2f} ({r['shape']}, "
                          f"{r['models']:,} x {r['tasks']:,} at {r['density']:.0%})")
    if ratios:
        lines += ["Other shapes, the same ratio: " + "; ".join(ratios) + ".", ""]
    if threads:
        walls = {(r["load"], r["setting"]): r["wall_s"] for r in threads}
        (default, *_), (one, *_) = _settings()[:2]
        if (4, default) in walls and (0, default) in walls:
            lines += [f"The quick-start fit with 4 other busy processes on the machine: "
                      f"{walls[4, default] / walls[0, default]:.2f} times its idle time with the "
                      f"defaults ({walls[0, default]:.1f} s idle, {walls[4, default]:.1f} s busy)"
                      + (f"; in one process, {walls[4, one] / walls[0, one]:.2f} times "
                         f"({walls[0, one]:.1f} s and {walls[4, one]:.1f} s)"
                         if (4, one) in walls and (0, one) in walls else "") + ".", ""]
    if model_commands:
        spans = []
        for size in dict.fromkeys(r["size"] for r in model_commands):
            rows = [r for r in model_commands if r["size"] == size and not r["timed_out"]]
            if rows:
                slow = max(rows, key=lambda r: r["wall_s"])
                spans.append(f"{min(r['wall_s'] for r in rows):.0f} to {slow['wall_s']:.0f} s "
                             f"at {size} (slowest: `{slow['command']}`)")
        lines += ["Each command on a fitted model, start-up and loading included: "
                  + "; ".join(spans) + ".", ""]
    return lines


def _made(commands: dict, part: str, sizes: dict | None = None) -> list[str]:
    """A section's "Made by" line, when the parts (or the scale part's sizes, ``sizes``:
    size -> command) come from different runs."""
    if len(set(commands.values()) | set((sizes or {}).values())) < 2:
        return []
    if part == "scale" and sizes and len(set(sizes.values())) > 1:
        by = {}
        for size, cmd in sizes.items():
            by.setdefault(cmd, []).append(size)
        return ["Made by " + " and ".join(f"`{c}` ({', '.join(v)})" for c, v in by.items())
                + ".", ""]
    return [f"Made by `{commands[part]}`.", ""]


def commands_section(rows: list[dict], made: list[str]) -> list[str]:
    """The commands part's table: one row per command, one column pair per size."""
    sizes = list(dict.fromkeys(r["size"] for r in rows))
    table = {(r["command"], r["size"]): r for r in rows}
    lines = ["## Commands on a fitted model", "", *made,
             "`cppgraph COMMAND MODEL_DIR ...` on the model that `cppgraph fit` made of the "
             "whole folder (the first model of the data where a command names one), whole "
             "command: start-up, loading the model folder and writing the output included. "
             "`predict --all` writes every models x tasks cell.", "",
             "| command | " + " | ".join(f"{s}: wall (s) | {s}: peak RSS (MB)" for s in sizes)
             + " |", "|---|" + "---|---|" * len(sizes)]
    for name in dict.fromkeys(r["command"] for r in rows):
        cells = []
        for size in sizes:
            r = table.get((name, size))
            if r is None:
                cells += ["", ""]
            else:
                cells += [_wall(r), _fmt(r["rss_mb"], "{:.0f}")]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return lines + [""]


def report(scale: list[dict] | None, accuracy: str | None, threads: list[dict] | None,
           commands: dict, sizes: dict | None = None,
           model_commands: list[dict] | None = None, shapes: list[dict] | None = None) -> str:
    """SCALE.md; ``commands``: the command line that made each part's figures (``sizes``:
    the scale part's, per size, where its sizes come from different runs)."""
    import torch

    from cppgraph import __version__
    lines = ["# Scale and speed", ""]
    made = sorted(set(commands.values()) | set((sizes or {}).values()))
    by = (f"`{made[0]}`" if len(made) == 1 else
          " and ".join(f"`{m}`" for m in made) + " (each section names its own)")
    lines += [f"Made by {by} on {platform.system()} {platform.machine()}, "
              f"{os.cpu_count()} cores, Python {platform.python_version()}, torch "
              f"{torch.__version__}, cppgraph {__version__}. Synthetic data from "
              "`tools/make_scale_data.py` (rank-3 latent, family and size effects, "
              f"density {DENSITY:g} unless a section gives another). Times are wall seconds on one thread per process; ratios are "
              "between figures of one run. cppgraph runs with its default configuration, which "
              "includes the calibration refit of the prediction intervals (a second fit "
              "without a share of the models, tasks and cells), run in a second process "
              "beside the main fit (`calibration_process`); `intervals = false` in the "
              "configuration leaves it out. Peak RSS is the largest sum of both processes' resident "
              "sizes, sampled every 50 ms: an upper bound, as the pages the second process "
              "shares with the first (it is forked) count twice. From 50,000 training cells on (100k and 1M), "
              "the default trains with the large-data schedule (`\"auto\"` keys, "
              "`docs/ENGINE.md`).", ""]
    lines += headline(scale, accuracy, threads, model_commands, shapes)
    if scale:
        fits = {r["size"]: r for r in scale if r["method"].startswith("cppgraph fit")}
        lines += ["## `cppgraph fit` on the whole folder", "",
                  *_made(commands, "scale", sizes),
                  "| observed cells | wall (s) | peak RSS (MB) |", "|---|---|---|"]
        for size, r in fits.items():
            lines.append(f"| {size} | {_wall(r)} | {_fmt(r['rss_mb'], '{:.0f}')} |")
        lines += ["", "## Fit and predict on a 10% random hold-out", "",
                  "Each method in its own process; `seconds` is fit plus predict, `x cppgraph` "
                  "its ratio to cppgraph's on the same data; `coverage_90` the share of the "
                  "held-out cells inside cppgraph's nominal 90% intervals (the baselines give "
                  "none).", "",
                  "| cells | method | mae_norm | coverage_90 | seconds | x cppgraph | "
                  "peak RSS (MB) |",
                  "|---|---|---|---|---|---|---|"]
        base = {r["size"]: r.get("seconds") for r in scale if r["method"] == "cppgraph"}
        for r in scale:
            if r["method"].startswith("cppgraph fit"):
                continue
            if r["timed_out"]:
                lines.append(f"| {r['size']} | {r['method']} | stopped after "
                             f"{RUN_LIMIT_S} s | | | | |")
                continue
            ratio = r["seconds"] / base[r["size"]] if base.get(r["size"]) else float("nan")
            lines.append(f"| {r['size']} | {r['method']} | {r['mae_norm']:.4f} | "
                         f"{_fmt(r.get('coverage_90'), '{:.3f}')} | {r['seconds']:.1f} | "
                         f"{ratio:.2f} | {r['rss_mb']:.0f} |")
        lines.append("")
    if accuracy:
        mae = _mae(json.loads(accuracy))
        lines += ["## Synthetic 500 x 50, random 10%, 3 seeds", "", *_made(commands, "accuracy"),
                  "`cppgraph evaluate syn-500x50 --protocol random --test-size 0.1 --seeds 3 "
                  "--methods cppgraph,svd,soft-impute,mf` (data: `python tools/make_scale_data.py "
                  "--models 500 --tasks 50 --density 0.5 --seed 0 --out syn-500x50`).", "",
                  "| method | mae_norm |", "|---|---|"]
        for name, (mean, std) in sorted(mae.items(), key=lambda kv: kv[1][0]):
            lines.append(f"| {name} | {mean:.4f} ± {std:.4f} |")
        lines += ["", f"cppgraph / best baseline: {_over_best(mae):.3f}.", ""]
    if shapes:
        lines += shapes_section(shapes, _made(commands, "shapes"))
    if threads:
        idle = {r["setting"]: r["wall_s"] for r in threads if r["load"] == 0}
        lines += ["## The quick-start fit on a shared machine", "", *_made(commands, "threads"),
                  "`cppgraph fit data/demo --out demo-model --force --threads N` (in one "
                  "process: with `--config` of a file holding `calibration_process = false`), "
                  "whole command (start-up included), idle and with 4 other CPU-bound processes "
                  "(`python -c 'while True: pass'`, each in its own session); the median of "
                  f"{REPEATS} runs (one where a run takes over {REPEAT_UNDER_S:.0f} s).", "",
                  "| other processes | setting | wall (s) | runs (s) | x idle, same setting |",
                  "|---|---|---|---|---|"]
        for r in threads:
            runs = ", ".join(f"{w:.1f}" for w in r.get("runs", [r["wall_s"]]))
            lines.append(f"| {r['load']} | {r['setting']} | {r['wall_s']:.1f} | {runs} | "
                         f"{r['wall_s'] / idle[r['setting']]:.2f} |")
        lines += ["", "With 4 busy processes on 2 cores, a single-threaded job gets about 2/5 "
                  "of a core from a fair scheduler, so about 2.5x its idle time is the floor "
                  "for a fit in one process. The default runs the calibration fit in a second "
                  "process only when a core is free (none is with 4 busy processes): a second "
                  "process shortens the idle fit, but on a busy machine it only shares the "
                  "same cores, which the scheduler divides by session.", ""]
    if model_commands:
        lines += commands_section(model_commands, _made(commands, "commands"))
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "SCALE.md"))
    parser.add_argument("--only", nargs="+", choices=PARTS, default=None,
                        help="run these parts; the others keep the figures of their last run "
                        "(from the JSON file beside --out)")
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=None,
                        help="scale part: run only these sizes; the others keep the rows of "
                        "their last run")
    parser.add_argument("--work", default=None, help="folder for the generated data (default: "
                        "a temporary folder)")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: write --out again from the figures of the JSON file "
                        "beside it (after a change of the report's text)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.report_only and (args.only or args.sizes):
        raise SystemExit("--report-only runs no part: leave out --only and --sizes")
    parts = set() if args.report_only else set(args.only or PARTS)
    command = "python tools/scale_benchmark.py" + (f" --only {' '.join(args.only)}" if args.only else "")
    sizes = tuple(args.sizes or SIZES)
    if args.sizes:
        if "scale" not in parts:
            raise SystemExit("--sizes picks sizes of the scale part, which this run leaves out")
        command += f" --sizes {' '.join(args.sizes)}"
    keep = tuple(p for p in PARTS if p not in parts or (p == "scale" and args.sizes))
    saved = kept_results(out.with_suffix(".json"), keep)
    earlier = saved.pop("scale", None) if args.sizes else None
    if args.sizes and earlier is None and set(sizes) != set(SIZES):
        raise SystemExit(f"{out.with_suffix('.json')} has no scale figures for the other sizes "
                         "to keep: run the scale part with every size")
    runners = {"threads": threads_part, "accuracy": accuracy_part, "shapes": shapes_part,
               "scale": lambda work: scale_part(work, sizes), "commands": commands_part}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for part in PARTS:
            if part in parts:
                saved[part] = {"command": command, "results": runners[part](work)}
    if earlier is not None:
        saved["scale"] = merge_sizes(earlier, saved["scale"], sizes)
    out.with_suffix(".json").write_text(json.dumps(saved, indent=1) + "\n", encoding="utf-8")
    results = {p: saved[p]["results"] if p in saved else None for p in PARTS}
    out.write_text(report(results["scale"], results["accuracy"], results["threads"],
                          {p: saved[p]["command"] for p in saved},
                          saved.get("scale", {}).get("sizes"), results["commands"],
                          results["shapes"]) + "\n",
                   encoding="utf-8")
    _log(f"wrote {out} and {out.with_suffix('.json').name}")


def merge_sizes(earlier: dict, new: dict, sizes: tuple) -> dict:
    """The scale part's saved figures: ``new``'s rows for ``sizes``, ``earlier``'s for the
    other sizes, in size order, with the command that made each size (``"sizes"``)."""
    made = earlier.get("sizes") or {r["size"]: earlier["command"] for r in earlier["results"]}
    rows = [r for r in earlier["results"] if r["size"] not in sizes] + new["results"]
    rows.sort(key=lambda r: list(SIZES).index(r["size"]))  # stable: method order kept
    made = {**made, **{size: new["command"] for size in sizes}}
    return {"command": new["command"], "results": rows,
            "sizes": {size: made[size] for size in SIZES if size in made}}


def kept_results(path: Path, keep: tuple) -> dict:
    """The saved results (``{part: {"command", "results"}}``) of the parts in ``keep``,
    from the JSON file a previous run wrote (none if there is no file)."""
    if not keep or not path.is_file():
        return {}
    saved = json.loads(path.read_text(encoding="utf-8"))
    return {p: saved[p] for p in keep if p in saved}


if __name__ == "__main__":
    main()
