"""The per-shopper summaries (core.store.summaries) against the events they summarise, on both stores.

Every page query that reads them for the whole dataset is compared with the same query over a window that
holds every event but is not made of whole days, which groups the events themselves: the figures must be
identical (the fixtures' amounts are exact in binary, so no sum depends on its order).
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from core import config, store
from core.analysis import preferences as prefs
from core.analysis import product_queries, queries, rfm, segments
from core.ingest.load import ingest_file
from core.store import derived, segment_totals, summaries
from tests.analysis.test_preferences import add_run
from tests.conftest import NO_OLD_SPARK_STORES, make_dataset, make_schema_1, skip_on_spark

DAY0 = dt.datetime(2024, 5, 1)
#: A window over every fixture event, a microsecond off whole days: the queries group the events for it.
EVERY_EVENT = (DAY0 - dt.timedelta(days=1, microseconds=-1), DAY0 + dt.timedelta(days=30, microseconds=1))
TYPE_FILTERS = [None, ("view",), ("cart", "purchase"), ("wishlist", "remove_from_cart")]


def _rows(seed: int, n: int = 700) -> list[dict]:
    """Events of 30 shoppers over 6 days: unknown types, cancellations, NULL and zero prices, categories and brands
    missing, one brand in several categories; every amount a multiple of 0.5 (exact sums in any order)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        user = f"u{rng.integers(30)}"
        t = DAY0 + dt.timedelta(minutes=int(rng.integers(6 * 1440)))
        kind = str(rng.choice(["view", "view", "view", "cart", "purchase", "remove_from_cart", "wishlist", "click"]))
        price = rng.choice([None, 0.0, 5.0, 10.0, 12.5, 20.0, 35.5, 99.0, float(rng.integers(1, 200))])
        rows.append({
            "user_id": user, "event_time": t, "event_type": kind, "item_id": f"i{rng.integers(40)}",
            "category": rng.choice([None, "a", "b", "b.c", "d"]), "brand": rng.choice([None, "acme", "zen", "ok"]),
            "price": None if price is None else float(price),
            "quantity": None if kind != "purchase" else int(rng.choice([1, 2, -1])),
            "session_id": None if i % 50 == 0 else f"{user}-{(t - DAY0 - dt.timedelta(hours=3)) // dt.timedelta(hours=6)}",
        })
    return rows


def _segmented(engine, seed: int) -> tuple[int, int]:
    did = make_dataset(engine, f"summaries{seed}", _rows(seed))
    users = [f"u{i}" for i in range(30)]
    run = add_run(engine, did, {u: (i % 3, f"s{i % 3}") for i, u in enumerate(users[:25])}, dt.datetime(2024, 6, 1),
                  totals=True)
    assert {r[0] for r in _segment_totals(engine, did)} == {run}
    return did, run


def _same(got, want) -> None:
    if isinstance(got, pd.DataFrame):
        pd.testing.assert_frame_equal(got, want)
    elif isinstance(got, product_queries.PriceDistribution):
        pd.testing.assert_frame_equal(got.bins, want.bins)
        assert got.summary == want.summary
    else:
        assert got == want


def _both_paths(fn, *args, **kwargs) -> None:
    """``fn`` for the whole dataset (the summaries) equals ``fn`` over a window of every event (the events)."""
    assert summaries.answers(None, None, kwargs.get("event_types"))
    _same(fn(*args, **kwargs), fn(*args, start=EVERY_EVENT[0], end=EVERY_EVENT[1], **kwargs))


