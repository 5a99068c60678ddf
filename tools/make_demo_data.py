"""Generate the SYNTHETIC demo data set in ``data/demo`` (canonical format).

Nothing here is a real model or benchmark: every name starts with ``syn-``.
The scores follow a known generating process, so tests and tutorials can check
that cppgraph recovers the structure that was put in.

Structure
---------
Models: 9 families with 5-9 sizes each (60 models). Family ``f`` starts at
``lo_f`` (the points ``linspace(-1, 0.7, 9)`` shuffled over families, moved by
``U(-0.1, 0.1)``) and spans ``U(1.3, 1.8)`` decades of ``log10(params_b)``,
capped at 200B; its sizes are evenly spaced on that range, each moved by
``U(-0.3, 0.3)`` of a step. Training tokens: family-typical ``T_f``
(log-uniform, 300-3000B) times ``exp(N(0, 0.15))`` per model; about 10% of the
``tokens_b`` cells are left missing. Each model is fine-tuned with prob. 0.3.

Latent capability, with compute ``C = 6 * params * tokens`` in FLOPs (the
family-typical ``T_f`` standing in where ``tokens_b`` is missing)::

    c_m = a_f + B * (log10(C_m) - 22) + u_m,   a_f ~ N(0, A_SD),   u_m ~ N(0, MODEL_SD)

``u_m`` is a per-model effect that no listed factor explains (training-data
quality, recipe): only a model's own scores reveal it, so known scores of a
new model should improve its predictions.

Tasks: 20 tasks in 5 abilities, difficulty ``d_t ~ U(-1.5, 1.5)``,
discrimination ``s_t ~ U(0.8, 1.5)``, chance floor ``g_t`` from the output
format. Family-by-ability specialty ``spec[f, a] ~ N(0, SPEC_SD)``, centred
over abilities per family. With ``eps ~ N(0, NOISE_SD)`` per cell::

    z        = s_t * (c_m - d_t) + spec[f, a_t] + FT_EFFECT[a_t] * finetuned + eps
    accuracy = 100 * (g_t + (1 - g_t) * sigmoid(z))          # 19 tasks, in %
    bpb      = 1.6 - 0.9 * sigmoid(z)                        # 1 task, lower is better

Each cell is observed with a task rate ``p_t ~ U(0.3, 0.7)``; cells are then
revealed until every task has >= 5 and every model >= 3 scores.

Usage: ``python tools/make_demo_data.py --seed 0 --out data/demo`` (the
committed files, README.md included). The same seed always gives
byte-identical files. Parameter values are in the module constants below.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from cppgraph.data import CollabData, read_canonical, write_canonical
from cppgraph.errors import CppGraphError

REPO = Path(__file__).resolve().parent.parent
FAMILIES = {"aurora": 5, "basalt": 6, "cobalt": 7, "dune": 8, "ember": 9,
            "fjord": 6, "garnet": 7, "helix": 5, "iris": 7}
ABILITIES = ("knowledge", "reasoning", "math", "coding", "commonsense")
#: name: (ability, task_family, output_format, few_shot)
TASKS = {
    "syn-trivia-mc": ("knowledge", "trivia", "4 choice", "5"),
    "syn-trivia-open": ("knowledge", "trivia", "free-form", "5"),
    "syn-science-exam": ("knowledge", "exam", "4 choice", "25"),
    "syn-history-exam": ("knowledge", "exam", "4 choice", "5"),
    "syn-web-bpb": ("knowledge", "language modeling", "free-form", "0"),
    "syn-logic-grid": ("reasoning", "logic", "4 choice", "3"),
    "syn-deduction-yn": ("reasoning", "logic", "binary choice", "3"),
    "syn-multihop-qa": ("reasoning", "multi-hop", "free-form", "3"),
    "syn-analogy-mc": ("reasoning", "analogy", "4 choice", "0"),
    "syn-arithmetic": ("math", "arithmetic", "free-form", "5"),
    "syn-word-problems": ("math", "word problems", "free-form", "5"),
    "syn-algebra-exam": ("math", "exam", "4 choice", "5"),
    "syn-number-compare": ("math", "arithmetic", "binary choice", "0"),
    "syn-code-complete": ("coding", "code generation", "free-form", "0"),
    "syn-code-repair": ("coding", "code generation", "free-form", "0"),
    "syn-code-output-mc": ("coding", "code understanding", "4 choice", "3"),
    "syn-physical-yn": ("commonsense", "physical", "binary choice", "0"),
    "syn-social-mc": ("commonsense", "social", "4 choice", "0"),
    "syn-story-ending": ("commonsense", "story completion", "4 choice", "10"),
    "syn-pronoun-yn": ("commonsense", "coreference", "binary choice", "5"),
}
LOSS_TASK = "syn-web-bpb"
CHANCE = {"4 choice": 0.25, "binary choice": 0.5, "free-form": 0.0}
B = 1.0              # slope of the latent on log10 compute
A_SD = 0.3           # family offset a_f
SPEC_SD = 0.6        # family-by-ability specialty
FT_EFFECT = {"knowledge": 0.0, "reasoning": 0.5, "math": 0.4, "coding": 0.8, "commonsense": 0.1}
NOISE_SD = 0.25      # cell noise on the logit scale
MODEL_SD = 0.3       # per-model effect u_m, explained by no factor
P_FINETUNED = 0.3
P_TOKENS_MISSING = 0.1
MIN_PER_TASK, MIN_PER_MODEL = 5, 3


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _round_sig(x: float, digits: int = 3) -> float:
    return float(f"{x:.{digits}g}")


def _size_label(params_b: float) -> str:
    return f"{params_b:g}b" if params_b >= 1 else f"{params_b * 1000:.0f}m"


def make_models(rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray, dict]:
    """Model factors, each model's latent log10 compute and the family tokens T_f."""
    rows, log_compute, family_tokens = [], [], {}
    starts = rng.permutation(np.linspace(-1.0, 0.7, len(FAMILIES)))
    for (fam, n), start in zip(FAMILIES.items(), starts):
        lo = max(start + rng.uniform(-0.1, 0.1), -1.0)
        hi = min(lo + rng.uniform(1.3, 1.8), np.log10(200.0))
        # evenly spaced sizes, each moved by up to 0.3 of a step: sorted and distinct
        pos = np.clip((np.arange(n) + rng.uniform(-0.3, 0.3, n)) / (n - 1), 0.0, 1.0)
        logp = lo + (hi - lo) * pos
        fam_tokens = float(round(10 ** rng.uniform(np.log10(300), np.log10(3000))))
        family_tokens[fam] = fam_tokens
        for lp in logp:
            params = _round_sig(10 ** lp)
            tokens = float(round(fam_tokens * np.exp(rng.normal(0.0, 0.15))))
            finetuned = rng.random() < P_FINETUNED
            missing = rng.random() < P_TOKENS_MISSING
            log_compute.append(np.log10(6 * params * 1e9 * (fam_tokens if missing else tokens) * 1e9))
            rows.append({"model": f"syn-{fam}-{_size_label(params)}" + ("-ft" if finetuned else ""),
                         "family": fam, "params_b": params,
                         "tokens_b": np.nan if missing else tokens,
                         "finetuned": "yes" if finetuned else "no"})
    frame = pd.DataFrame(rows)
    return frame, np.array(log_compute), family_tokens


