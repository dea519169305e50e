"""core.analysis.preferences on a tiny hand-made dataset, on DuckDB and PostgreSQL (the ``engine`` fixture).

The dataset: 13 events of 4 shoppers in January 2024, two categories.

    #   shopper day  type      category     brand  price  qty   band (why)
    e1  u1      1    view      electronics  acme   40           luxury  (40 >= p75 = 40: on the edge, upper band)
    e2  u1      1    purchase  electronics  acme   40     2     luxury  revenue 80
    e3  u2      2    view      electronics  acme   20           mid     (20 = p25: on the edge, upper band)
    e4  u2      2    view      electronics  zen    10           budget
    e6  u2      2    cart      electronics  acme   -            none (no price)
    e5  u3      3    view      electronics  zen    30           premium (30 = p50: on the edge)
    h1  u3      3    view      home         casa   4            budget
    h2  u3      3    view      home         casa   12           luxury  (12 = p75)
    h3  u3      4    purchase  home         casa   12     NULL  luxury  revenue 12
    h4  u4      4    view      home         zen    6            mid     (6 = p25)
    h5  u4      5    purchase  home         zen    8      1     premium (8 = p50) revenue 8
    h6  u1      5    view      home         -      -            none
    n1  u4      5    view      -            -      15           premium (all-category bands: 12 <= 15 < 20)

Band edges (quartiles of the distinct items at their typical price, an item being a category, brand
and price here; ``PRICE_BAND_MIN_ITEMS`` is 4 for this fixture, so each category has bands of its
own): electronics [10 20 30 40] -> 20 / 30 / 40 (the first quartile, 10, is the cheapest price, so
each edge moves one price up); home [4 6 8 12] -> 6 / 8 / 12; all 9 items
[4 6 8 10 12 15 20 30 40] -> 8 / 12 / 20.

Segmentation runs: run 1 (older) puts everyone in segment 0; run 2 (latest) has segment 0
"tech" = u1, u2 and segment 1 "home" = u3, u4.

Everyone by category: electronics 6 events (u1 u2 u3), home 6 (u1 u3 u4); revenue 80 / 20.
Segment 0: electronics 5 (e1 e2 e3 e4 e6), home 1 (h6) -> shares 5/6, 1/6; affinity 5/3, 1/3.
Segment 1: electronics 1 (e5), home 5 -> 1/6, 5/6; affinity 1/3, 5/3.
"""
from __future__ import annotations

import datetime as dt
import json
import math

import pandas as pd
import pytest
import sqlalchemy as sa

from core import config
from core.analysis import preferences as prefs
from core.analysis import band_table
from core import store
from core.store import segment_totals
from core.errors import CartsightError
from tests.conftest import make_dataset

JAN = dt.datetime(2024, 1, 1)


def _ev(user, day, event_type, category, brand, price, quantity=None, minute=0):
    return {
        "user_id": user, "event_time": JAN + dt.timedelta(days=day - 1, hours=10, minutes=minute),
        "event_type": event_type, "item_id": f"{category}-{brand}-{price}", "category": category, "brand": brand,
        "price": price, "quantity": quantity, "session_id": f"{user}-{day}",
    }


ROWS = [
    _ev("u1", 1, "view", "electronics", "acme", 40.0),
    _ev("u1", 1, "purchase", "electronics", "acme", 40.0, quantity=2, minute=5),
    _ev("u2", 2, "view", "electronics", "acme", 20.0),
    _ev("u2", 2, "view", "electronics", "zen", 10.0, minute=1),
    _ev("u2", 2, "cart", "electronics", "acme", None, minute=2),
    _ev("u3", 3, "view", "electronics", "zen", 30.0),
    _ev("u3", 3, "view", "home", "casa", 4.0, minute=1),
    _ev("u3", 3, "view", "home", "casa", 12.0, minute=2),
    _ev("u3", 4, "purchase", "home", "casa", 12.0),
    _ev("u4", 4, "view", "home", "zen", 6.0, minute=1),
    _ev("u4", 5, "purchase", "home", "zen", 8.0, quantity=1),
    _ev("u1", 5, "view", "home", None, None, minute=1),
    _ev("u4", 5, "view", None, None, 15.0, minute=2),
]
SEGMENTS = {"u1": (0, "tech"), "u2": (0, "tech"), "u3": (1, "home"), "u4": (1, "home")}


