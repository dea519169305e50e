"""The overview's aggregations, written once in SQLAlchemy Core and run in the database.

Every function takes an engine or a connection, a ``dataset_id`` and optional ``start`` /
``end`` datetimes (naive UTC; ``start`` inclusive, ``end`` exclusive), and returns a small
dict or DataFrame: the events themselves never leave the database. The SQL is plain enough
to run unchanged on DuckDB and PostgreSQL (``CASE`` instead of ``FILTER``, ``CAST(... AS
DATE)`` for days, ``date_trunc('hour', ...)`` for hours, ``log10``/``power``/``floor`` for
price bins). Distinct shoppers are counted by grouping level by level (session, then shopper)
rather than with ``COUNT(DISTINCT ...)``, which PostgreSQL can only do by sorting.

Definitions used throughout (the analyst sees them in the Overview's help texts):

- **shopper**: a distinct ``user_id``.
- **session**: a distinct ``(user_id, session_id)`` pair; ingest always fills ``session_id``
  (derived by a 30-minute inactivity gap when the file has none), so the pair is one visit.
  Events without a session id count as one session per shopper.
- **purchase**: a ``purchase`` event whose quantity is not negative (a NULL quantity is 1).
  A negative quantity is a cancellation (UCI Online Retail): it is no purchase, but its
  amount is subtracted from revenue.
- **buyer**: a shopper with at least one purchase.
- **order**: a session with at least one purchase. The canonical schema keeps no invoice
  number, so for transaction files (Online Retail) an order is the 30-minute session the
  invoice lines fall into, which matches the invoice in nearly every case.
- **revenue**: ``sum(price * coalesce(quantity, 1))`` over ``purchase`` events, cancellations
  included (they subtract); in the currency of the file. ``None`` when no purchase has a price.

The top categories and brands and the price distribution live in :mod:`core.analysis.product_queries`, the
pieces every query shares in :mod:`core.analysis.query_parts`; this module re-exports them.
"""
from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from core import config, store
from core.store import derived, sql, summaries
from core.analysis.query_parts import _check_choice, _e, _fetch, _filters, _float_or_none, _int, _naive, _ratio


FUNNEL_STEPS = ("view", "cart", "purchase")
FUNNEL_UNITS = ("shopper", "session")


# --- KPIs -----------------------------------------------------------------------------------


def _per_session_events(dataset_id: int, start: dt.datetime | None, end: dt.datetime | None) -> sa.Subquery:
    """One row per (shopper, session) grouped from the events in the window: ``user_id``, ``n_events``,
    ``is_order``, ``n_purchases``, ``n_cancel``, ``revenue``, ``first_event``, ``last_event``."""
    return (
        sa.select(
            _e.user_id,
            sa.func.count().label("n_events"),
            sa.func.max(sql.flag(sql.is_purchase())).label("is_order"),
            sa.func.sum(sql.flag(sql.is_purchase())).label("n_purchases"),
            sa.func.sum(sql.flag(sql.is_cancellation())).label("n_cancel"),
            sa.func.sum(sql.amount()).label("revenue"),
            sa.func.min(_e.event_time).label("first_event"),
            sa.func.max(_e.event_time).label("last_event"),
        )
        .where(*_filters(dataset_id, start, end))
        .group_by(_e.user_id, _e.session_id)
        .subquery("per_session")
    )


