"""AppTest of the Data page: upload, detection, mapping, load with its reconciliation, cancel, delete.

The store is DuckDB; tests marked ``ON_BOTH_STORES`` run on PostgreSQL as well (ingest there goes
through an in-memory DuckDB and COPY).
"""
from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import re
import threading

import pandas as pd
import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

import core.ingest.load
from core import store
from core.ingest.sniff import sniff
from pages.common import DATASET_KEY
from tests.conftest import ON_BOTH_STORES, make_dataset
from tests.e2e_support import APPTEST_TIMEOUT_S, ROOT, run_until

PAGE = str(ROOT / "pages" / "data.py")
HEADER = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n"
VIEW_1 = "2019-10-01 00:00:00 UTC,view,44600062,2103807459595387724,,shiseido,35.79,541312140,s-541\n"
VIEW_2 = "2019-10-01 00:00:01 UTC,view,3900821,2053013552326770905,appliances.water_heater,aqua,33.20,554748717,s-554\n"
CART_2 = "2019-10-01 00:00:02 UTC,cart,3900821,2053013552326770905,appliances.water_heater,aqua,33.20,554748717,s-554\n"
BUY_2 = "2019-10-01 00:00:09 UTC,purchase,3900821,2053013552326770905,appliances.water_heater,aqua,33.20,554748717,s-554\n"
CUT = "2019-10-01 00:00:12 UTC,view,17300353,2053013553853497655,,creed,543.10,5198"
# lines 2-5 are good; line 6 repeats line 3 exactly; line 7 is cut off (no session, no final newline)
REES46_SMALL = (HEADER + VIEW_1 + VIEW_2 + CART_2 + BUY_2 + VIEW_2 + CUT).encode()
HOSTILE = "Oct'; DROP TABLE cs_events;-- \"x\""


@pytest.fixture
def store_url(app_store_url):
    """A store of this test's own (DuckDB, or PostgreSQL under ``ON_BOTH_STORES``), named by ``CARTSIGHT_DB_URL``."""
    return app_store_url


def _page() -> AppTest:
    return AppTest.from_file(PAGE, default_timeout=APPTEST_TIMEOUT_S).run()


def _upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.file_uploader[0].set_value((name, data, "text/csv")).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _detected(at: AppTest) -> dict[str, str]:
    """The "how the file was read" line, as label -> value."""
    line = next(m.value for m in at.markdown if m.value.startswith("Layout: "))
    return dict(re.fullmatch(r"(.+?): \*\*(.+)\*\*", part.replace("\\", "")).groups() for part in line.split(" · "))


def _loaded(at: AppTest) -> bool:
    return "Rows read" in _metrics(at) or bool(at.error) or any("cancelled" in i.value for i in at.info)


@ON_BOTH_STORES
def test_upload_detects_layout_and_load_reconciles(store_url):
    at = _upload(_page(), "2019-Oct-small.csv", REES46_SMALL)
    assert _detected(at) == {"Layout": "REES46 multi-category store", "Delimiter": "comma",
                             "Encoding": "UTF-8", "Header row": "yes"}
    preview = at.dataframe[0].value
    assert list(preview["user_id"][:2]) == ["541312140", "554748717"]  # ids stay text, as in the file
    assert at.expander[0].label == "Column mapping"
    assert at.selectbox(key=next(k for k in _keys(at) if k.endswith("_col_user_id"))).value == "user_id"
    assert at.text_input[0].value == "2019-Oct-small"

    at.text_input[0].set_value(HOSTILE).run()
    at.button(key="data_load").click().run()
    run_until(at, lambda: _loaded(at))
    assert not at.error, [e.value for e in at.error]
    tiles = _metrics(at)
    assert (tiles["Rows read"], tiles["Rows loaded"], tiles["Rows quarantined"]) == ("6", "4", "2")
    assert "rows read = rows loaded + rows quarantined: 6 = 4 + 2" in at.success[0].value
    by_type = {df.value.columns[0]: df.value for df in at.dataframe}
    assert dict(zip(by_type["Event type"]["Event type"], by_type["Event type"]["Events"])) == {
        "view": 2, "cart": 1, "purchase": 1}
    assert dict(zip(by_type["Reason"]["Reason"], by_type["Reason"]["Rows"])) == {"duplicate": 1, "truncated_row": 1}
    rows = by_type["line_no"]
    assert list(rows["line_no"]) == [6, 7] and list(rows["reason"]) == ["duplicate", "truncated_row"]
    assert rows["raw_line"].iloc[1] == CUT
    assert at.get("download_button")[0].proto.label == "Download quarantined rows (CSV)"
    assert at.session_state[DATASET_KEY] == HOSTILE

    engine = store.make_engine(store_url)
    ds = store.get_dataset(engine, HOSTILE)
    assert (ds["rows_loaded"], ds["rows_quarantined"], ds["n_users"]) == (4, 2, 2)
    engine.dispose()
    listed = next(df.value for df in at.dataframe if "Created" in df.value.columns)
    assert listed["Name"].tolist() == [HOSTILE] and listed["Events"].tolist() == [4]


