"""What moved between two scorings of a dataset's shoppers: the scorings kept (:mod:`core.model.scorings`), the
propensity distribution then and now with the shoppers who moved up or down a decile, and one shopper's every
forecast.

A scoring is one pass of a model version over every shopper at an as-of time (the data's last event): the
version's training, or a rescore after an append. Versions trained on older data keep their scorings too, so
"then" may be an older version and "now" the newest.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import store
from core.errors import NotFittedError
from core.model.sequences import read_frame
from core.store import sql

#: Columns of one shopper's forecast history, in order.
HISTORY_COLUMNS = ["as_of", "scored_at", "model_version", "kind", "horizon_days", "purchase_propensity",
                   "expected_revenue", "p_inactive", "next_category"]
#: Propensity deciles: 1 holds the top 10 % of a scoring's shoppers.
N_DECILES = 10


@dataclass(frozen=True)
class Scoring:
    """One kept scoring of a model version."""

    scoring_id: int
    model_version: str
    kind: str  # "training" or "rescore"
    as_of: dt.datetime | None  # the data's last event the forecasts were made at (None: not recorded)
    scored_at: dt.datetime
    n_users: int
    horizon_days: int
    current: bool  # its rows are the version's forecasts in use (cs_predictions)

    def label(self) -> str:
        """How a picker names it: as-of time, version, kind."""
        as_of = f"{self.as_of:%Y-%m-%d %H:%M}" if self.as_of else "as-of unknown"
        return f"data to {as_of} · model {self.model_version} · {self.kind}"


def list_scorings(engine: Engine, dataset_id: int) -> list[Scoring]:
    """Every kept scoring of the dataset's ready model versions, newest first."""
    s, m = store.scorings.c, store.models.c
    query = (sa.select(s.scoring_id, s.model_version, s.kind, s.as_of, s.scored_at, s.n_users, m.horizon_days)
             .join(store.models, m.model_version == s.model_version)
             .where(s.dataset_id == dataset_id, m.status == sql.READY).order_by(s.scoring_id.desc()))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    seen: set[str] = set()
    out = []
    for r in rows:  # newest first: a version's first row here is its current scoring
        out.append(Scoring(int(r.scoring_id), r.model_version, r.kind, r.as_of, r.scored_at, int(r.n_users or 0),
                           int(r.horizon_days), r.model_version not in seen))
        seen.add(r.model_version)
    return out


def scoring_forecasts(engine: Engine, dataset_id: int, scoring: Scoring) -> pd.DataFrame:
    """The shoppers' chance to buy and expected revenue of one scoring: columns user_id, purchase_propensity,
    expected_revenue, one row per shopper (the version's current forecasts or the kept earlier ones)."""
    if scoring.current:
        t = store.predictions
        where = sa.and_(t.c.dataset_id == dataset_id, t.c.model_version == scoring.model_version)
    else:
        t = store.past_predictions
        where = sa.and_(t.c.dataset_id == dataset_id, t.c.scoring_id == scoring.scoring_id)
    frame = read_frame(engine, sa.select(t.c.user_id, t.c.purchase_propensity, t.c.expected_revenue).where(where))
    return frame.astype({"user_id": object, "purchase_propensity": float, "expected_revenue": float})


def find_scoring(scorings: list[Scoring], scoring_id: int) -> Scoring:
    """The scoring ``scoring_id`` among ``scorings``; :class:`NotFittedError` naming the kept ids otherwise."""
    for s in scorings:
        if s.scoring_id == scoring_id:
            return s
    raise NotFittedError(f"No kept scoring {scoring_id!r}; scorings: {[s.scoring_id for s in scorings]}.")


# --- the propensity distribution then and now ---------------------------------------------------------------


@dataclass
class PropensityShift:
    """Two scorings' chance to buy side by side.

    ``bins``: equal-width propensity bands (``lower``, ``upper``, ``label``) with each scoring's shoppers
    (``n_then``, ``n_now``) and shares (``share_then``, ``share_now``, of that scoring's shoppers).
    ``deciles``: per decile of the earlier scoring (1 = its top 10 %), the shoppers in both scorings, how many moved
    up (into a higher decile of the later scoring), stayed or moved down, and their mean chance then and now.
    """

    bins: pd.DataFrame
    deciles: pd.DataFrame
    moved_up: int
    stayed: int
    moved_down: int
    new: int  # scored now only
    gone: int  # scored then only
    mean_then: float
    mean_now: float
    expected_buyers_then: float  # sum of the chances: buyers the scoring expects within its horizon
    expected_buyers_now: float