@pytest.mark.parametrize("seed", [1, 2])
def test_overview_queries_from_the_summaries_equal_the_events(engine, seed):
    did, _ = _segmented(engine, seed)
    _both_paths(queries.kpis, engine, did)
    _both_paths(queries.event_type_counts, engine, did)
    for by in queries.FUNNEL_UNITS:
        for strict in (False, True):
            _both_paths(queries.funnel, engine, did, by, strict=strict)
    for by in product_queries.TOP_MEASURES:
        for n in (1, 3, 10):
            _both_paths(product_queries.top_categories, engine, did, by, n)
            _both_paths(product_queries.top_brands, engine, did, by, n)
    for event_type in (None, "view", "purchase", "click", "none such"):
        _both_paths(product_queries.price_distribution, engine, did, event_type)
    _both_paths(queries.column_coverage, engine, did)
    _both_paths(queries.daily_activity, engine, did)
    for start, end in [(DAY0 + dt.timedelta(days=1), None), (None, DAY0 + dt.timedelta(days=4)),
                       (DAY0 + dt.timedelta(days=2), DAY0 + dt.timedelta(days=3))]:  # whole days: cs_type_days
        tick = dt.timedelta(microseconds=1)
        shifted = ((start or EVERY_EVENT[0]) - tick, (end or EVERY_EVENT[1]) - tick)  # no event in that tick
        for fn in (queries.column_coverage, queries.daily_activity):
            _same(fn(engine, did, start, end), fn(engine, did, *shifted))
    assert queries.kpis(engine, did)["shoppers"] == 30  # not an empty answer on both sides
    assert product_queries.price_distribution(engine, did).summary["priced"] > 0
    assert set(queries.event_type_counts(engine, did)["event_type"]) >= {"click", "view"}


@pytest.mark.parametrize("seed", [1, 2])
def test_preferences_from_the_summaries_equal_the_events(engine, seed):
    did, run = _segmented(engine, seed)
    groups = [{}, {"segment": 1}, {"segment": 2, "run_id": run}, {"user_id": "u3"}]
    for dimension in prefs.DIMENSIONS:
        for group in groups:
            for types in TYPE_FILTERS:
                for top_n in (None, 2):
                    _both_paths(prefs.preferences, engine, did, dimension, event_types=types, top_n=top_n, **group)
        for types in TYPE_FILTERS[:2]:
            _both_paths(prefs.affinity_matrix, engine, did, run, dimension, 3, event_types=types)
    for category in ("a", "b.c", "none such"):
        for group in groups:
            _both_paths(prefs.drilldown, engine, did, category, top_n=None, **group)
            _both_paths(prefs.drilldown, engine, did, category, event_types=("view",), top_n=2, **group)
    shown = prefs.preferences(engine, did, "brand", segment=1)
    assert set(shown["value"]) == {"acme", "zen", "ok"} and shown["shoppers"].sum() > 0


def test_an_unknown_event_type_filter_reads_the_events(engine):
    did, _ = _segmented(engine, 3)
    assert not summaries.answers(None, None, ("click",))
    got = prefs.preferences(engine, did, "category", event_types=("click",))
    rows = pd.DataFrame(_rows(3))
    clicks = rows[(rows.event_type == "click") & rows.category.notna()]
    assert dict(zip(got["value"], got["events"])) == clicks.groupby("category").size().to_dict()


def _expected_rfm_aggregates(rows: list[dict]) -> pd.DataFrame:
    f = pd.DataFrame(rows).assign(session=lambda x: x.session_id.fillna("<none>"))
    buy = (f.event_type == "purchase") & (f.quantity.fillna(1) >= 0)
    amount = (f.price * f.quantity.fillna(1)).where(f.event_type == "purchase")
    f = f.assign(amount=amount, bought_at=f.event_time.where(buy))
    out = f.groupby("user_id").agg(revenue=("amount", lambda a: a.sum() if a.notna().any() else np.nan),
                                   n_amounts=("amount", "count"), last_purchase=("bought_at", "max"),
                                   last_event=("event_time", "max"))
    out["n_orders"] = f[buy].groupby("user_id")["session"].nunique().reindex(out.index).fillna(0).astype(int)
    return out.reset_index()


