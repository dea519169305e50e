import contextlib
import datetime as dt
import errno
import os
import subprocess
import sys
import time
import uuid

import pytest
import sqlalchemy as sa

from core import config, store
from core.errors import DatasetExistsError, DatasetNotFoundError, StoreUnavailableError
from tests.conftest import ROOT, make_dataset, make_schema_1

T0 = dt.datetime(2024, 3, 1, 12, 0)


def test_schema_created_and_versioned(engine):
    with engine.connect() as conn:
        assert conn.execute(sa.select(store.schema_info.c.version)).scalars().all() == [config.SCHEMA_VERSION]
    store.ensure_schema(engine)  # second call is a no-op
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(store.schema_info)).scalar() == 1


def test_newer_schema_is_refused(engine):
    with engine.begin() as conn:
        conn.execute(sa.update(store.schema_info).values(version=config.SCHEMA_VERSION + 1))
    with pytest.raises(StoreUnavailableError, match="newer cartsight"):
        store.ensure_schema(engine)


def test_dataset_round_trip_and_drop(engine):
    rows = [
        {"user_id": "u1", "event_time": T0, "event_type": "view", "item_id": "i1", "price": 9.5},
        {"user_id": "u2", "event_time": T0 + dt.timedelta(hours=1), "event_type": "purchase", "item_id": "i1"},
    ]
    did = make_dataset(engine, "shop; DROP TABLE cs_events;--", rows)
    ds = store.get_dataset(engine, "shop; DROP TABLE cs_events;--")
    assert ds["dataset_id"] == did and ds["n_users"] == 2 and ds["last_event"] == T0 + dt.timedelta(hours=1)
    with engine.begin() as conn:
        with pytest.raises(DatasetExistsError, match="exists already"):
            store.check_name_free(conn, "shop; DROP TABLE cs_events;--")
    assert store.drop_dataset(engine, "shop; DROP TABLE cs_events;--") == did
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(store.events)).scalar() == 0
    with pytest.raises(DatasetNotFoundError, match="No dataset named 'shop"):
        store.get_dataset(engine, "shop; DROP TABLE cs_events;--")


