"""What value and churn forecasts are measured against: each shopper's revenue and inactivity in a window after a
cutoff, and the metrics that compare forecasts of them (Spearman, top-decile revenue share, ROC-AUC, calibration)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from core.errors import ParameterError

#: The next-step class that means no event at all.
NONE_CLASS = "none"


def window_labels(history: pd.DataFrame, targets: pd.DataFrame, horizon_days: int) -> pd.DataFrame:
    """``revenue`` and ``inactive`` of each row of ``targets`` (``user_id``, ``cutoff``, ``next_event_type``).

    Revenue is summed from the ``history`` events of the shopper in ``[cutoff, cutoff + H)``;
    ``inactive`` is ``next_event_type == "none"``. Returns a frame aligned with ``targets``.
    """
    revenue = np.zeros(len(targets))
    if len(targets):
        amount = _amounts(history)
        cutoffs = pd.to_datetime(targets["cutoff"]).to_numpy()
        users = targets["user_id"].astype(str).to_numpy(dtype=object)
        for cutoff in pd.unique(cutoffs):
            start = pd.Timestamp(cutoff)
            inside = (history["event_time"] >= start) & (history["event_time"] < start + pd.Timedelta(days=horizon_days))
            per_user = amount[inside.to_numpy()].groupby(history.loc[inside, "user_id"].astype(str)).sum()
            idx = np.flatnonzero(cutoffs == cutoff)
            revenue[idx] = pd.Series(users[idx]).map(per_user).fillna(0.0).to_numpy()
    return pd.DataFrame({"revenue": np.clip(revenue, 0.0, None),
                         "inactive": (targets["next_event_type"].to_numpy() == NONE_CLASS).astype(int)},
                        index=targets.index)


def _amounts(history: pd.DataFrame) -> pd.Series:
    """Signed purchase amount of each event (price × quantity, a missing quantity 1; 0 for other events)."""
    price = pd.to_numeric(history["price"], errors="coerce").fillna(0.0) if "price" in history else 0.0
    qty = pd.to_numeric(history["quantity"], errors="coerce").fillna(1.0) if "quantity" in history else 1.0
    return pd.Series(np.where(history["event_type"].to_numpy() == "purchase", price * qty, 0.0), index=history.index)


def spearman(y, forecast) -> float | None:
    """Spearman's rank correlation of a forecast with the outcome (ties get average ranks); None when either is flat."""
    y, f = np.asarray(y, dtype=float), np.asarray(forecast, dtype=float)
    if y.shape != f.shape:
        raise ParameterError(f"y and forecast must have the same length; got {len(y)} and {len(f)}.",
                             parameter="forecast")
    if y.size < 2 or np.ptp(y) == 0 or np.ptp(f) == 0:
        return None
    from scipy.stats import spearmanr

    return float(spearmanr(y, f).statistic)


def top_share(y, forecast, share: float = 0.1) -> float | None:
    """Share of the total of ``y`` held by the top ``share`` of rows ranked by ``forecast``.

    The top holds ``ceil(n × share)`` rows. Rows tied at the cut count in proportion to the
    places left (the expected share under a random tie-break), so a coarse forecast is not
    flattered or penalised by the order its rows came in. None when ``y`` sums to 0.
    """
    y, f = np.asarray(y, dtype=float), np.asarray(forecast, dtype=float)
    total = y.sum()
    if y.size == 0 or total <= 0:
        return None
    k = math.ceil(y.size * share)
    order = np.argsort(-f, kind="stable")
    cut = f[order[k - 1]]
    above = f > cut
    tied = f == cut
    places = k - int(above.sum())
    held = y[above].sum() + y[tied].sum() * places / int(tied.sum())
    return float(held / total)


def evaluate_revenue(revenue, forecast) -> dict:
    """Spearman, top-decile revenue share and the forecast's total over the actual total (``level``)."""
    revenue, forecast = np.asarray(revenue, dtype=float), np.asarray(forecast, dtype=float)
    actual = float(revenue.sum())
    return {"n": int(revenue.size), "buyers": int((revenue > 0).sum()), "spearman": spearman(revenue, forecast),
            "top_decile_share": top_share(revenue, forecast),
            "level": float(forecast.sum() / actual) if actual > 0 else None}


def evaluate_churn(inactive, p) -> dict:
    """ROC-AUC, expected calibration error, Brier score and the inactive share of a churn forecast."""
    from core.model import evaluation as ev

    y = np.asarray(inactive, dtype=float)
    p = np.asarray(p, dtype=float)
    return {"n": int(y.size), "inactive_rate": float(y.mean()) if y.size else None, "roc_auc": ev.roc_auc(y, p),
            "calibration_error": ev.expected_calibration_error(y, p),
            "brier": float(np.mean((p - y) ** 2)) if y.size else None}
