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
_SNIFF_BYTES = 8192


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
    """The output file ``path`` checked before any long work; returns it (``~`` expanded).

    A regular file's folder must exist and take a new file (probed by creating and removing an
    empty one); an existing file there is replaced only when it holds text, never a database,
    workbook or other binary file (a mistyped ``--out cartsight.duckdb`` would destroy the
    store). A device or pipe (``/dev/stdout``, a named pipe) must be writable. Raises
    :class:`ParameterError` naming ``option``, the path, what was found and what is expected.
    """
    if not str(path).strip():
        raise ParameterError(f"{option}: the path is empty; expected a file path such as results.csv.",
                             parameter=option)
    target = Path(path).expanduser()
    if target.is_dir():
        _refuse(option, target, f"that is a folder; expected a file path such as {target / 'results.csv'}")
    if target.exists() and not target.is_file():
        if not os.access(target, os.W_OK):
            _refuse(option, target, "it cannot be written; choose a writable path")
        return target
    folder = target.parent
    if not folder.exists():
        _refuse(option, target, f"the folder {folder} does not exist; create it first or choose another path")
    if not folder.is_dir():
        _refuse(option, target, f"{folder} is not a folder; expected a path inside a folder")
    if target.is_file() and _holds_binary(target):
        _refuse(option, target, "that file holds binary data (a database, workbook or archive), not a CSV; it is "
                                "left as it is: choose another path")
    probe = _partial_path(target)
    try:
        probe.open("x").close()
        probe.unlink()
    except OSError as exc:
        _refuse(option, target, f"the folder {folder} cannot be written ({exc.strerror or exc}); choose a writable "
                                "folder", exc)
    return target


def _refuse(option: str, target: Path, reason: str, cause: BaseException | None = None):
    raise ParameterError(f"{option} {target}: {reason}.", parameter=option) from cause


def _holds_binary(path: Path) -> bool:
    """True when the file's first block has a NUL byte, which no CSV holds and every database file does."""
    try:
        with path.open("rb") as fh:
            return b"\0" in fh.read(_SNIFF_BYTES)
    except OSError:
        return False  # unreadable: the write itself will say why


def write_csv(frame: pd.DataFrame, path: str | Path, option: str = "--out") -> Path:
    """Write ``frame`` to ``path`` as :func:`csv_bytes` would, whole or not at all; returns the path.

    Errors as :func:`write_file`.
    """
    return write_file(path, lambda fh: _write_rows(frame, fh), option)


def write_bytes(data: bytes, path: str | Path, option: str = "--out") -> Path:
    """Write bytes already rendered by this module (:func:`csv_bytes`, :func:`parquet_bytes`) to ``path``."""
    return write_file(path, lambda fh: fh.write(data), option, binary=True)


def write_file(path: str | Path, write, option: str = "--out", *, binary: bool = False) -> Path:
    """Call ``write(file)`` on a file that becomes ``path`` whole or not at all; returns the path.

    The content goes to a hidden file beside ``path`` first, which then replaces ``path`` in one
    step: a full disk or a kill half way leaves any earlier file at ``path`` untouched and no half
    file. A device or pipe (``/dev/stdout``) is written directly. Errors: :class:`ParameterError`
    from :func:`check_out_path`, or when writing fails (naming ``option``, the path and the reason).
    """
    target = check_out_path(path, option)
    mode, text = ("b", {}) if binary else ("", {"encoding": "utf-8", "newline": ""})
    if target.exists() and not target.is_file():
        try:
            with target.open("w" + mode, **text) as fh:
                write(fh)
        except OSError as exc:
            _refuse(option, target, f"it could not be written ({exc.strerror or exc})", exc)
        return target
    partial = _partial_path(target)
    try:
        with partial.open("x" + mode, **text) as fh:
            write(fh)
        os.replace(partial, target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        _refuse(option, target, f"the file could not be written ({exc.strerror or exc}); nothing was written there",
                exc)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return target


def _write_rows(frame: pd.DataFrame, fh) -> None:
    escape_frame(frame).to_csv(fh, index=False, lineterminator=_LINE_END)


def _partial_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial")
