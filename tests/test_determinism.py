"""The same inputs and seed give byte-identical predictions and intervals, in separate
processes (with different string-hash seeds) on two threads, on a matrix of more than
5,000 models."""

from __future__ import annotations

import os
import subprocess
import sys

from cppgraph.data import write_canonical

from conftest import load_tool

CONFIG = "epochs = 3\npatience = 3\nrandom_state = 3\n"


#: ``cppgraph fit`` then ``cppgraph predict`` (their arguments split by ``::``) in one
#: process: one import of torch.
SCRIPT = """
import sys
from cppgraph.cli import cli
cut = sys.argv.index("::")
for args in (sys.argv[1:cut], sys.argv[cut + 1:]):
    code = cli(args, standalone_mode=False)  # a failed command returns its exit code
    if code:
        sys.exit(code)
"""


def _fit_and_predict(data, config, out, hash_seed, threads):
    env = dict(os.environ, PYTHONHASHSEED=str(hash_seed))
    model = out / "model"
    fit = ["fit", str(data), "--out", str(model), "--config", str(config)]
    predict = ["predict", str(model), "--all", "--interval", "0.9", "--format", "csv",
               "--out", str(out / "pred.csv")]
    on = ["--threads", str(threads)]
    proc = subprocess.run([sys.executable, "-c", SCRIPT, *fit, *on, "::", *predict, *on],
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return (out / "pred.csv").read_bytes(), (model / "weights.pt").read_bytes()


def test_same_seed_same_bytes_on_5000_models(tmp_path):
    data = load_tool("make_scale_data").make_scale_data(5200, 4, 0.6, seed=1)
    assert len(data.models) >= 5000
    folder = write_canonical(data, tmp_path / "data")
    config = tmp_path / "short.toml"
    config.write_text(CONFIG)
    runs = []
    for hash_seed in (1, 2):
        out = tmp_path / f"run{hash_seed}"
        out.mkdir()
        runs.append(_fit_and_predict(folder, config, out, hash_seed, threads=2))
    assert runs[0][0] == runs[1][0]
    assert runs[0][1] == runs[1][1]
    assert runs[0][0].count(b"\n") == 5200 * 4 + 1
