"""Event tables that the CSV path cannot read as they are, written out as UTF-8 CSV: spreadsheets
(.xlsx, .xls, .ods), Parquet files, JSON and UTF-16 text.

UCI Online Retail is published as an .xlsx file, analysts keep exports in Excel, and warehouses
(BigQuery, Snowflake, Spark) export Parquet. Each is accepted wherever a CSV is, recognised by its
content whatever its name: :func:`core.ingest.sniff.sniff` reads its first rows and
:func:`core.ingest.load.ingest_file` all of it, each through :func:`to_csv` and then the CSV path, so
every check, the quarantine and the reconciliation are the same. One row becomes one CSV line,
so a quarantined row's line number is its row number (Excel's own; a Parquet file's row + 1 for
the header); line breaks inside a value are read as spaces to keep it so.

- **Spreadsheets** (calamine, ``python-calamine``, Rust: Excel's .xlsx and old .xls, OpenDocument's
  .ods): the first visible worksheet. 540,000 rows in
  about 3 s here, where openpyxl's streaming reader took 41 s (measured on this machine; calamine
  holds the sheet in memory: the conversion of those rows peaked at 0.46 GB, and a sheet has at
  most 1,048,576 rows).
  Cells are written as text the way the sniffer reads them: times as ISO 8601
  (``2010-12-01 08:26:00``), whole numbers without ``.0`` (Excel stores every number as a float:
  ``17850.0`` is the id ``17850``), other numbers as their shortest exact decimal, a formula as
  its cached result.
- **Parquet** (DuckDB's reader, streamed to CSV by ``COPY``): every column, times with a zone
  as UTC, a struct's fields as columns of their own named ``parent.field`` (GA4's ``device.category``),
  lists and maps as JSON text.
- **JSON** (an array of objects or one object per line, as Mixpanel's and Segment's raw exports and
  BigQuery's JSON export write them; gzip-compressed too): DuckDB's reader, then as Parquet: one row
  per object, nested objects as ``parent.field`` columns (``properties.distinct_id``), which the
  sniffer matches by their last part; a key first seen late in the file still gets its column. Every
  value is written as the file writes it, whatever the types around it: a text without its quotes, a
  number as its digits, a list or an object as JSON, which the load quarantines where one value belongs.
- **UTF-16 text** (Excel's "Unicode Text" export, Google Ads' and some BI tools' CSV downloads;
  gzip-compressed too): decoded and written out as UTF-8, line for line and byte for byte otherwise
  (delimiter, quotes and line endings as they were), so the CSV path reads it as any other text file.
"""
from __future__ import annotations

import codecs
import csv
import datetime as dt
import gzip
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.errors import CartsightError, ParameterError, SchemaError
from core.ingest.json_tables import (_CASE_TWINS_NOTE, _JSON_SAMPLE_OBJECTS, _as_written, _case_twins, _copy_flat,
                              _duck, _keys_beyond_sample, _literal, _mixed)

#: rows between two progress reports of a workbook's conversion
PROGRESS_EVERY_ROWS = 50_000
#: the largest float that is still an exact whole number
_EXACT_INT = 2.0 ** 53
_PARQUET_MAGIC = b"PAR1"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ODS_MIMETYPE = b"application/vnd.oasis.opendocument.spreadsheet"
_GZIP_MAGIC = b"\x1f\x8b"
#: the start of JSON holding objects: an array of them or the first of one per line
_JSON_START = re.compile(rb'^(\xef\xbb\xbf)?\s*(\[\s*)?\{\s*"[^"\n]{0,200}"\s*:')
#: UTF-16 text without a BOM: NUL bytes in over this share of one parity's bytes, under the other in the other
_UTF16_MIN_NUL_SHARE = 0.3
_UTF16_MAX_OTHER_SHARE = 0.05
#: characters decoded per write of a UTF-16 file's conversion
_UTF16_CHUNK_CHARS = 1 << 20
#: spreadsheet kinds read through calamine, as the analyst names them
SPREADSHEETS = {"xlsx": "an Excel workbook", "xls": "an Excel 97-2003 workbook (.xls)",
                "ods": "an OpenDocument spreadsheet (.ods)"}


@dataclass(frozen=True)
class Converted:
    """What :func:`to_csv` wrote: rows (the CSV's lines), whether all of them, and a note for the analyst."""

    rows: int
    complete: bool  # False when ``max_rows`` stopped it early
    note: str
    sheet: str | None = None  # the worksheet read, for a spreadsheet
    #: columns whose values may be a list or an object, written as JSON text (a JSON file's, a Parquet file's
    #: lists and maps): a row holding one where one value belongs is quarantined (:mod:`core.ingest.load`)
    nested: tuple[str, ...] = ()


