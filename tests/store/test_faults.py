"""Faults: a process killed mid-ingest or mid-training, the database stopped, a read-only or full disk.

The kills are real: ``python -m core.cli`` runs in a subprocess and gets SIGKILL once its progress
lines show it is half way; the store is then opened again the way the app opens it.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from core import cli, config, store
from core.errors import StoreUnavailableError
from core.store import housekeeping
from tests import fault_support as fs
from tests.conftest import emptied_pg_schema_url, write_simulated_shop
from tests.store.test_summaries import summary_rows

ROOT = Path(__file__).resolve().parents[2]
#: a model that trains in seconds (the previous version, and the run killed while publishing); a ``--config`` file
#: holds model and run settings (``chunk_users``, ``torch_threads``) together
TINY = dict(max_len=10, hidden_size=8, n_layers=1, n_heads=1, epochs=1, min_train_steps=5, batch_size=64,
            max_train_examples=1000, chunk_users=100, torch_threads=1, n_train_cutoffs=1, item_vocab_cap=200,
            refit_on_latest=False)
#: the same, fitting far longer than the test waits: the run killed mid-fit is surely still fitting
LONG = {**TINY, "epochs": 1000, "min_train_steps": 1_000_000, "patience": 1000}
IS_ROOT = os.geteuid() == 0


def orphan_rows(engine: sa.Engine) -> dict[str, int]:
    """Rows of each table whose dataset (or model version) does not exist: all must be 0."""
    ds = sa.select(store.datasets.c.dataset_id)
    out = {}
    with engine.connect() as conn:
        for table in (store.events, store.quarantine, store.session_days, store.price_edges, store.shoppers,
                      *store.shopper_values.values(), store.value_totals, store.type_days, store.price_counts, store.predictions, store.models):
            out[table.name] = conn.execute(
                sa.select(sa.func.count()).select_from(table).where(table.c.dataset_id.not_in(ds))).scalar_one()
        p = store.predictions
        out["cs_predictions (no model row)"] = conn.execute(sa.select(sa.func.count()).select_from(p).where(
            p.c.model_version.not_in(sa.select(store.models.c.model_version)))).scalar_one()
    return out


def count(engine: sa.Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


@pytest.fixture
def home(tmp_path, monkeypatch):
    folder = tmp_path / "home"
    monkeypatch.setenv(config.HOME_ENV, str(folder))
    monkeypatch.delenv(config.DB_URL_ENV, raising=False)
    return folder


# --- 1. killed mid-ingest ------------------------------------------------------------------------------------


def _store_and_a_big_file(backend: str, home, tmp_path, request):
    """``(url, the CLI's --db arguments, small.csv, big.csv, engine)``: a store of the backend and two event files, small.csv
    (2,000 rows) and big.csv (400,000 rows, long enough to be killed while it loads)."""
    if backend == "duckdb":
        url, db_args = f"duckdb:///{home / 'cartsight.duckdb'}", []  # the CLI finds it through CARTSIGHT_HOME
    else:
        url = emptied_pg_schema_url(request.getfixturevalue("pg_url"), "cs_faults")
        db_args = ["--db", url]
    small = fs.write_events_csv(tmp_path / "small.csv", 2_000, n_users=100)
    big = fs.write_events_csv(tmp_path / "big.csv", 400_000)
    return url, db_args, small, big, store.make_engine(url)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["duckdb", "postgres"])
def test_ingest_killed_midway_leaves_no_half_dataset(backend, home, tmp_path, request):
    from core.ingest.load import ingest_file

    url, db_args, small, big, engine = _store_and_a_big_file(backend, home, tmp_path, request)
    before = ingest_file(engine, small, "before")
    engine.dispose()  # DuckDB: one writing process per file; the CLI must be able to open it

    lines = fs.kill_cli_at(home, ["ingest", big, "--name", "big", *db_args], lambda l: "loading events" in l)
    assert not any("done" in l for l in lines)  # killed before the commit

    engine = store.make_engine(url)  # the restart: DuckDB replays its log, PostgreSQL rolled back
    try:
        assert [d["name"] for d in store.list_datasets(engine)] == ["before"]
        assert count(engine, store.events) == before.rows_loaded == 2_000
        assert orphan_rows(engine) == dict.fromkeys(orphan_rows(engine), 0)
        # nothing holds the name or a lock: the same name loads now
        again = ingest_file(engine, small, "big")
        assert again.rows_loaded == 2_000
        assert sorted(d["name"] for d in store.list_datasets(engine)) == ["before", "big"]
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["duckdb", "postgres"])
def test_append_killed_midway_leaves_the_dataset_as_it_was(backend, home, tmp_path, request):
    from core.ingest.load import ingest_file

    url, db_args, small, big, engine = _store_and_a_big_file(backend, home, tmp_path, request)
    before = ingest_file(engine, small, "shop")
    dataset = store.get_dataset(engine, "shop")
    summaries_before = summary_rows(engine, before.dataset_id)
    engine.dispose()

    lines = fs.kill_cli_at(home, ["ingest", big, "--name", "shop", "--append", *db_args],
                           lambda l: "loading events" in l)
    assert not any("done" in l for l in lines)

    engine = store.make_engine(url)
    try:
        assert store.get_dataset(engine, "shop") == dataset
        assert count(engine, store.events) == before.rows_loaded == 2_000
        assert summary_rows(engine, before.dataset_id) == summaries_before and summaries_before["cs_shoppers"]
        assert [f["file_no"] for f in store.dataset_file_history(engine, before.dataset_id)] == [1]
        assert orphan_rows(engine) == dict.fromkeys(orphan_rows(engine), 0)
        again = ingest_file(engine, small, "shop", append=True)  # nothing holds the dataset: it appends now
        assert (again.file_no, again.rows_loaded, again.repeated_events) == (2, 0, 2_000)
    finally:
        engine.dispose()


# --- 2. killed mid-training, and between writing the model folder and publishing it ------------------------


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    files = write_simulated_shop(tmp_path_factory.mktemp("faults-shop"), 80, 4, 5, {"tiny": TINY, "long": LONG})
    return {**files, "config": files["tiny"]}


# a CLI run that is SIGKILLed right after the model folder is in place and its cs_models row is inserted,
# before the transaction commits: the worst moment for a half model
KILL_AT_PUBLISH = """
import os, signal, sys
from core import cli
from core.model import registry
real = registry.insert_model_row
def insert_then_die(conn, version, *args, **kwargs):
    real(conn, version, *args, **kwargs)
    print(f"published-uncommitted {version}", file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
registry.insert_model_row = insert_then_die
sys.exit(cli.main(sys.argv[1:]))
"""


def _model_entries(home: Path) -> list[str]:
    root = home / "models"
    return sorted(str(p.relative_to(root)) for d in root.iterdir() for p in d.iterdir()) if root.is_dir() else []


@pytest.mark.slow
def test_training_killed_midway_or_while_publishing_keeps_the_previous_model(home, shop):
    import torch

    from core.model import forecast
    from core.ingest.load import ingest_file
    from core.model.config import split_config

    torch.set_num_threads(1)
    url = f"duckdb:///{home / 'cartsight.duckdb'}"
    engine = store.make_engine(url)
    ingest_file(engine, shop["events"], "shop")
    tiny_config, tiny_settings = split_config(TINY)  # the --config file's dict, model and run settings apart
    first = forecast.train(engine, "shop", config=tiny_config, settings=tiny_settings)
    n_predictions = count(engine, store.predictions)
    assert n_predictions == len(forecast.load_predictions(engine, "shop")) > 0
    entries = _model_entries(home)
    engine.dispose()
    did = first.dataset_id
    assert entries == [f"{did}/{first.model_version}", f"{did}/{first.model_version}.owner.json"]

    # (a) killed while fitting: its progress shows a training loss
    lines = fs.kill_cli_at(home, ["train", "--dataset", "shop", "--config", shop["long"]],
                           lambda l: "training:" in l and "loss" in l)
    assert any("loss" in l for l in lines)

    # (b) killed after the folder is written and the row inserted, before the commit
    proc = subprocess.run([sys.executable, "-c", KILL_AT_PUBLISH, "train", "--dataset", "shop",
                           "--config", str(shop["config"])], cwd=ROOT, env=fs.cli_env(home),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    killed = proc.stderr.split("published-uncommitted ")[1].split()[0]
    assert killed != first.model_version
    assert (home / "models" / str(did) / killed / "model.safetensors").is_file()  # a complete, unpublished folder

    # readers ignore it even before any cleanup (a plain engine, no start-up work)
    raw = sa.create_engine(url)
    assert forecast.latest_model(raw, "shop").model_version == first.model_version
    raw.dispose()

    engine = store.make_engine(url)  # the restart: cleans what the dead processes left
    try:
        assert forecast.latest_model(engine, "shop").model_version == first.model_version
        assert [c.model_version for c in forecast.list_models(engine, "shop")] == [first.model_version]
        served = forecast.load_predictions(engine, "shop")
        assert set(served["model_version"]) == {first.model_version} and len(served) == n_predictions
        assert count(engine, store.predictions) == n_predictions
        assert count(engine, store.models) == 1
        assert orphan_rows(engine) == dict.fromkeys(orphan_rows(engine), 0)
        assert _model_entries(home) == entries  # the unpublished folder and its note are gone, no .partial left
        assert [d["name"] for d in store.list_datasets(engine)] == ["shop"]
    finally:
        engine.dispose()


def test_cleanup_keeps_folders_of_live_writers_and_of_other_stores(home, tmp_path):
    """The start-up cleanup removes only what a dead process left for this store."""
    from core.model import registry

    engine = store.make_engine(f"duckdb:///{tmp_path / 'a.duckdb'}")
    folder = registry.version_dir(1, registry.new_version(1))
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"x")
    note = Path(f"{folder}{store.OWNER_SUFFIX}")

    note.write_text(json.dumps({"owner": store.process_owner()}))  # this (live) process may be publishing it
    assert store.cleanup_stale_files(engine) == [] and folder.is_dir()

    dead = f"{housekeeping._host()}_999999999_00000000"  # no lock file: a dead process on this host
    note.write_text(json.dumps({"owner": dead, "store": "duckdb:another store"}))
    assert store.cleanup_stale_files(engine) == [] and folder.is_dir()  # another store's: not ours to judge

    partial = folder.with_name(f"{folder.name}{store.PARTIAL_MARK}{dead}")
    partial.mkdir()
    with engine.connect() as conn:
        note.write_text(json.dumps({"owner": dead, "store": store.store_tag(conn)}))
    assert sorted(store.cleanup_stale_files(engine)) == sorted([partial, folder, note])
    assert not folder.exists() and not partial.exists() and not note.exists()

    tmp_dir = Path(tempfile.mkdtemp(prefix=f"{store.TEMP_PREFIX}ingest-{dead}-"))
    live_dir = Path(tempfile.mkdtemp(prefix=store.temp_prefix("ingest")))
    try:
        removed = store.cleanup_stale_files(engine)
        assert tmp_dir in removed and not tmp_dir.exists() and live_dir.is_dir()
    finally:
        for d in (tmp_dir, live_dir):
            if d.exists():
                d.rmdir()
    engine.dispose()


# --- 3. the database stopped, then back --------------------------------------------------------------------


PAGES = ["data", "overview", "forecasts", "segments", "preferences", "shopper", "campaigns"]


@pytest.fixture(scope="module")
def cluster():
    c = fs.private_cluster_or_skip()
    yield c
    c.destroy()


def st_cache_clear() -> None:
    import streamlit as st

    st.cache_data.clear()


def _errors(at) -> list[str]:
    return [e.value for e in at.error]


@pytest.mark.slow
def test_pages_say_which_database_is_down_and_recover_without_restart(cluster, home, monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    from core.analysis import queries
    from core.ingest.load import ingest_file

    url = cluster.url()
    engine = store.make_engine(url)
    ingest_file(engine, fs.write_events_csv(tmp_path / "e.csv", 3_000, n_users=200), "shop")
    engine.dispose()
    monkeypatch.setenv(config.DB_URL_ENV, url)
    masked = f"postgresql+psycopg://{cluster.user}:***@127.0.0.1:{cluster.port}/postgres"

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception and not _errors(at)
    assert at.session_state["dataset"] == "shop"

    # mid-page: the server stops while the Overview page is running its queries
    real_kpis = queries.kpis

    def stop_then_query(*args, **kwargs):
        cluster.stop()
        return real_kpis(*args, **kwargs)

    monkeypatch.setattr(queries, "kpis", stop_then_query)
    st_cache_clear()  # the landing run cached the Overview's results: make it query again
    at.switch_page("pages/overview.py").run()
    monkeypatch.setattr(queries, "kpis", real_kpis)
    assert not at.exception
    [message] = _errors(at)
    assert f"The database at {masked} cannot be reached" in message
    assert "server is running" in message and cluster.password not in message

    for page in PAGES:  # every page, while it stays down
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, (page, at.exception)
        messages = _errors(at)
        assert len(messages) == 1 and masked in messages[0], (page, messages)
        assert "server is running" in messages[0] and cluster.password not in messages[0]

    # the command line says the same, in one line, exit code 2
    _assert_clear(fs.run_cli(home, "datasets", "--db", url), f"Cannot open the database at {masked}",
                  "server is running")

    cluster.start()  # back: the next run works, in the same server process
    at.switch_page("pages/overview.py").run()
    assert not at.exception and not _errors(at)
    assert at.session_state["dataset"] == "shop"
    assert len(at.metric) > 0 and any(m.value.replace(",", "") == "3000" for m in at.metric), \
        [(m.label, m.value) for m in at.metric]


# --- 4. read-only or full data folder at start ------------------------------------------------------------


@contextlib.contextmanager
def read_only_folder(tmp_path: Path):
    """A folder this process cannot write: chmod 555, or (root ignores modes) a read-only bind mount."""
    folder = tmp_path / "ro-home"
    folder.mkdir()
    if not IS_ROOT:
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
        return
    done = subprocess.run(["mount", "--bind", "-o", "ro", str(folder), str(folder)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"running as root and cannot bind-mount read-only: {done.stderr.strip()}")
    try:
        probe = folder / "probe"
        with pytest.raises(OSError):
            probe.write_text("x")  # really read-only
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@contextlib.contextmanager
def full_disk(tmp_path: Path, size: str = "1m"):
    """A tmpfs of ``size`` (root only); yields its mount point."""
    folder = tmp_path / "small-disk"
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def _assert_clear(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == cli.EXIT_USER_ERROR, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("cartsight: ")
    for needle in needles:
        assert needle in line, (needle, line)
    return line


def test_read_only_data_folder_is_a_clear_message_in_cli_and_app(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    with read_only_folder(tmp_path) as ro:
        line = _assert_clear(fs.run_cli(ro, "datasets"), f"The data folder {ro} is read-only",
                             "CARTSIGHT_HOME")
        assert "Read-only file system" in line or "Permission denied" in line

        monkeypatch.setenv(config.HOME_ENV, str(ro))
        monkeypatch.delenv(config.DB_URL_ENV, raising=False)
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
        assert not at.exception
        [message] = _errors(at)
        assert f"The data folder {ro} is read-only" in message and "CARTSIGHT_HOME" in message


def test_a_file_where_the_data_folder_should_be_is_a_clear_message(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    _assert_clear(fs.run_cli(blocker, "datasets"), f"The data folder {blocker} is not a folder")


def test_full_disk_at_start_is_a_clear_message(tmp_path, monkeypatch):
    if IS_ROOT:
        with full_disk(tmp_path) as disk:
            home = disk / "home"
            line = _assert_clear(fs.run_cli(home, "datasets"), f"The disk holding {home} is full: ")
            free = int(line.split("is full: ")[1].split(" bytes free")[0].replace(",", ""))
            assert 0 <= free <= 1024 * 1024
    else:  # no tmpfs without root: the write boundary reports ENOSPC
        def no_space(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(tempfile, "mkstemp", no_space)
        with pytest.raises(StoreUnavailableError, match=r"The disk holding .* is full: [\d,]+ bytes free"):
            store.make_engine(f"duckdb:///{tmp_path / 'home' / 'x.duckdb'}")


def test_disk_filling_up_during_a_load_is_a_clear_message(tmp_path, monkeypatch, capsys):
    """Past the start-up check, the disk fills while DuckDB writes the events: the CLI says so, no traceback."""
    if not IS_ROOT:
        pytest.skip("needs a small tmpfs (root); the start-up case covers ENOSPC mapping without root")
    big = fs.write_events_csv(tmp_path / "big.csv", 400_000)
    monkeypatch.setattr(config, "STORE_MIN_FREE_BYTES", 512 * 1024)
    with full_disk(tmp_path, size="2m") as disk:
        monkeypatch.setenv(config.HOME_ENV, str(disk / "home"))
        monkeypatch.delenv(config.DB_URL_ENV, raising=False)
        code = cli.main(["ingest", str(big), "--name", "big"])
        err = capsys.readouterr().err
        assert code == cli.EXIT_USER_ERROR, err
        assert "loading events" in err  # it failed while writing, past the start-up check
        assert f"The disk holding {disk / 'home'} is full: " in err and " bytes free" in err
        assert "Traceback" not in err


class _Driver(Exception):
    """Stands for a driver's exception class of the given name."""


def _driver_error(name: str, message: str) -> Exception:
    return type(name, (_Driver,), {})(message)


@pytest.mark.parametrize("exc, url, expected", [
    (OSError(errno.ENOSPC, "No space left on device", "/nonexistent/home/models/1/x"), "postgresql://u:pw@h/db",
     r"^The disk holding /nonexistent/home/models/1 is full: [\d,]+ bytes free\."),
    (OSError(errno.EROFS, "Read-only file system", "/nonexistent/ro"), "duckdb:////nonexistent/ro/c.duckdb",
     r"^The data folder /nonexistent is read-only \(Read-only file system\)"),
    (_driver_error("DiskFull", 'could not extend file "base/16384/2619": No space left on device'),
     "postgresql+psycopg://u:pw@db.example.com/shop",
     r"^The database at postgresql\+psycopg://u:\*\*\*@db.example.com/shop is out of disk space"),
    (_driver_error("OperationalError", "server closed the connection unexpectedly\nmore"),
     "postgresql+psycopg://u:pw@db.example.com/shop",
     r"^The database at postgresql\+psycopg://u:\*\*\*@db.example.com/shop cannot be reached: "
     r"server closed the connection unexpectedly\. Check"),
    (_driver_error("InsufficientPrivilege", "permission denied for schema public"), "postgresql://u:pw@h/db", None),
    (ValueError("a bug"), "duckdb:////tmp/x.duckdb", None),
])
def test_store_faults_are_told_apart_from_other_errors(exc, url, expected):
    known = store.describe_failure(exc, url)
    if expected is None:
        assert known is None
    else:
        assert known is not None and re.search(expected, str(known)), str(known)
        assert "pw" not in str(known)
