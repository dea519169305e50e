"""Ingest on tiny hand-made files, on DuckDB and PostgreSQL: values, quarantine reasons, atomicity."""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa

from core import store
from core.errors import DatasetExistsError, IngestCancelled, ParameterError, SchemaError
from core.ingest.load import ingest_file, remember_mapping
from core.ingest.quarantine import quarantined_rows
from core.ingest.sniff import sniff

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
T = dt.datetime


def _events(engine, name: str) -> list[tuple]:
    did = store.get_dataset(engine, name)["dataset_id"]
    e = store.events
    query = (sa.select(e.c.user_id, e.c.event_time, e.c.event_type, e.c.item_id, e.c.category, e.c.brand,
                       e.c.price, e.c.quantity, e.c.session_id)
             .where(e.c.dataset_id == did).order_by(e.c.event_time, e.c.user_id, e.c.item_id))
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(query).all()]


def _counts(engine) -> tuple[int, int, int]:
    """(datasets, events, quarantined rows); the load's summaries must hold no row of another dataset."""
    with engine.connect() as conn:
        known = sa.select(store.datasets.c.dataset_id)
        for t in (store.session_days, store.price_edges):
            assert conn.execute(sa.select(sa.func.count()).select_from(t)
                                .where(t.c.dataset_id.not_in(known))).scalar() == 0, t.name
        return tuple(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar()
                     for t in (store.datasets, store.events, store.quarantine))


def test_bad_values_are_quarantined_with_line_reason_and_detail(engine):
    report = ingest_file(engine, FIXTURES / "bad_values.csv", "bad")
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (10, 2, 8)
    assert report.quarantine_by_reason == {
        "missing_user": 1, "unparseable_time": 1, "missing_time": 1, "negative_price": 1,
        "non_numeric_price": 1, "price_too_high": 1, "duplicate": 1, "missing_event_type": 1}
    q = quarantined_rows(engine, "bad")
    assert list(q.itertuples(index=False, name=None)) == [
        (3, "u1,yesterday,view,i1,5.00", "unparseable_time",
         "column 'event_time': 'yesterday' is not a time in the expected format (iso)"),
        (4, ",2024-01-01 10:02:00,view,i1,5.00", "missing_user", "column 'user_id' is empty; expected a user id"),
        (5, "u2,2024-01-01 10:03:00,view,i2,-3.50", "negative_price",
         "column 'price': '-3.50' is negative; expected a price >= 0"),
        (6, "u2,2024-01-01 10:04:00,cart,i2,abc", "non_numeric_price",
         "column 'price': 'abc' is not a number; expected a price"),
        (7, "u2,,view,i2,1", "missing_time", "column 'event_time' is empty; expected a time"),
        (8, "u3,2024-01-01 10:06:00,purchase,i3,2000000", "price_too_high",
         "column 'price': '2000000' is above the maximum price 1,000,000"),
        (10, "u3,2024-01-01 10:07:00,purchase,i3,12.5", "duplicate", "exact duplicate of an earlier line (line 9)"),
        (11, "u3,2024-01-01 10:08:00,,i3,12.5", "missing_event_type",
         "column 'event_type' is empty; expected an event type"),
    ]
    assert _events(engine, "bad") == [
        ("u1", T(2024, 1, 1, 10, 0), "view", "i1", None, None, 5.0, None, "u1-1"),
        ("u3", T(2024, 1, 1, 10, 7), "purchase", "i3", None, None, 12.5, None, "u3-1"),
    ]
    assert quarantined_rows(engine, "bad", limit=2)["line_no"].tolist() == [3, 4]


@pytest.mark.parametrize(
    ("fixture", "message"),
    [
        ("empty.csv", r"empty.csv is empty: nothing could be loaded"),
        ("header_only.csv", r"header_only.csv has no data rows \(header only\?\): nothing could be loaded"),
        ("binary.png", r"binary.png looks like a binary file \(it contains NUL bytes\)"),
        ("all_bad.csv", r"nothing could be loaded from all_bad.csv: all 2 rows are bad \(unparseable_time: 2\); "
                        r"for example: column 'event_time': 'not a time' is not a time"),
        ("no_user.csv", r"no user column: expected one of user_id, userid, user, customer_id, customerid, cust_id, "
                        r"customer_code, customer_number, customer_no, customer_user_id\.\.\. "
                        r"Columns in file: \['time', 'event', 'item'\]"),
    ],
)
def test_nothing_loadable_raises_and_leaves_nothing(engine, fixture, message):
    with pytest.raises(SchemaError, match=message):
        ingest_file(engine, FIXTURES / fixture, "x")
    assert _counts(engine) == (0, 0, 0)


def test_unknown_event_types_are_kept_and_reported_and_values_normalised(engine):
    report = ingest_file(engine, FIXTURES / "generic_mixed_case.csv", "g")
    assert report.unknown_event_types == {"share": 2}
    assert report.events_by_type == {"share": 2, "view": 2, "cart": 1, "purchase": 1, "remove_from_cart": 1,
                                     "wishlist": 1}
    assert any("share" in n for n in report.notes)
    rows = _events(engine, "g")
    assert [r[2] for r in rows] == ["view", "view", "cart", "remove_from_cart", "purchase", "wishlist", "share",
                                    "share"]
    assert {r[5] for r in rows} == {"nike", "gucci", None}  # brands lower-cased and trimmed
    assert [r[7] for r in rows][:3] == [1, 1, 2]
    assert rows[4][6] == pytest.approx(99.99, rel=1e-6)
    assert report.users == 3
    assert report.sessions_derived is False


def test_a_category_id_without_its_name_on_some_rows_takes_the_name_of_the_others(engine, tmp_path):
    """REES46 leaves category_code empty on some rows of a named category: those rows join the named category
    instead of listing it a second time by its id; an id never named keeps its id."""
    head = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
    rows = [("111", "apparel.shoes"), ("111", ""), ("222", ""), ("111", "apparel.shoes"), ("111", "")]
    lines = [head] + [f"2019-10-01 00:0{i}:00 UTC,view,p{i},{cid},{code},b,9.5,u{i},s{i}"
                      for i, (cid, code) in enumerate(rows)]
    path = tmp_path / "rees.csv"
    path.write_text("\n".join(lines) + "\n")
    report = ingest_file(engine, path, "named")
    assert report.layout == "rees46"
    assert [r[4] for r in _events(engine, "named")] == ["apparel.shoes", "apparel.shoes", "222", "apparel.shoes",
                                                         "apparel.shoes"]
    assert any(n.startswith("2 rows without a category name took the name") for n in report.notes)


def test_an_id_with_two_names_equally_often_takes_the_first_in_alphabetical_order_every_time(engine, tmp_path):
    """Two names given an id equally often: the unnamed rows take the first alphabetically, on every load (mode()
    chose by thread timing, so a file appended twice named some rows otherwise and they were no longer repeats)."""
    head = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
    codes = ["sport.bikes", "apparel.shoes", ""] * 400  # per id: each name equally often, unnamed rows beside them
    lines = [head] + [f"2019-10-01 00:00:{i % 60:02d} UTC,view,p{i},{i // 3 % 7},{code},b,9.5,u{i % 50},s{i}"
                      for i, code in enumerate(codes)]
    path = tmp_path / "tied.csv"
    path.write_text("\n".join(lines) + "\n")
    for name in ("first", "second", "third"):
        ingest_file(engine, path, name)
        got = {r[4] for r in _events(engine, name)}
        assert got == {"apparel.shoes", "sport.bikes"}, name
        unnamed = {r[4] for r in _events(engine, name) if not codes[int(r[3][1:])]}
        assert unnamed == {"apparel.shoes"}, name


