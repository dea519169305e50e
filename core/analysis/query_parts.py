"""The pieces every overview query shares: running a statement with a clear failure, the dataset and
time-window filters, and the small number conversions of its results.

Used by :mod:`core.analysis.queries` and :mod:`core.analysis.product_queries`; see :mod:`core.analysis.queries` for the
definitions (shopper, session, purchase, revenue) the queries follow.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from core import store
from core.store import sql
from core.errors import CartsightError, StoreUnavailableError
from core.store import events

_e = events.c


def _fetch(engine_or_conn: Engine | Connection, stmt) -> list[sa.Row]:
    """Run ``stmt`` on a connection, opening one when given an engine.

    A lost or refused connection becomes :class:`StoreUnavailableError`, so a page shows why.
    """
    try:
        return sql.fetch(engine_or_conn, stmt)
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        known = store.describe_failure(exc, _engine_url(engine_or_conn))
        if known is not None:  # the database down, or its disk full: the message says which and what to do
            raise known from exc
        reason = (str(exc.orig or exc).strip().splitlines() or [type(exc).__name__])[0]
        raise StoreUnavailableError(f"The database did not answer the overview query: {reason}") from exc


def _engine_url(engine_or_conn: Engine | Connection) -> str:
    engine = engine_or_conn if isinstance(engine_or_conn, Engine) else engine_or_conn.engine
    return engine.url.render_as_string(hide_password=False)


def _filters(dataset_id: int, start: dt.datetime | None, end: dt.datetime | None) -> list:
    """WHERE terms for one dataset and an optional [start, end) time window."""
    start = None if start is None else _naive(start, "start")
    end = None if end is None else _naive(end, "end")
    if start is not None and end is not None and start >= end:
        raise CartsightError(
            f"The time window is empty: start={start.isoformat(sep=' ')} is not before "
            f"end={end.isoformat(sep=' ')}; expected start < end (end is exclusive)."
        )
    terms = [_e.dataset_id == dataset_id]
    if start is not None:
        terms.append(_e.event_time >= start)
    if end is not None:
        terms.append(_e.event_time < end)
    return terms


def _naive(moment: dt.datetime | dt.date, name: str) -> dt.datetime:
    """Bring a filter bound to the store's convention: a naive UTC datetime."""
    if not isinstance(moment, dt.datetime):
        if isinstance(moment, dt.date):
            return dt.datetime.combine(moment, dt.time())
        raise CartsightError(f"Parameter {name!r} is {moment!r}; expected a datetime or a date.")
    if moment.tzinfo is not None:
        return moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment


def _int(value: Any) -> int:
    return int(value or 0)


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return float(numerator) / float(denominator)


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise CartsightError(f"Parameter {name!r} is {value!r}; expected one of {list(allowed)}.")