def add_run(engine, dataset_id: int, assignment: dict, created: dt.datetime, profiles: bool = True,
            totals: bool = False) -> int:
    """Insert a segmentation run and its assignments directly into the store; returns the run id. ``profiles``:
    the run's profile cards hold each segment's number and name, as a segmentation stores them; ``totals``: its
    per-segment totals are written, as a segmentation writes them (without, the pages group the per-shopper rows)."""
    with engine.begin() as conn:
        run_id = int(conn.execute(sa.select(store.segment_run_id_seq.next_value())).scalar_one())  # no RETURNING
        conn.execute(store.segment_runs.insert().values(  # on Spark: the id first, as the store's own code does
            run_id=run_id, dataset_id=dataset_id, created_at=created,
            n_segments=len({s for s, _ in assignment.values()}), model_version=None, features_json="[]",
            profiles_json=json.dumps([{"segment": s, "name": n} for s, n in sorted(set(assignment.values()))]
                                     if profiles else [])))
        conn.execute(store.segments.insert(), [
            {"dataset_id": dataset_id, "run_id": run_id, "user_id": u, "segment": s, "segment_name": n}
            for u, (s, n) in assignment.items()
        ])
        if totals:
            segment_totals.write(conn, dataset_id, run_id)
    return run_id


@pytest.fixture
def tiny(engine, monkeypatch):
    """(engine, dataset_id, latest run id) of the dataset above, with both segmentation runs."""
    monkeypatch.setattr(config, "PRICE_BAND_MIN_ITEMS", 4)
    did = make_dataset(engine, "tiny", ROWS)
    add_run(engine, did, {u: (0, "all") for u in SEGMENTS}, dt.datetime(2024, 2, 1))
    run = add_run(engine, did, SEGMENTS, dt.datetime(2024, 3, 1))
    return engine, did, run


def _by_value(frame: pd.DataFrame) -> dict:
    return {row["value"]: row for row in frame.to_dict("records")}


# --- price bands ------------------------------------------------------------------------------------


def test_band_edges_are_the_quartiles_of_each_category(tiny):
    engine, did, _ = tiny
    edges = band_table.band_edges(engine, did)
    rows = {r["category"]: r for r in edges.to_dict("records")}
    assert set(rows) == {"electronics", "home", None}
    assert [rows["electronics"][c] for c in ("p25", "p50", "p75")] == pytest.approx([20, 30, 40])
    assert [rows["home"][c] for c in ("p25", "p50", "p75")] == pytest.approx([6, 8, 12])
    assert [rows[None][c] for c in ("p25", "p50", "p75")] == pytest.approx([8, 12, 20])
    assert (rows["electronics"]["n_priced"], rows["home"]["n_priced"], rows[None]["n_priced"]) == (5, 5, 11)
    assert (rows["electronics"]["n_items"], rows["home"]["n_items"], rows[None]["n_items"]) == (4, 4, 9)
    assert (rows["home"]["bands_from"], rows[None]["bands_from"]) == ("its own items", "every item")
    assert rows["electronics"]["budget"] == "< 20.00"
    assert rows["electronics"]["mid"] == "20.00 – < 30.00"
    assert rows["electronics"]["premium"] == "30.00 – < 40.00"
    assert rows["electronics"]["luxury"] == "≥ 40.00"


def _event_bands(engine, did) -> list[tuple]:
    import sqlalchemy as sa

    from_clause, band = band_table.price_band_sql(did)
    e = store.events.c
    stmt = (sa.select(e.category, e.price, band.label("band")).select_from(from_clause)
            .where(e.dataset_id == did).order_by(e.event_time))
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(stmt)]


