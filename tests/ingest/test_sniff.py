"""Layout, delimiter, header, encoding and time-format detection on tiny hand-made files."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from core.errors import SchemaError
from core.ingest.sniff import (EVENT_ALIASES, STATUS_NOTE_STARTS, Mapping, detect_time_format, header_signature,
                               sniff, with_overrides)
from core.ingest.time_formats import split_time_zone, zone_offset_minutes
from tests import hostile_files as hf

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


@pytest.mark.parametrize(
    ("fixture", "delimiter"),
    [("semicolon.csv", ";"), ("pipe.csv", "|"), ("whitespace.txt", " "), ("generic_mixed_case.csv", ",")],
)
def test_delimiter_detected(fixture, delimiter):
    mapping = sniff(FIXTURES / fixture).mapping
    assert mapping.delimiter == delimiter
    assert mapping.has_header is True


def test_tab_wins_over_whitespace_for_tsv(tmp_path):
    path = _write(tmp_path, "x.tsv",
                  "user\ttime\tevent\nu1\t2024-01-01 10:00:00\tview\nu2\t2024-01-01 10:01:00\tcart\n")
    mapping = sniff(path).mapping
    assert mapping.delimiter == "\t"
    assert mapping.confident is True


def _ragged_rees46(tmp_path: Path, delimiter: str, short: list[int], long: list[int], rows: int = 600) -> Path:
    """A REES46 file in ``delimiter`` whose data rows ``short`` have 4 fields and rows ``long`` 11."""
    lines = [hf.REES46_COLUMNS]
    for n in range(1, rows + 1):
        row = hf.rees46_row(n)
        lines.append(row[:4] if n in short else row + ["x", "y"] if n in long else row)
    return _write(tmp_path, "ragged.csv", "".join(delimiter.join(r) + "\n" for r in lines))


@pytest.mark.parametrize("delimiter", [",", "\t", ";", "|"], ids=["comma", "tab", "semicolon", "pipe"])
@pytest.mark.parametrize(("short", "long"), [([3], [7]), ([1], [2]), ([2, 5, 9, 40], [11, 12, 300])],
                         ids=["two", "first-rows", "seven"])
def test_ragged_lines_do_not_make_the_spaces_in_times_the_delimiter(tmp_path, delimiter, short, long):
    """Every REES46 line holds two spaces (2019-10-01 00:00:00 UTC): a space split is consistent on every data
    line, the real delimiter on all but the ragged ones. The header decides."""
    mapping = sniff(_ragged_rees46(tmp_path, delimiter, short, long)).mapping
    assert (mapping.delimiter, mapping.layout, len(mapping.source_columns)) == (delimiter, "rees46", 9)
    assert mapping.confident


@pytest.mark.parametrize("delimiter", [",", ";", "|"], ids=["comma", "semicolon", "pipe"])
def test_quoted_fields_over_several_lines_are_read_as_one_row(tmp_path, delimiter):
    sniffed = sniff(hf.quoted_multiline_file(tmp_path, delimiter))
    assert (sniffed.mapping.delimiter, sniffed.mapping.layout) == (delimiter, "rees46")
    assert sniffed.preview["category_code"].tolist()[:3] == ["appliances.water_heater", "multi\nline\ncategory",
                                                             "appliances.water_heater"]


def test_a_quote_left_open_is_read_line_by_line(tmp_path):
    rows = [hf.csv_line(hf.rees46_row(n)) for n in range(1, 30)]
    rows[3] = rows[3].replace(",aqua,", ',"aqua,')
    mapping = sniff(_write(tmp_path, "q.csv", hf.REES46_HEADER + "\n" + "\n".join(rows) + "\n")).mapping
    assert (mapping.delimiter, mapping.layout) == (",", "rees46")


def test_a_short_first_row_of_a_headerless_file_is_read(tmp_path):
    """Taobao rows (no header), the first cut short: it was an IndexError."""
    rows = [[str(100 + n), str(2268318 + n), "2520377", "pv", str(1511544070 + n)] for n in range(40)]
    rows[0] = rows[0][:3]
    mapping = sniff(_write(tmp_path, "t.csv", "".join(",".join(r) + "\n" for r in rows))).mapping
    assert (mapping.delimiter, mapping.layout) == (",", "taobao")


def test_generic_header_names_in_any_case_are_mapped():
    m = sniff(FIXTURES / "generic_mixed_case.csv").mapping
    assert m.layout == "generic"
    assert m.columns == {
        "user_id": "Customer", "event_time": "Timestamp", "event_type": "Action", "item_id": "SKU",
        "category": "Category", "brand": "Brand", "price": "Unit_Price", "quantity": "Qty", "session_id": "Session",
    }
    assert m.confident is True


def test_pipe_file_maps_visitorid_datetime_behaviour_itemid():
    m = sniff(FIXTURES / "pipe.csv").mapping
    assert (m.columns["user_id"], m.columns["event_time"], m.columns["event_type"], m.columns["item_id"]) == (
        "visitorid", "datetime", "behaviour", "itemid")


def test_ga4_export_flattened_per_item_is_mapped(tmp_path):
    """GA4's BigQuery export: microsecond times, a mostly empty user_id beside user_pseudo_id, items.* columns."""
    path = _write(tmp_path, "ga4.csv",
                  "event_date,event_timestamp,event_name,user_id,user_pseudo_id,ga_session_id,items.item_id,"
                  "items.item_brand,items.item_category,items.price,items.quantity\n"
                  "20231114,1700000037000000,view_item,,123.456,1700000001,SKU_1,Google,Apparel,12.50,1\n"
                  "20231114,1700000066000000,add_to_cart,,123.456,1700000001,SKU_1,Google,Apparel,12.50,1\n"
                  "20231114,1700000099000000,purchase,u7,123.456,1700000001,SKU_1,Google,Apparel,12.50,1\n")
    m = sniff(path).mapping
    assert m.columns == {
        "user_id": "user_pseudo_id", "event_time": "event_timestamp", "event_type": "event_name",
        "item_id": "items.item_id", "category": "items.item_category", "brand": "items.item_brand",
        "price": "items.price", "quantity": "items.quantity", "session_id": "ga_session_id",
    }
    assert m.time_format == "unix_us"
    assert "column 'user_id' is mostly empty in the first rows: user_id read from 'user_pseudo_id'" in m.notes
    assert m.confident is True
    assert [m.event_type_map[v] for v in ("view_item", "add_to_cart", "purchase")] == ["view", "cart", "purchase"]