def test_mixed_time_zone_offsets_are_converted_to_utc(engine):
    ingest_file(engine, FIXTURES / "tz_offsets.csv", "tz")
    got = {(r[0], r[3], r[2]): r[1] for r in _events(engine, "tz")}
    assert got == {
        ("u1", "i1", "view"): T(2024, 5, 1, 8, 0),       # 10:00+02:00
        ("u1", "i2", "view"): T(2024, 5, 1, 15, 0),      # 10:00-05:00
        ("u1", "i1", "cart"): T(2024, 5, 1, 10, 0),      # 10:00Z
        ("u2", "i3", "purchase"): T(2024, 5, 1, 18, 0),  # 23:30+0530
        ("u2", "i3", "view"): T(2024, 5, 1, 8, 0),       # no offset: read as UTC
    }


@pytest.mark.parametrize("fixture", ["semicolon.csv", "pipe.csv", "whitespace.txt"])
def test_other_delimiters_load(engine, fixture):
    report = ingest_file(engine, FIXTURES / fixture, "d")
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (3, 3, 0)
    rows = _events(engine, "d")
    assert [r[2] for r in rows] == ["view", "cart", "purchase"]
    assert [r[1] for r in rows] == [T(2024, 2, 1, 9, 0), T(2024, 2, 1, 9, 10), T(2024, 2, 1, 9, 20)]
    if fixture == "semicolon.csv":
        assert [r[6] for r in rows] == [3.5, 3.5, 4.0]  # decimal commas


@pytest.mark.parametrize("delimiter", [",", ";", "\t"], ids=["comma", "semicolon", "tab"])
def test_ragged_lines_near_the_top_are_quarantined_and_the_file_loads(engine, tmp_path, delimiter):
    """A 4-field and an 11-field line among REES46's first rows: the delimiter stays the file's (the spaces
    in its times made it a space, and the file was refused), and the two lines go to quarantine."""
    from tests import hostile_files as hf

    rows = [hf.rees46_row(n) for n in range(1, 41)]
    rows[3], rows[6] = rows[3][:4], rows[6] + ["x", "y"]
    path = tmp_path / "ragged.csv"
    path.write_text("".join(delimiter.join(r) + "\n" for r in [hf.REES46_COLUMNS, *rows]), encoding="utf-8")
    report = ingest_file(engine, path, "ragged")
    assert (report.layout, report.rows_read, report.rows_loaded) == ("rees46", 40, 38)
    assert report.quarantine_by_reason == {"too_many_fields": 1, "truncated_row": 1}
    q = quarantined_rows(engine, "ragged")
    assert q[["line_no", "reason"]].values.tolist() == [[5, "truncated_row"], [8, "too_many_fields"]]
    assert q["raw_line"][0] == delimiter.join(rows[3])
    assert len({r[3] for r in _events(engine, "ragged")}) == 38


ZONED_TIMES = [
    # (times ending in a time-zone abbreviation, in each format the sniffer knows; the same instants in UTC)
    ("iso", ["2019-10-01 00:00:00 PST", "2019-07-01 00:00:00 PDT", "2019-10-01 09:30:00 EST", "2019-10-01 09:30 EDT",
             "2019-10-01 12:00:00 CET", "2019-07-01 12:00:00 CEST", "2019-10-01 05:30:00 IST",
             "2019-10-01 09:00:00 JST", "2019-10-01 00:00:00 GMT+2", "2019-10-01 1:05 PM CST",
             "2019-10-01 00:00:00 utc", "2019-10-01T10:00:00.250-07:00 PDT"],
     [T(2019, 10, 1, 8), T(2019, 7, 1, 7), T(2019, 10, 1, 14, 30), T(2019, 10, 1, 13, 30), T(2019, 10, 1, 11),
      T(2019, 7, 1, 10), T(2019, 10, 1, 0), T(2019, 10, 1, 0), T(2019, 9, 30, 22), T(2019, 10, 1, 19, 5),
      T(2019, 10, 1, 0), T(2019, 10, 1, 17, 0, 0, 250_000)]),  # the offset in numbers counts once
    ("mdy_hm", ["10/01/2019 1:05 PM PST", "10/13/2019 1:05 AM PDT", "12/31/19 23:30 EST", "10/02/2019 10:00 UTC+0530"],
     [T(2019, 10, 1, 21, 5), T(2019, 10, 13, 8, 5), T(2020, 1, 1, 4, 30), T(2019, 10, 2, 4, 30)]),
    ("dmy_hm", ["31.10.2019 10:00 CET", "13/10/2019 10:00 CEST", "01-11-2019 9:15 PM BST"],
     [T(2019, 10, 31, 9), T(2019, 10, 13, 8), T(2019, 11, 1, 20, 15)]),
    ("month_name", ["Tue, 01 Oct 2019 10:05:00 GMT", "Oct 1, 2019 1:05 PM EDT", "01-Oct-2019 10:05 JST"],
     [T(2019, 10, 1, 10, 5), T(2019, 10, 1, 17, 5), T(2019, 10, 1, 1, 5)]),
    ("ymd", ["20191001 10:05 AEST", "20191001 10:05 PM MST"], [T(2019, 10, 1, 0, 5), T(2019, 10, 2, 5, 5)]),
]


@pytest.mark.parametrize(("fmt", "written", "utc"), ZONED_TIMES, ids=[z[0] for z in ZONED_TIMES])
def test_time_zone_abbreviations_are_read_with_their_offsets(engine, tmp_path, fmt, written, utc):
    """A time ending in PST is eight hours behind UTC: it loaded as if it were UTC, and the note asked for a
    format the command line cannot choose."""
    import csv

    path = tmp_path / "zones.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([["user_id", "event_time", "event_type"],
                                  *[[f"u{i:02d}", t, "view"] for i, t in enumerate(written)]])
    mapping = sniff(path).mapping
    assert (mapping.time_format, mapping.confident) == (fmt, True)
    assert any(n.startswith("times end in a time zone (") and "converted to UTC" in n for n in mapping.notes)
    report = ingest_file(engine, path, "zones")
    assert (report.rows_read, report.rows_loaded) == (len(written), len(written))
    assert [r[1] for r in sorted(_events(engine, "zones"))] == utc


def test_an_unknown_time_zone_is_quarantined_not_read_as_utc(engine, tmp_path):
    path = tmp_path / "zones.csv"
    path.write_text("user_id,event_time,event_type\nu1,2019-10-01 00:00:00 XYZ,view\n"
                    "u2,2019-10-01 00:00:00 America/Chicago,view\nu3,2019-10-01 00:00:00 12,view\n"
                    + "".join(f"u{n},2019-10-01 {n:02d}:00:00 PST,view\n" for n in range(4, 14)))
    assert any("times end in ['XYZ'], no time zone known here" in n for n in sniff(path).mapping.notes)
    report = ingest_file(engine, path, "zones")
    assert report.quarantine_by_reason == {"unknown_time_zone": 1, "unparseable_time": 2}
    q = quarantined_rows(engine, "zones")
    assert q[["line_no", "reason"]].values.tolist() == [
        [2, "unknown_time_zone"], [3, "unparseable_time"], [4, "unparseable_time"]]
    assert q["detail"][0].startswith("column 'event_time': '2019-10-01 00:00:00 XYZ' ends in a time zone not known "
                                     "here; expected an abbreviation such as PST")
    assert [r[1] for r in _events(engine, "zones")] == [T(2019, 10, 1, n + 8) for n in range(4, 14)]