def test_price_on_an_edge_goes_to_the_upper_band(tiny):
    engine, did, _ = tiny
    rows = _event_bands(engine, did)
    expected = {
        ("electronics", 40.0): "luxury",  # = p75
        ("electronics", 20.0): "mid",  # = p25
        ("electronics", 10.0): "budget",
        ("electronics", 30.0): "premium",  # = p50
        ("electronics", None): None,
        ("home", 4.0): "budget",
        ("home", 12.0): "luxury",  # = p75
        ("home", 6.0): "mid",  # = p25
        ("home", 8.0): "premium",  # = p50
        ("home", None): None,
        (None, 15.0): "premium",  # overall bands 8 / 12 / 20
    }
    assert len(rows) == len(ROWS)
    assert [band for _, _, band in rows] == [expected[(c, p)] for c, p, _ in rows]


def test_band_table_of_a_category_on_its_parents_bands_with_fewer_bands(engine):
    """The table says whose items gave the edges and shows a band the prices do not allow as —."""
    rows = [_ev("u1", 1, "view", "shoes.boots", f"b{i}", 10.0 + i) for i in range(25)]
    rows += [_ev("u2", 2, "view", "shoes.kids", "k", 3.0), _ev("u2", 2, "view", "flat", "f", 5.0)]
    rows += [_ev("u2", 3, "view", "flat", "g", 5.0)]
    did = make_dataset(engine, "parents", rows)
    table = {r["category"]: r for r in band_table.band_edges(engine, did).to_dict("records")}
    assert table["shoes.boots"]["bands_from"] == "its own items"
    assert table["shoes.kids"]["bands_from"] == "shoes (too few items)"
    # boots: items 10 .. 34, the 7th of 25 is the first quartile; shoes adds the kids' 3: the 7th of 26
    assert (table["shoes.boots"]["budget"], table["shoes.kids"]["budget"]) == ("< 16.00", "< 15.00")
    assert table["flat"]["bands_from"] == "whole catalogue (too few items)"
    assert table["flat"]["edges_from"] is None and table["flat"]["n_items"] == 2
    assert band_table._band_ranges([7.0]) == ["< 7.00", "≥ 7.00", "—", "—"]
    assert band_table._band_ranges([]) == ["any price", "—", "—", "—"]


# --- preferences ------------------------------------------------------------------------------------


def test_everyone_by_category(tiny):
    engine, did, _ = tiny
    frame = prefs.preferences(engine, did, "category")
    assert list(frame.columns) == list(prefs.PREFERENCE_COLUMNS)
    assert frame["value"].tolist() == ["electronics", "home"]  # 6 events each; ties by name
    rows = _by_value(frame)
    e, h = rows["electronics"], rows["home"]
    assert (e["events"], h["events"]) == (6, 6)
    assert (e["share_events"], h["share_events"]) == pytest.approx((0.5, 0.5))
    assert (e["revenue"], h["revenue"]) == pytest.approx((80.0, 20.0))
    assert (e["share_revenue"], h["share_revenue"]) == pytest.approx((0.8, 0.2))
    assert (e["shoppers"], h["shoppers"]) == (3, 3)
    assert (e["buyers"], h["buyers"]) == (1, 2)
    assert (e["affinity"], h["affinity"]) == pytest.approx((1.0, 1.0))
    assert e["few_shoppers"] and h["few_shoppers"]
    assert not prefs.preferences(engine, did, "category", min_shoppers=3)["few_shoppers"].any()


