"""The file as DuckDB will read it: one byte scan, the rewrites it calls for, and a stream over its lines.

Before the load reads a file, one byte scan finds what DuckDB's strict reader cannot take as it
is: line endings mixed (CRLF, LF, lone CR), which are rewritten as LF into a temporary copy,
and NUL bytes, whose rows are quarantined (``nul_byte``; PostgreSQL text cannot hold them, and
a quarantined line shows each as U+2400). The same scan counts the file's lines
(:mod:`core.ingest.lines`); a line over ``config.MAX_LINE_BYTES`` is taken out of what DuckDB reads
(it drops one longer than its buffer without a reject). A Windows-1252 file is re-encoded as
UTF-8 and a whitespace-separated one written as a TSV, line for line, so that line numbers stay
those of the original file. Spreadsheets, Parquet, JSON and UTF-16 text are first written out as
CSV (:mod:`core.ingest.tabular`).

After the read, :func:`_scan_lines` streams the original file once more to give each
quarantined row its physical line number and text (:mod:`core.ingest.load`).
"""
from __future__ import annotations

import contextlib
import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from core import config
from core.ingest import tabular
from core.errors import SchemaError
from core.ingest.lines import LineStats, empty_long_lines
from core.ingest.sniff import FIELD_ALIASES, Mapping, decode_errors, open_text, unique_names
from core.ingest.delimited import C1_BYTES

Progress = Callable[[float, str], None]

#: bytes per read of the pre-load scan for line endings and NUL bytes
_SCAN_CHUNK_BYTES = 8 << 20
#: how a NUL byte is shown in a quarantined line (PostgreSQL text cannot hold NUL)
_NUL_SHOWN_AS = "\u2400"
#: the longest row DuckDB reads: the lines over config.MAX_LINE_BYTES are taken out before it reads, and a
#: rewrite for it (UTF-8 from Windows-1252, a TSV) can make a line up to three times longer; a row over this
#: is a quoted field running over many lines. Below DuckDB's 32 MiB read buffer, beyond which it drops a row.
_DUCKDB_MAX_LINE_BYTES = 4 * config.MAX_LINE_BYTES
#: characters of a file's line quoted in a message at most
_MAX_LINE_SHOWN = 200
#: source columns named in a message at most (files with 10,000 columns exist)
_MAX_COLUMNS_SHOWN = 20


def _tick(progress: Progress | None, fraction: float, message: str) -> None:
    if progress is not None:
        progress(fraction, message)


@contextlib.contextmanager
def _registered(duck, name: str, frame) -> Iterator[str]:
    """``frame`` (a DataFrame) as the view ``name`` of the DuckDB connection while the block runs."""
    duck.register(name, frame)
    try:
        yield name
    finally:
        duck.unregister(name)


def _check_required(mapping: Mapping) -> None:
    cols = mapping.columns
    for fld, what in (("user_id", "user"), ("event_time", "time")):
        if not cols.get(fld):
            raise SchemaError(
                f"no {what} column: expected one of {', '.join(FIELD_ALIASES[fld][:10])}... "
                f"Columns in file: {_shown_columns(mapping.source_columns)}", column=fld, reason="missing_column")
    if not cols.get("event_type") and not mapping.constant_event_type:
        raise SchemaError(
            f"no event type column: expected one of {', '.join(FIELD_ALIASES['event_type'])}, or one event "
            f"type set for every row. Columns in file: {_shown_columns(mapping.source_columns)}",
            column="event_type", reason="missing_column")


def _shown_columns(columns: list[str]) -> str:
    """The column list for a message: all of them, or the first few and how many more."""
    if len(columns) <= _MAX_COLUMNS_SHOWN:
        return str(columns)
    return f"{columns[:_MAX_COLUMNS_SHOWN]} and {len(columns) - _MAX_COLUMNS_SHOWN:,} more"


@dataclass(frozen=True)
class _ByteScan:
    """What one pass over the raw bytes found: line endings DuckDB cannot read as they are, NUL bytes, and
    in a file read as Latin-1 bytes 0x80-0x9F (it is Windows-1252: :data:`core.ingest.sniff.C1_BYTES`)."""

    mixed_newlines: bool
    has_nul: bool
    c1_bytes: bool = False
    #: the file's physical lines: how many, which are too long to load, whether the file holds quotes
    lines: LineStats = field(default_factory=lambda: LineStats(config.MAX_LINE_BYTES).finish())