def _kpis_from_events(dataset_id: int, start: dt.datetime | None, end: dt.datetime | None) -> sa.Select:
    s = _per_session_events(dataset_id, start, end).c
    per_user = (
        sa.select(
            sa.func.count().label("n_sessions"),
            sa.func.sum(s.n_events).label("n_events"),
            sa.func.max(s.is_order).label("is_buyer"),
            sa.func.sum(s.is_order).label("n_orders"),
            sa.func.sum(s.n_purchases).label("n_purchases"),
            sa.func.sum(s.n_cancel).label("n_cancel"),
            sa.func.sum(s.revenue).label("revenue"),
            sa.func.min(s.first_event).label("first_event"),
            sa.func.max(s.last_event).label("last_event"),
        )
        .group_by(s.user_id)
        .subquery("per_user")
    )
    u = per_user.c
    return sa.select(
        sa.func.count().label("shoppers"),
        sa.func.sum(u.n_sessions).label("sessions"),
        sa.func.sum(u.n_events).label("events"),
        sa.func.sum(u.is_buyer).label("buyers"),
        sa.func.sum(u.n_orders).label("orders"),
        sa.func.sum(u.n_purchases).label("purchases"),
        sa.func.sum(u.n_cancel).label("cancellations"),
        sa.func.sum(u.revenue).label("revenue"),
        sa.func.min(u.first_event).label("first_event"),
        sa.func.max(u.last_event).label("last_event"),
    )


def _kpis_from_session_days(dataset_id: int, start: dt.datetime | None, end: dt.datetime | None) -> sa.Select:
    """The same figures from ``cs_session_days`` (core.store.derived) for a whole-day window.

    Sums and extremes come from one flat scan; only sessions, orders, shoppers and buyers need
    grouping (a visit over midnight has a row per day), and those groups carry one flag each,
    which halves the time of grouping every column (0.53 s against 1.1 s at 20 M events).
    """
    d = store.session_days.c
    where = derived.session_day_filters(dataset_id, start, end)
    per_session = (sa.select(d.user_id, sa.func.max(sql.flag(d.n_purchases > 0)).label("is_order"))
                   .where(*where).group_by(d.user_id, d.session_id).subquery("per_session"))
    s = per_session.c
    per_user = (sa.select(sa.func.count().label("n_sessions"), sa.func.sum(s.is_order).label("n_orders"),
                          sa.func.max(s.is_order).label("is_buyer"))
                .group_by(s.user_id).subquery("per_user"))
    u = per_user.c
    counts = sa.select(
        sa.func.count().label("shoppers"),
        sa.func.sum(u.n_sessions).label("sessions"),
        sa.func.sum(u.is_buyer).label("buyers"),
        sa.func.sum(u.n_orders).label("orders"),
    ).subquery("counts")
    totals = sa.select(
        sa.func.sum(d.n_events).label("events"),
        sa.func.sum(d.n_purchases).label("purchases"),
        sa.func.sum(d.n_cancels).label("cancellations"),
        sa.func.sum(d.revenue).label("revenue"),
        sa.func.min(d.first_event).label("first_event"),
        sa.func.max(d.last_event).label("last_event"),
    ).where(*where).subquery("totals")
    return sa.select(*counts.c, *totals.c).select_from(counts.join(totals, sa.true()))


def _kpis_from_shoppers(dataset_id: int, start: dt.datetime | None, end: dt.datetime | None) -> sa.Select:
    """The same figures for the whole dataset from ``cs_shoppers`` (core.store.summaries): one row per shopper."""
    u = store.shoppers.c
    return sa.select(
        sa.func.count().label("shoppers"),
        sa.func.sum(u.n_sessions).label("sessions"),
        sa.func.sum(u.n_events).label("events"),
        sa.func.sum(sql.flag(u.n_orders > 0)).label("buyers"),
        sa.func.sum(u.n_orders).label("orders"),
        sa.func.sum(u.n_purchases).label("purchases"),
        sa.func.sum(u.n_cancels).label("cancellations"),
        sa.func.sum(u.revenue).label("revenue"),
        sa.func.min(u.first_event).label("first_event"),
        sa.func.max(u.last_event).label("last_event"),
    ).where(u.dataset_id == dataset_id)


def _bound(moment, name: str) -> dt.datetime | None:
    return None if moment is None else _naive(moment, name)