def test_camel_case_and_prefixed_names_are_mapped(tmp_path):
    path = _write(tmp_path, "camel.csv",
                  "EventTime,distinct_id,EventType,properties.product_id,CategoryName,BrandName,SessionKey\n"
                  "2024-03-01 10:00:00,d1,Product Viewed,p1,shoes,acme,s1\n")
    m = sniff(path).mapping
    assert m.columns == {
        "user_id": "distinct_id", "event_time": "EventTime", "event_type": "EventType",
        "item_id": "properties.product_id", "category": "CategoryName", "brand": "BrandName", "price": None,
        "quantity": None, "session_id": "SessionKey",
    }
    assert m.confident is True


def test_shopify_orders_export_is_read_as_purchases_of_line_items(tmp_path):
    path = _write(tmp_path, "orders_export.csv",
                  "Name,Email,Financial Status,Paid at,Total,Created at,Lineitem quantity,Lineitem name,"
                  "Lineitem price,Lineitem sku,Vendor\n"
                  "#1001,ann@example.com,paid,2024-03-01 10:05:00 +0100,41.00,2024-03-01 10:00:00 +0100,2,Mug,"
                  "12.50,MUG-1,Acme\n"
                  "#1001,ann@example.com,,,,2024-03-01 10:00:00 +0100,1,Tea,16.00,TEA-9,Leafy\n")
    m = sniff(path).mapping
    assert m.layout == "transactions" and m.constant_event_type == "purchase"
    assert (m.columns["user_id"], m.columns["event_time"], m.columns["item_id"], m.columns["price"],
            m.columns["quantity"], m.columns["brand"]) == (
        "Email", "Created at", "Lineitem sku", "Lineitem price", "Lineitem quantity", "Vendor")


def test_an_empty_alias_column_is_kept_when_no_other_is_filled(tmp_path):
    path = _write(tmp_path, "x.csv", "user_id,time,event\n,2024-03-01 10:00:00,view\n,2024-03-01 10:01:00,cart\n")
    m = sniff(path).mapping
    assert m.columns["user_id"] == "user_id"  # its rows go to quarantine as missing_user, each with its reason
    assert not any("mostly empty" in n for n in m.notes)


def test_an_optional_field_keeps_the_name_order_when_mostly_empty(tmp_path):
    path = _write(tmp_path, "x.csv", "user_id,time,event,price,total\nu1,2024-03-01 10:00:00,view,,30\n"
                  "u1,2024-03-01 10:01:00,cart,,30\nu1,2024-03-01 10:02:00,purchase,12.5,30\n")
    assert sniff(path).mapping.columns["price"] == "price"  # empty on views, still the unit price


def test_missing_time_column_is_named_in_the_notes(tmp_path):
    path = _write(tmp_path, "x.csv", "user_id,event,sku\nu1,view,p1\n")
    m = sniff(path).mapping
    assert m.confident is False
    assert any(n.startswith("no time column found") for n in m.notes)


@pytest.mark.parametrize(("text", "date", "clock", "fmt"), [
    ("Date,Time,Customer,Action,SKU\n2024-03-01,10:15:00,c1,view,p1\n2024-03-02,13:05:00,c2,purchase,p2\n",
     "Date", "Time", "iso"),  # "time" names the clock, so the date column takes event_time's place
    ("order_date,order_time,customer_id,amount\n3/1/2024,10:15 AM,c1,10\n3/13/2024,1:05 PM,c2,12\n",
     "order_date", "order_time", "mdy_hm"),
    ("user_id,event_date,event_time,event_type\nu1,20240301,10:15:00,view\nu2,20240302,23:59:59,cart\n",
     "event_date", "event_time", "ymd"),
    ("Customer,Date,Time,Action\nc1,2024-03-01,1:05 PM,view\nc2,2024-03-02,11:00 AM,cart\n", "Date", "Time", "iso"),
])
def test_a_date_and_its_time_of_day_in_two_columns_are_read_together(tmp_path, text, date, clock, fmt):
    m = sniff(_write(tmp_path, "x.csv", text)).mapping
    assert (m.columns["event_time"], m.time_of_day, m.time_format, m.confident) == (date, clock, fmt, True)
    assert f"the date is in {date!r} and the time of day in {clock!r}: read together" in m.notes