def kind_of(path: Path) -> str | None:
    """What ``path`` is, whatever its name: a key of :data:`SPREADSHEETS`, ``"parquet"``, ``"json"`` or
    ``"utf-16"`` (UTF-16 text; these two gzip-compressed or not), or None (UTF-8 or 8-bit delimited text, or a
    file nothing here reads: the sniffer says what it is)."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(8)
        if magic.startswith(_PARQUET_MAGIC):
            return "parquet"
        if magic.startswith(b"PK\x03\x04"):
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
                if "xl/workbook.xml" in names:
                    return "xlsx"
                if "mimetype" in names and zf.read("mimetype").startswith(_ODS_MIMETYPE):
                    return "ods"
        if magic == _OLE_MAGIC and _opens_as_workbook(path):  # other old Office documents share the container
            return "xls"
        if magic.startswith((b"PK\x03\x04", _OLE_MAGIC)):
            return None  # another archive or Office document: the sniffer names it
        head, _ = _head(path)  # text: its first KiB, decompressed
        if _utf16_codec(head) is not None:  # binary files have NUL bytes too: asked after their magic numbers
            return "utf-16"
        if _JSON_START.match(head):
            return "json"
    except (OSError, zipfile.BadZipFile, KeyError):
        pass
    return None


def _opens_as_workbook(path: Path) -> bool:
    from python_calamine import CalamineWorkbook

    try:
        CalamineWorkbook.from_path(str(path)).close()
    except Exception:  # noqa: BLE001 - any failure: not a workbook calamine reads
        return False
    return True


def worksheets(path: Path) -> list[str]:
    """The worksheets of the spreadsheet at ``path`` an analyst can choose from: the visible ones (all of
    them when none is), in the workbook's order. The first is the one read by default."""
    from python_calamine import CalamineWorkbook

    try:
        return _worksheets(CalamineWorkbook.from_path(str(path)))
    except Exception:  # noqa: BLE001 - a damaged workbook: to_csv says why
        return []


def _worksheets(book) -> list[str]:
    from python_calamine import SheetTypeEnum, SheetVisibleEnum

    meta = [m for m in book.sheets_metadata if m.typ == SheetTypeEnum.WorkSheet]
    return [m.name for m in meta if m.visible == SheetVisibleEnum.Visible] or [m.name for m in meta]


def to_csv(path: Path, out: Path, max_rows: int | None = None,
           progress: Callable[[int], None] | None = None, kind: str | None = None,
           sheet: str | None = None) -> Converted:
    """Write the events of the workbook, Parquet file, JSON or UTF-16 text at ``path`` to ``out`` as UTF-8 CSV.

    Name ``out`` as ``path`` (in a folder of its own): whatever the CSV path then says about the
    file (a refusal, the quarantine's source) names the file the analyst uploaded.
    ``max_rows``: stop after that many rows (the sniffer's look at the head). ``progress(rows)``
    is called every :data:`PROGRESS_EVERY_ROWS` rows of a workbook or UTF-16 text and may raise to stop it (a
    Parquet file is copied in one statement). Raises :class:`SchemaError` naming the file when it
    cannot be read (a damaged or encrypted workbook, a damaged Parquet file). ``kind``: what
    :func:`kind_of` said of ``path``, when the caller has asked already (an .xls is opened to tell).
    ``sheet``: the worksheet of a spreadsheet to read (one of :func:`worksheets`); the first by default.
    """
    kind = kind or kind_of(path)
    if kind == "utf-16":
        return _utf16_to_csv(path, out, max_rows, progress)
    if kind in SPREADSHEETS:
        return _workbook_to_csv(path, out, SPREADSHEETS[kind], max_rows, progress, sheet)
    if kind == "parquet":
        return _parquet_to_csv(path, out, max_rows)
    if kind == "json":
        return _json_to_csv(path, out, max_rows)
    raise ValueError(f"{path} is neither a spreadsheet, a Parquet file, JSON nor UTF-16 text")


# --- Excel ---------------------------------------------------------------------------------------------