def _keys(at: AppTest) -> list[str]:
    return [w.key for w in at.selectbox if w.key]


GA4_EXPORT = (b"event_date,event_timestamp,event_name,user_id,user_pseudo_id,ga_session_id,items.item_id,"
              b"items.item_category,items.price\n"
              b"20231114,1700000037000000,view_item,,123.456,1700000001,SKU_1,Apparel,12.50\n"
              b"20231114,1700000066000000,add_to_cart,,123.456,1700000001,SKU_1,Apparel,12.50\n"
              b"20231114,1700000070000000,begin_checkout,,123.456,1700000001,,,\n"
              b"20231114,1700000099000000,purchase,u7,123.456,1700000001,SKU_1,Apparel,12.50\n")


def test_ga4_export_is_read_without_edits(store_url):
    """An analytics export the app has never seen by name: the guess is sure, says what it chose, and loads."""
    at = _upload(_page(), "ga4_export.csv", GA4_EXPORT)
    assert not at.expander[0].proto.expanded  # a sure mapping stays folded
    captions = [c.value.replace("\\", "") for c in at.caption]
    assert "• column 'user_id' is mostly empty in the first rows: user_id read from 'user_pseudo_id'" in captions
    keys = _keys(at)
    chosen = {k.rsplit("_col_", 1)[1]: at.selectbox(key=k).value for k in keys if "_col_" in k}
    assert (chosen["user_id"], chosen["event_time"], chosen["item_id"], chosen["session_id"]) == (
        "user_pseudo_id", "event_timestamp", "items.item_id", "ga_session_id")
    assert at.selectbox(key=next(k for k in keys if k.endswith("_time_format"))).value == "unix_us"
    read_as = next(df.value for df in at.dataframe if "value in file" in df.value.columns)
    assert dict(zip(read_as["value in file"], read_as["read as"])) == {
        "add_to_cart": "cart", "begin_checkout": "(keep as given)", "purchase": "purchase", "view_item": "view"}

    at.button(key="data_load").click().run()
    run_until(at, lambda: _loaded(at))
    assert not at.error, [e.value for e in at.error]
    tiles = _metrics(at)
    assert (tiles["Rows read"], tiles["Rows loaded"], tiles["Rows quarantined"]) == ("4", "4", "0")
    by_type = next(df.value for df in at.dataframe if df.value.columns[0] == "Event type")
    assert dict(zip(by_type["Event type"], by_type["Events"])) == {
        "view": 1, "cart": 1, "begin_checkout": 1, "purchase": 1}