def kpis(
    engine_or_conn: Engine | Connection,
    dataset_id: int,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> dict:
    """Headline numbers of a dataset (definitions in the module docstring).

    Inputs: an engine or connection, the dataset id, an optional [start, end) window.
    Returns a dict with ints ``shoppers``, ``sessions``, ``events``, ``buyers``, ``orders``,
    ``purchases``, ``cancellations``; floats or None ``revenue``, ``conversion``
    (buyers / shoppers), ``session_conversion`` (orders / sessions), ``average_order_value``
    (revenue / orders), ``events_per_shopper``; datetimes or None ``first_event``,
    ``last_event``. An empty dataset or window gives zeros and Nones.
    Raises :class:`CartsightError` when ``start`` is not before ``end``.
    """
    _filters(dataset_id, start, end)  # checks the window
    start, end = _bound(start, "start"), _bound(end, "end")
    # a whole-day window (the pages' date filters) is answered by cs_session_days (core.store.derived)
    # and the whole dataset by cs_shoppers (core.store.summaries)
    build = (_kpis_from_shoppers if summaries.answers(start, end) else
             _kpis_from_session_days if derived.whole_days(start, end) else _kpis_from_events)
    stmt = build(dataset_id, start, end)
    row = _fetch(engine_or_conn, stmt)[0]._mapping
    counts = ("shoppers", "sessions", "events", "buyers", "orders", "purchases", "cancellations")
    out = {k: _int(row[k]) for k in counts}
    revenue = _float_or_none(row["revenue"])
    out.update(
        revenue=revenue,
        conversion=_ratio(out["buyers"], out["shoppers"]),
        session_conversion=_ratio(out["orders"], out["sessions"]),
        average_order_value=_ratio(revenue, out["orders"]),
        events_per_shopper=_ratio(out["events"], out["shoppers"]),
        first_event=row["first_event"],
        last_event=row["last_event"],
    )
    return out


def _type_day_filters(dataset_id: int, start, end) -> list:
    """WHERE terms on ``cs_type_days`` for a whole-day window (see :func:`core.store.derived.whole_days`)."""
    t = store.type_days.c
    start, end = _bound(start, "start"), _bound(end, "end")
    return ([t.dataset_id == dataset_id] + ([t.day >= start.date()] if start is not None else [])
            + ([t.day < end.date()] if end is not None else []))


def column_coverage(
    engine_or_conn: Engine | Connection,
    dataset_id: int,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> dict:
    """How many events carry each optional field, so a page can say what a file lacks.

    Returns a dict with ints ``events`` and ``with_price``, ``with_category``, ``with_brand``,
    ``with_item``, ``with_quantity``, ``with_session`` (events where that column is not NULL),
    plus ``purchases_with_price``. Raises :class:`CartsightError` for an empty window.
    """
    _filters(dataset_id, start, end)  # checks the window
    if derived.whole_days(_bound(start, "start"), _bound(end, "end")):  # cs_type_days answers it
        t = store.type_days.c
        fields = ("with_price", "with_category", "with_brand", "with_item", "with_quantity", "with_session")
        stmt = sa.select(sa.func.sum(t.n_events).label("events"), *[sa.func.sum(t[f]).label(f) for f in fields],
                         sa.func.sum(sa.case((t.event_type == "purchase", t.with_price), else_=0))
                         .label("purchases_with_price")).where(*_type_day_filters(dataset_id, start, end))
        row = _fetch(engine_or_conn, stmt)[0]._mapping
        return {k: _int(v) for k, v in row.items()}
    stmt = sa.select(
        sa.func.count().label("events"),
        sa.func.count(_e.price).label("with_price"),
        sa.func.count(_e.category).label("with_category"),
        sa.func.count(_e.brand).label("with_brand"),
        sa.func.count(_e.item_id).label("with_item"),
        sa.func.count(_e.quantity).label("with_quantity"),
        sa.func.count(_e.session_id).label("with_session"),
        sa.func.sum(sql.flag(sa.and_(_e.event_type == "purchase", _e.price.is_not(None)))).label("purchases_with_price"),
    ).where(*_filters(dataset_id, start, end))
    row = _fetch(engine_or_conn, stmt)[0]._mapping
    return {k: _int(v) for k, v in row.items()}


# --- funnel ---------------------------------------------------------------------------------


def funnel(
    engine_or_conn: Engine | Connection,
    dataset_id: int,
    by: str = "shopper",
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    strict: bool = False,
) -> pd.DataFrame:
    """The view → cart → purchase funnel, counted in shoppers or in sessions.

    A shopper (or session, ``by="session"``) reaches a step when it has at least one event
    of that type in the window (a purchase as defined in the module docstring); the order of
    the events is not checked. With ``strict=True`` a step counts only those that also
    reached every earlier step (a purchase without a view is not counted).
    Returns a DataFrame with one row per step: ``step``, ``count``, ``rate_from_previous``
    (count / previous step's count; NaN for the first step or after a zero) and
    ``rate_from_first`` (count / first step's count; NaN when nobody viewed).
    Raises :class:`CartsightError` for an unknown ``by`` or an empty window.
    """
    _check_choice("by", by, FUNNEL_UNITS)
    terms = _filters(dataset_id, start, end)
    if summaries.answers(start, end):
        return _funnel_frame(_fetch(engine_or_conn, _funnel_from_shoppers(dataset_id, by, strict))[0])
    if derived.whole_days(_bound(start, "start"), _bound(end, "end")):  # cs_session_days answers it (core.store.derived)
        d = store.session_days.c
        keys = [d.user_id] if by == "shopper" else [d.user_id, d.session_id]
        reached = [d.n_views > 0, d.n_carts > 0, d.n_purchases > 0]
        terms = derived.session_day_filters(dataset_id, _bound(start, "start"), _bound(end, "end"))
    else:
        keys = [_e.user_id] if by == "shopper" else [_e.user_id, _e.session_id]
        reached = [_e.event_type == "view", _e.event_type == "cart", sql.is_purchase()]
    per_unit = (
        sa.select(*[sa.func.max(sql.flag(cond)).label(f"s{i}") for i, cond in enumerate(reached)])
        .where(*terms)
        .group_by(*keys)
        .subquery("per_unit")
    )
    flags = [per_unit.c[f"s{i}"] for i in range(len(FUNNEL_STEPS))]
    columns = []
    for i, flag in enumerate(flags):
        term = flag
        if strict:
            for earlier in flags[:i]:
                term = term * earlier
        columns.append(sa.func.sum(term).label(f"n{i}"))
    return _funnel_frame(_fetch(engine_or_conn, sa.select(*columns))[0])


def _funnel_from_shoppers(dataset_id: int, by: str, strict: bool) -> sa.Select:
    """The funnel's three counts over the whole dataset from ``cs_shoppers`` (core.store.summaries)."""
    u = store.shoppers.c
    if by == "session":
        steps = [u.n_view_sessions, u.n_view_cart_sessions, u.n_view_cart_order_sessions] if strict else \
            [u.n_view_sessions, u.n_cart_sessions, u.n_orders]
        return sa.select(*[sa.func.sum(s) for s in steps]).where(u.dataset_id == dataset_id)
    flags = [sql.flag(c > 0) for c in (u.n_views, u.n_carts, u.n_purchases)]
    if strict:
        flags = [flags[0], flags[0] * flags[1], flags[0] * flags[1] * flags[2]]
    return sa.select(*[sa.func.sum(f) for f in flags]).where(u.dataset_id == dataset_id)


def _funnel_frame(row) -> pd.DataFrame:
    """The funnel's frame from its three counts."""
    counts = [_int(v) for v in row]
    previous = [None, *counts[:-1]]
    return pd.DataFrame(
        {
            "step": list(FUNNEL_STEPS),
            "count": pd.Series(counts, dtype="int64"),
            "rate_from_previous": [_rate(c, p) for c, p in zip(counts, previous)],
            "rate_from_first": [_rate(c, counts[0]) for c in counts],
        }
    )


def _rate(count: int, base: int | None) -> float:
    """count / base, NaN where there is no base (first step, or nobody at the base step)."""
    return count / base if base else math.nan


# --- activity over time ---------------------------------------------------------------------


def daily_activity(
    engine_or_conn: Engine | Connection,
    dataset_id: int,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> pd.DataFrame:
    """Events per UTC day and event type (unknown types included, as given in the file).

    Returns a long DataFrame with columns ``day`` (datetime64, midnight UTC), ``event_type``
    and ``events`` (int), sorted by day then type; days without events have no rows.
    Raises :class:`CartsightError` for an empty window.
    """
    if derived.whole_days(_bound(start, "start"), _bound(end, "end")):  # cs_type_days answers it
        _filters(dataset_id, start, end)  # checks the window
        t = store.type_days.c
        stmt = (sa.select(t.day, t.event_type, sa.func.sum(t.n_events).label("events"))
                .where(*_type_day_filters(dataset_id, start, end)).group_by(t.day, t.event_type)
                .order_by(t.day, t.event_type))
        return _activity_frame(_fetch(engine_or_conn, stmt), "day")
    return _activity(engine_or_conn, dataset_id, sa.cast(_e.event_time, sa.Date), "day", start, end)


def hourly_activity(
    engine_or_conn: Engine | Connection,
    dataset_id: int,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> pd.DataFrame:
    """Events per UTC hour and event type, for data that spans hours rather than weeks.

    As :func:`daily_activity`, with the column ``hour`` (datetime64, start of the hour).
    """
    # date_trunc with a constant field name: the same spelling in DuckDB and PostgreSQL
    hour = sa.func.date_trunc(sa.literal_column("'hour'"), _e.event_time)
    return _activity(engine_or_conn, dataset_id, hour, "hour", start, end)


def _activity(engine_or_conn, dataset_id: int, period, name: str, start, end) -> pd.DataFrame:
    """Event counts per ``period`` expression and event type."""
    period = period.label(name)
    stmt = (
        sa.select(period, _e.event_type, sa.func.count().label("events"))
        .where(*_filters(dataset_id, start, end))
        .group_by(period, _e.event_type)
        .order_by(period, _e.event_type)
    )
    return _activity_frame(_fetch(engine_or_conn, stmt), name)


def _activity_frame(rows, name: str) -> pd.DataFrame:
    """The activity frame (``name``, ``event_type``, ``events``) from its rows."""
    frame = pd.DataFrame([tuple(r) for r in rows], columns=[name, "event_type", "events"])
    frame[name] = pd.to_datetime(frame[name])
    frame["events"] = frame["events"].astype("int64")
    frame["event_type"] = frame["event_type"].astype(object)
    return frame


def event_type_counts(
    engine_or_conn: Engine | Connection,
    dataset_id: int,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> pd.DataFrame:
    """Events and shoppers per event type, unknown types included.

    Returns a DataFrame with ``event_type``, ``events``, ``shoppers`` and ``known`` (True for
    the canonical types in :data:`core.config.EVENT_TYPES`), most frequent first.
    Raises :class:`CartsightError` for an empty window.
    """
    terms = _filters(dataset_id, start, end)
    if summaries.answers(start, end):  # one row per shopper and type (core.store.summaries)
        sv, where = summaries.value_rows(dataset_id, "event_type")
        per_user = (sa.select(sv.c.value.label("event_type"), sv.c.n_all.label("n"))
                    .where(*where).subquery("per_user"))
    else:
        per_user = (
            sa.select(_e.event_type, sa.func.count().label("n"))
            .where(*terms)
            .group_by(_e.event_type, _e.user_id)
            .subquery("per_user")
        )
    u = per_user.c
    n_events = sa.func.sum(u.n)
    stmt = (
        sa.select(u.event_type, n_events.label("events"), sa.func.count().label("shoppers"))
        .group_by(u.event_type)
        .order_by(n_events.desc(), u.event_type)
    )
    rows = _fetch(engine_or_conn, stmt)
    frame = pd.DataFrame([tuple(r) for r in rows], columns=["event_type", "events", "shoppers"])
    frame = frame.astype({"events": "int64", "shoppers": "int64", "event_type": object})
    frame["known"] = frame["event_type"].isin(config.EVENT_TYPES)
    return frame
