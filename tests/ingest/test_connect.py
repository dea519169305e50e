"""A team's events table connected in place (core.ingest.connect): the same dataset as the same rows loaded from a
file, bad rows counted per reason and left out, nothing copied, and the table untouched when the dataset goes."""
from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from core import store
from core.analysis import queries
from core.errors import ParameterError, SchemaError
from core.ingest.connect import connect_table, propose_mapping, refresh_connected
from core.ingest.load import ingest_file
from tests.conftest import _fresh_pg_engine, make_dataset

EVENT_COLUMNS = ["user_id", "event_time", "event_type", "item_id", "category", "brand", "price", "session_id",
                 "price_band"]


def _team_rows() -> list[dict]:
    """Twenty shoppers over two days, in a team's own column names and spellings, and three bad rows."""
    base, rows = dt.datetime(2024, 3, 1, 9), []
    for u in range(20):
        for k in range(7):
            gap = dt.timedelta(hours=u, minutes=9 * k + (90 if k > 3 else 0))  # a second session after 90 min
            rows.append({"visitor": f"v{u:03d}", "happened_at": base + gap,
                         "action": ["page_view", "add_to_cart", "view_item", "purchase"][(u + k) % 4],
                         "sku": f"sku{(u * 3 + k) % 11}", "category_code": ["shoes", "bags", "hats"][k % 3],
                         "maker": ["Nike", "ACME ", "adidas"][(u + k) % 3], "amount": float(5 + (u * 7 + k * 13) % 90)})
    rows += [{**rows[0], "visitor": None}, {**rows[1], "visitor": "bad", "amount": -4.0},
             {**rows[2], "visitor": "late", "happened_at": None}]
    return rows


TEAM = sa.Table("team_events", sa.MetaData(), sa.Column("visitor", sa.String), sa.Column("happened_at", sa.DateTime),
                sa.Column("action", sa.String), sa.Column("sku", sa.String), sa.Column("category_code", sa.String),
                sa.Column("maker", sa.String), sa.Column("amount", sa.Double))
MAP = {"user_id": "visitor", "event_time": "happened_at", "brand": "maker", "price": "amount"}


def _make_team_table(engine, rows: list[dict], table: sa.Table = TEAM) -> None:
    with engine.begin() as conn:
        table.drop(conn, checkfirst=True)
        table.create(conn)
        conn.execute(table.insert(), rows)


def _events(engine, did: int) -> list[tuple]:
    e = store.events.c
    with engine.connect() as conn:
        return sorted((tuple(r) for r in conn.execute(sa.select(*[e[c] for c in EVENT_COLUMNS])
                                                      .where(e.dataset_id == did))), key=str)  # None among prices


def _as_file(path, rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["user_id", "event_time", "event_type", "product_id", "category_code", "brand", "price"])
        for r in rows:
            w.writerow([r["visitor"] or "", r["happened_at"] or "", r["action"], r["sku"], r["category_code"],
                        r["maker"], r["amount"]])


