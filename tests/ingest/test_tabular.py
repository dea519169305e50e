"""Excel workbooks (.xlsx) and Parquet files as event files: read exactly as the same data in a CSV.

The workbooks are written with openpyxl, as Excel does: real times, numbers as floats, empty rows
and cells, several worksheets. UCI Online Retail is published as an .xlsx file; the shared head of
it (a CSV) is turned back into one so that both loads can be compared row for row.
"""
from __future__ import annotations

import csv
import datetime as dt
import zipfile
from pathlib import Path

import pytest
import sqlalchemy as sa
from openpyxl import Workbook

from core import store
from core.ingest import tabular
from core.errors import IngestCancelled, ParameterError, SchemaError
from core.ingest.load import ingest_file, quarantined_rows
from core.ingest.sniff import sniff

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
HEADER = ["user_id", "event_time", "event_type", "product_id", "brand", "price"]
T0 = dt.datetime(2024, 3, 1, 10, 0)


def _book(path, sheets: dict[str, list[list]]):
    book = Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        ws = book.create_sheet(title)
        for row in rows:
            ws.append(row)
    book.save(path)
    return path


def _events(engine, name: str) -> list[tuple]:
    did = store.get_dataset(engine, name)["dataset_id"]
    e = store.events.c
    query = (sa.select(e.user_id, e.event_time, e.event_type, e.item_id, e.category, e.brand, e.price, e.quantity,
                       e.session_id).where(e.dataset_id == did).order_by(e.event_time, e.user_id, e.item_id,
                                                                         e.price, e.quantity))
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(query)]


def _loads_as_its_csv(engine, table, csv_file):
    """Load both files; the same counts, the same events and the same quarantined lines. The table's report."""
    report, reference = ingest_file(engine, table, "table"), ingest_file(engine, csv_file, "csv")
    assert report.source == table.name
    assert (report.rows_read, report.rows_loaded, report.quarantine_by_reason) == (
        reference.rows_read, reference.rows_loaded, reference.quarantine_by_reason)
    assert _events(engine, "table") == _events(engine, "csv")
    lines = {n: quarantined_rows(engine, n)[["line_no", "reason"]].values.tolist() for n in ("table", "csv")}
    assert lines["table"] == lines["csv"]
    return report


def test_cells_are_written_as_a_csv_export_would_hold_them(tmp_path):
    path = _book(tmp_path / "cells.xlsx", {"events": [
        HEADER,
        [17850.0, T0, "view", "00042", None, 2.55],  # an id Excel stored as a float; a text id with zeros
        [12, dt.datetime(2024, 3, 1, 10, 0, 0, 250000), "purchase", 7, "two\nlines", 1e-7],
        [True, dt.date(2024, 3, 2), "cart", 2.0 ** 60, "x", None],
    ]})
    out = tmp_path / "cells.csv"
    converted = tabular.to_csv(path, out)
    assert (converted.rows, converted.complete) == (4, True)
    assert list(csv.reader(out.open(encoding="utf-8"))) == [
        HEADER,
        ["17850", "2024-03-01 10:00:00", "view", "00042", "", "2.55"],
        ["12", "2024-03-01 10:00:00.250000", "purchase", "7", "two lines", "1e-07"],
        ["true", "2024-03-02", "cart", "1.152921504606847e+18", "x", ""],  # a date cell; padded to the header's width
    ]


