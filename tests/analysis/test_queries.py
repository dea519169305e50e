"""core.analysis.queries on a tiny hand-made dataset, on DuckDB and PostgreSQL (the ``engine`` fixture).

The dataset (15 events, 4 shoppers, 7 sessions, 3 days) and what every number below is:

u1  s1 2024-03-01  view A, view B, cart A, purchase A (100, qty NULL = 1)
    s2 2024-03-02  view C, purchase C (5 x 3)
u2  s3 2024-03-01  view A, cart A, remove_from_cart A (at 23:59:59, still March 1st)
    s4 2024-03-02  view D (0.5), "share" D (unknown type)
u3  s5 2024-03-02  purchase B (20 x 2)
    s6 2024-03-03  purchase B (20 x -1: a cancellation)
u4  s1 2024-03-03  view E (no price, category or brand), wishlist E (price 0)

Items: A electronics/acme 100, B electronics/zen 20, C home/acme 5, D home/(no brand) 0.5.
u4's session id "s1" repeats u1's: sessions are (user, session) pairs, so there are 7.
"""
from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import pytest

from core.analysis import queries
from core.analysis import product_queries
from core.errors import CartsightError
from tests.conftest import make_dataset

ITEMS = {
    "A": ("electronics", "acme", 100.0),
    "B": ("electronics", "zen", 20.0),
    "C": ("home", "acme", 5.0),
    "D": ("home", None, 0.5),
    "E": (None, None, None),
}


def _ev(user, session, when, event_type, item, quantity=None, price="item"):
    category, brand, item_price = ITEMS[item]
    return {
        "user_id": user, "session_id": session, "event_time": dt.datetime.fromisoformat(when),
        "event_type": event_type, "item_id": item, "category": category, "brand": brand,
        "price": item_price if price == "item" else price, "quantity": quantity,
    }


ROWS = [
    _ev("u1", "s1", "2024-03-01 10:00:00", "view", "A"),
    _ev("u1", "s1", "2024-03-01 10:01:00", "view", "B"),
    _ev("u1", "s1", "2024-03-01 10:02:00", "cart", "A"),
    _ev("u1", "s1", "2024-03-01 10:05:00", "purchase", "A"),
    _ev("u1", "s2", "2024-03-02 00:00:00", "view", "C"),
    _ev("u1", "s2", "2024-03-02 00:03:00", "purchase", "C", quantity=3),
    _ev("u2", "s3", "2024-03-01 23:50:00", "view", "A"),
    _ev("u2", "s3", "2024-03-01 23:55:00", "cart", "A"),
    _ev("u2", "s3", "2024-03-01 23:59:59", "remove_from_cart", "A"),
    _ev("u2", "s4", "2024-03-02 12:00:00", "view", "D"),
    _ev("u2", "s4", "2024-03-02 12:01:00", "share", "D"),
    _ev("u3", "s5", "2024-03-02 15:00:00", "purchase", "B", quantity=2),
    _ev("u3", "s6", "2024-03-03 09:00:00", "purchase", "B", quantity=-1),
    _ev("u4", "s1", "2024-03-03 18:00:00", "view", "E"),
    _ev("u4", "s1", "2024-03-03 18:01:00", "wishlist", "E", price=0.0),
]

# Another dataset in the same store: every query must leave it out.
OTHER = [
    _ev("x1", "t1", "2024-03-01 11:00:00", "view", "A"),
    _ev("x1", "t1", "2024-03-01 11:05:00", "purchase", "A", quantity=50),
]


@pytest.fixture
def ds(engine):
    make_dataset(engine, "other-before", OTHER)
    did = make_dataset(engine, "tiny", ROWS)
    make_dataset(engine, "other-after", OTHER)
    return engine, did


# --- KPIs ----------------------------------------------------------------------------------


def test_kpis_whole_dataset(ds):
    engine, did = ds
    k = queries.kpis(engine, did)
    assert k["events"] == 15
    assert k["shoppers"] == 4
    assert k["sessions"] == 7  # s1 of u1 and s1 of u4 are two sessions
    assert k["buyers"] == 2  # u1 and u3; u2 only carted, u4 only wished
    assert k["orders"] == 3  # s1, s2, s5; s6 holds only a cancellation
    assert k["purchases"] == 3
    assert k["cancellations"] == 1
    assert k["revenue"] == pytest.approx(100 + 15 + 40 - 20)
    assert k["conversion"] == pytest.approx(2 / 4)
    assert k["session_conversion"] == pytest.approx(3 / 7)
    assert k["average_order_value"] == pytest.approx(135 / 3)
    assert k["events_per_shopper"] == pytest.approx(15 / 4)
    assert k["first_event"] == dt.datetime(2024, 3, 1, 10, 0)
    assert k["last_event"] == dt.datetime(2024, 3, 3, 18, 1)


