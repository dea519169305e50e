"""Generators of hostile and broken event files, each built the way real files go wrong.

Every builder writes its file under a folder the caller gives (a pytest ``tmp_path``) and
returns the path; nothing here is committed. Expected outcomes live in
``tests/ingest/test_hostile_input.py`` beside the assertions, so that a reader sees file and verdict
together. Rows follow the REES46 layout (the project's reference layout) unless a case needs
another shape.
"""
from __future__ import annotations

import csv
import gzip
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

REES46_HEADER = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
REES46_COLUMNS = REES46_HEADER.split(",")


def rees46_row(n: int, *, time: str = "2019-10-01 00:00:00 UTC", event: str = "view", item: str | None = None,
               category_id: str = "2053013552326770905", category: str = "appliances.water_heater",
               brand: str = "aqua", price: str = "33.20", user: str | None = None,
               session: str | None = None) -> list[str]:
    """One REES46 row as its fields; ``n`` makes the item, user and session distinct."""
    return [time, event, item or str(3_900_000 + n), category_id, category, brand, price,
            user or str(500_000_000 + n), session or f"s-{n:06d}"]


def write_csv(path: Path, rows: list[list[str]], header: list[str] | None = None, *, newline: str = "\n") -> Path:
    """Write ``rows`` (quoted where needed, as Python's csv module does) and return ``path``."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator=newline)
    if header is not None:
        writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8", newline="")
    return path


def csv_line(fields: list[str]) -> str:
    """The text of one CSV line (without its line ending), quoted as the csv module writes it."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(fields)
    return buf.getvalue()