def test_url_resolution_order(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CARTSIGHT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(config.DB_URL_ENV, raising=False)
    assert store.resolve_url() == f"duckdb:///{tmp_path / 'home' / 'cartsight.duckdb'}"
    monkeypatch.setenv(config.DB_URL_ENV, "duckdb:///env.duckdb")
    assert store.resolve_url() == "duckdb:///env.duckdb"
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text('[connections.cartsight]\nurl = "duckdb:///secret.duckdb"\n')
    assert store.resolve_url() == "duckdb:///secret.duckdb"
    assert store.resolve_url("duckdb:///explicit.duckdb") == "duckdb:///explicit.duckdb"


def test_unwritable_data_folder_gives_clear_message(tmp_path):
    # a regular file where the folder should be: unwritable even for root, unlike chmod
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    with pytest.raises(StoreUnavailableError, match="Cannot open the database"):
        store.make_engine(f"duckdb:///{blocker / 'sub' / 'x.duckdb'}")


def test_unreachable_postgres_gives_clear_message():
    with pytest.raises(StoreUnavailableError, match="Cannot open the database at postgresql"):
        store.make_engine("postgresql+psycopg://nobody:secret@127.0.0.1:1/none")


# --- a DuckDB file another process holds ---------------------------------------------------------------------

#: A second process that opens the store (argv[1]) the way every cartsight process does, then waits.
HOLD_STORE = ("import sys\nfrom core import store\nstore.make_engine(sys.argv[1])\nprint('held', flush=True)\n"
              "sys.stdin.read()")
HOLD_WAIT_S = 120


@contextlib.contextmanager
def second_process(argv: list[str], tmp_path):
    """A second process of our own, ended (by its id) when the test leaves."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CARTSIGHT_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        proc.kill()
        proc.communicate()


def _refusal(url: str) -> str:
    with pytest.raises(StoreUnavailableError) as err:
        store.make_engine(url)
    return str(err.value)


def test_a_store_the_app_holds_names_the_app_and_what_to_do(tmp_path):
    """The holder runs with the app's command line (``… streamlit run app.py``); the CLI says the same."""
    from core import cli

    url = f"duckdb:///{tmp_path / 'store.duckdb'}"
    with second_process([sys.executable, "-c", HOLD_STORE, url, "streamlit", "run", "app.py"], tmp_path) as holder:
        assert holder.stdout.readline() == "held\n", holder.stderr.read()
        message = _refusal(url)
        code = cli.main(["datasets", "--db", url])
    assert message == (f"Cannot open the database at {url}: the app (PID {holder.pid}) has this store open: stop it, "
                       "or use a PostgreSQL store, which many processes can use at once (a DuckDB file, here "
                       f"{tmp_path / 'store.duckdb'}, takes one process at a time).")
    assert code == cli.EXIT_USER_ERROR
    assert store.make_engine(url).dialect.name == "duckdb"  # once the app has stopped, the store opens


def wait_until_reading(fifo, proc) -> int:
    """Open ``fifo`` for writing once ``proc`` reads it (it then holds the store it opened first); the fd."""
    deadline = time.monotonic() + HOLD_WAIT_S
    while time.monotonic() < deadline:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO or proc.poll() is not None:
                raise AssertionError(f"the holder did not reach its input: {proc.communicate()}") from exc
        time.sleep(0.2)
    raise AssertionError(f"the holder did not open its input within {HOLD_WAIT_S} s")


@contextlib.contextmanager
def ingest_holding_the_store(url: str, tmp_path):
    """A real ``cartsight ingest`` of a named pipe into the store at ``url``, holding the store while it waits for
    its input throughout the block; yields its process."""
    fifo = tmp_path / "events.csv"
    os.mkfifo(fifo)
    argv = [sys.executable, "-m", "core.cli", "ingest", str(fifo), "--name", "held", "--db", url, "--quiet"]
    with second_process(argv, tmp_path) as holder:
        fd = wait_until_reading(fifo, holder)
        try:
            yield holder
        finally:
            os.close(fd)


def test_a_store_a_cartsight_command_holds_names_the_command(tmp_path, capsys):
    """A real ``cartsight ingest`` holds the store while it waits for its input (a named pipe)."""
    from core import cli

    url = f"duckdb:///{tmp_path / 'store.duckdb'}"
    with ingest_holding_the_store(url, tmp_path) as holder:
        code = cli.main(["segment", "--dataset", "held", "--db", url, "--out", str(tmp_path / "seg.csv")])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR and err.count("\n") == 1
    assert err.startswith(f"cartsight: Cannot open the database at {url}: a `cartsight ingest` command (PID "
                          f"{holder.pid}) has this store open: stop it, or use a PostgreSQL store")
    assert "database server is running" not in err


def test_a_lock_refusal_without_a_pid_still_says_what_to_do():
    exc = sa.exc.OperationalError("SELECT 1", {}, Exception(
        'IO Error: Could not set lock on file "/data/cartsight.duckdb": Resource temporarily unavailable'))
    assert str(store.describe_failure(exc, "duckdb:////data/cartsight.duckdb")) == (
        "Another process has this store open: stop it, or use a PostgreSQL store, which many processes can use at "
        "once (a DuckDB file, here /data/cartsight.duckdb, takes one process at a time).")
    other = store.describe_failure(sa.exc.OperationalError("SELECT 1", {}, Exception("server closed")), "duckdb:///x")
    assert "has this store open" not in str(other) and "cannot be reached" in str(other)


@pytest.mark.parametrize("cmdline, role", [
    ([".venv/bin/python", ".venv/bin/streamlit", "run", "app.py"], "the app"),
    (["python", "-m", "streamlit", "run", "app.py", "--server.port", "8502"], "the app"),
    (["/usr/bin/python3", "/home/a/.venv/bin/cartsight", "score", "--dataset", "x"], "a `cartsight score` command"),
    (["python", "-m", "core.cli", "segment"], "a `cartsight segment` command"),
    (["python3.11", "notebook.py"], "another program (python3.11 notebook.py)"),
    (["python3.11", "-m", "jupyter", "lab"], "another program (python3.11 -m jupyter)"),
    (["python3.11", "-c", "import duckdb"], "another program (python3.11)"),
    (["/usr/bin/duckdb", "store.duckdb"], "another program (duckdb)"),
    ([], "another program (python3.11)"),  # no command line to read: the program DuckDB named
])
def test_command_role_names_the_holder(cmdline, role):
    assert store.command_role(cmdline, "/usr/bin/python3.11") == role


def test_bulk_insert_writes_rows_and_nulls_on_both_engines(engine):
    import pandas as pd

    frame = pd.DataFrame({
        "export_id": [7, 7, 7], "dataset_id": [1, 1, 1], "user_id": ["a", "b'; DROP TABLE x;--", "c"],
        "group_name": ["target", "holdout", "target"],
        "propensity_decile": pd.array([1, pd.NA, 10], dtype="Int64"),
        "not_a_column": [0, 0, 0],  # ignored: only the table's columns are written
    })
    with engine.begin() as conn:
        assert store.bulk_insert(conn, store.export_members, frame) == 3
        assert store.bulk_insert(conn, store.export_members, frame.iloc[:0]) == 0
    with engine.connect() as conn:
        rows = conn.execute(sa.select(store.export_members.c.user_id, store.export_members.c.propensity_decile)
                            .order_by(store.export_members.c.user_id)).all()
    assert [tuple(r) for r in rows] == [("a", 1), ("b'; DROP TABLE x;--", None), ("c", 10)]


# --- PostgreSQL as a team runs it ------------------------------------------------------------------------


def _event_indexes(engine) -> dict[str, list[str] | str]:
    if engine.dialect.name == "duckdb":  # duckdb-engine does not reflect indexes: ask DuckDB itself
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT index_name, sql FROM duckdb_indexes() WHERE table_name = 'cs_events'"))
            return {name: sql for name, sql in rows}
    return {ix["name"]: ix["column_names"] for ix in sa.inspect(engine).get_indexes("cs_events")}


def test_postgres_gets_the_per_shopper_index_and_duckdb_none(engine):
    indexes = _event_indexes(engine)
    if engine.dialect.name == "postgresql":
        assert indexes == {"cs_events_dataset_user": ["dataset_id", "user_id", "event_time"]}
    else:
        assert indexes == {}  # DuckDB's zone maps serve its scans; an index would slow bulk loads
    store.ensure_schema(engine)  # opening again adds nothing
    assert _event_indexes(engine) == indexes


@contextlib.contextmanager
def _app_role(admin_url: str, schema_url: str, schema: str, privileges: list[str]):
    """A login role with only ``privileges`` (GRANT statements' ``... TO`` part left out) on ``schema``; yields its URL."""
    role = f"cs_app_{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    admin = sa.create_engine(admin_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'"))
        for grant in privileges:
            conn.execute(sa.text(f'GRANT {grant.format(schema=schema)} TO {role}'))
    url = sa.engine.make_url(schema_url).set(drivername="postgresql", username=role, password=password)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :r"), {"r": role})
            conn.execute(sa.text(f"DROP OWNED BY {role}"))
            conn.execute(sa.text(f"DROP ROLE {role}"))
        admin.dispose()