def test_date_and_time_columns_are_shown_and_can_be_unjoined(store_url):
    data = b"Date,Time,Customer,Action\n2024-03-01,10:15:00,c1,view\n2024-03-02,13:05:00,c2,purchase\n"
    at = _upload(_page(), "pos.csv", data)
    keys = _keys(at)
    clock = at.selectbox(key=next(k for k in keys if k.endswith("_time_of_day")))
    assert clock.label == "Time of day, if in its own column" and clock.value == "Time"
    assert at.selectbox(key=next(k for k in keys if k.endswith("_col_event_time"))).value == "Date"
    clock.set_value(clock.options[0]).run()  # "not in the file"
    at.button(key="data_load").click().run()  # the date alone: each event at midnight
    run_until(at, lambda: _loaded(at))
    assert not at.error, [e.value for e in at.error]
    assert _metrics(at)["Rows loaded"] == "2"
    engine = store.make_engine(store_url)
    with engine.connect() as conn:
        times = [r[0] for r in conn.execute(sa.select(store.events.c.event_time).order_by(store.events.c.event_time))]
    engine.dispose()
    assert times == [dt.datetime(2024, 3, 1), dt.datetime(2024, 3, 2)]


def test_missing_user_column_names_the_columns_found(store_url):
    data = b"timestamp,action,sku,price\n2024-03-01 10:00:00,view,A1,9.5\n2024-03-01 10:05:00,purchase,A1,9.5\n"
    at = _upload(_page(), "no_user.csv", data)
    assert at.expander[0].proto.expanded  # unsure mappings open for checking
    (message,) = [w.value.replace("\\", "") for w in at.warning if "Choose the column" in w.value]
    assert message == ("Choose the column for Shopper id in the column mapping above. "
                       "Columns in the file: timestamp, action, sku, price.")
    assert at.button(key="data_load").disabled
    key = next(k for k in _keys(at) if k.endswith("_col_user_id"))
    at.selectbox(key=key).set_value("sku").run()  # any column may be taken as the shopper
    assert not [w for w in at.warning if "Choose the column" in w.value]
    assert not at.button(key="data_load").disabled


@ON_BOTH_STORES
def test_edited_mapping_loads_and_is_remembered(store_url):
    data = (b"who,when,what,thing\n"
            b"c1,2024-03-01 10:00:00,view,A1\nc1,2024-03-01 10:01:00,basket,A1\nc2,2024-03-02 09:00:00,view,B2\n")
    at = _upload(_page(), "odd.csv", data)
    sniffed_before = sniff_mapping(data, store_url)
    assert not sniffed_before.confident
    key = next(k for k in _keys(at) if k.endswith("_col_user_id")).removesuffix("_col_user_id")
    at.selectbox(key=f"{key}_col_user_id").set_value("who")
    at.selectbox(key=f"{key}_col_event_time").set_value("when")
    at.selectbox(key=f"{key}_col_event_type").set_value("what")
    at.selectbox(key=f"{key}_col_item_id").set_value("thing").run()
    at.button(key="data_load").click().run()
    run_until(at, lambda: _loaded(at))
    assert not at.error, [e.value for e in at.error]
    tiles = _metrics(at)
    assert (tiles["Rows read"], tiles["Rows loaded"], tiles["Rows quarantined"]) == ("3", "3", "0")
    assert any("kept as given: basket (1)" in w.value.replace("\\", "") for w in at.warning)  # unknown event type, kept and reported

    again = sniff_mapping(data, store_url)
    assert again.confident and again.columns["user_id"] == "who" and again.columns["event_type"] == "what"
    assert any("remembered" in n for n in again.notes)


def test_a_price_and_time_column_chosen_by_hand_are_read_in_their_own_format(store_url):
    """The sniffer took 'Datum' as the time and found no price; the analyst chooses 'Zeitpunkt' (dates with dots)
    and 'Preis' (a decimal comma, dots grouping thousands): both are read in their own format, not the one the
    sniff had found for other columns (every row was quarantined)."""
    import datetime as dt

    import sqlalchemy as sa

    data = ("Kunde;Datum;Zeitpunkt;Ereignis;Preis\n1001;2026-12-01;07.12.2026 10:15;view;1.299,00\n"
            "1002;2026-12-01;08.12.2026 11:00;purchase;89,95\n").encode()
    at = _upload(_page(), "export.csv", data)
    key = next(k for k in _keys(at) if k.endswith("_col_user_id")).removesuffix("_col_user_id")
    for fld, column in (("user_id", "Kunde"), ("event_time", "Zeitpunkt"), ("event_type", "Ereignis"),
                        ("price", "Preis")):
        at.selectbox(key=f"{key}_col_{fld}").set_value(column)
    at.run()
    at.button(key="data_load").click().run()
    run_until(at, lambda: _loaded(at))
    assert not at.error, [e.value for e in at.error]
    engine = store.make_engine(store_url)
    try:
        e = store.events.c
        with engine.connect() as conn:
            got = conn.execute(sa.select(e.user_id, e.event_time, e.price).order_by(e.event_time)).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in got] == [("1001", dt.datetime(2026, 12, 7, 10, 15), 1299.0),
                                       ("1002", dt.datetime(2026, 12, 8, 11, 0), 89.95)]


