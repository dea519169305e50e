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
from core.ingest import load
from core.model import sequences
from core.store import derived
from core.store.price_bands import PRICE_BANDS
from tests.conftest import make_dataset, make_schema_1

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


def test_stored_bands_are_the_model_bands_of_each_event(engine):
    rows = _random_rows(4)
    did = make_dataset(engine, "bands", rows)
    with engine.connect() as conn:
        stored = pd.DataFrame(conn.execute(
            sa.select(store.events.c.category, store.events.c.price, store.events.c.price_band)
            .where(store.events.c.dataset_id == did)).all(), columns=["category", "price", "band"])
    edges = sequences.price_bands(engine, did)  # the sequence model's definition, computed separately
    bands = {(sequences.ALL_CATEGORIES if c is None else c): [a, b, d]
             for c, a, b, d in edges[["category", "p25", "p50", "p75"]].itertuples(index=False)}
    ids = sequences.price_band_ids(stored["category"], stored["price"], bands)
    names = {2 + i: name for i, name in enumerate(PRICE_BANDS)}
    want = [names.get(int(i)) for i in ids]
    assert [b if isinstance(b, str) else None for b in stored["band"]] == want
    assert stored.loc[stored["price"].isna() | (stored["price"] <= 0), "band"].isna().all()
    assert set(stored["band"].dropna()) == set(PRICE_BANDS)


def test_price_on_an_edge_goes_to_the_upper_band(engine):
    rows = [{"user_id": "u", "event_time": DAY0 + dt.timedelta(minutes=i), "event_type": "view", "item_id": "i",
             "category": "c", "price": p} for i, p in enumerate([10.0, 20.0, 30.0, 40.0, 50.0])]
    did = make_dataset(engine, "edge", rows)  # quartiles 20, 30, 40: exactly on three prices
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


def test_a_schema_1_store_is_upgraded_with_its_datasets_derived(engine):
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
    report = load.ingest_file(engine, path, "loaded")
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
    report = load.ingest_file(engine, path, "banded")
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
