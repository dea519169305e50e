"""The figures derived at load time (core.store.derived) against the events they summarise, on both stores."""
from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from core import config, store
from core.analysis import queries
from core.ingest import load as ingest
from core.store import derived
from core.store.price_bands import PRICE_BANDS
from tests.conftest import NO_OLD_SPARK_STORES, ROOT, make_dataset, make_schema_1, skip_on_spark

DAY0 = dt.datetime(2024, 5, 1)


def _random_rows(seed: int, n: int = 600) -> list[dict]:
    """Events over 6 days with sessions over midnight, unknown types, cancellations, NULL and odd prices."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        user = f"u{rng.integers(25)}"
        t = DAY0 + dt.timedelta(minutes=int(rng.integers(6 * 1440)))
        kind = rng.choice(["view", "view", "view", "cart", "purchase", "remove_from_cart", "wishlist"])
        price = rng.choice([None, 0.0, -3.0, 5.0, 10.0, 10.0, 20.0, 35.5, 99.0, float(rng.integers(1, 200))])
        quantity = None if kind != "purchase" else int(rng.choice([1, 2, -1]))
        rows.append({
            "user_id": user, "event_time": t, "event_type": str(kind), "item_id": f"i{rng.integers(40)}",
            "category": rng.choice([None, "a", "b", "b.c", "d"]), "brand": None,
            "price": None if price is None else float(price), "quantity": quantity,
            # sessions: per user and 6-hour block, so some run over midnight
            "session_id": None if i % 50 == 0 else f"{user}-{(t - DAY0 - dt.timedelta(hours=3)) // dt.timedelta(hours=6)}",
        })
    return rows


def _expected_kpis(rows: list[dict], start: dt.datetime | None, end: dt.datetime | None) -> dict:
    f = pd.DataFrame(rows)
    if start is not None:
        f = f[f.event_time >= start]
    if end is not None:
        f = f[f.event_time < end]
    f = f.assign(session=f.session_id.fillna("<none>"))
    buy = (f.event_type == "purchase") & (f.quantity.fillna(1) >= 0)
    amount = (f.price * f.quantity.fillna(1)).where(f.event_type == "purchase")
    orders = f[buy].groupby(["user_id", "session"]).size()
    return {
        "shoppers": f.user_id.nunique(), "sessions": len(f.groupby(["user_id", "session"])), "events": len(f),
        "buyers": f[buy].user_id.nunique(), "orders": len(orders), "purchases": int(buy.sum()),
        "cancellations": int(((f.event_type == "purchase") & (f.quantity < 0)).sum()),
        "revenue": None if amount.isna().all() else float(amount.sum()),
    }


@pytest.mark.parametrize("seed", [1, 2])
def test_kpis_and_funnel_from_session_days_match_the_events(engine, seed):
    rows = _random_rows(seed)
    did = make_dataset(engine, f"random{seed}", rows)
    windows = [(None, None), (DAY0 + dt.timedelta(days=1), None), (None, DAY0 + dt.timedelta(days=4)),
               (DAY0 + dt.timedelta(days=2), DAY0 + dt.timedelta(days=3))]
    for start, end in windows:
        assert derived.whole_days(start, end)
        got = queries.kpis(engine, did, start, end)
        want = _expected_kpis(rows, start, end)
        for key, value in want.items():
            assert got[key] == pytest.approx(value), (key, start, end)
        # a window a microsecond off whole days groups the events themselves: same figures when
        # no event sits in that microsecond (every fixture time is on a whole minute)
        tick = dt.timedelta(microseconds=1)
        shifted = ((start or DAY0 - dt.timedelta(days=1)) + tick, (end or DAY0 + dt.timedelta(days=9)) + tick)
        assert not derived.whole_days(*shifted)
        assert queries.kpis(engine, did, *shifted) == got
        for by in queries.FUNNEL_UNITS:
            for strict in (False, True):
                pd.testing.assert_frame_equal(queries.funnel(engine, did, by, start, end, strict),
                                              queries.funnel(engine, did, by, *shifted, strict))


def test_session_days_add_up_to_the_events(engine):
    rows = _random_rows(3)
    did = make_dataset(engine, "sums", rows)
    sd = store.session_days.c
    with engine.connect() as conn:
        n_events, n_views, days = conn.execute(sa.select(
            sa.func.sum(sd.n_events), sa.func.sum(sd.n_views), sa.func.count(sa.distinct(sd.day)))
            .where(sd.dataset_id == did)).one()
    assert (n_events, n_views, days) == (len(rows), sum(r["event_type"] == "view" for r in rows), 6)


def _reference_edges(rows: list[dict], min_items: int) -> dict:
    """The band edges by the written definition, in pandas: {category (None: catalogue): (edges_from, [3 edges])}."""
    f = pd.DataFrame(rows)
    f = f[f["price"].notna() & (f["price"] > 0)].copy()
    f["key"] = [("id", i) if isinstance(i, str) else ("price", p) for i, p in zip(f["item_id"], f["price"])]
    f["cat"] = f["category"].fillna("\0")
    items = f.groupby(["cat", "key"])["price"].median().reset_index()

    def edges_of(prices: pd.Series) -> list:
        levels = prices.value_counts().sort_index()
        share, values = levels.cumsum().to_numpy() / len(prices), levels.index.to_numpy()
        out, prev = [], 0  # 0-based rank of the previous edge (the cheapest price)
        for q in (0.25, 0.5, 0.75):
            rank = max(int(np.argmax(share >= q)), prev + 1)
            out.append(float(values[rank]) if rank < len(values) else None)
            prev = rank
        return out

    def paths(cat: str) -> list[str]:
        parts = cat.split(".")
        return [cat] + [".".join(parts[:k]) for k in range(min(len(parts), 4) - 1, 0, -1) if all(parts[:k + 1])]

    catalogue = items.groupby("key")["price"].median()
    result = {None: (None, edges_of(catalogue))}
    named = items[items["cat"] != "\0"]
    for cat in named["cat"].unique():
        for node in paths(cat):
            under = named[(named["cat"] == node) | named["cat"].str.startswith(node + ".")]
            node_items = under.groupby("key")["price"].mean()
            if len(node_items) >= min_items:
                result[cat] = (node, edges_of(node_items))
                break
        else:
            result[cat] = (None, result[None][1])
    return result


def _band_of(price: float, edges: list) -> str | None:
    if not price > 0:
        return None
    for edge, band in zip(edges, PRICE_BANDS):
        if edge is None or price < edge:
            return band
    return PRICE_BANDS[-1]


def _stored(engine, did):
    pe, ev = store.price_edges.c, store.events.c
    with engine.connect() as conn:
        edges = {r.category: (r.edges_from, [None if v is None else float(v) for v in (r.p25, r.p50, r.p75)])
                 for r in conn.execute(sa.select(pe.category, pe.edges_from, pe.p25, pe.p50, pe.p75)
                                       .where(pe.dataset_id == did))}
        bands = pd.DataFrame(conn.execute(sa.select(ev.category, ev.item_id, ev.price, ev.price_band)
                                          .where(ev.dataset_id == did)).all(),
                             columns=["category", "item_id", "price", "band"])
    return edges, bands


@pytest.mark.parametrize("min_items, sources", [
    (4, {None, "a", "b", "b.c", "b.c.e", "d"}),  # every category its own
    (36, {None, "b", "b.c", "d"}),  # a to the catalogue, b.c.e to its parent b.c
    (45, {None, "b"}),  # b.c and b.c.e to their grandparent b
    (60, {None}),  # every category the catalogue's
])
def test_stored_edges_and_bands_follow_the_definition(engine, monkeypatch, min_items, sources):
    """Items counted once at their median price, parents and the catalogue as fallbacks, edges raised
    past ties: the SQL against a pandas reading of the definition (items in several categories, items
    without an id, categories with and without a parent)."""
    monkeypatch.setattr(config, "PRICE_BAND_MIN_ITEMS", min_items)
    rows = _random_rows(4)
    for i, r in enumerate(rows):
        r["category"] = [None, "a", "b", "b.c", "b.c.e", "d"][i % 6]
        r["item_id"] = None if i % 23 == 0 else r["item_id"]
    did = make_dataset(engine, "bands", rows)
    edges, bands = _stored(engine, did)
    want = _reference_edges(rows, min_items)
    assert edges.keys() == want.keys()
    for cat, (source, values) in want.items():
        assert edges[cat][0] == source, cat
        assert edges[cat][1] == pytest.approx(values), cat
    expected = [_band_of(p, edges.get(c, edges[None])[1]) for c, p in zip(bands["category"], bands["price"])]
    assert [b if isinstance(b, str) else None for b in bands["band"]] == expected
    assert {s for s, _ in edges.values()} == sources


def _items(category: str | None, prices, views: int = 1, start: int = 0, user: str = "u") -> list[dict]:
    """``views`` view events of each item priced ``prices`` (item ids ``category-start``, ...)."""
    return [{"user_id": user, "event_time": DAY0 + dt.timedelta(minutes=k), "event_type": "view",
             "item_id": f"{category}-{start + j}", "category": category, "price": float(p), "session_id": "s"}
            for j, p in enumerate(prices) for k in range(views)]


def test_a_popular_item_fills_one_band_only(engine):
    """The apparel.shoes of a real file: one item at 9.17 viewed 500 times among 40 items viewed once made three
    event quartiles 9.17; counted once, it is one item of the category's 41 and sits in one band."""
    rows = _items("apparel.shoes", np.linspace(2, 80, 40)) + _items("apparel.shoes", [9.17], views=500, start=40)
    did = make_dataset(engine, "popular", rows)
    edges, bands = _stored(engine, did)
    source, (e1, e2, e3) = edges["apparel.shoes"]
    assert source == "apparel.shoes" and e1 < e2 < e3 and e1 > 9.17
    per_band = bands.groupby("band")["item_id"].nunique()
    assert sorted(per_band.index) == sorted(PRICE_BANDS)
    assert per_band.min() >= 9 and per_band.max() <= 12  # about a quarter of the 41 items each
    assert bands.loc[bands["item_id"] == "apparel.shoes-40", "band"].unique().tolist() == ["budget"]