def test_a_date_alone_stays_a_date(tmp_path):
    m = sniff(_write(tmp_path, "x.csv", "customer,date,amount,store\nc1,2024-03-01,10,12\n")).mapping
    assert (m.columns["event_time"], m.time_of_day) == ("date", None)


def test_customer_date_amount_file_is_a_transactions_layout():
    m = sniff(FIXTURES / "ymd.csv").mapping
    assert m.layout == "transactions"
    assert m.constant_event_type == "purchase"
    assert m.columns["price"] == "amount"
    assert m.time_format == "ymd"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["2019-10-01 00:00:00 UTC", "2019-10-01 00:00:01 UTC"], "iso"),
        (["2024-05-01T10:00:00+02:00", "2024-05-01T10:00:00Z"], "iso"),
        (["2024-05-01"], "iso"),
        (["1511544070", "1511561733"], "unix_s"),
        (["1396437466.94", "1396438212.318"], "unix_s"),
        (["1706778000123", "1706778600000"], "unix_ms"),
        (["1700000037000000", "1700000066123456"], "unix_us"),
        (["2053013552326770905", "2053013555631882655"], None),  # REES46 category ids are no times
        (["20240201", "20240215"], "ymd"),
        (["45352.4236111111", "45353"], "excel"),  # a workbook's dates written into a CSV as numbers
        (["4535", "12345"], None),  # shorter numbers are no Excel dates of this century
        (["12-01-2010 08:26", "12-13-2010 09:00"], "mdy_hm"),
        (["13/01/2010 08:26", "01/02/2010 09:00"], "dmy_hm"),
        (["3/1/2024 10:15:00 AM", "3/13/2024 1:05:00 PM"], "mdy_hm"),  # US exports: a 12-hour clock
        (["13.03.2024 1:05 pm", "01.03.2024 10:15 am"], "dmy_hm"),
        (["2024/03/01 10:00:00", "2024/3/2 11:00"], "iso"),  # year first with slashes
        (["2024-03-01 1:05 PM", "2024-03-02 11:00:10 AM"], "iso"),
        (["yesterday", "tomorrow"], None),
    ],
)
def test_time_format_detection(values, expected):
    assert detect_time_format(values)[0] == expected


@pytest.mark.parametrize(("value", "local", "zone", "minutes"), [
    ("2019-10-01 00:00:00 PST", "2019-10-01 00:00:00", "PST", -480),
    ("10/01/2019 1:05 PM cest", "10/01/2019 1:05 PM", "CEST", 120),
    ("2019-10-01 00:00:00 GMT+2", "2019-10-01 00:00:00", "GMT+2", 120),
    ("2019-10-01 00:00:00 UTC-05:30", "2019-10-01 00:00:00", "UTC-05:30", -330),
    ("2019-10-01 00:00:00 utc+0545", "2019-10-01 00:00:00", "UTC+0545", 345),
    ("2019-10-01 00:00:00 UTC+15", "2019-10-01 00:00:00", "UTC+15", None),
    ("2019-10-01 00:00:00 XYZ", "2019-10-01 00:00:00", "XYZ", None),
    ("2019-10-01 1:05 PM", "2019-10-01 1:05 PM", None, None),
    ("2019-10-01T00:00:00Z", "2019-10-01T00:00:00Z", None, None),
])
def test_a_time_zone_at_the_end_is_split_off_with_its_offset(value, local, zone, minutes):
    assert split_time_zone(value) == (local, zone)
    assert zone is None or zone_offset_minutes(zone) == minutes


def test_times_with_abbreviations_are_a_known_format_and_noted():
    fmt, notes = detect_time_format(["2019-10-01 00:00:00 PST", "2019-07-01 00:00:00 PDT", "2019-10-01 10:00 EST"])
    assert fmt == "iso"
    assert notes == ["times end in a time zone (EST = UTC-05:00, PDT = UTC-07:00, PST = UTC-08:00): each is read "
                     "with its own offset and converted to UTC"]  # PDT beside PST: North American, said once
    fmt, notes = detect_time_format(["2019-10-01 00:00:00 PST"])
    assert notes[1].startswith("'PST' is read as Pacific Standard Time (UTC-08:00); it also names Philippine")
    assert detect_time_format(["Tue, 05 Mar 2024 10:05:00 GMT"]) == ("month_name", ["times end in GMT: read as UTC"])
    assert detect_time_format(["2019-10-01 00:00:00 UTC"]) == ("iso", ["times carry a ' UTC' suffix: read as UTC"])
    _, notes = detect_time_format(["2019-10-01 00:00:00 CET", "2019-10-01 01:00:00", "2019-10-01 02:00:00 CET"])
    assert notes[-1] == "some times carry no time zone (like '2019-10-01 01:00:00') where others do: read as UTC"