def test_online_retail_workbook_loads_exactly_as_its_csv(engine, tmp_path, shared_data):
    """The published form of the data (.xlsx, real times and float ids) gives the same dataset as the CSV."""
    source = shared_data / "online_retail" / "OnlineRetail-head.csv"
    lines = source.read_text(encoding="latin-1").splitlines()[:1500]
    head_csv = tmp_path / "OnlineRetail.csv"
    head_csv.write_text("\n".join(lines) + "\n", encoding="latin-1")
    rows = [next(csv.reader([lines[0]]))]
    for fields in csv.reader(lines[1:]):
        invoice, stock, text, qty, when, price, customer, country = fields
        rows.append([invoice if invoice.startswith("C") else int(invoice), stock, text, int(qty),
                     dt.datetime.strptime(when, "%m-%d-%Y %H:%M"), float(price),
                     float(customer) if customer else None, country])
    book = _book(tmp_path / "Online Retail.xlsx", {"Online Retail": rows})

    sniffed = sniff(book)
    assert sniffed.mapping.layout == "online_retail" and sniffed.mapping.time_format == "iso"
    assert sniffed.mapping.notes[0].startswith("an Excel workbook: its first worksheet 'Online Retail' is read")
    report = _loads_as_its_csv(engine, book, head_csv)  # a quarantined row's line is its row in Excel
    assert report.rows_quarantined > 0  # the head has rows without a customer and repeated lines
    # as the Data page loads it: with the preview's mapping, whose column names the sniffer gave by content
    # (the file's header repeats InvoiceNo), not the names in the file
    previewed = ingest_file(engine, book, "previewed", mapping=sniffed.mapping)
    assert (previewed.rows_loaded, previewed.quarantine_by_reason) == (report.rows_loaded, report.quarantine_by_reason)


def test_empty_rows_keep_excel_row_numbers_and_short_rows_are_not_cut(duck_engine, tmp_path):
    path = _book(tmp_path / "gaps.xlsx", {"events": [
        HEADER,
        ["u1", T0, "view", "p1", "acme", 5.0],
        [],  # row 3: empty
        ["u2", T0, "view", "p2"],  # row 4: its last cells empty, as Excel leaves them
        ["u3", "not a time", "view", "p3", "acme", 5.0],  # row 5: quarantined
    ]})
    report = ingest_file(duck_engine, path, "gaps")
    assert (report.rows_read, report.rows_loaded, report.quarantine_by_reason) == (3, 2, {"unparseable_time": 1})
    assert quarantined_rows(duck_engine, "gaps")[["line_no", "reason"]].values.tolist() == [[5, "unparseable_time"]]


def test_a_title_above_the_table_is_skipped_and_rows_keep_excel_numbers(engine, tmp_path):
    path = _book(tmp_path / "report.xlsx", {"Sales": [
        ["Web shop events, March 2024"],  # a title in A1, as report sheets have
        ["Exported", dt.datetime(2024, 4, 1, 9, 0)],
        [],
        HEADER,  # row 4
        ["u1", T0, "view", "p1", "acme", 5.0],
        ["u2", "not a time", "view", "p3", "acme", 5.0],  # row 6: quarantined
        ["u3", T0, "purchase", "p2", "acme", 7.5],
    ]})
    mapping = sniff(path).mapping
    assert (mapping.skip_lines, mapping.has_header, mapping.columns["item_id"]) == (3, True, "product_id")
    report = ingest_file(engine, path, "report")
    assert (report.rows_read, report.rows_loaded, report.quarantine_by_reason) == (3, 2, {"unparseable_time": 1})
    assert quarantined_rows(engine, "report")[["line_no", "reason"]].values.tolist() == [[6, "unparseable_time"]]


def test_first_visible_worksheet_is_read_and_the_others_are_named(duck_engine, tmp_path):
    path = _book(tmp_path / "two.xlsx", {"Notes": [["read me"]], "Events": [HEADER, ["u1", T0, "view", "p1"]],
                                         "Old": [HEADER]})
    from openpyxl import load_workbook

    book = load_workbook(path)
    book["Notes"].sheet_state = "hidden"
    book.save(path)
    report = ingest_file(duck_engine, path, "two")
    assert report.rows_loaded == 1
    assert report.notes[0] == ("an Excel workbook: its first worksheet 'Events' is read, row for row (line numbers "
                               "are its row numbers; times as written in the sheet, line breaks in cells as spaces); "
                               "the other worksheets ('Old') are not read: choose one on the Data page to read it "
                               "instead")
    assert tabular.worksheets(path) == ["Events", "Old"]  # the hidden one is not offered


