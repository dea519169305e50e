"""Preferences: what everyone, a segment, likes by category, brand and price band, and how much more
or less than everyone (the affinity index). Every number comes from ``core.analysis.preferences`` (run in the
database) and every chart from ``core.charts.preferences``."""
from __future__ import annotations

import datetime as dt

import streamlit as st

from core.present import formats

from core.charts import preferences as charts
from core import config
from core.analysis import preferences as prefs
from core.analysis import band_table
from core.errors import CartsightError
from core.store.price_bands import PRICE_BANDS
from pages import common
from pages.common import md, page_start, show_error, show_table

_CACHE = {
    "ttl": config.PREFERENCES_CACHE_TTL_SECONDS,
    "max_entries": config.PREFERENCES_CACHE_MAX_ENTRIES,
    "show_spinner": False,
}
EVENT_CHOICES = {"all": "All events", "view": "Views", "cart": "Carts", "purchase": "Purchases"}
EVENT_WORDS = {"all": "events", "view": "views", "cart": "carts", "purchase": "purchases"}
MEASURE_CHOICES = {"events": "Share of events", "revenue": "Share of revenue"}
EVERYONE = charts.EVERYONE
MIN_SHOPPERS = config.PREFERENCES_MIN_SHOPPERS
TABLE_COLUMNS = {
    "value": "Value", "events": "Events", "share_events": "Share of events", "revenue": "Revenue",
    "share_revenue": "Share of revenue", "affinity": "Affinity", "revenue_affinity": "Revenue affinity",
    "shoppers": "Shoppers", "buyers": "Buyers", "note": "Note",
}


# Cached query calls: ``_engine`` is not hashed; ``store`` (the URL, password masked), the dataset
# id and the filters are the key, so another store or a reloaded dataset never hits old results.
@st.cache_data(**_CACHE)
def _latest_run(_engine, store: str, dataset_id: int) -> dict | None:
    return prefs.latest_run_summary(_engine, dataset_id)


@st.cache_data(**_CACHE)
def _segments(_engine, store: str, dataset_id: int, run_id: int):
    return prefs.segment_list(_engine, dataset_id, run_id)


@st.cache_data(**_CACHE)
def _preferences(_engine, store: str, dataset_id: int, dimension: str, segment, run_id, start, end, types,
                 top_n):
    return prefs.preferences(_engine, dataset_id, dimension, segment=segment, run_id=run_id, start=start, end=end,
                             event_types=types, top_n=top_n)


@st.cache_data(**_CACHE)
def _drilldown(_engine, store: str, dataset_id: int, category: str, segment, run_id, start, end, types):
    return prefs.drilldown(_engine, dataset_id, category, segment=segment, run_id=run_id, start=start, end=end,
                           event_types=types, top_n=config.PREFERENCES_TOP_N)


@st.cache_data(**_CACHE)
def _matrix(_engine, store: str, dataset_id: int, run_id: int, start, end, types):
    return prefs.affinity_matrix(_engine, dataset_id, run_id, "category", config.PREFERENCES_TOP_N, start=start,
                                 end=end, event_types=types)


@st.cache_data(**_CACHE)
def _edges(_engine, store: str, dataset_id: int):
    return band_table.band_edges(_engine, dataset_id)


def _date_window(dataset: dict) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The page's date-range filter (see pages.common.date_window)."""
    return common.date_window(dataset, "preferences_dates", "Events in these days, both ends included. Price bands always use the whole dataset.")


def _segment_label(segments, segment: int | None) -> str:
    if segment is None:
        return EVERYONE
    row = segments[segments["segment"] == segment].iloc[0]
    return f"Segment {segment} · {row['segment_name']}"


def _segment_picker(segments, run: dict | None) -> int | None:
    if run is None or segments.empty:
        st.selectbox("Group", [EVERYONE], key="preferences_group_none", disabled=True,
                     help="Run Segments to compare groups of shoppers.")
        return None
    sizes = dict(zip(segments["segment"], segments["shoppers"]))
    options = [None, *segments["segment"].tolist()]
    return st.selectbox(
        "Group", options, key=f"preferences_group_{run['run_id']}",
        format_func=lambda s: EVERYONE if s is None else f"{_segment_label(segments, s)} ({formats.count(sizes[s])} shoppers)",
        help="A segment of the latest segmentation, compared with everyone.",
    )


#: The kind of each figure column (core.present.formats): shares in percent, money, affinity as a ratio.
TABLE_KINDS = {TABLE_COLUMNS["share_events"]: formats.PERCENT, TABLE_COLUMNS["share_revenue"]: formats.PERCENT,
               TABLE_COLUMNS["revenue"]: formats.MONEY, TABLE_COLUMNS["affinity"]: formats.RATIO,
               TABLE_COLUMNS["revenue_affinity"]: formats.RATIO}


def _table(frame, measure: str):
    """The figures behind a chart, with small groups marked."""
    shown = frame.assign(note=["few shoppers" if f else "" for f in frame["few_shoppers"]])
    keep = ["value", "events", "share_events", "revenue", "share_revenue", "affinity", "revenue_affinity",
            "shoppers", "buyers", "note"]
    if measure == "events":
        keep.remove("revenue_affinity")
    return shown[keep].rename(columns=TABLE_COLUMNS)