def test_segment_shares_and_affinity(tiny):
    engine, did, run = tiny
    tech = _by_value(prefs.preferences(engine, did, "category", segment=0))  # latest run by default
    assert (tech["electronics"]["events"], tech["home"]["events"]) == (5, 1)
    assert tech["electronics"]["share_events"] == pytest.approx(5 / 6)
    assert tech["home"]["share_events"] == pytest.approx(1 / 6)
    assert tech["electronics"]["affinity"] == pytest.approx(5 / 3)
    assert tech["home"]["affinity"] == pytest.approx(1 / 3)
    assert (tech["electronics"]["shoppers"], tech["home"]["shoppers"]) == (2, 1)
    assert (tech["electronics"]["revenue"], tech["home"]["revenue"]) == pytest.approx((80.0, 0.0))
    assert tech["electronics"]["share_revenue"] == pytest.approx(1.0)
    assert tech["electronics"]["revenue_affinity"] == pytest.approx(1.25)
    assert tech["home"]["revenue_affinity"] == pytest.approx(0.0)
    assert tech["electronics"]["events_all"] == 6 and tech["electronics"]["shoppers_all"] == 3

    home = prefs.preferences(engine, did, "category", segment=1, run_id=run)
    assert home["value"].tolist() == ["home", "electronics"]  # the segment's most events first
    rows = _by_value(home)
    assert rows["home"]["affinity"] == pytest.approx(5 / 3)
    assert rows["electronics"]["affinity"] == pytest.approx(1 / 3)
    assert rows["home"]["share_revenue"] == pytest.approx(1.0)
    assert (rows["home"]["buyers"], rows["electronics"]["buyers"]) == (2, 0)

    older = _by_value(prefs.preferences(engine, did, "category", segment=0, run_id=run - 1))
    assert older["electronics"]["affinity"] == pytest.approx(1.0)  # run 1: segment 0 is everyone


def test_event_type_and_date_filters(tiny):
    engine, did, _ = tiny
    views = _by_value(prefs.preferences(engine, did, "category", segment=0, event_types=["view"]))
    assert (views["electronics"]["events"], views["home"]["events"]) == (3, 1)
    assert views["electronics"]["affinity"] == pytest.approx((3 / 4) / (4 / 8))
    assert views["home"]["affinity"] == pytest.approx((1 / 4) / (4 / 8))
    assert views["electronics"]["revenue"] == pytest.approx(80.0)  # revenue always comes from purchases

    later = _by_value(prefs.preferences(engine, did, "category", start=dt.date(2024, 1, 3)))
    assert (later["electronics"]["events"], later["home"]["events"]) == (1, 6)
    assert later["electronics"]["share_revenue"] == pytest.approx(0.0)
    early = _by_value(prefs.preferences(engine, did, "category", end=dt.datetime(2024, 1, 3)))
    assert set(early) == {"electronics"} and early["electronics"]["events"] == 5


def test_one_shopper(tiny):
    engine, did, _ = tiny
    rows = _by_value(prefs.preferences(engine, did, "category", user_id="u3"))
    assert (rows["electronics"]["events"], rows["home"]["events"]) == (1, 3)
    assert rows["electronics"]["affinity"] == pytest.approx(0.25 / 0.5)
    assert rows["home"]["affinity"] == pytest.approx(0.75 / 0.5)
    assert rows["home"]["share_revenue"] == pytest.approx(1.0)
    assert rows["home"]["shoppers"] == 1


def test_brands_and_top_n(tiny):
    engine, did, _ = tiny
    frame = prefs.preferences(engine, did, "brand")
    assert frame["value"].tolist() == ["acme", "zen", "casa"]  # 4, 4 (acme has more revenue), 3
    rows = _by_value(frame)
    assert [rows[b]["share_events"] for b in ("acme", "zen", "casa")] == pytest.approx([4 / 11, 4 / 11, 3 / 11])
    assert [rows[b]["share_revenue"] for b in ("acme", "zen", "casa")] == pytest.approx([0.8, 0.08, 0.12])
    assert [rows[b]["shoppers"] for b in ("acme", "zen", "casa")] == [2, 3, 1]
    top = prefs.preferences(engine, did, "brand", top_n=1)
    assert top["value"].tolist() == ["acme"]
    assert top["share_events"].iloc[0] == pytest.approx(4 / 11)  # shares stay of all brands