def test_another_worksheet_can_be_chosen(engine, tmp_path):
    path = _book(tmp_path / "report.xlsx", {
        "Summary": [["Total", 3], ["Shoppers", 2]],
        "Events": [HEADER, ["u1", T0, "view", "p1", "acme", 5.0], ["u2", "soon", "view", "p2", "acme", 5.0],
                   ["u2", T0, "purchase", "p2", "acme", 5.0]]})
    assert sniff(path).mapping.sheet == "Summary"
    sniffed = sniff(path, sheet="Events")
    assert (sniffed.mapping.sheet, sniffed.mapping.columns["item_id"]) == ("Events", "product_id")
    assert sniffed.mapping.notes[0].startswith("an Excel workbook: its worksheet 'Events' is read")
    report = ingest_file(engine, path, "events", mapping=sniffed.mapping)
    assert (report.rows_read, report.rows_loaded, report.quarantine_by_reason) == (3, 2, {"unparseable_time": 1})
    assert quarantined_rows(engine, "events")["line_no"].tolist() == [3]
    with pytest.raises(ParameterError,
                       match=r"^report\.xlsx has no worksheet 'Gone'; expected one of \['Summary', 'Events'\]"):
        sniff(path, sheet="Gone")


def test_a_workbook_renamed_csv_is_read_by_its_content(duck_engine, tmp_path):
    path = _book(tmp_path / "events.csv", {"events": [HEADER, ["u1", T0, "view", "p1", "acme", 5.0]]})
    assert sniff(path).mapping.columns["user_id"] == "user_id"
    assert ingest_file(duck_engine, path, "renamed").rows_loaded == 1


@pytest.mark.parametrize(("build", "message"), [
    (lambda p: p.write_bytes(b"PK\x03\x04" + bytes(200)),
     None),  # not a ZIP at all: the sniffer's binary-file refusal
    (lambda p: _damaged(p), r"^bad\.xlsx is an Excel workbook that could not be read \("),
    (lambda p: _book(p, {"events": []}), r"^bad\.xlsx is empty: nothing could be loaded"),
])
def test_unreadable_workbooks_are_refused_and_nothing_is_written(duck_engine, tmp_path, build, message):
    path = tmp_path / "bad.xlsx"
    build(path)
    with pytest.raises(SchemaError, match=message or r"^bad\.xlsx .*not a"):
        ingest_file(duck_engine, path, "bad")
    assert store.list_datasets(duck_engine) == []


def _damaged(path):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("xl/workbook.xml", "<workbook><sheets>not xml")


def test_a_long_conversion_reports_progress_and_can_be_cancelled(duck_engine, tmp_path, monkeypatch):
    monkeypatch.setattr(tabular, "PROGRESS_EVERY_ROWS", 10)
    path = _book(tmp_path / "long.xlsx", {"events": [HEADER] + [[f"u{i}", T0, "view", f"p{i}"] for i in range(45)]})
    seen: list[str] = []

    def progress(fraction, message):
        seen.append(message)
        if message.endswith(": 30 rows"):
            raise IngestCancelled("cancelled")

    with pytest.raises(IngestCancelled):
        ingest_file(duck_engine, path, "long", progress=progress)
    assert seen[-3:] == ["reading the spreadsheet: 10 rows", "reading the spreadsheet: 20 rows",
                         "reading the spreadsheet: 30 rows"]
    assert store.list_datasets(duck_engine) == []
    assert ingest_file(duck_engine, path, "long").rows_loaded == 45


@pytest.mark.parametrize(("fixture", "what"), [
    ("events.xls", "an Excel 97-2003 workbook (.xls)"), ("events.ods", "an OpenDocument spreadsheet (.ods)")])
def test_old_excel_and_opendocument_spreadsheets_load(engine, fixture, what):
    """Fixtures written by xlwt and odfpy (typed cells: times, an id stored as a number, an empty price)."""
    report = ingest_file(engine, FIXTURES / fixture, fixture)
    assert report.notes[0].startswith(f"{what}: its first worksheet 'events' is read")
    assert (report.rows_read, report.rows_loaded, report.quarantine_by_reason) == (4, 3, {"unparseable_time": 1})
    assert [(e[0], e[1], e[2], e[6]) for e in _events(engine, fixture)] == [
        ("u1", dt.datetime(2024, 3, 1, 10, 0), "view", 5.5), ("u1", dt.datetime(2024, 3, 1, 10, 5), "purchase", 5.5),
        ("17850", dt.datetime(2024, 3, 2, 9, 30), "cart", None)]
    assert quarantined_rows(engine, fixture)["line_no"].tolist() == [5]