READ_WRITE = [
    'USAGE ON SCHEMA "{schema}"',
    'SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{schema}"',
    'USAGE ON ALL SEQUENCES IN SCHEMA "{schema}"',
]


def test_postgres_store_opens_for_a_role_that_only_reads_and_writes(pg_url, tmp_path):
    """A team's DBA creates the tables once (cartsight's first start, as the owner); the app's own role then
    needs only to read and write them and draw ids from their sequences, as the README says."""
    from core.ingest.load import ingest_file
    from tests.conftest import pg_schema_url

    with pg_schema_url(pg_url) as owner_url:
        schema = sa.engine.make_url(owner_url).query["application_name"]
        store.make_engine(owner_url).dispose()  # first start: tables, sequences, index
        with _app_role(pg_url, owner_url, schema, READ_WRITE) as app_url:
            assert app_url.startswith("postgresql://")  # the plain form a team pastes is accepted
            engine = store.make_engine(app_url)
            try:
                data = tmp_path / "events.csv"
                data.write_text("user_id,event_time,event_type,item_id,price\n"
                                "u1,2024-03-01 10:00:00,view,A,9.50\nu1,2024-03-01 10:05:00,purchase,A,9.50\n"
                                "u2,2024-03-01 11:00:00,view,B,-1\n")
                report = ingest_file(engine, data, "team data")  # COPY needs only INSERT
                assert (report.rows_loaded, report.rows_quarantined) == (2, 1)
                with engine.begin() as conn:
                    assert store.bulk_insert(conn, store.export_members, _members()) == 2
                assert store.drop_dataset(engine, "team data") == report.dataset_id
                assert store.list_datasets(engine) == []
            finally:
                engine.dispose()