def sniff_mapping(data: bytes, url: str):
    from pathlib import Path

    path = Path.cwd() / "sniff-me.csv"
    path.write_bytes(data)
    engine = store.make_engine(url)
    try:
        return sniff(path, engine=engine).mapping
    finally:
        engine.dispose()


def test_unreadable_upload_shows_the_reason(store_url):
    at = _upload(_page(), "photo.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00")
    assert "photo.csv looks like a binary file" in at.error[0].value
    assert not [b for b in at.button if b.key == "data_load"]


def test_taken_name_blocks_load(store_url):
    engine = store.make_engine(store_url)
    make_dataset(engine, "2019-Oct-small", [
        {"user_id": "u1", "event_time": dt.datetime(2024, 1, 1), "event_type": "view"}])
    engine.dispose()
    at = _upload(_page(), "2019-Oct-small.csv", REES46_SMALL)
    assert "exists already" in at.warning[0].value
    assert at.button(key="data_load").disabled


def _hold_loads(monkeypatch) -> threading.Event:
    """Make every load wait after its first progress report until the returned event is set."""
    release = threading.Event()
    real = core.ingest.load.ingest_file

    def held_ingest(engine, path, name, mapping=None, progress=None, **options):
        progress(0.05, "waiting for the test")
        release.wait(timeout=APPTEST_TIMEOUT_S)
        return real(engine, path, name, mapping=mapping, progress=progress, **options)

    monkeypatch.setattr(core.ingest.load, "ingest_file", held_ingest)
    return release


@ON_BOTH_STORES
def test_cancel_keeps_nothing(store_url, monkeypatch):
    release = _hold_loads(monkeypatch)
    at = _upload(_page(), "2019-Oct-small.csv", REES46_SMALL)
    at.button(key="data_load").click().run()
    assert at.get("progress")[0].proto.text == "waiting for the test"
    at.button(key="data_cancel").click().run()
    release.set()
    run_until(at, lambda: _loaded(at))
    assert "was cancelled: nothing of it was kept" in at.info[0].value
    assert "Rows read" not in _metrics(at)
    engine = store.make_engine(store_url)
    assert store.list_datasets(engine) == []
    engine.dispose()


@ON_BOTH_STORES
def test_delete_dataset_after_confirming(store_url):
    engine = store.make_engine(store_url)
    t0 = dt.datetime(2024, 3, 1, 12)
    make_dataset(engine, "keep me", [{"user_id": "u1", "event_time": t0, "event_type": "view"}])
    make_dataset(engine, "drop; me", [{"user_id": "u2", "event_time": t0, "event_type": "cart"}])
    engine.dispose()
    at = _page()
    listed = at.dataframe[0].value
    assert sorted(listed["Name"]) == ["drop; me", "keep me"]
    at.selectbox(key="data_delete_pick").set_value("drop; me").run()
    at.button(key="data_delete").click().run()
    assert "cannot be undone" in at.warning[0].value
    at.button(key="data_delete_keep").click().run()
    assert sorted(at.dataframe[0].value["Name"]) == ["drop; me", "keep me"]  # "keep it" deletes nothing

    at.selectbox(key="data_delete_pick").set_value("drop; me").run()
    at.button(key="data_delete").click().run()
    at.button(key="data_delete_confirm").click().run()
    assert at.dataframe[0].value["Name"].tolist() == ["keep me"]
    engine = store.make_engine(store_url)
    assert [d["name"] for d in store.list_datasets(engine)] == ["keep me"]
    engine.dispose()


