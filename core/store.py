"""The event store: one SQLAlchemy engine, the table layout (defined in :mod:`core.schema`), and dataset bookkeeping.

The URL comes from, in order: an explicit argument, ``[connections.cartsight] url`` in
``.streamlit/secrets.toml``, the ``CARTSIGHT_DB_URL`` environment variable, else a DuckDB
file in :func:`core.config.home_dir`. Every table carries ``dataset_id`` so that one
store holds many datasets; the same tables work on DuckDB and PostgreSQL.
"""
from __future__ import annotations

import datetime as dt
import errno
import json
import os
import re
import secrets
import shutil
import socket
import tempfile
import threading
import tomllib
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
    ``cs_exports.consent_column`` and ``consent_basis`` (NULL for older exports). A role that
    may not alter the tables gets a message saying who must open the store once.
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


# --- faults: clear messages, start-up checks, files a killed process left behind -------------------------


_WHAT_TO_DO_DB = (
    "Check that the database server is running and accepts connections at that address (the URL comes from "
    "`[connections.cartsight] url` in .streamlit/secrets.toml, or the CARTSIGHT_DB_URL environment variable), "
    "then try again (in the app: reload the page); cartsight reconnects by itself once the database is back, "
    "no restart needed."
)
_WHAT_TO_DO_FOLDER = (
    f"Fix it, or point the {config.HOME_ENV} environment variable (or the store URL) at a writable folder "
    "with free space, then start cartsight again."
)


