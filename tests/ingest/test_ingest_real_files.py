"""Every real file in ../shared/data loads with its exact counts.

The expected numbers were counted independently with Python's csv module (not with
cartsight): rows per file, complete vs cut-off rows, exact repeats of an earlier line
(first kept), rows without a user, distinct users, event types after normalisation
(pv->view, fav->wishlist, buy->purchase), first and last times, and the Taobao sessions
by a 30-minute gap.
"""
from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from core import store
from core.ingest.load import ingest_file
from core.ingest.quarantine import quarantined_rows
from core.ingest.sniff import sniff

T = dt.datetime

REES46_DUPLICATES = [  # (line, line it repeats), header is line 1
    (3832, 3831), (3833, 3831), (3834, 3831), (8568, 8566), (15519, 15517)]
REES46_TRUNCATED = ("2019-10-01 02:50:00 UTC,view,10900305,2053013555069845885,appliances.kitchen.mixer,"
                    "elenberg,25.71,52040330")


def _scalar(engine, query):
    with engine.connect() as conn:
        return conn.execute(query).scalar()


def test_rees46_head_on_duckdb_and_postgres(engine, shared_data):
    report = ingest_file(engine, shared_data / "rees46" / "2019-Oct-head.csv", "rees46 head")
    assert report.layout == "rees46"
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (17_435, 17_429, 6)
    assert report.quarantine_by_reason == {"duplicate": 5, "truncated_row": 1}
    assert report.users == 4_504
    assert report.events_by_type == {"view": 17_051, "purchase": 214, "cart": 164}
    assert report.unknown_event_types == {}
    assert (report.first_event, report.last_event) == (T(2019, 10, 1, 0, 0, 0), T(2019, 10, 1, 2, 50, 0))
    assert report.sessions_derived is False

    q = quarantined_rows(engine, "rees46 head")
    dups = q[q.reason == "duplicate"]
    assert dups["line_no"].tolist() == [line for line, _ in REES46_DUPLICATES]
    assert dups["detail"].tolist() == [f"exact duplicate of an earlier line (line {first})"
                                       for _, first in REES46_DUPLICATES]
    assert dups["raw_line"].iloc[0] == ("2019-10-01 02:25:40 UTC,view,1307116,2053013558920217191,computers.notebook,"
                                        "hp,463.07,548049635,83085f41-22c3-4f27-bc29-bfaaf460d902")
    cut = q[q.reason == "truncated_row"]
    assert cut["line_no"].tolist() == [17_436]
    assert cut["raw_line"].tolist() == [REES46_TRUNCATED]
    assert "Expected Number of Columns: 9 Found: 8" in cut["detail"].iloc[0]

    e = store.events
    did = report.dataset_id
    # 19-digit category ids survive as text where category_code is empty (33 % of rows)
    assert _scalar(engine, sa.select(e.c.category).where(
        e.c.dataset_id == did, e.c.item_id == "44600062").limit(1)) == "2103807459595387724"
    assert _scalar(engine, sa.select(e.c.category).where(
        e.c.dataset_id == did, e.c.item_id == "3900821").limit(1)) == "appliances.environment.water_heater"
    assert _scalar(engine, sa.select(sa.func.count()).where(e.c.dataset_id == did, e.c.brand.is_(None))) == 2_476
    assert _scalar(engine, sa.select(sa.func.count(sa.distinct(e.c.session_id))).where(e.c.dataset_id == did)) > 0


def test_rees46_first1000(duck_engine, shared_data):
    report = ingest_file(duck_engine, shared_data / "rees46" / "2019-Oct-first1000.csv", "first1000")
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (1_000, 1_000, 0)
    assert report.users == 330
    assert report.events_by_type == {"view": 987, "purchase": 10, "cart": 3}
    assert (report.first_event, report.last_event) == (T(2019, 10, 1, 0, 0, 0), T(2019, 10, 1, 0, 17, 26))