# --- the 1 GB+ file -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BigFile:
    """A generated REES46 file and what an exact count of it gives.

    Block ``k`` of ``rows_per_block`` rows is one template with the block number written
    into every user id and session, so users differ between blocks; times run through
    October 2019 (one hour per block). Planted in the first block only: ``duplicates`` exact
    repeats of its first row, ``bad_prices`` rows with a non-numeric price, and at the end
    of the file one line cut off mid-row (no final newline), as a download that stopped.
    """

    path: Path
    size_bytes: int
    blocks: int
    rows_per_block: int
    duplicates: int
    bad_prices: int

    @property
    def rows_read(self) -> int:
        """Data lines in the file (header excluded), the cut-off last line included."""
        return self.blocks * self.rows_per_block + self.duplicates + self.bad_prices + 1

    @property
    def rows_quarantined(self) -> int:
        return self.duplicates + self.bad_prices + 1

    @property
    def rows_loaded(self) -> int:
        return self.rows_read - self.rows_quarantined

    @property
    def users(self) -> int:
        return self.blocks * self.users_per_block

    users_per_block: int = 100

    @property
    def purchases(self) -> int:
        return self.blocks * (self.rows_per_block // 10)


_EVENTS = ("view",) * 7 + ("cart", "remove_from_cart", "purchase")
_BRANDS = ("samsung", "apple", "xiaomi", "huawei", "lucente", "", "sony", "bosch", "lg", "acer")
_CATEGORIES = ("electronics.smartphone", "appliances.kitchen.washer", "", "computers.notebook",
               "apparel.shoes", "furniture.bedroom.bed", "electronics.audio.headphone", "", "auto.accessories.player",
               "construction.tools.drill")


def _block_template(rows_per_block: int, users_per_block: int) -> bytes:
    """One block of REES46 rows with ``@@@@@@`` where the block number goes and ``DD HH`` for its hour."""
    lines = []
    for j in range(rows_per_block):
        u = j % users_per_block
        minute, second = divmod(j * 3600 // rows_per_block, 60)
        lines.append(
            f"2019-10-DD HH:{minute:02d}:{second:02d} UTC,{_EVENTS[j % 10]},{1_000_000 + j * 7 % 50_000},"
            f"{2053013552326770905 + j % 97},{_CATEGORIES[j % 10]},{_BRANDS[(j // 10) % 10]},"
            f"{(j * 37 % 100_000) / 100:.2f},5@@@@@@{u:03d},@@@@@@-{u:03d}-aaaaaaaa-bbbb-cccc-dddd\n")
    return "".join(lines).encode("ascii")


def write_big_rees46(folder: Path, min_bytes: int = 1_000_000_000, rows_per_block: int = 2_000,
                     users_per_block: int = 100) -> BigFile:
    """Write a REES46 file of at least ``min_bytes`` quickly (one template, a few replaces per block)."""
    template = _block_template(rows_per_block, users_per_block)
    first_row = template.split(b"\n", 1)[0]
    path = folder / "rees46-big.csv"
    duplicates, bad_prices = 3, 2
    written = 0
    k = 0
    with open(path, "wb", buffering=8 * 1024 * 1024) as out:
        written += out.write(REES46_HEADER.encode() + b"\n")
        while written < min_bytes or k == 0:
            day, hour = divmod(k % (30 * 24), 24)
            block = template.replace(b"@@@@@@", b"%06d" % k).replace(b"DD HH", b"%02d %02d" % (day + 1, hour))
            written += out.write(block)
            if k == 0:
                row = first_row.replace(b"@@@@@@", b"000000").replace(b"DD HH", b"01 00")
                written += out.write((row + b"\n") * duplicates)
                for i in range(bad_prices):
                    fields = row.split(b",")
                    fields[6] = b"n/a"
                    fields[7] = b"9%05d" % i  # a user of its own, so the row is no duplicate
                    written += out.write(b",".join(fields) + b"\n")
            k += 1
        written += out.write(b"2019-10-31 23:59:59 UTC,view,1000001,2053013552326770905,electronics.smartphone,"
                             b"samsung,130.76,5")  # cut off mid-row, no final newline
    return BigFile(path=path, size_bytes=written, blocks=k, rows_per_block=rows_per_block,
                   duplicates=duplicates, bad_prices=bad_prices, users_per_block=users_per_block)


# --- small hostile files -------------------------------------------------------------------------------------


def xlsx_bytes(rows: list[list[str]]) -> bytes:
    """A minimal but real Office Open XML workbook (what Excel writes), holding ``rows`` as inline strings."""
    def cell(ref: str, value: str) -> str:
        text = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'

    def col(i: int) -> str:
        name = ""
        i += 1
        while i:
            i, r = divmod(i - 1, 26)
            name = chr(65 + r) + name
        return name

    sheet_rows = "".join(
        f'<row r="{r + 1}">' + "".join(cell(f"{col(c)}{r + 1}", v) for c, v in enumerate(row)) + "</row>"
        for r, row in enumerate(rows))
    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    rel_ns = 'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'
    files = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            '<Override PartName="/xl/worksheets/sheet1.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
            '</Types>'),
        "_rels/.rels": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" '
            'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
            'Target="xl/workbook.xml"/></Relationships>'),
        "xl/workbook.xml": (
            f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><workbook {ns} {rel_ns}>'
            '<sheets><sheet name="events" sheetId="1" r:id="rId1"/></sheets></workbook>'),
        "xl/_rels/workbook.xml.rels": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" '
            'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
            'Target="worksheets/sheet1.xml"/></Relationships>'),
        "xl/worksheets/sheet1.xml": (
            f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet {ns}>'
            f'<sheetData>{sheet_rows}</sheetData></worksheet>'),
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return buf.getvalue()


def gzip_bytes(text: str) -> bytes:
    """``text`` as UTF-8, gzip-compressed (as ``gzip events.csv`` writes it)."""
    return gzip.compress(text.encode("utf-8"))


def rees46_text(rows: list[list[str]], newline: str = "\n") -> str:
    """A REES46 file's text: the header, then ``rows`` (each a list of fields), each line ending in ``newline``."""
    return "".join(csv_line(r) + newline for r in [REES46_COLUMNS, *rows])


def wide_file(folder: Path, n_columns: int = 10_000) -> Path:
    """A generic event file with ``n_columns`` columns: three named ones, then ``x0``, ``x1``, ...

    Lines 2-3 are good, line 4 repeats line 3, line 5 lacks its last field.
    """
    extra = [f"x{i}" for i in range(n_columns - 3)]
    values = [f"v{i}" for i in range(n_columns - 3)]
    rows = [["u1", "2024-01-01 10:00:00", "view", *values], ["u2", "2024-01-01 10:05:00", "cart", *values]]
    lines = [["user_id", "event_time", "event_type", *extra], *rows, rows[1], ["u3", "2024-01-01 10:06:00", "view",
                                                                              *values[:-1]]]
    path = folder / "wide.csv"
    path.write_text("".join(csv_line(r) + "\n" for r in lines), encoding="utf-8")
    return path


#: the 1 MB cases: a property blob of this many characters, a junk line of this many bytes
ONE_MB = 1_000_000


