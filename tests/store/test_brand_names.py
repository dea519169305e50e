"""Brands keep the data's own spelling on screen while matching lower-cased (core.store.brand_names through ingest,
the append, the queries and an older store), on DuckDB and PostgreSQL."""
from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from core import config, store
from core.analysis import preferences, product_queries, segments
from core.ingest.load import ingest_file
from core.store.brand_names import choose_shown
from tests.conftest import NO_OLD_SPARK_STORES, skip_on_spark

HEADER = "event_time,event_type,product_id,category_code,brand,price,user_id"


def _file(path, brands: list[str], day: int = 1, first_user: int = 0):
    """One view per brand given, each by its own shopper at its own minute."""
    lines = [f"2024-05-{day:02d} 10:{i:02d}:00 UTC,view,p{i % 3},a.b,{b},10,u{first_user + i}"
             for i, b in enumerate(brands)]
    path.write_text("\n".join([HEADER, *lines]) + "\n")
    return path


def _spellings(engine, did: int) -> list[tuple]:
    t = store.brand_spellings.c
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(t.brand, t.spelling, t.n_events, t.shown)
                                               .where(t.dataset_id == did).order_by(t.brand, t.spelling))]


def _stored_brands(engine, did: int) -> set:
    e = store.events.c
    with engine.connect() as conn:
        return set(conn.execute(sa.select(e.brand).where(e.dataset_id == did).distinct()).scalars())


def test_each_brand_shows_its_most_frequent_spelling_and_events_keep_the_lower_cased_form(engine, tmp_path):
    brands = ["Samsung"] * 3 + ["samsung", "Brand 203", "Brand 203", "  APPLE ", ""]
    report = ingest_file(engine, _file(tmp_path / "w1.csv", brands), "shop")
    did = report.dataset_id
    assert _stored_brands(engine, did) == {"samsung", "brand 203", "apple", None}
    assert _spellings(engine, did) == [("apple", "APPLE", 1, True), ("brand 203", "Brand 203", 2, True),
                                       ("samsung", "Samsung", 3, True), ("samsung", "samsung", 1, False)]
    top = product_queries.top_brands(engine, did)
    assert top[["name", "views"]].values.tolist() == [["Samsung", 4], ["Brand 203", 2], ["APPLE", 1]]
    prefs = preferences.preferences(engine, did, "brand")
    assert prefs[["value", "events"]].values.tolist() == [["Samsung", 4], ["Brand 203", 2], ["APPLE", 1]]
    top_prefs = preferences.preferences(engine, did, "brand", top_n=2)
    assert top_prefs["value"].tolist() == ["Samsung", "Brand 203"]
    assert preferences.drilldown(engine, did, "a.b")["value"].tolist() == ["Samsung", "Brand 203", "APPLE"]
    timeline = segments.shopper_events(engine, "shop", "u3")
    assert timeline["brand"].tolist() == ["Samsung"]  # the event spelled "samsung": the brand's shown spelling


def test_an_append_spelling_a_brand_otherwise_adds_no_brand_and_repeats_match_however_cased(engine, tmp_path):
    one = ingest_file(engine, _file(tmp_path / "w1.csv", ["Samsung"] * 3 + ["Brand 203"]), "shop")
    again = _file(tmp_path / "w2.csv", ["SAMSUNG", "SAMSUNG"] + ["SAMSUNG"] * 3, day=2)
    lines = again.read_text().splitlines()
    # the first line of week 1 again, its brand shouted: the same event, a repeat
    repeat = "2024-05-01 10:00:00 UTC,view,p0,a.b,SAMSUNG,10,u0"
    again.write_text("\n".join([*lines, repeat]) + "\n")
    two = ingest_file(engine, again, "shop", append=True)
    assert (two.rows_loaded, two.repeated_events) == (5, 1)
    did = one.dataset_id
    assert _stored_brands(engine, did) == {"samsung", "brand 203"}
    assert _spellings(engine, did) == [("brand 203", "Brand 203", 1, True), ("samsung", "SAMSUNG", 5, True),
                                       ("samsung", "Samsung", 3, False)]
    top = product_queries.top_brands(engine, did)
    assert top[["name", "views"]].values.tolist() == [["SAMSUNG", 8], ["Brand 203", 1]]


def test_a_tie_between_spellings_goes_to_the_first_in_code_point_order_on_every_load(engine, tmp_path):
    path = _file(tmp_path / "tied.csv", ["Samsung", "SAMSUNG", "samsung", "Samsung", "SAMSUNG", "samsung"])
    for name in ("first", "second"):
        did = ingest_file(engine, path, name).dataset_id
        assert product_queries.top_brands(engine, did)["name"].tolist() == ["SAMSUNG"], name


def test_choose_shown_marks_one_spelling_per_brand_whatever_the_rows_order():
    rows = pd.DataFrame({"brand": ["lg", "lg", "lg", "hp"], "spelling": ["lg", "LG", "Lg", "HP"],
                         "n_events": [4, 4, 1, 2]})
    for order in ([0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]):
        got = choose_shown(rows.iloc[order])
        assert sorted(got.loc[got["shown"], "spelling"]) == ["HP", "LG"], order


def test_a_schema_9_dataset_shows_its_brands_as_stored_until_a_file_spells_them(engine, tmp_path):
    skip_on_spark(engine, NO_OLD_SPARK_STORES)
    one = ingest_file(engine, _file(tmp_path / "w1.csv", ["Samsung", "Samsung", "Brand 203"]), "old")
    with engine.begin() as conn:  # the store as schema 9 left it: no spellings kept
        conn.exec_driver_sql("DROP TABLE cs_brand_spellings")
        conn.execute(sa.update(store.schema_info).values(version=9))
    store.ensure_schema(engine)
    with engine.connect() as conn:
        assert conn.execute(sa.select(store.schema_info.c.version)).scalars().all() == [config.SCHEMA_VERSION]
    did = one.dataset_id
    assert _spellings(engine, did) == []
    assert product_queries.top_brands(engine, did)["name"].tolist() == ["samsung", "brand 203"]
    ingest_file(engine, _file(tmp_path / "w2.csv", ["Samsung"], day=2), "old", append=True)
    top = product_queries.top_brands(engine, did)
    assert top[["name", "views"]].values.tolist() == [["Samsung", 3], ["brand 203", 1]]


def test_dropping_a_dataset_drops_its_spellings(engine, tmp_path):
    did = ingest_file(engine, _file(tmp_path / "w1.csv", ["Samsung"]), "shop").dataset_id
    keep = ingest_file(engine, _file(tmp_path / "w2.csv", ["LG"]), "other").dataset_id
    store.drop_dataset(engine, "shop")
    assert _spellings(engine, did) == [] and _spellings(engine, keep) == [("lg", "LG", 1, True)]
