"""AppTest of app.py: routing, the bundled sample on first start, the landing page, a store that cannot open.

The first start (sample load) runs on PostgreSQL as well; the other tests repeat that load on DuckDB only.
"""
from __future__ import annotations

import datetime as dt
import gzip

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core import config, store
from tests.conftest import ON_BOTH_STORES, make_dataset
from tests.e2e_support import APPTEST_TIMEOUT_S, ROOT, isolated_store

APP = str(ROOT / "app.py")


@pytest.fixture
def store_url(app_store_url):
    """A store of this test's own (DuckDB, or PostgreSQL under ``ON_BOTH_STORES``), named by ``CARTSIGHT_DB_URL``."""
    return app_store_url


def _app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=APPTEST_TIMEOUT_S).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _datasets(url: str) -> list[dict]:
    engine = store.make_engine(url)
    try:
        return store.list_datasets(engine)
    finally:
        engine.dispose()


def _sample_file_counts() -> tuple[int, int]:
    """Data lines and distinct shoppers of the bundled sample, read straight from the file."""
    with gzip.open(config.SAMPLE_FILE, "rt", encoding="utf-8") as fh:
        lines = sum(1 for line in fh if line.strip()) - 1  # less the header
    frame = pd.read_csv(config.SAMPLE_FILE, dtype=str, keep_default_na=False)
    return lines, frame["user_id"].nunique()


@ON_BOTH_STORES
def test_first_start_loads_the_bundled_sample_once(store_url):
    assert config.SAMPLE_FILE.is_file(), "sample_data/sample_events.csv.gz must ship with the app"
    at = _app()
    (sample,) = _datasets(store_url)
    assert sample["name"] == config.SAMPLE_DATASET
    lines, shoppers = _sample_file_counts()
    assert sample["rows_read"] == lines
    assert sample["rows_loaded"] + sample["rows_quarantined"] == lines
    assert sample["n_users"] == shoppers
    assert [s.label for s in at.status] == [
        f"Loaded the sample: {sample['rows_loaded']:,} events of {shoppers:,} shoppers."]
    assert at.sidebar.selectbox[0].label == "Dataset"
    assert at.sidebar.selectbox[0].value == config.SAMPLE_DATASET

    again = _app()  # a second session on the same store loads nothing more
    assert list(again.status) == []
    assert [d["dataset_id"] for d in _datasets(store_url)] == [sample["dataset_id"]]


def test_a_deleted_sample_is_not_loaded_again(store_url):
    _app()
    engine = store.make_engine(store_url)
    store.drop_dataset(engine, config.SAMPLE_DATASET)
    engine.dispose()
    at = _app()
    assert list(at.status) == []
    assert _datasets(store_url) == []
    assert at.title[0].value == "Data"  # an empty store lands on Data
    assert list(at.sidebar.selectbox) == []


def test_empty_store_without_sample_lands_on_data(store_url, monkeypatch):
    monkeypatch.setattr(config, "SAMPLE_FILE", ROOT / "sample_data" / "no-such-file.csv.gz")
    at = _app()
    assert at.title[0].value == "Data"
    assert list(at.status) == [] and _datasets(store_url) == []