def test_kpis_time_window_is_start_inclusive_end_exclusive(ds):
    engine, did = ds
    k = queries.kpis(engine, did, start=dt.datetime(2024, 3, 2), end=dt.datetime(2024, 3, 3))
    # March 2nd only: u1 s2 (view, purchase 15), u2 s4 (view, share), u3 s5 (purchase 40)
    assert (k["events"], k["shoppers"], k["sessions"], k["buyers"], k["orders"]) == (5, 3, 3, 2, 2)
    assert k["revenue"] == pytest.approx(55)
    assert k["conversion"] == pytest.approx(2 / 3)
    assert k["first_event"] == dt.datetime(2024, 3, 2, 0, 0)


def test_kpis_timezone_aware_bounds_are_converted_to_utc(ds):
    engine, did = ds
    plus_one = dt.timezone(dt.timedelta(hours=1))
    # 2024-03-03 01:00+01:00 is midnight UTC: the window holds March 1st and 2nd
    k = queries.kpis(engine, did, end=dt.datetime(2024, 3, 3, 1, 0, tzinfo=plus_one))
    assert k["events"] == 7 + 5  # March 1st: s1 (4) and s3 (3); March 2nd: 5


def test_kpis_empty_window_gives_zeros_and_nones(ds):
    engine, did = ds
    k = queries.kpis(engine, did, start=dt.datetime(2030, 1, 1))
    assert (k["events"], k["shoppers"], k["sessions"], k["orders"]) == (0, 0, 0, 0)
    assert k["revenue"] is None and k["conversion"] is None and k["average_order_value"] is None
    assert k["first_event"] is None


def test_kpis_without_prices_have_no_revenue(engine):
    rows = [dict(r, price=None) for r in ROWS]
    did = make_dataset(engine, "no-prices", rows)
    k = queries.kpis(engine, did)
    assert k["revenue"] is None and k["average_order_value"] is None
    assert k["orders"] == 3


@pytest.mark.parametrize(
    "start, end",
    [(dt.datetime(2024, 3, 2), dt.datetime(2024, 3, 2)), (dt.datetime(2024, 3, 3), dt.datetime(2024, 3, 1))],
)
def test_empty_or_reversed_window_is_refused(ds, start, end):
    engine, did = ds
    with pytest.raises(CartsightError, match=r"start=2024-03-0\d 00:00:00 is not before end="):
        queries.kpis(engine, did, start=start, end=end)


def test_window_bounds_may_be_dates_or_aware_datetimes_together(ds):
    engine, did = ds
    utc_midnight = dt.datetime(2024, 3, 3, tzinfo=dt.UTC)
    assert queries.kpis(engine, did, start=dt.date(2024, 3, 2), end=utc_midnight)["events"] == 5


def test_a_bound_of_another_type_is_refused(ds):
    engine, did = ds
    with pytest.raises(CartsightError, match=r"Parameter 'start' is '2024-03-02'; expected a datetime or a date"):
        queries.kpis(engine, did, start="2024-03-02")


