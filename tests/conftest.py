"""Shared fixtures: a store on DuckDB and on a real PostgreSQL server, tiny datasets, paths."""
from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from core import store
from core.store.event_views import write_events_view
from core.store import derived
from core.ingest.load import analyze_loaded

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
PG_ENV = "CARTSIGHT_TEST_PG_URL"
SPARK_ENV = "CARTSIGHT_TEST_SPARK_URL"


def _pg_url() -> str | None:
    url = os.environ.get(PG_ENV)
    if not url:
        return None
    try:
        eng = sa.create_engine(url)
        with eng.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        eng.dispose()
    except Exception as exc:  # noqa: BLE001
        if os.environ.get("CI"):
            pytest.fail(f"{PG_ENV}={url} is set but PostgreSQL is unreachable: {exc}")
        return None
    return url


@pytest.fixture(scope="session")
def pg_url() -> str:
    """URL of the test PostgreSQL server; skips locally without one, fails in CI."""
    url = _pg_url()
    if url is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must test PostgreSQL: set {PG_ENV} (see .ci/start-postgres.sh)")
        pytest.skip(f"no PostgreSQL reachable: set {PG_ENV} (bash .ci/start-postgres.sh prints one)")
    return url


#: (server URL, schema) made by :func:`emptied_pg_schema_url` in this test process, dropped when it ends
_SCHEMAS_MADE: set[tuple[str, str]] = set()


def emptied_pg_schema_url(url: str, prefix: str = "cs_test") -> str:
    """A URL on the schema ``<prefix>_<pid>``, dropped and created afresh (parallel test processes do not collide)."""
    schema = f"{prefix}_{os.getpid()}"
    raw = sa.create_engine(url)
    with raw.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    raw.dispose()
    _SCHEMAS_MADE.add((url, schema))
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


#: server URL -> (URL of this test process's store schema on it, what its tables looked like when made)
_PG_STORES: dict[str, tuple[str, str]] = {}


def _fresh_pg_engine(url: str) -> sa.Engine:
    """An engine on an empty store in a schema of this test process's own (parallel runs do not collide).

    Creating the tables takes a good part of a second on two busy cores, and some 400 tests ask for a store: the
    schema made for the first is kept, and a later test gets it emptied (every row deleted, the id sequences
    restarted) when its tables, columns, indexes and constraints are still as the store made them, or made afresh
    when a test changed them (a column dropped to fake an older store, a table of its own, the schema emptied).
    """
    known = _PG_STORES.get(url)
    if known is not None and _emptied_if_unchanged(*known):
        return store.make_engine(known[0])
    schema_url = emptied_pg_schema_url(url)
    engine = store.make_engine(schema_url)
    with engine.connect() as conn:
        _PG_STORES[url] = (schema_url, _schema_shape(conn))
    return engine


def _emptied_if_unchanged(schema_url: str, shape: str) -> bool:
    """Empty every table and restart every sequence of the store at ``schema_url`` if its shape is still ``shape``."""
    raw = sa.create_engine(schema_url)
    try:
        with raw.begin() as conn:
            if _schema_shape(conn) != shape:
                return False
            tables = ", ".join(t.name for t in store.metadata.sorted_tables)
            conn.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
            for (name,) in conn.exec_driver_sql(
                    "SELECT relname FROM pg_class WHERE relkind = 'S' AND relnamespace = current_schema()::regnamespace"):
                conn.exec_driver_sql(f'ALTER SEQUENCE "{name}" RESTART')
        return True
    finally:
        raw.dispose()


def _schema_shape(conn) -> str:
    """The current schema's relations, columns (in their order), indexes and constraints, as one text to compare."""
    return conn.exec_driver_sql("""
        SELECT concat_ws(' | ',
          (SELECT string_agg(concat_ws(':', relname, relkind::text), ',' ORDER BY relname) FROM pg_class
            WHERE relnamespace = current_schema()::regnamespace),
          (SELECT string_agg(concat_ws(':', table_name, ordinal_position, column_name, data_type, is_nullable,
                                       column_default), ',' ORDER BY table_name, ordinal_position)
             FROM information_schema.columns WHERE table_schema = current_schema()),
          (SELECT string_agg(indexdef, ',' ORDER BY indexname) FROM pg_indexes WHERE schemaname = current_schema()),
          (SELECT string_agg(conname || ' ' || pg_get_constraintdef(oid), ',' ORDER BY conname) FROM pg_constraint
            WHERE connamespace = current_schema()::regnamespace))
    """).scalar()