def test_pages_are_routed(store_url, monkeypatch):
    monkeypatch.setattr(config, "SAMPLE_FILE", ROOT / "sample_data" / "no-such-file.csv.gz")
    at = _app()
    at.switch_page("pages/data.py").run()
    assert at.title[0].value == "Data" and not at.exception
    at.switch_page("pages/overview.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Overview"
    assert any("No dataset yet" in i.value for i in at.info)  # the shared picker's empty-store message


def test_a_first_request_for_a_page_url_is_routed_by_app_py(store_url, monkeypatch):
    """A server's first run asked for pages/data.py (Streamlit still routes by the pages/ folder then) goes
    through app.py: its dataset picker is in the sidebar, and the Data page is drawn."""
    import sys

    import pages

    monkeypatch.setattr(config, "SAMPLE_FILE", ROOT / "sample_data" / "no-such-file.csv.gz")
    engine = store.make_engine(store_url)
    make_dataset(engine, "shop", [{"user_id": "u1", "event_time": dt.datetime(2024, 3, 1), "event_type": "view"}])
    engine.dispose()
    monkeypatch.delitem(sys.modules, "pages.common", raising=False)  # as in a fresh server: imported first here
    monkeypatch.delattr(pages, "common", raising=False)
    at = AppTest.from_file(APP, default_timeout=APPTEST_TIMEOUT_S)
    at.switch_page("pages/data.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Data"
    assert [s.label for s in at.sidebar.selectbox] == ["Dataset"]  # app.py ran: the page is the app's own
    assert at.sidebar.selectbox[0].value == "shop"


def test_the_app_uses_only_streamlits_public_api():
    """app.py and the pages import ``streamlit`` itself, never its modules (private API that changes between
    releases without notice)."""
    import ast

    for path in [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py"))]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        modules = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        modules += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        private = [m for m in modules if m.startswith("streamlit.")]
        assert private == [], f"{path.name} imports {private}"


def test_comments_say_what_and_why_not_which_issue():
    """No docstring or comment of app.py, core/, pages/ or tests/ points at an issue number: history is git's."""
    import re

    pattern = re.compile(r"\bissues? ?#?\d+", re.IGNORECASE)
    files = [ROOT / "app.py", *sorted(ROOT.glob("core/**/*.py")), *sorted(ROOT.glob("pages/*.py")),
             *sorted(ROOT.glob("tests/**/*.py"))]
    found = [f"{path.relative_to(ROOT)}:{i}" for path in files
             for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if pattern.search(line)]
    assert found == []


def test_lands_on_overview_when_a_dataset_exists(store_url):
    at = _app()
    assert at.title[0].value == "Overview"
    assert at.sidebar.selectbox[0].value == config.SAMPLE_DATASET


def test_store_that_cannot_open_shows_why(monkeypatch, tmp_path):
    isolated_store(monkeypatch, tmp_path)
    blocker = tmp_path / "blocker"
    blocker.write_text("")  # a file where the data folder should be: unwritable even for root
    monkeypatch.setenv(config.DB_URL_ENV, f"duckdb:///{blocker / 'sub' / 'store.duckdb'}")
    at = _app()
    assert "Cannot open the database at duckdb:///" in at.error[0].value
    assert "CARTSIGHT_DB_URL" in at.markdown[0].value


def test_a_failed_sample_load_is_shown_and_retried_next_start(store_url, monkeypatch, tmp_path):
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")  # not gzip, not text
    real_sample = config.SAMPLE_FILE
    monkeypatch.setattr(config, "SAMPLE_FILE", broken)
    at = _app()
    assert [s.label for s in at.status] == ["The sample data could not be loaded."]
    assert "broken.csv.gz looks like a binary file" in at.error[0].value
    assert _datasets(store_url) == []

    monkeypatch.setattr(config, "SAMPLE_FILE", real_sample)
    at = _app()  # the next start tries again
    assert [d["name"] for d in _datasets(store_url)] == [config.SAMPLE_DATASET]
    assert at.status[0].label.startswith("Loaded the sample:")


def test_a_store_a_cartsight_command_holds_is_named_on_the_error_page(monkeypatch, tmp_path):
    """A real ``cartsight ingest`` holds the DuckDB file while it waits for its input (a named pipe)."""
    from tests.store.test_store import ingest_holding_the_store

    url = isolated_store(monkeypatch, tmp_path)
    with ingest_holding_the_store(url, tmp_path) as holder:
        at = _app()
    message = at.error[0].value
    assert message.startswith(f"Cannot open the database at {url}: a `cartsight ingest` command (PID {holder.pid}) "
                              "has this store open: stop it, or use a PostgreSQL store")
    assert "database server is running" not in message
    at.button(key="store_retry").click().run()  # the command has ended: the store opens
    assert not at.error and not at.exception


def test_names_are_shown_as_plain_text_in_markdown():
    """Every page escapes names through pages.common.md: formatting characters come out literally."""
    from pages.common import md

    assert md("sale_2024 *final* [v2](x) #1 | a<b>") == r"sale\_2024 \*final\* \[v2\]\(x\) \#1 \| a\<b\>"
    assert md(12.5) == r"12\.5" and md("plain") == "plain"