_WINDOWS_1252_NOTE = ("bytes 0x80-0x9F past the first rows (curly quotes, dashes, the euro sign) show the file is "
                      "Windows-1252, not Latin-1: read as Windows-1252")


#: what the progress line calls a file being written out as CSV (core.ingest.tabular), by its kind
_CONVERTED = {"parquet": "the Parquet file", "json": "the JSON file", "utf-16": "the UTF-16 text"}


def _table_as_csv(path: Path, tmp: Path, progress: Progress | None,
                  sheet: str | None) -> tuple[Path, tabular.Converted | None, str | None]:
    """The file to load: ``path`` itself, or a spreadsheet, Parquet file, JSON or UTF-16 text written out as CSV
    (and what :func:`core.ingest.tabular.to_csv` said of it, and :func:`core.ingest.tabular.kind_of`)."""
    kind = tabular.kind_of(path)
    if kind is None:
        return path, None, None
    what = _CONVERTED.get(kind, "the spreadsheet")
    (tmp / "table").mkdir()
    out = tmp / "table" / path.name  # the CSV path's messages name the uploaded file
    _tick(progress, 0.0, f"reading {what}")
    converted = tabular.to_csv(path, out, kind=kind, sheet=sheet,
                               progress=lambda rows: _tick(progress, 0.0, f"reading {what}: {rows:,} rows"))
    return out, converted, kind


def _follow_json_columns(path: Path, mapping: Mapping) -> Mapping:
    """``mapping`` (made on the preview of a JSON file written out as CSV) with the columns the whole file has.

    A JSON file's columns can differ between its preview and its load: a value of another type late
    in the file makes the whole file typed anew (:mod:`core.ingest.tabular`), and an object that turns into
    text is then one column. When the count of columns differs, the mapped ones are found by name;
    one the whole table lacks is an error naming it. Reading them by their old positions would load
    the wrong values without a word. The same count keeps the preview's names, which the sniffer may
    have given by content (as it does for UCI Online Retail, whose header repeats ``InvoiceNo``).
    """
    with open(path, encoding="utf-8", newline="") as fh:
        for _ in range(mapping.skip_lines):
            fh.readline()
        names = unique_names(next(csv.reader(fh), []))
    if len(names) == len(mapping.source_columns):  # the same positions; the sniffer may have named them itself
        return mapping
    used = {**mapping.columns, "time of day": mapping.time_of_day, "category (fallback)": mapping.category_fallback,
            "status": mapping.status_column, "amount_refunded": mapping.refund_column}
    if gone := [(fld, c) for fld, c in used.items() if c and c not in names]:
        fld, col = gone[0]
        raise SchemaError(f"{path.name} read whole has no column {col!r}, which its preview had and the mapping "
                          f"uses for {fld}; columns: {_shown_columns(names)}. Map {fld} to one of them or to none, "
                          "then load again.", column=col, reason="missing_column")
    added = [n for n in names if n not in mapping.source_columns]
    return replace(mapping, source_columns=names, notes=[
        *mapping.notes, f"read whole, the file has other columns than its preview ({_shown_columns(added)} new): the "
        "mapped ones are read by name"])


def _scan_bytes(path: Path, mapping: Mapping) -> _ByteScan:
    """One pass over the (decompressed) file: does it mix line endings (LF, CRLF, lone CR), hold NUL bytes?

    DuckDB's strict reader refuses a file whose lines end in different ways (files joined from
    Windows and Unix exports; old Mac files end lines in CR alone), and its relaxed mode would
    silently drop extra fields; such files are rewritten with LF endings before the load. The same
    pass counts the lines (:class:`core.ingest.lines.LineStats`), so that the load can account for each.
    """
    has_lf = has_crlf = lone_cr = has_nul = False
    c1_bytes, latin1 = False, mapping.encoding == "latin-1"
    lines = LineStats(config.MAX_LINE_BYTES)
    carry = b""
    try:
        with _open_bytes(path, mapping.compression) as fh:
            while chunk := fh.read(_SCAN_CHUNK_BYTES):
                data = carry + chunk if carry else chunk
                carry = b"\r" if data.endswith(b"\r") else b""
                if carry:
                    data = data[:-1]
                lines.feed(data)
                has_nul = has_nul or b"\x00" in data
                c1_bytes = c1_bytes or (latin1 and C1_BYTES.search(data) is not None)
                if b"\r" in data:
                    n_crlf = data.count(b"\r\n")
                    has_crlf = has_crlf or n_crlf > 0
                    lone_cr = lone_cr or data.count(b"\r") > n_crlf
                    has_lf = has_lf or data.count(b"\n") > n_crlf
                elif not has_lf:
                    has_lf = b"\n" in data
            lone_cr = lone_cr or bool(carry)
            lines.feed(carry)
    except (OSError, EOFError) as exc:
        raise SchemaError(f"{path.name} could not be read to the end ({exc}); expected a complete file "
                          f"(a cut-off download or a damaged .gz file?)", reason="unreadable_file") from exc
    return _ByteScan(mixed_newlines=lone_cr or (has_crlf and has_lf), has_nul=has_nul, c1_bytes=c1_bytes,
                     lines=lines.finish())