@pytest.mark.parametrize(("zone", "utc", "meaning"), [
    ("IST", T(2019, 9, 30, 18, 30), "'IST' is read as India Standard Time (UTC+05:30); it also names Irish Standard "
                                    "Time (UTC+01:00) and Israel Standard Time (UTC+02:00)"),
    ("CST", T(2019, 10, 1, 6), "'CST' is read as Central Standard Time (North America) (UTC-06:00); it also names "
                               "China Standard Time (UTC+08:00) and Cuba Standard Time (UTC-05:00)"),
])
def test_an_abbreviation_of_several_zones_is_read_as_documented_and_said(duck_engine, tmp_path, zone, utc, meaning):
    path = tmp_path / "zones.csv"
    path.write_text(f"user_id,event_time,event_type\nu1,2019-10-01 00:00:00 {zone},view\n")
    report = ingest_file(duck_engine, path, "zones")
    assert any(n.startswith(meaning) for n in report.notes), report.notes
    assert [r[1] for r in _events(duck_engine, "zones")] == [utc]


TIMES_AS_WRITTEN = [
    # (times as an export writes them, the format sniffed, the times read; the last value is quarantined)
    (["3/1/24 10:05", "3/13/24 1:05 PM", "12/31/99 23:59", "3/1/2024 10:05", "2/30/24 10:00"], "mdy_hm",
     [T(2024, 3, 1, 10, 5), T(2024, 3, 13, 13, 5), T(1999, 12, 31, 23, 59), T(2024, 3, 1, 10, 5)]),
    (["31.03.24 10:05", "01.04.2024 09:00", "13/04/24", "32.03.24 10:00"], "dmy_hm",
     [T(2024, 3, 31, 10, 5), T(2024, 4, 1, 9, 0), T(2024, 4, 13)]),
    (["Mar 1, 2024 10:05:00 AM", "MARCH 2, 2024, 1:05 PM", "03-Mar-2024 10:05", "04-Mar-24",
      "Tue, 05 Mar 2024 10:05:00 GMT", "6 Sept. 2024 13:05 UTC", "Feb 30, 2024"], "month_name",
     [T(2024, 3, 1, 10, 5), T(2024, 3, 2, 13, 5), T(2024, 3, 3, 10, 5), T(2024, 3, 4), T(2024, 3, 5, 10, 5),
      T(2024, 9, 6, 13, 5)]),
    (["45352.4236111111", "45353", "36525.999988426", "45352.5", "yesterday"], "excel",  # Excel serial days
     [T(2024, 3, 1, 10, 10), T(2024, 3, 2), T(1999, 12, 31, 23, 59, 59), T(2024, 3, 1, 12)]),
]


@pytest.mark.parametrize(("written", "fmt", "times"), TIMES_AS_WRITTEN, ids=["mdy", "dmy", "month_name", "excel"])
def test_two_digit_years_and_month_names(engine, tmp_path, written, fmt, times):
    path = tmp_path / "t.csv"
    path.write_text("customer,Order Date,event\n" + "".join(f'c{i},"{w}",view\n' for i, w in enumerate(written)))
    mapping = sniff(path).mapping
    assert (mapping.columns["event_time"], mapping.time_format) == ("Order Date", fmt)
    report = ingest_file(engine, path, "t")
    assert report.quarantine_by_reason == {"unparseable_time": 1}
    got = dict((r[0], r[1]) for r in _events(engine, "t"))
    assert [got[f"c{i}"] for i in range(len(times))] == times
    assert quarantined_rows(engine, "t")["line_no"].tolist() == [len(written) + 1]


PREAMBLES = [
    # (the lines above the header, as report exports and spreadsheets saved as CSV write them)
    ["Order export", "Generated 2024-04-01 09:00, by ShopAdmin", ""],
    ["Sales report,,,,,", ",,,,,", "Period: March 2024,,,,,"],  # a title cell in a sheet saved as CSV
    ["# exported by tracker v2"],
    # Google Analytics' report block, longer than a title: every line a comment, some with the table's delimiter
    ["# ----------------------------------------", "# Events, all users", "# Account: Demo shop",
     "# Property: Demo shop - GA4", "# ----------------------------------------", "#",
     "# Start date: 20240301", "# End date: 20240331", "# Filters: country, Germany, France",
     "# Sampled: no", "#", "# ----------------------------------------"],
]


@pytest.mark.parametrize("preamble", PREAMBLES, ids=["title_date_blank", "excel_padded", "comment", "ga_report"])
def test_lines_above_the_header_are_skipped_and_line_numbers_stay_the_files(engine, tmp_path, preamble):
    header = "customer_id,event_time,event_type,product_id,category,price"
    rows = [f"c{i % 4},2024-03-0{1 + i % 9} 10:{i:02d}:00,view,p{i},shoes,{i}.50" for i in range(12)]
    rows[5] = "c1,yesterday,view,p5,shoes,5.50"
    path = tmp_path / "export.csv"
    path.write_text("\r\n".join([*preamble, header, *rows]) + "\r\n")
    mapping = sniff(path).mapping
    assert (mapping.skip_lines, mapping.has_header, mapping.confident) == (len(preamble), True, True)
    assert mapping.columns["user_id"] == "customer_id"
    assert any(n.startswith(f"the first {len(preamble)} lines are no part of the table") for n in mapping.notes)
    report = ingest_file(engine, path, "export")
    assert (report.rows_read, report.rows_loaded, report.quarantine_by_reason) == (12, 11, {"unparseable_time": 1})
    q = quarantined_rows(engine, "export")
    assert q[["line_no", "raw_line"]].values.tolist() == [[len(preamble) + 7, "c1,yesterday,view,p5,shoes,5.50"]]


def test_a_header_written_as_a_comment_is_the_header():
    from core.ingest.delimited import comment_lines

    assert comment_lines(["# Account: Demo", "#user,time,event", "u1,2024-03-01,view", "u2,2024-03-02,cart"]) == 1
    assert comment_lines(["# Account: Demo", "# Dates: March", "user,time,event", "u1,2024-03-01,view"]) == 2
    assert comment_lines(["user,time,event", "u1,2024-03-01,view"]) == 0


def test_lines_to_skip_can_be_set_when_the_title_is_not_found(engine, tmp_path):
    path = tmp_path / "long-title.csv"
    title = [f"note {i}" for i in range(14)]  # longer than the sniffer looks for
    rows = [f"c{i % 3},2024-03-0{1 + i % 9} 10:{i:02d}:00,view,p{i}" for i in range(6)]
    path.write_text("\n".join([*title, "customer_id,event_time,event_type,product_id", *rows]) + "\n")
    assert sniff(path).mapping.skip_lines == 0
    mapping = sniff(path, skip_lines=14).mapping
    assert (mapping.skip_lines, mapping.has_header, mapping.columns["user_id"]) == (14, True, "customer_id")
    assert "the first 14 lines are skipped, as chosen; the table starts at line 15" in mapping.notes
    report = ingest_file(engine, path, "long", mapping=mapping)
    assert (report.rows_read, report.rows_loaded) == (6, 6)
    with pytest.raises(ParameterError, match=r"^long-title\.csv: no line is left to read after skipping 40 lines"):
        sniff(path, skip_lines=40)


def test_a_short_first_data_row_is_no_preamble(duck_engine, tmp_path):
    path = tmp_path / "plain.csv"
    path.write_text("u1,1709287200\n" + "".join(f"u{i},17092872{i:02d},view,p{i}\n" for i in range(5)))
    mapping = sniff(path).mapping
    assert (mapping.skip_lines, mapping.has_header) == (0, False)
    assert ingest_file(duck_engine, path, "plain").rows_read == 6