@pytest.fixture(scope="session")
def spark_store_url() -> Iterator[str]:
    """The URL of a database of this test session's own on the test Spark Thrift Server, its tables created once
    (each creation is a Spark command: a store per test would cost seconds); skips without a server."""
    url = os.environ.get(SPARK_ENV)
    if not url:
        pytest.skip(f"no Spark Thrift Server: set {SPARK_ENV} (bash .ci/start-spark.sh prints one)")
    from core.store.engine import spark_url

    made = sa.engine.make_url(spark_url(url))
    database = f"cs_test_{os.getpid()}"
    admin = sa.create_engine(made)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {database} CASCADE")
        conn.exec_driver_sql(f"CREATE DATABASE {database}")
    ours = made.set(database=database).render_as_string(hide_password=False)
    store.make_engine(ours).dispose()
    yield ours
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {database} CASCADE")
    admin.dispose()


def _emptied_spark_engine(url: str) -> sa.Engine:
    """An engine on the session's Spark database with every table emptied: those that hold a row (one statement
    asks every table for one) are truncated, a few at a time (a TRUNCATE costs the server a tenth of a second
    even on an empty table, and a test writes a handful of the store's 28)."""
    from concurrent.futures import ThreadPoolExecutor

    raw = sa.create_engine(url, pool_size=4)

    def empty(name: str) -> None:
        with raw.connect() as conn:
            conn.exec_driver_sql(f"TRUNCATE TABLE {name}")

    with raw.connect() as conn:
        names = [n for n in conn.dialect.get_table_names(conn) if n.startswith("cs_")]
        for view in [n for n in names if n.startswith("cs_connected_")]:  # a connected dataset's view
            conn.exec_driver_sql(f"DROP VIEW IF EXISTS {view}")
        views = {store.events.name} | {n for n in names if n.startswith("cs_connected_")}
        for leftover in [n for n in names if n not in store.metadata.tables and n not in views]:  # a test's own,
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {leftover}")  # or a staging table
        written = _tables_with_rows(conn, [n for n in names if n in store.metadata.tables])
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(empty, written))
    with raw.connect() as conn:  # the readers' view without the connected datasets just dropped
        write_events_view(conn)
    raw.dispose()
    return store.make_engine(url)


def _tables_with_rows(conn, names: list[str]) -> list[str]:
    """Those of the tables ``names`` (the store's own, known names) that hold at least one row, in one statement."""
    if not names:
        return []
    probes = " UNION ALL ".join(f"(SELECT '{name}' AS name FROM {name} LIMIT 1)" for name in names)
    return [name for (name,) in conn.exec_driver_sql(probes)]


#: Why a schema-upgrade test does not run on Spark: no Spark store was ever written by an older cartsight, and
#: Spark's Parquet tables cannot drop a column to make one (nor add one IF NOT EXISTS, as the upgrades do).
NO_OLD_SPARK_STORES = "no older cartsight wrote a Spark store: there is no old Spark schema to upgrade"


def skip_on_spark(engine: sa.Engine, reason: str) -> None:
    """Skip the running test on a Spark store, saying why (a test of what Spark stores never have)."""
    if engine.dialect.name == "spark":
        pytest.skip(reason)