def _table_as_file(path, rows: list[dict]):
    """``rows`` of a team table (one dict per row, the table's column names) as a CSV file, NULL as empty."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(list(rows[0]))
        w.writerows([["" if v is None else v for v in r.values()] for r in rows])
    return path


def test_a_connected_table_is_the_dataset_its_rows_make_as_a_file(engine, tmp_path):
    rows = _team_rows()
    _make_team_table(engine, rows)
    report = connect_table(engine, "team_events", "team", overrides=MAP)
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (143, 140, 3)
    assert report.quarantine_by_reason == {"missing_time": 1, "missing_user": 1, "negative_price": 1}
    assert report.layout == store.CONNECTED_LAYOUT and report.users == 20
    _as_file(tmp_path / "team.csv", rows)
    loaded = ingest_file(engine, tmp_path / "team.csv", "as-file")
    assert loaded.quarantine_by_reason == report.quarantine_by_reason
    assert report.events_by_type == loaded.events_by_type == {"view": 70, "cart": 35, "purchase": 35}
    assert _events(engine, report.dataset_id) == _events(engine, loaded.dataset_id)  # sessions and bands too
    assert queries.kpis(engine, report.dataset_id) == queries.kpis(engine, loaded.dataset_id)
    ds = store.get_dataset(engine, "team")
    assert (ds["layout"], ds["source"], ds["rows_loaded"], ds["n_users"]) == ("connected", "team_events", 140, 20)
    with engine.connect() as conn:  # nothing copied: no stored event is the connected dataset's
        e = store.stored_events.c
        assert conn.execute(sa.select(sa.func.count()).where(e.dataset_id == report.dataset_id)).scalar() == 0


TEXT_NUMBERS = sa.Table("text_numbers", sa.MetaData(), sa.Column("user_id", sa.String),
                        sa.Column("event_time", sa.DateTime), sa.Column("event_type", sa.String),
                        sa.Column("price", sa.String), sa.Column("quantity", sa.String))


def test_prices_and_quantities_held_as_text_are_read_as_a_file_reads_them(engine, tmp_path):
    """Text numbers (a price ' 12 ', '1e3') read, and text that is no number ('n/a' as a price, '2.5' as a
    quantity) quarantined with a file's reasons, on every store: the same dataset as the same rows in a file.
    (PostgreSQL refused such a table; DuckDB kept 'n/a' as no price and read the quantity 2.5 as 3.)"""
    t = dt.datetime(2024, 3, 1, 9)
    values = [("u1", "view", "9.99", "1"), ("u1", "cart", " 12 ", "2"), ("u2", "purchase", "n/a", "1"),
              ("u2", "view", None, None), ("u3", "purchase", "5", "2.5"), ("u3", "purchase", "-3", "1"),
              ("u3", "view", "1e3", "1e1")]
    rows = [{"user_id": u, "event_time": t + dt.timedelta(minutes=5 * i), "event_type": e, "price": p, "quantity": q}
            for i, (u, e, p, q) in enumerate(values)]
    _make_team_table(engine, rows, TEXT_NUMBERS)
    report = connect_table(engine, "text_numbers", "connected")
    loaded = ingest_file(engine, _table_as_file(tmp_path / "numbers.csv", rows), "file")
    reasons = {"negative_price": 1, "non_numeric_price": 1, "non_numeric_quantity": 1}
    assert (report.rows_read, report.rows_loaded, report.quarantine_by_reason) == (7, 4, reasons)
    assert (loaded.rows_read, loaded.rows_loaded, loaded.quarantine_by_reason) == (7, 4, reasons)
    assert _events(engine, report.dataset_id) == _events(engine, loaded.dataset_id)
    e = store.events.c
    with engine.connect() as conn:
        got = sorted(((p, q) for p, q in conn.execute(sa.select(e.price, e.quantity)
                                                      .where(e.dataset_id == report.dataset_id))), key=str)
    assert got == sorted([(9.99, 1), (12.0, 2), (None, None), (1000.0, 10)], key=str)


def test_an_order_written_whole_and_line_by_line_counts_once_as_in_a_file(engine, tmp_path):
    """A team table of Klaviyo's events: the whole order ("Placed Order") beside its lines ("Ordered Product") is
    kept as given, as a file's load keeps it, so the order's revenue counts once."""
    table = sa.Table("klaviyo_events", sa.MetaData(), sa.Column("user_id", sa.String),
                     sa.Column("event_time", sa.DateTime), sa.Column("event_type", sa.String),
                     sa.Column("product_id", sa.String), sa.Column("price", sa.Float))
    t = dt.datetime(2024, 5, 1, 10)
    values = [("Viewed Product", "SKU1", 12.0), ("Placed Order", None, 32.0), ("Ordered Product", "SKU1", 12.0),
              ("Ordered Product", "SKU2", 20.0)]
    rows = [{"user_id": "a@x.com", "event_time": t + dt.timedelta(minutes=min(i, 1)), "event_type": e,
             "product_id": item, "price": p} for i, (e, item, p) in enumerate(values)]
    _make_team_table(engine, rows, table)
    report = connect_table(engine, "klaviyo_events", "connected")
    loaded = ingest_file(engine, _table_as_file(tmp_path / "klaviyo.csv", rows), "file")
    assert report.events_by_type == {"view": 1, "purchase": 2, "placed order": 1}  # kept as given, lower-cased
    assert loaded.events_by_type == {"view": 1, "purchase": 2, "Placed Order": 1}
    assert any(n.startswith("orders come whole ('Placed Order') and line by line") for n in report.notes)
    assert queries.kpis(engine, report.dataset_id)["revenue"] == pytest.approx(32.0)
    assert queries.kpis(engine, loaded.dataset_id)["revenue"] == pytest.approx(32.0)


TEXT_TIMES = sa.Table("text_times", sa.MetaData(), sa.Column("user_id", sa.String), sa.Column("event_time", sa.String),
                      sa.Column("event_type", sa.String))


def _text_time_rows(times: list[str]) -> list[dict]:
    return [{"user_id": f"u{i % 3}", "event_time": t, "event_type": "view"} for i, t in enumerate(times)]


def _connected_times(engine, did: int) -> list:
    e = store.events.c
    with engine.connect() as conn:
        return sorted(t for (t,) in conn.execute(sa.select(e.event_time).where(e.dataset_id == did)))


def test_times_held_as_text_are_read_as_a_file_reads_them(engine, tmp_path):
    """ISO times held as text are read on every store (PostgreSQL refused such a table: it has no safe cast), and
    text that is no time ('yesterday', 30 February, month 13) quarantined as a file's would be."""
    times = ["2024-03-01 09:00:00", "2024-03-01T09:05:00", "2024-03-01 09:10:00 UTC", "2024-03-02",
             "2024-03-01 09:20:00.5", " 2024-03-01 09:25:00 ", "2024-02-30 01:00:00", "yesterday",
             "2024-13-01 00:00:00", "2024-02-29 23:59:59"]
    rows = _text_time_rows(times)
    _make_team_table(engine, rows, TEXT_TIMES)
    report = connect_table(engine, "text_times", "connected")
    loaded = ingest_file(engine, _table_as_file(tmp_path / "times.csv", rows), "file")
    assert (report.rows_read, report.rows_loaded, report.quarantine_by_reason) == (10, 7, {"unparseable_time": 3})
    assert (loaded.rows_read, loaded.rows_loaded, loaded.quarantine_by_reason) == (10, 7, {"unparseable_time": 3})
    assert _connected_times(engine, report.dataset_id) == _connected_times(engine, loaded.dataset_id) == [
        dt.datetime(2024, 2, 29, 23, 59, 59), dt.datetime(2024, 3, 1, 9), dt.datetime(2024, 3, 1, 9, 5),
        dt.datetime(2024, 3, 1, 9, 10), dt.datetime(2024, 3, 1, 9, 20, 0, 500000), dt.datetime(2024, 3, 1, 9, 25),
        dt.datetime(2024, 3, 2)]