def test_a_category_with_few_items_takes_its_parents_bands(engine):
    rows = (_items("apparel.shirt", range(10, 35)) + _items("apparel.shoes.boots", [500, 600], start=100)
            + _items("apparel.shoes", [5], start=200) + _items("toys", [1, 2, 3], start=300)
            + _items(None, [7, 8], start=400))
    did = make_dataset(engine, "parents", rows)
    edges, bands = _stored(engine, did)
    assert edges["apparel.shirt"][0] == "apparel.shirt"  # 25 items: its own
    # 2 and 1 items: apparel.shoes (3 items with its boots) is too small as well, so apparel (28) gives the edges
    assert edges["apparel.shoes.boots"][0] == edges["apparel.shoes"][0] == "apparel"
    assert edges["toys"][0] is None and edges["toys"][1] == edges[None][1]  # no parent: the whole catalogue
    apparel = sorted([*range(10, 35), 500, 600, 5])  # each item once
    assert edges["apparel.shoes"][1] == [float(apparel[6]), float(apparel[13]), float(apparel[20])]
    assert set(bands.loc[bands["category"] == "apparel.shoes.boots", "band"]) == {"luxury"}


def test_too_few_distinct_prices_give_fewer_bands_never_equal_edges(engine, monkeypatch):
    monkeypatch.setattr(config, "PRICE_BAND_MIN_ITEMS", 3)
    rows = (_items("flat", [5] * 30 + [9] * 2) + _items("one", [4, 4, 4], start=100)
            + _items("two", [1, 2, 2, 2, 2, 2], start=200))
    did = make_dataset(engine, "ties", rows)
    edges, bands = _stored(engine, did)
    assert edges["flat"][1] == [9.0, None, None]  # 5 is the cheapest: the first edge moves up to 9
    assert edges["one"][1] == [None, None, None]  # one price: one band
    assert edges["two"][1] == [2.0, None, None]
    got = {c: set(g["band"]) for c, g in bands.groupby("category")}
    assert got == {"flat": {"budget", "mid"}, "one": {"budget"}, "two": {"budget", "mid"}}