def _open_bytes(path: Path, compression: str | None):
    import gzip

    return gzip.open(path, "rb") if compression == "gzip" else open(path, "rb")


@dataclass(frozen=True)
class _Source:
    """The file DuckDB reads (``path``, ``delimiter``, ``encoding``, ``compression``) and the file whose
    physical lines the quarantine numbers and quotes (``lines_*``: the original, or its LF rewrite); the
    lines too long to load, left out of both (line number -> first characters, length in bytes); and how
    many lines the rewrite for DuckDB emptied (a whitespace-separated file's lines of spaces)."""

    path: Path
    delimiter: str
    encoding: str
    compression: str | None
    lines_path: Path
    lines_encoding: str
    lines_compression: str | None
    long_lines: dict[int, tuple[str, int]] = field(default_factory=dict)
    emptied: int = 0


def _normalise_newlines(path: Path, compression: str | None, tmp: Path) -> Path:
    """The file rewritten with every line ending (CRLF, lone CR) as LF, decompressed, bytes otherwise as given."""
    out = tmp / "newlines.csv"
    carry = b""
    with _open_bytes(path, compression) as src, open(out, "wb") as dst:
        while chunk := src.read(_SCAN_CHUNK_BYTES):
            data = carry + chunk if carry else chunk
            carry = b"\r" if data.endswith(b"\r") else b""
            if carry:
                data = data[:-1]
            dst.write(data.replace(b"\r\n", b"\n").replace(b"\r", b"\n"))
        if carry:
            dst.write(b"\n")
    return out


def _prepare_source(path: Path, mapping: Mapping, tmp: Path, scan: _ByteScan) -> _Source:
    """What DuckDB reads: the file itself, or a copy without the lines too long to load, its LF rewrite (mixed
    line endings), its UTF-8 rewrite (Windows-1252, which DuckDB does not read), or a TSV (whitespace-separated)."""
    lines_path, compression, long_lines = path, mapping.compression, {}
    if scan.lines.long:
        long_lines = _empty_long_lines(path, mapping, tmp / "short-lines.csv", scan)
        lines_path, compression = tmp / "short-lines.csv", None
    if scan.mixed_newlines:
        lines_path, compression = _normalise_newlines(lines_path, compression, tmp), None
    source = _source_for_duckdb(lines_path, compression, mapping, tmp)
    return replace(source, long_lines=long_lines)


def _empty_long_lines(path: Path, mapping: Mapping, out: Path, scan: _ByteScan) -> dict[int, tuple[str, int]]:
    """Write the file to ``out`` with the lines over :data:`core.config.MAX_LINE_BYTES` emptied: DuckDB skips a
    line longer than its buffer without a word, and one shorter it keeps whole in memory. Returns what
    :func:`core.ingest.lines.empty_long_lines` returns."""
    with _open_bytes(path, mapping.compression) as src:
        return empty_long_lines(src, out, scan.lines.long, _MAX_LINE_SHOWN, mapping.encoding,
                                decode_errors(mapping.encoding))


def _source_for_duckdb(lines_path: Path, compression: str | None, mapping: Mapping, tmp: Path) -> _Source:
    """The :class:`_Source` for the file at ``lines_path``: as it is, transcoded to UTF-8 or to a TSV."""
    if mapping.delimiter != " " and mapping.encoding == "cp1252":
        out = tmp / "utf8.csv"
        with _open_bytes(lines_path, compression) as src, open(out, "wb") as dst:
            while chunk := src.read(_SCAN_CHUNK_BYTES):  # one byte is one character: chunks cut no character
                dst.write(chunk.decode("cp1252", errors=decode_errors("cp1252")).encode("utf-8"))
        return _Source(out, mapping.delimiter, "utf-8", None, lines_path, mapping.encoding, compression)
    if mapping.delimiter != " ":
        return _Source(lines_path, mapping.delimiter, mapping.encoding, compression, lines_path, mapping.encoding,
                       compression)
    out = tmp / "transcoded.tsv"
    text_mapping = replace(mapping, compression=compression)
    emptied = 0
    # one streaming pass, line for line, so line numbers stay those of the original file
    with open_text(lines_path, text_mapping) as src, open(out, "w", encoding="utf-8", newline="") as dst:
        writer = csv.writer(dst, delimiter="\t", lineterminator="\n")
        for line in src:
            fields = line.split()
            if fields:
                writer.writerow(fields)
            else:
                emptied += bool(line.strip("\r\n"))
                dst.write("\n")
    return _Source(out, "\t", "utf-8", None, lines_path, mapping.encoding, compression, emptied=emptied)