def test_text_times_with_a_utc_offset_are_read_in_utc(engine, tmp_path):
    """A text time with a UTC offset after it is converted to UTC on every store, as a file's is (DuckDB and Spark
    kept the clock time and dropped the offset)."""
    rows = _text_time_rows(["2024-03-01 10:00:00+02", "2024-03-01T10:00:00-05:30", "2024-03-01 10:00:00Z",
                            "2024-03-01 10:00:00+0100", "03/01/2024 10:00"])
    _make_team_table(engine, rows, TEXT_TIMES)
    report = connect_table(engine, "text_times", "connected")
    loaded = ingest_file(engine, _table_as_file(tmp_path / "times.csv", rows), "file")
    assert report.quarantine_by_reason == {"unparseable_time": 1}
    assert _connected_times(engine, report.dataset_id)[:4] == [
        dt.datetime(2024, 3, 1, 8), dt.datetime(2024, 3, 1, 9), dt.datetime(2024, 3, 1, 10),
        dt.datetime(2024, 3, 1, 15, 30)]
    assert _connected_times(engine, loaded.dataset_id)[:4] == _connected_times(engine, report.dataset_id)[:4]


def test_a_decimal_price_column_is_a_number(engine):
    """PostgreSQL's ``numeric`` (how money is kept there; DuckDB's DECIMAL): read as a number, not as text, which
    PostgreSQL refused to connect."""
    table = sa.Table("decimal_prices", sa.MetaData(), sa.Column("user_id", sa.String),
                     sa.Column("event_time", sa.DateTime), sa.Column("event_type", sa.String),
                     sa.Column("price", sa.Numeric(10, 2)))
    t = dt.datetime(2024, 3, 1, 9)
    _make_team_table(engine, [{"user_id": "u1", "event_time": t, "event_type": "view", "price": Decimal("9.99")},
                              {"user_id": "u1", "event_time": t, "event_type": "purchase", "price": Decimal("-1.50")},
                              {"user_id": "u2", "event_time": t, "event_type": "cart", "price": Decimal("120.50")}],
                     table)
    assert propose_mapping(engine, "decimal_prices").kinds["price"] == "number"
    report = connect_table(engine, "decimal_prices", "money")
    assert (report.rows_read, report.rows_loaded, report.quarantine_by_reason) == (3, 2, {"negative_price": 1})
    with engine.connect() as conn:
        got = sorted(conn.execute(sa.select(store.events.c.price).where(
            store.events.c.dataset_id == report.dataset_id)).scalars())
    assert got == [9.99, 120.5]


