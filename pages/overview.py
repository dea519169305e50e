"""Overview: KPI tiles, the view → cart → purchase funnel, activity over time, top categories
and brands, and prices, for the picked dataset and a date range. Every number comes from
``core.analysis.queries`` (run in the database) and every chart from ``core.charts.overview``."""
from __future__ import annotations

import datetime as dt

import streamlit as st

from core import config
from core.analysis import queries
from core.analysis import product_queries
from core.charts import overview
from core.errors import CartsightError
from core.present import formats
from pages import common
from pages.common import md, page_start, show_error, show_table

_CACHE = {
    "ttl": config.OVERVIEW_CACHE_TTL_SECONDS,
    "max_entries": config.OVERVIEW_CACHE_MAX_ENTRIES,
    "show_spinner": False,
}
NO_VALUE = "—"
UNIT_LABELS = {"shopper": "Shoppers", "session": "Sessions"}
MEASURE_LABELS = {"views": "Views", "purchases": "Purchases", "revenue": "Revenue"}


# Cached query calls: ``_engine`` is not hashed; ``store`` (the URL, password masked) and the
# dataset id and filters are the key, so another store or a reloaded dataset never hits old results.
@st.cache_data(**_CACHE)
def _kpis(_engine, store: str, dataset_id: int, start, end) -> dict:
    return queries.kpis(_engine, dataset_id, start, end)


@st.cache_data(**_CACHE)
def _coverage(_engine, store: str, dataset_id: int, start, end) -> dict:
    return queries.column_coverage(_engine, dataset_id, start, end)


@st.cache_data(**_CACHE)
def _event_types(_engine, store: str, dataset_id: int, start, end):
    return queries.event_type_counts(_engine, dataset_id, start, end)


@st.cache_data(**_CACHE)
def _funnel(_engine, store: str, dataset_id: int, by: str, start, end, strict: bool):
    return queries.funnel(_engine, dataset_id, by=by, start=start, end=end, strict=strict)


@st.cache_data(**_CACHE)
def _activity(_engine, store: str, dataset_id: int, hourly: bool, start, end):
    query = queries.hourly_activity if hourly else queries.daily_activity
    return query(_engine, dataset_id, start, end)


@st.cache_data(**_CACHE)
def _top(_engine, store: str, dataset_id: int, dimension: str, by: str, start, end):
    query = product_queries.top_categories if dimension == "category" else product_queries.top_brands
    return query(_engine, dataset_id, by=by, n=config.TOP_N, start=start, end=end)


@st.cache_data(**_CACHE)
def _prices(_engine, store: str, dataset_id: int, start, end):
    return product_queries.price_distribution(_engine, dataset_id, start=start, end=end)


def _count(value: int | None) -> str:
    return NO_VALUE if value is None else f"{formats.count(value)}"


def _share(value: float | None) -> str:
    return NO_VALUE if value is None else f"{formats.percent(value)}"


def _events(n: int) -> str:
    return f"{formats.count(n)} event" + ("" if n == 1 else "s")


def _money(value: float | None) -> str:
    return NO_VALUE if value is None else f"{formats.money(value)}"


def _money_tile(value: float | None) -> str:
    """Large sums shortened ("1.41 million") so that the tile shows them whole; the help gives the exact sum."""
    return formats.money_tile(value)


def _date_window(dataset: dict) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The page's date-range filter (see pages.common.date_window)."""
    return common.date_window(dataset, "overview_dates", "Every number and chart below covers these days, both ends included.")


