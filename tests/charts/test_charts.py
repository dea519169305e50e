"""core.charts.overview: every figure titled, axes labelled with units, the right traces and points."""
from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import pytest

from core.analysis import queries
from core.analysis import product_queries
from core.charts import overview
from core.errors import CartsightError
from tests.conftest import make_dataset
from tests.analysis.test_queries import ROWS


def _funnel_frame():
    return pd.DataFrame(
        {"step": ["view", "cart", "purchase"], "count": [10, 4, 1],
         "rate_from_previous": [math.nan, 0.4, 0.25], "rate_from_first": [1.0, 0.4, 0.1]}
    )


@pytest.mark.parametrize("by, axis", [("shopper", "Shoppers"), ("session", "Sessions")])
def test_funnel_chart(by, axis):
    fig = overview.funnel_chart(_funnel_frame(), by=by)
    assert len(fig.data) == 1 and fig.data[0].type == "funnel"
    assert list(fig.data[0].y) == ["View", "Cart", "Purchase"]
    assert list(fig.data[0].x) == [10, 4, 1]
    assert "%{percentPrevious:.1%} of the previous" in fig.data[0].texttemplate
    assert fig.layout.title.text == f"Funnel view → cart → purchase ({axis.lower()} reaching each step)"
    assert fig.layout.xaxis.title.text == axis and fig.layout.yaxis.title.text == "Step"


def test_funnel_chart_rejects_unknown_unit():
    with pytest.raises(CartsightError, match=r"Parameter 'by' is 'visits'"):
        overview.funnel_chart(_funnel_frame(), by="visits")


def test_activity_chart_stacks_one_trace_per_type_known_first():
    daily = pd.DataFrame(
        {
            "day": pd.to_datetime(["2024-03-01", "2024-03-01", "2024-03-02", "2024-03-02", "2024-03-02"]),
            "event_type": ["view", "purchase", "view", "share", "cart"],
            "events": [5, 1, 7, 2, 3],
        }
    )
    fig = overview.activity_chart(daily)
    assert [t.name for t in fig.data] == ["view", "cart", "purchase", "share"]
    assert [list(t.y) for t in fig.data] == [[5, 7], [3], [1], [2]]
    assert fig.data[3].marker.color == overview.UNKNOWN_COLOUR
    assert fig.layout.barmode == "stack"
    assert fig.layout.title.text == "Activity over time by event type"
    assert fig.layout.xaxis.title.text == "Day (UTC)"
    assert fig.layout.yaxis.title.text == "Events per day"


def test_activity_chart_per_hour():
    hourly = pd.DataFrame(
        {"hour": pd.to_datetime(["2024-03-01 10:00", "2024-03-01 11:00"]), "event_type": ["view", "view"],
         "events": [4, 6]}
    )
    fig = overview.activity_chart(hourly)
    assert len(fig.data) == 1 and list(fig.data[0].y) == [4, 6]
    assert fig.layout.xaxis.title.text == "Hour (UTC)" and fig.layout.yaxis.title.text == "Events per hour"


def test_activity_chart_needs_a_time_column():
    message = r"columns \['week', 'event_type', 'events'\]; expected one named 'day' or 'hour'"
    with pytest.raises(CartsightError, match=message):
        overview.activity_chart(pd.DataFrame({"week": [], "event_type": [], "events": []}))


@pytest.mark.parametrize(
    "by, axis, title",
    [
        ("views", "Views (events)", "Top 2 categories by views"),
        ("revenue", "Revenue (currency of the file)", "Top 2 categories by revenue"),
        ("purchases", "Purchases (events)", "Top 2 categories by purchases"),
    ],
)
def test_top_chart(by, axis, title):
    top = pd.DataFrame(
        {"name": ["shoes", "bags"], "views": [30, 20], "purchases": [3, 2],
         "revenue": [300.5, 99.0], "shoppers": [12, 9]}
    )
    fig = overview.top_chart(top, "Category", by=by)
    assert len(fig.data) == 1 and fig.data[0].orientation == "h"
    assert list(fig.data[0].y) == ["shoes", "bags"]
    assert list(fig.data[0].x) == top[by].tolist()
    assert list(fig.data[0].customdata) == [12, 9]
    assert fig.layout.title.text == title
    assert fig.layout.xaxis.title.text == axis and fig.layout.yaxis.title.text == "Category"


def test_top_chart_for_brands_is_titled_in_the_plural():
    top = pd.DataFrame({"name": ["acme"], "views": [3], "shoppers": [2]})
    assert overview.top_chart(top, "Brand").layout.title.text == "Top 1 brands by views"


def test_price_histogram():
    dist = product_queries.PriceDistribution(
        bins=pd.DataFrame({"low": [1.0, 2.0, 5.0], "high": [2.0, 5.0, 10.0],
                           "label": ["1–2", "2–5", "5–10"], "events": [4, 0, 9]}),
        summary={"p50": 6.5},
    )
    fig = overview.price_histogram(dist)
    assert list(fig.data[0].x) == ["1–2", "2–5", "5–10"] and list(fig.data[0].y) == [4, 0, 9]
    assert fig.layout.title.text == "Price distribution (events per unit-price band), median 6.50"
    assert fig.layout.xaxis.title.text == "Unit price (currency of the file), bands on a 1-2-5 log scale"
    assert fig.layout.yaxis.title.text == "Events"


def test_charts_accept_the_query_results(duck_engine):
    """The builders read the very frames core.analysis.queries returns (column names, dtypes)."""
    did = make_dataset(duck_engine, "tiny", ROWS)
    daily = overview.activity_chart(queries.daily_activity(duck_engine, did))
    assert sum(sum(t.y) for t in daily.data) == 15
    assert [t.name for t in daily.data] == ["view", "cart", "remove from cart", "purchase", "wishlist", "share"]
    assert pd.Timestamp(daily.data[0].x[0]).date() == dt.date(2024, 3, 1)
    fun = overview.funnel_chart(queries.funnel(duck_engine, did, by="session"), by="session")
    assert list(fun.data[0].x) == [5, 2, 3]
    top = overview.top_chart(product_queries.top_brands(duck_engine, did, by="revenue"), "Brand", by="revenue")
    assert list(top.data[0].y) == ["acme", "zen"] and list(top.data[0].x) == pytest.approx([115.0, 20.0])
    hist = overview.price_histogram(product_queries.price_distribution(duck_engine, did))
    assert sum(hist.data[0].y) == 13  # 15 events less one without a price and one at price 0


def test_results_chart_draws_each_group_with_its_wilson_interval():
    from core.campaigns import results
    from core.charts import campaigns

    low_t, high_t = results.wilson_interval(12, 100)
    low_h, high_h = results.wilson_interval(9, 100)
    fig = campaigns.results_chart({"window_days": 14, "treated": 100, "holdout": 100, "conversion_treated": 0.12,
                                   "conversion_holdout": 0.09, "conversion_ci_treated": [low_t, high_t],
                                   "conversion_ci_holdout": [low_h, high_h]})
    assert fig.layout.title.text.startswith("Conversion by group: shoppers who bought within 14 days")
    treated, holdout = fig.data
    assert treated.y[0] == pytest.approx(12.0) and holdout.y[0] == pytest.approx(9.0)
    assert treated.error_y.array[0] == pytest.approx((high_t - 0.12) * 100)
    assert treated.error_y.arrayminus[0] == pytest.approx((0.12 - low_t) * 100)
    assert holdout.error_y.arrayminus[0] == pytest.approx((0.09 - low_h) * 100)
