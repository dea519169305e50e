"""AppTest of pages/campaigns.py on a store holding the hand-built shop of tests/test_campaigns.py.

The store is DuckDB; tests marked ``ON_BOTH_STORES`` run on PostgreSQL as well.
"""
from __future__ import annotations

import json

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core import exports, store
from tests.conftest import ON_BOTH_STORES
from tests.e2e_support import ROOT
from tests.test_campaigns import FIXTURES, make_shop

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
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT_S)
    at.session_state["dataset"] = "shop"
    at.run()
    _ok(at)
    return at


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _frame(at: AppTest, column: str) -> pd.DataFrame:
    """The first table on the page with ``column`` (AppTest does not expose a dataframe's key)."""
    return next(df.value for df in at.dataframe if column in df.value.columns)


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


@ON_BOTH_STORES
def test_filters_change_the_live_count_and_export_is_recorded(shop):
    at = _page()
    assert _metric(at, LIVE) == "40"
    at.multiselect(key="camp_segments").set_value([1]).run()
    _ok(at)
    assert _metric(at, LIVE) == "20"
    # default holdout 10 %: 2 of the 20 kept back
    assert _metric(at, "List size") == "18"
    assert _metric(at, "Holdout (kept back)") == "2"
    at.radio(key="camp_top_mode").set_value("top % by propensity").run()
    at.number_input(key="camp_top_percent").set_value(50.0).run()
    _ok(at)
    assert _metric(at, LIVE) == "10"
    assert _metric(at, "Exported") == "9" and _metric(at, "Holdout (kept back)") == "1"
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [t["name"] for t in spec["data"]] == ["Ranked by propensity", "Random list", "This list"]
    preview = _frame(at, "recommended_items")
    assert list(preview.columns) == list(exports.PLAIN_COLUMNS) and len(preview) == 9
    assert set(preview["segment_name"]) == {"Premium fans"}

    at.text_input(key="camp_name").set_value("half of the fans").run()
    at.button(key="camp_export").click().run()
    _ok(at)
    assert at.success and "recorded" in at.success[0].value
    history = exports.list_exports(shop, "shop")
    assert len(history) == 1 and history.iloc[0]["name"] == "half of the fans"
    assert (history.iloc[0]["exported"], history.iloc[0]["holdout"]) == (9, 1)
    shown = _frame(at, "file_name")
    assert shown["export_id"].tolist() == history["export_id"].tolist()
    labels = [b.label for b in at.download_button]
    assert any(label.startswith("Download cartsight-shop-") for label in labels)
    assert "Download its holdout (1 shoppers)" in labels
    data = exports.export_file(shop, int(history.iloc[0]["export_id"]))
    rows = pd.read_csv(pd.io.common.BytesIO(data), dtype=str)
    assert len(rows) == 9 and set(rows["segment"]) == {"1"}


def test_ad_format_needs_identities_then_warns_small_list(shop):
    at = _page()
    at.selectbox(key="camp_format").set_value("google").run()
    _ok(at)
    assert any("needs an identity file" in e.value for e in at.error)
    data = (FIXTURES / "identities.csv").read_bytes()
    at.file_uploader(key="camp_identities").set_value(("identities.csv", data, "text/csv")).run()
    _ok(at)
    assert any("12 rows read, 6 usable, 6 left out" in c.value for c in at.caption)
    assert _frame(at, "reason")["line"].tolist() == [7, 8, 9, 10, 11, 12]
    # consent_ads yes: u00, u01, u04, u09; 10 % holdout of 4 rounds to 0
    assert _metric(at, "Exported") == "4" and _metric(at, "Without consent") == "36"
    assert any("at least 100 matched people (1,000 for Search" in w.value for w in at.warning)
