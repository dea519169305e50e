"""The event store: one SQLAlchemy engine, the table layout (defined in :mod:`core.schema`), and dataset bookkeeping.

The URL comes from, in order: an explicit argument, ``[connections.cartsight] url`` in
``.streamlit/secrets.toml``, the ``CARTSIGHT_DB_URL`` environment variable, else a DuckDB
file in :func:`core.config.home_dir`. Every table carries ``dataset_id`` so that one
store holds many datasets; the same tables work on DuckDB and PostgreSQL. The failure messages
are in :mod:`core.store_faults`, the owner tokens and stale-file cleanup in :mod:`core.housekeeping`.
"""
from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from core import config, derived
from core.dataset_names import check_dataset_name
from core.errors import DatasetExistsError, DatasetNotFoundError, StoreUnavailableError
from core.schema import (  # noqa: F401 (the table layout, read as store.<table> everywhere)
    metadata, schema_info, dataset_id_seq, datasets, events, price_edges, session_days, quarantine, mappings,
    models, predictions, segment_run_id_seq, segment_runs, segments, export_id_seq, exports, export_members,
    is_duckdb,
)
from core.housekeeping import OWNER_SUFFIX, cleanup_stale_files
from core.store_faults import check_data_folder, describe_failure
from core.store_url import _first_line, resolve_url, safe_url

# re-exported for callers that import them from here (the pages, core modules, the tests)
from core.housekeeping import (PARTIAL_MARK, TEMP_PREFIX, _host, process_owner,  # noqa: F401, E402
                               store_tag, temp_prefix)
from core.store_faults import command_role, lock_conflict_message, process_role  # noqa: F401, E402


# --- engine ------------------------------------------------------------------------


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


#: The databases cartsight stores data in (SQLAlchemy backend names).
SUPPORTED_BACKENDS = ("duckdb", "postgresql")


def _check_backend(url: str) -> None:
    """Refuse a URL of a database cartsight cannot store data in (SQLite, MySQL…) before anything is created."""
    try:
        backend = sa.engine.make_url(url).get_backend_name()
    except sa.exc.ArgumentError:
        return  # not a URL at all: opening it says so
    if backend not in SUPPORTED_BACKENDS:
        raise StoreUnavailableError(
            f"Cannot open the database at {safe_url(url)}: cartsight stores its data in DuckDB or PostgreSQL, not "
            f"{backend}. Use a URL such as duckdb:///path/to/cartsight.duckdb or postgresql://user@host/dbname.")


def _set_work_mem(dbapi_conn, _record) -> None:
    # psycopg opens a transaction for the SET; it is committed so the pool hands out an idle connection
    with dbapi_conn.cursor() as cur:
        cur.execute(f"SET work_mem = '{config.PG_WORK_MEM}'")
    dbapi_conn.commit()


def ensure_schema(engine: Engine) -> None:
    """Create the tables on first use and record the schema version; refuse a newer schema."""
    with engine.begin() as conn:
        known = sa.inspect(conn).has_table(schema_info.name)
        found = conn.execute(sa.select(sa.func.max(schema_info.c.version))).scalar() if known else None
        try:
            metadata.create_all(conn, checkfirst=True)
        except sa.exc.ProgrammingError as exc:
            if found is not None and found < config.SCHEMA_VERSION:
                raise _upgrade_refused(found, exc) from exc
            raise
        if conn.dialect.name == "postgresql":
            # PostgreSQL scans per dataset and per shopper; DuckDB's zone maps need no index
            # (and an index would slow its bulk loads).
            # Asked first, not "IF NOT EXISTS": a team's app role that only reads and writes (the
            # README's set-up) may not run CREATE INDEX at all, even when the index is there.
            names = {ix["name"] for ix in sa.inspect(conn).get_indexes(events.name)}
            if "cs_events_dataset_user" not in names:
                conn.execute(sa.text(
                    "CREATE INDEX cs_events_dataset_user ON cs_events (dataset_id, user_id, event_time)"
                ))
        version = conn.execute(sa.select(sa.func.max(schema_info.c.version))).scalar()
        if version is None:
            conn.execute(schema_info.insert().values(version=config.SCHEMA_VERSION, created_at=_now()))
        elif version > config.SCHEMA_VERSION:
            raise StoreUnavailableError(
                f"The database was written by a newer cartsight (schema {version}, this one reads "
                f"{config.SCHEMA_VERSION}); upgrade cartsight."
            )
        elif version < config.SCHEMA_VERSION:
            _upgrade(conn, version)


def _upgrade(conn: Connection, version: int) -> None:
    """Bring a store written by an older cartsight to :data:`core.config.SCHEMA_VERSION`, in the caller's transaction.

    Schema 2 added ``cs_events.price_band`` and the derived tables ``cs_price_edges`` and
    ``cs_session_days`` (``create_all`` made the tables): each existing dataset gets them from
    its events once (:func:`core.derived.derive_dataset`). Schema 3 added
    ``cs_exports.consent_column`` and ``consent_basis`` (NULL for older exports). Schema 4 added
    ``cs_predictions.expected_revenue`` and ``p_inactive`` (NULL for the forecasts of older versions).
    A role that may not alter the tables gets a message saying who must open the store once.
    """
    try:
        if version < 2:
            conn.exec_driver_sql("ALTER TABLE cs_events ADD COLUMN IF NOT EXISTS price_band VARCHAR")
            ids = conn.execute(sa.select(datasets.c.dataset_id).order_by(datasets.c.dataset_id)).scalars().all()
            for did in ids:  # read first: DuckDB re-runs a result still open when the connection runs another
                derived.derive_dataset(conn, did)
        if version < 3:
            conn.exec_driver_sql("ALTER TABLE cs_exports ADD COLUMN IF NOT EXISTS consent_column VARCHAR")
            conn.exec_driver_sql("ALTER TABLE cs_exports ADD COLUMN IF NOT EXISTS consent_basis TEXT")
        if version < 4:
            conn.exec_driver_sql("ALTER TABLE cs_predictions ADD COLUMN IF NOT EXISTS expected_revenue DOUBLE PRECISION")
            conn.exec_driver_sql("ALTER TABLE cs_predictions ADD COLUMN IF NOT EXISTS p_inactive DOUBLE PRECISION")
    except sa.exc.ProgrammingError as exc:
        raise _upgrade_refused(version, exc) from exc
    conn.execute(sa.update(schema_info).values(version=config.SCHEMA_VERSION))


