"""The views the readers' events come from: ``cs_all_events`` (every dataset's events) and each connected dataset's
``cs_connected_<id>`` (a team's own table read in place, :mod:`core.ingest.connect`).

``cs_all_events`` is the stored events (``cs_events``, what loads and appends write) and, after them, one
``UNION ALL`` branch per connected dataset. Every reader filters on ``dataset_id``: DuckDB, PostgreSQL and
Spark push that filter into each branch, and a connected branch, whose ``dataset_id`` is a constant, drops
out of a query about any other dataset, so a store without connected datasets reads ``cs_events`` as before.
The view is rewritten whenever a connected dataset comes or goes, in the caller's transaction.
"""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from core.store.schema import datasets, events, stored_events

#: ``cs_datasets.layout`` of a dataset that is a view over a team's table, not stored rows.
CONNECTED_LAYOUT = "connected"


def connected_view_name(dataset_id: int) -> str:
    """The view of connected dataset ``dataset_id``."""
    return f"cs_connected_{int(dataset_id)}"


def sql_text(conn: Connection, query: sa.sql.ClauseElement) -> str:
    """``query`` as the connection's SQL with every value written in (a view's definition binds nothing)."""
    return str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))


def create_view(conn: Connection, name: str, query: sa.Select) -> None:
    """Create or replace view ``name`` as ``query``."""
    conn.exec_driver_sql(f"CREATE OR REPLACE VIEW {name} AS {sql_text(conn, query)}")


def drop_view(conn: Connection, name: str) -> None:
    conn.exec_driver_sql(f"DROP VIEW IF EXISTS {name}")


def connected_ids(conn: Connection) -> list[int]:
    """The ids of the connected datasets, in id order."""
    q = sa.select(datasets.c.dataset_id).where(datasets.c.layout == CONNECTED_LAYOUT).order_by(datasets.c.dataset_id)
    return [int(r[0]) for r in conn.execute(q)]


def write_events_view(conn: Connection, extra: list[int] | None = None, leave_out: list[int] | None = None) -> None:
    """(Re)write ``cs_all_events``: the stored events, then each connected dataset's view (those recorded in
    ``cs_datasets`` and the ids in ``extra``, a dataset being connected before its row is written), but for
    those in ``leave_out`` (:func:`unreadable_connected`)."""
    names = [c.name for c in events.columns]
    parts = [sa.select(*[stored_events.c[n] for n in names])]
    for did in sorted((set(connected_ids(conn)) | set(extra or ())) - set(leave_out or ())):
        view = sa.table(connected_view_name(did), *[sa.column(n) for n in names])
        parts.append(sa.select(*[view.c[n] for n in names]))
    query = parts[0] if len(parts) == 1 else sa.union_all(*parts)
    conn.exec_driver_sql(f"CREATE OR REPLACE VIEW {events.name} AS {sql_text(conn, query)}")


def unreadable_connected(engine: Engine) -> list[int]:
    """The connected datasets whose table can no longer be read (dropped, renamed, its columns changed), each
    tried in a connection of its own: one such view in ``cs_all_events`` would fail every dataset's queries."""
    with engine.connect() as conn:
        ids = connected_ids(conn)
    broken = []
    for did in ids:
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql(f"SELECT * FROM {connected_view_name(did)} LIMIT 0").fetchall()
        except sa.exc.DBAPIError:
            broken.append(did)
    return broken


def leave_out_unreadable(engine: Engine) -> list[int]:
    """Rewrite ``cs_all_events`` without the connected datasets whose table cannot be read (they show no events
    until it can); returns their ids. Called when the store is opened."""
    broken = unreadable_connected(engine)
    if broken:
        with engine.begin() as conn:
            write_events_view(conn, leave_out=broken)
    return broken