def _workbook_to_csv(path: Path, out: Path, what: str, max_rows: int | None,
                     progress: Callable[[int], None] | None, sheet: str | None) -> Converted:
    from python_calamine import CalamineWorkbook

    try:
        book = CalamineWorkbook.from_path(str(path))
        shown = _worksheets(book)
        if not shown:
            raise SchemaError(f"{path.name} is {what} without a worksheet; expected a sheet of events",
                              reason="no_data")
        if sheet is not None and sheet not in shown:
            raise ParameterError(f"{path.name} has no worksheet {sheet!r}; expected one of {shown}", parameter="sheet")
        chosen = sheet or shown[0]
        rows_of = book.get_sheet_by_name(chosen).iter_rows()
    except CartsightError:  # our own refusals (no worksheet, an unknown sheet name) pass as they are
        raise
    except Exception as exc:  # noqa: BLE001 - calamine raises its own kinds for a damaged or encrypted file
        raise SchemaError(f"{path.name} is {what} that could not be read ({type(exc).__name__}: {exc}); "
                          "expected a readable workbook, or save it as CSV (UTF-8) and upload that",
                          reason="unreadable_file") from exc
    others = [s for s in shown if s != chosen]
    note = (f"{what}: its {'first ' if chosen == shown[0] else ''}worksheet {chosen!r} is read, row for row (line "
            f"numbers are its row numbers; times as written in the sheet, line breaks in cells as spaces)"
            + (f"; the other worksheets ({', '.join(repr(s) for s in others)}) are not read: choose one on the "
               "Data page to read it instead" if others else ""))
    rows, width = 0, 0
    with open(out, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        for values in rows_of:  # from the sheet's first row, empty rows included
            if max_rows is not None and rows >= max_rows:
                return Converted(rows, False, note, chosen)
            cells = [_text(v) for v in values]
            while cells and not cells[-1]:  # a sheet's used range runs past some rows' data
                cells.pop()
            if cells:
                width = width or len(cells)  # the first row with data (the header) sets the width
                writer.writerow(cells + [""] * (width - len(cells)))
            else:
                fh.write("\n")  # an empty row stays a line, so that line numbers stay Excel's row numbers
            rows += 1
            if progress is not None and rows % PROGRESS_EVERY_ROWS == 0:
                progress(rows)
    return Converted(rows, True, note, chosen)


def _text(value) -> str:
    """A cell's value as the text a CSV export of it would hold."""
    kind = type(value)  # text and numbers first: they are nearly every cell (half the conversion's time)
    if kind is str:
        return value if "\n" not in value and "\r" not in value else (
            value.replace("\r\n", " ").replace("\r", " ").replace("\n", " "))
    if kind is float:
        return str(int(value)) if value.is_integer() and abs(value) < _EXACT_INT else repr(value)
    if value is None:
        return ""
    if kind is bool:
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value)
    return _text(str(value))


# --- Parquet -------------------------------------------------------------------------------------------


def _parquet_to_csv(path: Path, out: Path, max_rows: int | None) -> Converted:
    import duckdb

    with _duck() as con:
        try:
            n_rows = con.execute("SELECT count(*) FROM read_parquet(?)", [str(path)]).fetchone()[0]
        except duckdb.Error as exc:
            raise SchemaError(f"{path.name} is a Parquet file that could not be read ({str(exc).splitlines()[0]}); "
                              "expected a complete Parquet file of events", reason="unreadable_file") from exc
        written, said, nested = _copy_flat(con, f"read_parquet({_literal(path)})", out, max_rows,
                                           f"{path.name} is a Parquet file")
    return Converted(written, max_rows is None or n_rows <= max_rows - 1,
                     f"a Parquet file of {n_rows:,} rows: read as a table (line numbers are its row numbers + 1 "
                     "for the header; times with a zone as UTC, nested fields as columns named parent.field, lists "
                     "as JSON, line breaks in values as spaces)" + (f"; {said}" if said else ""), nested=tuple(nested))


# --- JSON ----------------------------------------------------------------------------------------------


