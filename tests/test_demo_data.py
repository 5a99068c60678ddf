"""The committed synthetic demo data (data/demo) and its generator."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import DEMO, load_tool

from cppgraph.data import read_canonical


@pytest.fixture(scope="module")
def generator():
    return load_tool("make_demo_data")


@pytest.fixture(scope="module")
def demo():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return read_canonical(DEMO)


@pytest.fixture(scope="module")
def normalized(demo) -> pd.DataFrame:
    """Per-task z-scores, sign-flipped so that higher is always better."""
    wide = demo.wide()
    z = (wide - wide.mean()) / wide.std()
    lower = ~demo.task_info["higher_is_better"].astype(bool)
    z.loc[:, lower] *= -1
    return z


def test_committed_demo_reads_cleanly(demo):
    summary = demo.summary()
    assert demo.meta["synthetic"] is True
    assert "SYNTHETIC" in demo.meta["description"]
    assert 55 <= summary["models"] <= 65
    assert summary["tasks"] == 20
    assert 0.4 <= summary["density"] <= 0.6
    assert all(m.startswith("syn-") for m in demo.models)
    assert int((~demo.task_info["higher_is_better"].astype(bool)).sum()) == 1
    counts_t = demo.scores.groupby("task").size()
    counts_m = demo.scores.groupby("model").size()
    assert counts_t.min() >= 5 and counts_m.min() >= 3
    assert demo.factor_kinds["model"] == {"family": "categorical", "params_b": "numeric",
                                          "tokens_b": "numeric", "finetuned": "categorical"}
    assert set(demo.factor_kinds["task"]) == {"ability", "task_family", "output_format", "few_shot"}
    assert demo.model_factors["tokens_b"].isna().any()
    assert "SYNTHETIC" in (DEMO / "README.md").read_text(encoding="utf-8").splitlines()[0]


def test_accuracies_in_range(demo):
    info = demo.task_info
    merged = demo.scores.join(info, on="task")
    acc = merged[merged["metric_type"] == "accuracy"]
    assert ((acc["score"] >= acc["min_score"]) & (acc["score"] <= acc["max_score"])).all()
    loss = merged[merged["metric_type"] == "loss"]
    assert loss["score"].between(0.7, 1.6).all()


def test_same_seed_is_byte_identical(generator, tmp_path):
    out = tmp_path / "demo"
    generator.main(["--seed", "0", "--out", str(out)])
    committed = sorted(p.name for p in DEMO.iterdir())
    assert sorted(p.name for p in out.iterdir()) == committed
    for name in committed:
        assert (out / name).read_bytes() == (DEMO / name).read_bytes(), name


def test_other_seed_differs(generator, demo):
    other, _ = generator.generate(1)
    assert other.meta["source"].endswith("--seed 1")
    assert not other.scores.equals(demo.scores)


def test_larger_models_score_higher_within_families(demo, normalized):
    factors = demo.model_factors
    mean = normalized.mean(axis=1)
    rhos = [np.log10(factors.loc[idx, "params_b"]).corr(mean[idx], method="spearman")
            for idx in factors.groupby("family").groups.values()]
    assert sum(r > 0 for r in rhos) >= len(rhos) - 1
    assert np.median(rhos) > 0.5


def test_params_is_strongest_factor(demo, normalized):
    """log10(params_b) explains the mean score better than any other single factor."""
    factors = demo.model_factors
    mean = normalized.mean(axis=1)

    def r2_numeric(x):
        ok = x.notna()
        return np.corrcoef(x[ok], mean[ok])[0, 1] ** 2

    def r2_categorical(col):
        fitted = mean.groupby(factors[col]).transform("mean")
        return 1 - ((mean - fitted) ** 2).sum() / ((mean - mean.mean()) ** 2).sum()

    r2_params = r2_numeric(np.log10(factors["params_b"]))
    assert r2_params > 0.6
    assert r2_params > r2_numeric(np.log10(factors["tokens_b"]))
    assert r2_params > r2_categorical("family")
    assert r2_params > r2_categorical("finetuned")


def test_finetuning_helps_coding_most(generator, demo, normalized):
    """Residuals after a per-task fit on log params: fine-tuned models gain on coding."""
    biggest = max(generator.FT_EFFECT, key=generator.FT_EFFECT.get)
    assert biggest == "coding"
    log_params = np.log10(demo.model_factors["params_b"])
    tuned = demo.model_factors["finetuned"] == "yes"
    ability = demo.task_factors["ability"]
    gaps: dict[str, list[float]] = {}
    for task in demo.tasks:
        y = normalized[task].dropna()
        x = np.c_[np.ones(len(y)), log_params[y.index]]
        resid = y - x @ np.linalg.lstsq(x, y, rcond=None)[0]
        ft = tuned[y.index]
        gaps.setdefault(ability[task], []).append(resid[ft].mean() - resid[~ft].mean())
    gap = {a: float(np.mean(v)) for a, v in gaps.items()}
    assert gap["coding"] > 0
    assert gap["coding"] > gap["knowledge"]
    assert gap["coding"] == max(gap.values())


@pytest.mark.parametrize("tool, args", [
    ("make_demo_data", []),
    ("make_scale_data", ["--models", "20", "--tasks", "4"]),
])
def test_data_tools_refuse_a_users_folder(tool, args, tmp_path):
    """Both generators stop with a one-line error naming the folder, and leave a folder
    cppgraph did not write as it was."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    argv = args + ["--out", str(mine)] + (["--force"] if tool == "make_scale_data" else [])
    with pytest.raises(SystemExit) as info:
        load_tool(tool).main(argv)
    assert str(info.value).startswith("error: ") and str(mine) in str(info.value)
    assert (mine / "notes.txt").read_text() == "keep me" and len(list(mine.iterdir())) == 1


def test_scale_data_tool_refuses_bad_sizes(tmp_path):
    with pytest.raises(SystemExit, match="error: need at least 2 models"):
        load_tool("make_scale_data").main(["--models", "1", "--tasks", "4",
                                           "--out", str(tmp_path / "x")])