def _check_bands_are_sound(engine, did) -> dict:
    """Strictly increasing edges, and every band of every edge set holds an item at its typical price; returns
    the share of priced events per band."""
    edges, bands = _stored(engine, did)
    priced = bands[bands["price"] > 0].copy()
    priced["category"] = priced["category"].fillna("\0")
    typical = priced.groupby(["category", "item_id"])["price"].median().reset_index()
    for cat, (source, values) in edges.items():
        present = [v for v in values if v is not None]
        assert present == sorted(set(present)), (cat, values)  # no two equal edges
        assert values[:len(present)] == present, (cat, values)  # NULL edges only from the top
        if source is None:
            prices = typical.groupby("item_id")["price"].median()
        else:
            under = typical[(typical["category"] == source) | typical["category"].str.startswith(source + ".")]
            prices = under.groupby("item_id")["price"].mean()
        filled = {_band_of(p, values) for p in prices}
        assert filled == set(PRICE_BANDS[:len(present) + 1]), (cat, source, values)  # no empty band
    return (priced["band"].value_counts() / len(priced)).to_dict()


def test_real_rees46_head_has_sound_bands(engine, shared_data):
    report = ingest.ingest_file(engine, shared_data / "rees46" / "2019-Oct-head.csv", "rees46")
    shares = _check_bands_are_sound(engine, report.dataset_id)
    assert set(shares) == set(PRICE_BANDS) and max(shares.values()) < 0.4, shares  # luxury held 79 % of events
    edges, _ = _stored(engine, report.dataset_id)
    assert any(s not in (None, c) for c, (s, _) in edges.items())  # some categories use a parent's bands