@dataclass
class _LineMap:
    """What :func:`_scan_lines` found, every number a row number as DuckDB counts rows (see there)."""

    blanks: list[int] = field(default_factory=list)
    raws: dict[int, str] = field(default_factory=dict)
    texts: dict[int, str] = field(default_factory=dict)
    #: (row number, physical line - row number from that row on), where a row over several lines shifts them
    shifts: list[tuple[int, int]] = field(default_factory=list)
    #: physical number -> row number of the lines too long to load
    long_rows: dict[int, int] = field(default_factory=dict)


def _scan_lines(source: _Source, header_lines: int, rejected: set[int], wanted: set[int], whole: set[int],
                emptied: set[int], quoted: bool, spaces_blank: bool) -> _LineMap:
    """One stream over the original file: numbers of its empty rows, the text of the staged rows ``wanted``
    (0-based staged row numbers, counted as DuckDB does: header, blank and rejected rows skipped), the text of
    the rejected rows ``whole``, and the rows of the lines too long to load (``emptied``, physical numbers).

    Rows are numbered as DuckDB numbers them: a row is a line, or with ``quoted`` (the file has a quoted field
    running over several lines) the lines such a field covers; ``shifts`` turns row numbers into line numbers.
    ``spaces_blank``: a line of spaces is empty (a whitespace-separated file's, which DuckDB reads as a TSV).
    """
    found = _LineMap()
    rn = row = delta = 0
    for line_no, parts in _rows_of(source, quoted):
        row += 1
        if line_no - row != delta:
            delta = line_no - row
            found.shifts.append((row, delta))
        if row <= header_lines:
            continue
        if line_no in emptied:
            found.long_rows[line_no] = row
        elif row in rejected:
            if row in whole:
                found.texts[row] = _line_text(parts, source.lines_encoding)
        elif not (parts[0].strip() if spaces_blank else parts[0].strip(b"\r\n" if not quoted else "\r\n")):
            found.blanks.append(row)
        else:
            if rn in wanted:
                found.raws[rn] = _line_text(parts, source.lines_encoding)
            rn += 1
    return found


def _rows_of(source: _Source, quoted: bool) -> Iterator[tuple[int, list]]:
    """(number of its first line, its lines) of each row of the file: a line as bytes, or with ``quoted``, the
    decoded lines that Python's csv module reads as one row (a quote opens a field only at its start, as in
    DuckDB's reader)."""
    if not quoted:
        with _open_bytes(source.lines_path, source.lines_compression) as fh:
            yield from ((n, [line]) for n, line in enumerate(fh, 1))
        return
    enc, errors = source.lines_encoding, decode_errors(source.lines_encoding)
    if source.lines_compression == "gzip":
        import gzip

        fh = gzip.open(source.lines_path, "rt", encoding=enc, errors=errors, newline="")
    else:
        fh = open(source.lines_path, encoding=enc, errors=errors, newline="")
    pending: list[str] = []

    def lines() -> Iterator[str]:
        for line in fh:
            pending.append(line)
            yield line

    csv.field_size_limit(max(csv.field_size_limit(), _DUCKDB_MAX_LINE_BYTES))
    start = 1
    with fh:
        for _ in csv.reader(lines(), delimiter=source.delimiter):
            yield start, pending[:]
            start += len(pending)
            pending.clear()
        if pending:
            yield start, pending


def _line_text(parts: list, encoding: str) -> str:
    """The text of a row's lines (bytes, or text already decoded), its last line break dropped."""
    if isinstance(parts[0], bytes):
        text = b"".join(parts).rstrip(b"\r\n").decode(encoding, errors=decode_errors(encoding))
    else:
        text = "".join(parts).rstrip("\r\n")
    return text.replace("\x00", _NUL_SHOWN_AS)