def test_an_unreachable_database_raises_a_store_error():
    import sqlalchemy as sa

    from core.errors import StoreUnavailableError

    nowhere = sa.create_engine("postgresql+psycopg://cartsight:x@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(StoreUnavailableError) as caught:
        queries.kpis(nowhere, 1)
    message = str(caught.value)  # the database named (password masked), the driver's reason, what to do
    assert message.startswith("The database at postgresql+psycopg://cartsight:***@127.0.0.1:1/none")
    assert "cannot be reached: " in message and "Connection refused" in message and "server is running" in message


def test_kpis_accept_a_connection(ds):
    engine, did = ds
    with engine.connect() as conn:
        assert queries.kpis(conn, did)["events"] == 15


def test_column_coverage(ds):
    engine, did = ds
    c = queries.column_coverage(engine, did)
    assert c == {
        "events": 15, "with_price": 14, "with_category": 13, "with_brand": 11, "with_item": 15,
        "with_quantity": 3, "with_session": 15, "purchases_with_price": 4,
    }


# --- funnel --------------------------------------------------------------------------------


def _rates(values):
    return [None if math.isnan(v) else round(v, 6) for v in values]


@pytest.mark.parametrize(
    "by, strict, counts",
    [
        ("shopper", False, [3, 2, 2]),  # viewed u1 u2 u4 · carted u1 u2 · bought u1 u3
        ("shopper", True, [3, 2, 1]),  # u3 bought without a view or a cart
        ("session", False, [5, 2, 3]),  # views in s1 s2 s3 s4 u4/s1 · carts s1 s3 · orders s1 s2 s5
        ("session", True, [5, 2, 1]),  # only s1 has all three
    ],
)
def test_funnel_counts(ds, by, strict, counts):
    engine, did = ds
    f = queries.funnel(engine, did, by=by, strict=strict)
    assert f["step"].tolist() == ["view", "cart", "purchase"]
    assert f["count"].tolist() == counts
    assert _rates(f["rate_from_previous"]) == [None, round(counts[1] / counts[0], 6), round(counts[2] / counts[1], 6)]
    assert _rates(f["rate_from_first"]) == [1.0, round(counts[1] / counts[0], 6), round(counts[2] / counts[0], 6)]


def test_funnel_rates_are_nan_after_an_empty_step(engine):
    # transactions only (like Online Retail): nobody viewed or carted
    did = make_dataset(engine, "purchases-only", [r for r in ROWS if r["event_type"] == "purchase"])
    f = queries.funnel(engine, did)
    assert f["count"].tolist() == [0, 0, 2]
    assert _rates(f["rate_from_previous"]) == [None, None, None]
    assert _rates(f["rate_from_first"]) == [None, None, None]


def test_funnel_rejects_an_unknown_unit(ds):
    engine, did = ds
    with pytest.raises(CartsightError, match=r"Parameter 'by' is 'visit'; expected one of \['shopper', 'session'\]"):
        queries.funnel(engine, did, by="visit")


# --- activity ------------------------------------------------------------------------------


def test_daily_activity(ds):
    engine, did = ds
    d = queries.daily_activity(engine, did)
    got = {(row.day.date().isoformat(), row.event_type): row.events for row in d.itertuples()}
    assert got == {
        ("2024-03-01", "cart"): 2, ("2024-03-01", "purchase"): 1,
        ("2024-03-01", "remove_from_cart"): 1, ("2024-03-01", "view"): 3,
        ("2024-03-02", "purchase"): 2, ("2024-03-02", "share"): 1, ("2024-03-02", "view"): 2,
        ("2024-03-03", "purchase"): 1, ("2024-03-03", "view"): 1, ("2024-03-03", "wishlist"): 1,
    }
    assert d["day"].is_monotonic_increasing
    assert pd.api.types.is_datetime64_any_dtype(d["day"])


def test_daily_activity_window(ds):
    engine, did = ds
    d = queries.daily_activity(engine, did, start=dt.datetime(2024, 3, 3))
    # March 3rd: u3's cancellation and u4's view and wishlist
    assert d["events"].sum() == 3 and set(d["day"].dt.day) == {3}


def test_hourly_activity(ds):
    engine, did = ds
    h = queries.hourly_activity(engine, did)
    per_hour = h.groupby("hour")["events"].sum()
    assert {t.strftime("%d %H"): n for t, n in per_hour.items()} == {
        "01 10": 4, "01 23": 3, "02 00": 2, "02 12": 2, "02 15": 1, "03 09": 1, "03 18": 2,
    }
    first = h[h["hour"] == pd.Timestamp("2024-03-01 10:00")]
    assert dict(zip(first["event_type"], first["events"])) == {"cart": 1, "purchase": 1, "view": 2}


def test_event_type_counts_keep_unknown_types(ds):
    engine, did = ds
    t = queries.event_type_counts(engine, did)
    assert list(t.itertuples(index=False, name=None)) == [
        ("view", 6, 3, True),
        ("purchase", 4, 2, True),
        ("cart", 2, 2, True),
        ("remove_from_cart", 1, 1, True),
        ("share", 1, 1, False),
        ("wishlist", 1, 1, True),
    ]


# --- top-N ---------------------------------------------------------------------------------


def test_top_categories_by_views(ds):
    engine, did = ds
    t = product_queries.top_categories(engine, did, by="views")
    assert t["name"].tolist() == ["electronics", "home"]  # events without a category are left out
    assert t["views"].tolist() == [3, 2]
    assert t["shoppers"].tolist() == [2, 2]  # viewers: u1 u2 for both
    assert t["purchases"].tolist() == [2, 1]
    assert t["revenue"].tolist() == pytest.approx([120.0, 15.0])


@pytest.mark.parametrize(
    "by, names, shoppers",
    [("revenue", ["electronics", "home"], [2, 1]), ("purchases", ["electronics", "home"], [2, 1])],
)
def test_top_categories_by_value(ds, by, names, shoppers):
    engine, did = ds
    t = product_queries.top_categories(engine, did, by=by)
    assert t["name"].tolist() == names
    assert t["shoppers"].tolist() == shoppers  # buyers: u1 u3 in electronics, u1 in home
    assert t["buyers"].tolist() == shoppers


def test_top_brands(ds):
    engine, did = ds
    views = product_queries.top_brands(engine, did, by="views")
    assert list(zip(views["name"], views["views"], views["viewers"])) == [("acme", 3, 2), ("zen", 1, 1)]
    revenue = product_queries.top_brands(engine, did, by="revenue", n=1)
    assert revenue["name"].tolist() == ["acme"]
    assert revenue["revenue"].tolist() == pytest.approx([100 + 15])
    assert revenue["purchases"].tolist() == [2] and revenue["buyers"].tolist() == [1]


def test_top_by_revenue_is_empty_without_prices(engine):
    did = make_dataset(engine, "no-prices", [dict(r, price=None) for r in ROWS])
    assert product_queries.top_brands(engine, did, by="revenue").empty
    assert product_queries.top_categories(engine, did, by="views")["name"].tolist() == ["electronics", "home"]


def test_top_ties_are_broken_by_name(engine):
    rows = [_ev("u1", "s1", "2024-03-01 10:00:00", "view", item) for item in ("C", "A")]
    did = make_dataset(engine, "ties", rows)
    assert product_queries.top_brands(engine, did)["name"].tolist() == ["acme"]
    assert product_queries.top_categories(engine, did)["name"].tolist() == ["electronics", "home"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"by": "clicks"}, r"Parameter 'by' is 'clicks'; expected one of \['views', 'purchases', 'revenue'\]"),
        ({"n": 0}, r"Parameter 'n' is 0; expected a whole number from 1 to 100"),
        ({"n": 2.5}, r"Parameter 'n' is 2.5; expected a whole number"),
    ],
)
def test_top_rejects_bad_parameters(ds, kwargs, message):
    engine, did = ds
    with pytest.raises(CartsightError, match=message):
        product_queries.top_categories(engine, did, **kwargs)