def test_sample_has_sound_bands(engine):
    report = ingest.ingest_file(engine, ROOT / "sample_data" / "sample_events.csv.gz", "sample")
    shares = _check_bands_are_sound(engine, report.dataset_id)
    assert set(shares) == set(PRICE_BANDS) and max(shares.values()) < 0.4, shares
    edges, _ = _stored(engine, report.dataset_id)
    assert len(edges) == 37 and all("." in c for c in edges if c)  # 36 categories by name, none by id


def test_price_on_an_edge_goes_to_the_upper_band(engine):
    rows = [{"user_id": "u", "event_time": DAY0 + dt.timedelta(minutes=i), "event_type": "view", "item_id": f"i{i}",
             "category": "c", "price": p} for i, p in enumerate([10.0, 20.0, 30.0, 40.0, 50.0])]
    did = make_dataset(engine, "edge", rows)  # item quartiles 20, 30, 40: exactly on three prices
    with engine.connect() as conn:
        got = conn.execute(sa.select(store.events.c.price, store.events.c.price_band)
                           .where(store.events.c.dataset_id == did).order_by(store.events.c.price)).all()
    assert [b for _, b in got] == ["budget", "mid", "premium", "luxury", "luxury"]


def test_derive_is_idempotent_and_drop_removes_everything(engine):
    did = make_dataset(engine, "again", _random_rows(5))

    def snapshot():
        with engine.connect() as conn:
            return [conn.execute(sa.select(t).where(t.c.dataset_id == did).order_by(*t.c)).all()
                    for t in (store.price_edges, store.session_days)] + [
                conn.execute(sa.select(store.events.c.price_band).where(store.events.c.dataset_id == did)
                             .order_by(store.events.c.event_time, store.events.c.user_id, store.events.c.item_id,
                                       store.events.c.price_band)).all()]

    before = snapshot()
    assert before[0] and before[1]
    with engine.begin() as conn:
        derived.derive_dataset(conn, did)
    assert snapshot() == before
    store.drop_dataset(engine, "again")
    assert snapshot() == [[], [], []]