def test_dropping_a_connected_dataset_leaves_the_team_table_and_the_other_datasets(engine, tmp_path):
    _make_team_table(engine, _team_rows())
    one = connect_table(engine, "team_events", "one", overrides=MAP)
    two = connect_table(engine, "team_events", "two", overrides=MAP)
    before = _events(engine, two.dataset_id)
    store.drop_dataset(engine, "one")
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(TEAM)).scalar() == 143
        assert conn.execute(sa.select(sa.func.count()).where(store.events.c.dataset_id == one.dataset_id)).scalar() == 0
    assert _events(engine, two.dataset_id) == before
    again = connect_table(engine, "team_events", "one", overrides=MAP)  # the name is free again
    assert _events(engine, again.dataset_id) == before


def test_the_mapping_is_proposed_from_the_names_and_checked(engine):
    _make_team_table(engine, _team_rows())
    proposal = propose_mapping(engine, "team_events")
    assert proposal.columns["event_time"] is None  # "happened_at" is no time alias: it must be mapped by hand
    assert [proposal.columns[f] for f in ("user_id", "event_type", "item_id", "category")] == [
        "visitor", "action", "sku", "category_code"]
    assert proposal.kinds["happened_at"] == "time" and proposal.kinds["amount"] == "number"
    with pytest.raises(SchemaError, match=r"no column of table 'team_events' is the event_time: map one with --map "
                                          r"event_time=COLUMN\. Columns in the table: \['visitor', 'happened_at'"):
        connect_table(engine, "team_events", "x")
    with pytest.raises(SchemaError, match=r"user_id is mapped to column 'cust', which is not in table 'team_events'"):
        connect_table(engine, "team_events", "x", overrides={**MAP, "user_id": "cust"})
    with pytest.raises(ParameterError, match=r"'shopper' is no field of the event schema"):
        connect_table(engine, "team_events", "x", overrides={**MAP, "shopper": "visitor"})
    with pytest.raises(SchemaError, match=r"No table 'nowhere\.events' can be read in the store's database"):
        connect_table(engine, "nowhere.events", "x", overrides=MAP)
    assert store.list_datasets(engine) == []  # nothing written by a refusal