def long_line_file(folder: Path) -> Path:
    """Events with a 1 MB JSON ``properties`` value (a column not loaded) on line 2, a 1 MB line of junk
    without a delimiter on line 3, and a short row on line 4."""
    blob = '{"note": "' + "a" * (ONE_MB - 12) + '"}'
    rows = [["user_id", "event_time", "event_type", "properties"], ["u1", "2024-01-01 10:00:00", "view", blob]]
    text = "".join(csv_line(r) + "\n" for r in rows) + "x" * ONE_MB + "\n" + "u2,2024-01-01 10:01:00,purchase,{}\n"
    path = folder / "long-line.csv"
    path.write_text(text, encoding="utf-8")
    return path


#: a field longer than DuckDB's 32 MiB read buffer, as in a REES46 file whose brand held a pasted blob
BUFFER_BUSTING_FIELD = 34_000_000


def long_field_file(folder: Path, data_row: int, field_bytes: int = BUFFER_BUSTING_FIELD, rows: int = 10,
                    final_newline: bool = True) -> tuple[Path, str]:
    """REES46 rows 1..``rows`` whose data row ``data_row`` (1-based, so on line ``data_row + 1``) has a brand of
    ``field_bytes`` letters; returns the path and that line's text."""
    fields = [rees46_row(n) for n in range(1, rows + 1)]
    fields[data_row - 1][5] = "b" * field_bytes
    lines = [csv_line(r) for r in [REES46_COLUMNS, *fields]]
    path = folder / "long-field.csv"
    path.write_text("\n".join(lines) + ("\n" if final_newline else ""), encoding="utf-8")
    return path, lines[data_row]


def quoted_multiline_file(folder: Path, delimiter: str = ",") -> Path:
    """A REES46 file (any delimiter) whose rows 2 and 9 hold a quoted category running over three lines, with
    ragged rows, an empty line, a repeat and a bad price after them. Lines, as an editor numbers them:

    1 header; 2 row 1; 3-5 row 20 (multi-line); 6 empty; 7 row 2; 8 three fields; 9 row 3; 10 row 3 again;
    11 row 22 with price 'x'; 12-14 row 23 (multi-line) with an eleventh field; 15 row 4; 16 four fields; 17 row 5.
    """
    def line(fields: list[str]) -> str:
        buf = io.StringIO()  # a line terminator of its own makes the writer quote the fields that hold one
        csv.writer(buf, delimiter=delimiter, lineterminator="\n").writerow(fields)
        return buf.getvalue()[:-1]

    multi = "multi\nline\ncategory"
    rows = [
        REES46_COLUMNS, rees46_row(1), rees46_row(20, category=multi), None, rees46_row(2), ["a", "b", "c"],
        rees46_row(3), rees46_row(3), rees46_row(22, price="x"), rees46_row(23, category=multi) + ["x", "y"],
        rees46_row(4), rees46_row(6)[:4], rees46_row(5),
    ]
    text = "".join((line(r) if r is not None else "") + "\n" for r in rows)
    path = folder / "multiline.csv"
    path.write_text(text, encoding="utf-8", newline="")
    return path


def nul_file(folder: Path) -> Path:
    """REES46 rows with NUL bytes as damaged files hold them: one inside a brand (line 3), and a run of
    zeros where a crash left a block unwritten (line 5)."""
    text = rees46_text([rees46_row(1), rees46_row(2, brand="aq\x00ua"), rees46_row(3)])
    text += "\x00" * 512 + "\n" + csv_line(rees46_row(4)) + "\n"
    path = folder / "nul.csv"
    path.write_bytes(text.encode("utf-8"))
    return path


def mixed_newlines_file(folder: Path, compress: bool = False) -> Path:
    """A REES46 file whose lines end in CRLF, LF and lone CR (files joined from Windows, Unix and old Mac
    exports): line 6 repeats line 3, line 7 has a time in no format, the last line has no line ending."""
    rows = [rees46_row(n) for n in range(1, 6)]
    parts = [
        (REES46_COLUMNS, "\r\n"), (rows[0], "\n"), (rows[1], "\r\n"), (rows[2], "\r"), (rows[3], "\n"),
        (rows[1], "\r"), (rees46_row(9, time="yesterday"), "\n"), (rows[4], ""),
    ]
    data = "".join(csv_line(r) + end for r, end in parts).encode("utf-8")
    path = folder / ("mixed.csv.gz" if compress else "mixed.csv")
    path.write_bytes(gzip.compress(data) if compress else data)
    return path