def _json_to_csv(path: Path, out: Path, max_rows: int | None) -> Converted:
    """DuckDB's JSON reader finds the columns (nested objects, lists of items) from the first
    :data:`_JSON_SAMPLE_OBJECTS` objects; the file is then read with every value in them read as text
    (:func:`_as_written`), so each reaches the CSV as written: a text as its text, a number as its
    digits, a list or an object as JSON (:data:`Converted.nested`). Typed by the sample, a later value of
    another type would be changed without a word (``5.5`` where whole numbers were read as ``6``, a
    24-digit id as a rounded float) or written JSON-quoted (``"u-abc"`` among numbers).

    The reader drops keys that first appear after its sample (a price on the purchases of a file that
    starts with views): every object's keys are listed first (:func:`_keys_beyond_sample`, a fast pass
    with no typing); when some are new, or an object later has another shape (text where an object
    was), the columns are found from the whole file. The sniff and the load take the same decision,
    so both see the same columns."""
    import duckdb

    compression = "gzip" if _head(path)[1] else "none"

    def auto(whole: bool) -> str:
        sample = ", sample_size = -1" if whole else ""
        return f"read_json_auto({_literal(path)}, compression = '{compression}'{sample})"

    def copy(whole: bool, rel=None) -> tuple[int, str, list[str]]:
        """The rows written out, values as written, the columns found from the sample or the ``whole`` file
        (``rel``: that reader's relation when made already); every column may hold a list or an object (read as
        text, it is written as JSON)."""
        rel = rel or con.sql(f"SELECT * FROM {auto(whole)}")
        if _case_twins(rel.columns, rel.types):  # no column list can name both: typed from the sample, as found
            written, said, nested = _copy_flat(con, auto(whole), out, max_rows, f"{path.name} is JSON")
            return written, "; ".join(filter(None, [said, _CASE_TWINS_NOTE])), nested
        spec = ", ".join(f"{_literal(n)}: {_literal(_as_written(k))}" for n, k in zip(rel.columns, rel.types))
        source = f"read_json({_literal(path)}, compression = '{compression}', format = 'auto', columns = {{{spec}}})"
        return _copy_flat(con, source, out, max_rows, f"{path.name} is JSON", mixed=_mixed(rel), loose=True)

    with _duck() as con:
        try:
            sampled = con.sql(f"SELECT * FROM {auto(False)}")  # typed from the sample: read once, used twice
            late = _keys_beyond_sample(con, path, compression, sampled)
            whole = (f"keys first seen after the first {_JSON_SAMPLE_OBJECTS:,} objects ({', '.join(late[:5])}): "
                     "the whole file was read for its columns") if late else ""
            try:
                written, said, nested = copy(True) if late else copy(False, sampled)
            except duckdb.InvalidInputException:  # an object where text was, or text where an object was
                if late:
                    raise
                whole = (f"objects of another shape after the first {_JSON_SAMPLE_OBJECTS:,} objects (text where an "
                         "object or a list was): the whole file was read for its columns")
                written, said, nested = copy(True)
        except duckdb.Error as exc:
            raise SchemaError(f"{path.name} is JSON that could not be read as objects of events "
                              f"({str(exc).splitlines()[0]}); expected an array of objects or one object per "
                              "line", reason="unreadable_file") from exc
    said = "; ".join(filter(None, [said, whole]))
    return Converted(written, max_rows is None or written < max_rows,
                     "JSON: one row per object (line numbers are its object numbers + 1 for the header; nested "
                     "objects as columns named parent.field, values as written)" + (f"; {said}" if said else ""),
                     nested=tuple(nested))


# --- UTF-16 text ---------------------------------------------------------------------------------------


def _head(path: Path) -> tuple[bytes, bool]:
    """The first KiB of the file, decompressed when it is gzip-compressed, and whether it is."""
    with open(path, "rb") as fh:
        gzipped = fh.read(2) == _GZIP_MAGIC
    try:
        with (gzip.open if gzipped else open)(path, "rb") as fh:
            return fh.read(1024), gzipped
    except (OSError, EOFError):
        return b"", gzipped  # a damaged gzip file: the sniffer says so


def _utf16_codec(head: bytes) -> str | None:
    """The codec of UTF-16 text starting with ``head`` (``"utf-16"`` with a BOM, else by where its NUL bytes
    fall); None for any other text."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if len(head) < 8:
        return None
    half = len(head) / 2
    even, odd = head[0::2].count(0) / half, head[1::2].count(0) / half  # ASCII in UTF-16-LE: 'u\0s\0'
    if min(even, odd) >= _UTF16_MAX_OTHER_SHARE or max(even, odd) <= _UTF16_MIN_NUL_SHARE:
        return None
    return "utf-16-le" if odd > even else "utf-16-be"


def _utf16_to_csv(path: Path, out: Path, max_rows: int | None,
                  progress: Callable[[int], None] | None) -> Converted:
    head, gzipped = _head(path)
    codec = _utf16_codec(head)
    note = ("UTF-16 text (as Excel's 'Unicode Text' and some ad platforms' exports write it): read as UTF-8, "
            "line for line")
    rows, reported = 0, 0
    # newline="": line endings pass through as written, so the CSV path numbers lines as the file does
    with (gzip.open if gzipped else open)(path, "rt", encoding=codec, errors="replace", newline="") as src, \
            open(out, "w", encoding="utf-8", newline="") as dst:
        if max_rows is not None:
            for line in src:
                if rows >= max_rows:
                    return Converted(rows, False, note)
                dst.write(line)
                rows += 1
            return Converted(rows, True, note)
        while chunk := src.read(_UTF16_CHUNK_CHARS):
            dst.write(chunk)
            rows += chunk.count("\n") + chunk.count("\r") - chunk.count("\r\n")  # for progress only
            if progress is not None and rows - reported >= PROGRESS_EVERY_ROWS:
                progress(rows)
                reported = rows
    return Converted(rows, True, note)