def _kpi_tiles(k: dict, has_prices: bool) -> None:
    no_price = "The file has no prices, so there is no revenue to show."
    revenue_help = (
        f"Price × quantity over purchases, less cancellations, in the currency of the file: {_money(k['revenue'])}."
        if has_prices else no_price
    )
    per_shopper = k["events_per_shopper"]
    tiles = [
        ("Shoppers", _count(k["shoppers"]), "Distinct shopper ids with at least one event."),
        ("Sessions", _count(k["sessions"]),
         "Visits: a shopper's session id, or a 30-minute inactivity gap when the file has none."),
        ("Events", _count(k["events"]), "All events, every type included."),
        ("Buyers", _count(k["buyers"]), "Shoppers with at least one purchase (cancellations do not count)."),
        ("Orders", _count(k["orders"]),
         "Sessions with at least one purchase; for transaction files, about one per invoice."),
        ("Revenue", _money_tile(k["revenue"]), revenue_help),
        ("Conversion", _share(k["conversion"]), "Buyers ÷ shoppers."),
        ("Session conversion", _share(k["session_conversion"]), "Orders ÷ sessions."),
        ("Average order value", _money(k["average_order_value"]), "Revenue ÷ orders." if has_prices else no_price),
        ("Events per shopper", NO_VALUE if per_shopper is None else formats.estimate(per_shopper), "Events ÷ shoppers."),
    ]
    for row in (tiles[:5], tiles[5:]):
        for column, (label, value, help_text) in zip(st.columns(len(row)), row):
            column.metric(label, value, help=help_text)


def _what_the_data_lacks(coverage: dict) -> list[str]:
    lacks = []
    if coverage["with_price"] == 0:
        lacks.append("prices (so no revenue, order value or price distribution)")
    if coverage["with_category"] == 0:
        lacks.append("categories")
    if coverage["with_brand"] == 0:
        lacks.append("brands")
    return lacks


def _funnel_section(engine, key: str, did: int, start, end, types: set[str]) -> None:
    st.subheader("Funnel")
    present = [s for s in queries.FUNNEL_STEPS if s in types]
    if len(present) < 2:
        held = ", ".join(f"'{md(t)}'" for t in sorted(types)) or "none"
        st.info(
            "A funnel needs at least two of the steps view, cart and purchase; this data holds "
            f"only these event types: {held}."
        )
        return
    by = st.radio(
        "Count", list(UNIT_LABELS), format_func=UNIT_LABELS.get, horizontal=True, key="overview_funnel_by",
        help="Shoppers: a shopper reaches a step with at least one such event. Sessions: the same, per visit.",
    )
    closed = st.checkbox(
        "Only those who did every earlier step", key="overview_funnel_closed",
        help="Closed funnel: a purchase counts only for those who also viewed and carted (in any order).",
    )
    frame = _funnel(engine, key, did, by, start, end, closed)
    st.plotly_chart(overview.funnel_chart(frame, by=by), key="overview_funnel_chart")
    unit = UNIT_LABELS[by].lower()
    bought = frame.loc[frame["step"] == "purchase", "rate_from_first"].iloc[0]
    if bought == bought:  # not NaN
        done = "viewed, carted and bought" if closed else "bought"
        st.caption(f"{UNIT_LABELS[by]} that {done}, as a share of those that viewed: {formats.percent(bought)}.")
    steps = frame["step"].tolist()
    for i in frame.index[frame["rate_from_previous"] > 1]:  # an open funnel can widen
        before, after = steps[i - 1], steps[i]
        st.caption(
            f"More {unit} reached '{after}' than '{before}': in this data many reach '{after}' without a "
            f"'{before}' event. Tick *Only those who did every earlier step* for a closed funnel."
        )
    absent = [s for s in queries.FUNNEL_STEPS if s not in types]
    if absent:
        st.caption(f"There are no {' or '.join(absent)} events here, so that step shows 0.")