# --- Parquet -------------------------------------------------------------------------------------------


def _parquet(path, select: str):
    import duckdb

    con = duckdb.connect()
    con.execute(f"COPY ({select}) TO '{path}' (FORMAT parquet)")
    con.close()
    return path


def test_rees46_as_parquet_loads_exactly_as_its_csv(engine, tmp_path, shared_data):
    """A warehouse export of the same rows: typed columns (a real timestamp, BIGINT ids, DOUBLE prices)."""
    source = shared_data / "rees46" / "2019-Oct-first1000.csv"
    path = _parquet(tmp_path / "october.parquet", f"""
        SELECT CAST(replace(event_time, ' UTC', '') AS TIMESTAMP) AS event_time, event_type,
               CAST(product_id AS BIGINT) AS product_id, CAST(category_id AS BIGINT) AS category_id, category_code,
               brand, CAST(price AS DOUBLE) AS price, CAST(user_id AS BIGINT) AS user_id, user_session
        FROM read_csv('{source}', all_varchar = true, header = true)""")
    sniffed = sniff(path)
    assert sniffed.mapping.layout == "rees46"
    assert sniffed.mapping.notes[0].startswith("a Parquet file of 1,000 rows: read as a table")
    _loads_as_its_csv(engine, path, source)


def test_parquet_types_are_written_as_the_sniffer_reads_them(duck_engine, tmp_path):
    path = _parquet(tmp_path / "typed.parquet", """
        SELECT * FROM (VALUES
          (42::BIGINT, TIMESTAMPTZ '2024-03-01 10:00:00+02', 'view', 'p1', 'shoes', 5.5::DOUBLE, ['a', 'b'],
           {'k': 1}, 'two' || chr(10) || 'lines'),
          (7::BIGINT, TIMESTAMPTZ '2024-03-01 11:30:00+00', 'purchase', 'p2', NULL, 12::DOUBLE, [], NULL, NULL),
          (7::BIGINT, NULL, 'cart', 'p2', 'shoes', -1::DOUBLE, NULL, NULL, 'x')
        ) t(customer_id, event_timestamp, event_name, product_id, category, price, tags, extra, note)""")
    report = ingest_file(duck_engine, path, "typed")
    assert (report.rows_read, report.rows_loaded, report.quarantine_by_reason) == (3, 2, {"missing_time": 1})
    events = _events(duck_engine, "typed")
    assert [(e[0], e[1], e[2], e[6]) for e in events] == [
        ("42", dt.datetime(2024, 3, 1, 8, 0), "view", 5.5), ("7", dt.datetime(2024, 3, 1, 11, 30), "purchase", 12.0)]
    q = quarantined_rows(duck_engine, "typed")
    assert q["line_no"].tolist() == [4]  # the third row, after the header
    assert q["raw_line"][0] == "7,,cart,p2,shoes,-1.0,,,x"
    assert sniff(path).mapping.source_columns[-3:] == ["tags", "extra.k", "note"]  # a struct's fields: columns


GA4_EXPORT = """
    SELECT * FROM (VALUES
      (1709287200000000::BIGINT, 'view_item', 'ps1',
       [{'key': 'ga_session_id', 'value': {'string_value': NULL::VARCHAR, 'int_value': 77::BIGINT}},
        {'key': 'page_location', 'value': {'string_value': 'https://shop/p/A', 'int_value': NULL}}],
       [{'item_id': 'A', 'item_brand': 'Acme', 'item_category': 'Kitchen', 'price': 2.5::DOUBLE,
         'quantity': 1::BIGINT}],
       {'category': 'mobile'}),
      (1709287500000000, 'purchase', 'ps1',
       [{'key': 'ga_session_id', 'value': {'string_value': NULL, 'int_value': 77}}],
       [{'item_id': 'A', 'item_brand': 'Acme', 'item_category': 'Kitchen', 'price': 2.5, 'quantity': 2},
        {'item_id': 'B', 'item_brand': 'Leaf', 'item_category': 'Food', 'price': -4.0, 'quantity': 1}],
       {'category': 'mobile'}),
      (1709370000000000, 'session_start', 'ps2',
       [{'key': 'ga_session_id', 'value': {'string_value': NULL, 'int_value': 88}}], [], {'category': 'desktop'})
    ) v(event_timestamp, event_name, user_pseudo_id, event_params, items, device)"""