def check_data_folder(folder: Path) -> None:
    """Make sure ``folder`` can hold the store: created if missing, a writable folder, enough free space.

    Raises :class:`StoreUnavailableError` naming the folder, what was found (not a folder,
    read-only, the free bytes) and what to do. Writes and removes one empty probe file.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not folder.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(folder))
        fd, probe = tempfile.mkstemp(prefix=".cartsight-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise StoreUnavailableError(_folder_message(folder, exc)) from exc
    free = free_bytes(folder)
    if free is not None and free < config.STORE_MIN_FREE_BYTES:
        raise StoreUnavailableError(
            f"{disk_full_message(folder, free)} (cartsight needs at least {config.STORE_MIN_FREE_BYTES:,} bytes free "
            "to open its database)."
        )


def free_bytes(path: Path) -> int | None:
    """Free bytes on the disk holding ``path`` (its nearest existing parent); None when unknown."""
    path = Path(path)
    for candidate in (path, *path.parents):
        if candidate.exists():
            try:
                return shutil.disk_usage(candidate).free
            except OSError:
                return None
    return None


def disk_full_message(folder: Path, free: int | None = None) -> str:
    """"The disk holding FOLDER is full: N bytes free" and what to do."""
    free = free_bytes(folder) if free is None else free
    found = f"{free:,} bytes free" if free is not None else "no space left"
    return (f"The disk holding {folder} is full: {found}. Free some space there, or point {config.HOME_ENV} "
            "(or the store URL) at a disk with room, then try again")


def _folder_message(folder: Path, exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return disk_full_message(folder) + "."
    if exc.errno in (errno.ENOTDIR, errno.EEXIST) or (folder.exists() and not folder.is_dir()):
        return (f"The data folder {folder} is not a folder (a file or another object is in its place): "
                f"{_os_reason(exc)}. {_WHAT_TO_DO_FOLDER}")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"The data folder {folder} is read-only ({_os_reason(exc)}): cartsight writes its database and " \
               f"models there. {_WHAT_TO_DO_FOLDER}"
    return f"The data folder {folder} cannot be used: {_os_reason(exc)}. {_WHAT_TO_DO_FOLDER}"


def _os_reason(exc: OSError) -> str:
    return exc.strerror or _first_line(exc)


def _causes(exc: BaseException):
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo.extend([getattr(e, "orig", None), e.__cause__, e.__context__])


_DISK_FULL_TEXT = ("no space left on device", "disk quota exceeded", "could not extend file", "disk is full")
_UNREACHABLE_CLASSES = {"OperationalError", "InterfaceError", "DisconnectionError", "ConnectionException",
                        "ConnectionTimeout"}


def describe_failure(exc: BaseException, url: str | None = None, opening: bool = False) -> StoreUnavailableError | None:
    """Map a database or file-system failure to a :class:`StoreUnavailableError` written for the analyst.

    Inputs: the exception caught (SQLAlchemy-wrapped or raw driver error, ``OSError``) and
    the store URL (default: :func:`resolve_url`). Output: the error whose message names
    the database (password masked) or the folder, the reason, and what to do; or None when
    ``exc`` is not about the store being unreachable, read-only or out of space (a bug,
    bad input: let it propagate). ``opening`` words it for a store that could not be opened
    ("Cannot open the database at URL: ..."). Never raises.
    """
    if isinstance(exc, StoreUnavailableError):
        return exc
    try:
        url = url or resolve_url()
    except Exception:  # noqa: BLE001 - a broken secrets.toml must not hide the original failure
        url = url or "the configured database"
    lead = f"Cannot open the database at {safe_url(url)}: " if opening else ""
    local = isinstance(url, str) and url.startswith("duckdb:///")
    for e in _causes(exc):
        held = lock_conflict_message(e)
        if held is not None:
            return StoreUnavailableError(lead + held if lead else held[0].upper() + held[1:])
    for e in _causes(exc):
        text = str(e).lower()
        code = getattr(e, "errno", None)
        is_os = isinstance(e, OSError)
        if (is_os and code in (errno.ENOSPC, errno.EDQUOT)) or any(t in text for t in _DISK_FULL_TEXT):
            if not is_os and not local and _path_in_message(e) is None:  # the database server's own disk
                return StoreUnavailableError(
                    f"{lead}The database at {safe_url(url)} is out of disk space ({_first_line(e)}). Free space on "
                    "the database server, then try again.")
            return StoreUnavailableError(lead + disk_full_message(_failing_folder(e, url)) + ".")
        if is_os and code in (errno.EROFS, errno.EACCES, errno.EPERM):
            return StoreUnavailableError(lead + _folder_message(_failing_folder(e, url), e))
        if not is_os and ("read-only file system" in text or ("io error" in text and "permission denied" in text)):
            folder = _failing_folder(e, url)
            return StoreUnavailableError(
                f"{lead}The data folder {folder} is read-only ({_first_line(e)}): cartsight writes its database and "
                f"models there. {_WHAT_TO_DO_FOLDER}")
    for e in _causes(exc):
        if type(e).__name__ in _UNREACHABLE_CLASSES and not isinstance(e, OSError):
            e = getattr(e, "orig", None) or e  # the driver's own words, without SQLAlchemy's prefix
            head = lead or f"The database at {safe_url(url)} cannot be reached: "
            return StoreUnavailableError(f"{head}{_first_line(e).rstrip('.')}. {_WHAT_TO_DO_DB}")
    return None


_LOCK_FILE = re.compile(r'Could not set lock on file "(?P<file>[^"]+)"')
_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<exe>.*?) \(PID (?P<pid>\d+)\)")


def lock_conflict_message(exc: BaseException) -> str | None:
    """"the app (PID n) has this store open: …" when ``exc`` is DuckDB refusing a file another process holds.

    DuckDB lets one process at a time open a database file, and names the holder's program
    and PID in its refusal; the holder is named from its command line (:func:`process_role`),
    or "another process" when DuckDB gave no PID. None for any other error.
    """
    text = str(exc)
    locked = _LOCK_FILE.search(text)
    if locked is None:
        return None
    holder = _LOCK_HOLDER.search(text)
    who = f"{process_role(int(holder['pid']), holder['exe'])} (PID {holder['pid']})" if holder else "another process"
    return (f"{who} has this store open: stop it, or use a PostgreSQL store, which many processes can use at "
            f"once (a DuckDB file, here {locked['file']}, takes one process at a time).")


def process_role(pid: int, program: str = "") -> str:
    """Who process ``pid`` is, from its command line (:func:`command_role`); ``program`` is the path DuckDB
    reports, used when the command line cannot be read (no /proc, another user's process)."""
    try:
        args = [a.decode(errors="replace") for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
    except OSError:
        args = []
    return command_role(args, program)


def command_role(args: list[str], program: str = "") -> str:
    """"the app", "a `cartsight segment` command" or "another program (NAME)" for a command line ``args``."""
    names = [Path(a).name for a in args]
    if "streamlit" in names:
        return "the app"
    for i, (arg, name) in enumerate(zip(args, names)):
        if name == "cartsight" or arg == "core.cli":
            command = next((a for a in args[i + 1:] if not a.startswith("-")), None)
            return f"a `cartsight {command}` command" if command else "a cartsight command"
    shown = names[0] if names else Path(program).name or "unknown"
    if shown.startswith("python") and len(args) > 1:  # the script or module it runs says more than the interpreter
        if args[1] == "-m" and len(args) > 2:
            shown += f" -m {args[2]}"
        elif not args[1].startswith("-"):
            shown += f" {names[1]}"
    return f"another program ({shown})"


def _path_in_message(exc: BaseException) -> Path | None:
    """An absolute local path quoted in a driver's message (DuckDB names the file it failed to write)."""
    match = re.search(r'"(/[^"]+)"', str(exc))
    if match and Path(match[1]).parent.exists():
        return Path(match[1])
    return None


def _failing_folder(exc: BaseException, url: str) -> Path:
    name = getattr(exc, "filename", None)
    path = Path(name) if name else _path_in_message(exc)
    if path is not None:
        return path if path.is_dir() else path.parent
    if url.startswith("duckdb:///") and url != "duckdb:///:memory:":
        return Path(url.removeprefix("duckdb:///")).expanduser().parent
    return config.home_dir()


# Files that outlive a killed process (a model folder renamed but never published, a temporary
# folder of a load) carry an owner token. Each process holds an exclusive flock on its token's
# lock file for its whole life; the kernel drops the lock when the process dies, however it dies.
# A file whose owner's lock can be taken belongs to a dead process and may go.

_OWNER_PATTERN = re.compile(r"(?P<host>[A-Za-z0-9]+)_(?P<pid>\d+)_(?P<nonce>[0-9a-f]{8})")
_owner_state: dict[str, Any] = {}
_owner_guard = threading.Lock()
TEMP_PREFIX = "cartsight-"
OWNERS_FOLDER = "cartsight-owners"
OWNER_SUFFIX = ".owner.json"
PARTIAL_MARK = ".partial-"


def _owners_dir() -> Path:
    return Path(tempfile.gettempdir()) / OWNERS_FOLDER


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "x", socket.gethostname())[:40] or "host"


def process_owner() -> str:
    """This process's owner token (``host_pid_nonce``), locked for the process's life; made on first use."""
    import fcntl

    with _owner_guard:
        if _owner_state.get("pid") == os.getpid():
            return _owner_state["token"]
        token = f"{_host()}_{os.getpid()}_{secrets.token_hex(4)}"
        folder = _owners_dir()
        folder.mkdir(parents=True, exist_ok=True)
        fresh = folder / f".{token}.new"
        fd = os.open(fresh, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(fresh, folder / f"{token}.lock")  # appears already locked: a cleaner never sees it free
        _owner_state.update(pid=os.getpid(), token=token, fd=fd)
        return token


def owner_alive(token: str) -> bool:
    """True unless ``token``'s process is known dead (its lock is free or gone on this host).

    A token from another host cannot be checked and counts as alive. Removes the lock file
    of a dead owner.
    """
    import fcntl

    match = _OWNER_PATTERN.fullmatch(token)
    if match is None:
        return True  # not ours to judge
    if match["host"] != _host():
        return True
    path = _owners_dir() / f"{token}.lock"
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        path.unlink(missing_ok=True)
        return False
    finally:
        os.close(fd)


def temp_prefix(kind: str) -> str:
    """Prefix for a temporary folder of this process (``tempfile.mkdtemp(prefix=...)``), cleaned if it dies."""
    return f"{TEMP_PREFIX}{kind}-{process_owner()}-"


def store_tag(conn: Connection) -> str:
    """An identity of the store behind ``conn`` (its dialect and the creation time of its schema)."""
    created = conn.execute(sa.select(sa.func.min(schema_info.c.created_at))).scalar()
    return f"{conn.dialect.name}:{created.isoformat() if created else 'unknown'}"


def cleanup_stale_files(engine: Engine) -> list[Path]:
    """Remove what killed processes left behind; returns the paths removed. Never raises.

    * model folders under :func:`core.config.models_dir` that this store never published
      (no ``cs_models`` row) and whose writer is dead, half-written ``.partial-`` folders
      of dead writers, and their ``.owner.json`` notes; folders of another store sharing
      the data folder, of a live writer, or without an owner note are kept;
    * temporary folders and files ``cartsight-<kind>-<owner>-*`` (see :func:`temp_prefix`)
      of dead processes in the system's temporary folder, and dead owners' lock files.
    """
    removed: list[Path] = []
    try:
        removed += _cleanup_models(engine)
    except (OSError, sa.exc.SQLAlchemyError):
        pass  # a read-only data folder or a busy store: try again next start
    try:
        removed += _cleanup_temp()
    except OSError:
        pass
    return removed


def _cleanup_models(engine: Engine) -> list[Path]:
    root = config.models_dir()
    if not root.is_dir():
        return []
    entries = [p for d in root.iterdir() if d.is_dir() and not d.name.startswith(".") for p in d.iterdir()]
    if not entries:
        return []
    with engine.connect() as conn:
        tag = store_tag(conn)
        published = set(conn.execute(sa.select(models.c.model_version)).scalars())
    removed = []
    for path in entries:
        if path.is_dir() and PARTIAL_MARK in path.name:
            token = path.name.split(PARTIAL_MARK, 1)[1]
            if not owner_alive(token):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        elif path.is_file() and path.name.startswith(".") and OWNER_SUFFIX + "." in path.name:
            if not owner_alive(path.name.rsplit(".", 1)[1]):  # a note killed before its rename
                path.unlink(missing_ok=True)
                removed.append(path)
        elif path.is_file() and path.name.endswith(OWNER_SUFFIX):
            version = path.name.removesuffix(OWNER_SUFFIX)
            note = _read_note(path)
            if note is None or version in published:
                continue  # published here, or a note we cannot read: keep
            if note.get("store") not in (None, tag):
                continue  # written for another store sharing this data folder: not ours to judge
            if owner_alive(str(note.get("owner", ""))):
                continue  # its writer is alive: it may be publishing right now
            folder = path.with_name(version)
            if folder.exists():
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _read_note(path: Path) -> dict | None:
    try:
        note = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return note if isinstance(note, dict) else None


def _cleanup_temp() -> list[Path]:
    removed = []
    pattern = re.compile(re.escape(TEMP_PREFIX) + r"[a-z]+-(?P<token>" + _OWNER_PATTERN.pattern + ")-")
    for path in Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*"):
        match = pattern.match(path.name)
        if match and not owner_alive(match["token"]):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    owners = _owners_dir()
    if owners.is_dir():
        for lock in owners.glob("*.lock"):
            if not owner_alive(lock.stem):  # removes the lock file of a dead owner
                removed.append(lock)
    return removed