@pytest.fixture
def spark_engine(spark_store_url):
    """An empty Spark SQL store (skips without a Spark Thrift Server), for what only Spark does."""
    eng = _emptied_spark_engine(spark_store_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def duckdb_template(tmp_path_factory) -> Path:
    """An empty DuckDB store made once per test session: each test's DuckDB store starts as a copy of its file
    (creating the tables takes a good part of a second on two busy cores, copying the file milliseconds)."""
    path = tmp_path_factory.mktemp("empty-store") / "store.duckdb"
    store.make_engine(f"duckdb:///{path}").dispose()
    return path


def _copied_duckdb_engine(template: Path, folder: Path) -> sa.Engine:
    """An empty store in ``folder/store.duckdb``: a copy of ``template``, opened as the app opens a store."""
    shutil.copyfile(template, folder / "store.duckdb")
    return store.make_engine(f"duckdb:///{folder / 'store.duckdb'}")


@pytest.fixture(params=["duckdb", "postgres", pytest.param("spark", marks=pytest.mark.spark)])
def engine(request, tmp_path):
    """An empty store, once on a DuckDB file, once on PostgreSQL and once on Spark SQL."""
    if request.param == "duckdb":
        eng = _copied_duckdb_engine(request.getfixturevalue("duckdb_template"), tmp_path)
    elif request.param == "spark":
        eng = _emptied_spark_engine(request.getfixturevalue("spark_store_url"))
    else:
        eng = _fresh_pg_engine(request.getfixturevalue("pg_url"))
    yield eng
    eng.dispose()


@pytest.fixture
def duck_engine(tmp_path, duckdb_template):
    """An empty DuckDB store, for tests that need only the default engine."""
    eng = _copied_duckdb_engine(duckdb_template, tmp_path)
    yield eng
    eng.dispose()


#: The stores the app's pages are tested on (indirect parameters of ``app_store_url``).
STORE_KINDS = ("duckdb", "postgres")


@contextlib.contextmanager
def pg_schema_url(url: str) -> Iterator[str]:
    """A URL on a new, empty PostgreSQL schema of its own (the app under test connects with it).

    Unlike ``_fresh_pg_engine`` the schema is unique per call, so several stores of one test
    process never meet; the URL's ``application_name`` is the schema's name, so that at the
    end the connections an app left open (cached engines, worker threads) are ended before
    the schema is dropped.
    """
    schema = f"cs_page_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options=-csearch_path%3D{schema}&application_name={schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(
                sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = :name AND pid <> pg_backend_pid()"),
                {"name": schema},
            )
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def app_store_url(request, monkeypatch, tmp_path):
    """The store an app under test opens, named by ``CARTSIGHT_DB_URL``; yields its URL.

    DuckDB by default: ``isolated_store`` in ``tmp_path`` (working directory, HOME and
    CARTSIGHT_HOME there, every secrets.toml out of reach). With the indirect parameter
    ``"postgres"`` (see ``ON_BOTH_STORES``) the same, but the URL names a fresh schema on the
    test PostgreSQL server (skipped locally without one, a failure in CI).
    """
    from tests.e2e_support import isolated_store

    url = isolated_store(monkeypatch, tmp_path)
    kind = getattr(request, "param", "duckdb")
    if kind not in STORE_KINDS:
        raise ValueError(f"app_store_url: store kind {kind!r} is not one of {STORE_KINDS}")
    if kind == "duckdb":
        yield url
        return
    from core import config

    with pg_schema_url(request.getfixturevalue("pg_url")) as pg:
        monkeypatch.setenv(config.DB_URL_ENV, pg)
        yield pg


#: Run a test once on a DuckDB store and once on PostgreSQL (the test uses ``app_store_url``).
ON_BOTH_STORES = pytest.mark.parametrize("app_store_url", STORE_KINDS, indirect=True)


def make_dataset(engine: sa.Engine, name: str, rows: list[dict], layout: str = "test") -> int:
    """Insert ``rows`` (canonical event dicts) as a dataset without going through ingest."""
    with engine.begin() as conn, store.new_dataset(conn, name):
        did = store.next_dataset_id(conn)
        times = [r["event_time"] for r in rows]
        conn.execute(
            store.datasets.insert().values(
                dataset_id=did, name=name, layout=layout, source="fixture",
                created_at=dt.datetime(2024, 1, 1), rows_read=len(rows), rows_loaded=len(rows),
                rows_quarantined=0, n_users=len({r["user_id"] for r in rows}),
                first_event=min(times) if times else None, last_event=max(times) if times else None,
                mapping_json=json.dumps({}), report_json=json.dumps({}),
            )
        )
        cols = [c.name for c in store.events.columns if c.name not in ("dataset_id", "price_band")]
        if rows:
            conn.execute(store.stored_events.insert(), [{"dataset_id": did, **{c: r.get(c) for c in cols}} for r in rows])
        derived.derive_dataset(conn, did)  # as a load does
    return did


def make_schema_1(engine: sa.Engine) -> None:
    """Turn a store back into what cartsight with schema 1 left: no derived tables, no price-band column."""
    with engine.begin() as conn:
        for table in (store.session_days, store.price_edges):
            conn.exec_driver_sql(f"DROP TABLE {table.name}")
        conn.exec_driver_sql("DROP VIEW IF EXISTS cs_all_events")  # schema 12 made it
        conn.exec_driver_sql("ALTER TABLE cs_events DROP COLUMN price_band")
        conn.execute(sa.update(store.schema_info).values(version=1))


def simulated_events(n_users: int, weeks: int, seed: int):
    """The simulator's events for ``n_users`` shoppers over ``weeks`` weeks (``seed``) in the canonical columns, as
    a DataFrame of the caller's own: the campaign tests build several stores on the same 4,000 shoppers, and
    simulating them takes seconds, so each is simulated once per test session and copied for every caller."""
    return _simulated_events(n_users, weeks, seed).copy()


