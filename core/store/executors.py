"""The Spark cluster behind a Spark store: a Spark Connect session for the work that runs on its executors.

A Spark store answers SQL through the Thrift Server; work that is not SQL (scoring every shopper
with the model, assigning every shopper to a segmentation) runs on the same cluster's executors
through Spark Connect (``sc://host:port``: Databricks, most managed Sparks, and the local server
of ``.ci/start-spark.sh`` serve it). :func:`spark_session` gives the session when the store is
Spark and a Connect URL is configured (:func:`core.store.url.resolve_spark_connect`); otherwise
None, and that work runs in the app as on any other store. :func:`table_name` names a store table
as the session sees it (the store URL's database).
"""
from __future__ import annotations

import threading

from sqlalchemy.engine import Engine

from core.errors import StoreUnavailableError
from core.store.url import resolve_spark_connect

_sessions: dict[str, object] = {}
_lock = threading.Lock()


def is_spark(engine: Engine) -> bool:
    """Whether ``engine`` is a Spark store (cartsight's Spark SQL dialect)."""
    return engine.dialect.name == "spark"


def spark_session(engine: Engine):
    """A Spark Connect session on the cluster of the Spark store ``engine``, or None (another store, or no
    Connect URL configured). One session per URL for the process. :class:`StoreUnavailableError` names the URL
    when the configured server cannot be reached or pyspark's Connect client is not installed."""
    if not is_spark(engine):
        return None
    remote = resolve_spark_connect()
    if not remote:
        return None
    with _lock:
        if remote not in _sessions:
            try:
                from pyspark.sql import SparkSession

                _sessions[remote] = SparkSession.builder.remote(remote).getOrCreate()
            except ImportError as exc:
                raise StoreUnavailableError(
                    f"Spark Connect is configured ({remote}) but its client is not installed: "
                    f"pip install -e '.[spark]' ({exc}).") from exc
            except Exception as exc:  # noqa: BLE001 - the client's errors vary with the failure
                raise StoreUnavailableError(f"Cannot reach Spark Connect at {remote}: {str(exc).splitlines()[0]}") from exc
        return _sessions[remote]


def refresh(engine: Engine, table) -> None:
    """Make the store's SQL session see what Spark Connect wrote to ``table``: Spark caches each table's file
    listing per session, so rows appended through another session stay unseen until the table is refreshed."""
    with engine.connect() as conn:
        conn.exec_driver_sql(f"REFRESH TABLE {table_name(engine, table)}")


def table_name(engine: Engine, table) -> str:
    """``database.table`` of a store table (a :class:`sqlalchemy.Table` or its name) as Spark Connect names it."""
    name = getattr(table, "name", table)
    return f"{engine.url.database or 'default'}.{name}"


def insert_frame(engine: Engine, table, frame) -> bool:
    """Append ``frame``'s rows (``table``'s columns, in any order) to the store table ``table`` through Spark Connect,
    as Arrow batches: a Spark store's bulk path when a Connect URL is configured (a multi-row INSERT through the
    Thrift Server parses every value as SQL text). Returns False, writing nothing, when there is no session."""
    session = spark_session(engine)
    if session is None:
        return False
    names = [c.name for c in table.columns]
    rows = frame.reindex(columns=names)
    for name in set(names) - set(frame.columns):  # a column the rows do not give: NULL, not NaN
        rows[name] = None
    spark_rows = session.createDataFrame(rows, schema=spark_schema(table)) if len(rows) else None
    if spark_rows is not None:
        spark_rows.write.insertInto(table_name(engine, table))
        refresh(engine, table)
    return True


def spark_schema(table) -> str:
    """The Spark DDL schema of a store table's columns (what ``createDataFrame`` casts the pandas columns to)."""
    kinds = {"integer": "int", "big_integer": "bigint", "small_integer": "smallint", "double": "double",
             "float": "double", "boolean": "boolean", "date": "date", "datetime": "timestamp_ntz"}
    out = []
    for column in table.columns:
        visit = getattr(column.type, "__visit_name__", "string").lower()
        out.append(f"{column.name} {kinds.get(visit, 'string')}")
    return ", ".join(out)
