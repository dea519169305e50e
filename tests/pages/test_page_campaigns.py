"""AppTest of pages/campaigns.py on a store holding the hand-built shop of tests/campaigns/test_campaigns.py.

The store is DuckDB; tests marked ``ON_BOTH_STORES`` run on PostgreSQL as well.
"""
from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core import store
from core.campaigns import exports
from tests.conftest import ON_BOTH_STORES, run_page
from tests.e2e_support import ROOT
from tests.campaigns.test_campaigns import FIXTURES, make_shop

PAGE = str(ROOT / "pages" / "campaigns.py")
TIMEOUT_S = 60
LIVE = "Shoppers matching these filters"


@pytest.fixture
def shop(app_store_url):
    """The hand-built shop in a store of this test's own (DuckDB, or PostgreSQL under ``ON_BOTH_STORES``)."""
    engine = store.make_engine(app_store_url)
    make_shop(engine)
    yield engine
    engine.dispose()


def _page() -> AppTest:
    return run_page(PAGE, TIMEOUT_S, dataset="shop")


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _frame(at: AppTest, column: str) -> pd.DataFrame:
    """The first table on the page with ``column`` (AppTest does not expose a dataframe's key)."""
    return next(df.value for df in at.dataframe if column in df.value.columns)


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


@ON_BOTH_STORES
def test_filters_change_the_live_count_and_export_is_recorded(shop, download_content):
    at = _page()
    assert _metric(at, LIVE) == "40"
    at.multiselect(key="camp_segments").set_value([1]).run()
    _ok(at)
    assert _metric(at, LIVE) == "20"
    # default holdout 10 %: 2 of the 20 kept back
    assert _metric(at, "List size") == "18"
    assert _metric(at, "Holdout (kept back)") == "2"
    at.radio(key="camp_top_mode").set_value("top %").run()
    at.number_input(key="camp_top_percent").set_value(50.0).run()
    _ok(at)
    assert _metric(at, LIVE) == "10"
    assert _metric(at, "Exported") == "9" and _metric(at, "Holdout (kept back)") == "1"
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [t["name"] for t in spec["data"]] == ["Ranked by chance to buy", "Random list", "This list"]
    preview = _frame(at, "recommended_items")
    assert list(preview.columns) == list(exports.PLAIN_COLUMNS) and len(preview) == 9
    # the file keeps its columns; the page labels them in the Forecasts and Shopper pages' words
    label = {c["label"] for c in json.loads(at.dataframe[-1].proto.columns).values() if c.get("label")}
    assert "Chance to buy within 7 days (propensity)" in label
    assert at.slider(key="camp_propensity").label == "Chance to buy within 7 days"
    assert set(preview["segment_name"]) == {"Premium fans"}

    at.text_input(key="camp_name").set_value("half of the fans").run()
    # one click: the button hands over the file and records it; nothing is recorded before the click
    offered = download_content(at.download_button(key="camp_export"))
    assert exports.list_exports(shop, "shop").empty
    at.download_button(key="camp_export").click().run()
    _ok(at)
    assert at.success and "recorded and downloaded" in at.success[0].value
    history = exports.list_exports(shop, "shop")
    assert len(history) == 1 and history.iloc[0]["name"] == "half of the fans"
    assert exports.export_file(shop, int(history.iloc[0]["export_id"])) == offered
    assert re.fullmatch(r"cartsight-shop-csv-\d{8}-\d{6}\.csv", history.iloc[0]["file_name"])
    assert history.iloc[0]["file_name"] in at.success[0].value
    assert (history.iloc[0]["exported"], history.iloc[0]["holdout"]) == (9, 1)
    shown = _frame(at, "file_name")
    assert shown["export_id"].tolist() == history["export_id"].tolist()
    labels = [b.label for b in at.download_button]
    assert any(label.startswith("Download cartsight-shop-") for label in labels)
    assert "Download its holdout (1 shoppers)" in labels
    held = next(b for b in at.download_button if b.label.startswith("Download its holdout"))
    held_ids = set(pd.read_csv(pd.io.common.BytesIO(download_content(held)), dtype=str)["user_id"])
    assert held_ids == set(exports.holdout_list(shop, int(history.iloc[0]["export_id"]))["user_id"]) and len(held_ids) == 1
    data = exports.export_file(shop, int(history.iloc[0]["export_id"]))
    rows = pd.read_csv(pd.io.common.BytesIO(data), dtype=str)
    assert len(rows) == 9 and set(rows["segment"]) == {"1"}