def deciles(propensity: pd.Series) -> pd.Series:
    """Each shopper's decile of ``propensity`` (index user_id): 1 for the top 10 %, ties broken by user id."""
    order = pd.DataFrame({"p": propensity.to_numpy(dtype=float), "u": propensity.index.astype(str)})
    order = order.sort_values(["p", "u"], ascending=[False, True], kind="stable")
    position = np.arange(len(order))
    values = (position * N_DECILES // max(len(order), 1)) + 1
    return pd.Series(values, index=propensity.index[order.index.to_numpy()]).reindex(propensity.index)


def propensity_shift(then: pd.Series, now: pd.Series, n_bins: int = 10) -> PropensityShift:
    """Compare two scorings' chance to buy (each a Series indexed by user id, values 0..1) in ``n_bins`` bands of
    equal width from 0 to the higher maximum rounded up to 5 %, and by each scoring's deciles."""
    then, now = then.dropna().astype(float), now.dropna().astype(float)
    top = max(float(then.max()) if len(then) else 0.0, float(now.max()) if len(now) else 0.0)
    top = min(1.0, max(0.05, np.ceil(top * 20 - 1e-9) / 20))
    edges = np.linspace(0.0, top, n_bins + 1)
    n_then = np.histogram(then.clip(upper=top), edges)[0]
    n_now = np.histogram(now.clip(upper=top), edges)[0]
    bins = pd.DataFrame({
        "lower": edges[:-1], "upper": edges[1:],
        "label": [f"{100 * lo:.1f}–{100 * hi:.1f} %" for lo, hi in zip(edges[:-1], edges[1:])],
        "n_then": n_then, "n_now": n_now,
        "share_then": n_then / max(len(then), 1), "share_now": n_now / max(len(now), 1),
    })
    both = then.index.intersection(now.index)
    d_then, d_now = deciles(then).reindex(both), deciles(now).reindex(both)
    table = _decile_table(d_then, d_now, then.reindex(both), now.reindex(both))
    return PropensityShift(
        bins=bins, deciles=table, moved_up=int((d_now < d_then).sum()), stayed=int((d_now == d_then).sum()),
        moved_down=int((d_now > d_then).sum()), new=len(now.index.difference(then.index)),
        gone=len(then.index.difference(now.index)), mean_then=float(then.mean()) if len(then) else float("nan"),
        mean_now=float(now.mean()) if len(now) else float("nan"), expected_buyers_then=float(then.sum()),
        expected_buyers_now=float(now.sum()))


def _decile_table(d_then: pd.Series, d_now: pd.Series, p_then: pd.Series, p_now: pd.Series) -> pd.DataFrame:
    """One row per decile of the earlier scoring: shoppers, moved up, stayed, moved down, mean chance then and now."""
    frame = pd.DataFrame({"decile": d_then, "up": d_now < d_then, "same": d_now == d_then, "down": d_now > d_then,
                          "p_then": p_then, "p_now": p_now})
    grouped = frame.groupby("decile")
    table = pd.DataFrame({
        "shoppers": grouped.size(), "moved_up": grouped["up"].sum(), "stayed": grouped["same"].sum(),
        "moved_down": grouped["down"].sum(), "mean_then": grouped["p_then"].mean(), "mean_now": grouped["p_now"].mean(),
    }).reindex(range(1, N_DECILES + 1))
    table[["shoppers", "moved_up", "stayed", "moved_down"]] = (
        table[["shoppers", "moved_up", "stayed", "moved_down"]].fillna(0).astype(int))
    return table.rename_axis("decile").reset_index()


# --- one shopper's forecasts ----------------------------------------------------------------------------------


def shopper_forecast_history(engine: Engine, dataset_id: int, user_id: str) -> pd.DataFrame:
    """Every kept forecast of one shopper (columns :data:`HISTORY_COLUMNS`), oldest as-of time first (then in the
    order they were scored): each scoring of each ready version that scored them. Empty when none did."""
    p, past, s, m = store.predictions, store.past_predictions, store.scorings, store.models
    latest = (sa.select(s.c.model_version, sa.func.max(s.c.scoring_id).label("scoring_id"))
              .where(s.c.dataset_id == dataset_id).group_by(s.c.model_version).subquery())
    values = lambda t: [t.c.purchase_propensity, t.c.expected_revenue, t.c.p_inactive, t.c.next_category]  # noqa: E731
    current = (sa.select(latest.c.scoring_id, p.c.model_version, *values(p))
               .select_from(p.outerjoin(latest, latest.c.model_version == p.c.model_version))
               .where(p.c.dataset_id == dataset_id, p.c.user_id == str(user_id)))
    earlier = (sa.select(past.c.scoring_id, past.c.model_version, *values(past))
               .where(past.c.dataset_id == dataset_id, past.c.user_id == str(user_id)))
    rows = sa.union_all(current, earlier).subquery()
    query = (sa.select(s.c.as_of, sa.func.coalesce(s.c.scored_at, m.c.created_at).label("scored_at"),
                       rows.c.model_version, sa.func.coalesce(s.c.kind, "training").label("kind"), m.c.horizon_days,
                       rows.c.purchase_propensity, rows.c.expected_revenue, rows.c.p_inactive, rows.c.next_category)
             .select_from(rows.join(m, m.c.model_version == rows.c.model_version)
                          .outerjoin(s, s.c.scoring_id == rows.c.scoring_id))
             .where(m.c.status == sql.READY))
    with engine.connect() as conn:
        frame = sql.frame(conn.execute(query))
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in HISTORY_COLUMNS})
    frame["as_of"] = pd.to_datetime(frame["as_of"])
    frame["scored_at"] = pd.to_datetime(frame["scored_at"])
    frame = frame.astype({"purchase_propensity": float, "expected_revenue": float, "p_inactive": float})
    return frame.sort_values(["as_of", "scored_at"], kind="stable", na_position="first").reset_index(drop=True)[
        HISTORY_COLUMNS]