def test_taobao_without_header(duck_engine, shared_data):
    path = shared_data / "taobao" / "UserBehavior-first43users.csv"
    assert sniff(path).mapping.has_header is False
    report = ingest_file(duck_engine, path, "taobao")
    assert report.layout == "taobao"
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (4_321, 4_321, 0)
    assert report.users == 43
    assert report.events_by_type == {"view": 3_926, "cart": 190, "wishlist": 128, "purchase": 77}
    # the stray 2017-09-11 timestamp (line 4171) is a valid time and loads
    assert report.first_event == T(2017, 9, 11, 8, 16, 39)
    assert report.last_event == T(2017, 12, 3, 15, 59, 13)
    assert report.sessions_derived is True
    e = store.events
    assert _scalar(duck_engine, sa.select(sa.func.count(sa.distinct(e.c.session_id)))
                   .where(e.c.dataset_id == report.dataset_id)) == 722
    assert _scalar(duck_engine, sa.select(e.c.user_id).where(
        e.c.dataset_id == report.dataset_id, e.c.event_time == T(2017, 9, 11, 8, 16, 39))) == "1000169"


def test_online_retail_with_broken_header(duck_engine, shared_data):
    path = shared_data / "online_retail" / "OnlineRetail-head.csv"
    mapping = sniff(path).mapping
    assert mapping.layout == "online_retail"
    assert mapping.source_columns == ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate",
                                      "UnitPrice", "CustomerID", "Country"]
    assert "the header does not name the columns correctly" in mapping.notes[0]
    report = ingest_file(duck_engine, path, "retail")
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (10_000, 7_513, 2_487)
    # 2,291 lines without CustomerID; 196 exact repeats of an earlier line (all with a customer)
    assert report.quarantine_by_reason == {"missing_user": 2_291, "duplicate": 196}
    assert report.users == 323
    assert report.events_by_type == {"purchase": 7_513}
    assert (report.first_event, report.last_event) == (T(2010, 12, 1, 8, 26), T(2010, 12, 5, 16, 24))
    assert any("100 cancellation lines" in n for n in report.notes)

    e = store.events
    did = report.dataset_id
    assert _scalar(duck_engine, sa.select(sa.func.count()).where(e.c.dataset_id == did, e.c.quantity < 0)) == 100
    assert _scalar(duck_engine, sa.select(sa.func.count()).where(
        e.c.dataset_id == did, e.c.session_id.like("C%"), e.c.quantity < 0)) == 100
    assert _scalar(duck_engine, sa.select(sa.func.count(sa.distinct(e.c.session_id))).where(
        e.c.dataset_id == did)) == 444
    revenue = _scalar(duck_engine, sa.select(sa.func.sum(e.c.quantity * e.c.price)).where(e.c.dataset_id == did))
    assert revenue == pytest.approx(143_907.05, abs=0.5)  # float32 price column on DuckDB

    q = quarantined_rows(duck_engine, "retail")
    assert q[q.reason == "duplicate"].iloc[0].tolist() == [
        519, "536409,21866,UNION JACK FLAG LUGGAGE TAG,1,12-01-2010 11:45,1.25,17908,United Kingdom", "duplicate",
        "exact duplicate of an earlier line (line 496)"]
    assert q[q.reason == "missing_user"].iloc[:1].values.tolist() == [[
        624, "536414,22139,,56,12-01-2010 11:52,0,,United Kingdom", "missing_user",
        "column 'CustomerID' is empty; expected a user id"]]


def test_yoochoose_tab_separated_sessions(duck_engine, shared_data):
    report = ingest_file(duck_engine, shared_data / "yoochoose" / "clicks-100k-train.tsv", "yoochoose")
    assert report.layout == "yoochoose"
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (70_278, 70_277, 1)
    assert report.users == 17_794
    assert report.events_by_type == {"view": 70_277}
    assert report.first_event == T(2014, 4, 1, 1, 2, 21, 719000)
    assert report.last_event == T(2014, 4, 7, 0, 43, 12, 560000)
    assert any("user_id = SessionId" in n for n in report.notes)
    q = quarantined_rows(duck_engine, "yoochoose")
    assert q.values.tolist() == [[67_134, "29242\t214644339\t1396771501.984", "duplicate",
                                  "exact duplicate of an earlier line (line 67133)"]]


def test_every_file_reconciles(duck_engine, shared_data):
    files = sorted(p for p in shared_data.rglob("*") if p.suffix in (".csv", ".tsv"))
    assert len(files) == 5
    for i, path in enumerate(files):
        report = ingest_file(duck_engine, path, f"file {i}")
        assert report.rows_read == report.rows_loaded + report.rows_quarantined
        assert sum(report.events_by_type.values()) == report.rows_loaded
        assert sum(report.quarantine_by_reason.values()) == report.rows_quarantined