def test_a_headerless_time_column_with_abbreviations_is_found_by_content(tmp_path):
    path = _write(tmp_path, "h.csv", "".join(f"u{i},2019-10-01 0{i}:00:00 PST,view,p{i}\n" for i in range(6)))
    mapping = sniff(path).mapping
    assert (mapping.columns["event_time"], mapping.time_format) == ("c1", "iso")


def test_mixed_offsets_are_noted():
    fmt, notes = detect_time_format(["2024-05-01T10:00:00+02:00", "2024-05-01T10:00:00-05:00"])
    assert fmt == "iso"
    assert any("different UTC offsets" in n for n in notes)


def test_a_minority_of_bad_times_does_not_hide_the_format():
    fmt, notes = detect_time_format(["2024-01-01 10:00:00"] * 9 + ["yesterday"])
    assert fmt == "iso"
    assert any("yesterday" in n for n in notes)


def test_ambiguous_day_month_is_read_month_first_and_noted():
    fmt, notes = detect_time_format(["12-01-2010 08:26", "12-05-2010 09:00"])
    assert fmt == "mdy_hm"
    assert any("month-first or day-first" in n for n in notes)


def test_ambiguous_dates_written_with_dots_are_read_day_first_and_load(duck_engine, tmp_path):
    """07.12.2026 is the 7th of December wherever dates are written with dots; it was read month-first, in a
    format whose patterns had no dots, and every row of a German export was quarantined as no time."""
    import datetime as dt

    from core import store
    from core.ingest.load import ingest_file

    fmt, notes = detect_time_format(["07.12.2026 10:15", "08.12.2026 11:00"])
    assert fmt == "dmy_hm" and any("day first" in n for n in notes)
    assert detect_time_format(["12.25.2026 10:15"])[0] == "mdy_hm"  # the 25th: month first, dots or not
    path = tmp_path / "export.csv"
    path.write_text("user_id;event_time;event_type;price\n1001;07.12.2026 10:15;view;9\n"
                    "1002;12.11.26 09:30;purchase;5\n", encoding="utf-8")
    assert sniff(path).mapping.time_format == "dmy_hm"
    report = ingest_file(duck_engine, path, "export")
    assert (report.rows_loaded, report.rows_quarantined) == (2, 0)
    with duck_engine.connect() as conn:
        times = sorted(conn.execute(store.events.select().with_only_columns(store.events.c.event_time)).scalars())
    assert times == [dt.datetime(2026, 11, 12, 9, 30), dt.datetime(2026, 12, 7, 10, 15)]


def test_encodings(tmp_path):
    assert sniff(FIXTURES / "bom.csv").mapping.encoding == "utf-8-sig"
    assert sniff(FIXTURES / "latin1.csv").mapping.encoding == "latin-1"
    assert sniff(FIXTURES / "pipe.csv").mapping.encoding == "utf-8"
    # the header of a BOM file is read without the BOM
    assert sniff(FIXTURES / "bom.csv").mapping.columns["user_id"] == "user_id"


def test_gzip_recognised_by_magic_bytes_whatever_the_name():
    for name in ("events.csv.gz", "events_gz_no_suffix.bin"):
        sniffed = sniff(FIXTURES / name)
        assert sniffed.compression == "gzip"
        assert sniffed.mapping.compression == "gzip"
        assert list(sniffed.preview["user_id"]) == ["u1", "u2", "u2"]


@pytest.mark.parametrize(
    ("fixture", "message"),
    [
        ("empty.csv", "empty.csv is empty: nothing could be loaded"),
        ("binary.png", "binary.png looks like a binary file"),
    ],
)
def test_unreadable_files_raise(fixture, message):
    with pytest.raises(SchemaError, match=message):
        sniff(FIXTURES / fixture)


def test_missing_file_raises(tmp_path):
    with pytest.raises(SchemaError, match="does not exist"):
        sniff(tmp_path / "nope.csv")


def test_missing_user_column_makes_the_mapping_unconfident():
    m = sniff(FIXTURES / "no_user.csv").mapping
    assert m.columns["user_id"] is None
    assert m.confident is False
    assert any("no user column" in n for n in m.notes)


def test_headerless_generic_file_is_guessed_by_content_and_unconfident(tmp_path):
    path = _write(tmp_path, "x.csv", "u1,2024-01-01 10:00:00,view,sku9\nu2,2024-01-01 10:05:00,purchase,sku3\n")
    m = sniff(path).mapping
    assert m.has_header is False
    assert m.source_columns == ["c0", "c1", "c2", "c3"]
    assert (m.columns["user_id"], m.columns["event_time"], m.columns["event_type"]) == ("c0", "c1", "c2")
    assert m.confident is False


def test_headerless_five_digit_ids_are_not_taken_for_excel_dates(tmp_path):
    path = _write(tmp_path, "x.csv", "u1,45123,view,1706778000\nu2,51234,purchase,1706778600\n")
    m = sniff(path).mapping
    assert (m.columns["event_time"], m.time_format) == ("c3", "unix_s")