def make_tasks(rng: np.random.Generator) -> pd.DataFrame:
    """Task factors plus the generating parameters d, s, g, p (observation rate)."""
    rows = []
    for name, (ability, family, fmt, shots) in TASKS.items():
        rows.append({"task": name, "ability": ability, "task_family": family,
                     "output_format": fmt, "few_shot": shots,
                     "d": rng.uniform(-1.5, 1.5), "s": rng.uniform(0.8, 1.5),
                     "g": CHANCE[fmt], "p": rng.uniform(0.3, 0.7)})
    return pd.DataFrame(rows)


def make_mask(rng: np.random.Generator, rates: np.ndarray, n_models: int) -> np.ndarray:
    """Observed cells: Bernoulli(rate of the task), topped up to the minimum counts."""
    mask = rng.random((n_models, len(rates))) < rates[None, :]
    for t in range(len(rates)):
        hidden = np.flatnonzero(~mask[:, t])
        need = MIN_PER_TASK - int(mask[:, t].sum())
        if need > 0:
            mask[rng.choice(hidden, need, replace=False), t] = True
    for m in range(n_models):
        hidden = np.flatnonzero(~mask[m])
        need = MIN_PER_MODEL - int(mask[m].sum())
        if need > 0:
            mask[m, rng.choice(hidden, need, replace=False)] = True
    return mask