def test_banding_again_rewrites_only_the_events_whose_band_changes(engine):
    skip_on_spark(engine, "Spark's Thrift Server does not count the rows an UPDATE changes")
    did = make_dataset(engine, "rebanded", _random_rows(7))
    ev = store.stored_events.c

    def bands():
        with engine.connect() as conn:
            return conn.execute(sa.select(ev.price, ev.price_band).where(ev.dataset_id == did)
                                .order_by(ev.event_time, ev.user_id, ev.item_id, ev.price)).all()

    def row_versions():  # on PostgreSQL a row written again moves to a new place (ctid), changed or not
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT ctid::text FROM cs_events WHERE dataset_id = :d ORDER BY 1"),
                                {"d": did}).scalars().all() if engine.dialect.name == "postgresql" else None

    before, versions = bands(), row_versions()
    with engine.begin() as conn:
        assert derived.rewrite_bands(conn, did) == 0  # nothing moved: no event is written again
    assert row_versions() == versions
    with engine.begin() as conn:  # five priced events of category "a" and one of no category get a wrong band
        for category in ("a", None):
            wrong = sa.select(ev.event_time).where(ev.dataset_id == did, ev.price > 0, ev.category.is_(None)
                                                   if category is None else ev.category == category)
            times = conn.execute(wrong.order_by(ev.event_time).limit(5 if category else 1)).scalars().all()
            conn.execute(store.stored_events.update().where(ev.dataset_id == did, ev.event_time.in_(times))
                         .values(price_band="wrong"))
        n_wrong = conn.execute(sa.select(sa.func.count()).where(ev.dataset_id == did, ev.price_band == "wrong")
                               ).scalar_one()
        assert derived.rewrite_bands(conn, did) == n_wrong >= 6
    assert bands() == before


def test_the_edges_per_category_and_overall_are_written_by_one_statement(engine):
    """Both kinds of edge rows come from one INSERT: on Spark each statement is some ten jobs, and the overall
    edges are the per-category statement's own fallback."""
    import re

    did = make_dataset(engine, "once", _random_rows(5))
    inserts = []
    sa.event.listen(engine, "before_cursor_execute", lambda conn, cursor, statement, *rest: inserts.append(statement)
                    if re.search(r"INSERT INTO [`\"]?cs_price_edges[`\"]? ", statement) else None)
    before = _edges(engine, did)
    with engine.begin() as conn:
        derived.write_price_edges(conn, did)
    assert len(inserts) == 1
    assert _edges(engine, did) == before and any(row[0] is None for row in before)  # the overall row is there


def test_a_schema_1_store_is_upgraded_with_its_datasets_derived(engine):
    skip_on_spark(engine, NO_OLD_SPARK_STORES)
    did = make_dataset(engine, "old", _random_rows(6))
    kpis_before = queries.kpis(engine, did)
    edges_before = _edges(engine, did)
    make_schema_1(engine)
    store.ensure_schema(engine)
    with engine.connect() as conn:
        assert conn.execute(sa.select(store.schema_info.c.version)).scalars().all() == [config.SCHEMA_VERSION]
        n_banded = conn.execute(sa.select(sa.func.count(store.events.c.price_band))
                                .where(store.events.c.dataset_id == did)).scalar()
    assert n_banded > 0
    assert queries.kpis(engine, did) == kpis_before
    assert _edges(engine, did) == edges_before


def test_a_schema_3_store_gets_the_item_bands(engine):
    """A store whose bands were event quartiles (schema 3, no n_items / edges_from) is rewritten on opening."""
    skip_on_spark(engine, NO_OLD_SPARK_STORES)
    rows = _items("shoes", np.linspace(2, 80, 40)) + _items("shoes", [9.17], views=500, start=40)
    did = make_dataset(engine, "old-bands", rows)
    fresh = _stored(engine, did)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE cs_price_edges DROP COLUMN n_items")
        conn.exec_driver_sql("ALTER TABLE cs_price_edges DROP COLUMN edges_from")
        conn.exec_driver_sql("UPDATE cs_price_edges SET p25 = 9.17, p50 = 9.17, p75 = 9.17")  # the old quartiles
        conn.exec_driver_sql("UPDATE cs_events SET price_band = 'luxury' WHERE price > 0")
        conn.execute(sa.update(store.schema_info).values(version=3))
    store.ensure_schema(engine)
    with engine.connect() as conn:
        assert conn.execute(sa.select(store.schema_info.c.version)).scalars().all() == [config.SCHEMA_VERSION]
    upgraded = _stored(engine, did)
    assert upgraded[0] == fresh[0] and upgraded[0]["shoes"][0] == "shoes"
    pd.testing.assert_frame_equal(upgraded[1].sort_values(["item_id", "price"]).reset_index(drop=True),
                                  fresh[1].sort_values(["item_id", "price"]).reset_index(drop=True))
    assert set(upgraded[1]["band"]) == set(PRICE_BANDS)