@functools.lru_cache(maxsize=2)  # two campaigns' shoppers at a time: each is some 40 MB
def _simulated_events(n_users: int, weeks: int, seed: int):
    from core.simulate import simulate
    from core.simulate.files import to_canonical

    return to_canonical(simulate(n_users, weeks=weeks, seed=seed).events)


def load_simulated_shop(engine: sa.Engine, name: str, n_users: int, weeks: int, seed: int):
    """Simulate shoppers and load them as dataset ``name`` by the store's bulk path; returns the Simulation.

    The simulator's REES46 rows in the canonical columns with an empty quantity, on any store
    (``store.bulk_insert``: DuckDB registered frame, PostgreSQL COPY, executemany elsewhere).
    """
    import pandas as pd

    from core.simulate import simulate
    from core.simulate.files import to_canonical

    sim = simulate(n_users, weeks=weeks, seed=seed)
    frame = to_canonical(sim.events).assign(quantity=pd.array([None] * len(sim.events), dtype="Int64"))
    make_dataset(engine, name, [])
    with engine.begin() as conn:
        # scalar_one reads the result to its end: DuckDB 2 refuses register() while a result has unread rows
        did = conn.execute(sa.select(store.datasets.c.dataset_id).where(store.datasets.c.name == name)).scalar_one()
        store.bulk_insert(conn, store.stored_events, frame.assign(dataset_id=did))
        derived.derive_dataset(conn, did)
        conn.execute(store.datasets.update().where(store.datasets.c.dataset_id == did).values(
            n_users=n_users, rows_loaded=len(frame), rows_read=len(frame),
            first_event=frame["event_time"].min().to_pydatetime(), last_event=frame["event_time"].max().to_pydatetime()))
    analyze_loaded(engine)  # as a load does after its commit
    return sim


def add_events(engine: sa.Engine, name: str, frame) -> None:
    """Insert canonical events (a DataFrame) into dataset ``name`` and refresh what a load derives, as a later file
    added to the dataset would: the derived tables (:mod:`core.store.derived`) and the dataset's counts and ends."""
    e = store.events.c
    with engine.begin() as conn:
        did = conn.execute(sa.select(store.datasets.c.dataset_id).where(store.datasets.c.name == name)).scalar_one()
        if "quantity" not in frame:
            frame = frame.assign(quantity=None)
        frame = frame.assign(quantity=frame["quantity"].astype("Int64"), dataset_id=did)
        store.bulk_insert(conn, store.stored_events, frame)
        derived.derive_dataset(conn, did)
        n, users, first, last = conn.execute(sa.select(
            sa.func.count(), sa.func.count(sa.distinct(e.user_id)), sa.func.min(e.event_time),
            sa.func.max(e.event_time)).where(e.dataset_id == did)).one()
        conn.execute(store.datasets.update().where(store.datasets.c.dataset_id == did).values(
            rows_read=n, rows_loaded=n, n_users=users, first_event=first, last_event=last))
    analyze_loaded(engine)  # as a load does after its commit


# named apart from pytest-playwright's ``browser``/``page`` fixtures, which would download their own browser;
# one Playwright per session: a second sync_playwright() inside the first one's event loop is refused
@pytest.fixture(scope="session")
def debian_chromium():
    """Debian's headless Chromium driven by Playwright (skips locally without it, fails in CI)."""
    from tests.e2e_support import CHROMIUM, launch_chromium

    if not CHROMIUM.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser tests: {CHROMIUM} is missing (apt-get install -y chromium)")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = launch_chromium(pw)
        yield chromium
        chromium.close()