@pytest.mark.parametrize(("header", "row", "names"), [
    ("user_id,event_time,event_type,price,", "u1,2024-03-01 10:00:00,view,3.50,",  # a trailing delimiter
     ["user_id", "event_time", "event_type", "price", "c4"]),
    ("user_id,event_time,,event_type", "u1,2024-03-01 10:00:00,,view",  # a column left unnamed
     ["user_id", "event_time", "c2", "event_type"]),
])
def test_a_header_with_an_empty_name_is_still_the_header(tmp_path, header, row, names):
    path = tmp_path / "h.csv"
    path.write_text(header + "\n" + (row + "\n") * 5)
    m = sniff(path).mapping
    assert (m.has_header, m.source_columns, m.confident) == (True, names, True)
    assert (m.columns["user_id"], m.columns["event_time"], m.columns["event_type"]) == (
        "user_id", "event_time", "event_type")


def test_a_data_row_with_empty_fields_is_no_header(tmp_path):
    path = tmp_path / "n.csv"
    path.write_text("u1,2024-03-01 10:00:00,,view\n" * 5)
    assert sniff(path).mapping.has_header is False


def test_dates_without_a_time_carry_no_offset():
    assert detect_time_format(["2024-03-01", "2024-03-02", "2024-03-05"]) == ("iso", [])  # '-01' is the day


def test_decimal_comma_in_semicolon_file():
    m = sniff(FIXTURES / "semicolon.csv").mapping
    assert m.decimal_comma is True
    assert not any("currency" in n for n in m.notes), m.notes  # plain 3,50 needs no note of signs


@pytest.mark.parametrize(("prices", "comma"), [
    (["1.234", "2.500"], False),  # ambiguous (thousands or decimals): a point stays a point
    (["1.234", "3,50"], True), (["1.234,50", "7"], True), (["3.50", "3,50"], False), (["1,234.5", "3,50"], False)])
def test_decimal_comma_is_only_taken_when_no_price_reads_as_a_decimal_point(tmp_path, prices, comma):
    path = tmp_path / "p.csv"
    path.write_text("user_id;event_time;event_type;price\n" + "".join(
        f"u{i};2024-03-01 10:0{i}:00;view;{p}\n" for i, p in enumerate(prices)))
    assert sniff(path).mapping.decimal_comma is comma


@pytest.mark.parametrize(("prices", "comma"), [
    (["12,50 zł", "1.234,50 Kč", "45,- €"], True), (["EUR12,50", "(3,50)", "R 1 234,50"], True),
    (["CHF 1'234.50", "45.-", "NZD 3.50"], False), (["1\u2019234.50", "(5.00)", "45.00EUR"], False),
    (["US$1,234.50", "A$7"], False)])
def test_decimal_comma_is_seen_through_currencies_brackets_and_apostrophes(tmp_path, prices, comma):
    path = tmp_path / "p.csv"
    path.write_text("user_id;event_time;event_type;price\n" + "".join(
        f"u{i};2024-03-01 10:0{i}:00;view;{p}\n" for i, p in enumerate(prices)), encoding="utf-8")
    mapping = sniff(path).mapping
    assert mapping.decimal_comma is comma
    assert any("carry currency signs or thousands separators" in n for n in mapping.notes), mapping.notes


def test_event_aliases_cover_the_documented_spellings():
    expected = {"pv": "view", "page_view": "view", "pageview": "view", "detail": "view", "click": "view",
                "add_to_cart": "cart", "addtocart": "cart", "add": "cart", "removefromcart": "remove_from_cart",
                "remove": "remove_from_cart", "buy": "purchase", "order": "purchase", "transaction": "purchase",
                "checkout": "purchase", "fav": "wishlist", "favorite": "wishlist", "like": "wishlist",
                # GA4, Segment's e-commerce spec, Shopify/Klaviyo, Adobe Analytics
                "view_item": "view", "select_item": "view", "product viewed": "view", "viewed product": "view",
                "prodview": "view", "product added": "cart", "added to cart": "cart", "scadd": "cart",
                "product removed": "remove_from_cart", "order completed": "purchase", "placed order": "purchase",
                "product added to wishlist": "wishlist"}
    assert {k: EVENT_ALIASES[k] for k in expected} == expected


def test_mapping_round_trips_through_json():
    m = sniff(FIXTURES / "generic_mixed_case.csv").mapping
    import json

    again = Mapping.from_dict(json.loads(json.dumps(m.to_dict())))
    assert again == m


def test_mapping_validate_rejects_a_column_not_in_the_file():
    m = sniff(FIXTURES / "pipe.csv").mapping
    m.columns["user_id"] = "nope"
    with pytest.raises(SchemaError, match=r"user_id is mapped to column 'nope'.*Columns in file: \['visitorid'"):
        m.validate()


def test_signature_ignores_case_and_spacing():
    assert header_signature(["User ID", "Time"], 2, True) == header_signature(["user_id", "time"], 2, True)
    assert header_signature([], 5, False) != header_signature([], 4, False)


def test_preview_has_source_columns_and_at_most_twenty_rows(tmp_path):
    body = "".join(f"u{i},2024-01-01 10:{i % 60:02d}:00,view\n" for i in range(50))
    path = _write(tmp_path, "x.csv", "user,time,event\n" + body)
    sniffed = sniff(path)
    assert list(sniffed.preview.columns) == ["user", "time", "event"]
    assert len(sniffed.preview) == 20
    assert sniffed.preview.iloc[3]["user"] == "u3"


