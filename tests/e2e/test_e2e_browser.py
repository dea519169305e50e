"""The analyst's journey in a real browser: open the app, upload the REES46 head on Data, see every row
accounted for, then the funnel of that dataset on Overview.

Runs ``streamlit run app.py`` on a free port with its store in a temporary folder and drives
Debian's Chromium with Playwright. Screenshots land in that folder (``screenshots/``) with CARTSIGHT_TEST_SCREENS=1.
"""
from __future__ import annotations

import csv
import os
import re
from collections import defaultdict
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA
from tests.e2e_support import CHROMIUM, ROOT, VIEWPORT, full_screenshot, running_app

pytestmark = pytest.mark.browser

REES46_HEAD = SHARED_DATA / "rees46" / "2019-Oct-head.csv"
# ingest's counts for the head: 17,434 rows + 1 cut-off row read; 5 exact duplicates and the cut-off row quarantined
ROWS_READ, ROWS_LOADED, ROWS_QUARANTINED = 17_435, 17_429, 6
STEP_TIMEOUT_MS = 60_000  # first start loads the bundled sample; the 2 cores are shared


def _shopper_funnel(path: Path) -> tuple[int, int, int]:
    """Shoppers with a view, a cart and a purchase among the file's complete rows, counted by hand."""
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], [r for r in rows[1:] if len(r) == len(rows[0])]
    user, kind = header.index("user_id"), header.index("event_type")
    reached = defaultdict(set)
    for row in body:
        reached[row[kind]].add(row[user])
    return len(reached["view"]), len(reached["cart"]), len(reached["purchase"])


@pytest.fixture(scope="session")
def app_url(tmp_path_factory):
    if not CHROMIUM.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser test: {CHROMIUM} is missing (apt-get install -y chromium)")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium)")
    with running_app(tmp_path_factory.mktemp("e2e-app")) as url:
        yield url


