"""The store's engine: one SQLAlchemy engine per URL (DuckDB file, PostgreSQL, Spark SQL), the native bulk insert, planner statistics.

The URL comes from, in order: an explicit argument, ``[connections.cartsight] url`` in
``.streamlit/secrets.toml``, the ``CARTSIGHT_DB_URL`` environment variable, else a DuckDB
file in :func:`core.config.home_dir` (:mod:`core.store.url`). Opening checks the data folder
and creates or upgrades the tables (:mod:`core.store.migrate`); the failure messages are in
:mod:`core.store.faults`, the owner tokens and stale-file cleanup in :mod:`core.store.housekeeping`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from core import config
from core.errors import StoreUnavailableError
from core.store.faults import check_data_folder, describe_failure
from core.store.housekeeping import cleanup_stale_files
from core.store.migrate import ensure_schema
from core.store.url import _first_line, resolve_url, safe_url


def make_engine(url: str | None = None) -> Engine:
    """Create an engine for ``url`` (see :func:`resolve_url`) and make sure the schema exists.

    For a DuckDB file the data folder is checked first (a folder, writable, at least
    ``config.STORE_MIN_FREE_BYTES`` free). Stale files a killed process left behind (model
    folders never published, temporary folders) are removed. Raises
    :class:`StoreUnavailableError` with the reason and what to do when the database cannot
    be opened or written (stopped server, read-only or full data folder).
    """
    url = resolve_url(url)
    try:
        _check_backend(url)
        if url.startswith("duckdb:///") and url != "duckdb:///:memory:":
            try:
                check_data_folder(Path(url.removeprefix("duckdb:///")).expanduser().parent)
            except StoreUnavailableError as exc:
                raise StoreUnavailableError(f"Cannot open the database at {safe_url(url)}: {exc}") from exc
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        url = spark_url(url)
        kwargs: dict[str, Any] = {}
        if url.startswith("duckdb"):
            # DuckDB allows one read-write process per file; keep one pooled connection set.
            kwargs["connect_args"] = {"preload_extensions": [], "config": {"memory_limit": config.DUCKDB_MEMORY_LIMIT}}
        else:
            # a dead pooled connection (server restarted) is replaced at checkout, never handed out
            kwargs["pool_pre_ping"] = True
            if url.startswith("postgresql+psycopg") and "connect_timeout" not in url:
                kwargs["connect_args"] = {"connect_timeout": config.PG_CONNECT_TIMEOUT_SECONDS}
        engine = sa.create_engine(url, **kwargs)
        if engine.dialect.name == "postgresql":
            sa.event.listen(engine, "connect", _set_work_mem)
        try:
            ensure_schema(engine)
        except BaseException:
            engine.dispose()  # no pooled connection (or DuckDB file lock) outlives a failed open
            raise
    except StoreUnavailableError:
        raise
    except (OSError, sa.exc.SQLAlchemyError, Exception) as exc:  # noqa: BLE001 - driver errors vary
        known = describe_failure(exc, url, opening=True)
        if known is not None:
            raise known from exc
        raise StoreUnavailableError(f"Cannot open the database at {safe_url(url)}: {_first_line(exc)}") from exc
    cleanup_stale_files(engine)
    return engine


#: The databases cartsight stores data in (SQLAlchemy backend names; ``hive`` is a Spark Thrift Server's URL).
SUPPORTED_BACKENDS = ("duckdb", "postgresql", "spark", "hive")

# Spark SQL through PyHive's Thrift client and cartsight's own dialect (core.store.spark), imported when used
sa.dialects.registry.register("spark", "core.store.spark", "SparkDialect")


def spark_url(url: str) -> str:
    """A Spark Thrift Server's URL (``hive://host:port/schema`` or ``spark://…``) for cartsight's Spark dialect;
    any other URL as it is. ``?auth=NOSASL`` and the other PyHive connection options pass through."""
    for prefix in ("hive://", "spark+hive://", "hive+thrift://"):
        if url.startswith(prefix):
            return "spark://" + url.removeprefix(prefix)
    return url


def _check_backend(url: str) -> None:
    """Refuse a URL of a database cartsight cannot store data in (SQLite, MySQL…) before anything is created."""
    try:
        backend = sa.engine.make_url(url).get_backend_name()
    except sa.exc.ArgumentError:
        return  # not a URL at all: opening it says so
    if backend not in SUPPORTED_BACKENDS:
        raise StoreUnavailableError(
            f"Cannot open the database at {safe_url(url)}: cartsight stores its data in DuckDB, PostgreSQL or Spark "
            f"SQL, not {backend}. Use a URL such as duckdb:///path/to/cartsight.duckdb, postgresql://user@host/dbname "
            f"or hive://host:10001/default (a Spark Thrift Server).")


def _set_work_mem(dbapi_conn, _record) -> None:
    # psycopg opens a transaction for the SET; it is committed so the pool hands out an idle connection
    with dbapi_conn.cursor() as cur:
        cur.execute(f"SET work_mem = '{config.PG_WORK_MEM}'")
    dbapi_conn.commit()


def bulk_insert(conn: Connection, table: sa.Table, frame) -> int:
    """Insert a DataFrame's rows into ``table`` inside ``conn``'s transaction by the engine's native path.

    DuckDB: the frame is registered on the driver connection and inserted with one
    ``INSERT ... SELECT``; PostgreSQL: ``COPY ... FROM STDIN``; Spark with Spark Connect, above
    :data:`SPARK_ARROW_ROWS` rows: Arrow batches; any other database (Spark SQL: its dialect turns it
    into multi-row INSERTs): an executemany through SQLAlchemy Core. Only the frame's columns that ``table`` has are
    written; missing values (None, NaN, pd.NA) become NULL. Returns the number of rows.
    Table and column names come from the table definition, never from user input.
    """
    if frame.empty:
        return 0
    cols = [c.name for c in table.columns if c.name in frame.columns]
    frame = frame.loc[:, cols]
    names = ", ".join(cols)
    raw = driver_connection(conn) if conn.dialect.name in ("duckdb", "postgresql") else None
    if conn.dialect.name == "duckdb":
        view = f"{table.name}_incoming"
        if hasattr(raw, "complete"):  # DuckDB 2: a result left pending by an earlier statement blocks register
            raw.complete()
        # nullable extension dtypes (Int64 with pd.NA) register as objects; floats carry NULL as NaN
        raw.register(view, frame.astype({c: "float64" for c in cols if str(frame[c].dtype) == "Int64"}))
        try:
            raw.execute(f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {view}")
        finally:
            raw.unregister(view)
    elif conn.dialect.name == "postgresql":
        # missing values made None column by column, not value by value (a third of the time at 262,075 events)
        rows = frame.astype(object).where(frame.notna(), None)
        with raw.cursor() as cur, cur.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
            for row in rows.itertuples(index=False, name=None):
                copy.write_row(row)
    elif len(frame) > SPARK_ARROW_ROWS and _arrow_insert(conn, table, frame):
        pass  # Spark with Spark Connect: Arrow batches, written as a few files
    else:  # Spark SQL: its dialect sends the rows as multi-row INSERTs (core.store.spark)
        records = [{k: (None if _is_missing(v) else v) for k, v in r.items()} for r in frame.to_dict("records")]
        conn.execute(table.insert(), records)
    return len(frame)


#: Above this many rows a Spark store with Spark Connect receives a bulk insert as Arrow batches: as multi-row
#: INSERTs of 2,000 rows, a segmentation's 77,443 assignments made 39 statements and 39 small files, and every
#: page that reads a segment paid to open them (0.3 s per query at 5 M events on a local Spark, measured).
SPARK_ARROW_ROWS = 2_000


def _arrow_insert(conn: Connection, table: sa.Table, frame) -> bool:
    from core.store import executors

    return executors.insert_frame(conn.engine, table, frame)


def _is_missing(value: Any) -> bool:
    import pandas as pd

    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def analyze(engine: Engine, *tables: sa.Table) -> None:
    """Fresh PostgreSQL planner statistics for ``tables`` after a large write; nothing on DuckDB. Best effort.

    Without them the planner plans for the rows it last counted (none, for a new dataset's events or a
    first scoring run's predictions) and can pick nested loops, ten times slower or worse on a few
    million events (the Overview's kpis, the Campaigns count on fresh predictions and segments).
    Call it after the commit, never inside a load: ANALYZE's lock would queue every other writer of the
    table behind that transaction. A role that does not own a table gets a warning, not statistics.
    """
    if engine.dialect.name != "postgresql":
        return
    for table in tables:
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(f"ANALYZE {table.name}")  # a name from the table layout, not user input
        except sa.exc.DBAPIError:  # the rows are in; only the planner's statistics are stale
            pass


def driver_connection(conn: Connection) -> Any:
    """The DB-API driver connection under ``conn`` (a ``duckdb`` or ``psycopg`` connection).

    Bulk loads use it for the engine's native path inside the same transaction.
    """
    raw = conn.connection.driver_connection
    # duckdb-engine wraps the DuckDB connection in a ConnectionWrapper
    return getattr(raw, "_ConnectionWrapper__c", raw)
