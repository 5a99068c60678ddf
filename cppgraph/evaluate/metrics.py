"""Error and rank metrics of predictions on held-out cells.

========== ==================================================================
metric     definition
========== ==================================================================
mae_norm   mean absolute error on the evaluation's normalized scale
mse_norm   mean squared error on that scale
mae_raw    mean absolute error in the tasks' raw units
rmse_raw   root mean squared error in raw units
r2         1 - SSE / SST on the normalized scale (SST around the test mean)
spearman   Spearman correlation of predicted and true scores within each rank
           group (task, or model) with 3+ cells, averaged over the groups
rank_acc   share of cells whose predicted rank within its group equals the
           true rank (the CPP paper's "accuracy"; ranks are ordinal, best = 1,
           a group of one cell counts as ranked right)
rank_mae2  share of cells whose predicted rank is within 2 of the true rank
           (the paper's "MAE@2")
coverage_90 share of cells whose true score lies in the method's 90% prediction
           interval (methods that give intervals; NaN for the others)
width_90   mean width of those intervals on the normalized scale
width_rho  Spearman correlation of each cell's interval width and absolute
           error: positive when wider intervals mark larger errors
========== ==================================================================
"""

from __future__ import annotations

import numpy as np
import pandas as pd

INTERVAL_METRICS = ("coverage_90", "width_90", "width_rho")
METRICS = ("mae_norm", "mse_norm", "mae_raw", "rmse_raw", "r2", "spearman", "rank_acc", "rank_mae2",
           *INTERVAL_METRICS)
#: Metrics where higher is better (the others are errors; the interval metrics are neither,
#: :data:`INTERVAL_METRICS`).
HIGHER_IS_BETTER = ("r2", "spearman", "rank_acc", "rank_mae2")
#: The level of the intervals that ``coverage_90`` and ``width_90`` measure.
INTERVAL_LEVEL = 0.9


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(f"need two non-empty arrays of the same shape; got {y_true.shape} "
                         f"and {y_pred.shape}")
    return y_true, y_pred


def error_metrics(y_true, y_pred) -> dict:
    """``mae`` and ``mse`` of two equally long arrays."""
    y_true, y_pred = _pair(y_true, y_pred)
    err = y_pred - y_true
    return {"mae": float(np.abs(err).mean()), "mse": float((err ** 2).mean())}


def r2_score(y_true, y_pred) -> float:
    """Coefficient of determination (NaN when the truth is constant)."""
    y_true, y_pred = _pair(y_true, y_pred)
    sst = float(((y_true - y_true.mean()) ** 2).sum())
    if sst == 0:
        return float("nan")
    return 1.0 - float(((y_true - y_pred) ** 2).sum()) / sst


def _ranks(groups, values) -> np.ndarray:
    """Ordinal rank (1 = highest value) of each value within its group; ties by position."""
    frame = pd.DataFrame({"g": np.asarray(groups, dtype=object), "v": np.asarray(values, dtype=float)})
    return frame.groupby("g")["v"].rank(method="first", ascending=False).to_numpy()


def rank_metrics(groups, y_true, y_pred) -> dict:
    """``rank_acc`` and ``rank_mae2``: ranks of the cells within each group, true vs predicted."""
    y_true, y_pred = _pair(y_true, y_pred)
    gap = np.abs(_ranks(groups, y_true) - _ranks(groups, y_pred))
    return {"rank_acc": float((gap == 0).mean()), "rank_mae2": float((gap <= 2).mean())}


def mean_spearman(groups, y_true, y_pred, *, min_cells: int = 3) -> float:
    """Mean over groups (with ``min_cells``+ cells, neither side constant) of Spearman's rho."""
    y_true, y_pred = _pair(y_true, y_pred)
    frame = pd.DataFrame({"g": np.asarray(groups, dtype=object), "t": y_true, "p": y_pred})
    rhos = []
    for _, grp in frame.groupby("g"):
        if len(grp) < min_cells or grp["t"].nunique() < 2 or grp["p"].nunique() < 2:
            continue
        rt = grp["t"].rank().to_numpy()
        rp = grp["p"].rank().to_numpy()
        rhos.append(float(np.corrcoef(rt, rp)[0, 1]))
    return float(np.mean(rhos)) if rhos else float("nan")


def interval_metrics(true_norm, pred_norm, lower_norm, upper_norm) -> dict:
    """``coverage_90``, ``width_90`` and ``width_rho`` of intervals ``[lower, upper]``
    (normalized; either end may be infinite)."""
    true_norm, pred_norm = _pair(true_norm, pred_norm)
    lo, hi = np.fmin(lower_norm, upper_norm), np.fmax(lower_norm, upper_norm)
    width = hi - lo
    err = np.abs(pred_norm - true_norm)
    varied = np.ptp(width) > 0 and np.ptp(err) > 0 and np.isfinite(width).all()
    rho = float(pd.Series(width).rank().corr(pd.Series(err).rank())) if varied else float("nan")
    return {"coverage_90": float(((lo <= true_norm) & (true_norm <= hi)).mean()),
            "width_90": float(width.mean()), "width_rho": rho}


def all_metrics(*, groups, true_norm, pred_norm, true_raw, pred_raw, lower_norm=None,
                upper_norm=None) -> dict:
    """Every metric of :data:`METRICS` for one set of held-out cells.

    ``groups`` are the rank groups (task or model name of each cell). A cell
    without a raw prediction (NaN) is left out of the raw metrics only. The
    interval metrics need ``lower_norm`` and ``upper_norm`` (else NaN).
    """
    out = {}
    e = error_metrics(true_norm, pred_norm)
    out["mae_norm"], out["mse_norm"] = e["mae"], e["mse"]
    true_raw, pred_raw = _pair(true_raw, pred_raw)
    has = np.isfinite(pred_raw)
    if has.any():
        err = pred_raw[has] - true_raw[has]
        out["mae_raw"] = float(np.abs(err).mean())
        out["rmse_raw"] = float(np.sqrt((err ** 2).mean()))
    else:
        out["mae_raw"] = out["rmse_raw"] = float("nan")
    out["r2"] = r2_score(true_norm, pred_norm)
    out["spearman"] = mean_spearman(groups, true_norm, pred_norm)
    out.update(rank_metrics(groups, true_norm, pred_norm))
    if lower_norm is None or upper_norm is None:
        out.update(dict.fromkeys(INTERVAL_METRICS, float("nan")))
    else:
        out.update(interval_metrics(true_norm, pred_norm, lower_norm, upper_norm))
    return out
