"""The Data page's "Connect a table" form in a real browser: a team's events table in its own schema of the
store's PostgreSQL, read in place. The analyst types the table's name, reads its columns, maps the time column
the form does not recognise and two renamed ones, names the dataset and connects it; the report counts every
row and the Overview shows the dataset. A second table whose time column is renamed by its team between reading
its columns and connecting is refused with a message naming the column.

The form connects a table of the store's own database (there is no URL to type), so the app runs on a
PostgreSQL store: the test's process can rename the team's column while the app holds its connections.
"""
from __future__ import annotations

import os
import re
import uuid

import pytest
import sqlalchemy as sa

from core import config
from core.ingest import sample
from tests.conftest import pg_schema_url
from tests.e2e_support import ROOT, VIEWPORT, choose, labelled, serve_app, settle
from tests.ingest.test_connect import _team_rows

pytestmark = pytest.mark.browser

STEP_TIMEOUT_MS = 60_000  # the 2 cores are shared
#: the team's rows: 20 shoppers' 140 events and three rows a load quarantines (no shopper, a negative price, no time)
ROWS_READ, ROWS_LOADED, ROWS_QUARANTINED, SHOPPERS = 143, 140, 3, 20


def _team_table(schema: str, name: str) -> sa.Table:
    return sa.Table(name, sa.MetaData(), sa.Column("visitor", sa.String), sa.Column("happened_at", sa.DateTime),
                    sa.Column("action", sa.String), sa.Column("sku", sa.String), sa.Column("category_code", sa.String),
                    sa.Column("maker", sa.String), sa.Column("amount", sa.Double), schema=schema)


@pytest.fixture
def team_schema(pg_url):
    """A schema of the team's own on the test PostgreSQL with two events tables, ``events`` and ``clicks`` (the same
    rows); yields its name, dropped at the end with whatever depends on it."""
    schema = f"team_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        for name in ("events", "clicks"):
            table = _team_table(schema, name)
            table.create(conn)
            conn.execute(table.insert(), _team_rows())
    try:
        yield schema
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def _metric_value(page, label: str) -> str:
    tile = page.get_by_test_id("stMetric").filter(has=page.get_by_test_id("stMetricLabel").filter(
        has_text=re.compile(f"^{re.escape(label)}$")))
    return tile.first.get_by_test_id("stMetricValue").inner_text().strip()


def _read_and_map(page, table: str, dataset: str) -> None:
    """Type the table's name, read its columns, map the time, brand and price columns, name the dataset."""
    form = page.get_by_test_id("stExpander").filter(has_text="Connect a table")
    if not form.get_by_role("button", name="Read its columns").is_visible():
        form.get_by_text("Connect a table").first.click()
    table_box = labelled(page, "stTextInput", "Table (SCHEMA.TABLE)").locator("input")
    table_box.fill(table)
    table_box.press("Enter")
    settle(page)
    page.get_by_role("button", name="Read its columns").click()
    page.get_by_text("Choose the column for Event time").wait_for()  # the form does not know "happened_at"
    assert page.get_by_role("button", name="Connect", exact=True).is_disabled()
    choose(page, "stSelectbox", "Event time *", "happened_at")
    choose(page, "stSelectbox", "Brand", "maker")
    choose(page, "stSelectbox", "Price or amount", "amount")
    name_box = labelled(page, "stTextInput", "Dataset name").locator("input")
    name_box.fill(dataset)
    name_box.press("Enter")
    settle(page)


def test_connect_a_team_table_from_the_data_page_then_see_it_on_overview(debian_chromium, team_schema, pg_url,
                                                                         tmp_path, monkeypatch):
    with pg_schema_url(pg_url) as store_url:
        env = {**os.environ, "HOME": str(tmp_path), config.DB_URL_ENV: store_url,
               config.HOME_ENV: str(tmp_path / "home"), "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
        monkeypatch.setenv(config.HOME_ENV, env[config.HOME_ENV])
        sample.mark_offered(store_url)  # an empty store opens on the Data page, without the bundled sample
        with serve_app(tmp_path, env) as (url, _):
            context = debian_chromium.new_context(viewport=VIEWPORT)
            context.set_default_timeout(STEP_TIMEOUT_MS)
            page = context.new_page()
            try:
                page.goto(url)
                page.get_by_role("heading", name="Data", exact=True).wait_for()
                _connect_and_see(page, team_schema)
                _renamed_column_is_named(page, team_schema, pg_url)
            finally:
                context.close()


def _connect_and_see(page, schema: str) -> None:
    _read_and_map(page, f"{schema}.events", "team")
    page.get_by_role("button", name="Connect", exact=True).click()
    page.get_by_role("heading", name=f"Connected team to {schema}.events").wait_for()
    page.get_by_text("Every row is accounted for").wait_for()
    counts = [_metric_value(page, k) for k in ("Rows read", "Rows loaded", "Rows quarantined")]
    assert counts == [str(ROWS_READ), str(ROWS_LOADED), str(ROWS_QUARANTINED)]
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Overview", exact=True).click()
    page.get_by_role("heading", name="Overview").first.wait_for()
    assert "team" in labelled(page, "stSelectbox", "Dataset").locator("input").input_value()
    page.get_by_test_id("stMetricLabel").filter(has_text=re.compile("^Events$")).wait_for()
    assert (_metric_value(page, "Events"), _metric_value(page, "Shoppers")) == (str(ROWS_LOADED), str(SHOPPERS))


def _renamed_column_is_named(page, schema: str, pg_url: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Data", exact=True).click()
    page.get_by_role("heading", name="Data", exact=True).wait_for()
    _read_and_map(page, f"{schema}.clicks", "clicks")
    admin = sa.create_engine(pg_url)  # the team renames the time column while the analyst maps it
    with admin.begin() as conn:
        conn.execute(sa.text(f'ALTER TABLE "{schema}".clicks RENAME COLUMN happened_at TO occurred_at'))
    admin.dispose()
    page.get_by_role("button", name="Connect", exact=True).click()
    message = page.get_by_test_id("stAlertContentError").filter(has_text="happened_at")
    message.wait_for()
    text = message.inner_text()
    assert "event_time is mapped to column 'happened_at', which is not in table" in text
    assert "occurred_at" in text  # the columns the table has now