def _share_section(engine, key, did, group, run_id, start, end, types, measure, group_label, word) -> list[str]:
    """Category, brand and price-band charts for the group; returns the group's categories (most events first)."""
    st.subheader(f"What {group_label if group is not None else 'everyone'} likes")
    frames = {
        dim: _preferences(engine, key, did, dim, group, run_id, start, end, types,
                          None if dim == "price_band" else config.PREFERENCES_TOP_N)
        for dim in prefs.DIMENSIONS
    }
    if frames["category"].empty and frames["brand"].empty and frames["price_band"]["events"].sum() == 0:
        st.info(f"No {word} in these dates for this group: widen the dates or pick other events.")
        return []
    columns = st.columns(3)
    for column, dim in zip(columns, prefs.DIMENSIONS):
        with column:
            frame = frames[dim]
            if frame["events"].sum() == 0 and (measure == "events" or frame["revenue"].abs().sum() == 0):
                what = "a price" if dim == "price_band" else f"a {dim}"
                st.info(f"No {word} with {what} here.")
                continue
            st.plotly_chart(charts.share_chart(frame, dim, group_label, measure, word), key=f"preferences_{dim}_chart")
            with st.expander("Numbers"):
                show_table(_table(frame, measure), kinds=TABLE_KINDS)
    st.caption(
        f"Grey bars marked *few shoppers* have fewer than {MIN_SHOPPERS} shoppers behind them: do not over-read them. "
        "Affinity = the group's share ÷ everyone's share (1.0: as everyone; 2.0: twice as much). Revenue is price × "
        "quantity over purchases, in the currency of the file, whatever events are picked above."
    )
    return frames["category"]["value"].tolist()


def _heatmap_section(engine, key, did, run, start, end, types) -> None:
    st.subheader("Categories by segment")
    if run is None:
        st.info("No segmentation yet: run **Segments** to see which categories each segment favours.")
        return
    matrix = _matrix(engine, key, did, run["run_id"], start, end, types)
    if matrix.empty:
        st.info("No categorised events in these dates.")
        return
    st.plotly_chart(charts.affinity_heatmap(matrix, "category"), key="preferences_heatmap")


def _drilldown_section(engine, key, did, group, run_id, start, end, types, categories, measure, group_label,
                       word) -> None:
    st.subheader("From a category to its brands")
    if not categories:
        st.info("No category to drill into for this group and these filters.")
        return
    category = st.selectbox("Category", categories, key="preferences_drill_category",
                            help="The group's categories, most events first.")
    frame = _drilldown(engine, key, did, category, group, run_id, start, end, types)
    if frame.empty:
        st.info(f"No {word} with a brand in {md(category)} for this group.")
        return
    title = f"Brands within {category}: share of {word} — {group_label}"
    st.plotly_chart(charts.share_chart(frame, "brand", group_label, measure, word, title=title),
                    key="preferences_drill_chart")
    show_table(_table(frame, measure), kinds=TABLE_KINDS)


def _bands_section(engine, key, did) -> None:
    st.subheader("Price bands")
    edges = _edges(engine, key, did)
    if edges.empty:
        st.info("The file has no positive prices, so there are no price bands.")
        return
    shown = edges.assign(category=edges["category"].fillna("(items without a category)"))
    shown = shown[["category", "n_priced", "n_items", "bands_from", *PRICE_BANDS]].rename(
        columns={"category": "Category", "n_priced": "Priced events", "n_items": "Items", "bands_from": "Bands from",
                 **{b: b.capitalize() for b in PRICE_BANDS}})
    show_table(shown, kinds={b.capitalize(): formats.MONEY for b in PRICE_BANDS})
    st.caption(
        "Each category's items are counted once, at their typical (median) price, and split into quartiles, so a "
        f"popular item fills one band only. A category with fewer than {config.PRICE_BAND_MIN_ITEMS} items uses "
        "its parent category's bands, else the whole catalogue's; where its prices allow fewer than four bands it "
        "has fewer (—). A price exactly on an edge belongs to the upper band."
    )


dataset, engine, store_key = page_start("Preferences")
did = dataset["dataset_id"]

try:
    run = _latest_run(engine, store_key, did)
    segments = _segments(engine, store_key, did, run["run_id"]) if run else None
    f1, f2, f3, f4 = st.columns([2, 2, 3, 2])
    with f1:
        group = _segment_picker(segments, run)
    with f2:
        start, end = _date_window(dataset)
    with f3:
        kind = st.radio("Events", list(EVENT_CHOICES), format_func=EVENT_CHOICES.get, horizontal=True,
                        key="preferences_events",
                        help="Which events count for the shares (revenue is always purchases).")
    with f4:
        measure = st.radio("Bars show", list(MEASURE_CHOICES), format_func=MEASURE_CHOICES.get, horizontal=True,
                           key="preferences_measure")
    if run is None:
        st.info("No segmentation yet: showing everyone. Run **Segments** to compare groups of shoppers.")
    types = None if kind == "all" else (kind,)
    word = EVENT_WORDS[kind]
    run_id = run["run_id"] if run else None
    group_label = _segment_label(segments, group) if group is not None else EVERYONE
    if group is not None:
        size = int(segments.loc[segments["segment"] == group, "shoppers"].iloc[0])
        if size < MIN_SHOPPERS:
            st.warning(f"{md(group_label)} has only {formats.count(size)} shoppers: its shares are easily swayed by a few of them.")
    _heatmap_section(engine, store_key, did, run, start, end, types)
    categories = _share_section(engine, store_key, did, group, run_id, start, end, types, measure, group_label, word)
    _drilldown_section(engine, store_key, did, group, run_id, start, end, types, categories, measure, group_label,
                       word)
    _bands_section(engine, store_key, did)
except CartsightError as exc:
    show_error(exc)