def _edges(engine, did) -> list:
    pe = store.price_edges.c
    with engine.connect() as conn:
        return [tuple(None if isinstance(v, float) and math.isnan(v) else v for v in r) for r in conn.execute(
            sa.select(pe.category, pe.n_priced, pe.p25, pe.p50, pe.p75).where(pe.dataset_id == did)
            .order_by(pe.category.is_(None), pe.category))]


def test_a_load_derives_its_figures(engine, tmp_path):
    lines = ["event_time,event_type,product_id,category_code,brand,price,user_id,user_session"]
    for i in range(40):
        t = DAY0 + dt.timedelta(hours=7 * i)
        lines.append(f"{t:%Y-%m-%d %H:%M:%S} UTC,{'purchase' if i % 7 == 0 else 'view'},{i % 5},"
                     f"{'' if i % 9 == 0 else 'cat.' + str(i % 3)},b,{(i % 6) * 10},{i % 4},s{i // 3}")
    path = tmp_path / "events.csv"
    path.write_text("\n".join(lines) + "\n")
    report = ingest.ingest_file(engine, path, "loaded")
    sd, pe = store.session_days.c, store.price_edges.c
    with engine.connect() as conn:
        n_events = conn.execute(sa.select(sa.func.sum(sd.n_events)).where(sd.dataset_id == report.dataset_id)).scalar()
        n_edges = conn.execute(sa.select(sa.func.count()).where(pe.dataset_id == report.dataset_id)).scalar()
        unbanded = conn.execute(sa.select(sa.func.count()).where(
            store.events.c.dataset_id == report.dataset_id, store.events.c.price > 0,
            store.events.c.price_band.is_(None))).scalar()
    assert n_events == report.rows_loaded == 40
    assert n_edges == 4 and unbanded == 0  # three categories and the overall row; every priced event banded


def test_a_loads_own_bands_and_edges_equal_those_derived_from_its_events(engine, tmp_path):
    """A DuckDB load bands its events as it inserts them, from edges over its validated rows; rewriting them from
    the stored events gives the same edges and bands (missing categories, zero, negative and missing prices, prices
    on an edge, and quarantined rows, which must not move the edges)."""
    rng = np.random.default_rng(8)
    lines = ["event_time,event_type,product_id,category_code,brand,price,user_id,user_session"]
    for i in range(300):
        t = DAY0 + dt.timedelta(minutes=37 * i)
        cat = rng.choice(["", "a", "a.b", "c"])
        price = rng.choice(["", "0", "-5", "10", "20", "30", "40", str(int(rng.integers(1, 90)))])
        lines.append(f"{t:%Y-%m-%d %H:%M:%S} UTC,view,{i % 9},{cat},b,{price},{i % 7},s{i // 5}")
    lines += [lines[5], "not a time,view,1,a,b,99999,1,s1", f"{DAY0:%Y-%m-%d %H:%M:%S} UTC,view,1,a,b,lots,1,s1"]
    path = tmp_path / "events.csv"
    path.write_text("\n".join(lines) + "\n")
    report = ingest.ingest_file(engine, path, "banded")
    assert report.rows_quarantined >= 3 and report.rows_loaded > 200
    ev, pe = store.events.c, store.price_edges.c

    def snapshot():
        with engine.connect() as conn:
            bands = conn.execute(sa.select(ev.user_id, ev.event_time, ev.item_id, ev.price, ev.price_band)
                                 .where(ev.dataset_id == report.dataset_id)
                                 .order_by(ev.user_id, ev.event_time, ev.item_id)).all()
            edges = conn.execute(sa.select(pe.category, pe.n_priced, pe.p25, pe.p50, pe.p75)
                                 .where(pe.dataset_id == report.dataset_id).order_by(pe.category.nulls_first())).all()
        return bands, edges

    loaded = snapshot()
    with engine.begin() as conn:
        derived.derive_dataset(conn, report.dataset_id)
    assert snapshot() == loaded
    assert {b for *_, b in loaded[0]} == set(PRICE_BANDS) | {None} and len(loaded[1]) == 4