def test_quarantine_download_holds_every_quarantined_row(store_url, download_content):
    at = _upload(_page(), "2019-Oct-small.csv", REES46_SMALL)
    at.button(key="data_load").click().run()
    run_until(at, lambda: _loaded(at))
    button = at.get("download_button")[0]
    assert button.proto.label == "Download quarantined rows (CSV)"
    content = download_content(button).decode()
    downloaded = pd.read_csv(io.StringIO(content), dtype=str, keep_default_na=False)
    assert downloaded.columns.tolist() == ["line_no", "raw_line", "reason", "detail"]
    assert downloaded["line_no"].tolist() == ["6", "7"]
    assert downloaded["raw_line"].tolist() == [VIEW_2.rstrip("\n"), CUT]
    assert downloaded["reason"].tolist() == ["duplicate", "truncated_row"]


def test_gzipped_upload_is_read_and_named_without_its_suffixes(store_url):
    at = _upload(_page(), "2019-Oct-small.csv.gz", gzip.compress(REES46_SMALL))
    assert _detected(at)["Encoding"] == "UTF-8, gzip"
    assert at.text_input[0].value == "2019-Oct-small"
    at.button(key="data_load").click().run()
    run_until(at, lambda: _loaded(at))
    tiles = _metrics(at)
    assert (tiles["Rows read"], tiles["Rows loaded"], tiles["Rows quarantined"]) == ("6", "4", "2")
    assert at.file_uploader[0].value is None  # the upload box is empty again for the next file


def test_a_report_title_above_the_header_is_shown_and_skipped(store_url):
    data = b"Order export\nGenerated 2024-04-01\n\n" + REES46_SMALL
    at = _upload(_page(), "orders.csv", data)
    assert _detected(at)["Header row"] == "yes (line 4, below a title)"
    assert any("the first 3 lines are no part of the table" in c.value.replace("\\", "") for c in at.caption)
    at.button(key="data_load").click().run()
    run_until(at, lambda: _loaded(at))
    tiles = _metrics(at)
    assert (tiles["Rows read"], tiles["Rows loaded"], tiles["Rows quarantined"]) == ("6", "4", "2")


def test_lines_above_the_header_can_be_set_by_hand(store_url):
    data = b"".join(f"report line {i}\n".encode() for i in range(12)) + REES46_SMALL  # too long to be found
    at = _upload(_page(), "orders.csv", data)
    skip = next(n for n in at.number_input if n.label == "Lines above the header")
    assert skip.value == 0 and _detected(at)["Header row"] == "no"
    skip.set_value(12).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert _detected(at) == {"Layout": "REES46 multi-category store", "Delimiter": "comma", "Encoding": "UTF-8",
                             "Header row": "yes (line 13, below a title)"}
    at.button(key="data_load").click().run()
    run_until(at, lambda: _loaded(at))
    tiles = _metrics(at)
    assert (tiles["Rows read"], tiles["Rows loaded"], tiles["Rows quarantined"]) == ("6", "4", "2")


def test_the_worksheet_holding_the_events_can_be_chosen(store_url, tmp_path):
    from openpyxl import Workbook

    book = Workbook()
    book.active.title = "Summary"
    book.active.append(["Total orders", 4])
    events = book.create_sheet("Events")
    for line in REES46_SMALL.decode().splitlines():
        events.append(line.split(","))
    book.save(tmp_path / "report.xlsx")
    at = _upload(_page(), "report.xlsx", (tmp_path / "report.xlsx").read_bytes())
    worksheet = next(s for s in at.selectbox if s.label == "Worksheet")
    assert (worksheet.options, worksheet.value) == (["Summary", "Events"], "Summary")
    worksheet.set_value("Events").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert _detected(at)["Layout"] == "REES46 multi-category store"
    at.button(key="data_load").click().run()
    run_until(at, lambda: _loaded(at))
    tiles = _metrics(at)
    # the CSV's cut-off line is a short sheet row, its missing cells empty: loaded; the repeated row is not
    assert (tiles["Rows read"], tiles["Rows loaded"], tiles["Rows quarantined"]) == ("6", "5", "1")