def _upgrade_refused(version: int, exc: sa.exc.DBAPIError) -> StoreUnavailableError:
    return StoreUnavailableError(
        f"The database holds cartsight's schema {version} and this cartsight needs schema "
        f"{config.SCHEMA_VERSION}: this role could not upgrade it ({_first_line(exc.orig or exc)}). Open it once "
        f"as the role that owns the tables (e.g. `cartsight datasets --db URL`), which upgrades it."
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


# --- datasets -----------------------------------------------------------------------


def list_datasets(engine: Engine) -> list[dict]:
    """All datasets, newest first, as dicts of the ``cs_datasets`` columns (report decoded)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(datasets).order_by(datasets.c.created_at.desc())).mappings().all()
    return [_decode(dict(r)) for r in rows]


def get_dataset(engine_or_conn: Engine | Connection, name: str) -> dict:
    """The dataset row for ``name``; raises :class:`DatasetNotFoundError` listing the names that exist."""
    query = sa.select(datasets).where(datasets.c.name == name)
    if isinstance(engine_or_conn, Engine):
        with engine_or_conn.connect() as conn:
            row = conn.execute(query).mappings().first()
            names = conn.execute(sa.select(datasets.c.name)).scalars().all() if row is None else []
    else:
        row = engine_or_conn.execute(query).mappings().first()
        names = engine_or_conn.execute(sa.select(datasets.c.name)).scalars().all() if row is None else []
    if row is None:
        raise DatasetNotFoundError(f"No dataset named {name!r}. Datasets in the store: {sorted(names)}")
    return _decode(dict(row))


def _decode(row: dict) -> dict:
    for key in ("mapping_json", "report_json"):
        if row.get(key):
            row[key.removesuffix("_json")] = json.loads(row[key])
    return row


def check_name_free(conn: Connection, name: str) -> None:
    """Check ``name`` for a new dataset: :class:`ParameterError` when it is not a usable name
    (:func:`core.dataset_names.check_dataset_name`), :class:`DatasetExistsError` when it is taken."""
    check_dataset_name(name)
    if conn.execute(sa.select(datasets.c.dataset_id).where(datasets.c.name == name)).first():
        raise DatasetExistsError(
            f"A dataset named {name!r} exists already: choose another name or delete the old one first."
        )


def next_dataset_id(conn: Connection) -> int:
    """A fresh dataset id from the store's sequence."""
    return int(conn.execute(sa.select(dataset_id_seq.next_value())).scalar_one())


def drop_dataset(engine: Engine, name: str) -> int:
    """Delete a dataset and everything derived from it in one transaction; returns its id."""
    with engine.begin() as conn:
        ds = get_dataset(conn, name)
        did = ds["dataset_id"]
        model_dirs = conn.execute(sa.select(models.c.path).where(models.c.dataset_id == did)).scalars().all()
        export_files = [
            config.exports_dir() / f"{export_id}-{file_name}"
            for export_id, file_name in conn.execute(
                sa.select(exports.c.export_id, exports.c.file_name).where(exports.c.dataset_id == did)
            )
        ]
        for table in (export_members, exports, segments, segment_runs, predictions, models, quarantine,
                      session_days, price_edges, events):
            conn.execute(table.delete().where(table.c.dataset_id == did))
        conn.execute(datasets.delete().where(datasets.c.dataset_id == did))
    # files go only once the rows are gone for good, so a failed delete keeps a usable dataset
    for folder in model_dirs:
        shutil.rmtree(folder, ignore_errors=True)
        Path(f"{folder}{OWNER_SUFFIX}").unlink(missing_ok=True)
    for path in export_files:
        path.unlink(missing_ok=True)
    return did


def bulk_insert(conn: Connection, table: sa.Table, frame) -> int:
    """Insert a DataFrame's rows into ``table`` inside ``conn``'s transaction by the engine's native path.

    DuckDB: the frame is registered on the driver connection and inserted with one
    ``INSERT ... SELECT``; PostgreSQL: ``COPY ... FROM STDIN``; any other database: an
    executemany through SQLAlchemy Core. Only the frame's columns that ``table`` has are
    written; missing values (None, NaN, pd.NA) become NULL. Returns the number of rows.
    Table and column names come from the table definition, never from user input.
    """
    import pandas as pd

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
        with raw.cursor() as cur, cur.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
            for row in frame.itertuples(index=False, name=None):
                copy.write_row([None if _is_missing(v) else v for v in row])
    else:
        records = [{k: (None if _is_missing(v) else v) for k, v in r.items()} for r in frame.to_dict("records")]
        conn.execute(table.insert(), records)
    return len(frame)


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