@ON_BOTH_STORES
def test_top_20_percent_by_expected_revenue_and_likely_to_lapse(shop):
    at = _page()
    at.slider(key="camp_holdout").set_value(0.0).run()
    at.radio(key="camp_top_mode").set_value("top %").run()
    at.selectbox(key="camp_rank_by").set_value("expected_revenue").run()
    at.number_input(key="camp_top_percent").set_value(20.0).run()
    _ok(at)
    assert _metric(at, LIVE) == "8"
    preview = _frame(at, "recommended_items")
    assert preview["user_id"].tolist() == ["u17", "u34", "u11", "u28", "u05", "u22", "u39", "u16"]
    assert preview["expected_revenue"].tolist() == [195.0, 190.0, 185.0, 180.0, 175.0, 170.0, 165.0, 160.0]
    assert preview["p_inactive"].tolist()[:2] == [100 * 17 / 40, 100 * 34 / 40]  # shown in percent
    assert _metric(at, "Expected revenue") == "1,420.00"

    at.radio(key="camp_top_mode").set_value("everyone who matches").run()
    at.selectbox(key="camp_rank_by").set_value("p_inactive").run()
    at.checkbox(key="camp_lapse").check().run()
    _ok(at)
    assert _metric(at, LIVE) == "20"  # lapse risk i / 40 of at least 50 %: u20 … u39
    preview = _frame(at, "recommended_items")
    assert preview["user_id"].tolist()[:3] == ["u39", "u38", "u37"] and preview["p_inactive"].min() >= 50


def _upload(at: AppTest, key: str, name: str, data: bytes) -> None:
    at.file_uploader(key=key).set_value((name, data, "text/csv")).run()
    _ok(at)


def _widget(widgets, label: str):
    """The widget whose label holds ``label`` (the consent and confirmation boxes are keyed per file and list)."""
    return next(w for w in widgets if label in w.label)


def _offers_export(at: AppTest) -> bool:
    return any(b.key == "camp_export" for b in at.download_button)


def test_ad_format_needs_identities_then_confirms_small_list(shop):
    at = _page()
    at.selectbox(key="camp_format").set_value("google").run()
    _ok(at)
    assert any("needs an identity file" in e.value for e in at.error)
    assert any("Google and Meta only those whose consent_ads is yes" in c.value for c in at.caption)
    _upload(at, "camp_identities", "identities.csv", (FIXTURES / "identities.csv").read_bytes())
    # u05-u08 keep their rows, losing only the bad field; u00 repeated and the row without a user id are left out
    assert any("12 rows read, 10 usable, 2 left out; 4 fields left blank" in c.value for c in at.caption)
    problems = at.table[0].value
    assert problems["line"].tolist() == [7, 8, 9, 10, 11, 12]
    assert problems.loc[1, "reason"] == "phone '12' is not a valid number for region FR (+33): too few digits"
    # consent_ads yes with an e-mail or phone: u00, u01, u04, u06-u09 (7); 10 % holdout of 7 rounds to 1
    assert _metric(at, "Not in the identity file") == "30"
    assert _metric(at, "Without consent") == "2" and _metric(at, "Without an identifier") == "1"
    assert _metric(at, "Exported") == "6" and _metric(at, "Holdout (kept back)") == "1"
    assert any("at least 100 matched people (1,000 for Search" in w.value for w in at.warning)
    # under the platform's minimum: the export waits for the confirmation box
    assert at.download_button(key="camp_export").proto.disabled
    _widget(at.checkbox, "shoppers anyway").check().run()
    _ok(at)
    assert not at.download_button(key="camp_export").proto.disabled
    at.download_button(key="camp_export").click().run()
    _ok(at)
    assert any(b.label.startswith("Download cartsight-shop-") for b in at.download_button)
    [row] = exports.list_exports(shop, "shop").to_dict("records")
    assert (row["format"], row["exported"], row["consent_column"]) == ("google", 6, "consent_ads")
    # another list (another holdout draw) asks again
    at.number_input(key="camp_seed").set_value(7).run()
    _ok(at)
    assert at.download_button(key="camp_export").proto.disabled
    assert not any(b.key == "camp_download" for b in at.download_button)


NO_CONSENT = ("Customer ID;Email;Phone\n" + "".join(f"u{i};s{i}@example.com;\n" for i in range(30, 39))
              + "u39;last@example.com;+49 151 2345678\n").encode()