def test_price_band_preferences(tiny):
    engine, did, _ = tiny
    frame = prefs.preferences(engine, did, "price_band")
    assert frame["value"].tolist() == ["budget", "mid", "premium", "luxury"]
    assert frame["events"].tolist() == [2, 2, 3, 4]
    assert frame["share_events"].tolist() == pytest.approx([2 / 11, 2 / 11, 3 / 11, 4 / 11])
    assert frame["shoppers"].tolist() == [2, 2, 2, 2]
    assert frame["revenue"].tolist() == pytest.approx([0, 0, 8, 92])
    assert frame["share_revenue"].tolist() == pytest.approx([0, 0, 0.08, 0.92])

    tech = prefs.preferences(engine, did, "price_band", segment=0)
    # u1: e1 e2 luxury; u2: e3 mid, e4 budget (e6 has no price)
    assert tech["events"].tolist() == [1, 1, 0, 2]
    assert tech["affinity"].tolist() == pytest.approx([(1 / 4) / (2 / 11), (1 / 4) / (2 / 11), 0.0, (2 / 4) / (4 / 11)])
    assert tech["shoppers"].tolist() == [1, 1, 0, 1]


def test_drilldown_brands_within_a_category(tiny):
    engine, did, _ = tiny
    frame = prefs.drilldown(engine, did, "electronics")
    assert frame["value"].tolist() == ["acme", "zen"]
    assert frame["share_events"].tolist() == pytest.approx([4 / 6, 2 / 6])
    home_seg = _by_value(prefs.drilldown(engine, did, "electronics", segment=1))
    assert set(home_seg) == {"zen"}
    assert home_seg["zen"]["share_events"] == pytest.approx(1.0)
    assert home_seg["zen"]["affinity"] == pytest.approx(3.0)
    assert home_seg["zen"]["shoppers"] == 1
    assert prefs.drilldown(engine, did, "garden").empty


def test_affinity_matrix(tiny):
    engine, did, run = tiny
    m = prefs.affinity_matrix(engine, did)
    assert list(m.columns) == list(prefs.MATRIX_COLUMNS)
    cells = {(r["segment"], r["value"]): r for r in m.to_dict("records")}
    assert set(cells) == {(0, "electronics"), (0, "home"), (1, "electronics"), (1, "home")}
    assert cells[(0, "electronics")]["affinity"] == pytest.approx(5 / 3)
    assert cells[(0, "home")]["affinity"] == pytest.approx(1 / 3)
    assert cells[(1, "electronics")]["affinity"] == pytest.approx(1 / 3)
    assert cells[(1, "home")]["affinity"] == pytest.approx(5 / 3)
    assert [cells[k]["shoppers"] for k in sorted(cells)] == [2, 1, 1, 2]
    assert cells[(0, "electronics")]["segment_name"] == "tech"
    assert cells[(1, "home")]["shoppers_all"] == 3

    views = prefs.affinity_matrix(engine, did, run, event_types=("view",), top_n=1)
    assert views["value"].unique().tolist() == ["electronics"]  # 4 views each; ties by name
    v = {r["segment"]: r for r in views.to_dict("records")}
    assert v[0]["share_events"] == pytest.approx(3 / 4) and v[1]["share_events"] == pytest.approx(1 / 4)

    bands = prefs.affinity_matrix(engine, did, dimension="price_band")
    seg1 = bands[bands["segment"] == 1]
    # u3: e5 premium, h1 budget, h2 h3 luxury; u4: h4 mid, h5 premium, n1 premium
    assert seg1["value"].tolist() == ["budget", "mid", "premium", "luxury"]
    assert seg1["events"].tolist() == [1, 1, 3, 2]


def _statements_reading(engine, table: str):
    """The statements ``engine`` runs that name ``table``, recorded into the list returned, while the test runs."""
    seen = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if table in statement:
            seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    return seen


