"""Copy a canonical data folder with one model factor shuffled across the models.

A control for the family clusters of ``docs/INSPECT.md``: with the ``family``
values permuted, a family no longer shapes the scores, so embeddings that
group the models by the shuffled labels would do so only because the label
is one of their inputs.

Usage: ``python tools/shuffle_factor.py data/demo --out demo-shuffled
[--factor family] [--seed 0]``. The permutation is numpy's
``default_rng(seed).permutation`` of the column in file order.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from cppgraph.data import read_canonical


def shuffle_factor(source: Path, out: Path, factor: str = "family", seed: int = 0) -> Path:
    """Write the copy to ``out`` (which must not exist) and check that it reads."""
    path = source / "model_factors.csv"
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if factor not in table.columns or factor == "model":
        raise SystemExit(f"{path}: no model factor column {factor!r}; columns: "
                         f"{', '.join(c for c in table.columns if c != 'model')}")
    if out.exists():
        raise SystemExit(f"{out} exists; choose a new folder")
    shutil.copytree(source, out)
    table[factor] = np.random.default_rng(seed).permutation(table[factor].to_numpy())
    table.to_csv(out / "model_factors.csv", index=False)
    read_canonical(out)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="a canonical data folder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--factor", default="family")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = shuffle_factor(args.data, args.out, args.factor, args.seed)
    print(f"wrote {out} ({args.factor} shuffled, seed {args.seed})", file=sys.stderr)


if __name__ == "__main__":
    main()
