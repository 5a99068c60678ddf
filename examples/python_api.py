"""The Python API end to end on the demo data: fit from DataFrames, complete the matrix,
predict a new model from its factors and two known scores, save and load.

Run from the project root: ``python examples/python_api.py``.
"""

import tempfile
from pathlib import Path

import pandas as pd

from cppgraph import CPPGraph

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"

scores = pd.read_csv(DEMO / "scores.csv")  # columns model, task, score
est = CPPGraph(random_state=0).fit(scores, tasks=pd.read_csv(DEMO / "tasks.csv"),
                                   model_factors=pd.read_csv(DEMO / "model_factors.csv"))

grid = est.predict(wide=True)  # models x tasks, raw units; observed cells predicted leak-free
print(grid.iloc[:3, :4].round(1))

new = pd.DataFrame({"model": ["my-7b"], "family": ["aurora"], "params_b": [7.0],
                    "tokens_b": [1400.0], "finetuned": ["no"]})
known = pd.DataFrame({"model": ["my-7b", "my-7b"], "task": ["syn-trivia-mc", "syn-history-exam"],
                      "score": [61.0, 55.0]})
cold = est.predict_new_models(new, known)  # no retraining
print(cold[["model", "task", "predicted", "observed"]].head())

with tempfile.TemporaryDirectory() as tmp:
    est.save(Path(tmp) / "model")
    again = CPPGraph.load(Path(tmp) / "model")  # weights_only=True, JSON metadata
    assert again.predict(wide=True).equals(grid)
print("saved, loaded, same predictions")
