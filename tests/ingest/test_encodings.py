"""Text encodings analysts' files come in: Windows-1252 (Excel's "CSV" on a Western Windows) and UTF-16
(Excel's "Unicode Text", ad platforms' downloads), besides UTF-8 and Latin-1 (tests/ingest/test_ingest.py).

Each loads with its characters as written, exact counts, and quarantined lines numbered and quoted
as in the file; on DuckDB and PostgreSQL (the ``engine`` fixture).
"""
from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import sqlalchemy as sa

from core import store
from core.ingest.load import ingest_file
from core.ingest.quarantine import quarantined_rows
from core.ingest.sniff import sniff

ROOT = Path(__file__).resolve().parents[2]
HEADER = "user_id,event_time,event_type,product_id,category,brand,price"
#: characters Windows-1252 writes in bytes 0x80-0x9F (Latin-1's unused control range)
WINDOWS_ONLY = ["Men’s shoes", "Café – décor", "Toys™", "Gift card €25"]


def _rows(n: int, categories: list[str]) -> list[str]:
    return [f"u{i % 7},2024-03-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:00,view,p{i % 13},"
            f"{categories[i % len(categories)]},acme,{i % 50}.99" for i in range(n)]


def _text(lines: list[str], newline: str = "\n") -> str:
    return newline.join([HEADER, *lines]) + newline


def _categories(engine, name: str) -> set[str]:
    did = store.get_dataset(engine, name)["dataset_id"]
    e = store.events
    with engine.connect() as conn:
        return set(conn.execute(sa.select(e.c.category).distinct().where(e.c.dataset_id == did)).scalars())


def test_windows_1252_keeps_curly_quotes_dashes_euro_and_its_unassigned_bytes(engine, tmp_path):
    path = tmp_path / "excel.csv"
    lines = _rows(40, WINDOWS_ONLY)
    lines.append("u1,not a time,view,p1,Men’s shoes,acme,3.50")  # a bad row is quoted as written
    data = _text(lines, "\r\n").encode("cp1252").replace(b"Toys\x99", b"Toys\x99\x81", 1)  # 0x81: unassigned
    path.write_bytes(data)
    sniffed = sniff(path)
    assert sniffed.mapping.encoding == "cp1252"
    assert "Men’s shoes" in sniffed.preview.to_string()
    report = ingest_file(engine, path, "win")
    assert (report.rows_read, report.rows_loaded) == (41, 40)
    assert _categories(engine, "win") == {"Men’s shoes", "Café – décor", "Toys™", "Toys™\x81",  # kept as Windows does
                                          "Gift card €25"}
    q = quarantined_rows(engine, "win")
    assert q[["line_no", "raw_line", "reason"]].values.tolist() == [
        [42, "u1,not a time,view,p1,Men’s shoes,acme,3.50", "unparseable_time"]]


def test_latin_1_head_with_windows_1252_bytes_later_is_read_as_windows_1252(engine, tmp_path):
    path = tmp_path / "late.csv"
    head = _rows(6000, ["Café", "Crème brûlée"])  # over the sniff window, Latin-1 and Windows-1252 alike
    late = ["u3,2024-03-09 10:00:00,view,p1,Men’s shoes,acme,2.00", "u3,oops,view,p1,Gift card €25,acme,2.00"]
    path.write_bytes(_text(head + late).encode("cp1252"))
    assert sniff(path).mapping.encoding == "latin-1"
    report = ingest_file(engine, path, "late")
    assert (report.rows_read, report.rows_loaded) == (6002, 6001)
    assert any("Windows-1252" in n for n in report.notes), report.notes
    assert _categories(engine, "late") == {"Café", "Crème brûlée", "Men’s shoes"}
    q = quarantined_rows(engine, "late")
    assert q[["line_no", "raw_line"]].values.tolist() == [[6003, "u3,oops,view,p1,Gift card €25,acme,2.00"]]


