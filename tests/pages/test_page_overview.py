"""pages/overview.py under Streamlit's AppTest, on a DuckDB store in a temporary folder.

Tests marked ``ON_BOTH_STORES`` run on a PostgreSQL schema of their own as well.
"""
from __future__ import annotations

import datetime as dt
import json

import pytest
from streamlit.testing.v1 import AppTest

from core import store
from tests.conftest import ON_BOTH_STORES, ROOT, make_dataset
from tests.analysis.test_queries import ROWS

PAGE = str(ROOT / "pages" / "overview.py")


@pytest.fixture
def store_url(app_store_url):
    """A store of this test's own (DuckDB, or PostgreSQL under ``ON_BOTH_STORES``), named by ``CARTSIGHT_DB_URL``."""
    return app_store_url


def _load(url: str, name: str, rows: list[dict]) -> None:
    engine = store.make_engine(url)
    make_dataset(engine, name, rows)
    engine.dispose()  # the page opens its own engine on the same file


def _run(name: str | None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    if name is not None:
        at.session_state["dataset"] = name
    return at.run()


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _chart(at: AppTest, title_start: str) -> dict:
    found = [c for c in _charts(at) if c["layout"]["title"]["text"].startswith(title_start)]
    assert len(found) == 1, [c["layout"]["title"]["text"] for c in _charts(at)]
    return found[0]


@ON_BOTH_STORES
def test_overview_shows_the_hand_checked_numbers(store_url):
    _load(store_url, "tiny", ROWS)
    at = _run("tiny")
    assert not at.exception
    m = _metrics(at)
    assert {k: m[k] for k in ("Shoppers", "Sessions", "Events", "Buyers", "Orders")} == {
        "Shoppers": "4", "Sessions": "7", "Events": "15", "Buyers": "2", "Orders": "3",
    }
    assert m["Revenue"] == "135.00"
    assert m["Conversion"] == "50.0 %"
    assert m["Session conversion"] == "42.9 %"
    assert m["Average order value"] == "45.00"
    assert m["Events per shopper"] == "3.8"
    assert m["Median price"] == "20.00"

    assert len(at.get("plotly_chart")) == 5
    funnel = _chart(at, "Funnel")["data"][0]
    assert funnel["type"] == "funnel" and funnel["x"] == [3, 2, 2]
    activity = _chart(at, "Activity")
    assert sum(sum(trace["y"]) for trace in activity["data"]) == 15
    assert activity["layout"]["yaxis"]["title"]["text"] == "Events per hour"  # 2.3 days of data: hourly
    categories = _chart(at, "Top 2 categories by views")["data"][0]
    assert categories["y"] == ["electronics", "home"] and categories["x"] == [3, 2]
    brands = _chart(at, "Top 2 brands by views")["data"][0]
    assert brands["y"] == ["acme", "zen"] and brands["x"] == [3, 1]
    prices = _chart(at, "Price distribution")["data"][0]
    assert prices["y"] == [2, 0, 0, 2, 0, 3, 0, 6]

    assert any("'share'" in w.value for w in at.warning)  # the unknown event type is reported
    assert not at.info  # the file lacks nothing the page needs


def test_large_revenue_is_shortened_in_its_tile(store_url):
    big = dict(ROWS[3], price=600_000.0, quantity=3)  # u1's purchase of A at 1.8 million
    _load(store_url, "big", [*ROWS[:3], big, *ROWS[4:]])
    at = _run("big")
    revenue = next(m for m in at.metric if m.label == "Revenue")
    assert revenue.value == "1.80 million"  # 1,800,000 + 15 + 40 - 20
    assert "1,800,035.00" in revenue.help


@ON_BOTH_STORES
def test_toggles_switch_the_funnel_unit_and_the_ranking(store_url):
    _load(store_url, "tiny", ROWS)
    at = _run("tiny")
    at.radio(key="overview_funnel_by").set_value("session").run()
    assert _chart(at, "Funnel")["data"][0]["x"] == [5, 2, 3]
    captions = [c.value for c in at.caption]
    assert "Sessions that bought, as a share of those that viewed: 60.0 %." in captions
    assert any(c.startswith("More sessions reached 'purchase' than 'cart'") for c in captions)
    at.checkbox(key="overview_funnel_closed").check().run()
    assert _chart(at, "Funnel")["data"][0]["x"] == [5, 2, 1]  # only s1 viewed, carted and bought
    assert "Sessions that viewed, carted and bought, as a share of those that viewed: 20.0 %." in [
        c.value for c in at.caption
    ]
    at.radio(key="overview_top_by").set_value("revenue").run()
    categories = _chart(at, "Top 2 categories by revenue")
    assert categories["data"][0]["x"] == pytest.approx([120.0, 15.0])
    assert categories["layout"]["xaxis"]["title"]["text"] == "Revenue (currency of the file)"
    assert not at.exception


@ON_BOTH_STORES
def test_date_range_filters_every_number(store_url):
    _load(store_url, "tiny", ROWS)
    at = _run("tiny")
    at.date_input[0].set_value((dt.date(2024, 3, 2), dt.date(2024, 3, 2))).run()
    m = _metrics(at)
    assert (m["Events"], m["Shoppers"], m["Orders"], m["Revenue"]) == ("5", "3", "2", "55.00")
    activity = _chart(at, "Activity")
    assert {day[:10] for trace in activity["data"] for day in trace["x"]} == {"2024-03-02"}
    assert not at.exception


def test_activity_is_daily_when_the_data_spans_weeks(store_url):
    later = dict(ROWS[-1], event_time=dt.datetime(2024, 3, 20, 9, 0))
    _load(store_url, "weeks", [*ROWS[:-1], later])
    at = _run("weeks")
    activity = _chart(at, "Activity")
    assert activity["layout"]["yaxis"]["title"]["text"] == "Events per day"
    days = sorted({day[:10] for trace in activity["data"] for day in trace["x"]})
    assert days == ["2024-03-01", "2024-03-02", "2024-03-03", "2024-03-20"]
    assert not at.exception


@ON_BOTH_STORES
def test_a_file_without_prices_or_brands_says_so(store_url):
    # like Taobao UserBehavior: no price, no brand, no session ids from the file
    rows = [dict(r, price=None, brand=None) for r in ROWS]
    _load(store_url, "taobao-like", rows)
    at = _run("taobao-like")
    assert not at.exception
    m = _metrics(at)
    assert m["Revenue"] == "—" and m["Average order value"] == "—" and m["Orders"] == "3"
    infos = " ".join(i.value for i in at.info)
    assert "The file has no prices" in infos and "no brands" in infos
    assert "no price distribution to show" in infos
    assert "no brand column" in infos
    titles = [c["layout"]["title"]["text"] for c in _charts(at)]
    assert not any(t.startswith(("Price distribution", "Top 2 brands")) for t in titles)
    assert "Top 2 categories by views" in titles


def test_a_views_only_file_has_no_funnel_chart(store_url):
    # like YooChoose clicks: views only, no category or brand or price
    rows = [dict(r, event_type="view", price=None, brand=None, category=None) for r in ROWS]
    _load(store_url, "clicks", rows)
    at = _run("clicks")
    assert not at.exception
    assert _metrics(at)["Buyers"] == "0" and _metrics(at)["Conversion"] == "0.0 %"
    infos = " ".join(i.value for i in at.info)
    assert "A funnel needs at least two of the steps" in infos and "'view'" in infos
    assert [c["layout"]["title"]["text"] for c in _charts(at)] == ["Activity over time by event type"]


def test_empty_store_points_to_the_data_page(store_url):
    at = _run(None)
    assert not at.exception
    assert any("No dataset yet" in i.value for i in at.info)
    assert not at.metric and not at.get("plotly_chart")