def test_a_json_lines_export_is_uploaded_and_loaded(store_url):
    import json

    objects = [{"event": ["Viewed Product", "Order Completed"][i % 2], "properties": {
        "time": 1709287200 + 60 * i, "distinct_id": f"u{i % 3}", "product_id": f"p{i}", "price": 9.5}}
        for i in range(6)]
    data = "".join(json.dumps(o) + "\n" for o in objects).encode()
    at = _upload(_page(), "mixpanel-export.jsonl", data)
    assert not at.error, [e.value for e in at.error]
    assert any(c.value.replace("\\", "").startswith("• JSON: one row per object") for c in at.caption)
    assert at.text_input[0].value == "mixpanel-export"
    at.button(key="data_load").click().run()
    run_until(at, lambda: _loaded(at))
    tiles = _metrics(at)
    assert (tiles["Rows read"], tiles["Rows loaded"], tiles["Rows quarantined"]) == ("6", "6", "0")


@ON_BOTH_STORES
def test_an_order_export_shows_its_totals_and_loads_them_as_revenue(store_url):
    data = (b"Order ID,Customer ID,Order Date,Order Total,Items\n1001,C-17,2024-03-01,59.90,3\n"
            b"1002,C-18,2024-03-02,$12.00,1\n")
    at = _upload(_page(), "orders.csv", data)
    assert _detected(at)["Layout"] == "Transactions (customer, date, amount)"
    captions = [c.value.replace("\\", "") for c in at.caption]
    assert ("• the amounts in 'Order Total' are order totals, not unit prices: each row's revenue is its total; the "
            "price stored is the total / 'Items' (the average unit price)") in captions
    keys = _keys(at)
    holds = at.selectbox(key=next(k for k in keys if k.endswith("_price_is")))
    assert (holds.label, holds.value) == ("The price column holds", "order_total")
    assert at.selectbox(key=next(k for k in keys if k.endswith("_col_session_id"))).value == "Order ID"
    at.button(key="data_load").click().run()
    run_until(at, lambda: _loaded(at))
    assert not at.error, [e.value for e in at.error]
    engine = store.make_engine(store_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(store.events.c.price, store.events.c.quantity, store.events.c.session_id)
                            .order_by(store.events.c.session_id)).all()
    engine.dispose()
    assert [(round(p * q, 2), s) for p, q, s in rows] == [(59.90, "1001"), (12.00, "1002")]


def test_an_order_status_found_is_shown_and_can_be_unmapped(store_url):
    data = (b"id,Created (UTC),Amount,Amount Refunded,Status,Customer ID\n"
            b"ch_1,2024-03-01 10:05:12,41.00,0.00,Paid,cus_1\n"
            b"ch_2,2024-03-02 11:00:40,12.50,12.50,Refunded,cus_2\n"
            b"ch_3,2024-03-03 09:12:00,20.00,0.00,Failed,cus_2\n")
    at = _upload(_page(), "payments.csv", data)
    captions = [c.value.replace("\\", "") for c in at.caption]
    assert any(c.startswith("• the order status is read from 'Status': a purchase whose status says no money was "
                            "kept") for c in captions)
    keys = _keys(at)
    status = at.selectbox(key=next(k for k in keys if k.endswith("_status")))
    refund = at.selectbox(key=next(k for k in keys if k.endswith("_refund")))
    assert (status.label, status.value, refund.label, refund.value) == (
        "Order status, if any", "Status", "Amount refunded, if any", "Amount Refunded")
    status.set_value(status.options[0]).run()  # "not in the file": the full refund is still no purchase
    at.button(key="data_load").click().run()
    run_until(at, lambda: _loaded(at))
    assert not at.error, [e.value for e in at.error]
    tiles = _metrics(at)
    assert (tiles["Rows read"], tiles["Rows loaded"], tiles["Rows quarantined"]) == ("3", "2", "1")
    by_reason = next(d.value for d in at.dataframe if "Reason" in d.value.columns and "Rows" in d.value.columns)
    assert dict(zip(by_reason["Reason"], by_reason["Rows"])) == {"not_a_purchase": 1}
    captions = [c.value.replace("\\", "") for c in at.caption]
    assert not any(c.startswith("• the order status is read from") for c in captions)
    assert any(c.startswith("• the amount refunded is read from 'Amount Refunded': ") for c in captions)