@pytest.mark.parametrize("form", ["parquet", "json"])
def test_a_nested_ga4_export_gives_one_row_per_item_and_its_params_as_columns(engine, tmp_path, form):
    import duckdb

    path = tmp_path / f"events_20240301.{form}"
    con = duckdb.connect()
    con.execute(f"COPY ({GA4_EXPORT}) TO '{path}' (FORMAT {form})")
    con.close()
    mapping = sniff(path).mapping
    assert "one row per item of each event's 'items' list" in mapping.notes[0]
    assert {f: mapping.columns[f] for f in ("user_id", "event_time", "item_id", "category", "brand", "price",
                                             "quantity", "session_id")} == {
        "user_id": "user_pseudo_id", "event_time": "event_timestamp", "item_id": "items.item_id",
        "category": "items.item_category", "brand": "items.item_brand", "price": "items.price",
        "quantity": "items.quantity", "session_id": "event_params.ga_session_id"}  # not device.category
    assert "event_params.page_location" in mapping.source_columns
    report = ingest_file(engine, path, "ga4")
    assert (report.rows_read, report.rows_loaded, report.quarantine_by_reason) == (4, 3, {"negative_price": 1})
    assert [(e[2], e[3], e[4], e[6], e[7], e[8]) for e in _events(engine, "ga4")] == [
        ("view", "A", "Kitchen", 2.5, 1, "77"), ("purchase", "A", "Kitchen", 2.5, 2, "77"),
        ("session_start", None, None, None, None, "88")]
    assert quarantined_rows(engine, "ga4")["line_no"].tolist() == [4]  # the purchase's second item: row 3


def _mixpanel_lines(n: int) -> list[dict]:
    names = ["Viewed Product", "Added to Cart", "Order Completed"]
    return [{"event": names[i % 3], "properties": {
        "time": 1709287200 + 600 * i, "distinct_id": f"u{i % 4}", "$insert_id": f"x{i}", "product_id": f"p{i % 5}",
        "category": "Shoes", "price": 10.5 + i}} for i in range(n)]


@pytest.mark.parametrize("gzipped", [False, True], ids=["jsonl", "jsonl.gz"])
def test_json_lines_export_loads_with_nested_fields_as_columns(engine, tmp_path, gzipped):
    import gzip
    import json

    objects = _mixpanel_lines(9)
    objects[4]["properties"]["time"] = "soon"  # object 5: quarantined as line 6 (the header is line 1)
    text = "".join(json.dumps(o) + "\n" for o in objects).encode()
    path = tmp_path / ("export.json.gz" if gzipped else "export.json")
    path.write_bytes(gzip.compress(text) if gzipped else text)
    mapping = sniff(path).mapping
    assert mapping.notes[0].startswith("JSON: one row per object")
    assert (mapping.columns["user_id"], mapping.columns["event_time"], mapping.columns["event_type"],
            mapping.time_format) == ("properties.distinct_id", "properties.time", "event", "unix_s")
    report = ingest_file(engine, path, "mixpanel")
    assert (report.rows_read, report.rows_loaded, report.quarantine_by_reason) == (9, 8, {"unparseable_time": 1})
    events = _events(engine, "mixpanel")
    assert [e[2] for e in events][:3] == ["view", "cart", "purchase"]
    assert events[0][:2] == ("u0", dt.datetime(2024, 3, 1, 10, 0)) and events[0][6] == 10.5
    assert quarantined_rows(engine, "mixpanel")["line_no"].tolist() == [6]