def test_rfm_reads_one_row_per_shopper_equal_to_the_events(engine):
    rows = _rows(4)
    did = make_dataset(engine, "rfm", rows)
    got = rfm.per_user_aggregates(engine, did).set_index("user_id").sort_index()
    want = _expected_rfm_aggregates(rows).set_index("user_id").sort_index()
    assert list(got.index) == list(want.index)
    for column in ("n_orders", "n_amounts"):
        assert got[column].tolist() == want[column].tolist(), column
    assert got["revenue"].fillna(-1).tolist() == want["revenue"].fillna(-1).tolist()
    for column in ("last_purchase", "last_event"):
        assert got[column].tolist() == pd.to_datetime(want[column]).tolist(), column


def summary_rows(engine, did: int) -> dict:
    """Every summary row of the dataset, per table, sorted (NULLs too)."""
    key = lambda r: tuple((v is None, repr(v)) for v in r)  # noqa: E731 - NULLs sort too
    out = {}
    with engine.connect() as conn:
        for table in (store.shoppers, *store.shopper_values.values(), store.value_totals, store.type_days, store.price_counts):
            rows = conn.execute(sa.select(*[c for c in table.c if c.name != "dataset_id"])
                                .where(table.c.dataset_id == did)).all()
            out[table.name] = sorted(map(tuple, rows), key=key)
    return out


def _rewritten(engine, did: int) -> dict:
    with engine.begin() as conn:
        summaries.write_summaries(conn, did)
    return summary_rows(engine, did)


HEADER = "event_time,event_type,product_id,category_code,brand,price,user_id"


