"""Measure the prediction intervals and the choice of benchmarks; writes ``docs/INTERVALS.md``.

Two parts, each a set of ``cppgraph evaluate`` runs (the same library calls) of the
default engine on the shared data sets:

1. **Coverage.** ``random 0.2``, ``cold-model 0.1 k=2`` and ``frontier 0.1 k=2``:
   normalized MAE, ``coverage_90`` (share of held-out cells inside the nominal
   90% interval), ``width_90`` and ``width_rho`` (Spearman correlation of the
   interval width and the absolute error, per split).
2. **Choice.** ``cold-model 0.1`` with K = 1, 2, 3, 5 known scores per held-out
   model, chosen by ``--choose suggest``, ``random`` or ``popular``: MAE on the
   model's remaining tasks, with a figure of MAE against K. At a seed, every K and
   choice holds out the same models, so the engine (and the one ``suggest`` chooses
   with) is fitted once per seed and reused
   (:class:`cppgraph.evaluate.methods.FittedEngines`): the same predictions as a fit
   per run.

Usage: ``python tools/interval_benchmark.py [--only coverage choice] [--data D]
[--seeds 5] [--datasets cpp helm obsscaling oll]``. With ``--only``, the part not
run keeps its section (and the command that made it) from the existing file.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cppgraph import plots
from cppgraph.data import read_data
from cppgraph.evaluate.methods import CPPGraphMethod, FittedEngines, make_methods
from cppgraph.evaluate.report import markdown
from cppgraph.evaluate.runner import evaluate
from cppgraph.threads import DEFAULT_THREADS, limit_threads

ROOT = Path(__file__).resolve().parents[1]
TITLE = "# Prediction intervals and which benchmark to run next"
HEADINGS = {"coverage": "## Coverage of the nominal 90% intervals",
            "choice": "## Which benchmarks to run on a new model"}
sys.path.insert(0, str(ROOT / "tools"))
from benchmark import DATASETS, Setting, machine  # noqa: E402

COVERAGE = (("random", 0.2, 0), ("cold-model", 0.1, 2), ("frontier", 0.1, 2))
KS = (1, 2, 3, 5)
CHOICES = ("suggest", "random", "popular")
#: The leaderboard's splits take about a minute per fit: fewer seeds there in the choice
#: part; the coverage part runs every seed.
SEEDS = {"oll": 2}


def _command(d, key, protocol, size, known, seeds, choose=None) -> str:
    """The ``cppgraph evaluate`` command of one run (:meth:`benchmark.Setting.command`)."""
    setting = Setting(key, protocol, size, known, seeds=seeds, methods=("cppgraph",))
    return setting.command(d) + (f" --choose {choose}" if choose else "")


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _pm(values, digits=4) -> str:
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.{digits}f} ± {v.std():.{digits}f}"


def coverage(data_root: Path, keys, seeds: int, out_dir: Path) -> tuple[pd.DataFrame, list]:
    rows, commands = [], []
    for key in keys:
        d = DATASETS[key]
        data = read_data(data_root / d.path, d.format, **d.options)
        for protocol, size, known in COVERAGE:
            start = time.perf_counter()
            ev = evaluate(data, protocol, make_methods(["cppgraph"]), seeds=range(seeds),
                          test_size=size, known=known, progress=lambda line: _log("  " + line))
            label = f"{protocol} {size:g}" + (f" k={known}" if known else "")
            ev.scores.to_csv(out_dir / f"intervals-{key}-{label.replace(' ', '-')}.csv",
                             index=False)
            sc = ev.scores
            bar = 0.85 if protocol == "frontier" else 0.87
            cov = sc["coverage_90"].mean()
            ok = cov >= bar if protocol == "frontier" else 0.87 <= cov <= 0.93
            rows.append({"data set": d.title.split(" (")[0], "setting": label, "seeds": seeds,
                         "mae_norm": _pm(sc["mae_norm"]), "coverage_90": _pm(sc["coverage_90"], 3),
                         "width_90": _pm(sc["width_90"], 3), "width_rho": _pm(sc["width_rho"], 3),
                         "coverage bar": (f"{'≥ 85%' if protocol == 'frontier' else '87-93%'}: "
                                          f"{'yes' if ok else '**no**'}")})
            commands.append(f"`{_command(d, key, protocol, size, known, seeds)}` "
                            f"({(time.perf_counter() - start) / 60:.1f} min)")
            _log(f"{key} {label}: coverage {cov:.3f}")
    return pd.DataFrame(rows), commands


def choice(data_root: Path, keys, seeds: int, out_dir: Path, fig_dir: Path):
    rows, per_seed, commands = [], [], []
    for key in keys:
        d = DATASETS[key]
        data = read_data(data_root / d.path, d.format, **d.options)
        n = min(seeds, SEEDS.get(key, seeds))
        engines = FittedEngines()
        for k in KS:
            for how in CHOICES:
                ev = evaluate(data, "cold-model", [CPPGraphMethod("cppgraph", engines=engines)],
                              seeds=range(n), test_size=0.1, known=k, choose=how, engines=engines,
                              progress=lambda line: _log("  " + line))
                sc = ev.scores.assign(data=key, known=k, choose=how)
                per_seed.append(sc)
                _log(f"{key} k={k} {how}: MAE {sc['mae_norm'].mean():.4f}")
            commands.append(f"`{_command(d, key, 'cold-model', 0.1, k, n, 'suggest')}` (and "
                            "`--choose random`, `--choose popular`)")
        _log(f"{key}: {engines.fits} fits for {len(KS) * len(CHOICES)} runs of {n} seeds")
    seeds_frame = pd.concat(per_seed, ignore_index=True)
    seeds_frame.to_csv(out_dir / "intervals-choice.csv", index=False)
    for (key, k), part in seeds_frame.groupby(["data", "known"], sort=False):
        mae = part.pivot(index="seed", columns="choose", values="mae_norm")
        row = {"data set": DATASETS[key].title.split(" (")[0], "K": k, "seeds": len(mae)}
        for how in CHOICES:
            row[how] = _pm(mae[how])
        for other in ("random", "popular"):
            diff = mae[other] - mae["suggest"]
            sd = diff.std(ddof=0)
            row[f"{other} - suggest"] = f"{diff.mean():+.4f} ± {sd:.4f}"
            gap = mae[other].mean() - mae["suggest"].mean()
            beats = gap > max(mae["suggest"].std(ddof=0), mae[other].std(ddof=0))
            row[f"beats {other} by > 1 sd"] = ("yes" if beats else
                                              "paired only" if diff.mean() > sd else "no")
        rows.append(row)
    summary = seeds_frame.groupby(["data", "known", "choose"], sort=False)["mae_norm"].agg(
        mean="mean", std=lambda v: float(np.std(v))).reset_index()
    summary["data"] = summary["data"].map(lambda k: DATASETS[k].title.split(" (")[0])
    path = fig_dir / "choice-mae-by-k.png"
    plots.lines(summary.rename(columns={"choose": "method", "known": "K"}), path, x="K",
                panel="data", title="cold-model 0.1: MAE on the remaining tasks, by known-score choice")
    return pd.DataFrame(rows), commands, path


def kept_section(path: Path, part: str) -> list[str]:
    """The lines of ``part``'s section in the existing ``path`` (empty when there is none),
    the line naming the command that made it included."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    if HEADINGS[part] not in lines:
        return []
    start = lines.index(HEADINGS[part])
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return lines[start:end]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--only", nargs="+", choices=("coverage", "choice"),
                        default=["coverage", "choice"])
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    parser.add_argument("--choice-datasets", nargs="+", choices=list(DATASETS), default=None,
                        help="data sets of the choice part (default: --datasets)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "docs" / "INTERVALS.md"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    res_dir, fig_dir = out.parent / "results", out.parent / "figures"
    res_dir.mkdir(parents=True, exist_ok=True)
    fig_dir.mkdir(parents=True, exist_ok=True)
    command = "python tools/interval_benchmark.py " + " ".join(argv if argv is not None else sys.argv[1:])
    with limit_threads(DEFAULT_THREADS):
        made = f"Made by `{command.strip()}` on: {machine()}."
        lines = [TITLE, ""]
        if "coverage" not in args.only:
            lines += kept_section(out, "coverage")
        else:
            table, commands = coverage(Path(args.data), args.datasets, args.seeds, res_dir)
            lines += [HEADINGS["coverage"], "",
                      "The default engine (`cppgraph`); mean ± std over seeds. `coverage_90`: "
                      "share of the held-out cells inside their interval; `width_90`: mean "
                      "width on the per-task min-max scale; `width_rho`: Spearman correlation "
                      "of width and absolute error within a split (positive: wider intervals "
                      "mark larger errors). Bars: 87-93% for random and cold-model, at least "
                      "85% at the frontier.", "", markdown(table), "",
                      "Commands:", ""] + [f"- {c}" for c in commands] + ["", made, ""]
        if "choice" not in args.only:
            lines += kept_section(out, "choice")
        else:
            keys = args.choice_datasets or args.datasets
            table, commands, path = choice(Path(args.data), keys, args.seeds, res_dir, fig_dir)
            lines += [HEADINGS["choice"], "",
                      "`cold-model 0.1`: each held-out model keeps K of its scores, chosen by "
                      "`cppgraph suggest` (from the engine fitted on the training part, which "
                      "sees the model's factors but none of its scores; its targets are the "
                      "model's scored tasks, the ones the MAE is over), at random, or as the "
                      "K tasks with the most training scores (`popular`); the MAE is over the "
                      "model's other scored tasks. Mean ± std over seeds; the same held-out "
                      "models for every choice at a seed, so the differences are paired "
                      "(mean ± std of the per-seed difference). `beats ... by > 1 sd`: `yes` "
                      "when the gap of the means exceeds both standard deviations over seeds; "
                      "`paired only` when only the mean paired difference exceeds its own "
                      "standard deviation.", "", markdown(table), "",
                      f"![MAE by K]({os.path.relpath(path, out.parent)})", "",
                      "Commands:", ""] + [f"- {c}" for c in commands] + ["", made, ""]
        out.write_text("\n".join(lines).rstrip("\n") + "\n", encoding="utf-8")
        _log(f"wrote {out}")


if __name__ == "__main__":
    main()