def test_postgres_schema_1_store_is_upgraded_by_its_owner_not_by_the_app_role(pg_url):
    from core.analysis import queries

    from tests.conftest import pg_schema_url

    with pg_schema_url(pg_url) as owner_url:
        schema = sa.engine.make_url(owner_url).query["application_name"]
        owner = store.make_engine(owner_url)
        did = make_dataset(owner, "before upgrade", [
            {"user_id": "u1", "event_time": T0, "event_type": "view", "item_id": "A", "price": 9.5},
            {"user_id": "u1", "event_time": T0 + dt.timedelta(minutes=5), "event_type": "purchase", "item_id": "A",
             "price": 9.5, "session_id": "s1"}])
        make_schema_1(owner)
        owner.dispose()
        with _app_role(pg_url, owner_url, schema, READ_WRITE) as app_url:
            with pytest.raises(StoreUnavailableError, match=f"needs schema {config.SCHEMA_VERSION}: this role could not "
                                                            "upgrade it.*Open it once as the role that owns the tables"):
                store.make_engine(app_url)
            owner = store.make_engine(owner_url)  # the owner's start upgrades it
            owner.dispose()
            role = sa.engine.make_url(app_url).username
            admin = sa.create_engine(pg_url)
            with admin.begin() as conn:  # the README's grants again: the upgrade added tables
                for grant in READ_WRITE:
                    conn.execute(sa.text(f"GRANT {grant.format(schema=schema)} TO {role}"))
            admin.dispose()
            engine = store.make_engine(app_url)
            try:
                kpi = queries.kpis(engine, did)
                assert (kpi["events"], kpi["sessions"], kpi["orders"], kpi["revenue"]) == (2, 2, 1, 9.5)
            finally:
                engine.dispose()


def test_postgres_first_start_needs_create_on_the_schema(pg_url):
    from tests.conftest import pg_schema_url

    with pg_schema_url(pg_url) as owner_url:
        schema = sa.engine.make_url(owner_url).query["application_name"]
        with _app_role(pg_url, owner_url, schema, ['USAGE ON SCHEMA "{schema}"']) as app_url:
            with pytest.raises(StoreUnavailableError, match="permission denied for schema"):
                store.make_engine(app_url)


def _members():
    import pandas as pd

    return pd.DataFrame({"export_id": [1, 1], "dataset_id": [1, 1], "user_id": ["a", "b"],
                         "group_name": ["target", "holdout"], "propensity_decile": pd.array([3, pd.NA], dtype="Int64")})


def test_postgres_tables_get_planner_statistics_after_a_load(engine, tmp_path):
    """A new dataset's rows are counted for PostgreSQL's planner once the load commits (no stale plans)."""
    from core.ingest.load import ingest_file

    data = tmp_path / "events.csv"
    data.write_text("user_id,event_time,event_type,item_id,price\n"
                    + "".join(f"u{i},2024-03-01 10:{i:02d}:00,view,A{i},9.50\n" for i in range(40)))
    report = ingest_file(engine, data, "counted")
    if engine.dialect.name != "postgresql":
        store.analyze(engine, store.events)  # nothing to do on DuckDB, and no error
        return
    with engine.connect() as conn:
        estimate = conn.execute(sa.text("SELECT reltuples FROM pg_class WHERE oid = 'cs_events'::regclass")).scalar()
        rows = conn.execute(sa.select(sa.func.count()).select_from(store.events)).scalar()
    assert report.rows_loaded == 40 and estimate == rows >= 40  # -1 (never counted) before


def test_the_free_space_a_duckdb_store_needs_is_set_in_core_config(tmp_path, monkeypatch):
    """The start-up check reads its threshold from core.config, the one home of the store's limits."""
    monkeypatch.setattr(config, "STORE_MIN_FREE_BYTES", 10**18)
    with pytest.raises(StoreUnavailableError) as err:
        store.make_engine(f"duckdb:///{tmp_path / 'home' / 'x.duckdb'}")
    assert f"The disk holding {tmp_path / 'home'} is full: " in str(err.value)
    assert "(cartsight needs at least 1,000,000,000,000,000,000 bytes free to open its database)" in str(err.value)
    assert config.STORE_MIN_FREE_BYTES == 10**18 and not hasattr(store, "CHECKS")