def test_json_array_renamed_csv_is_read_with_times_in_utc(duck_engine, tmp_path):
    import json

    objects = [{"anonymousId": f"a{i % 2}", "event": "Product Viewed", "timestamp": f"2024-03-01T1{i}:00:00+02:00",
                "properties": {"product_id": f"p{i}", "brand": "Acme"}, "context": {"library": {"name": "js"}}}
               for i in range(3)]
    path = tmp_path / "export.csv"
    path.write_text(json.dumps(objects, indent=2))
    report = ingest_file(duck_engine, path, "segment")
    assert (report.rows_read, report.rows_loaded) == (3, 3)
    assert [(e[0], e[1], e[2], e[3], e[5]) for e in _events(duck_engine, "segment")] == [
        ("a0", dt.datetime(2024, 3, 1, 8), "view", "p0", "acme"),
        ("a1", dt.datetime(2024, 3, 1, 9), "view", "p1", "acme"),
        ("a0", dt.datetime(2024, 3, 1, 10), "view", "p2", "acme")]


def _late_json(path, n: int, late: dict) -> None:
    """``n`` Mixpanel-shaped views, the last 10 of them purchases that add ``late`` to their properties:
    after the JSON reader's sample of 20,480 objects."""
    import json

    with open(path, "w") as f:
        for i in range(n):
            props = {"time": 1709287200 + i, "distinct_id": f"u{i % 50}", "product_id": f"p{i % 7}"}
            if i >= n - 10:
                props.update(late)
            f.write(json.dumps({"event": "Order Completed" if i >= n - 10 else "Viewed Product",
                                "properties": props}) + "\n")


def test_json_keys_first_seen_after_the_readers_sample_are_not_lost(duck_engine, tmp_path):
    path = tmp_path / "late.jsonl"
    _late_json(path, 21_000, {"price": 12.5, "coupon": "SPRING"})
    mapping = sniff(path).mapping
    assert mapping.columns["price"] == "properties.price"
    assert "properties.coupon" in mapping.source_columns
    assert "keys first seen after the first 20,480 objects (properties.coupon, properties.price)" in mapping.notes[0]
    report = ingest_file(duck_engine, path, "late")
    assert (report.rows_read, report.rows_loaded) == (21_000, 21_000)
    purchases = [e for e in _events(duck_engine, "late") if e[2] == "purchase"]
    assert len(purchases) == 10 and {e[6] for e in purchases} == {12.5}


def test_a_json_value_of_another_type_after_the_sample_is_quarantined_not_the_whole_file(duck_engine, tmp_path):
    path = tmp_path / "typed.jsonl"
    with open(path, "w") as f:
        for i in range(21_000):
            price = "N/A" if i == 20_990 else 3.5  # a number 20,990 times, then text
            f.write(f'{{"user_id": "u{i % 9}", "event_time": {1709287200 + i}, "event_type": "view", '
                    f'"price": {price!r}}}\n'.replace("'", '"'))
    report = ingest_file(duck_engine, path, "typed")
    assert (report.rows_read, report.rows_loaded, report.quarantine_by_reason) == (
        21_000, 20_999, {"non_numeric_price": 1})
    assert quarantined_rows(duck_engine, "typed")["line_no"].tolist() == [20_992]
    assert quarantined_rows(duck_engine, "typed")["detail"].tolist() == [
        "column 'price': 'N/A' is not a number; expected a price"]
    assert "the whole file was read" not in report.notes[0]  # every value is read as written: no second pass


def test_a_json_object_that_turns_into_text_late_keeps_its_fields_as_columns(duck_engine, tmp_path):
    import json

    path = tmp_path / "turns.jsonl"
    with open(path, "w") as f:
        for i in range(21_000):
            ctx = "plain" if i == 20_990 else {"brand": "Acme", "ref": "x"}  # an object 20,990 times, then text
            f.write(json.dumps({"user_id": f"u{i % 9}", "ctx": ctx, "event_time": 1709287200 + i,
                                "event_type": "view", "price": 2.5}) + "\n")
    mapping = sniff(path).mapping  # the preview: ctx.brand and ctx.ref are columns before the time
    assert mapping.source_columns[:3] == ["user_id", "ctx.brand", "ctx.ref"]
    assert mapping.columns["brand"] == "ctx.brand"
    report = ingest_file(duck_engine, path, "turns", mapping=mapping)  # read whole, ctx is also a column of its own
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (21_000, 21_000, 0)
    assert "read whole, the file has other columns than its preview (['ctx'] new): the mapped ones are read by " \
           "name" in report.notes
    events = _events(duck_engine, "turns")
    assert {(e[0][0], e[1].year, e[2], e[6]) for e in events} == {("u", 2024, "view", 2.5)}
    assert sorted(((e[5] or "-") for e in events), reverse=True)[-2:] == ["acme", "-"]  # the text has no brand
    assert sum(e[5] == "acme" for e in events) == 20_999


