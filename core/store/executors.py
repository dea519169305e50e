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

import atexit
import contextlib
import threading
from collections.abc import Callable

from sqlalchemy.engine import Connection, Engine

from core.errors import StoreUnavailableError
from core.store.url import resolve_spark_connect

_sessions: dict[str, object] = {}
_lock = threading.Lock()


def is_spark(engine: Engine) -> bool:
    """Whether ``engine`` is a Spark store (cartsight's Spark SQL dialect)."""
    return engine.dialect.name == "spark"


def undo_without_transactions(engine: Engine, undo: Callable[[Connection], None]) -> None:
    """After a failed ``engine.begin()`` block on a store without transactions (Spark), delete what it wrote:
    ``undo`` runs in a block of its own, and a failure of its own is swallowed so the first error is the one
    raised. Elsewhere the block's rollback did it, and nothing runs."""
    if is_spark(engine):
        with contextlib.suppress(Exception), engine.begin() as conn:
            undo(conn)


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

                session = SparkSession.builder.remote(remote).getOrCreate()
            except ImportError as exc:
                raise StoreUnavailableError(
                    f"Spark Connect is configured ({remote}) but its client is not installed: "
                    f"pip install -e '.[spark]' ({exc}).") from exc
            except Exception as exc:  # noqa: BLE001 - the client's errors vary with the failure
                raise StoreUnavailableError(f"Cannot reach Spark Connect at {remote}: {str(exc).splitlines()[0]}") from exc
            _keep_no_plans(session)
            _sessions[remote] = session
        return _sessions[remote]


#: A Spark Connect session keeps its resolved plans for reuse (32 by default in Spark 4); a plan that carries rows
#: (a load's Arrow batch, a model sent to the executors) then stays in the server's heap for as long as the session
#: lives: a few 5 M-event loads ran a 2 GB driver out of memory (measured). cartsight sends each plan once.
PLAN_CACHE_CONF = "spark.connect.session.planCache.enabled"


def _keep_no_plans(session) -> None:
    try:
        session.conf.set(PLAN_CACHE_CONF, "false")
    except Exception:  # noqa: BLE001 - a server without the setting has no such cache
        pass


@atexit.register
def release_all() -> None:
    """Release every Spark Connect session of this process on its server (what it holds there is freed now, not
    when the server's idle timeout, an hour by default, expires); the next use opens a new one."""
    with _lock:
        sessions = list(_sessions.values())
        _sessions.clear()
    for session in sessions:  # in a thread of its own: a server that is gone would keep the client retrying
        worker = threading.Thread(target=_stop, args=(session,), daemon=True, name="cartsight-spark-release")
        worker.start()
        worker.join(RELEASE_WAIT_S)


#: Seconds the process waits for the server to release a session before it goes on (or exits) without it.
RELEASE_WAIT_S = 5.0


def _stop(session) -> None:
    try:
        session.stop()
    except Exception:  # noqa: BLE001 - best effort: the server may be gone
        pass


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


def select_frame(engine: Engine, query):
    """The rows of the SELECT ``query`` as a DataFrame read through Spark Connect (Arrow batches), or None when
    there is no session (another store, or no Connect URL).

    The Thrift Server sends every row as Thrift values that PyHive turns into Python objects one by one:
    77,443 shoppers' summaries took seconds where Arrow takes a fraction (see docs/benchmarks.md). The
    statement is the one the store would run (the same dialect, its parameters rendered the same way), its
    tables named ``database.table`` since the Connect session has no current database of the store's.
    """
    session = spark_session(engine)
    if session is None:
        return None
    return session.sql(compiled_text(engine, query)).toPandas()


def compiled_text(engine: Engine, query) -> str:
    """``query`` as Spark SQL text: tables qualified by the store's database, parameters as literals (as
    :meth:`core.store.spark.SparkDialect.do_execute` renders them for the Thrift Server)."""
    from core.store.spark import escape

    compiled = query.compile(dialect=engine.dialect, schema_translate_map={None: engine.url.database or "default"},
                             render_schema_translate=True, compile_kwargs={"render_postcompile": True})
    text = str(compiled)
    if not compiled.params:
        return text.replace("%%", "%")
    return text % {k: escape(v) for k, v in compiled.params.items()}


def spark_schema(table) -> str:
    """The Spark DDL schema of a store table's columns (what ``createDataFrame`` casts the pandas columns to)."""
    kinds = {"integer": "int", "big_integer": "bigint", "small_integer": "smallint", "double": "double",
             "float": "double", "boolean": "boolean", "date": "date", "datetime": "timestamp_ntz"}
    out = []
    for column in table.columns:
        visit = getattr(column.type, "__visit_name__", "string").lower()
        out.append(f"{column.name} {kinds.get(visit, 'string')}")
    return ", ".join(out)