# --- prices --------------------------------------------------------------------------------


def test_price_distribution_bins_and_summary(ds):
    engine, did = ds
    p = product_queries.price_distribution(engine, did)
    # positive prices: 0.5 x2, 5 x2, 20 x3, 100 x6 -- each sits exactly on a 1-2-5 edge
    assert p.bins["label"].tolist() == ["0.5–1", "1–2", "2–5", "5–10", "10–20", "20–50", "50–100", "100–200"]
    assert p.bins["events"].tolist() == [2, 0, 0, 2, 0, 3, 0, 6]
    assert p.bins["low"].tolist() == [0.5, 1, 2, 5, 10, 20, 50, 100]
    s = p.summary
    assert (s["events"], s["priced"], s["zero"], s["missing"]) == (15, 14, 1, 1)
    assert (s["min"], s["max"]) == (0.0, 100.0)
    assert s["mean"] == pytest.approx((0 + 2 * 0.5 + 2 * 5 + 3 * 20 + 6 * 100) / 14)
    # sorted: 0 .5 .5 5 5 20 20 20 100 x6; linear interpolation at 13*q
    assert (s["p25"], s["p50"], s["p75"], s["p90"], s["p99"]) == pytest.approx((5.0, 20.0, 100.0, 100.0, 100.0))


def test_price_distribution_of_purchases(ds):
    engine, did = ds
    p = product_queries.price_distribution(engine, did, event_type="purchase")
    assert dict(zip(p.bins["label"], p.bins["events"])) == {
        "5–10": 1, "10–20": 0, "20–50": 2, "50–100": 0, "100–200": 1,
    }
    assert p.summary["priced"] == 4 and p.summary["p50"] == pytest.approx(20.0)


def test_price_distribution_without_prices(engine):
    did = make_dataset(engine, "no-prices", [dict(r, price=None) for r in ROWS])
    p = product_queries.price_distribution(engine, did)
    assert p.bins.empty and list(p.bins.columns) == ["low", "high", "label", "events"]
    assert (p.summary["priced"], p.summary["missing"], p.summary["p50"], p.summary["max"]) == (0, 15, None, None)