def test_a_key_value_list_key_seen_only_in_a_late_row_gets_its_column(duck_engine, tmp_path):
    import duckdb

    path = tmp_path / "params.parquet"
    con = duckdb.connect()
    con.execute(f"""COPY (SELECT 'ps' || (i % 5) AS user_pseudo_id, 1709287200000000 + i * 1000000 AS event_timestamp,
        'page_view' AS event_name, [{{'key': 'ga_session_id', 'value': {{'int_value': i // 10}}}}] ||
        CASE WHEN i = 14999 THEN [{{'key': 'coupon', 'value': {{'int_value': 5}}}}] ELSE [] END AS event_params
        FROM range(15000) t(i)) TO '{path}' (FORMAT parquet)""")
    con.close()
    assert {"event_params.ga_session_id", "event_params.coupon"} <= set(sniff(path).mapping.source_columns)


def test_json_that_is_no_objects_is_refused_and_nothing_is_written(duck_engine, tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"user_id": "u1", "event_time": "2024-03-01", "event_type": "view"}\n{"user_id": \n')
    with pytest.raises(SchemaError, match=r"^broken\.json is JSON that could not be read as objects of events \("):
        ingest_file(duck_engine, path, "broken")
    assert store.list_datasets(duck_engine) == []


def test_damaged_parquet_is_refused_and_nothing_is_written(duck_engine, tmp_path):
    whole = _parquet(tmp_path / "whole.parquet", "SELECT 'u1' AS user_id, TIMESTAMP '2024-01-01' AS ts, 'view' AS ev")
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(whole.read_bytes()[:-40])  # a download that stopped before the footer
    with pytest.raises(SchemaError, match=r"^cut\.parquet is a Parquet file that could not be read \("):
        ingest_file(duck_engine, cut, "cut")
    assert store.list_datasets(duck_engine) == []


def _mixed_objects() -> list[dict]:
    """60 events whose fields change type now and then, as hand-written or merged exports do."""
    objects = [{"user_id": i % 7, "event_time": f"2024-03-01 10:{i:02d}:00", "event_type": "view", "item_id": "p1",
                "quantity": 1, "properties": {"price": 12.5, "brand": "Acme"}} for i in range(60)]
    objects[5]["user_id"] = "u-abc"  # one text id among numbers
    objects[10]["event_type"] = ["purchase"]  # a list where one value belongs: quarantined (line 12)
    objects[20]["properties"]["price"] = "12.50"  # a price written as text
    objects[30]["quantity"] = "2"
    objects[31]["quantity"] = 2.5  # no whole number: quarantined (line 33), not rounded to 3
    objects[40]["item_id"] = 42
    objects[41]["properties"]["brand"] = {"name": "Acme"}  # an object where one value belongs (line 43)
    objects[50]["user_id"] = 123456789012345678901234  # a number no integer type holds: its digits, not a float
    return objects


@pytest.mark.parametrize("form", ["array", "lines"])
def test_json_values_of_mixed_type_are_stored_as_their_text(engine, tmp_path, form):
    import json

    objects = _mixed_objects()
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(objects) if form == "array" else "".join(json.dumps(o) + "\n" for o in objects))
    mapping = sniff(path).mapping
    assert (mapping.columns["price"], mapping.columns["brand"]) == ("properties.price", "properties.brand")
    report = ingest_file(engine, path, "mixed")
    assert (report.rows_read, report.rows_loaded, report.quarantine_by_reason) == (
        60, 57, {"nested_value": 2, "non_numeric_quantity": 1})
    assert report.events_by_type == {"view": 57}  # not '"view"' with its quotes
    assert quarantined_rows(engine, "mixed")[["line_no", "detail"]].values.tolist() == [
        [12, "column 'event_type': '[\"purchase\"]' is a list; expected one value (a text or a number)"],
        [33, "column 'quantity': '2.5' is not a whole number; expected a quantity"],
        [43, "column 'properties.brand': '{\"name\":\"Acme\"}' is an object; expected one value (a text or a number)"]]
    events = {e[1].minute: e for e in _events(engine, "mixed")}
    assert events[5][0] == "u-abc" and events[0][0] == "0"
    assert events[50][0] == "123456789012345678901234"
    assert events[20][6] == 12.5 and events[30][7] == 2 and events[40][3] == "42" and events[0][5] == "acme"