def _csv(path, seed: int, week: int, n: int = 150):
    rng = np.random.default_rng(seed)
    lines = [HEADER]
    for _ in range(n):
        t = DAY0 + dt.timedelta(days=7 * week, minutes=int(rng.integers(7 * 1440 - 30)))
        lines.append(f"{t:%Y-%m-%d %H:%M:%S} UTC,{rng.choice(['view', 'view', 'cart', 'purchase'])},"
                     f"{rng.integers(9)},{rng.choice(['', 'a', 'a.b', 'c'])},{rng.choice(['', 'acme', 'Zen'])},"
                     f"{rng.choice(['', '5', '10', '12.5', '40'])},u{rng.integers(12 + 4 * week)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_an_append_rewrites_the_summaries_of_its_shoppers_and_the_price_bands(engine, tmp_path):
    one = ingest_file(engine, _csv(tmp_path / "w1.csv", 5, 0), "shop")
    before = summary_rows(engine, one.dataset_id)
    assert before["cs_shoppers"] and before["cs_shopper_categories"] and before["cs_shopper_category_brands"]
    assert before == _rewritten(engine, one.dataset_id)
    two = ingest_file(engine, _csv(tmp_path / "w2.csv", 6, 1), "shop", append=True)
    after = summary_rows(engine, two.dataset_id)
    assert after != before and len(after["cs_shoppers"]) == 16  # four shoppers new in the second week
    assert after == _rewritten(engine, two.dataset_id)  # as if written from every event at once
    _both_paths(queries.kpis, engine, two.dataset_id)
    _both_paths(prefs.preferences, engine, two.dataset_id, "price_band")
    _both_paths(prefs.preferences, engine, two.dataset_id, "brand", top_n=2)


def test_a_cancelled_append_leaves_the_summaries_as_they_were(engine, tmp_path):
    from core.errors import IngestCancelled

    one = ingest_file(engine, _csv(tmp_path / "w1.csv", 7, 0), "shop")
    before = summary_rows(engine, one.dataset_id)

    def progress(fraction, message):
        if fraction >= 0.95:  # after the summaries are written, before the commit
            raise IngestCancelled("cancelled by the analyst")

    with pytest.raises(IngestCancelled):
        ingest_file(engine, _csv(tmp_path / "w2.csv", 8, 1), "shop", append=True, progress=progress)
    assert summary_rows(engine, one.dataset_id) == before


def test_derive_rewrites_the_same_summaries_and_drop_removes_them(engine):
    did = make_dataset(engine, "again", _rows(9))
    before = summary_rows(engine, did)
    assert len(before["cs_shoppers"]) == 30
    with engine.begin() as conn:
        derived.derive_dataset(conn, did)
    assert summary_rows(engine, did) == before
    store.drop_dataset(engine, "again")
    assert summary_rows(engine, did) == dict.fromkeys(before, [])


def test_a_schema_10_store_gets_its_summaries_on_opening(engine):
    did = make_dataset(engine, "old", _rows(10))
    fresh = summary_rows(engine, did)
    kpis = queries.kpis(engine, did)
    with engine.begin() as conn:
        for table in (*store.shopper_values.values(), store.shoppers, store.value_totals, store.type_days, store.price_counts):
            conn.exec_driver_sql(f"DROP TABLE {table.name}")
        conn.execute(sa.update(store.schema_info).values(version=10))
    store.ensure_schema(engine)
    with engine.connect() as conn:
        assert conn.execute(sa.select(store.schema_info.c.version)).scalars().all() == [config.SCHEMA_VERSION]
    assert summary_rows(engine, did) == fresh
    assert queries.kpis(engine, did) == kpis


def test_a_schema_12_store_gets_its_value_totals_on_opening(engine):
    """The per-value totals (schema 13) are summed from an older store's per-shopper rows when it is opened, and the
    rankings read them."""
    did = make_dataset(engine, "twelve", _rows(13))
    fresh = summary_rows(engine, did)
    top = product_queries.top_brands(engine, did, "views", 3)
    assert fresh["cs_value_totals"] and len(top) == 3
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE {store.value_totals.name}")
        conn.execute(sa.update(store.schema_info).values(version=12))
    store.ensure_schema(engine)
    assert summary_rows(engine, did) == fresh
    _same(product_queries.top_brands(engine, did, "views", 3), top)


def _segment_totals(engine, did: int) -> list:
    t = store.segment_value_totals
    with engine.connect() as conn:
        rows = conn.execute(sa.select(*[c for c in t.c if c.name != "dataset_id"]).where(t.c.dataset_id == did)).all()
    return sorted(map(tuple, rows), key=lambda r: tuple((v is None, repr(v)) for v in r))


def _segment_views_equal_the_events(engine, did: int, run: int) -> None:
    for dimension in prefs.DIMENSIONS:
        for segment in (0, 1):
            _both_paths(prefs.preferences, engine, did, dimension, segment=segment, run_id=run)
        _both_paths(prefs.affinity_matrix, engine, did, run, dimension, 3)
    for category in ("a", "a.b"):
        for group in ({}, {"segment": 1, "run_id": run}, {"segment": 0}):
            _both_paths(prefs.drilldown, engine, did, category, **group)


def test_the_newest_runs_segment_totals_follow_appends_and_newer_runs(engine, tmp_path):
    """The Preferences page by segment, its heat map and drill-down read the newest run's per-segment totals: equal
    to the events after the run, after an append (new shoppers in no segment) and for an older run (no totals)."""
    one = ingest_file(engine, _csv(tmp_path / "w1.csv", 14, 0), "shop")
    did = one.dataset_id
    first = add_run(engine, did, {f"u{i}": (i % 2, f"s{i % 2}") for i in range(12)}, dt.datetime(2024, 6, 1),
                    totals=True)
    written = _segment_totals(engine, did)
    assert written and {r[1] for r in written} == {0, 1}  # (run_id, segment, ...): every shopper in a segment
    _segment_views_equal_the_events(engine, did, first)
    ingest_file(engine, _csv(tmp_path / "w2.csv", 15, 1), "shop", append=True)
    appended = _segment_totals(engine, did)
    assert appended != written and {r[1] for r in appended} == {0, 1, None}  # four new shoppers, in no segment
    with engine.begin() as conn:
        segment_totals.write(conn, did, first)
    assert _segment_totals(engine, did) == appended  # as if written after the append
    _segment_views_equal_the_events(engine, did, first)
    newer = add_run(engine, did, {f"u{i}": (i % 3, f"t{i % 3}") for i in range(16)}, dt.datetime(2024, 7, 1),
                    totals=True)
    assert {r[0] for r in _segment_totals(engine, did)} == {newer}  # the newest run's only
    _segment_views_equal_the_events(engine, did, first)  # an older run: the per-shopper rows joined again
    _segment_views_equal_the_events(engine, did, newer)
    store.drop_dataset(engine, "shop")
    assert _segment_totals(engine, did) == []


def test_a_schema_13_store_gets_its_segment_totals_on_opening(engine):
    did, run = _segmented(engine, 16)
    fresh = _segment_totals(engine, did)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE {store.segment_value_totals.name}")
        conn.execute(sa.update(store.schema_info).values(version=13))
    store.ensure_schema(engine)
    assert fresh and _segment_totals(engine, did) == fresh


def test_a_schema_1_store_gets_its_summaries_too(engine):
    skip_on_spark(engine, NO_OLD_SPARK_STORES)
    did = make_dataset(engine, "older", _rows(11))
    fresh = summary_rows(engine, did)
    make_schema_1(engine)
    with engine.begin() as conn:
        for table in (*store.shopper_values.values(), store.shoppers, store.value_totals, store.type_days, store.price_counts):
            conn.exec_driver_sql(f"DROP TABLE {table.name}")
    store.ensure_schema(engine)
    assert summary_rows(engine, did) == fresh


def test_shopper_suggestions_rank_by_the_revenue_of_every_event(engine):
    did, run = _segmented(engine, 12)
    with engine.begin() as conn:  # the run as Segments writes it (its features described in an object)
        conn.execute(sa.update(store.segment_runs).where(store.segment_runs.c.run_id == run).values(features_json="{}"))
    name = store.get_dataset(engine, "summaries12")["name"]
    f = pd.DataFrame(_rows(12))
    f["amount"] = (f.price * f.quantity.fillna(1)).where(f.event_type == "purchase")
    revenue = f.groupby("user_id")["amount"].sum(min_count=1).fillna(0.0)
    ranked = sorted(revenue.items(), key=lambda kv: (-kv[1], kv[0]))
    got = segments.suggest_shoppers(engine, name, "biggest spenders", 7)
    assert list(zip(got["user_id"], got["value"])) == ranked[:7]
    members = {f"u{i}" for i in range(25) if i % 3 == 1}
    got = segments.suggest_shoppers(engine, name, "segment members", 5, segment=1, run_id=run)
    assert list(zip(got["user_id"], got["value"])) == [kv for kv in ranked if kv[0] in members][:5]


def test_campaign_behaviour_per_shopper_equals_the_events(engine):
    from core.campaigns import targets

    rows = _rows(13)
    did = make_dataset(engine, "campaign", rows)
    with engine.connect() as conn:
        got = pd.DataFrame(conn.execute(sa.select(targets._per_user(did))).mappings().all()).set_index("user_id")
    f = pd.DataFrame(rows)
    buy = (f.event_type == "purchase") & (f.quantity.fillna(1) >= 0)
    f["amount"] = (f.price * f.quantity.fillna(1)).where(f.event_type == "purchase")
    want = pd.DataFrame({
        "last_seen": f.groupby("user_id")["event_time"].max(),
        "last_purchase": f.event_time.where(buy).groupby(f.user_id).max(),
        "spend": f.groupby("user_id")["amount"].sum(min_count=1).fillna(0.0),
        "orders": f.session_id.where(buy).groupby(f.user_id).nunique(),  # purchase sessions with an id
    })
    got = got.loc[want.index]
    assert got["orders"].astype(int).tolist() == want["orders"].tolist()
    assert got["spend"].astype(float).tolist() == want["spend"].tolist()
    assert got["last_seen"].tolist() == want["last_seen"].tolist()
    assert [None if pd.isna(t) else t for t in got["last_purchase"]] == \
        [None if pd.isna(t) else t for t in want["last_purchase"]]
    assert want["orders"].sum() > 0 and f.session_id.where(buy).isna().sum() > 0  # some purchases have no session
