"""The event store: one SQLAlchemy engine, the table layout, and dataset bookkeeping.

The URL comes from, in order: an explicit argument, ``[connections.cartsight] url`` in
``.streamlit/secrets.toml``, the ``CARTSIGHT_DB_URL`` environment variable, else a DuckDB
file in :func:`core.config.home_dir`. Every table carries ``dataset_id`` so that one
store holds many datasets; the same tables work on DuckDB and PostgreSQL.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tomllib
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from core import config
from core.errors import DatasetExistsError, DatasetNotFoundError, StoreUnavailableError

metadata = sa.MetaData()

schema_info = sa.Table(
    "cs_schema_info",
    metadata,
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
)

dataset_id_seq = sa.Sequence("cs_dataset_id_seq", metadata=metadata)

datasets = sa.Table(
    "cs_datasets",
    metadata,
    sa.Column("dataset_id", sa.Integer, dataset_id_seq, primary_key=True),
    sa.Column("name", sa.String, nullable=False, unique=True),
    sa.Column("layout", sa.String, nullable=False),
    sa.Column("source", sa.String),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("rows_read", sa.BigInteger, nullable=False),
    sa.Column("rows_loaded", sa.BigInteger, nullable=False),
    sa.Column("rows_quarantined", sa.BigInteger, nullable=False),
    sa.Column("n_users", sa.BigInteger),
    sa.Column("first_event", sa.DateTime),
    sa.Column("last_event", sa.DateTime),
    # the column mapping used and the ingest report (event counts, unknown types, notes)
    sa.Column("mapping_json", sa.Text),
    sa.Column("report_json", sa.Text),
)

events = sa.Table(
    "cs_events",
    metadata,
    sa.Column("dataset_id", sa.Integer, nullable=False),
    sa.Column("user_id", sa.String, nullable=False),
    sa.Column("event_time", sa.DateTime, nullable=False),  # naive, always UTC
    sa.Column("event_type", sa.String, nullable=False),
    sa.Column("item_id", sa.String),
    sa.Column("category", sa.String),
    sa.Column("brand", sa.String),
    sa.Column("price", sa.Double),  # 8-byte: sa.Float is a 4-byte REAL on DuckDB
    sa.Column("quantity", sa.Integer),
    sa.Column("session_id", sa.String),
)

quarantine = sa.Table(
    "cs_quarantine",
    metadata,
    sa.Column("dataset_id", sa.Integer, nullable=False),
    sa.Column("line_no", sa.BigInteger),  # 1-based line of the input file, header included
    sa.Column("raw_line", sa.Text),
    sa.Column("reason", sa.String, nullable=False),  # short code, e.g. "truncated_row"
    sa.Column("detail", sa.Text),  # the message: column, value found, what was expected
)

mappings = sa.Table(
    "cs_mappings",
    metadata,
    sa.Column("signature", sa.String, primary_key=True),  # hash of the normalised header
    sa.Column("mapping_json", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

models = sa.Table(
    "cs_models",
    metadata,
    sa.Column("model_version", sa.String, primary_key=True),
    sa.Column("dataset_id", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("horizon_days", sa.Integer, nullable=False),
    sa.Column("path", sa.String, nullable=False),  # folder with weights, config, vocabularies
    sa.Column("config_json", sa.Text),
    sa.Column("metrics_json", sa.Text),
    sa.Column("status", sa.String, nullable=False),  # "ready" once weights and predictions are in
)

predictions = sa.Table(
    "cs_predictions",
    metadata,
    sa.Column("dataset_id", sa.Integer, nullable=False),
    sa.Column("model_version", sa.String, nullable=False),
    sa.Column("user_id", sa.String, nullable=False),
    sa.Column("purchase_propensity", sa.Double),
    sa.Column("next_event_type", sa.String),
    sa.Column("p_view", sa.Double),
    sa.Column("p_cart", sa.Double),
    sa.Column("p_purchase", sa.Double),
    sa.Column("p_remove", sa.Double),
    sa.Column("p_none", sa.Double),
    sa.Column("next_category", sa.String),
    sa.Column("next_category_p", sa.Double),
    sa.Column("top_items", sa.Text),  # space-separated item ids, best first
    sa.Column("reasons", sa.Text),  # "; "-separated sentences
)

segment_run_id_seq = sa.Sequence("cs_segment_run_id_seq", metadata=metadata)

segment_runs = sa.Table(
    "cs_segment_runs",
    metadata,
    sa.Column("run_id", sa.Integer, segment_run_id_seq, primary_key=True),
    sa.Column("dataset_id", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("n_segments", sa.Integer, nullable=False),
    sa.Column("model_version", sa.String),  # the forecasts whose propensity/embedding were features
    sa.Column("features_json", sa.Text),  # feature names used, scaling
    sa.Column("profiles_json", sa.Text),  # one profile card per segment
)

segments = sa.Table(
    "cs_segments",
    metadata,
    sa.Column("dataset_id", sa.Integer, nullable=False),
    sa.Column("run_id", sa.Integer, nullable=False),
    sa.Column("user_id", sa.String, nullable=False),
    sa.Column("segment", sa.Integer, nullable=False),
    sa.Column("segment_name", sa.String, nullable=False),
)

export_id_seq = sa.Sequence("cs_export_id_seq", metadata=metadata)

exports = sa.Table(
    "cs_exports",
    metadata,
    sa.Column("export_id", sa.Integer, export_id_seq, primary_key=True),
    sa.Column("dataset_id", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("model_version", sa.String),
    sa.Column("segment_run_id", sa.Integer),
    sa.Column("name", sa.String),  # the analyst's label for the list
    sa.Column("format", sa.String, nullable=False),  # csv | parquet | google | meta | klaviyo | mailchimp
    sa.Column("filters_json", sa.Text, nullable=False),
    sa.Column("counts_json", sa.Text, nullable=False),  # matched, suppressed, no_consent, holdout, exported
    sa.Column("file_sha256", sa.String, nullable=False),
    sa.Column("file_name", sa.String),
    sa.Column("holdout_seed", sa.Integer),
)

export_members = sa.Table(
    "cs_export_members",
    metadata,
    sa.Column("export_id", sa.Integer, nullable=False),
    sa.Column("dataset_id", sa.Integer, nullable=False),
    sa.Column("user_id", sa.String, nullable=False),
    sa.Column("group_name", sa.String, nullable=False),  # "target" (exported) or "holdout"
    sa.Column("propensity_decile", sa.Integer),
)


# --- engine ------------------------------------------------------------------------


def resolve_url(url: str | None = None) -> str:
    """The store URL: ``url`` if given, else secrets.toml, else ``$CARTSIGHT_DB_URL``, else a DuckDB file."""
    if url:
        return url
    for secrets in (Path.cwd() / ".streamlit" / "secrets.toml", Path.home() / ".streamlit" / "secrets.toml"):
        if secrets.is_file():
            with secrets.open("rb") as fh:
                section = tomllib.load(fh).get("connections", {}).get(config.SECRETS_SECTION, {})
            if section.get("url"):
                return str(section["url"])
    if os.environ.get(config.DB_URL_ENV):
        return os.environ[config.DB_URL_ENV]
    return f"duckdb:///{config.home_dir() / 'cartsight.duckdb'}"


def is_duckdb(engine_or_conn: Engine | Connection) -> bool:
    """True when the store is DuckDB (bulk paths differ from PostgreSQL's)."""
    return engine_or_conn.dialect.name == "duckdb"


def make_engine(url: str | None = None) -> Engine:
    """Create an engine for ``url`` (see :func:`resolve_url`) and make sure the schema exists.

    Raises :class:`StoreUnavailableError` with the reason when the database cannot be
    opened or written (stopped server, read-only or full data folder).
    """
    url = resolve_url(url)
    try:
        if url.startswith("duckdb:///") and url != "duckdb:///:memory:":
            Path(url.removeprefix("duckdb:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        kwargs: dict[str, Any] = {}
        if url.startswith("duckdb"):
            # DuckDB allows one read-write process per file; keep one pooled connection set.
            kwargs["connect_args"] = {"preload_extensions": []}
        else:
            kwargs["pool_pre_ping"] = True
        engine = sa.create_engine(url, **kwargs)
        ensure_schema(engine)
    except StoreUnavailableError:
        raise
    except (OSError, sa.exc.SQLAlchemyError, Exception) as exc:  # noqa: BLE001 - driver errors vary
        raise StoreUnavailableError(f"Cannot open the database at {safe_url(url)}: {_first_line(exc)}") from exc
    return engine


def safe_url(url: str) -> str:
    """The URL with any password masked, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return url


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def ensure_schema(engine: Engine) -> None:
    """Create the tables on first use and record the schema version; refuse a newer schema."""
    with engine.begin() as conn:
        metadata.create_all(conn, checkfirst=True)
        if conn.dialect.name == "postgresql":
            # PostgreSQL scans per dataset and per shopper; DuckDB's zone maps need no index
            # (and an index would slow its bulk loads).
            conn.execute(sa.text(
                "CREATE INDEX IF NOT EXISTS cs_events_dataset_user ON cs_events (dataset_id, user_id, event_time)"
            ))
        version = conn.execute(sa.select(sa.func.max(schema_info.c.version))).scalar()
        if version is None:
            conn.execute(schema_info.insert().values(version=config.SCHEMA_VERSION, created_at=_now()))
        elif version > config.SCHEMA_VERSION:
            raise StoreUnavailableError(
                f"The database was written by a newer cartsight (schema {version}, this one reads "
                f"{config.SCHEMA_VERSION}); upgrade cartsight."
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
    """Raise :class:`DatasetExistsError` when ``name`` is taken."""
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
        for table in (export_members, exports, segments, segment_runs, predictions, models, quarantine, events):
            conn.execute(table.delete().where(table.c.dataset_id == did))
        conn.execute(datasets.delete().where(datasets.c.dataset_id == did))
    # files go only once the rows are gone for good, so a failed delete keeps a usable dataset
    for folder in model_dirs:
        shutil.rmtree(folder, ignore_errors=True)
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


def driver_connection(conn: Connection) -> Any:
    """The DB-API driver connection under ``conn`` (a ``duckdb`` or ``psycopg`` connection).

    Bulk loads use it for the engine's native path inside the same transaction.
    """
    raw = conn.connection.driver_connection
    # duckdb-engine wraps the DuckDB connection in a ConnectionWrapper
    return getattr(raw, "_ConnectionWrapper__c", raw)
