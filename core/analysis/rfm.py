"""The RFM lens: recency, frequency and monetary quintile scores and the named groups analysts know.

Per shopper, from one grouped SQL query (session, then shopper; definitions as in
:mod:`core.analysis.queries`):

- **recency** = days from the shopper's last purchase to the dataset's last event;
- **frequency** = orders (sessions with at least one purchase);
- **monetary** = revenue (``price * coalesce(quantity, 1)`` over purchases, cancellations subtracting).

Scores, among buyers only (shoppers with at least one order): each measure's rank among
buyers, as a share ``p`` of the number of buyers, gives ``ceil(5 p)`` (1..5; 5 is best: the
most recent, most frequent, highest spending). Tied shoppers all take the lowest rank of
their tie, so the many one-order buyers all score F = 1. Recency ranks the fewest days
highest. ``FM = floor((F + M) / 2 + 1/2)`` (the mean of F and M, halves
rounded up). When no purchase carries a price, M is taken equal to F.

Groups, on the R × FM grid (every cell has exactly one group):

================  =====  ======
group             R      FM
================  =====  ======
champions         5      4–5
loyal customers   3–4    4–5
potential loyal.  4–5    2–3
new customers     5      1
promising         4      1
need attention    3      3
about to sleep    3      1–2
can't lose them   1–2    5
at risk           1–2    3–4
hibernating       1–2    1–2 (but not R 1, FM 1)
lost              1      1
================  =====  ======

Shoppers who never bought are "never bought" (browsers) and get no scores.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import config, store
from core.model.sequences import read_frame

NEVER_BOUGHT = "never bought"
#: Group names in the order the page lists them (best first), "never bought" last.
GROUPS = ("champions", "loyal customers", "potential loyalists", "new customers", "promising", "need attention",
          "about to sleep", "can't lose them", "at risk", "hibernating", "lost", NEVER_BOUGHT)
SECONDS_PER_DAY = 86_400.0


def group_of(r: int, fm: int) -> str:
    """The RFM group of a recency score ``r`` and a combined frequency-monetary score ``fm`` (both 1..5)."""
    if r == 5:
        return "champions" if fm >= 4 else "potential loyalists" if fm >= 2 else "new customers"
    if r == 4:
        return "loyal customers" if fm >= 4 else "potential loyalists" if fm >= 2 else "promising"
    if r == 3:
        return "loyal customers" if fm >= 4 else "need attention" if fm == 3 else "about to sleep"
    if fm == 5:
        return "can't lose them"
    if fm >= 3:
        return "at risk"
    return "lost" if r == 1 and fm == 1 else "hibernating"


def quintile_scores(values: pd.Series, higher_is_better: bool = True) -> pd.Series:
    """Scores 1..5 of ``values``: ``ceil(5 * rank / n)``, ties taking their lowest rank (5 = best)."""
    v = values if higher_is_better else -values
    ranks = v.rank(method="min")
    n = len(v)
    scores = np.ceil(config.RFM_SCORES * ranks / n).clip(1, config.RFM_SCORES) if n else ranks
    return scores.astype("Int64")


def per_user_aggregates(engine: Engine, dataset_id: int) -> pd.DataFrame:
    """One row per shopper: user_id, n_orders, revenue, n_amounts, last_purchase, last_event.

    Read from ``cs_shoppers`` (core.store.summaries: one row per shopper, written at load; a visit over
    midnight is still one order) rather than grouping the dataset's session days on every view.
    """
    sh = store.shoppers.c
    query = (sa.select(sh.user_id, sh.n_orders, sh.revenue, sh.n_amounts, sh.last_purchase, sh.last_event)
             .where(sh.dataset_id == dataset_id).order_by(sh.user_id))
    frame = read_frame(engine, query)
    frame["n_orders"] = pd.to_numeric(frame["n_orders"]).fillna(0).astype(int)
    frame["revenue"] = pd.to_numeric(frame["revenue"]).astype(float)
    frame["n_amounts"] = pd.to_numeric(frame["n_amounts"]).fillna(0).astype(int)
    for c in ("last_purchase", "last_event"):
        frame[c] = pd.to_datetime(frame[c])
    return frame


def score(aggregates: pd.DataFrame) -> pd.DataFrame:
    """RFM measures, scores and group per shopper from per-shopper aggregates.

    Input: a frame with ``user_id``, ``n_orders``, ``revenue`` (NaN when none of the
    shopper's purchases had a price), ``last_purchase`` (NaT for non-buyers) and
    ``last_event``; the dataset's end is the latest ``last_event``. Output: ``user_id``,
    ``recency_days``, ``frequency``, ``monetary``, ``r_score``, ``f_score``, ``m_score``,
    ``fm_score`` (Int64, missing for non-buyers) and ``rfm_group``; one row per input row,
    same order. Rules in the module docstring.
    """
    out = pd.DataFrame({"user_id": aggregates["user_id"].astype(str).to_numpy()})
    end = pd.to_datetime(aggregates["last_event"]).max()
    last = pd.to_datetime(aggregates["last_purchase"])
    out["recency_days"] = ((end - last).dt.total_seconds() / SECONDS_PER_DAY).to_numpy()
    out["frequency"] = aggregates["n_orders"].fillna(0).astype(int).to_numpy()
    out["monetary"] = aggregates["revenue"].astype(float).to_numpy()
    buyers = (out["frequency"] > 0) & out["recency_days"].notna()
    for c in ("r_score", "f_score", "m_score", "fm_score"):
        out[c] = pd.arrays.IntegerArray(np.zeros(len(out), dtype="int64"), np.ones(len(out), dtype=bool))  # all NA
    b = out.loc[buyers]
    if len(b):
        r = quintile_scores(b["recency_days"], higher_is_better=False)
        f = quintile_scores(b["frequency"].astype(float))
        priced = b["monetary"].notna().any()
        m = quintile_scores(b["monetary"].fillna(0.0)) if priced else f
        fm = np.floor((f.astype(float) + m.astype(float)) / 2 + 0.5).astype(int)
        out.loc[buyers, "r_score"] = r.to_numpy()
        out.loc[buyers, "f_score"] = f.to_numpy()
        out.loc[buyers, "m_score"] = m.to_numpy()
        out.loc[buyers, "fm_score"] = fm.to_numpy()
    groups = np.full(len(out), NEVER_BOUGHT, dtype=object)
    idx = np.flatnonzero(buyers.to_numpy())
    n = config.RFM_SCORES  # group_of for every (r, fm) pair once, then one lookup per buyer
    table = np.array([[group_of(r, fm) for fm in range(1, n + 1)] for r in range(1, n + 1)], dtype=object)
    rs = out["r_score"].to_numpy()[idx].astype(int)
    fms = out["fm_score"].to_numpy()[idx].astype(int)
    groups[idx] = table[rs - 1, fms - 1]
    out["rfm_group"] = groups
    return out


def rfm_table(engine: Engine, dataset_id: int) -> pd.DataFrame:
    """RFM scores and group of every shopper of a dataset (see :func:`score`); sorted by user_id."""
    return score(per_user_aggregates(engine, dataset_id))


def grid(table: pd.DataFrame) -> pd.DataFrame:
    """The R × FM grid for the heat map: one row per cell (r_score 1..5 × fm_score 1..5).

    Columns: ``r_score``, ``fm_score``, ``shoppers``, ``revenue``, ``rfm_group``. Every
    cell is present (0 shoppers where none). Non-buyers are not on the grid.
    """
    b = table.dropna(subset=["r_score", "fm_score"])
    counts = b.groupby(["r_score", "fm_score"]).agg(shoppers=("user_id", "size"), revenue=("monetary", "sum"))
    rows = []
    for r in range(1, config.RFM_SCORES + 1):
        for fm in range(1, config.RFM_SCORES + 1):
            hit = counts.loc[(r, fm)] if (r, fm) in counts.index else None
            rows.append({"r_score": r, "fm_score": fm, "shoppers": int(hit["shoppers"]) if hit is not None else 0,
                         "revenue": float(hit["revenue"]) if hit is not None else 0.0, "rfm_group": group_of(r, fm)})
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per RFM group (in :data:`GROUPS` order, empty groups left out): shoppers, share of shoppers,
    revenue, share of revenue, median recency days, mean frequency."""
    total_n = len(table)
    total_rev = float(table["monetary"].clip(lower=0).fillna(0).sum())
    g = table.groupby("rfm_group").agg(shoppers=("user_id", "size"), revenue=("monetary", "sum"),
                                        median_recency_days=("recency_days", "median"),
                                        mean_frequency=("frequency", "mean"))
    g = g.reindex([x for x in GROUPS if x in g.index])
    g["share_shoppers"] = g["shoppers"] / total_n if total_n else math.nan
    g["share_revenue"] = g["revenue"] / total_rev if total_rev else math.nan
    return g.reset_index()[["rfm_group", "shoppers", "share_shoppers", "revenue", "share_revenue",
                            "median_recency_days", "mean_frequency"]]