def test_a_table_of_epoch_milliseconds_and_no_good_row(engine):
    table = sa.Table("team_ms", sa.MetaData(), sa.Column("user_id", sa.String), sa.Column("ts", sa.BigInteger),
                     sa.Column("event_type", sa.String))
    start = int(dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC).timestamp() * 1000)
    _make_team_table(engine, [{"user_id": "a", "ts": start + 60_000 * i, "event_type": "view"} for i in range(3)],
                     table)
    report = connect_table(engine, "team_ms", "ms", overrides={"event_time": "ts"})
    assert (report.first_event, report.last_event) == (dt.datetime(2024, 5, 1, 12), dt.datetime(2024, 5, 1, 12, 2))
    empty = sa.Table("team_none", sa.MetaData(), *[sa.Column(c.name, c.type) for c in table.columns])
    _make_team_table(engine, [{"user_id": None, "ts": start, "event_type": "view"}], empty)
    with pytest.raises(SchemaError, match=r"nothing to connect: no row of table 'team_none' is an event "
                                          r"\(no shopper id: 1\)"):
        connect_table(engine, "team_none", "none", overrides={"event_time": "ts"})
    assert [d["name"] for d in store.list_datasets(engine)] == ["ms"]


def test_a_file_cannot_be_appended_to_a_connected_dataset(engine, tmp_path):
    _make_team_table(engine, _team_rows())
    connect_table(engine, "team_events", "team", overrides=MAP)
    _as_file(tmp_path / "more.csv", _team_rows()[:5])
    with pytest.raises(ParameterError, match=r"dataset 'team' is a team's table read in place \(team_events\): a "
                                             r"file cannot be appended"):
        ingest_file(engine, tmp_path / "more.csv", "team", append=True)


def test_a_team_table_dropped_under_its_dataset_does_not_break_the_others(engine, tmp_path):
    _make_team_table(engine, _team_rows())
    gone = connect_table(engine, "team_events", "gone", overrides=MAP)
    _as_file(tmp_path / "kept.csv", _team_rows())
    kept = ingest_file(engine, tmp_path / "kept.csv", "kept")
    before = queries.kpis(engine, kept.dataset_id)
    if engine.dialect.name == "postgresql":  # PostgreSQL keeps the table while a view reads it
        with pytest.raises(sa.exc.DBAPIError, match="other objects depend on it"), engine.begin() as conn:
            TEAM.drop(conn)
        return
    with engine.begin() as conn:
        TEAM.drop(conn)
    reopened = store.make_engine(engine.url.render_as_string(hide_password=False))
    assert queries.kpis(reopened, kept.dataset_id) == before
    assert _events(reopened, gone.dataset_id) == []  # its events went with the table
    store.drop_dataset(reopened, "gone")
    assert [d["name"] for d in store.list_datasets(reopened)] == ["kept"]
    reopened.dispose()


def test_a_refresh_counts_the_grown_table_again(engine):
    rows = _team_rows()
    _make_team_table(engine, rows[:70])
    first = connect_table(engine, "team_events", "team", overrides=MAP)
    assert (first.rows_read, first.rows_loaded) == (70, 70)
    with engine.begin() as conn:  # the team's pipeline appends the rest
        conn.execute(TEAM.insert(), rows[70:])
    assert queries.kpis(engine, first.dataset_id)["events"] == 70  # the summaries as connected
    again = refresh_connected(engine, "team")
    assert (again.rows_read, again.rows_loaded, again.rows_quarantined) == (143, 140, 3)
    assert queries.kpis(engine, first.dataset_id)["events"] == 140
    ds = store.get_dataset(engine, "team")
    assert (ds["rows_read"], ds["rows_loaded"], ds["n_users"]) == (143, 140, 20)
    assert store.dataset_file_history(engine, first.dataset_id)[0]["rows_read"] == 143
    make_dataset(engine, "nope", [{"user_id": "u", "event_time": dt.datetime(2024, 1, 1), "event_type": "view"}])
    with pytest.raises(ParameterError, match=r"dataset 'nope' was loaded from files"):
        refresh_connected(engine, "nope")


