"""Kill ``cppgraph fit --force`` at random points and check what is left; writes
``docs/RELIABILITY.md``.

Each round starts ``cppgraph fit DATA --out MODEL --force`` over an existing
model and sends SIGKILL after a delay drawn uniformly between 0.2 s and 1.1
times the duration of an undisturbed run, so kills land in start-up, training
and saving alike; a run that ends before its delay is not a kill, and rounds
go on until ``--kills`` runs were killed. After each kill the output path must hold a whole model
that loads (``CPPGraph.load`` checks every file against its fingerprint): the
old one (same folder inode) or the new one. A last undisturbed run must
leave no temporary folder beside the output.

Usage: ``python tools/kill_check.py [--kills 20] [--seed 0]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "epochs = 20\npatience = 20\n"


def _fit_command(data: Path, out: Path, config: Path) -> list[str]:
    return [sys.executable, "-m", "cppgraph.cli", "fit", str(data), "--out", str(out), "--force",
            "--config", str(config)]


def _whole_model(out: Path) -> str:
    """'' if ``out`` holds a model that loads, else the reason."""
    from cppgraph.errors import CppGraphError
    from cppgraph.estimator import CPPGraph
    if not out.is_dir():
        return "no folder at the output path"
    try:
        CPPGraph.load(out)
    except CppGraphError as err:
        return str(err)
    return ""


def run(kills: int, seed: int, work: Path) -> tuple[list[dict], list[str], float]:
    from cppgraph.data import read_canonical, write_canonical
    data, out, config = work / "data", work / "model", work / "fast.toml"
    write_canonical(read_canonical(ROOT / "data" / "demo"), data)
    config.write_text(CONFIG)
    cmd = _fit_command(data, out, config)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    full = time.perf_counter() - start
    rng = random.Random(seed)
    rounds = []
    while sum(r["killed"] for r in rounds) < kills:
        before = out.stat().st_ino
        delay = rng.uniform(0.2, 1.1 * full)
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        finished = proc.poll() is not None
        if not finished:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        problem = _whole_model(out)
        state = ("old model" if out.exists() and out.stat().st_ino == before else
                 "new model" if out.exists() else "nothing")
        hidden = sorted(p.name for p in work.iterdir() if p.name.startswith(".model"))
        i = len(rounds) + 1
        rounds.append({"round": i, "delay": delay, "killed": not finished, "state": state,
                       "loads": not problem, "problem": problem, "hidden": len(hidden)})
        print(f"round {i:2d}: {'killed' if not finished else 'finished'} after {delay:.1f}s, "
              f"{state}, {'loads' if not problem else problem}, {len(hidden)} temporary folder(s)",
              file=sys.stderr)
    subprocess.run(cmd, check=True, capture_output=True)
    left = sorted(p.name for p in work.iterdir() if p.name.startswith("."))
    return rounds, left, full


def report(rounds: list[dict], left: list[str], full: float, seed: int) -> str:
    killed = [r for r in rounds if r["killed"]]
    ok = all(r["loads"] and r["state"] != "nothing" for r in rounds) and not left
    lines = ["# Reliability: killing `cppgraph fit --force`", "",
             "| rounds | killed | old model left | new model left | output missing or broken | "
             "temporary folders after the next run |", "|---|---|---|---|---|---|",
             f"| {len(rounds)} | {len(killed)} | "
             f"{sum(r['state'] == 'old model' for r in rounds)} | "
             f"{sum(r['state'] == 'new model' for r in rounds)} | "
             f"{sum(not r['loads'] or r['state'] == 'nothing' for r in rounds)} | {len(left)} |",
             "", f"Verdict: {'every round left a whole model' if ok else 'FAILED'}.", "",
             f"Made by `python tools/kill_check.py --kills {len(killed)} --seed {seed}` on "
             f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, Python "
             f"{platform.python_version()}. Each round runs `cppgraph fit DATA --out MODEL "
             "--force` over an existing model (demo data, 20 epochs) and sends SIGKILL after a "
             f"delay drawn between 0.2 s and 1.1 times an undisturbed run ({full:.1f} s here), "
             "until that many runs were killed (a run done before its delay is not a kill). "
             "\"Old\" and \"new\" tell the folder at the output path by its inode; \"loads\" means "
             "`CPPGraph.load` accepted it (every file checked against the saved fingerprint). "
             "Temporary folders of killed runs are counted after each round, and must be gone "
             "after one more undisturbed run.", "",
             "| round | delay (s) | killed | output path holds | loads | temporary folders |",
             "|---|---|---|---|---|---|"]
    for r in rounds:
        lines.append(f"| {r['round']} | {r['delay']:.1f} | {'yes' if r['killed'] else 'no (done)'}"
                     f" | {r['state']} | {'yes' if r['loads'] else r['problem']} | {r['hidden']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "docs" / "RELIABILITY.md"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        rounds, left, full = run(args.kills, args.seed, Path(work))
    Path(args.out).write_text(report(rounds, left, full, args.seed), encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