def test_bundled_sample_can_be_loaded_from_the_page(store_url):
    from core import config

    at = _page()
    at.button(key="data_load_sample").click().run()
    run_until(at, lambda: _loaded(at))
    with gzip.open(config.SAMPLE_FILE, "rt", encoding="utf-8") as fh:
        lines = sum(1 for line in fh if line.strip()) - 1  # less the header
    tiles = _metrics(at)
    assert tiles["Rows read"] == f"{lines:,}"
    assert int(tiles["Rows loaded"].replace(",", "")) + int(tiles["Rows quarantined"].replace(",", "")) == lines
    assert at.session_state[DATASET_KEY] == config.SAMPLE_DATASET
    assert not [b for b in at.button if b.key == "data_load_sample"]  # offered only while it is missing


def _plain(markdown: str) -> str:
    """Markdown source with its backslash escapes removed (the page escapes names shown in messages)."""
    return re.sub(r"\\(.)", r"\1", markdown)


@ON_BOTH_STORES
def test_an_unusable_dataset_name_is_refused_before_load(store_url):
    from core.store.dataset_names import refusal

    at = _upload(_page(), "2019-Oct-small.csv", REES46_SMALL)
    box = next(t for t in at.text_input if t.label == "Dataset name")
    for name in ("Oct\t2019", "a\u202eb", "a\nb"):  # longer than 100 the box itself does not take
        box.set_value(name).run()
        assert [_plain(w.value) for w in at.warning] == [refusal(name)], name
        assert at.button(key="data_load").disabled, name
    box.set_value("   ").run()  # the page trims: nothing is left
    assert "The dataset name '' is empty" in _plain(at.warning[0].value) and at.button(key="data_load").disabled
    box.set_value("Oct 2019").run()
    assert not at.warning and not at.button(key="data_load").disabled
    at.button(key="data_load").click().run()
    run_until(at, lambda: _loaded(at))
    engine = store.make_engine(store_url)
    assert [d["name"] for d in store.list_datasets(engine)] == ["Oct 2019"]
    engine.dispose()


def test_a_long_file_name_gives_a_default_name_the_store_takes(store_url):
    at = _upload(_page(), "q" * 150 + ".csv", REES46_SMALL)
    box = next(t for t in at.text_input if t.label == "Dataset name")
    assert box.value == "q" * 100 and box.max_chars == 100
    assert not at.warning and not at.button(key="data_load").disabled


@ON_BOTH_STORES
def test_quarantine_download_escapes_formula_lines(store_url, download_content):
    bad = ['=HYPERLINK("http://x"),view,1,2,,a,1.00,7,s', "+1,view,1,2,,a,1.00,7,s", "-1+2,view,1,2,,a,1.00,7,s",
           "@SUM(A1),view,1,2,,a,1.00,7,s"]
    data = HEADER + VIEW_1 + "".join(line + "\n" for line in bad)  # lines 3-6: a formula where the time should be
    at = _upload(_page(), "formulas.csv", data.encode())
    at.button(key="data_load").click().run()
    run_until(at, lambda: _loaded(at))
    assert _metrics(at)["Rows quarantined"] == "4"
    button = at.get("download_button")[0]
    content = download_content(button).decode()
    rows = list(csv.DictReader(io.StringIO(content, newline="")))
    assert [r["line_no"] for r in rows] == ["3", "4", "5", "6"]
    assert [r["raw_line"] for r in rows] == ["'" + line for line in bad]