def _connect_ga4(engine, table: str):
    """Connect the GA4 export ``table`` after checking the mapping proposed for it: read flat, the GA4 names."""
    proposal = propose_mapping(engine, table)
    assert "one row per item of each event's 'items' list" in proposal.notes[0]
    assert [proposal.columns[f] for f in ("user_id", "event_time", "item_id", "price", "session_id")] == [
        "user_pseudo_id", "event_timestamp", "items.item_id", "items.price", "event_params.ga_session_id"]
    return connect_table(engine, table, "ga4")


def test_a_nested_ga4_export_table_is_read_as_its_file_is(duck_engine, tmp_path):
    """GA4's BigQuery export (``items`` and ``event_params`` nested) as a table of the DuckDB store: one row per
    item, a column per parameter, the same events and quarantine counts as the same export loaded as a file."""
    import duckdb

    from tests.ingest.test_tabular import GA4_EXPORT

    with duck_engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE ga4_events AS {GA4_EXPORT}")
    report = _connect_ga4(duck_engine, "ga4_events")
    path = tmp_path / "events_20240301.parquet"
    con = duckdb.connect()
    con.execute(f"COPY ({GA4_EXPORT}) TO '{path}' (FORMAT parquet)")
    con.close()
    loaded = ingest_file(duck_engine, path, "ga4-file")
    assert (report.rows_read, report.rows_loaded, report.quarantine_by_reason) == (4, 3, {"negative_price": 1})
    assert (loaded.rows_read, loaded.rows_loaded, loaded.quarantine_by_reason) == (4, 3, {"negative_price": 1})
    assert _events(duck_engine, report.dataset_id) == _events(duck_engine, loaded.dataset_id)


GA4_ON_SPARK = """
    SELECT * FROM VALUES
      (1709287200000000L, 'view_item', 'ps1',
       array(named_struct('key', 'ga_session_id', 'value', named_struct('string_value', CAST(NULL AS STRING),
                                                                        'int_value', 77L)),
             named_struct('key', 'page_location', 'value', named_struct('string_value', 'https://shop/p/A',
                                                                        'int_value', CAST(NULL AS BIGINT)))),
       array(named_struct('item_id', 'A', 'item_brand', 'Acme', 'item_category', 'Kitchen', 'price', 2.5D,
                          'quantity', 1L)),
       named_struct('category', 'mobile')),
      (1709287500000000L, 'purchase', 'ps1',
       array(named_struct('key', 'ga_session_id', 'value', named_struct('string_value', CAST(NULL AS STRING),
                                                                        'int_value', 77L))),
       array(named_struct('item_id', 'A', 'item_brand', 'Acme', 'item_category', 'Kitchen', 'price', 2.5D,
                          'quantity', 2L),
             named_struct('item_id', 'B', 'item_brand', 'Leaf', 'item_category', 'Food', 'price', -4.0D,
                          'quantity', 1L)),
       named_struct('category', 'mobile')),
      (1709370000000000L, 'session_start', 'ps2',
       array(named_struct('key', 'ga_session_id', 'value', named_struct('string_value', CAST(NULL AS STRING),
                                                                        'int_value', 88L))),
       CAST(array() AS ARRAY<STRUCT<item_id: STRING, item_brand: STRING, item_category: STRING, price: DOUBLE,
                                    quantity: BIGINT>>),
       named_struct('category', 'desktop'))
    AS v(event_timestamp, event_name, user_pseudo_id, event_params, items, device)"""


@pytest.mark.spark
def test_a_nested_ga4_export_table_on_spark_is_read_flat(spark_engine):
    """The same export as a Spark table (arrays of structs, as a lakehouse holds it): the same flat reading."""
    with spark_engine.connect() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS cs_test_ga4")
        conn.exec_driver_sql(f"CREATE TABLE cs_test_ga4 USING parquet AS {GA4_ON_SPARK}")
    report = _connect_ga4(spark_engine, "cs_test_ga4")
    assert (report.rows_read, report.rows_loaded, report.quarantine_by_reason) == (4, 3, {"negative_price": 1})
    e = store.events.c
    with spark_engine.connect() as conn:
        got = sorted(tuple(r) for r in conn.execute(
            sa.select(e.event_type, e.item_id, e.category, e.price, e.quantity, e.session_id)
            .where(e.dataset_id == report.dataset_id)))
    assert got == sorted([("view", "A", "Kitchen", 2.5, 1, "77"), ("purchase", "A", "Kitchen", 2.5, 2, "77"),
                          ("session_start", None, None, None, None, "88")], key=str)


