"""Run the evaluation protocols on the shared data sets and write ``docs/RESULTS.md``.

Each setting is one ``cppgraph evaluate`` run (same library calls); the
report lists, per setting, every method's mean ± std over seeds, the command
that reproduces it, and the machine it ran on. Per-seed scores go to
``docs/results/*.csv``.

Example::

    python tools/benchmark.py --data ../shared/data            # every setting
    python tools/benchmark.py --data ../shared/data --only cpp  # CPP crowdsource only
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from cppgraph import __version__
from cppgraph.cli.evaluate import summary_table
from cppgraph.data import read_data
from cppgraph.evaluate.methods import make_methods
from cppgraph.evaluate.runner import evaluate

ROOT = Path(__file__).resolve().parents[1]

#: data set key -> (path under --data, reader format, title)
DATASETS = {
    "cpp": ("cpp_llm", "cpp-llm", "CPP crowdsource (72 models x 29 tasks, 878 scores)"),
}

#: (data set, protocol, test size, known, seeds)
SETTINGS = (
    ("cpp", "random", 0.05, 0, 5),
    ("cpp", "random", 0.2, 0, 5),
    ("cpp", "cold-model", 0.1, 0, 5),
    ("cpp", "cold-model", 0.1, 2, 5),
)


def command(key: str, protocol: str, size: float, known: int, seeds: int) -> str:
    path, fmt, _ = DATASETS[key]
    known_opt = f" --known {known}" if known else ""
    return (f"cppgraph evaluate ../shared/data/{path} --input-format {fmt} --protocol {protocol} "
            f"--test-size {size:g}{known_opt} --seeds {seeds} --methods all")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    return (f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), cppgraph {__version__}")


def run(data_root: Path, out_dir: Path, only: set | None = None) -> list[dict]:
    results = []
    cache = {}
    for key, protocol, size, known, seeds in SETTINGS:
        if only and key not in only:
            continue
        path, fmt, title = DATASETS[key]
        if key not in cache:
            cache[key] = read_data(data_root / path, fmt)
        label = f"{key}-{protocol}-{size:g}-k{known}"
        print(f"== {label}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        ev = evaluate(cache[key], protocol, make_methods(["all"]), seeds=range(seeds),
                      test_size=size, known=known,
                      progress=lambda line: print("  " + line, file=sys.stderr, flush=True))
        ev.scores.to_csv(out_dir / f"{label}.csv", index=False)
        results.append({"key": key, "title": title, "protocol": protocol, "size": size,
                        "known": known, "seeds": seeds, "summary": ev.summary(),
                        "command": command(key, protocol, size, known, seeds),
                        "minutes": (time.perf_counter() - start) / 60})
    return results


def markdown(table: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table of string cells."""
    rows = [list(table.columns), ["---"] * len(table.columns)] + table.astype(str).values.tolist()
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)


def report(results: list[dict]) -> str:
    lines = ["# Results", "",
             "Measured by `python tools/benchmark.py --data ../shared/data` on: " + machine() + ".",
             "Normalized metrics are on the per-task min-max scale of all observed cells of the "
             "data set; raw metrics in the tasks' own units (points for the CPP matrix). Mean ± "
             "standard deviation over seeds; each seed is one split. `fit_s` is the time to fit "
             "and predict one split. Methods are sorted by normalized MAE. See "
             "`cppgraph/evaluate/` for the protocols, metrics and methods.", ""]
    for r in results:
        what = {"random": f"{r['size']:.0%} of the observed cells held out at random",
                "cold-model": f"{r['size']:.0%} of the models held out, {r['known']} known "
                              "score(s) kept for each"}.get(r["protocol"], r["protocol"])
        lines += [f"## {r['title']}: `{r['protocol']}`, {what}", "",
                  f"`{r['command']}` ({r['seeds']} seeds, {r['minutes']:.1f} min)", ""]
        table = summary_table(r["summary"])
        lines += [markdown(table), ""]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"),
                        help="folder holding cpp_llm/, obsscaling/, open_llm_leaderboard/")
    parser.add_argument("--only", nargs="+", choices=list(DATASETS), default=None)
    parser.add_argument("--out", default=str(ROOT / "docs" / "RESULTS.md"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    (out.parent / "results").mkdir(parents=True, exist_ok=True)
    results = run(Path(args.data), out.parent / "results", set(args.only) if args.only else None)
    out.write_text(report(results), encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