def generate(seed: int = 0) -> tuple[CollabData, dict]:
    """Build the demo data set; also return the generating parameters."""
    rng = np.random.default_rng(seed)
    models, log_compute, family_tokens = make_models(rng)
    tasks = make_tasks(rng)
    fams, abil = list(FAMILIES), list(ABILITIES)
    a_f = rng.normal(0.0, A_SD, len(fams))
    spec = rng.normal(0.0, SPEC_SD, (len(fams), len(abil)))
    spec -= spec.mean(axis=1, keepdims=True)
    fi = models["family"].map(fams.index).to_numpy()
    ai = tasks["ability"].map(abil.index).to_numpy()
    capability = a_f[fi] + B * (log_compute - 22.0)
    ft = (models["finetuned"] == "yes").to_numpy(float)[:, None] * \
        tasks["ability"].map(FT_EFFECT).to_numpy()[None, :]
    noise = rng.normal(0.0, NOISE_SD, (len(models), len(tasks)))
    mask = make_mask(rng, tasks["p"].to_numpy(), len(models))
    capability = capability + rng.normal(0.0, MODEL_SD, len(models))
    z = (tasks["s"].to_numpy()[None, :] * (capability[:, None] - tasks["d"].to_numpy()[None, :])
         + spec[fi][:, ai] + ft + noise)
    g = tasks["g"].to_numpy()[None, :]
    score = np.round(100 * (g + (1 - g) * _sigmoid(z)), 2)
    is_loss = (tasks["task"] == LOSS_TASK).to_numpy()
    score[:, is_loss] = np.round(1.6 - 0.9 * _sigmoid(z[:, is_loss]), 3)

    mi, ti = np.nonzero(mask)
    scores = pd.DataFrame({"model": models["model"].to_numpy()[mi],
                           "task": tasks["task"].to_numpy()[ti], "score": score[mi, ti]})
    task_info = pd.DataFrame({
        "task": tasks["task"], "higher_is_better": ~is_loss,
        "min_score": np.where(is_loss, np.nan, 0.0), "max_score": np.where(is_loss, np.nan, 100.0),
        "unit": np.where(is_loss, "bits/byte", "%"),
        "metric_type": np.where(is_loss, "loss", "accuracy")})
    kinds = {"model": {"family": "categorical", "params_b": "numeric", "tokens_b": "numeric",
                       "finetuned": "categorical"},
             "task": {c: "categorical" for c in ("ability", "task_family", "output_format", "few_shot")}}
    meta = {"name": "demo-synthetic",
            "description": ("SYNTHETIC demo data: invented models and tasks with scores drawn from "
                            "a known process (latent log-compute capability, family-by-ability "
                            "specialties, fine-tuning effects, a per-model effect, noise). Not real benchmark results."),
            "source": f"tools/make_demo_data.py --seed {seed}", "synthetic": True, "paper_rows": None}
    data = CollabData.from_frames(
        scores, task_info=task_info, model_factors=models,
        task_factors=tasks[["task", *kinds["task"]]], factor_kinds=kinds, meta=meta,
        models=list(models["model"]), tasks=list(tasks["task"]))
    truth = {"tasks": tasks, "a_f": dict(zip(fams, a_f)), "tokens": family_tokens,
              "spec": pd.DataFrame(spec, index=fams, columns=abil)}
    return data, truth