@ON_BOTH_STORES
def test_missing_consent_refuses_until_a_basis_is_stated_and_recorded(shop):
    at = _page()
    at.selectbox(key="camp_format").set_value("klaviyo").run()
    _upload(at, "camp_identities", "customers.csv", NO_CONSENT)
    assert any("10 rows read, 10 usable, 0 left out; 1 field left blank" in c.value for c in at.caption)
    assert any("'Customer ID' as user_id, 'Email' as email, 'Phone' as phone" in c.value for c in at.caption)
    assert at.table[0].value.iloc[0]["reason"].endswith("its length fits, but no numbers are issued in that range")
    assert any("The identity file has no consent_email column" in e.value for e in at.error)
    assert not _offers_export(at) and not any(b.label.startswith("Download cartsight") for b in at.download_button)
    _widget(at.checkbox, "Export without a consent_email column").check().run()
    _ok(at)
    assert any("no consent_email column" in e.value for e in at.error)  # ticked, but no basis written yet
    assert not _offers_export(at)
    basis = "Existing customers, soft opt-in (PECR reg. 22(3))"
    _widget(at.text_input, "Legal basis").set_value(basis).run()
    _ok(at)
    assert not at.error and _offers_export(at)
    assert _metric(at, "Not in the identity file") == "30" and _metric(at, "Without consent") == "0"
    assert _metric(at, "Exported") == "9" and _metric(at, "Holdout (kept back)") == "1"
    at.download_button(key="camp_export").click().run()
    _ok(at)
    [row] = exports.list_exports(shop, "shop").to_dict("records")
    assert (row["consent_column"], row["consent_basis"]) == ("consent_email", basis)
    data = exports.export_file(shop, int(row["export_id"]))
    emails = set(pd.read_csv(pd.io.common.BytesIO(data), dtype=str)["Email"])
    held_out = set(exports.holdout_list(shop, int(row["export_id"]))["user_id"])
    assert ("last@example.com" in emails) != ("u39" in held_out)  # the bad phone kept u39's e-mail
    # another identity file without the column: the basis is asked for again, not carried over
    _upload(at, "camp_identities", "customers-2.csv", NO_CONSENT.replace(b"u30;s30@example.com;\n", b""))
    assert any("The identity file has no consent_email column" in e.value for e in at.error)
    assert not _offers_export(at)


@ON_BOTH_STORES
def test_suppression_files_suppress_or_refuse(shop):
    at = _page()
    _upload(at, "camp_suppression", "mailchimp-unsubscribed.csv", b"customer_id;reason\nu39;unsubscribed\nu00;x\n")
    assert _metric(at, "Suppressed") == "2"
    assert any("'customer_id' as user_id; ignored: 'reason'" in c.value for c in at.caption)
    _upload(at, "camp_suppression", "complaints.csv", b"contact,reason\nu39,complaint\n")
    assert any("no user id or e-mail column. Columns in the file: ['contact', 'reason']" in e.value for e in at.error)
    assert not _offers_export(at) and not any(m.label == "Suppressed" for m in at.metric)
    # e-mails need the identity file's e-mails to be matched: without them the list is refused, not sent
    _upload(at, "camp_suppression", "unsubscribed.csv", b"Email Address\nS38@Example.com\n")
    assert any("holds 1 e-mails, but no identity file with an e-mail column" in e.value for e in at.error)
    assert not _offers_export(at)
    _upload(at, "camp_identities", "customers.csv", NO_CONSENT)
    assert _metric(at, "Suppressed") == "1" and _offers_export(at)


@ON_BOTH_STORES
def test_lists_forecasts_and_segments_built_before_an_append_are_marked(shop, tmp_path):
    from core.campaigns.targets import CampaignFilters, build_target_list
    from core.ingest.load import ingest_file

    old = exports.save_export(shop, build_target_list(shop, "shop", CampaignFilters(top_k=3), holdout_share=0.0),
                              "csv")
    at = _page()
    _ok(at)
    assert not [w.value for w in at.warning if "added since" in w.value]
    week = tmp_path / "week.csv"
    week.write_text("user_id,event_time,event_type,product_id,price\nu01,2024-02-10 09:00:00,view,it1,1.0\n"
                    "u02,2024-02-10 09:05:00,view,it2,1.0\nu03,2024-02-10 09:06:00,view,it3,1.0\n")
    ingest_file(shop, week, "shop", append=True)
    at = _page()
    _ok(at)
    at.selectbox(key="camp_history_pick").set_value(old["export_id"]).run()
    notes = [w.value.replace("\\", "") for w in at.warning if "added since" in w.value]
    built = "Built on the data up to 2024-01-31 12:00; 3 events were added since: "
    assert notes == [f"The forecasts this list uses: {built}retrain on the Forecasts page to include them.",
                     f"The segments this list uses: {built}re-run on the Segments page to include them.",
                     f"{built}build the list again to include them."]
