"""The expected outcome of a campaign target list and the cumulative-gain curve of the dataset's forecasts
(:func:`core.campaigns.targets.build_target_list` attaches them to the list).

Definitions (the Campaigns page shows them in its help texts):

- **expected buyers**: the sum of the exported shoppers' calibrated propensities. **Expected
  revenue**: the sum of the shoppers' expected revenue within the model's horizon (the model's
  value forecast, :mod:`core.model.value`) when every one of them has it; else (a version trained
  before that forecast) Σ propensity × the shopper's own average order value (spend ÷ orders)
  when they bought before, else the dataset's average order value; None when the data has no prices.
  **Lift**: the list's mean propensity ÷ the mean over all scored shoppers (what a random list of
  the same size would get). The **cumulative-gain curve** ranks all scored shoppers by propensity
  and plots the share of expected buyers captured against the share of shoppers contacted.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import config, store
from core.store import sql

_e = store.events.c
_p = store.predictions.c


def _dataset_aov(engine: Engine, dataset_id: int) -> float | None:
    """The dataset's average order value: purchase revenue ÷ distinct (shopper, session) orders."""
    order_key = sa.func.concat(_e.user_id, "|", sa.func.coalesce(_e.session_id, ""))
    query = sa.select(
        sa.func.sum(sql.amount()),
        sa.func.count(sa.distinct(sa.case((sql.is_purchase(), order_key)))),
    ).where(_e.dataset_id == dataset_id)
    with engine.connect() as conn:
        revenue, orders = conn.execute(query).one()
    if not revenue or not orders or float(revenue) <= 0:
        return None
    return float(revenue) / int(orders)


def _scored_propensities(engine: Engine, dataset_id: int, version: str) -> np.ndarray:
    query = (sa.select(_p.purchase_propensity).where(_p.dataset_id == dataset_id, _p.model_version == version,
                                                     _p.purchase_propensity.is_not(None))
             .order_by(_p.purchase_propensity.desc()))
    with engine.connect() as conn:
        return np.array([float(r[0]) for r in conn.execute(query)], dtype=float)


def gain_curve(scored: np.ndarray, n_points: int = config.GAIN_CURVE_POINTS) -> pd.DataFrame:
    """Cumulative gain of ranking by propensity: ``share_contacted`` vs ``share_buyers`` (both 0–1).

    ``scored``: every scored shopper's propensity. The curve starts at (0, 0) and ends at
    (1, 1); at most ``n_points`` + 1 points, evenly spaced over the ranked shoppers.
    """
    values = np.sort(np.asarray(scored, dtype=float))[::-1]
    if values.size == 0 or values.sum() <= 0:
        return pd.DataFrame({"share_contacted": [0.0, 1.0], "share_buyers": [0.0, 1.0]})
    cum = np.concatenate([[0.0], np.cumsum(values)]) / values.sum()
    idx = np.unique(np.linspace(0, values.size, min(n_points, values.size) + 1).round().astype(int))
    return pd.DataFrame({"share_contacted": idx / values.size, "share_buyers": cum[idx]})


def expected_outcome(engine: Engine, dataset_id: int, targets: pd.DataFrame, model_version: str | None) -> dict:
    """Expected result of contacting ``targets`` (see the module docstring for each definition).

    Returns a dict: ``list_size``, ``has_model``, ``expected_buyers``, ``expected_revenue``,
    ``revenue_basis`` (text), ``lift``, ``mean_propensity``, ``mean_propensity_all``,
    ``n_scored``, ``gain`` (DataFrame from :func:`gain_curve`), ``cut`` (the list's point on the
    gain chart: ``share_contacted``, ``share_buyers``) and ``notes``. Without a model every
    propensity-based value is None and a note says why.
    """
    out: dict = {"list_size": int(len(targets)), "has_model": model_version is not None, "expected_buyers": None,
                 "expected_revenue": None, "revenue_basis": None, "lift": None, "mean_propensity": None,
                 "mean_propensity_all": None, "n_scored": 0, "gain": None, "cut": None, "notes": []}
    if model_version is None:
        out["notes"].append("No trained model: this list has no propensity, so no expected buyers, revenue or lift. "
                            "Train a model on the Forecasts page to see them.")
        return out
    scored = _scored_propensities(engine, dataset_id, model_version)
    p = targets["propensity"].astype(float).fillna(0.0) if len(targets) else pd.Series(dtype=float)
    out["n_scored"] = int(scored.size)
    out["expected_buyers"] = float(p.sum())
    out["mean_propensity"] = float(p.mean()) if len(p) else None
    out["mean_propensity_all"] = float(scored.mean()) if scored.size else None
    if out["mean_propensity"] is not None and out["mean_propensity_all"]:
        out["lift"] = out["mean_propensity"] / out["mean_propensity_all"]
    aov = _dataset_aov(engine, dataset_id)
    forecast = pd.to_numeric(targets["expected_revenue"], errors="coerce") if "expected_revenue" in targets \
        else pd.Series(dtype=float)
    if aov is not None and len(targets) and forecast.notna().all():
        out["expected_revenue"] = float(forecast.sum())
        out["revenue_basis"] = "the sum of the shoppers' expected revenue within the model's horizon"
    elif aov is None:
        out["notes"].append("The data has no purchase prices, so expected revenue cannot be estimated.")
    else:
        own = targets["spend"].astype(float) / targets["orders"].where(targets["orders"] > 0)
        own = own.where(own > 0)
        out["expected_revenue"] = float((p * own.fillna(aov)).sum())
        n_own = int(own.notna().sum())
        out["revenue_basis"] = (f"propensity × the shopper's own average order value ({n_own:,} shoppers who bought "
                                f"before), else the dataset's average order value ({aov:,.2f}) "
                                f"({len(targets) - n_own:,} shoppers)")
    out["gain"] = gain_curve(scored)
    total = float(scored.sum())
    out["cut"] = {"share_contacted": len(targets) / scored.size if scored.size else 0.0,
                  "share_buyers": float(p.sum()) / total if total > 0 else 0.0}
    return out
