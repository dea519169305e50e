"""AppTest of pages/segments.py on a store of simulated shoppers (before and after a run).

The store is DuckDB; the main path (a run, its charts and cards) runs on PostgreSQL as well.
"""
from __future__ import annotations

import datetime as dt

import pytest
from streamlit.testing.v1 import AppTest

from core import store
from core.analysis import rfm, segments
from tests.conftest import ON_BOTH_STORES, load_simulated_shop, run_page
from tests.conftest import plotly_charts as _charts
from tests.conftest import plotly_values as values
from tests.e2e_support import ROOT

PAGE = str(ROOT / "pages" / "segments.py")
TIMEOUT_S = 120
N_USERS = 300


@pytest.fixture
def shop(app_store_url):
    """Simulated shoppers in a store of this test's own (DuckDB, or PostgreSQL under ``ON_BOTH_STORES``)."""
    engine = store.make_engine(app_store_url)
    load_simulated_shop(engine, "shop", N_USERS, weeks=4, seed=3)
    yield engine
    engine.dispose()


def _page() -> AppTest:
    return run_page(PAGE, TIMEOUT_S, dataset="shop")


def test_before_a_run_offers_run_and_shows_rfm(shop):
    at = _page()
    assert "No segments yet for this dataset: choose the number of segments and press **Run**." in [i.value for i in at.info]
    assert at.button(key="segments_run").label == "Run"
    assert at.select_slider(key="segments_k").value == "auto"
    charts = _charts(at)
    assert list(charts) == ["RFM grid"]
    z = values(charts["RFM grid"]["data"][0]["z"])
    buyers = int(sum(sum(row) for row in z))
    table = rfm.rfm_table(shop, store.get_dataset(shop, "shop")["dataset_id"])
    assert buyers == int((table["rfm_group"] != rfm.NEVER_BOUGHT).sum()) > 0


@ON_BOTH_STORES
def test_run_shows_map_cards_comparison(shop):
    at = _page()
    at.select_slider(key="segments_k").set_value(3)
    at.button(key="segments_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.success and "into 3 segments" in at.success[0].value
    run = segments.latest_run(shop, "shop")
    assert run.n_segments == 3
    charts = _charts(at)
    assert set(charts) == {"Map of shoppers by segment", "Segments", "Segment comparison", "RFM grid"}
    traces = charts["Map of shoppers by segment"]["data"]
    assert sorted(t["name"] for t in traces) == sorted(p["name"] for p in run.profiles)
    assert sum(len(values(t["x"])) for t in traces) == N_USERS
    sizes = charts["Segments"]["data"][0]
    assert values(sizes["x"]) == pytest.approx([100 * p["share_shoppers"] for p in run.profiles])
    comparison = charts["Segment comparison"]["data"]
    assert [t["name"] for t in comparison] == [run.profiles[0]["name"], run.profiles[1]["name"]]
    shoppers = [m.value for m in at.metric if m.label == "Shoppers"]
    assert sorted(shoppers[:3]) == sorted(f"{p['size']:,}" for p in run.profiles)  # two columns of cards
    opens = [b for b in at.button if b.label == "Open its shoppers"]
    assert len(opens) == 3 + 2  # a card per segment plus the two compared
    at.selectbox(key="segments_compare_b").set_value(2).run()
    comparison = _charts(at)["Segment comparison"]["data"]
    assert [t["name"] for t in comparison] == [run.profiles[0]["name"], run.profiles[2]["name"]]


def test_open_a_segments_shoppers(shop):
    segments.run_segmentation(shop, "shop", n_segments=2)
    at = _page()
    at.button(key="segments_card_open_1").click().run()
    assert at.session_state["shopper_from_segment"]["segment"] == 1
    assert at.session_state["shopper_from_segment"]["run_id"] == segments.latest_run(shop, "shop").run_id


def test_too_many_segments_for_the_data_is_a_message(app_store_url):
    engine = store.make_engine(app_store_url)
    load_simulated_shop(engine, "shop", 12, weeks=2, seed=1)
    engine.dispose()
    at = _page()
    at.select_slider(key="segments_k").set_value(4)
    at.button(key="segments_run").click().run()
    assert not at.exception
    assert "4 segments need at least 20" in at.error[0].value


def test_a_run_made_before_an_append_is_marked_as_built_on_older_data(shop, tmp_path):
    from core.ingest.load import ingest_file

    at = _page()
    at.select_slider(key="segments_k").set_value(3)
    at.button(key="segments_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not [w.value for w in _page().warning if "added since" in w.value]
    end = store.get_dataset(shop, "shop")["last_event"]
    week = tmp_path / "week.csv"
    later = end + dt.timedelta(days=1)
    week.write_text(f"user_id,event_time,event_type,product_id\nnewcomer,{later:%Y-%m-%d %H:%M:%S},view,p1\n")
    ingest_file(shop, week, "shop", append=True)
    notes = [w.value.replace("\\", "") for w in _page().warning if "added since" in w.value]
    assert notes == [f"Built on the data up to {end:%Y-%m-%d %H:%M}; 1 event was added since: re-run to include them."]