def test_the_matrix_and_a_segment_s_preferences_read_the_assignments_in_one_statement(tiny):
    """Each statement costs a Spark store tenths of a second: the matrix takes the segments' names from the run's
    profiles, and a segment's preferences look it up only when it shows nobody; the figures are unchanged."""
    engine, did, run = tiny
    seen = _statements_reading(engine, "cs_segments")
    matrix = prefs.affinity_matrix(engine, did, run)
    assert len(seen) == 1
    seen.clear()
    tech = prefs.preferences(engine, did, "brand", segment=0, run_id=run, top_n=5)
    assert len(seen) == 1
    assert _by_value(tech)["acme"]["events"] == 4 and _by_value(tech)["acme"]["shoppers"] == 2
    assert matrix[["segment", "segment_name"]].drop_duplicates().values.tolist() == [[0, "tech"], [1, "home"]]
    without = add_run(engine, did, SEGMENTS, dt.datetime(2024, 4, 1), profiles=False)  # read by grouping instead
    pd.testing.assert_frame_equal(prefs.affinity_matrix(engine, did, without), matrix)
    with pytest.raises(CartsightError, match=r"'segment' is 7; segmentation run \d+ of dataset \d+ has segments \[0, 1\]"):
        prefs.preferences(engine, did, "brand", segment=7, run_id=run, top_n=5)


def test_a_shopper_s_preferences_read_the_events_only_when_the_shopper_shows_nothing(tiny):
    """Over the whole dataset a shopper's preferences come from the per-shopper tables; the events (5 M rows on a
    Spark store, a scan of its own) are read only to tell an unknown shopper from one with nothing to show."""
    engine, did, _ = tiny
    seen = _statements_reading(engine, store.events.name)
    for dimension in ("category", "brand"):
        rows = _by_value(prefs.preferences(engine, did, dimension, user_id="u3", top_n=5))
        assert rows and all(r["shoppers"] == 1 for r in rows.values())
    assert seen == []
    windowed = prefs.preferences(engine, did, "category", user_id="u3", top_n=5, end=dt.datetime(2024, 1, 9))
    assert _by_value(windowed)["home"]["events"] == 3
    seen.clear()
    with pytest.raises(CartsightError, match="'user_id' is 'nobody': no such shopper"):
        prefs.preferences(engine, did, "brand", user_id="nobody", top_n=5)
    assert len(seen) == 1 and "LIMIT" in seen[0]  # the figures come from the summaries: then only the lookup


def test_segments_listing(tiny):
    engine, did, run = tiny
    assert prefs.latest_run_summary(engine, did)["run_id"] == run
    seg = prefs.segment_list(engine, did)
    assert seg.to_dict("records") == [
        {"segment": 0, "segment_name": "tech", "shoppers": 2}, {"segment": 1, "segment_name": "home", "shoppers": 2},
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dimension": "colour"}, "'dimension' is 'colour'"),
        ({"segment": 7}, "'segment' is 7"),
        ({"segment": "tech"}, "'segment' is 'tech'"),
        ({"segment": 0, "user_id": "u1"}, "both given"),
        ({"user_id": "nobody"}, "'user_id' is 'nobody'"),
        ({"top_n": 0}, "'top_n' is 0"),
        ({"event_types": []}, "'event_types' is []"),
        ({"start": dt.date(2024, 1, 5), "end": dt.date(2024, 1, 2)}, "time window is empty"),
        ({"start": "yesterday"}, "'start' is 'yesterday'"),
    ],
)
def test_bad_input_is_named(tiny, kwargs, message):
    engine, did, _ = tiny
    with pytest.raises(CartsightError, match=message.replace("[", r"\[").replace("]", r"\]")):
        prefs.preferences(engine, did, **kwargs)