WEEK_2 = (HEADER + "2019-10-08 10:00:00 UTC,view,3900821,2053013552326770905,appliances.water_heater,aqua,33.20,"
          "554748717,s-9\n" + VIEW_1).encode()  # one new event and a repeat of the first file's line 2


def _add_to(at: AppTest, dataset: str, name: str, data: bytes) -> AppTest:
    at.radio(key="data_mode").set_value("Add to an existing dataset").run()
    at.selectbox(key="data_append_to").set_value(dataset).run()
    _upload(at, name, data)
    assert at.button(key="data_append").proto.label == f"Add to {dataset}"
    at.button(key="data_append").click().run()
    return run_until(at, lambda: _loaded(at))


@ON_BOTH_STORES
def test_a_file_is_added_to_a_dataset_and_its_repeats_are_shown(store_url):
    at = _upload(_page(), "week1.csv", REES46_SMALL)
    at.button(key="data_load").click().run()
    run_until(at, lambda: _loaded(at))
    at = _page()  # a fresh page: the dataset exists, so it offers to add to it
    _add_to(at, "week1", "week2.csv", WEEK_2)
    assert not at.error, [e.value for e in at.error]
    assert "Added week2\\.csv to week1 (its file 2)" in [s.value for s in at.subheader]
    assert at.info[0].value.replace("\\", "") == ("1 line repeats an event already in the dataset: quarantined as "
                                                  "duplicate, not added again")
    tiles = _metrics(at)
    assert (tiles["Rows read"], tiles["Rows loaded"], tiles["Rows quarantined"]) == ("2", "1", "1")
    rows = next(df.value for df in at.dataframe if "line_no" in df.value.columns)
    assert rows[["line_no", "reason", "detail"]].values.tolist() == [
        [3, "duplicate", "repeats an event already in the dataset: line 2 of week1.csv (file 1)"]]
    files = next(df.value for df in at.dataframe if "File name" in df.value.columns)
    assert files[["File", "File name", "Rows read", "Rows loaded", "Quarantined", "Repeats"]].values.tolist() == [
        [1, "week1.csv", 6, 4, 2, 0], [2, "week2.csv", 2, 1, 1, 1]]
    engine = store.make_engine(store_url)
    ds = store.get_dataset(engine, "week1")
    assert (ds["rows_read"], ds["rows_loaded"], ds["rows_quarantined"]) == (8, 5, 3)
    engine.dispose()


def test_adding_a_file_offers_the_datasets_mapping_and_can_be_cancelled(store_url, monkeypatch, tmp_path):
    from core.ingest.sniff import with_overrides

    engine = store.make_engine(store_url)
    week1 = tmp_path / "w1.csv"  # a dataset mapped by hand: its mapping is what the page offers for the same header
    week1.write_text("when,what,sku,who\n2024-05-01 10:00:00,view,1,alice\n")
    mine = with_overrides(sniff(week1, engine).mapping, {"user_id": "who", "event_time": "when",
                                                          "event_type": "what", "item_id": "sku"})
    core.ingest.load.ingest_file(engine, week1, "hand", mapping=mine)
    release = _hold_loads(monkeypatch)
    at = _page()
    at.radio(key="data_mode").set_value("Add to an existing dataset").run()
    _upload(at, "w2.csv", b"when,what,sku,who\n2024-05-08 10:00:00,cart,1,bob\n")
    assert at.selectbox(key=next(k for k in _keys(at) if k.endswith("_col_user_id"))).value == "who"
    at.button(key="data_append").click().run()
    assert at.get("progress")[0].proto.text == "waiting for the test"
    at.button(key="data_cancel").click().run()
    release.set()
    run_until(at, lambda: _loaded(at))
    assert at.info[0].value == "Adding the file to hand was cancelled: the dataset is as it was."
    ds = store.get_dataset(engine, "hand")
    assert (ds["rows_read"], ds["rows_loaded"]) == (1, 1)
    assert len(store.dataset_file_history(engine, ds["dataset_id"])) == 1
    engine.dispose()