def render_readme(data: CollabData, truth: dict, seed: int) -> str:
    """The folder's README: provenance, generating process, realized parameters, counts."""
    summ = data.summary()
    mf = data.model_factors
    fam_rows = []
    for fam in FAMILIES:
        p = mf.loc[mf["family"] == fam, "params_b"]
        spec = " | ".join(f"{v:+.2f}" for v in truth["spec"].loc[fam])
        fam_rows.append(f"| {fam} | {len(p)} | {p.min():g}-{p.max():g} | {truth['tokens'][fam]:g} "
                        f"| {truth['a_f'][fam]:+.2f} | {spec} |")
    obs = {t["task"]: t["observed"] for t in summ["task_coverage"]}
    task_rows = [f"| {r.task} | {r.ability} | {r.output_format} | {r.g:.2f} | {r.d:+.2f} | {r.s:.2f} "
                 f"| {r.p:.2f} | {obs[r.task]} |" for r in truth["tasks"].itertuples()]
    ft = ", ".join(f"{a} {v}" for a, v in FT_EFFECT.items())
    return f"""# demo-synthetic: SYNTHETIC demo data

> **SYNTHETIC.** Every model and task here is invented (names start with `syn-`) and every
> score was drawn from the known random process below. Nothing here is a real benchmark result.

Made with (this regenerates every file in this folder, this README included, byte for byte):

    python tools/make_demo_data.py --seed {seed} --out data/demo

## Generating process

Models: {len(FAMILIES)} families of 5-9 sizes. `params_b` is log-uniform within a family's range
(families start at staggered points between 0.1B and ~5B and span 1.3-1.8 decades, capped at 200B).
`tokens_b` = family-typical T_f (log-uniform 300-3000B) x exp(N(0, 0.15)); {P_TOKENS_MISSING:.0%} of the cells
are left missing (the latent then uses T_f). `finetuned` is "yes" with probability {P_FINETUNED}.

    C_m = 6 * params * tokens   (FLOPs)
    c_m = a_f + {B} * (log10(C_m) - 22) + u_m          a_f ~ N(0, {A_SD}), u_m ~ N(0, {MODEL_SD})
    z   = s_t * (c_m - d_t) + spec[f, a_t] + FT[a_t] * finetuned_m + eps,   eps ~ N(0, {NOISE_SD})
    accuracy (19 tasks, %)       = 100 * (g_t + (1 - g_t) * sigmoid(z))    rounded to 2 decimals
    {LOSS_TASK} (bits/byte, lower is better) = 1.6 - 0.9 * sigmoid(z)   rounded to 3 decimals

d_t ~ U(-1.5, 1.5), s_t ~ U(0.8, 1.5), g_t = 0.25 (4 choice), 0.5 (binary choice), 0 (free-form);
spec[f, .] ~ N(0, {SPEC_SD}) centred over the abilities of each family; FT = {ft}.
u_m is a per-model effect that no factor explains (think training-data quality): only a model's
own scores reveal it.
Cell (m, t) is observed with probability p_t ~ U(0.3, 0.7); then cells are revealed at random
until every task has >= {MIN_PER_TASK} and every model >= {MIN_PER_MODEL} scores.

| family | models | params_b | T_f | a_f | {" | ".join(ABILITIES)} |
|---|---|---|---|---|{"---|" * len(ABILITIES)}
{chr(10).join(fam_rows)}

| task | ability | output_format | g_t | d_t | s_t | p_t | observed |
|---|---|---|---|---|---|---|---|
{chr(10).join(task_rows)}

## Truth by construction

- **Strongest factor: model scale.** The latent is log10 compute; of the observed factors
  `params_b` (on a log scale) is the single strongest, since it spans ~3.3 decades against ~1 for
  `tokens_b` and the family offset a_f is small (SD {A_SD}).
- **Families are recoverable:** each family has its own ability profile spec[f, .] (SD {SPEC_SD}),
  so model embeddings should cluster by `family`.
- **Known scores matter:** the per-model effect u_m (SD {MODEL_SD}) is invisible in the factors,
  so a new model's predictions should improve once a few of its scores are known.
- **Fine-tuning** helps most on coding ({FT_EFFECT['coding']}) and not at all on knowledge.
- **Direction:** `{LOSS_TASK}` is the only lower-is-better task.

## Counts

{summ['models']} models, {summ['tasks']} tasks, {summ['observed']} observed scores, density {summ['density']:.3f}
(scores per model: {summ['scores_per_model']['min']}-{summ['scores_per_model']['max']}).

## Files

`scores.csv` (model, task, score), `tasks.csv` (direction, range, unit, metric type),
`model_factors.csv` (family, params_b, tokens_b, finetuned), `task_factors.csv` (ability,
task_family, output_format, few_shot), `dataset.json` (metadata, factor kinds), `README.md`.
"""


def write_demo(out: Path, seed: int = 0) -> CollabData:
    """Generate, write the canonical folder (atomically), then its README."""
    data, truth = generate(seed)
    write_canonical(data, out, overwrite=True)
    written = read_canonical(out)
    (Path(out) / "README.md").write_text(render_readme(written, truth, seed), encoding="utf-8")
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", type=Path, default=REPO / "data" / "demo",
                        help="output folder, replaced if it exists (default data/demo)")
    args = parser.parse_args(argv)
    try:
        print(write_demo(args.out, args.seed))
    except CppGraphError as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main()