def _ga4_rows_as_json() -> list[tuple]:
    """The same export as :data:`GA4_ON_SPARK`, each nested column as JSON text (one more parameter, whose key
    holds " :", which SQLAlchemy's text() would otherwise take for a bind parameter)."""
    import json

    def param(key, **value):
        return {"key": key, "value": {"string_value": None, "int_value": None, **value}}

    def item(item_id, brand, category, price, quantity):
        return {"item_id": item_id, "item_brand": brand, "item_category": category, "price": price,
                "quantity": quantity}

    rows = [
        (1709287200000000, "view_item", "ps1", [param("ga_session_id", int_value=77),
                                                param("page_location", string_value="https://shop/p/A")],
         [item("A", "Acme", "Kitchen", 2.5, 1)], {"category": "mobile"}),
        (1709287500000000, "purchase", "ps1", [param("ga_session_id", int_value=77)],
         [item("A", "Acme", "Kitchen", 2.5, 2), item("B", "Leaf", "Food", -4.0, 1)], {"category": "mobile"}),
        (1709370000000000, "session_start", "ps2", [param("ga_session_id", int_value=88),
                                                    param("note :x", string_value="hi")], [], {"category": "desktop"}),
    ]
    return [(*r[:3], *(json.dumps(v) for v in r[3:])) for r in rows]


def test_a_nested_ga4_export_table_on_postgresql_is_read_flat(pg_url):
    """The export as PostgreSQL holds it (``jsonb`` lists, a ``json`` object): one row per item, a column per
    parameter, prices and quantities read as numbers, the same events as on DuckDB and Spark."""
    from tests.conftest import _fresh_pg_engine

    engine = _fresh_pg_engine(pg_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE ga4_pg (event_timestamp bigint, event_name text, user_pseudo_id text, "
                                 "event_params jsonb, items jsonb, device json)")
            conn.exec_driver_sql("INSERT INTO ga4_pg VALUES (%s, %s, %s, %s::jsonb, %s::jsonb, %s::json)",
                                 _ga4_rows_as_json())
        proposal = propose_mapping(engine, "ga4_pg")
        assert proposal.columns["category"] == "items.item_category"
        assert {"event_params.page_location", "event_params.note :x", "device.category"} <= set(
            proposal.source_columns)
        assert (proposal.kinds["items.price"], proposal.kinds["items.quantity"]) == ("number", "number")
        report = _connect_ga4(engine, "ga4_pg")
        assert (report.rows_read, report.rows_loaded, report.quarantine_by_reason) == (4, 3, {"negative_price": 1})
        e = store.events.c
        with engine.connect() as conn:
            got = sorted(tuple(r) for r in conn.execute(
                sa.select(e.event_type, e.item_id, e.category, e.brand, e.price, e.quantity, e.session_id)
                .where(e.dataset_id == report.dataset_id)))
        assert got == sorted([("view", "A", "Kitchen", "acme", 2.5, 1, "77"),
                              ("purchase", "A", "Kitchen", "acme", 2.5, 2, "77"),
                              ("session_start", None, None, None, None, None, "88")], key=str)
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS ga4_pg CASCADE")
        engine.dispose()


def test_a_zoned_time_column_is_told_from_a_plain_one():
    """A sampled time with a zone is read as UTC (``timezone('UTC', …)``), whatever the session's zone is."""
    from core.ingest.connect import _kind

    aware = dt.datetime(2024, 5, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert (_kind([aware, None]), _kind([dt.datetime(2024, 5, 1, 12)]), _kind([1.7e12]), _kind(["x"])) == (
        "time_tz", "time", "number", "text")