def test_no_segmentation_yet(engine):
    did = make_dataset(engine, "plain", ROWS)
    assert prefs.latest_run_summary(engine, did) is None
    assert prefs.segment_list(engine, did).empty
    with pytest.raises(CartsightError, match="no segmentation yet"):
        prefs.affinity_matrix(engine, did)
    with pytest.raises(CartsightError, match="no segmentation yet"):
        prefs.preferences(engine, did, segment=0)
    assert prefs.preferences(engine, did)["events"].sum() == 12  # everyone still works


def test_no_prices(engine):
    did = make_dataset(engine, "unpriced", [{**r, "price": None} for r in ROWS])
    frame = prefs.preferences(engine, did, "price_band")
    assert frame["value"].tolist() == ["budget", "mid", "premium", "luxury"]
    assert frame["events"].tolist() == [0, 0, 0, 0]
    assert frame["share_events"].isna().all()
    assert band_table.band_edges(engine, did).empty
    cats = _by_value(prefs.preferences(engine, did, "category"))
    assert cats["electronics"]["revenue"] == 0 and math.isnan(cats["electronics"]["share_revenue"])


def test_a_cancellation_subtracts_revenue_and_is_no_event(engine):
    cancel = _ev("u4", 6, "purchase", "home", "zen", 8.0, quantity=-1)
    did = make_dataset(engine, "cancelled", [*ROWS, cancel])
    rows = _by_value(prefs.preferences(engine, did, "category"))
    assert rows["home"]["events"] == 6 and rows["home"]["buyers"] == 2
    assert rows["home"]["revenue"] == pytest.approx(12.0)
    assert rows["home"]["share_revenue"] == pytest.approx(12 / 92)


# --- charts (core.charts.preferences) on the frames above ------------------------------------------------


def test_heatmap_is_centred_at_one_and_shows_shoppers(tiny):
    from core.charts import preferences as charts

    engine, did, _ = tiny
    spec = charts.affinity_heatmap(prefs.affinity_matrix(engine, did), min_shoppers=2).to_plotly_json()
    heat = spec["data"][0]
    assert (heat["zmid"], heat["zmin"], heat["zmax"]) == (1.0, 0.0, 2.0)
    assert heat["z"] == [pytest.approx([5 / 3, 1 / 3]), pytest.approx([1 / 3, 5 / 3])]
    assert heat["text"] == [["×1.67", "×0.33*"], ["×0.33*", "×1.67"]]  # 1 shopper < 2: marked
    assert heat["customdata"][0][1][0] == 1 and "shoppers behind it" in heat["hovertemplate"]
    assert spec["layout"]["xaxis"]["title"]["text"] == "Segment"
    assert spec["layout"]["yaxis"]["title"]["text"] == "Category"


def test_share_chart_greys_small_groups_and_labels_units(tiny):
    from core.charts import preferences as charts

    engine, did, _ = tiny
    frame = prefs.preferences(engine, did, "brand", segment=1)
    fig = charts.share_chart(frame, "brand", "Segment 1 · home", min_shoppers=2).to_plotly_json()
    group, everyone = fig["data"]
    assert list(group["y"]) == ["casa", "zen"]  # 3 events each (h1 h2 h3; e5 h4 h5); casa has more revenue
    assert list(group["x"]) == pytest.approx([3 / 6, 3 / 6])
    assert list(everyone["x"]) == pytest.approx([3 / 11, 4 / 11])
    assert list(group["text"]) == ["few shoppers", ""]  # casa: u3 only; zen: u3 u4
    assert fig["layout"]["title"]["text"] == "Brand share of events — Segment 1 · home"
    assert fig["layout"]["xaxis"]["title"]["text"] == "Share of events (%)"
    revenue = charts.share_chart(frame, "brand", "Segment 1 · home", "revenue", "views").to_plotly_json()
    assert revenue["layout"]["title"]["text"] == "Brand share of revenue — Segment 1 · home"
    with pytest.raises(CartsightError, match="'measure' is 'clicks'"):
        charts.share_chart(frame, "brand", measure="clicks")
