"""Excel workbooks (.xlsx) read as event files: the first worksheet, written out as a UTF-8 CSV.

UCI Online Retail is published as an .xlsx file, and analysts keep exports in Excel, so a
workbook is accepted wherever a CSV is: :func:`core.sniff.sniff` reads its first rows and
:func:`core.ingest.ingest_file` its whole first worksheet, each through :func:`to_csv` and
then the CSV path, so every check, the quarantine and the reconciliation are the same.

The sheet is read by calamine (``python-calamine``, Rust): 540,000 rows in about 3 s here,
where openpyxl's streaming reader took 41 s (measured on this machine; calamine holds the sheet
in memory, about 0.3 GB for those rows, and a sheet has at most 1,048,576). Each worksheet
row becomes one CSV line, so a quarantined row's line number is its row number in Excel;
line breaks inside a cell are read as spaces to keep it so. Cells are written as text the way
the sniffer reads them: times as ISO 8601 (``2010-12-01 08:26:00``), whole numbers without
``.0`` (Excel stores every number as a float: ``17850.0`` is the id ``17850``), other numbers
as their shortest exact decimal, and the cached value of a formula (its result, not its text).
Old .xls workbooks (a different, binary format) are refused by the sniffer as before.
"""
from __future__ import annotations

import csv
import datetime as dt
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.errors import SchemaError

#: rows between two progress reports of a conversion
PROGRESS_EVERY_ROWS = 50_000
#: the largest float that is still an exact whole number
_EXACT_INT = 2.0 ** 53


@dataclass(frozen=True)
class Converted:
    """What :func:`to_csv` read: the worksheet's name, the names of those it left, rows written."""

    sheet: str
    other_sheets: tuple[str, ...]
    rows: int  # worksheet rows written (empty ones as empty lines)
    complete: bool  # False when ``max_rows`` stopped it early

    def note(self) -> str:
        others = (f"; the other worksheets ({', '.join(repr(s) for s in self.other_sheets)}) are not read"
                  if self.other_sheets else "")
        return (f"an Excel workbook: its first worksheet {self.sheet!r} is read, row for row (line numbers are "
                f"its row numbers; times as written in Excel, line breaks in cells as spaces){others}")


def is_xlsx(path: Path) -> bool:
    """True when ``path`` is an Office Open XML workbook (.xlsx, .xlsm), whatever its name."""
    try:
        with open(path, "rb") as fh:
            if fh.read(4) != b"PK\x03\x04":
                return False
        with zipfile.ZipFile(path) as zf:
            return "xl/workbook.xml" in zf.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def to_csv(path: Path, out: Path, max_rows: int | None = None,
           progress: Callable[[int], None] | None = None) -> Converted:
    """Write the first visible worksheet of the workbook at ``path`` to ``out`` as a UTF-8 CSV.

    Name ``out`` as the workbook (in a folder of its own): whatever the CSV path then says about
    the file (a refusal, the quarantine's source) names the file the analyst uploaded.
    ``max_rows``: stop after that many rows (the sniffer's look at the head). ``progress(rows)``
    is called every :data:`PROGRESS_EVERY_ROWS` rows and may raise to stop the conversion.
    Raises :class:`SchemaError` naming the file when it cannot be read (a damaged or encrypted
    workbook).
    """
    from python_calamine import CalamineWorkbook, SheetTypeEnum, SheetVisibleEnum

    try:
        book = CalamineWorkbook.from_path(str(path))
        sheets = [m.name for m in book.sheets_metadata if m.typ == SheetTypeEnum.WorkSheet]
        shown = [m.name for m in book.sheets_metadata
                 if m.typ == SheetTypeEnum.WorkSheet and m.visible == SheetVisibleEnum.Visible] or sheets
        if not shown:
            raise SchemaError(f"{path.name} is an Excel workbook without a worksheet; expected a sheet of events")
        rows_of = book.get_sheet_by_name(shown[0]).iter_rows()
    except SchemaError:
        raise
    except Exception as exc:  # noqa: BLE001 - calamine raises its own kinds for a damaged or encrypted file
        raise SchemaError(f"{path.name} is an Excel workbook that could not be read ({type(exc).__name__}: "
                          f"{exc}); expected a readable .xlsx file, or save it as CSV (UTF-8) and upload that") from exc
    rows, width = 0, 0
    with open(out, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        for values in rows_of:  # from the sheet's first row, empty rows included
            if max_rows is not None and rows >= max_rows:
                return Converted(shown[0], tuple(shown[1:]), rows, complete=False)
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
    return Converted(shown[0], tuple(shown[1:]), rows, complete=True)


def _text(value) -> str:
    """A cell's value as the text a CSV export of it would hold."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < _EXACT_INT else repr(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value)
    text = str(value)
    return text.replace("\r\n", " ").replace("\r", " ").replace("\n", " ") if "\n" in text or "\r" in text else text
