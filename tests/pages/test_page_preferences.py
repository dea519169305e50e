"""pages/preferences.py under Streamlit's AppTest, on a DuckDB store in a temporary folder (and, for
the tests marked ``ON_BOTH_STORES``, on a PostgreSQL schema of their own).

The data is the hand-checked dataset of tests/analysis/test_preferences.py (its docstring has the sums).
"""
from __future__ import annotations

import datetime as dt
import json

import pytest
from streamlit.testing.v1 import AppTest

from core import store
from tests.conftest import ON_BOTH_STORES, ROOT, make_dataset
from tests.analysis.test_preferences import ROWS, SEGMENTS, add_run

PAGE = str(ROOT / "pages" / "preferences.py")


@pytest.fixture
def store_url(app_store_url):
    """A store of this test's own (DuckDB, or PostgreSQL under ``ON_BOTH_STORES``), named by ``CARTSIGHT_DB_URL``."""
    return app_store_url


def _load(url: str, name: str, segmented: bool) -> None:
    engine = store.make_engine(url)
    did = make_dataset(engine, name, ROWS)
    if segmented:
        add_run(engine, did, SEGMENTS, dt.datetime(2024, 3, 1))
    engine.dispose()  # the page opens its own engine on the same file


def _run(name: str) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["dataset"] = name
    return at.run()


def _charts(at: AppTest) -> dict[str, dict]:
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return {s["layout"]["title"]["text"]: s for s in specs}


def _chart(at: AppTest, title_start: str) -> dict:
    found = [spec for title, spec in _charts(at).items() if title.startswith(title_start)]
    assert len(found) == 1, list(_charts(at))
    return found[0]


def _bars(spec: dict, trace: int = 0) -> dict:
    data = spec["data"][trace]
    return dict(zip(data["y"], data["x"]))


@ON_BOTH_STORES
def test_page_shows_heatmap_shares_and_bands(store_url):
    _load(store_url, "tiny", segmented=True)
    at = _run("tiny")
    assert not at.exception
    heat = _chart(at, "Category affinity by segment")["data"][0]
    assert heat["type"] == "heatmap"
    assert heat["x"] == ["0 · tech", "1 · home"] and heat["y"] == ["electronics", "home"]
    assert heat["z"] == [pytest.approx([5 / 3, 1 / 3]), pytest.approx([1 / 3, 5 / 3])]
    assert [[cell[0] for cell in row] for row in heat["customdata"]] == [[2, 1], [1, 2]]  # shoppers per cell
    assert heat["text"][0][0] == "×1.67*"  # fewer than 30 shoppers: marked
    assert heat["zmid"] == 1.0

    brands = _chart(at, "Brand share of events — Everyone")
    assert len(brands["data"]) == 1
    assert _bars(brands) == pytest.approx({"acme": 4 / 11, "zen": 4 / 11, "casa": 3 / 11})
    assert brands["data"][0]["text"] == ["few shoppers"] * 3
    bands = _chart(at, "Price band share of events — Everyone")
    assert bands["data"][0]["y"] == ["budget", "mid", "premium", "luxury"]
    assert bands["data"][0]["x"] == pytest.approx([2 / 11, 2 / 11, 3 / 11, 4 / 11])
    assert _bars(_chart(at, "Category share of events")) == pytest.approx({"electronics": 0.5, "home": 0.5})

    edges = next(df.value for df in at.dataframe if "Budget" in df.value.columns)
    row = edges.set_index("Category").loc["electronics"]
    # 4 items: too few for bands of its own, so the catalogue's 9 items give them (8 / 12 / 20)
    assert (row["Items"], row["Bands from"]) == (4, "whole catalogue (too few items)")
    assert (row["Budget"], row["Mid"], row["Premium"], row["Luxury"]) == (
        "< 8.00", "8.00 – < 12.00", "12.00 – < 20.00", "≥ 20.00")


@ON_BOTH_STORES
def test_filters_change_the_numbers(store_url):
    _load(store_url, "tiny", segmented=True)
    at = _run("tiny")
    group = at.selectbox(key="preferences_group_1")
    group.set_value(0).run()
    assert not at.exception
    cats = _chart(at, "Category share of events — Segment 0 · tech")
    assert [t["name"] for t in cats["data"]] == ["Segment 0 · tech", "Everyone"]
    assert _bars(cats) == pytest.approx({"electronics": 5 / 6, "home": 1 / 6})
    assert [c[0] for c in cats["data"][0]["customdata"]] == pytest.approx([5 / 3, 1 / 3])  # affinity in the hover

    at.radio(key="preferences_events").set_value("view").run()
    cats = _chart(at, "Category share of views — Segment 0 · tech")
    assert _bars(cats) == pytest.approx({"electronics": 3 / 4, "home": 1 / 4})
    heat = _chart(at, "Category affinity by segment")["data"][0]
    assert heat["z"][0] == pytest.approx([1.5, 0.5])  # views only: 3/4 and 1/4 of tech's views vs 1/2

    at.radio(key="preferences_measure").set_value("revenue").run()
    cats = _chart(at, "Category share of revenue — Segment 0 · tech")
    assert _bars(cats) == pytest.approx({"electronics": 1.0, "home": 0.0})


def test_drilldown_shows_the_brands_of_the_chosen_category(store_url):
    _load(store_url, "tiny", segmented=True)
    at = _run("tiny")
    drill = at.selectbox(key="preferences_drill_category")
    assert list(drill.options) == ["electronics", "home"]
    assert _bars(_chart(at, "Brands within electronics")) == pytest.approx({"acme": 4 / 6, "zen": 2 / 6})
    drill.set_value("home").run()
    assert not at.exception
    assert _bars(_chart(at, "Brands within home")) == pytest.approx({"casa": 3 / 5, "zen": 2 / 5})
    table = at.dataframe[-2].value  # the drill-down's table, just above the price bands
    assert table["Value"].tolist() == ["casa", "zen"]
    assert table["Note"].tolist() == ["few shoppers", "few shoppers"]


def test_without_segmentation_everyone_and_a_hint(store_url):
    _load(store_url, "plain", segmented=False)
    at = _run("plain")
    assert not at.exception
    assert any("run **Segments**" in i.value for i in at.info)
    assert not any(t.startswith("Category affinity") for t in _charts(at))
    assert list(at.selectbox(key="preferences_group_none").options) == ["Everyone"]
    assert _bars(_chart(at, "Brand share of events — Everyone"))["acme"] == pytest.approx(4 / 11)
