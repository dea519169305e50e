"""The small SQL ideas every aggregation shares, written once: what a purchase is, what revenue is,
a portable 0/1 flag, the newest ready model of a dataset, and
running a statement on an engine or a connection.

The Overview, Preferences, Segments, Campaigns, the model registry and the tables derived at load
all count a purchase and sum revenue through these, so a change of definition reaches every page
at once. Definitions (the pages show them in their help texts):

- **purchase**: a ``purchase`` event whose quantity is not negative (a NULL quantity is 1).
- **cancellation**: a ``purchase`` event with a negative quantity (UCI Online Retail's credit
  notes); it is no purchase, but its amount is subtracted from revenue.
- **amount** of an event: ``price * coalesce(quantity, 1)`` for ``purchase`` events,
  cancellations negative, NULL for every other event; revenue is its sum.

Everything is SQLAlchemy Core on the store's tables and runs unchanged on DuckDB and PostgreSQL;
this module knows the store's tables only (:mod:`core.store.schema`: no analysis, no model, not even
:mod:`core.store`), so any of them may import it.
"""
from __future__ import annotations

from contextlib import nullcontext

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from core import config
from core.store import schema

#: ``cs_models.status`` of a version whose weights and predictions are all in
READY = "ready"

_e = schema.events.c


def flag(condition) -> sa.ColumnElement:
    """1 where ``condition`` holds, else 0 (portable replacement for FILTER / boolean sums)."""
    return sa.case((condition, 1), else_=0)


def new_session(user: sa.ColumnElement, time: sa.ColumnElement) -> sa.ColumnElement:
    """1 where an event starts a session (the shopper's first, or after a gap of ``SESSION_GAP_MINUTES``), else 0:
    summed in time order it numbers each shopper's sessions."""
    prev = sa.func.lag(time).over(partition_by=user, order_by=time)
    gap = sa.literal_column(f"INTERVAL '{int(config.SESSION_GAP_MINUTES)} minutes'")
    return sa.case((sa.or_(prev.is_(None), time - prev > gap), 1), else_=0)


def is_purchase() -> sa.ColumnElement:
    """A ``purchase`` event whose quantity is not negative (a NULL quantity is 1)."""
    return sa.and_(_e.event_type == "purchase", sa.func.coalesce(_e.quantity, 1) >= 0)


def is_cancellation() -> sa.ColumnElement:
    """A ``purchase`` event with a negative quantity (a cancelled order line)."""
    return sa.and_(_e.event_type == "purchase", sa.func.coalesce(_e.quantity, 1) < 0)


def amount() -> sa.ColumnElement:
    """Signed purchase amount of an event (cancellations negative), NULL for other events."""
    return sa.case((_e.event_type == "purchase", _e.price * sa.func.coalesce(_e.quantity, 1)), else_=sa.null())


def connect(engine_or_conn: Engine | Connection):
    """A context manager giving a connection: the one passed in (left open), or a new one of the engine."""
    if isinstance(engine_or_conn, Connection):
        return nullcontext(engine_or_conn)
    return engine_or_conn.connect()


def fetch(engine_or_conn: Engine | Connection, stmt) -> list[sa.Row]:
    """Run ``stmt`` on a connection (opening one when given an engine) and return all its rows."""
    with connect(engine_or_conn) as conn:
        return list(conn.execute(stmt))


def frame(result) -> pd.DataFrame:
    """A result's rows as a DataFrame, its columns named by the result (object columns when empty)."""
    # column-wise construction: several times faster than a DataFrame of Row objects
    keys = list(result.keys())
    rows = result.fetchall()
    columns = list(zip(*rows)) if rows else [()] * len(keys)
    return pd.DataFrame({k: pd.Series(c, dtype=None if rows else object) for k, c in zip(keys, columns)})


def ready_models(dataset_id: int, *columns) -> sa.Select:
    """SELECT of the dataset's ``ready`` model rows (``columns``, or every column), newest first."""
    m = schema.models
    return (sa.select(*(columns or (m,))).where(m.c.dataset_id == dataset_id, m.c.status == READY)
            .order_by(m.c.created_at.desc(), m.c.model_version.desc()))


def segment_runs_newest_first(dataset_id: int, *columns) -> sa.Select:
    """SELECT of ``columns`` of the dataset's segmentation runs, newest first (the first is its current one)."""
    r = schema.segment_runs.c
    return sa.select(*columns).where(r.dataset_id == dataset_id).order_by(r.created_at.desc(), r.run_id.desc())


def newest_ready_model_version(engine_or_conn: Engine | Connection, dataset_id: int) -> str | None:
    """The version of the dataset's newest ``ready`` model, or None when none was trained."""
    with connect(engine_or_conn) as conn:
        return conn.execute(ready_models(dataset_id, schema.models.c.model_version).limit(1)).scalar()


def model_horizon_days(engine_or_conn: Engine | Connection, dataset_id: int, version: str | None) -> int | None:
    """The horizon (days) a model version forecasts over, or None without a version (the pages' "within N days")."""
    if version is None:
        return None
    m = schema.models.c
    with connect(engine_or_conn) as conn:
        return conn.execute(sa.select(m.horizon_days).where(m.dataset_id == dataset_id, m.model_version == version)).scalar()

