"""The one writer of every table file cartsight hands out: CSV with formula cells made inert, and Parquet.

A spreadsheet runs a CSV cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return as a formula (``=HYPERLINK("http://…")`` leaks data on a click, ``=1+1`` computes), and
shopper ids, categories, item ids and raw quarantined lines come from uploaded files. Every CSV
cartsight writes (forecasts, segments, exports, holdouts, quarantine, page downloads) goes
through :func:`csv_bytes` or :func:`write_csv`, which put a leading apostrophe before such a
cell, the mark spreadsheets read as "this is text" (OWASP, "CSV Injection"). Two kinds of cell
keep their sign, as they run nothing and an apostrophe would corrupt them: a negative number
(``-3``, ``-0.25``, ``-1e-3``) and a phone number in international form, ``+`` and 4 to 15
digits (E.164 allows 15; ``+4420…``, the clear phone column of an e-mail platform's file).
Anything else after a sign is escaped: ``-1+2``, and ``+1`` (three digits or fewer after
``+`` are a country code at most, never a phone number). Column names are escaped the same way.
Rows end in CRLF (RFC 4180), so that a cell holding a line break or a carriage return is quoted
and stays one cell.

Parquet (:func:`parquet_bytes`) is written as it is: it is a typed columnar format that
spreadsheets do not open as a table of formulas, and its readers (pandas, DuckDB, BigQuery,
Spark) take each text value as data, so an apostrophe would only corrupt the value.

cartsight writes no Excel workbook. A test scans the source for other table writers.
"""
from __future__ import annotations

import io
import os
import re
import uuid
from pathlib import Path

import pandas as pd

from core.errors import ParameterError

#: First characters that make a spreadsheet treat a cell as a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
CSV_MIME = "text/csv"
PARQUET_MIME = "application/vnd.apache.parquet"
_KEPT = re.compile(r"-(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|\+\d{4,15}")  # a negative number; an E.164 phone
#: RFC 4180's line end. With "\n" alone Python's csv module leaves a cell holding a bare carriage
#: return unquoted, and spreadsheets start a new row at it: "a\r=HYPERLINK(…)" would put a live
#: formula at the start of a row. With "\r\n" every cell holding either character is quoted.
_LINE_END = "\r\n"


def escape_cell(value):
    """``value`` made safe for a spreadsheet: text starting with = + - @ tab or CR gets a leading apostrophe.

    Numbers, text that is wholly a negative number (``-3``, ``-0.25``) and phone numbers in
    international form (``+442079460958``) are returned unchanged; ``+1`` and ``-1+2`` are escaped.
    """
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES) and not _KEPT.fullmatch(value):
        return "'" + value
    return value


def escape_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells and column names went through :func:`escape_cell`.

    Numeric, boolean and date columns are left as they are (their cells are numbers a
    spreadsheet cannot run); text, object and categorical columns are escaped cell by cell.
    """
    out = frame.copy()
    for i in range(out.shape[1]):
        series = out.iloc[:, i]
        if isinstance(series.dtype, pd.CategoricalDtype):
            series = series.astype(object)
        if series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
            out.isetitem(i, _escaped(series))
    out.columns = [escape_cell(c) for c in out.columns]
    return out


def _escaped(series: pd.Series) -> pd.Series:
    """:func:`escape_cell` on the cells starting with a formula character, found column-wise first."""
    try:
        suspect = series.str[:1].isin(FORMULA_PREFIXES)
    except AttributeError:  # an object column holding no text at all
        return series
    if not suspect.any():
        return series
    out = series.astype(object)
    out[suspect] = series[suspect].map(escape_cell)
    return out


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """``frame`` as UTF-8 CSV bytes (header, no index, CRLF line ends), cells escaped (:func:`escape_frame`)."""
    return escape_frame(frame).to_csv(index=False, lineterminator=_LINE_END).encode("utf-8")


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    """``frame`` as Parquet bytes, values as they are (see the module's note on why Parquet is not escaped)."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def check_out_path(path: str | Path, option: str = "--out") -> Path:
    """The output file ``path`` checked before any long work: its folder exists and takes a new file.

    Returns the path (``~`` expanded). Raises :class:`ParameterError` naming ``option``, the path
    and what is expected when the path is empty, is a folder, or its folder is missing, is not
    a folder or cannot be written (probed by creating and removing an empty file there).
    """
    if not str(path).strip():
        raise ParameterError(f"{option}: the path is empty; expected a file path such as results.csv.",
                             parameter=option)
    target = Path(path).expanduser()
    folder = target.parent
    if target.is_dir():
        raise ParameterError(f"{option} {target}: that is a folder; expected a file path such as "
                             f"{target / 'results.csv'}.", parameter=option)
    if not folder.exists():
        raise ParameterError(f"{option} {target}: the folder {folder} does not exist; create it first or choose "
                             "another path.", parameter=option)
    if not folder.is_dir():
        raise ParameterError(f"{option} {target}: {folder} is not a folder; expected a path inside a folder.",
                             parameter=option)
    probe = _partial_path(target)
    try:
        probe.open("x").close()
        probe.unlink()
    except OSError as exc:
        raise ParameterError(f"{option} {target}: the folder {folder} cannot be written ({exc.strerror or exc}); "
                             "choose a writable folder.", parameter=option) from exc
    return target


def write_csv(frame: pd.DataFrame, path: str | Path, option: str = "--out") -> Path:
    """Write ``frame`` to ``path`` as :func:`csv_bytes` would, whole or not at all; returns the path.

    The rows go to a hidden file beside ``path`` first, which then replaces ``path`` in one step:
    a full disk or a kill half way leaves any earlier file at ``path`` untouched and no half
    file. Errors: :class:`ParameterError` from :func:`check_out_path`, or when writing fails
    (the message names ``option``, the path and the reason).
    """
    target = check_out_path(path, option)
    partial = _partial_path(target)
    try:
        with partial.open("x", encoding="utf-8", newline="") as fh:
            escape_frame(frame).to_csv(fh, index=False, lineterminator=_LINE_END)
        os.replace(partial, target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise ParameterError(f"{option} {target}: the file could not be written ({exc.strerror or exc}); nothing "
                             "was written there.", parameter=option) from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return target


def _partial_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial")
