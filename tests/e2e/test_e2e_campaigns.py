"""The Campaigns page's consent, suppression and count rules in a real browser.

The store holds the hand-built shop of tests/campaigns/test_campaigns.py (40 shoppers u00…u39, a model and
a segmentation), written before the server starts. In Chromium the analyst picks Klaviyo and:

1. uploads a customer file without a consent column, whose last row has a phone libphonenumber
   rejects: the export is refused with the column's name and no export or download is offered;
   the row keeps its e-mail, and the phone's problem is shown whole;
2. ticks the legal-basis box and writes the basis: the export is offered, recorded and downloaded;
3. uploads a Shopify-style file with ``Accepts Email Marketing`` for six shoppers: the counts show
   the 34 shoppers not in the identity file apart from the one without consent;
4. suppresses by a Mailchimp ``Email Address`` file, then by a ``;``-separated ``customer_id`` file,
   and exports;
5. uploads a suppression file whose header names no id or e-mail column: refused, nothing offered.

What the browser showed and downloaded is checked against the store once the server has stopped
(DuckDB lets one process open the file). Screenshots land in the test's folder (``screenshots/``) with
CARTSIGHT_TEST_SCREENS=1.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

import pandas as pd
import pytest

from tests.e2e_support import app_in_browser, choose, full_screenshot, settle
from tests.e2e.test_e2e_journey import STEP_TIMEOUT_MS, _count, _download, _metric_value, _nav

pytestmark = pytest.mark.browser

BAD_PHONE = "+49 151 2345678"
BAD_PHONE_REASON = (f"phone '{BAD_PHONE}' is not a valid number for region DE (+49): its length fits, but no numbers "
                    "are issued in that range")
BASIS = "Existing customers, soft opt-in (PECR reg. 22(3))"
EXPORT_BUTTON = re.compile(r"^Export and download [\d,]+ shoppers as Klaviyo list")
DOWNLOAD_BUTTON = re.compile(r"^Download cartsight-shop-klaviyo-\d{8}-\d{6}\.csv again$")


def _files(folder: Path) -> dict[str, Path]:
    """The uploads of the journey, written as the tools that make them would."""
    files = {
        # no consent column; u30-u39 only; u39's phone is rejected by libphonenumber
        "customers.csv": "Customer ID;Email;Phone\n" + "".join(f"u{i};s{i}@example.com;\n" for i in range(30, 39))
        + f"u39;last@example.com;{BAD_PHONE}\n",
        # Shopify's customer export: u30-u35, u33 said no
        "shopify.csv": "Customer ID,First Name,Email,Accepts Email Marketing,Total Spent\n"
        + "".join(f"u{i},N{i},s{i}@example.com,{'no' if i == 33 else 'yes'},1.00\n" for i in range(30, 36)),
        "mailchimp-unsubscribed.csv": "Email Address,MEMBER_RATING\nS34@Example.com,2\n",
        "unsubscribed.csv": "customer_id;reason\nu35;unsubscribed\nu34;complaint\n",
        "complaints.csv": "contact,reason\nu30,complaint\n",
    }
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return {name: folder / name for name in files}


@pytest.fixture
def shop_folder(tmp_path, debian_chromium):
    """A folder whose DuckDB store holds the shop; the engine is disposed before the server opens it."""
    from core import store
    from tests.campaigns.test_campaigns import make_shop

    engine = store.make_engine(f"duckdb:///{tmp_path / 'store.duckdb'}")
    try:
        make_shop(engine)
    finally:
        engine.dispose()
    return tmp_path


def _upload(page, label: str, path: Path) -> None:
    box = page.get_by_test_id("stFileUploader").filter(has_text=label)
    box.locator('input[type="file"]').set_input_files(str(path))
    page.get_by_text(re.compile(rf"^{re.escape(path.name)}: [\d,]+ rows read|Columns in the file")).first.wait_for()
    settle(page)


def _expect_metric(page, label: str, value: int) -> None:
    """Wait until the tile ``label`` shows ``value`` (a rerun replaces the tiles top to bottom)."""
    from playwright.sync_api import expect

    tile = page.get_by_test_id("stMetric").filter(has=page.get_by_test_id("stMetricLabel").filter(
        has_text=re.compile(f"^{re.escape(label)}$")))
    expect(tile.get_by_test_id("stMetricValue")).to_have_text(f"{value:,}")


def _no_export_offered(page) -> None:
    from playwright.sync_api import expect

    expect(page.get_by_role("button", name=EXPORT_BUTTON)).to_have_count(0)
    expect(page.get_by_role("button", name=DOWNLOAD_BUTTON)).to_have_count(0)


def _tick(page, label: str) -> None:
    page.get_by_test_id("stCheckbox").filter(has_text=label).locator("label").click()
    settle(page)


def _export_and_download(page, folder: Path) -> Path:
    path = _download(page, EXPORT_BUTTON, folder)  # one click: the file, and the export recorded
    page.get_by_text(re.compile(r"^Export \d+ recorded and downloaded: ")).wait_for()
    page.get_by_role("button", name=DOWNLOAD_BUTTON).wait_for()
    return path


def _emails(path: Path) -> set[str]:
    with path.open(newline="", encoding="utf-8") as fh:
        return {row["Email"] for row in csv.DictReader(fh)}


def test_consent_suppression_and_counts_on_the_campaigns_page(shop_folder, debian_chromium):
    from playwright.sync_api import expect

    folder = shop_folder
    files = _files(folder)
    shots, downloads = folder / "screenshots", folder / "downloads"
    shots.mkdir()
    downloads.mkdir()
    seen: dict = {}
    with app_in_browser(debian_chromium, folder, STEP_TIMEOUT_MS) as page:
        _nav(page, "Campaigns")
        page.get_by_role("heading", name="Expected outcome").wait_for()
        choose(page, "stSelectbox", "Format", "Klaviyo list")
        expect(page.get_by_text("Klaviyo and Mailchimp export only shoppers whose consent_email is yes")) \
            .to_be_visible()

        # 1. no consent column: refused with the column's name, nothing offered; the bad phone keeps its row
        _upload(page, "Identity file", files["customers.csv"])
        expect(page.get_by_text("customers.csv: 10 rows read, 10 usable, 0 left out; 1 field left blank")) \
            .to_be_visible()
        expect(page.get_by_test_id("stAlert").filter(has_text="The identity file has no consent_email column")) \
            .to_be_visible()
        _no_export_offered(page)
        page.get_by_test_id("stExpander").filter(has_text="problem: rows left out").locator("summary").click()
        cell = page.get_by_test_id("stTable").get_by_text(BAD_PHONE_REASON, exact=True)
        expect(cell).to_be_visible()
        assert cell.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), "the reason is cut off on screen"
        full_screenshot(page, shots / "1-no-consent-refused.png")

        # 2. the legal basis stated: offered, recorded, downloaded
        _tick(page, "Export without a consent_email column, on a legal basis I state")
        _no_export_offered(page)  # ticked, no basis written yet
        basis_box = page.get_by_label("Legal basis (recorded with the export)")
        basis_box.fill(BASIS)
        basis_box.press("Enter")
        settle(page)
        page.get_by_role("button", name=EXPORT_BUTTON).wait_for()
        _expect_metric(page, "Not in the identity file", 30)
        _expect_metric(page, "Without consent", 0)
        seen["basis_file"] = _export_and_download(page, downloads)
        full_screenshot(page, shots / "2-basis-stated.png")

        # 3. a consent column: "not in the identity file" apart from "without consent"
        _upload(page, "Identity file", files["shopify.csv"])
        expect(page.get_by_text("'Accepts Email Marketing' as consent_email")).to_be_visible()
        _expect_metric(page, "Not in the identity file", 34)
        _expect_metric(page, "Without consent", 1)
        seen["exported_before_suppression"] = _count(_metric_value(page, "Exported"))
        seen["holdout_before_suppression"] = _count(_metric_value(page, "Holdout (kept back)"))

        # 4. suppression by a Mailchimp "Email Address" file, then a ";"-separated customer_id file
        _upload(page, "Suppression list", files["mailchimp-unsubscribed.csv"])
        _expect_metric(page, "Suppressed", 1)
        _upload(page, "Suppression list", files["unsubscribed.csv"])
        _expect_metric(page, "Suppressed", 2)
        _expect_metric(page, "Not in the identity file", 34)
        seen["suppressed_file"] = _export_and_download(page, downloads)
        full_screenshot(page, shots / "3-suppressed.png")

        # 5. a suppression file with no id or e-mail column: refused, nothing offered
        _upload(page, "Suppression list", files["complaints.csv"])
        expect(page.get_by_test_id("stAlert").filter(has_text="suppression file has no user id or e-mail column")) \
            .to_be_visible()
        _no_export_offered(page)
        full_screenshot(page, shots / "4-bad-suppression-refused.png")
    print(f"screenshots in {shots}")
    _check_against_store(folder, seen)


def _check_against_store(folder: Path, seen: dict) -> None:
    from core import store
    from core.campaigns import exports

    engine = store.make_engine(f"duckdb:///{folder / 'store.duckdb'}")
    try:
        first, second = exports.list_exports(engine, "shop").sort_values("export_id").to_dict("records")
        assert (first["format"], first["consent_column"], first["consent_basis"]) == ("klaviyo", "consent_email", BASIS)
        assert (first["not_in_identities"], first["no_consent"], first["exported"] + first["holdout"]) == (30, 0, 10)
        members = exports.export_members(engine, int(first["export_id"])).set_index("user_id")["group_name"]
        emails = _emails(seen["basis_file"])
        assert len(emails) == first["exported"]
        # the row with the rejected phone kept its e-mail: exported unless drawn into the holdout
        assert ("last@example.com" in emails) == (members["u39"] == exports.MEMBER_TARGET)

        assert second["consent_column"] == "consent_email" and pd.isna(second["consent_basis"])
        assert (second["suppressed"], second["not_in_identities"], second["no_consent"]) == (2, 34, 1)
        assert second["exported"] + second["holdout"] == 3  # u30, u31, u32
        emails = _emails(seen["suppressed_file"])
        assert len(emails) == second["exported"] and emails <= {"s30@example.com", "s31@example.com", "s32@example.com"}
        assert seen["exported_before_suppression"] + seen["holdout_before_suppression"] == 5
    finally:
        engine.dispose()