@pytest.fixture
def shared_data() -> Path:
    """The real public data files in ../shared/data (read-only)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} not present")
    return SHARED_DATA


#: The Spark tests that run when a Spark server is set (CI): every Spark variant of the store tests is a few Spark
#: jobs of about a second each, tens of minutes in all; CARTSIGHT_TEST_SPARK_ALL=1 runs every one.
SPARK_TESTS = ROOT / ".ci" / "spark-tests.txt"


def pytest_collection_modifyitems(config, items):
    """With a Spark server set, keep of the tests marked ``spark`` those :data:`SPARK_TESTS` lists (a file, or one
    test by its id), unless ``CARTSIGHT_TEST_SPARK_ALL`` asks for all; without one they skip as they are."""
    if not os.environ.get(SPARK_ENV) or os.environ.get("CARTSIGHT_TEST_SPARK_ALL"):
        return
    lean = [line.strip() for line in SPARK_TESTS.read_text().splitlines() if line.strip() and not line.startswith("#")]

    def listed(node_id: str) -> bool:
        return any(node_id == entry or node_id.startswith(entry + "::") for entry in lean)

    dropped = [item for item in items if item.get_closest_marker("spark") and not listed(item.nodeid)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in set(dropped)]


def pytest_sessionfinish(session, exitstatus):
    """Drop the test schemas made on PostgreSQL; then leave with pytest's status once it is done, skipping
    interpreter finalisation.

    With torch and duckdb-engine both imported, finalisation makes DuckDB's nanobind bindings
    print dozens of "leaked instance" lines after pytest's summary (a third-party teardown
    quirk, not a leak of ours); they would bury the summary line CI reads.
    """
    import atexit
    import sys

    _drop_schemas_made()

    def _leave() -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(exitstatus))

    atexit.register(_leave)


def _drop_schemas_made() -> None:
    """Drop this process's test schemas, so a server used for development does not collect one per run."""
    for url, schema in sorted(_SCHEMAS_MADE):
        raw = sa.create_engine(url)
        try:
            with raw.begin() as conn:
                conn.execute(sa.text("SET LOCAL lock_timeout = '5s'"))  # a connection left in a transaction
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        except sa.exc.SQLAlchemyError as exc:  # a stopped server or a lock held: say so, go on
            print(f"test schema {schema} left on the server: {exc.__class__.__name__}")
        finally:
            raw.dispose()


@pytest.fixture
def download_content(monkeypatch):
    """A function giving the bytes behind an AppTest download button of the latest run.

    AppTest keeps a download's bytes in a media storage it makes per run; the storages and their
    managers made are recorded so that a test can read what the analyst would download. A button
    whose file is made when clicked (``data`` a callable) is clicked here: its callable runs as
    Streamlit runs it, through the run's media file manager.
    """
    from streamlit.runtime.media_file_manager import MediaFileManager
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
    from streamlit.testing.v1 import app_test as app_test_module

    storages: list[MemoryMediaFileStorage] = []
    managers: list[MediaFileManager] = []

    class RecordingStorage(MemoryMediaFileStorage):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            storages.append(self)

    class RecordingManager(MediaFileManager):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            managers.append(self)

    monkeypatch.setattr(app_test_module, "MemoryMediaFileStorage", RecordingStorage)
    monkeypatch.setattr(app_test_module, "MediaFileManager", RecordingManager)

    def content(button) -> bytes:
        url = button.proto.url
        if button.proto.deferred_file_id:
            assert not url, "a deferred download has no file until it is clicked"
            url = managers[-1].execute_deferred(button.proto.deferred_file_id)
        return storages[-1].get_file(url.rsplit("/", 1)[1]).content

    return content


def run_page(page: str, timeout_s: float, **state):
    """``page`` run once by Streamlit's ``AppTest`` with ``state`` in its session state; fails when it raised."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(page, default_timeout=timeout_s)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def plotly_charts(at) -> dict[str, dict]:
    """The Plotly figures a page drew, by their title up to its first colon."""
    out = {}
    for c in at.get("plotly_chart"):
        spec = json.loads(c.proto.spec)
        out[spec["layout"]["title"]["text"].split(":")[0]] = spec
    return out


def plotly_values(v) -> list:
    """A Plotly data array as a list (Plotly writes numeric arrays as base64 typed arrays)."""
    import base64

    import numpy as np

    if isinstance(v, dict) and "bdata" in v:
        arr = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        if "shape" in v:
            arr = arr.reshape([int(d) for d in str(v["shape"]).split(",")])
        return arr.tolist()
    return list(v)


def write_simulated_shop(folder: Path, n_users: int, weeks: int, seed: int, configs: dict[str, dict]) -> dict:
    """Simulated shoppers written as ``folder/events.csv`` and each model config of ``configs`` (name -> fields)
    as ``folder/<name>.json``, for the command line; returns the folder, the events file, the number of shoppers
    (``users``) and the path of each config by its name."""
    from core import simulate

    sim = simulate.simulate(n_users=n_users, weeks=weeks, seed=seed)
    events = folder / "events.csv"
    simulate.write_csv(sim, events)
    paths = {}
    for name, fields in configs.items():
        paths[name] = folder / f"{name}.json"
        paths[name].write_text(json.dumps(fields))
    return {"folder": folder, "events": events, "users": sim.events["user_id"].nunique(), **paths}
