"""AppTest of pages/shopper.py: find a shopper, their timeline, segment, preferences, forecast; suggestions.

The store is DuckDB; tests marked ``ON_BOTH_STORES`` run on PostgreSQL as well.
"""
from __future__ import annotations

import datetime as dt

import pytest
from streamlit.testing.v1 import AppTest

from core import store
from core.analysis import segments
from tests.conftest import ON_BOTH_STORES, load_simulated_shop, run_page
from tests.conftest import plotly_charts as _charts
from tests.conftest import plotly_values as values
from tests.e2e_support import ROOT

PAGE = str(ROOT / "pages" / "shopper.py")
TIMEOUT_S = 120


@pytest.fixture
def shop(app_store_url):
    """Simulated shoppers in a store of this test's own (DuckDB, or PostgreSQL under ``ON_BOTH_STORES``)."""
    engine = store.make_engine(app_store_url)
    sim = load_simulated_shop(engine, "shop", 200, weeks=3, seed=2)
    yield {"engine": engine, "events": sim.events}
    engine.dispose()


def _page(**state) -> AppTest:
    return run_page(PAGE, TIMEOUT_S, dataset="shop", **state)


def _busiest(events) -> tuple[str, int, int]:
    counts = events.groupby("user_id").size()
    user = str(counts.idxmax())
    mine = events[events["user_id"].astype(str) == user]
    return user, int(counts.max()), int(mine["user_session"].nunique())


def test_asks_for_an_id_first(shop):
    at = _page()
    assert "Type a shopper's id, or pick one of the suggestions." in [i.value for i in at.info]
    assert at.radio(key="shopper_suggest_kind").options == ["highest chance to buy", "biggest spenders"]  # no segments yet


@ON_BOTH_STORES
def test_one_shopper_timeline_and_numbers(shop):
    user, n_events, n_sessions = _busiest(shop["events"])
    at = _page(shopper_id=user)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Events"] == f"{n_events:,}" and metrics["Sessions"] == f"{n_sessions:,}"
    charts = _charts(at)
    timeline = charts["Timeline"]["data"]
    assert sum(len(values(t["x"])) for t in timeline) == n_events
    sessions = charts["Sessions"]["data"]
    assert sum(len(values(t["x"])) for t in sessions) == n_sessions
    assert "Preferences by category group" in charts and "Preferences by price band" in charts
    infos = [i.value for i in at.info]
    assert any("Not segmented yet" in i for i in infos) and any("No forecast for this shopper" in i for i in infos)


def test_unknown_shopper_is_a_warning(shop):
    at = _page(shopper_id="nobody-here")
    assert at.warning[0].value == "No shopper with id 'nobody-here' in dataset 'shop'."
    assert not at.get("plotly_chart")


@ON_BOTH_STORES
def test_segment_and_forecast_are_shown(shop):
    engine = shop["engine"]
    run = segments.run_segmentation(engine, "shop", n_segments=3)
    user, _, _ = _busiest(shop["events"])
    did = store.get_dataset(engine, "shop")["dataset_id"]
    with engine.begin() as conn:
        conn.execute(store.models.insert().values(model_version="v1", dataset_id=did, created_at=dt.datetime(2024, 5, 1),
                                                  horizon_days=7, path="/nonexistent", status="ready"))
        conn.execute(store.predictions.insert().values(
            dataset_id=did, model_version="v1", user_id=user, purchase_propensity=0.42, next_event_type="cart",
            p_purchase=0.3313, next_category_p=0.25,
            next_category="apparel.jeans", top_items="1 2 3", reasons="viewed jeans twice; carted yesterday",
            expected_revenue=1312.5, p_inactive=0.081))
    at = _page(shopper_id=user)
    seg = run.assignments.set_index("user_id").loc[user]
    assert f"**Segment:** {seg['segment']}. {seg['segment_name']} (run {run.run_id})" in [m.value for m in at.markdown]
    metrics = {m.label: m.value for m in at.metric}
    # the two purchase numbers are named apart, in the words of the Forecasts and Campaigns pages
    assert metrics["Chance to buy within 7 days"] == "42.0 %" and metrics["Likely next step"] == "cart"
    assert metrics["Next step: purchase"] == "33.1 %"
    assert metrics["Likely next category"] == "apparel.jeans"
    helps = {m.label: m.help for m in at.metric}
    assert "not calibrated" in helps["Likely next step"] and "Chance to buy within 7 days" in helps["Likely next step"]
    assert "Chance of that category: 25.0 %" in helps["Likely next category"]
    assert metrics["Expected revenue within 7 days"] == "1,312.50"
    assert metrics["Chance of no activity within 7 days"] == "8.1 %"
    assert "**Why**\n- viewed jeans twice\n- carted yesterday" in [m.value for m in at.markdown]
    bars = _charts(at)["Preferences by category group"]["data"]
    assert [t["name"] for t in bars] == ["This shopper", "Their segment", "Everyone"]
    tables = [d.value for d in at.dataframe]
    categories = next(t for t in tables if "Segment's share" in t.columns and "value" in t.columns)
    ev = shop["events"][shop["events"]["user_id"].astype(str) == user]
    cat = ev["category_code"].astype(object).where(ev["category_code"].notna(), ev["category_id"].astype(str))
    assert categories["events"].iloc[0] == cat.value_counts().max()
    assert categories["Segment's share"].notna().all()


def test_arriving_from_a_segment_lists_its_members(shop):
    engine = shop["engine"]
    run = segments.run_segmentation(engine, "shop", n_segments=2)
    at = _page(shopper_from_segment={"segment": 1, "run_id": run.run_id})
    assert at.radio(key="shopper_suggest_kind").value == "segment members"
    assert at.selectbox(key="shopper_suggest_segment").value == 1
    pick = at.selectbox(key="shopper_suggest_pick")
    members = set(run.assignments.loc[run.assignments.segment == 1, "user_id"])
    assert pick.options and {o.split(" — ")[0] for o in pick.options} <= members
    first = pick.options[0].split(" — ")[0]
    pick.set_value(first).run()
    assert at.text_input(key="shopper_id").value == first
    assert {m.label: m.value for m in at.metric}["Events"] != "0"


def test_biggest_spenders_suggestion(shop):
    at = _page()
    at.radio(key="shopper_suggest_kind").set_value("biggest spenders").run()
    ev = shop["events"]
    bought = ev[ev["event_type"] == "purchase"].groupby("user_id")["price"].sum().sort_values(ascending=False)
    first = at.selectbox(key="shopper_suggest_pick").options[0]
    assert first.startswith(f"{bought.index[0]} — revenue {bought.iloc[0]:,.2f}")


def test_a_version_without_value_forecasts_shows_dashes(shop):
    engine = shop["engine"]
    user, _, _ = _busiest(shop["events"])
    did = store.get_dataset(engine, "shop")["dataset_id"]
    with engine.begin() as conn:
        conn.execute(store.models.insert().values(model_version="v0", dataset_id=did, created_at=dt.datetime(2024, 5, 1),
                                                  horizon_days=1, path="/nonexistent", status="ready"))
        conn.execute(store.predictions.insert().values(dataset_id=did, model_version="v0", user_id=user,
                                                       purchase_propensity=0.1, next_event_type="view"))
    metrics = {m.label: m.value for m in _page(shopper_id=user).metric}
    assert metrics["Expected revenue within 1 day"] == "—" and metrics["Chance of no activity within 1 day"] == "—"