def test_json_values_after_the_readers_sample_are_read_as_written(duck_engine, tmp_path):
    import json

    path = tmp_path / "late.jsonl"
    with open(path, "w") as f:
        for i in range(21_000):
            event = {"user_id": f"u{i % 9}", "event_time": 1709287200 + i, "event_type": "view", "quantity": 1}
            if i == 20_990:
                event["quantity"] = 5.5  # after 20,990 whole numbers: read by the sample's type it became 6
            if i == 20_995:
                event["event_type"] = ["cart"]  # after 20,995 texts: read by the sample's type it was its JSON text
            if i == 20_999:
                event["user_id"] = 98765432109876543210  # read by the sample's type: a text column, kept
            f.write(json.dumps(event) + "\n")
    report = ingest_file(duck_engine, path, "late")
    assert (report.rows_read, report.rows_loaded, report.quarantine_by_reason) == (
        21_000, 20_998, {"nested_value": 1, "non_numeric_quantity": 1})
    assert quarantined_rows(duck_engine, "late")["line_no"].tolist() == [20_992, 20_997]
    assert report.events_by_type == {"view": 20_998}
    assert _events(duck_engine, "late")[-1][0] == "98765432109876543210"


@pytest.mark.parametrize("shape", ["keys vary", "text in some rows"])
def test_json_properties_whose_keys_vary_or_that_are_text_keep_their_fields_as_columns(engine, tmp_path, shape):
    """Mixpanel's properties over hundreds of custom keys (DuckDB's reader makes them one MAP column), or an
    object that is text in some rows (one JSON column): the keys most rows hold are still columns."""
    import json

    lines = []
    for i in range(300):
        props = {"time": 1709287200 + 60 * i, "distinct_id": f"u{i % 5}", "price": "9.50" if i % 2 else 9.5,
                 f"custom_{i}": i}  # a key of its own on every row
        lines.append({"event": "Viewed Product", "properties": props})
    if shape == "text in some rows":
        lines[7]["properties"] = "not tracked"  # its row has no shopper: quarantined as such
    path = tmp_path / "mixpanel.jsonl"
    path.write_text("".join(json.dumps(o) + "\n" for o in lines))
    mapping = sniff(path).mapping
    assert (mapping.columns["user_id"], mapping.columns["event_time"], mapping.columns["price"]) == (
        "properties.distinct_id", "properties.time", "properties.price")
    assert "properties.custom_7" not in mapping.source_columns  # a key of one row in 300 stays in the object
    report = ingest_file(engine, path, "mixpanel")
    bad = {"missing_user": 1} if shape == "text in some rows" else {}
    assert (report.rows_read, report.rows_loaded, report.quarantine_by_reason) == (300, 300 - len(bad), bad)
    assert report.users == 5 and report.events_by_type == {"view": 300 - len(bad)}
    assert {e[6] for e in _events(engine, "mixpanel")} == {9.5}


def test_json_keys_that_differ_only_in_case_both_keep_their_values(duck_engine, tmp_path):
    path = tmp_path / "twins.jsonl"
    path.write_text("".join(f'{{"user_id": "u{i}", "Price": {i}, "price": {i + 1}, "event_time": '
                            f'"2024-03-01 10:0{i}:00", "event_type": "view"}}\n' for i in (1, 3)))
    mapping = sniff(path).mapping
    assert mapping.source_columns[1:3] == ["Price", "price_1"]
    assert "keys first seen after" not in mapping.notes[0]
    mapping.columns["price"] = "price_1"
    ingest_file(duck_engine, path, "twins", mapping=mapping)
    assert [e[6] for e in _events(duck_engine, "twins")] == [2.0, 4.0]