PRICES_AS_WRITTEN = [
    # (delimiter, prices as a spreadsheet or shop export writes them, the numbers loaded, the values quarantined)
    (",", ['"$12.50"', '"$1,234.00"', "USD 99.00", "£7.99", "1234.5", '"12,500"', "9.99 USD", "-$3.00", "$", "N/A"],
     [12.5, 1234.0, 99.0, 7.99, 1234.5, 12500.0, 9.99],
     {"-$3.00": "negative_price", "$": "non_numeric_price", "N/A": "non_numeric_price"}),
    (";", ["12,50 €", "€ 1.999,00", "1.234", "3,5", "1\u00a0234,56\u00a0€", "EUR 7", "12.5.3"],
     [12.5, 1999.0, 1234.0, 3.5, 1234.56, 7.0], {"12.5.3": "non_numeric_price"}),
]


def _purchases_file(folder, sep: str, header: list[str], prices: list[str]):
    """``folder/shop.csv``: one purchase a minute by shopper c<i> of item s<i> at each of ``prices`` as written."""
    path = folder / "shop.csv"
    lines = [sep.join(header)]
    lines += [sep.join([f"c{i}", f"2024-03-01 10:{i:02d}:00", "purchase", f"s{i}", p]) for i, p in enumerate(prices)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(("sep", "written", "numbers", "quarantined"), PRICES_AS_WRITTEN, ids=["point", "comma"])
def test_prices_with_currency_signs_and_thousands_separators(engine, tmp_path, sep, written, numbers, quarantined):
    path = _purchases_file(tmp_path, sep, ["customer", "order_date", "event", "sku", "price"], written)
    mapping = sniff(path).mapping
    assert mapping.decimal_comma is (sep == ";")
    assert any("carry currency signs or thousands separators" in n for n in mapping.notes), mapping.notes
    ingest_file(engine, path, "shop")
    assert [r[6] for r in _events(engine, "shop")] == numbers  # in file order: one row a minute
    q = quarantined_rows(engine, "shop")
    assert q["reason"].tolist() == list(quarantined.values())
    assert all(f"'{value}'" in detail for value, detail in zip(quarantined, q["detail"])), q["detail"].tolist()


SHOP_PRICES = [
    # (delimiter, prices as shops in other countries write them, the numbers loaded, the values quarantined)
    (",", ["NZD 45.00", "SGD 45.00", "45.00 usd", "EUR45.00", "45.00EUR", "US$45.00", "A$45.00", "CA$ 45.00",
           "C$45.00", "NZ$45.00", "HK$45.00", "S$45.00", "R$45.00", "MX$45.00", "45 ₽", "₩45", "₹ 45.00", "¥45",
           "£45.00", "45 ₺", "₪45", "45 kr", "kr 45.00", "45 Kč", "45 zł", "Fr. 45.00", "CHF 45.00", "R45.00",
           "R 1 234.50", "1'234.50", "1’234.50", "CHF 1'234.50", "45.-", "Fr. 45.-", "45 EUR", "€ 1 234.50",
           "1 234.50 €", '"$1,234.50"', "(5.00)", '"($1,234.50)"', "$(5.00)", "(5.00", "5.00)", "-(5.00)", "12 50",
           "45 R", "A45", "EUR", "(5.00) €"],
     [45.0] * 28 + [1234.5] * 4 + [45.0, 45.0, 45.0, 1234.5, 1234.5, 1234.5],
     {"(5.00)": "negative_price", "($1,234.50)": "negative_price", "$(5.00)": "negative_price",
      "(5.00": "non_numeric_price", "5.00)": "non_numeric_price", "-(5.00)": "non_numeric_price",
      "12 50": "non_numeric_price", "45 R": "non_numeric_price", "A45": "non_numeric_price",
      "EUR": "non_numeric_price", "(5.00) €": "negative_price"}),
    (";", ["12,50 €", "1.234,56", "45,- €", "45,-", "12,50 zł", "1.234,50 Kč", "EUR12,50", "12,50eur", "(12,50)",
           "1'234,50 CHF", "R 1 234,50"],
     [12.5, 1234.56, 45.0, 45.0, 12.5, 1234.5, 12.5, 12.5, 1234.5, 1234.5],
     {"(12,50)": "negative_price"}),
]


@pytest.mark.parametrize(("sep", "written", "numbers", "quarantined"), SHOP_PRICES, ids=["point", "comma"])
def test_prices_in_the_currency_forms_shops_write(engine, tmp_path, sep, written, numbers, quarantined):
    """Any ISO code (either case, with or without a space), dollars with their country, currency signs and
    words, the Swiss apostrophe and 45.- are read; an accounting negative (5.00) is a negative price."""
    path = _purchases_file(tmp_path, sep, ["user_id", "event_time", "event_type", "product_id", "price"], written)
    mapping = sniff(path).mapping
    assert mapping.decimal_comma is (sep == ";")
    report = ingest_file(engine, path, "shop")
    assert [r[6] for r in _events(engine, "shop")] == numbers  # in file order: one row a minute
    q = quarantined_rows(engine, "shop")
    found = {written[line - 2].strip('"'): reason for line, reason in zip(q["line_no"], q["reason"])}
    assert found == quarantined
    assert report.rows_read == len(written)


def test_a_lightspeed_sale_is_its_customers_code_not_their_name(engine, tmp_path):
    """Two Ann Lees with their own codes are two shoppers; the name was loaded as the id and merged them."""
    path = tmp_path / "sales.csv"
    path.write_text("Sale ID,Date,Customer,Customer Code,Total\nS-1,2024-03-01 10:00,Ann Lee,C-17,41.00\n"
                    "S-2,2024-03-02 11:00,Ann Lee,C-18,12.50\nS-3,2024-03-03 12:00,Bo Chan,C-19,9.00\n")
    ingest_file(engine, path, "sales")
    assert [(r[0], r[2], r[6]) for r in _events(engine, "sales")] == [
        ("C-17", "purchase", 41.0), ("C-18", "purchase", 12.5), ("C-19", "purchase", 9.0)]


def test_whitespace_file_keeps_physical_line_numbers(engine, tmp_path):
    path = tmp_path / "w.txt"
    path.write_text("user_id event_time event_type\nu1 1706778000 view\n\nu1 1706778000 view\n"
                    "u2   1706778001\tview\nu3 1706778002 view\nu2 oops view\n")
    report = ingest_file(engine, path, "w")
    assert report.quarantine_by_reason == {"duplicate": 1, "unparseable_time": 1}
    q = quarantined_rows(engine, "w")
    assert q[["line_no", "raw_line", "reason"]].values.tolist() == [
        [4, "u1 1706778000 view", "duplicate"], [7, "u2 oops view", "unparseable_time"]]
    assert q["detail"][0] == "exact duplicate of an earlier line (line 2)"


def test_lines_of_spaces_in_a_whitespace_file_keep_the_line_numbers(engine, tmp_path):
    """A line of spaces or a tab is empty to a whitespace-separated file: it was counted as a row, and every
    quarantined row after it was numbered a line too early."""
    rows = ["u1 1706778000 view", "   ", "u2 1706778001 view", "\t", "u3 oops view",
            *[f"u{n} {1706778000 + n} view" for n in range(4, 8)], "u6 1706778006 view"]
    path = tmp_path / "w.txt"
    path.write_text("user_id event_time event_type\n" + "\n".join(rows) + "\n")
    report = ingest_file(engine, path, "w")
    assert (report.rows_read, report.rows_loaded) == (8, 6)
    q = quarantined_rows(engine, "w")
    assert q[["line_no", "raw_line", "reason"]].values.tolist() == [
        [6, "u3 oops view", "unparseable_time"], [11, "u6 1706778006 view", "duplicate"]]
    assert q["detail"][1] == "exact duplicate of an earlier line (line 9)"


@pytest.mark.parametrize(("fixture", "brands"), [
    ("bom.csv", ["café noir", "zara"]), ("latin1.csv", ["café noir", "crème"])])
def test_bom_and_latin1_keep_accents(engine, fixture, brands):
    report = ingest_file(engine, FIXTURES / fixture, "enc")
    assert report.rows_loaded == 2
    rows = _events(engine, "enc")
    assert [r[5] for r in rows] == brands
    assert rows[0][0] == "u1"  # the BOM is not part of the first user id or header


def test_unix_milliseconds(engine):
    ingest_file(engine, FIXTURES / "unix_ms.csv", "ms")
    assert [r[1] for r in _events(engine, "ms")] == [T(2024, 2, 1, 9, 0, 0, 123000), T(2024, 2, 1, 9, 10)]


def test_unix_microseconds(engine, tmp_path):
    path = tmp_path / "ga4.csv"
    path.write_text("user_pseudo_id,event_timestamp,event_name\n"
                    "123.4,1706778000123456,view_item\n123.4,1706778600000000,purchase\n")
    ingest_file(engine, path, "us")
    assert [(r[1], r[2]) for r in _events(engine, "us")] == [
        (T(2024, 2, 1, 9, 0, 0, 123456), "view"), (T(2024, 2, 1, 9, 10), "purchase")]


def test_twelve_hour_clocks_and_slashed_iso_dates(engine, tmp_path):
    us = tmp_path / "us.csv"
    us.write_text("customer,order_date,amount\nc1,3/1/2024 12:15:00 AM,10\nc1,3/13/2024 1:05 PM,12.5\n"
                  "c2,3/14/2024 12:30 PM,7\nc2,3/15/2024 13:30 PM,7\n")
    report = ingest_file(engine, us, "us")
    assert report.quarantine_by_reason == {"unparseable_time": 1}  # 13:30 PM is no time
    assert [r[1] for r in _events(engine, "us")] == [
        T(2024, 3, 1, 0, 15), T(2024, 3, 13, 13, 5), T(2024, 3, 14, 12, 30)]
    slashed = tmp_path / "slashed.csv"
    slashed.write_text("user_id,event_time,event_type\nu1,2024/03/01 10:00:00,view\nu1,2024/3/2 11:00,cart\n"
                       "u2,2024-03-03 1:05 PM,view\nu2,2024/03/04 12:05:09 am,cart\nu3,2024-03-05 13:05 PM,view\n")
    report = ingest_file(engine, slashed, "slashed")
    assert report.quarantine_by_reason == {"unparseable_time": 1}
    assert [r[1] for r in _events(engine, "slashed")] == [  # DuckDB's own cast would read 1:05 PM as 01:05
        T(2024, 3, 1, 10), T(2024, 3, 2, 11), T(2024, 3, 3, 13, 5), T(2024, 3, 4, 0, 5, 9)]


def test_date_and_time_of_day_columns_are_joined(engine, tmp_path):
    path = tmp_path / "pos.csv"
    path.write_text("order_date,order_time,customer_id,amount\n3/1/2024,10:15 AM,c1,10\n3/13/2024,1:05 PM,c2,12\n"
                    "3/14/2024,,c2,7\n,9:00 AM,c3,5\n3/15/2024,25:00,c3,5\n")
    report = ingest_file(engine, path, "pos")
    assert [r[1] for r in _events(engine, "pos")] == [T(2024, 3, 1, 10, 15), T(2024, 3, 13, 13, 5), T(2024, 3, 14)]
    q = quarantined_rows(engine, "pos")
    assert q[["line_no", "reason", "detail"]].values.tolist() == [
        [5, "missing_time", "column 'order_date' is empty; expected a date"],
        [6, "unparseable_time", "column 'order_date' with 'order_time': '3/15/2024 25:00' is not a time in the "
                                "expected format (mdy_hm)"]]
    assert report.rows_loaded == 3


def test_yyyymmdd_transactions_are_purchases(engine):
    report = ingest_file(engine, FIXTURES / "ymd.csv", "tx")
    assert report.layout == "transactions"
    assert report.events_by_type == {"purchase": 3}
    rows = _events(engine, "tx")
    assert [(r[0], r[1], r[6]) for r in rows] == [
        ("c1", T(2024, 2, 1), 10.0), ("c1", T(2024, 2, 15), 12.5), ("c2", T(2024, 3, 1), 7.25)]


@pytest.mark.parametrize("fixture", ["events.csv.gz", "events_gz_no_suffix.bin"])
def test_gzip(engine, fixture):
    report = ingest_file(engine, FIXTURES / fixture, "gz")
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (3, 2, 1)
    q = quarantined_rows(engine, "gz")
    assert q.values.tolist() == [[4, "u2,2024-01-01 10:00:00,cart,i2,2", "duplicate",
                                  "exact duplicate of an earlier line (line 3)"]]


def test_blank_lines_do_not_shift_line_numbers(engine):
    report = ingest_file(engine, FIXTURES / "blank_lines.csv", "bl")
    assert (report.rows_read, report.rows_loaded) == (4, 2)
    q = quarantined_rows(engine, "bl")
    assert q[["line_no", "reason"]].values.tolist() == [[4, "too_many_fields"], [6, "duplicate"]]
    assert q["raw_line"][0] == "u1,2024-01-01 10:01:00,view,a,EXTRA"
    assert q["detail"][1] == "exact duplicate of an earlier line (line 5)"


def test_sessions_derived_by_thirty_minute_gap(engine):
    report = ingest_file(engine, FIXTURES / "sessions.csv", "s")
    assert report.sessions_derived is True
    got = [(r[0], r[1].strftime("%d %H:%M"), r[8]) for r in _events(engine, "s")]
    assert sorted(got) == sorted([
        ("u1", "01 10:00", "u1-1"), ("u1", "01 10:20", "u1-1"), ("u1", "01 10:50", "u1-1"),  # gaps 20, 30 min
        ("u1", "01 11:21", "u1-2"),                                                          # gap 31 min
        ("u2", "01 10:00", "u2-1"), ("u2", "02 10:00", "u2-2"),
    ])


def test_existing_name_is_refused_and_first_dataset_untouched(engine):
    ingest_file(engine, FIXTURES / "pipe.csv", "same")
    before = _counts(engine)
    with pytest.raises(DatasetExistsError, match="A dataset named 'same' exists already"):
        ingest_file(engine, FIXTURES / "semicolon.csv", "same")
    assert _counts(engine) == before


@pytest.mark.parametrize("name", [
    "x'; DROP TABLE cs_events; --",
    'Robert"); DELETE FROM cs_datasets; --',
    "semi;colon; 'quotes' \"double\" % _ \\ 100%",
])
def test_hostile_dataset_names_are_stored_as_given(engine, name):
    report = ingest_file(engine, FIXTURES / "pipe.csv", name)
    ds = store.get_dataset(engine, name)
    assert ds["name"] == name
    assert ds["rows_loaded"] == 3
    assert report.dataset == name
    assert _counts(engine) == (1, 3, 0)


@pytest.mark.parametrize("stop_at", [0.0, 0.05, 0.45, 0.6, 0.85, 0.95, 1.0])
def test_cancel_from_progress_leaves_nothing(engine, stop_at):
    seen = []

    def progress(fraction, message):
        seen.append(fraction)
        if fraction >= stop_at:
            raise IngestCancelled("cancelled by the analyst")

    with pytest.raises(IngestCancelled):
        ingest_file(engine, FIXTURES / "bad_values.csv", "c", progress=progress)
    assert _counts(engine) == (0, 0, 0)
    report = ingest_file(engine, FIXTURES / "bad_values.csv", "c")  # and the name is still free
    assert report.rows_loaded == 2


def test_progress_goes_from_zero_to_one(engine):
    seen: list[tuple[float, str]] = []
    ingest_file(engine, FIXTURES / "bad_values.csv", "p", progress=lambda f, m: seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert fractions == sorted(fractions)
    assert seen[-1][1] == "done: 2 rows loaded, 8 quarantined"


def test_report_and_mapping_are_stored_with_the_dataset(engine):
    report = ingest_file(engine, FIXTURES / "generic_mixed_case.csv", "stored")
    ds = store.get_dataset(engine, "stored")
    assert ds["report"] == report.to_dict()
    assert ds["report"]["first_event"] == "2024-03-01 10:00:00"
    assert ds["mapping"]["columns"]["user_id"] == "Customer"
    assert (ds["rows_read"], ds["rows_loaded"], ds["rows_quarantined"], ds["n_users"]) == (8, 8, 0, 3)
    assert ds["layout"] == "generic"


def test_remembered_mapping_is_reapplied(engine, tmp_path):
    # a headerless file whose columns cannot be guessed well: item first, then user, then a code
    text = "sku1,alice,2024-01-01 10:00:00,V\nsku2,bob,2024-01-01 11:00:00,B\n"
    first = tmp_path / "first.csv"
    first.write_text(text)
    sniffed = sniff(first, engine)
    assert sniffed.mapping.confident is False
    mapping = sniffed.mapping
    mapping.layout = "manual"
    mapping.columns.update(item_id="c0", user_id="c1", event_time="c2", event_type="c3")
    mapping.event_type_map = {"v": "view", "b": "purchase"}
    remember_mapping(engine, sniffed.signature, mapping)

    second = tmp_path / "second.csv"
    second.write_text("sku9,carol,2024-02-01 09:00:00,B\n")
    again = sniff(second, engine)
    assert again.mapping.confident is True
    assert again.mapping.layout == "manual"
    assert again.mapping.columns["user_id"] == "c1"
    assert any("remembered" in n for n in again.mapping.notes)
    report = ingest_file(engine, second, "second", mapping=again.mapping)
    assert report.events_by_type == {"purchase": 1}
    assert _events(engine, "second")[0][:4] == ("carol", T(2024, 2, 1, 9, 0), "purchase", "sku9")
    # remembering again replaces, not duplicates
    remember_mapping(engine, sniffed.signature, mapping)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(store.mappings)).scalar() == 1


def test_explicit_mapping_with_constant_event_type(engine, tmp_path):
    path = tmp_path / "visits.csv"
    path.write_text("who,when\nann,2024-01-01 10:00:00\nben,2024-01-01 10:30:00\n")
    mapping = sniff(path).mapping
    mapping.columns.update(user_id="who", event_time="when")
    mapping.constant_event_type = "view"
    report = ingest_file(engine, path, "visits", mapping=mapping)
    assert report.events_by_type == {"view": 2}
    assert report.users == 2


def test_mapping_with_unknown_column_is_refused(engine):
    mapping = sniff(FIXTURES / "pipe.csv").mapping
    mapping.columns["item_id"] = "product"
    with pytest.raises(SchemaError, match=r"item_id is mapped to column 'product', which is not in the file"):
        ingest_file(engine, FIXTURES / "pipe.csv", "m", mapping=mapping)
    assert _counts(engine) == (0, 0, 0)


def test_to_dict_is_json_safe(duck_engine):
    import json

    report = ingest_file(duck_engine, FIXTURES / "sessions.csv", "j")
    data = json.loads(json.dumps(report.to_dict()))
    for key in ("dataset", "layout", "rows_read", "rows_loaded", "rows_quarantined", "users", "events_by_type",
                "first_event", "last_event"):
        assert key in data
    assert data["last_event"] == "2024-01-02 10:00:00"


def test_hostile_column_names_and_quoted_fields(engine, tmp_path):
    path = tmp_path / "odd.csv"
    path.write_text(
        "\"us'er%s\",\"when\"\"; DROP TABLE cs_events; --\",event,item\n"
        "u1,2024-01-01 10:00:00,view,\"a, b \"\"quoted\"\"\"\n"
        ",2024-01-01 10:01:00,view,x\n"
        "u2,later,view,y\n"
    )
    mapping = sniff(path).mapping
    assert mapping.source_columns == ["us'er%s", 'when"; DROP TABLE cs_events; --', "event", "item"]
    mapping.columns.update(user_id="us'er%s", event_time='when"; DROP TABLE cs_events; --')
    mapping.time_format = "iso"
    report = ingest_file(engine, path, "odd", mapping=mapping)
    assert (report.rows_loaded, report.rows_quarantined) == (1, 2)
    assert _events(engine, "odd")[0][3] == 'a, b "quoted"'
    q = quarantined_rows(engine, "odd")
    assert q["detail"].tolist() == [
        "column \"us'er%s\" is empty; expected a user id",
        "column 'when\"; DROP TABLE cs_events; --': 'later' is not a time in the expected format (iso)",
    ]
    assert q["line_no"].tolist() == [3, 4]


def test_constant_event_type_wins_over_a_mapped_column(duck_engine):
    mapping = sniff(FIXTURES / "pipe.csv").mapping
    mapping.constant_event_type = "purchase"
    report = ingest_file(duck_engine, FIXTURES / "pipe.csv", "const", mapping=mapping)
    assert report.events_by_type == {"purchase": 3}


def test_a_quantity_that_is_no_whole_number_is_quarantined_not_rounded(engine, tmp_path):
    path = tmp_path / "qty.csv"
    path.write_text("user_id,event_time,event_type,quantity\nu1,2024-03-01 10:00:00,purchase,2\n"
                    "u1,2024-03-01 10:01:00,purchase,2.0\nu1,2024-03-01 10:02:00,purchase,1e1\n"
                    "u1,2024-03-01 10:03:00,purchase,2.5\nu1,2024-03-01 10:04:00,purchase,-1\n")
    report = ingest_file(engine, path, "qty")
    assert [r[7] for r in _events(engine, "qty")] == [2, 2, 10, -1]
    assert quarantined_rows(engine, "qty")[["line_no", "detail"]].values.tolist() == [
        [5, "column 'quantity': '2.5' is not a whole number; expected a quantity"]]
    assert report.rows_quarantined == 1


def _revenue(engine, name: str) -> float:
    from core.analysis import queries

    return queries.kpis(engine, store.get_dataset(engine, name)["dataset_id"])


def test_an_order_export_loads_as_purchases_whose_revenue_is_the_order_total(engine, tmp_path):
    import json

    path = tmp_path / "orders.csv"
    path.write_text("Order ID,Customer ID,Order Date,Order Total,Items\n1001,C-17,2024-03-01,59.90,3\n"
                    '1002,C-18,2024-03-02,$12.00,1\n1003,C-17,2024-03-09,"$1,204.50",12\n'
                    "1004,C-19,2024-03-10,10.00,0\n1005,C-19,2024-03-11,0.00,0\n")
    report = ingest_file(engine, path, "orders")
    assert (report.layout, report.rows_read, report.rows_loaded, report.quarantine_by_reason) == (
        "transactions", 5, 4, {"zero_quantity": 1})
    assert report.events_by_type == {"purchase": 4}
    rows = _events(engine, "orders")
    assert [(r[0], r[1], r[7], r[8]) for r in rows] == [
        ("C-17", T(2024, 3, 1), 3, "1001"), ("C-18", T(2024, 3, 2), 1, "1002"), ("C-17", T(2024, 3, 9), 12, "1003"),
        ("C-19", T(2024, 3, 11), 0, "1005")]
    assert [r[6] * r[7] for r in rows[:3]] == pytest.approx([59.90, 12.00, 1204.50])  # price x quantity: the total
    kpis = _revenue(engine, "orders")
    assert (kpis["orders"], kpis["revenue"]) == (4, pytest.approx(1276.40))  # an order of nothing for 0.00 is one
    assert quarantined_rows(engine, "orders")[["line_no", "detail"]].values.tolist() == [
        [5, "column 'Items' is 0 for the total '10.00' in column 'Order Total'; expected a quantity other than 0 "
            "(the price stored is the total / quantity)"]]
    assert "each order ('Order ID') is taken as a session" in report.notes
    assert ("the amounts in 'Order Total' are order totals, not unit prices: each row's revenue is its total; the "
            "price stored is the total / 'Items' (the average unit price)") in report.notes
    stored = json.loads(store.get_dataset(engine, "orders")["mapping_json"])
    assert stored["price_is"] == "order_total"


def test_a_shopify_order_export_with_spaced_utc_offsets_loads_in_utc(engine, tmp_path):
    path = tmp_path / "orders_export.csv"
    path.write_text("Name,Email,Financial Status,Paid at,Created at,Currency,Subtotal,Total,Lineitem quantity,"
                    "Lineitem name,Lineitem price\n"
                    "#1001,a@x.com,paid,2024-03-01 10:00:00 +0100,2024-03-01 09:58:00 +0100,EUR,10.00,12.50,1,Mug,10.00\n"
                    "#1002,b@x.com,paid,2024-03-02 11:00:00 -0500,2024-03-02 10:58:00 -05:00,EUR,20.00,22.50,2,Cup,"
                    "10.00\n")
    report = ingest_file(engine, path, "shopify")
    assert (report.rows_read, report.rows_loaded, report.events_by_type) == (2, 2, {"purchase": 2})
    rows = _events(engine, "shopify")
    assert [(r[0], r[1], r[8]) for r in rows] == [("a@x.com", T(2024, 3, 1, 8, 58), "#1001"),
                                                  ("b@x.com", T(2024, 3, 2, 15, 58), "#1002")]


STRIPE = ("id,Description,Created (UTC),Amount,Amount Refunded,Currency,Status,Customer ID,Customer Email\n"
          "ch_1,Order 1001,2024-03-01 10:05:12,41.00,0.00,usd,Paid,cus_P1,ann@example.com\n"
          "ch_2,Order 1002,2024-03-02 11:00:40,12.50,12.50,usd,Refunded,cus_P2,bo@example.com\n"
          "ch_3,Order 1003,2024-03-03 09:12:00,20.00,0.00,usd,Failed,cus_P2,bo@example.com\n"
          "ch_4,Order 1004,2024-03-04 16:30:00,30.00,10.00,usd,Partially Refunded,cus_P3,cy@example.com\n"
          "ch_5,Order 1005,2024-03-05 08:00:00,25.00,25.00,usd,Paid,cus_P3,cy@example.com\n"
          "ch_6,Order 1006,2024-03-06 12:00:00,18.00,0.00,usd,Uncaptured,cus_P4,di@example.com\n")


def test_a_stripe_payment_refunded_failed_or_refunded_in_full_is_no_purchase(engine, tmp_path):
    """Only payments whose money was kept are purchases: refunded and failed ones, and one whose Amount Refunded
    is its whole amount, are quarantined with their reason; a partial refund and an uncaptured payment load."""
    path = tmp_path / "unified_payments.csv"
    path.write_text(STRIPE)
    report = ingest_file(engine, path, "stripe")
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (6, 3, 3)
    assert report.quarantine_by_reason == {"not_a_purchase": 3}
    assert [(r[0], r[6], r[8]) for r in _events(engine, "stripe")] == [
        ("cus_P1", 41.0, "ch_1"), ("cus_P3", 30.0, "ch_4"), ("cus_P4", 18.0, "ch_6")]
    assert _revenue(engine, "stripe")["revenue"] == pytest.approx(89.0)
    assert quarantined_rows(engine, "stripe")[["line_no", "reason", "detail"]].values.tolist() == [
        [3, "not_a_purchase", "column 'Status' is 'Refunded'; only paid orders are purchases"],
        [4, "not_a_purchase", "column 'Status' is 'Failed'; only paid orders are purchases"],
        [6, "not_a_purchase", "column 'Amount Refunded' is '25.00', the whole amount in column 'Amount': the "
                              "payment was refunded in full"]]
    assert any(n.startswith("the order status is read from 'Status': a purchase whose status says no money was kept")
               for n in report.notes)
    assert ("the amount refunded is read from 'Amount Refunded': a payment whose refund is its whole amount in "
            "'Amount' is quarantined as not_a_purchase; a partial refund stays a purchase of the amount charged"
            ) in report.notes


def test_a_mapping_remembered_before_status_columns_were_read_takes_the_ones_found(engine, tmp_path):
    path = tmp_path / "unified_payments.csv"
    path.write_text(STRIPE)
    sniffed = sniff(path, engine)
    old = {k: v for k, v in sniffed.mapping.to_dict().items() if k not in ("status_column", "refund_column")}
    with engine.begin() as conn:  # as a store written before these fields existed holds it
        conn.execute(store.mappings.insert().values(signature=sniffed.signature, mapping_json=json.dumps(old),
                                                    updated_at=T(2024, 1, 1)))
    remembered = sniff(path, engine).mapping
    assert "mapping remembered from an earlier file with the same header" in remembered.notes
    assert (remembered.status_column, remembered.refund_column) == ("Status", "Amount Refunded")
    assert ingest_file(engine, path, "stripe", mapping=remembered).quarantine_by_reason == {"not_a_purchase": 3}
    remember_mapping(engine, sniffed.signature, replace(remembered, status_column=None, refund_column=None))
    assert sniff(path, engine).mapping.status_column is None  # unmapped by the analyst: stays so

def test_a_shopify_order_refunded_or_voided_is_no_purchase_on_any_of_its_lines(engine, tmp_path):
    """Shopify writes the Financial Status on an order's first line only: the order's other lines go with it."""
    path = tmp_path / "orders_export_1.csv"
    path.write_text(
        "Name,Email,Financial Status,Paid at,Total,Created at,Lineitem quantity,Lineitem name,Lineitem price,"
        "Lineitem sku,Refunded Amount\n"
        "#1001,ann@example.com,paid,2024-03-01 10:05:00,41.00,2024-03-01 10:00:00,2,Mug,12.50,MUG-1,0.00\n"
        "#1001,ann@example.com,,,,2024-03-01 10:00:00,1,Tea,16.00,TEA-9,\n"
        "#1002,bo@example.com,refunded,2024-03-02 11:05:00,28.50,2024-03-02 11:00:00,1,Mug,12.50,MUG-1,28.50\n"
        "#1002,bo@example.com,,,,2024-03-02 11:00:00,1,Tea,16.00,TEA-9,\n"
        "#1003,cy@example.com,voided,,12.50,2024-03-03 09:00:00,1,Mug,12.50,MUG-1,0.00\n"
        "#1004,di@example.com,partially_refunded,2024-03-04 12:05:00,28.50,2024-03-04 12:00:00,1,Mug,12.50,"
        "MUG-1,12.50\n"
        "#1004,di@example.com,,,,2024-03-04 12:00:00,1,Tea,16.00,TEA-9,\n"
        "#1005,ed@example.com,pending,,16.00,2024-03-05 08:00:00,1,Tea,16.00,TEA-9,0.00\n"
        "#1006,fay@example.com,authorized,,16.00,2024-03-06 08:00:00,1,Tea,16.00,TEA-9,0.00\n")
    report = ingest_file(engine, path, "shopify")
    assert (report.rows_read, report.rows_loaded, report.quarantine_by_reason) == (9, 6, {"not_a_purchase": 3})
    assert [(r[8], r[3]) for r in _events(engine, "shopify")] == [
        ("#1001", "MUG-1"), ("#1001", "TEA-9"), ("#1004", "MUG-1"), ("#1004", "TEA-9"), ("#1005", "TEA-9"),
        ("#1006", "TEA-9")]
    assert quarantined_rows(engine, "shopify")[["line_no", "detail"]].values.tolist() == [
        [4, "column 'Financial Status' is 'refunded'; only paid orders are purchases"],
        [5, "column 'Financial Status' is empty on this line and 'refunded' on another line of the order '#1002' in "
            "column 'Name'; only paid orders are purchases"],
        [6, "column 'Financial Status' is 'voided'; only paid orders are purchases"]]
    # the line's price is no order's amount: its Refunded Amount is not compared with it (#1004 keeps its mug)
    assert not any(n.startswith("the amount refunded is read from") for n in report.notes)


@pytest.mark.parametrize(("status", "kept"), [
    ("wc-completed", True), ("wc-processing", True), ("wc-on-hold", True), ("Pending payment", True),
    ("wc-cancelled", False), ("wc-refunded", False), ("Failed", False), ("Cancelled", False), ("Declined", False),
    ("VOIDED", False), ("canceled", False)])
def test_a_woocommerce_order_cancelled_refunded_or_failed_is_no_purchase(engine, tmp_path, status, kept):
    path = tmp_path / "woo.csv"
    path.write_text("Order Number,Order Status,Order Date,Email (Billing),Order Total Amount\n"
                    "1001,wc-completed,2024-03-01 10:00,ann@example.com,41.00\n"
                    f"1002,{status},2024-03-02 11:00,bo@example.com,12.50\n")
    report = ingest_file(engine, path, "woo")
    assert (report.rows_read, report.rows_loaded) == (2, 2 if kept else 1)
    assert [r[0] for r in _events(engine, "woo")] == ["ann@example.com", "bo@example.com"][:2 if kept else 1]
    if not kept:
        assert quarantined_rows(engine, "woo")[["line_no", "reason", "detail"]].values.tolist() == [
            [3, "not_a_purchase", f"column 'Order Status' is '{status}'; only paid orders are purchases"]]


def test_a_status_column_of_an_event_file_loses_no_rows(engine, tmp_path):
    """An event file's own status column (a view's, a wishlist's) is no order status: every row loads."""
    path = tmp_path / "events.csv"
    path.write_text("user_id,event_time,event_type,product_id,price,status\n"
                    "u1,2024-03-01 10:00:00,view,A,10.00,cancelled\n"
                    "u1,2024-03-01 10:01:00,purchase,A,10.00,refunded\n"
                    "u2,2024-03-01 11:00:00,cart,B,5.00,failed\n")
    report = ingest_file(engine, path, "events")
    assert (report.layout, report.rows_read, report.rows_loaded, report.rows_quarantined) == ("generic", 3, 3, 0)
    assert report.events_by_type == {"view": 1, "purchase": 1, "cart": 1}
    assert not any(n.startswith("the order status is read from") for n in report.notes)

def test_a_headerless_clv_transaction_file_loads_as_purchases(engine, tmp_path):
    path = tmp_path / "CDNOW_master.txt"
    path.write_text("   00001  19970101   1   11.77\n   00002  19970112   1   12.00\n   00002  19970112   5   77.00\n"
                    "   00003  19970102   2   20.76\n   00003  19970330   2  $20.76\n   00003  19971115   5   57.45\n")
    report = ingest_file(engine, path, "cdnow")
    assert (report.layout, report.rows_read, report.rows_loaded, report.users) == ("transactions", 6, 6, 3)
    rows = _events(engine, "cdnow")
    assert [(r[0], r[1], r[2], r[7]) for r in rows[:2]] == [
        ("00001", T(1997, 1, 1), "purchase", 1), ("00003", T(1997, 1, 2), "purchase", 2)]  # ids keep their zeros
    assert sum(r[6] * r[7] for r in rows) == pytest.approx(199.74)
    assert _revenue(engine, "cdnow")["revenue"] == pytest.approx(199.74)
    assert any(n.startswith("the amounts in 'c3' are order totals, not unit prices") for n in report.notes)


def test_a_price_kind_set_by_hand_is_what_the_load_applies(engine, tmp_path):
    path = tmp_path / "lines.csv"
    path.write_text("customer,date,item,qty,amount\nc1,2024-03-01,A,4,10.00\nc1,2024-03-02,B,2,3.00\n")
    mapping = sniff(path).mapping
    assert mapping.price_is == "line_total"
    mapping.price_is = "unit_price"  # the analyst knows better: the amount is each unit's
    report = ingest_file(engine, path, "units", mapping=mapping)
    assert [(r[6], r[7]) for r in _events(engine, "units")] == [(10.0, 4), (3.0, 2)]
    assert not any(n.startswith("the amounts in ") for n in report.notes)
    mapping.price_is = "cost"
    with pytest.raises(ParameterError, match=r"^price_is 'cost' is not supported: expected one of \['unit_price', "):
        ingest_file(engine, path, "bad", mapping=mapping)


KLAVIYO = ("Event Name,Timestamp,Email,Product ID,Product Name,Categories,$value,Quantity\n"
           "Viewed Product,2024-05-01 10:00:00,a@x.com,SKU1,Mug,Kitchen,12.00,\n"
           "Added to Cart,2024-05-01 10:02:00,a@x.com,SKU1,Mug,Kitchen,12.00,1\n"
           "Placed Order,2024-05-01 10:05:00,a@x.com,,,Kitchen,44.00,\n"
           "Ordered Product,2024-05-01 10:05:00,a@x.com,SKU1,Mug,Kitchen,24.00,2\n"
           "Ordered Product,2024-05-01 10:05:00,a@x.com,SKU2,Teapot,Kitchen,20.00,1\n")


def test_an_order_written_whole_and_line_by_line_counts_once(engine, tmp_path):
    """Klaviyo writes each order twice, a "Placed Order" for the whole of it and an "Ordered Product" per line:
    only the lines are purchases (each order's revenue once), the whole order is kept as given and reported."""
    path = tmp_path / "klaviyo_events.csv"
    path.write_text(KLAVIYO)
    mapping = sniff(path).mapping
    assert "placed order" not in mapping.event_type_map and mapping.event_type_map["ordered product"] == "purchase"
    assert any(n.startswith("orders come whole ('Placed Order') and line by line ('Ordered Product')")
               for n in mapping.notes)
    report = ingest_file(engine, path, "klaviyo")
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (5, 5, 0)
    assert report.events_by_type == {"view": 1, "cart": 1, "purchase": 2, "Placed Order": 1}
    assert report.unknown_event_types == {"Placed Order": 1}
    assert _revenue(engine, "klaviyo")["revenue"] == pytest.approx(44.0)  # the lines' 24 + 20, not 88
    whole_only = tmp_path / "orders.csv"  # with no lines beside them, the whole orders are the purchases
    whole_only.write_text("\n".join(line for line in KLAVIYO.splitlines() if "Ordered Product" not in line) + "\n")
    assert sniff(whole_only).mapping.event_type_map["placed order"] == "purchase"