def test_gzip_damaged_raises(tmp_path):
    data = gzip.compress(b"user,time,event\nu1,2024-01-01,view\n" * 100)
    path = _write(tmp_path, "bad.csv.gz", data[: len(data) // 2])
    with pytest.raises(SchemaError, match="gzip"):
        sniff(path)


ORDER_EXPORTS = {
    "a shop's order export": (
        "Order ID,Customer ID,Order Date,Order Total,Items\n1001,C-17,2024-03-01,59.90,3\n"
        "1002,C-18,2024-03-02,$12.00,1\n",
        ("Customer ID", "Order Date", None, "Order Total", "Items", "Order ID", "order_total")),
    "WooCommerce Analytics": (
        "Date,Order #,Status,Customer,Customer type,Product(s),Items sold,Coupon(s),Net Sales\n"
        '2024-03-01 10:00:00,1001,Completed,Ann Lee,new,"Mug, Tea",3,,41.00\n'
        "2024-03-02 11:30:00,1002,Processing,Bo Chan,returning,Mug,1,SPRING,12.50\n",
        ("Customer", "Date", None, "Net Sales", "Items sold", "Order #", "order_total")),
    "WooCommerce order lines": (
        "Order Number,Order Date,Email (Billing),Order Total Amount,SKU,Item Name,Quantity (- Refund),Item Cost\n"
        "1001,2024-03-01 10:00,ann@example.com,41.00,MUG-1,Mug,2,12.50\n"
        "1001,2024-03-01 10:00,ann@example.com,41.00,TEA-9,Tea,1,16.00\n",
        ("Email (Billing)", "Order Date", "SKU", "Item Cost", "Quantity (- Refund)", "Order Number", "unit_price")),
    "Magento order grid": (
        "ID,Purchase Point,Purchase Date,Bill-to Name,Grand Total (Base),Status,Customer Email,Subtotal\n"
        '000000001,Main Website,"Mar 1, 2024 10:05:00 AM",Ann Lee,$41.00,complete,ann@example.com,$36.00\n'
        '000000002,Main Website,"Mar 2, 2024 1:15:00 PM",Bo Chan,$12.50,pending,bo@example.com,$10.00\n',
        ("Customer Email", "Purchase Date", None, "Grand Total (Base)", None, "ID", "order_total")),
    "BigCommerce": (
        "Order ID,Customer ID,Customer Name,Customer Email,Order Date,Order Status,Subtotal (inc tax),"
        "Order Total (inc tax),Total Quantity\n"
        "101,7,Ann Lee,ann@example.com,2024-03-01,Completed,36.00,41.00,3\n"
        "102,9,Bo Chan,bo@example.com,2024-03-02,Shipped,10.00,12.50,1\n",
        ("Customer ID", "Order Date", None, "Order Total (inc tax)", "Total Quantity", "Order ID", "order_total")),
    "Stripe payments": (
        "id,Description,Created (UTC),Amount,Amount Refunded,Currency,Status,Customer ID,Customer Email\n"
        "ch_3Ox1,Order 1001,2024-03-01 10:05:12,41.00,0.00,usd,Paid,cus_P1,ann@example.com\n"
        "ch_3Ox2,Order 1002,2024-03-02 11:00:40,12.50,0.00,usd,Paid,cus_P2,bo@example.com\n",
        ("Customer ID", "Created (UTC)", None, "Amount", None, "id", "order_total")),
    "Shopify orders, one row each": (
        "Name,Email,Financial Status,Paid at,Subtotal,Total,Created at\n"
        "#1001,ann@example.com,paid,2024-03-01 10:05:00 +0100,36.00,41.00,2024-03-01 10:00:00 +0100\n"
        "#1002,bo@example.com,paid,2024-03-02 11:05:00 +0100,10.00,12.50,2024-03-02 11:00:00 +0100\n",
        ("Email", "Created at", None, "Total", None, "Name", "order_total")),
    "Shopify, every column": (
        "Name,Email,Financial Status,Paid at,Fulfillment Status,Accepts Marketing,Currency,Subtotal,Shipping,Total,"
        "Created at,Lineitem quantity,Lineitem name,Lineitem price,Lineitem sku,Billing Name,Vendor,Device ID,Id,"
        "Receipt Number,Payment ID\n"
        "#1001,ann@example.com,paid,2024-03-01 10:05:00,fulfilled,yes,EUR,41.00,5.00,46.00,2024-03-01 10:00:00,2,Mug,"
        "12.50,MUG-1,Ann Lee,Acme,5512345,5512345,,c123.1\n"
        "#1001,ann@example.com,,,,,,,,,2024-03-01 10:00:00,1,Tea,16.00,TEA-9,,Leafy,,,,\n"
        "#1002,bo@example.com,paid,2024-03-02 11:05:00,,no,EUR,9.00,5.00,14.00,2024-03-02 11:00:00,1,Mug,9.00,"
        "MUG-1,Bo Chan,Acme,,5512346,R-7,c124.1\n",
        ("Email", "Created at", "Lineitem sku", "Lineitem price", "Lineitem quantity", "Name", "unit_price")),
    "Etsy sold orders": (
        "Sale Date,Order ID,Buyer User ID,Full Name,Number of Items,Currency,Order Value,Shipping,Order Total,"
        "Status,Buyer,SKU\n"
        '03/01/24,3001,buyer1,Ann Lee,2,USD,40.00,5.00,45.00,Completed,annlee,"MUG-1,TEA-9"\n'
        "03/13/24,3002,buyer2,Bo Chan,1,USD,12.50,3.00,15.50,Completed,bochan,MUG-1\n",
        ("Buyer User ID", "Sale Date", "SKU", "Order Total", "Number of Items", "Order ID", "order_total")),
    "billing e-mail, paid at": (
        "Order Number,Paid at,Billing First Name,Billing Email,Billing Phone,Order Total\n"
        "W-1001,2024-03-01 10:05:00,Ann,ann@example.com,+49 30 1234567,41.00\n"
        "W-1002,2024-03-02 11:05:00,Bo,bo@example.com,,12.50\n",
        ("Billing Email", "Paid at", None, "Order Total", None, "Order Number", "order_total")),
    "line totals": (
        "InvoiceNo,CustomerID,InvoiceDate,StockCode,Quantity,TotalPrice\n"
        "536365,17850,2010-12-01 08:26,85123A,6,15.30\n536366,17850,2010-12-01 08:28,22633,6,11.10\n",
        ("CustomerID", "InvoiceDate", "StockCode", "TotalPrice", "Quantity", "InvoiceNo", "line_total")),
}


@pytest.mark.parametrize(("names", "customer"), [
    ("Sale ID,Date,Customer,Customer Code,Total", "Customer Code"),  # Lightspeed
    ("Sale ID,Date,Customer,Customer ID,Total", "Customer ID"),
    ("Sale ID,Date,Customer,Customer No,Total", "Customer No"),
    ("Sale ID,Date,Customer Number,Customer,Total", "Customer Number"),
    ("Sale ID,Date,Customer,Client ID,Total", "Client ID"), ("Sale ID,Date,Client,Client Code,Total", "Client Code"),
    ("Sale ID,Date,Customer Name,Client Number,Total", "Client Number"),
    ("Sale ID,Date,Customer Name,Client Ref,Total", "Client Ref"),  # no known name: the one not a name, still
])
def test_a_customers_code_is_the_shopper_over_their_name(tmp_path, names, customer):
    """A customer's name is no shopper id (two Ann Lees are two shoppers): a code, id or number column wins."""
    rows = [["S-1", "2024-03-01 10:00", "Ann Lee", "C-17", "41.00"],
            ["S-2", "2024-03-02 11:00", "Bo Chan", "C-18", "12.50"]]
    header = names.split(",")
    if header[2] not in ("Customer", "Client", "Customer Name"):  # the code column first
        rows = [[r[0], r[1], r[3], r[2], r[4]] for r in rows]
    text = names + "\n" + "".join(",".join(r) + "\n" for r in rows)
    m = sniff(_write(tmp_path, "sales.csv", text)).mapping
    assert m.columns["user_id"] == customer
    assert m.constant_event_type == "purchase"


@pytest.mark.parametrize("name", list(ORDER_EXPORTS))
def test_order_exports_are_read_as_purchases_with_their_totals(tmp_path, name):
    text, (user, time, item, price, quantity, order, price_is) = ORDER_EXPORTS[name]
    m = sniff(_write(tmp_path, "orders.csv", text)).mapping
    assert (m.layout, m.constant_event_type) == ("transactions", "purchase")
    assert (m.columns["user_id"], m.columns["event_time"], m.columns["item_id"], m.columns["price"],
            m.columns["quantity"], m.columns["session_id"], m.price_is) == (
        user, time, item, price, quantity, order, price_is)
    assert f"each order ({order!r}) is taken as a session" in m.notes
    if price_is != "unit_price":
        assert any(n.startswith(f"the amounts in {price!r} are ") for n in m.notes)
    assert not any(n.startswith("no event type column found") for n in m.notes)


CDNOW = ("   00001  19970101   1   11.77\n   00002  19970112   1   12.00\n   00002  19970112   5   77.00\n"
         "   00003  19970102   2   20.76\n   00003  19970330   2   20.76\n   00003  19970402   2   19.54\n"
         "   00003  19971115   5   57.45\n   00004  19970101   2   29.33\n")


def test_a_headerless_clv_transaction_file_is_read_as_purchases(tmp_path):
    m = sniff(_write(tmp_path, "CDNOW_master.txt", CDNOW)).mapping
    assert (m.layout, m.delimiter, m.has_header, m.constant_event_type, m.time_format) == (
        "transactions", " ", False, "purchase", "ymd")
    assert (m.columns["user_id"], m.columns["event_time"], m.columns["quantity"], m.columns["price"],
            m.columns["item_id"], m.price_is) == ("c0", "c1", "c2", "c3", None, "order_total")
    assert m.confident is False  # guessed by content: the page opens the mapping for checking


@pytest.mark.parametrize(("text", "user", "time", "price", "fmt"), [
    ("masterid,sampleid,date,cds,sales\n4,1,19970101,2,29.33\n4,1,19970118,2,29.73\n18,2,19970102,1,14.96\n",
     "masterid", "date", "sales", "ymd"),  # BTYD's cdnowElog.csv
    ('Client Ref,Placed,Order Value (GBP)\nAC-1,01/03/2024 10:05,£41.00\nBX-7,13/03/2024 11:00,"£1,204.50"\n',
     "Client Ref", "Placed", "Order Value (GBP)", "dmy_hm"),
])
def test_a_transaction_file_without_known_names_is_guessed_and_opened_for_checking(tmp_path, text, user, time,
                                                                                    price, fmt):
    m = sniff(_write(tmp_path, "tx.csv", text)).mapping
    assert (m.layout, m.columns["user_id"], m.columns["event_time"], m.columns["price"], m.time_format,
            m.price_is) == ("transactions", user, time, price, fmt, "order_total")
    assert f"no column is named as the customer: {user!r} is taken as the customer; check the mapping" in m.notes
    assert m.confident is False


def test_a_point_of_sale_export_reads_its_payments_as_purchases(tmp_path):
    m = sniff(_write(tmp_path, "square.csv",
                     "Date,Time,Gross Sales,Net Sales,Transaction ID,Event Type,Customer ID\n"
                     "2024-03-01,10:15:00,$41.00,$41.00,T1,Payment,CUS1\n"
                     "2024-03-02,13:05:00,$12.50,$11.50,T2,Payment,CUS2\n")).mapping
    assert (m.columns["event_type"], m.event_type_map["payment"], m.columns["price"], m.price_is) == (
        "Event Type", "purchase", "Net Sales", "order_total")


def test_a_headerless_file_of_small_numbers_without_an_amount_is_no_transaction_file(tmp_path):
    m = sniff(_write(tmp_path, "views.csv", "1,5,1709287200\n2,7,1709287260\n1,3,1709287320\n")).mapping
    assert (m.layout, m.columns["item_id"], m.columns["quantity"], m.constant_event_type) == (
        "generic", "c1", None, None)  # the item is no count: the analyst is asked for the event type


@pytest.mark.parametrize(("name", "status", "refund"), [
    ("Stripe payments", "Status", "Amount Refunded"), ("Shopify orders, one row each", "Financial Status", None),
    ("Shopify, every column", "Financial Status", None),  # its Fulfillment Status says nothing of the money
    ("WooCommerce Analytics", "Status", None), ("Magento order grid", "Status", None),
    ("BigCommerce", "Order Status", None), ("Etsy sold orders", "Status", None),
    ("a shop's order export", None, None), ("line totals", None, None)])
def test_an_order_exports_status_and_refund_columns_are_found_and_noted(tmp_path, name, status, refund):
    m = sniff(_write(tmp_path, "orders.csv", ORDER_EXPORTS[name][0])).mapping
    assert (m.status_column, m.refund_column) == (status, refund)
    assert any(n.startswith(f"the order status is read from {status!r}: ") for n in m.notes) == bool(status)
    assert any(n.startswith(f"the amount refunded is read from {refund!r}: ") for n in m.notes) == bool(refund)
    assert Mapping.from_dict(json.loads(json.dumps(m.to_dict()))) == m


@pytest.mark.parametrize("text", [
    # a State of US states, a Status of something else: no order status
    "Order ID,Customer ID,Order Date,State,Order Total\n1001,C-17,2024-03-01,CA,59.90\n1002,C-18,2024-03-02,NY,12.00\n",
    "Order ID,Customer ID,Order Date,Status,Order Total\n1001,C-17,2024-03-01,gold,59.90\n1002,C-18,2024-03-02,"
    "silver,12.00\n",
    # an event file's own status column (an event has no order status)
    "user_id,event_time,event_type,product_id,price,status\nu1,2024-03-01 10:00:00,view,A,10.00,cancelled\n"
    "u1,2024-03-01 10:01:00,purchase,A,10.00,refunded\n",
], ids=["US states", "loyalty tiers", "event file"])
def test_a_column_named_status_holding_no_order_status_is_not_read_as_one(tmp_path, text):
    m = sniff(_write(tmp_path, "orders.csv", text)).mapping
    assert (m.status_column, m.refund_column) == (None, None)
    assert not any(n.startswith(STATUS_NOTE_STARTS) for n in m.notes)


def test_status_and_refund_columns_can_be_set_by_hand_and_must_be_in_the_file(tmp_path):
    m = sniff(_write(tmp_path, "orders.csv", ORDER_EXPORTS["Stripe payments"][0])).mapping
    unset = with_overrides(m, {"status": None, "amount_refunded": None})
    assert (unset.status_column, unset.refund_column) == (None, None)
    assert "mapping set by hand: status unmapped, amount_refunded unmapped" in unset.notes
    assert with_overrides(unset, {"status": "description"}).status_column == "Description"  # the file's case
    with pytest.raises(SchemaError, match=r"^status is mapped to column 'Outcome', which is not in the file"):
        with_overrides(m, {"status": "Outcome"})