def _top_section(engine, key: str, did: int, start, end, coverage: dict) -> None:
    st.subheader("Top categories and brands")
    by = st.radio(
        "Rank by", list(MEASURE_LABELS), format_func=MEASURE_LABELS.get, horizontal=True, key="overview_top_by",
        help="Hover a bar to see how many shoppers are behind the figure.",
    )
    if by == "revenue" and coverage["with_price"] == 0:
        st.info("The file has no prices, so nothing can be ranked by revenue. Rank by views or purchases.")
        return
    for column, dimension, title in zip(st.columns(2), ("category", "brand"), ("Category", "Brand")):
        with column:
            if coverage[f"with_{dimension}"] == 0:
                st.info(f"The file has no {dimension} column (or it is empty), so there is no top-{dimension} chart.")
                continue
            frame = _top(engine, key, did, dimension, by, start, end)
            if frame.empty:
                st.info(f"No {dimension} has any {by} in these dates.")
                continue
            st.plotly_chart(overview.top_chart(frame, title, by=by), key=f"overview_top_{dimension}")


def _price_section(engine, key: str, did: int, start, end, coverage: dict) -> None:
    st.subheader("Prices")
    if coverage["with_price"] == 0:
        st.info("The file has no prices, so there is no price distribution to show.")
        return
    dist = _prices(engine, key, did, start, end)
    s = dist.summary
    if s["priced"] == 0:
        st.info("No event in these dates has a price.")
        return
    if dist.bins.empty:
        st.info(f"Every priced event in these dates has price 0 ({_events(s['zero'])}).")
        return
    st.plotly_chart(overview.price_histogram(dist), key="overview_price_chart")
    cols = st.columns(4)
    cols[0].metric("Median price", _money(s["p50"]), help="Unit price, in the currency of the file.")
    cols[1].metric("Middle half", f"{_money(s['p25'])} – {_money(s['p75'])}", help="25th to 75th percentile.")
    cols[2].metric("90th percentile", _money(s["p90"]))
    cols[3].metric("Highest", _money(s["max"]))
    notes = []
    if s["zero"]:
        notes.append(f"{_events(s['zero'])} at price 0 not in a band")
    if s["missing"]:
        notes.append(f"{_events(s['missing'])} without a price")
    if notes:
        st.caption("; ".join(notes) + ".")


def _event_type_section(frame) -> None:
    st.subheader("Event types")
    unknown = frame.loc[~frame["known"], "event_type"].tolist()
    if unknown:
        st.warning(
            "Event types cartsight does not know, kept as given: "
            + ", ".join(f"'{md(t)}'" for t in unknown)
            + ". They count as events but in no funnel step."
        )
    shown = frame.assign(event_type=[formats.event_type(t) for t in frame["event_type"]])
    show_table(shown, labels={"event_type": "Event type", "events": "Events", "shoppers": "Shoppers",
                              "known": "Known type"}, key="overview_event_types")


dataset, engine, store_key = page_start("Overview")
did = dataset["dataset_id"]

try:
    start, end = _date_window(dataset)
    kpi = _kpis(engine, store_key, did, start, end)
    if kpi["events"] == 0:
        st.info("No events in these dates: widen the date range.")
        st.stop()
    coverage = _coverage(engine, store_key, did, None, None)  # what the file has, whatever the dates
    event_types = _event_types(engine, store_key, did, start, end)
    types = set(event_types["event_type"])
    _kpi_tiles(kpi, has_prices=coverage["purchases_with_price"] > 0)
    lacks = _what_the_data_lacks(coverage)
    if lacks:
        st.info("The file has no " + ", no ".join(lacks) + ". The charts that need them say so below.")
    _funnel_section(engine, store_key, did, start, end, types)
    st.subheader("Activity over time")
    hourly = kpi["last_event"] - kpi["first_event"] <= dt.timedelta(days=config.HOURLY_ACTIVITY_MAX_DAYS)
    activity = _activity(engine, store_key, did, hourly, start, end)
    st.plotly_chart(overview.activity_chart(activity), key="overview_activity_chart")
    _top_section(engine, store_key, did, start, end, coverage)
    _price_section(engine, store_key, did, start, end, coverage)
    _event_type_section(event_types)
except CartsightError as exc:
    show_error(exc)