def test_latin_1_without_windows_bytes_stays_latin_1(duck_engine, tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(_text(_rows(20, ["Café", "Crème"])).encode("latin-1"))
    assert sniff(path).mapping.encoding == "latin-1"
    report = ingest_file(duck_engine, path, "latin")
    assert report.rows_loaded == 20 and not any("Windows-1252" in n for n in report.notes)
    assert _categories(duck_engine, "latin") == {"Café", "Crème"}


def _utf16_tsv(codec: str, gzipped: bool = False):
    def build(lines: list[str]) -> bytes:
        text = _text(lines, "\r\n").replace(",", "\t")
        data = text.encode(codec)
        return gzip.compress(data) if gzipped else data
    return build


UTF16 = [
    ("unicode.txt", _utf16_tsv("utf-16")),  # Excel's "Unicode Text": a BOM, little-endian, tabs, CRLF
    ("le.csv", _utf16_tsv("utf-16-le")),  # no BOM: told by where the NUL bytes fall
    ("be.csv", _utf16_tsv("utf-16-be")),
    ("report.csv.gz", _utf16_tsv("utf-16", gzipped=True)),
]


@pytest.mark.parametrize(("name", "build"), UTF16, ids=[u[0] for u in UTF16])
def test_utf16_text_loads_with_its_line_numbers(engine, tmp_path, name, build):
    path = tmp_path / name
    lines = _rows(30, ["Łódź deals", "Toys™", "Zoë’s picks"])
    lines.insert(10, "u1\tyesterday\tview\tp1\tToys™\tacme\t1.00".replace("\t", ","))
    path.write_bytes(build(lines))
    sniffed = sniff(path)
    assert sniffed.mapping.delimiter == "\t" and sniffed.mapping.columns["category"] == "category"
    assert sniffed.mapping.notes[0].startswith("UTF-16 text")
    report = ingest_file(engine, path, "u16")
    assert (report.rows_read, report.rows_loaded) == (31, 30)
    assert report.notes[0].startswith("UTF-16 text")
    assert _categories(engine, "u16") == {"Łódź deals", "Toys™", "Zoë’s picks"}
    q = quarantined_rows(engine, "u16")
    assert q[["line_no", "raw_line", "reason"]].values.tolist() == [
        [12, "u1\tyesterday\tview\tp1\tToys™\tacme\t1.00", "unparseable_time"]]


def test_a_line_not_in_utf8_is_quarantined_and_quoted_readably(duck_engine, tmp_path):
    path = tmp_path / "mixed.csv"
    good = _text(_rows(10, ["Zoë’s picks"])).encode("utf-8")
    path.write_bytes(good + "u2,2024-03-05 10:00:00,view,p1,Café,acme,1.00\n".encode("latin-1"))
    report = ingest_file(duck_engine, path, "mixed")
    assert (report.rows_read, report.rows_loaded, report.quarantine_by_reason) == (11, 10, {"unreadable_row": 1})
    q = quarantined_rows(duck_engine, "mixed")
    assert q["line_no"].tolist() == [12]
    assert q["raw_line"][0] == "u2,2024-03-05 10:00:00,view,p1,Caf\ufffd,acme,1.00"  # DuckDB's own copy lost the comma
    assert "not utf-8" in q["detail"][0]


def test_data_page_loads_a_utf16_upload(monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    from tests.e2e_support import APPTEST_TIMEOUT_S, isolated_store, run_until

    url = isolated_store(monkeypatch, tmp_path)
    at = AppTest.from_file(str(ROOT / "pages" / "data.py"), default_timeout=APPTEST_TIMEOUT_S).run()
    data = _utf16_tsv("utf-16")(_rows(12, ["Toys™"]))
    at.file_uploader[0].set_value(("Unicode export.txt", data, "text/plain")).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    shown = [c.value.replace("\\", "") for c in at.caption]
    assert any(c.startswith("• UTF-16 text") for c in shown), shown
    assert any("Encoding: **UTF-8**" in m.value.replace("\\", "") for m in at.markdown)  # its UTF-8 copy is read
    at.button(key="data_load").click().run()
    run_until(at, lambda: any(m.label == "Rows loaded" for m in at.metric) or bool(at.error))
    assert not at.error, [e.value for e in at.error]
    assert {m.label: m.value for m in at.metric}["Rows loaded"] == "12"
    engine = store.make_engine(url)
    assert _categories(engine, store.list_datasets(engine)[0]["name"]) == {"Toys™"}
    engine.dispose()