@pytest.fixture
def app_page(app_url, debian_chromium):
    context = debian_chromium.new_context(viewport=VIEWPORT)
    context.set_default_timeout(STEP_TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


def _metric_value(page, label: str) -> str:
    tile = page.get_by_test_id("stMetric").filter(has=page.get_by_test_id("stMetricLabel").filter(
        has_text=re.compile(f"^{re.escape(label)}$")))
    return tile.get_by_test_id("stMetricValue").inner_text().strip()


def _upload_on_data_page(page, path: Path) -> None:
    """Open the Data page from the sidebar and upload ``path`` through the real file input."""
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Data", exact=True).click()
    page.get_by_role("heading", name="Data", exact=True).wait_for()
    page.get_by_test_id("stFileUploader").locator('input[type="file"]').set_input_files(str(path))
    page.get_by_text("How the file was read").wait_for()


def _load(page) -> list[str]:
    """Click Load, wait for the reconciliation; its rows read, loaded and quarantined."""
    page.get_by_role("button", name="Load", exact=True).click()
    page.get_by_text("Every row is accounted for").wait_for()
    return [_metric_value(page, k) for k in ("Rows read", "Rows loaded", "Rows quarantined")]


def test_upload_rees46_head_then_see_its_funnel(app_page, app_url, tmp_path_factory, shared_data):
    from playwright.sync_api import expect

    page = app_page
    shots = tmp_path_factory.mktemp("screenshots")
    page.goto(app_url)
    nav = page.get_by_test_id("stSidebarNav")
    # first start: the app declares its pages, loads the bundled sample, then lands on Overview
    nav.get_by_role("link", name="Overview", exact=True).wait_for()
    page.get_by_role("heading", name="Overview").first.wait_for()
    page.get_by_test_id("stPlotlyChart").locator(".main-svg").first.wait_for()

    _upload_on_data_page(page, REES46_HEAD)
    expect(page.get_by_text("Layout: REES46 multi-category store")).to_be_visible()
    expect(page.get_by_label("Dataset name")).to_have_value("2019-Oct-head")
    assert _load(page) == [f"{ROWS_READ:,}", f"{ROWS_LOADED:,}", f"{ROWS_QUARANTINED:,}"]
    assert page.get_by_text(
        f"rows read = rows loaded + rows quarantined: {ROWS_READ:,} = {ROWS_LOADED:,} + {ROWS_QUARANTINED:,}"
    ).is_visible()
    page.get_by_test_id("stDownloadButton").wait_for()
    full_screenshot(page, shots / "data.png")

    nav.get_by_role("link", name="Overview", exact=True).click()
    page.get_by_role("heading", name="Overview").first.wait_for()
    expect(page.get_by_role("combobox", name="Dataset")).to_have_value("2019-Oct-head")
    page.get_by_test_id("stPlotlyChart").locator(".main-svg").first.wait_for()
    viewers, carters, buyers = _shopper_funnel(REES46_HEAD)
    assert (viewers, carters, buyers) == (4_504, 111, 193)
    funnel = page.locator(".js-plotly-plot").filter(has=page.locator(".funnellayer"))
    funnel.first.wait_for()
    # each bar's label is "<count>", "<share> of initial", "<share> of previous" on separate lines (tspans)
    labels = funnel.first.locator(".funnellayer text")
    counts = [labels.nth(i).locator("tspan").first.text_content() for i in range(labels.count())]
    assert [int(c.replace(",", "")) for c in counts] == [viewers, carters, buyers], f"funnel on screen: {counts}"
    full_screenshot(page, shots / "overview.png")
    print(f"screenshots in {shots}")


def test_first_request_to_a_page_url_gets_the_apps_navigation(debian_chromium, tmp_path):
    from playwright.sync_api import expect

    with running_app(tmp_path) as url:
        context = debian_chromium.new_context(viewport=VIEWPORT)
        context.set_default_timeout(STEP_TIMEOUT_MS)
        page = context.new_page()
        try:
            page.goto(f"{url}/data")
            page.get_by_role("heading", name="Data", exact=True).wait_for()
            nav = page.get_by_test_id("stSidebarNav")
            expect(nav.get_by_role("link", name="Overview", exact=True)).to_be_visible(timeout=15_000)
            assert nav.get_by_role("link", name="common").count() == 0
        finally:
            context.close()


def test_upload_online_retail_as_published_an_excel_workbook(app_page, app_url, tmp_path, shared_data):
    """UCI Online Retail comes as an .xlsx: the browser's upload takes it, and it reconciles as its CSV does."""
    import datetime as dt

    from openpyxl import Workbook
    from playwright.sync_api import expect

    book = Workbook(write_only=True)
    sheet = book.create_sheet("Online Retail")
    with (shared_data / "online_retail" / "OnlineRetail-head.csv").open(encoding="latin-1", newline="") as fh:
        reader = csv.reader(fh)
        sheet.append(next(reader))
        for invoice, stock, text, qty, when, price, customer, country in reader:
            sheet.append([invoice if invoice.startswith("C") else int(invoice), stock, text, int(qty),
                          dt.datetime.strptime(when, "%m-%d-%Y %H:%M"), float(price),
                          float(customer) if customer else None, country])
    path = tmp_path / "Online Retail.xlsx"
    book.save(path)

    page = app_page
    page.goto(app_url)
    _upload_on_data_page(page, path)
    expect(page.get_by_text("Layout: UCI Online Retail")).to_be_visible()
    expect(page.get_by_text("an Excel workbook: its first worksheet")).to_be_visible()
    expect(page.get_by_label("Dataset name")).to_have_value("Online Retail")
    # the counts of the same rows loaded from the CSV (tests/test_workbook.py compares the two row for row)
    assert _load(page) == ["10,000", "7,513", "2,487"]


def test_upload_a_mixpanel_json_lines_export(app_page, app_url, tmp_path):
    """A raw event export as JSON lines: the browser's upload takes the .jsonl, nested fields map, it reconciles."""
    import json

    from playwright.sync_api import expect

    names = ["Viewed Product", "Added to Cart", "Order Completed"]
    path = tmp_path / "mixpanel-march.jsonl"
    with path.open("w") as fh:
        for i in range(300):
            props = {"time": 1709287200 + 300 * i, "distinct_id": f"u{i % 25}", "product_id": f"p{i % 40}",
                     "category": ["Shoes", "Bags"][i % 2], "price": 5.0 + i % 30}
            if i == 7:
                props["time"] = "not yet"  # quarantined as line 9 (the header is line 1)
            fh.write(json.dumps({"event": names[i % 3], "properties": props}) + "\n")

    page = app_page
    page.goto(app_url)
    _upload_on_data_page(page, path)
    expect(page.get_by_text("JSON: one row per object")).to_be_visible()
    expect(page.get_by_label("Dataset name")).to_have_value("mixpanel-march")
    assert _load(page) == ["300", "299", "1"]


def test_adding_the_same_file_twice_adds_no_event_and_says_so(app_page, app_url, shared_data):
    from playwright.sync_api import expect

    page, name = app_page, "added twice"
    path = shared_data / "rees46" / "2019-Oct-first1000.csv"
    page.goto(app_url)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Data", exact=True).wait_for()
    _upload_on_data_page(page, path)
    page.get_by_label("Dataset name").fill(name)
    page.get_by_label("Dataset name").press("Enter")
    read, loaded, quarantined = _load(page)
    page.get_by_role("radio", name="Add to an existing dataset").check(force=True)
    expect(page.get_by_role("combobox", name="Dataset to add to")).to_have_value(name)
    page.get_by_test_id("stFileUploader").locator('input[type="file"]').set_input_files(str(path))
    page.get_by_text("How the file was read").wait_for()
    page.get_by_role("button", name=f"Add to {name}", exact=True).click()
    page.get_by_text("Every row is accounted for").wait_for()
    expect(page.get_by_text(f"{loaded} lines repeat events already in the dataset: this file adds no event")
           ).to_be_visible()
    assert [_metric_value(page, k) for k in ("Rows read", "Rows loaded", "Rows quarantined")] == [read, "0", read]
    expect(page.get_by_role("heading", name=f"Added 2019-Oct-first1000.csv to {name} (its file 2)")).to_be_visible()
