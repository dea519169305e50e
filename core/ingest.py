"""Load an event file into the store as one named dataset: validate, quarantine, reconcile.

DuckDB does the heavy work. One SQL pass reads the file with ``read_csv`` (every field
as text, streamed), converts and checks every field, and gives each bad row a reason code
and a detail naming the column, the value and what was expected; lines that do not split
into the expected fields land in DuckDB's reject table with their line number and text.
Exact repeats of an earlier line are found among rows sharing a hash of their fields.
Good rows go to ``cs_events``, bad ones to ``cs_quarantine`` with their physical line
number. Everything (dataset row, events, quarantine) is written in one transaction of the
store: a failure or a cancel leaves nothing behind, and ``rows_read == rows_loaded +
rows_quarantined`` is checked before it commits.

Before that pass, one byte scan of the file finds what DuckDB's strict reader cannot take as it
is: line endings mixed (CRLF, LF, lone CR), which are rewritten as LF into a temporary copy,
and NUL bytes, whose rows are quarantined (``nul_byte``; PostgreSQL text cannot hold them, and
a quarantined line shows each as U+2400). A quote opened and never closed on its line makes
DuckDB read the following lines as one field: such a file is refused with the line to fix,
since those rows could not be counted.

The same scan counts the file's lines (:mod:`core.lines`). A line over ``config.MAX_LINE_BYTES``
is taken out of what DuckDB reads (it drops one longer than its buffer without a reject) and
quarantined as ``line_too_long`` with its first characters. After the read, the rows, the rejected
lines and the empty lines must cover every line of the file, or the load is refused: DuckDB loses
lines without a word after a quote left open in a large file. A quoted field may run over several
lines: such a row is one row read, and the quarantine still gives each row the line it starts on.

On a DuckDB store the SQL runs in the store's own connection; on PostgreSQL an in-memory
DuckDB reads and validates, and the results are streamed into PostgreSQL with ``COPY``.
"""
from __future__ import annotations

import contextlib
import csv
import datetime as dt
import json
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from core import config, derived, store, tabular
from core.dataset_names import check_dataset_name
from core.errors import DatasetExistsError, SchemaError
from core.lines import LineStats, count_empty_lines, empty_long_lines
from core.sniff import (C1_BYTES, DELIMITER_NAMES, FIELD_ALIASES, MAX_ZONE_OFFSET_MINUTES, price_pattern,
                        PRICE_NOTE_START, STATUS_NOTE_STARTS, TIME_ZONE_SUFFIX, UNPAID_STATUSES, ZONE_EXAMPLES,
                        Mapping, decode_errors, open_text, price_note, sniff, status_notes, unique_names)

Progress = Callable[[float, str], None]

#: reason code -> what the analyst reads in the quarantine summary
REASONS = {
    "truncated_row": "line has fewer fields than the header (cut off)",
    "too_many_fields": "line has more fields than the header",
    "unreadable_row": "line cannot be split into fields",
    "line_too_long": "line longer than a line may be (its first characters kept)",
    "nul_byte": "a loaded value holds NUL bytes (a damaged file)",
    "nested_value": "a list or an object where one value belongs",
    "missing_user": "no user id",
    "missing_time": "no time",
    "unparseable_time": "time in no readable format",
    "unknown_time_zone": "time ends in a time zone not known",
    "time_out_of_range": "time outside the plausible range",
    "missing_event_type": "no event type",
    "non_numeric_price": "price is not a number",
    "negative_price": "price is negative",
    "price_too_high": "price above the plausible maximum",
    "non_numeric_quantity": "quantity is not a whole number",
    "zero_quantity": "a total with a quantity of 0 (no unit price gives it)",
    "duplicate": "exact duplicate of an earlier line",
    "not_a_purchase": "the order or payment was refunded, voided, cancelled or failed: no money was kept",
}
_EVENT_COLUMNS = ("user_id", "event_time", "event_type", "item_id", "category", "brand", "price", "quantity",
                  "session_id")
_COPY_CHUNK_BYTES = 1 << 20
#: Seconds a load that lost a race for its name waits for the winner's commit (see _lost_name_race).
_NAME_RACE_WAIT_S = 120.0
#: memory of the in-memory DuckDB that validates a load for PostgreSQL; beyond it DuckDB spills to disk
_STAGING_MEMORY_LIMIT = "2GB"
_MIN_TIME = "1971-01-01"
_MAX_TIME = "2100-01-01"
#: bytes per read of the pre-load scan for line endings and NUL bytes
_SCAN_CHUNK_BYTES = 8 << 20
#: how a NUL byte is shown in a quarantined line (PostgreSQL text cannot hold NUL)
_NUL_SHOWN_AS = "\u2400"
#: largest magnitude of microseconds since 1970 that DuckDB's TIMESTAMP and BIGINT hold
_MAX_EPOCH_US = 9.2e18
#: times of day after a date read by its pattern (MM-DD-YYYY, DD-MM-YYYY, YYYYMMDD): 24-hour, then 12-hour
#: with AM/PM (US exports)
_CLOCKS = ("%H:%M", "%H:%M:%S", "%I:%M %p", "%I:%M:%S %p")
#: microseconds per unit of each Unix time format
_UNIX_SCALE = {"unix_s": 1_000_000, "unix_ms": 1_000, "unix_us": 1}
#: files with more columns than this carry their raw fields through the checks as one list
_WIDE_COLUMNS = 64
#: characters of a rejected line DuckDB keeps in its reject table
_REJECT_TEXT_CAP = 10_000
#: the longest row DuckDB reads: the lines over config.MAX_LINE_BYTES are taken out before it reads, and a
#: rewrite for it (UTF-8 from Windows-1252, a TSV) can make a line up to three times longer; a row over this
#: is a quoted field running over many lines. Below DuckDB's 32 MiB read buffer, beyond which it drops a row.
_DUCKDB_MAX_LINE_BYTES = 4 * config.MAX_LINE_BYTES
#: characters of a file's line quoted in a message at most
_MAX_LINE_SHOWN = 200
#: source columns named in a message at most (files with 10,000 columns exist)
_MAX_COLUMNS_SHOWN = 20


@dataclass
class IngestReport:
    """What a load did: the reconciliation (read = loaded + quarantined) and what was loaded."""

    dataset: str
    dataset_id: int
    layout: str
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    users: int
    events_by_type: dict[str, int]
    unknown_event_types: dict[str, int]
    first_event: dt.datetime | None
    last_event: dt.datetime | None
    quarantine_by_reason: dict[str, int]
    sessions_derived: bool
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    source: str = ""

    def to_dict(self) -> dict:
        """JSON-safe dict: times as ISO text, every other field as is."""
        out = asdict(self)
        for key in ("first_event", "last_event"):
            out[key] = out[key].isoformat(sep=" ") if out[key] is not None else None
        return out


# --- public API ------------------------------------------------------------------------------------------


def ingest_file(engine: sa.Engine, path: str | Path, name: str, mapping: Mapping | None = None,
                progress: Progress | None = None) -> IngestReport:
    """Load the event file at ``path`` as a new dataset called ``name``.

    The file is delimited text (optionally gzip'd), or a spreadsheet (.xlsx, .xls, .ods) or a
    Parquet file, recognised by content and written out as CSV first (:mod:`core.tabular`).
    ``mapping`` defaults to :func:`core.sniff.sniff`'s guess (a remembered mapping for the
    same header when there is one). ``progress(fraction, message)`` is called at each stage
    (reading, validating, loading, done) and may raise :class:`IngestCancelled` to cancel.

    Returns the :class:`IngestReport`, also stored as the dataset's ``report_json``.
    Raises :class:`SchemaError` (its ``reason`` says which) when the mapping lacks a required column,
    when the file cannot be read to its end (a cut-off .gz) or has a quote that swallows later lines, or
    when nothing could be loaded (empty, header only, binary, every row bad), :class:`ParameterError` when
    ``name`` is no usable dataset name (:func:`core.dataset_names.check_dataset_name`) or an option of the
    mapping holds a value ingest cannot use (:meth:`core.sniff.Mapping.validate`),
    :class:`DatasetExistsError` when ``name`` is taken, :class:`IngestCancelled` when
    cancelled. In every error case nothing is written.
    """
    started = time.perf_counter()
    check_dataset_name(name)  # before the file is read: a refused name costs nothing
    path = Path(path)
    _tick(progress, 0.0, "reading the file's layout")
    with tempfile.TemporaryDirectory(prefix=store.temp_prefix("ingest")) as tmp:
        data_path, converted, kind = _table_as_csv(path, Path(tmp), progress, mapping.sheet if mapping else None)
        table_note = converted.note if converted else None
        if mapping is None:
            mapping = sniff(data_path, engine).mapping
        elif kind == "json":  # the only kind whose columns the whole file can change (see the function)
            mapping = _follow_json_columns(data_path, mapping)
        mapping.validate()
        _check_required(mapping)
        if table_note and table_note not in mapping.notes:
            mapping = replace(mapping, notes=[table_note, *mapping.notes])
        scan = _scan_bytes(data_path, mapping)
        if scan.c1_bytes:
            mapping = replace(mapping, encoding="cp1252", notes=[*mapping.notes, _WINDOWS_1252_NOTE])
        source = _prepare_source(data_path, mapping, Path(tmp), scan)
        job = _Job(mapping, source, Path(tmp), progress, has_nul=scan.has_nul,
                   nested=converted.nested if converted else (), lines=scan.lines)
        job.started = started
        if store.is_duckdb(engine):
            with _named_load(engine, name) as conn:
                report = job.run(conn, store.driver_connection(conn), name, path, native_store=True)
        else:
            import duckdb

            duck = duckdb.connect(":memory:")
            try:
                duck.execute(f"SET temp_directory = {_sql_literal(str(Path(tmp) / 'spill'))}")
                duck.execute(f"SET memory_limit = {_sql_literal(_STAGING_MEMORY_LIMIT)}")
                with _named_load(engine, name) as conn:
                    report = job.run(conn, duck, name, path, native_store=False)
            finally:
                duck.close()
            store.analyze(engine, store.events, store.quarantine, store.session_days, store.price_edges)
    return report


def remember_mapping(engine: sa.Engine, signature: str, mapping: Mapping) -> None:
    """Store ``mapping`` for files whose header hashes to ``signature`` (replacing an older one)."""
    mapping.validate()
    payload = json.dumps(mapping.to_dict())
    with engine.begin() as conn:
        conn.execute(store.mappings.delete().where(store.mappings.c.signature == signature))
        conn.execute(store.mappings.insert().values(signature=signature, mapping_json=payload,
                                                    updated_at=dt.datetime.now(dt.UTC).replace(tzinfo=None)))


def quarantined_rows(engine: sa.Engine, dataset: str, limit: int | None = None) -> pd.DataFrame:
    """The quarantined rows of ``dataset`` in file order: line_no, raw_line, reason, detail.

    Raises :class:`core.errors.DatasetNotFoundError` when there is no such dataset.
    """
    did = store.get_dataset(engine, dataset)["dataset_id"]
    q = store.quarantine
    query = (sa.select(q.c.line_no, q.c.raw_line, q.c.reason, q.c.detail)
             .where(q.c.dataset_id == did).order_by(q.c.line_no))
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return pd.DataFrame(rows, columns=["line_no", "raw_line", "reason", "detail"])


# --- preparation ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _named_load(engine: sa.Engine, name: str) -> Iterator[sa.Connection]:
    """The load's transaction, ``name`` checked free at its start.

    Two loads of one name at once (two analysts, the app and the CLI) both find it free; the
    store's unique name lets one commit and the other fail at its insert (PostgreSQL) or its
    commit (DuckDB) with a driver error, rolled back. That loss is turned into the
    :class:`DatasetExistsError` an analyst reads, never a database error.
    """
    try:
        with engine.begin() as conn:
            store.check_name_free(conn, name)
            yield conn
    except sa.exc.DBAPIError as exc:
        if _lost_name_race(engine, name, exc):
            raise DatasetExistsError(
                f"A dataset named {name!r} was saved by another load while this one ran: nothing of this "
                f"file was kept; load it again under another name."
            ) from exc
        raise


def _lost_name_race(engine: sa.Engine, name: str, exc: sa.exc.DBAPIError) -> bool:
    """True when ``exc`` is a unique-key violation and ``name`` now belongs to a committed dataset.

    DuckDB refuses the name as soon as the other load has inserted it, before that load commits:
    the other load's commit is waited for (up to ``_NAME_RACE_WAIT_S``), so that a loser is told
    the name is taken rather than shown a driver error.
    """
    text = str(exc).lower()
    if not (isinstance(exc, sa.exc.IntegrityError) or "duplicate key" in text or "unique constraint" in text):
        return False
    deadline = time.monotonic() + _NAME_RACE_WAIT_S
    while True:
        with engine.connect() as conn:
            taken = conn.execute(sa.select(store.datasets.c.dataset_id).where(store.datasets.c.name == name)).first()
        if taken is not None or time.monotonic() > deadline:
            return taken is not None
        time.sleep(0.1)


def _tick(progress: Progress | None, fraction: float, message: str) -> None:
    if progress is not None:
        progress(fraction, message)


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
    in a file read as Latin-1 bytes 0x80-0x9F (it is Windows-1252: :data:`core.sniff.C1_BYTES`)."""

    mixed_newlines: bool
    has_nul: bool
    c1_bytes: bool = False
    #: the file's physical lines: how many, which are too long to load, whether the file holds quotes
    lines: LineStats = field(default_factory=lambda: LineStats(config.MAX_LINE_BYTES).finish())


_WINDOWS_1252_NOTE = ("bytes 0x80-0x9F past the first rows (curly quotes, dashes, the euro sign) show the file is "
                      "Windows-1252, not Latin-1: read as Windows-1252")


#: what the progress line calls a file being written out as CSV (core.tabular), by its kind
_CONVERTED = {"parquet": "the Parquet file", "json": "the JSON file", "utf-16": "the UTF-16 text"}


def _table_as_csv(path: Path, tmp: Path, progress: Progress | None,
                  sheet: str | None) -> tuple[Path, tabular.Converted | None, str | None]:
    """The file to load: ``path`` itself, or a spreadsheet, Parquet file, JSON or UTF-16 text written out as CSV
    (and what :func:`core.tabular.to_csv` said of it, and :func:`core.tabular.kind_of`)."""
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
    in the file makes the whole file typed anew (:mod:`core.tabular`), and an object that turns into
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
    pass counts the lines (:class:`core.lines.LineStats`), so that the load can account for each.
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
    :func:`core.lines.empty_long_lines` returns."""
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


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _patterns(dates: list[str]) -> str:
    """A DuckDB list of strptime patterns: each date with each clock (a 24-hour one first: "1:05 PM" fails it
    and reads on), then the date alone."""
    return f"[{', '.join(_sql_literal(p) for p in [f'{d} {c}' for c in _CLOCKS for d in dates] + dates)}]"


#: shapes of a date with a month name once :func:`_month_name_text` has tidied it (%y before %Y: see mdy_hm)
_MONTH_NAME_DATES = ["%b %d, %Y", "%b %d %Y", "%d %b %y", "%d %b %Y", "%d-%b-%y", "%d-%b-%Y"]


def _month_name_text(v: str) -> str:
    """``v`` with no weekday before it (``Fri, ``), no UTC/GMT/Z after it, no comma before its clock and its
    month's name cut to three letters (March, Sept. -> Mar, Sep: DuckDB's %b reads only those)."""
    bare = f"regexp_replace({v}, '^[A-Za-z]{{3,9}}, | (?i:utc|gmt|z)$', '', 'g')"
    unclocked = f"regexp_replace({bare}, '([0-9]{{4}}), ([0-9]{{1,2}}:)', '\\1 \\2')"
    return (f"regexp_replace({unclocked}, '(?i)\\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\\.?', "
            f"'\\1')")


def _price_sql(raw: str, decimal_comma: bool) -> str:
    """The price written in ``raw`` as a DOUBLE: a plain number at once; else read past its currency, spaces,
    thousands separators and a trailing ``.-`` (see :func:`core.sniff.price_pattern`: $12.50, 12,50 €,
    CHF 1'234.-), an accounting negative (5.00) as -5.00. NULL when it is no number (quarantined as such).
    Only the rows the plain cast fails pay the regexes."""
    if decimal_comma:  # a point is a thousands separator there, never the decimal one
        plain = f"CASE WHEN NOT contains({raw}, '.') THEN try_cast(replace({raw}, ',', '.') AS DOUBLE) END"
    else:
        plain = f"try_cast({raw} AS DOUBLE)"
    pattern = _sql_literal(price_pattern(decimal_comma))
    # brackets and minus signs before the digits (one bracket pair or one minus: a negative), then the digits
    parts = f"regexp_replace({raw}, {pattern}, '\\1\\3\\6\\7\\2\\4#\\5')"
    signed = f"regexp_replace(regexp_replace({parts}, '^(\\(\\)|[-\\x{{2212}}])#', '-'), '^#', '')"
    grouping = "[.' \\x{00a0}\\x{202f}\\x{2009}\\x{2019}]" if decimal_comma else \
        "[,' \\x{00a0}\\x{202f}\\x{2009}\\x{2019}]"
    number = f"regexp_replace({signed}, {_sql_literal(grouping)}, '', 'g')"
    if decimal_comma:
        number = f"replace({number}, ',', '.')"
    return (f"coalesce({plain}, CASE WHEN regexp_full_match({raw}, {pattern}) "
            f"THEN try_cast({number} AS DOUBLE) END)")


def _quantity_sql(raw: str) -> str:
    """The whole number written in ``raw`` (2, 2.0, 1e3) as a BIGINT; NULL for any other text (2.5 too, which
    DuckDB's cast would round to 3), quarantined as no whole number."""
    d = f"try_cast({raw} AS DOUBLE)"
    return (f"CASE WHEN contains({raw}, '.') OR contains({raw}, 'e') OR contains({raw}, 'E') "
            f"THEN CASE WHEN {d} = trunc({d}) THEN try_cast({d} AS BIGINT) END ELSE try_cast({raw} AS BIGINT) END")


def _offset_minutes(zone: str) -> str:
    """SQL of the minutes east of UTC of ``zone`` (as :func:`core.sniff.zone_offset_minutes`): NULL when unknown."""
    named = " ".join(f"WHEN {_sql_literal(z)} THEN {minutes}"
                     for z, (minutes, _) in config.TIME_ZONE_ABBREVIATIONS.items())
    digits = f"replace(substr({zone}, 5), ':', '')"
    hours = (f"CAST(CASE WHEN length({digits}) <= 2 THEN {digits} ELSE left({digits}, length({digits}) - 2) END "
             "AS INTEGER)")
    minutes = f"CASE WHEN length({digits}) <= 2 THEN 0 ELSE CAST(right({digits}, 2) AS INTEGER) END"
    total = f"({hours} * 60 + {minutes})"
    signed = f"(CASE WHEN substr({zone}, 4, 1) = '-' THEN -1 ELSE 1 END) * {total}"
    offset = (f"CASE WHEN regexp_full_match({zone}, '(?i)(utc|gmt)[+-]([0-9]{{1,2}}(:[0-9]{{2}})?|[0-9]{{4}})') "
              f"AND {minutes} < 60 AND {total} <= {MAX_ZONE_OFFSET_MINUTES} THEN {signed} END")
    return f"CASE upper({zone}) {named} ELSE {offset} END"


def _trimmed(col: str) -> str:
    # trim() costs ten times a prefix/suffix test, and padded values are rare
    return (f"NULLIF(CASE WHEN starts_with({col}, ' ') OR ends_with({col}, ' ') THEN trim({col}) "
            f"ELSE {col} END, '')")


def _status_key_sql(raw: str) -> str:
    """SQL of :func:`core.sniff.status_key` of the trimmed text ``raw``."""
    return f"regexp_replace(regexp_replace(lower({raw}), '[\\s-]+', '_', 'g'), '^wc_', '')"


#: SQL of the unpaid statuses as a list to test a status key against
_UNPAID_SQL = f"({', '.join(_sql_literal(s) for s in UNPAID_STATUSES)})"


def _ident_list(n: int) -> list[str]:
    return [f"c{i}" for i in range(n)]


# --- the load -------------------------------------------------------------------------------------------------


class _Job:
    """One load: the SQL it runs and the bound values that go with it.

    Stages: (1) one pass reads the file and converts and checks every field into a narrow
    checked table (row number, canonical fields, reason, detail, a hash of the raw fields);
    (2) duplicates are found among rows sharing a hash and marked; (3) when any row is bad,
    one streaming pass over the file finds blank lines (DuckDB skips them) and the raw text
    of duplicate rows, so every quarantined row gets its physical line number; (4) good rows
    go to ``cs_events``, bad ones to ``cs_quarantine``.
    """

    def __init__(self, mapping: Mapping, source: _Source, tmp: Path, progress: Progress | None,
                 has_nul: bool = False, nested: tuple[str, ...] = (), lines: LineStats | None = None):
        self.mapping, self.source, self.delimiter, self.encoding = mapping, source, source.delimiter, source.encoding
        self.has_nul = has_nul
        self.nested = set(nested)  # columns whose values may be a list or an object (core.tabular.Converted)
        self.lines = lines
        #: only a file holding quotes can have a field that runs over several lines (each counted per row)
        self.multiline = lines is not None and lines.quotes
        #: whether some row runs over several lines: then row numbers are turned into line numbers
        self.rows_over_lines = False
        self.shifted = False
        self.tmp, self.progress = tmp, progress
        tag = uuid.uuid4().hex[:12]
        self.chk, self.rej, self.rej_scan = f"cs_chk_{tag}", f"cs_rej_{tag}", f"cs_rejscan_{tag}"
        self.rej_lines, self.skipped = f"cs_rejlines_{tag}", f"cs_skipped_{tag}"
        self.blanks, self.dups, self.raws = f"cs_blanks_{tag}", f"cs_dups_{tag}", f"cs_raws_{tag}"
        self.repeats, self.shifts = f"cs_repeats_{tag}", f"cs_shifts_{tag}"
        self.n_cols = len(mapping.source_columns)
        self.col_of = {n: f"c{i}" for i, n in enumerate(mapping.source_columns)}
        self.header_lines = mapping.skip_lines + (1 if mapping.has_header else 0)
        self.row0 = 0
        self.started = time.perf_counter()

    # -- SQL pieces ------------------------------------------------------------------------------------------

    def _read_expr(self) -> str:
        cols = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c in _ident_list(self.n_cols)) + "}"
        gz = self.source.compression == "gzip"
        options = [
            f"columns = {cols}", f"header = {str(self.mapping.has_header).lower()}",
            f"delim = {_sql_literal(self.delimiter)}", "quote = '\"'", "escape = '\"'",
            "auto_detect = false", "store_rejects = true", f"max_line_size = {_DUCKDB_MAX_LINE_BYTES}",
            f"rejects_table = '{self.rej}'", f"rejects_scan = '{self.rej_scan}'",
            f"encoding = {_sql_literal('latin-1' if self.encoding == 'latin-1' else 'utf-8')}",
            f"compression = {_sql_literal('gzip' if gz else 'none')}", f"skip = {int(self.mapping.skip_lines)}",
        ]
        return f"read_csv(?, {', '.join(options)})"

    def _loaded_columns(self) -> list[tuple[str, str]]:
        """(source column name, its identifier) of every column whose values are loaded, in file order."""
        names = {src for fld, src in self.mapping.columns.items() if src}
        names.update(c for c in self._side_columns() if c)
        return [(n, self.col_of[n]) for n in self.mapping.source_columns if n in names]

    def _side_columns(self) -> tuple[str | None, ...]:
        """The columns read beside the canonical fields: category fallback, time of day, status, amount refunded."""
        m = self.mapping
        return m.category_fallback, m.time_of_day, m.status_column, m.refund_column

    def _col(self, fld: str) -> str | None:
        src = self.mapping.columns.get(fld)
        return self.col_of[src] if src else None

    def _name(self, fld: str) -> str:
        """The source column name quoted for a printf template (% doubled)."""
        return repr(self.mapping.columns[fld]).replace("%", "%%")

    def _time_raw(self, date: str) -> str:
        """The time as written: the event_time column, with the time-of-day column after it when there is one."""
        if not self.mapping.time_of_day:
            return date
        clock = _trimmed(self.col_of[self.mapping.time_of_day])
        return f"CASE WHEN {date} IS NULL THEN NULL ELSE concat_ws(' ', {date}, {clock}) END"

    def _time_expr(self, v: str) -> str:
        fmt = self.mapping.time_format
        if fmt == "iso":
            # DuckDB's cast reads "2024-03-01 1:05 PM" as 01:05: a 12-hour clock is parsed by its pattern
            twelve = ", ".join(_sql_literal(f"{d} {c}") for c in _CLOCKS[2:] for d in ("%Y-%m-%d", "%Y/%m/%d"))
            return (f"CASE WHEN {v} LIKE '% UTC' THEN try_cast(left({v}, -4) AS TIMESTAMP) "
                    f"WHEN (ends_with({v}, 'M') OR ends_with({v}, 'm')) AND regexp_matches({v}, ' [AaPp][Mm]$') "
                    f"THEN try_strptime({v}, [{twelve}]) "
                    f"WHEN regexp_matches({v}, '([+-][0-9]{{2}}(:?[0-9]{{2}})?)$') AND length({v}) > 10 "
                    # Shopify writes "2024-03-01 10:00:00 +0100": the cast takes the offset only when it is attached
                    f"THEN make_timestamp(epoch_us(try_cast(regexp_replace({v}, ' ([+-][0-9]{{2}}(:?[0-9]{{2}})?)$', "
                    f"'\\1') AS TIMESTAMPTZ))) "
                    f"WHEN NOT contains(substr({v}, 12), ' ') THEN try_cast({v} AS TIMESTAMP) END")
        if fmt in _UNIX_SCALE:
            scale = _UNIX_SCALE[fmt]
            d = f"try_cast({v} AS DOUBLE)"
            # a number too large for a timestamp is a time out of range (an infinity), not a crash of the cast
            return (f"CASE WHEN NOT isfinite({d}) THEN NULL "
                    f"WHEN abs({d}) * {scale} >= {_MAX_EPOCH_US!r} THEN CASE WHEN {d} > 0 "
                    f"THEN TIMESTAMP 'infinity' ELSE TIMESTAMP '-infinity' END "
                    f"ELSE make_timestamp(CAST(round({d} * {scale}) AS BIGINT)) END")
        if fmt == "excel":  # day 0 is 1899-12-30 (Excel's leap day of 1900 folded in); 2958465 is 9999-12-31
            d = f"try_cast({v} AS DOUBLE)"
            return (f"CASE WHEN {d} >= 0 AND {d} < 2958466 THEN TIMESTAMP '1899-12-30' + "
                    f"to_seconds(CAST(round({d} * 86400) AS BIGINT)) END")
        if fmt == "month_name":
            return f"try_strptime({_month_name_text(v)}, {_patterns(_MONTH_NAME_DATES)})"
        dates = {"mdy_hm": ["%m-%d-%Y", "%m/%d/%Y"], "dmy_hm": ["%d-%m-%Y", "%d/%m/%Y", "%d.%m.%Y"],
                 "ymd": ["%Y%m%d"]}[fmt]
        if fmt == "ymd":
            return f"try_strptime({v}, {_patterns(dates)})"
        # %Y reads the year '24' as 0024: a two-digit year (3/1/24, as Excel writes m/d/yy) takes %y patterns
        short = [d.replace("%Y", "%y") for d in dates]
        return (f"CASE WHEN regexp_matches({v}, '^[0-9]{{1,2}}[-/.][0-9]{{1,2}}[-/.][0-9]{{2}}( |$)') "
                f"THEN try_strptime({v}, {_patterns(short)}) ELSE try_strptime({v}, {_patterns(dates)}) END")

    def _zone(self, v: str) -> str:
        """SQL of the time zone ``v`` ends in (:data:`core.sniff.TIME_ZONE_SUFFIX`; AM and PM are no zone), else NULL.

        Only values ending in a letter, or holding UTC or GMT before an offset, pay for the pattern (the
        last character is cut with substr: right() costs ten times as much); ISO times ending in ' UTC'
        are read by their format."""
        fmt = self.mapping.time_format
        if fmt in _UNIX_SCALE or fmt == "excel":
            return "CAST(NULL AS VARCHAR)"
        last = f"substr({v}, length({v}), 1)"
        utc = f" OR ends_with({v}, ' UTC')" if fmt == "iso" else ""
        named = " OR ".join(f"contains({v}, '{t}')" for t in ("TC", "MT", "tc", "mt"))  # UTC+2, gmt-05:00
        return (f"CASE WHEN {v} IS NULL{utc} THEN NULL "
                f"WHEN {last} BETWEEN 'A' AND 'Z' OR {last} BETWEEN 'a' AND 'z' OR {named} THEN "
                f"CASE WHEN regexp_matches({v}, ' [AaPp][Mm]$') THEN NULL "
                f"ELSE nullif(regexp_extract({v}, {_sql_literal(TIME_ZONE_SUFFIX)}, 1), '') END END")

    def _zoned_time(self, v: str) -> str:
        """The time in ``v`` as UTC: read in the file's format, less the offset of the zone it ends in (a zone not
        known counts 0 here, and its row is quarantined by :meth:`_rules`; a time that also carries its offset in
        numbers, 10:00:00-07:00 PDT, is read by that offset alone)."""
        local = f"rtrim(left({v}, length({v}) - length(t_zone)))"
        offset = f"CASE WHEN regexp_matches({local}, '[0-9][+-][0-9]{{2}}(:?[0-9]{{2}})?$') THEN 0 ELSE t_offset END"
        return (f"CASE WHEN t_zone IS NULL THEN {self._time_expr(v)} "
                f"ELSE {self._time_expr(local)} - to_minutes(coalesce({offset}, 0)) END")

    def _rules(self) -> list[tuple[str, str, str, str | None]]:
        """(condition, reason code, printf template of the detail, value filling its %s), first match wins."""
        m = self.mapping
        tname = self._name("event_time")
        if m.time_of_day:  # the details show the two values joined
            tname += " with " + repr(m.time_of_day).replace("%", "%%")
        rules: list[tuple[str, str, str, str | None]] = []
        if self.has_nul:  # only files holding NUL bytes pay for the test
            rules += [(f"contains({c}, chr(0))", "nul_byte",
                       f"column {repr(name).replace('%', '%%')}: the value holds NUL bytes (\\x00), a sign of a "
                       "damaged file; expected text", None) for name, c in self._loaded_columns()]
        rules += self._nested_rules()
        rules += self._unpaid_rules()  # a row that is no purchase is none, whatever else is wrong with it
        rules += [
            ("user_id IS NULL", "missing_user", f"column {self._name('user_id')} is empty; expected a user id", None),
            ("t_raw IS NULL", "missing_time", f"column {self._name('event_time')} is empty; expected a "
             f"{'date' if m.time_of_day else 'time'}", None),
            ("t_zone IS NOT NULL AND t_offset IS NULL AND event_time IS NOT NULL", "unknown_time_zone",
             f"column {tname}: '%s' ends in a time zone not known here; expected an abbreviation such as "
             f"{ZONE_EXAMPLES} or an offset such as +05:30 or UTC+2", "t_raw"),
            ("event_time IS NULL", "unparseable_time",
             f"column {tname}: '%s' is not a time in the expected format ({m.time_format})", "t_raw"),
            (f"event_time < TIMESTAMP '{_MIN_TIME}' OR event_time > TIMESTAMP '{_MAX_TIME}'", "time_out_of_range",
             f"column {tname}: '%s' is outside the plausible range; expected a time from {_MIN_TIME} "
             f"to {_MAX_TIME}", "t_raw"),
        ]
        if not m.constant_event_type:
            rules.append(("event_type IS NULL", "missing_event_type",
                          f"column {self._name('event_type')} is empty; expected an event type", None))
        if m.columns.get("price"):
            pname = self._name("price")
            if self._divides_total():
                rules.append(("quantity = 0 AND amount <> 0", "zero_quantity",
                              f"column {self._name('quantity')} is 0 for the total '%s' in column {pname}; expected a "
                              "quantity other than 0 (the price stored is the total / quantity)", "p_raw"))
            rules += [
                ("p_raw IS NOT NULL AND (price IS NULL OR NOT isfinite(price))", "non_numeric_price",
                 f"column {pname}: '%s' is not a number; expected a price", "p_raw"),
                ("price < 0", "negative_price", f"column {pname}: '%s' is negative; expected a price >= 0", "p_raw"),
                (f"price > {float(config.MAX_PRICE)!r}", "price_too_high",
                 f"column {pname}: '%s' is above the maximum price {config.MAX_PRICE:,.0f}", "p_raw"),
            ]
        if m.columns.get("quantity"):
            rules.append(("q_raw IS NOT NULL AND quantity IS NULL", "non_numeric_quantity",
                          f"column {self._name('quantity')}: '%s' is not a whole number; expected a quantity",
                          "q_raw"))
        return rules

    def _unpaid_rules(self) -> list[tuple[str, str, str, str | None]]:
        """Purchases whose status says no money was kept (:data:`core.sniff.UNPAID_STATUSES`), or whose refund is
        their whole amount (an order total's only: a line's price is no order's amount)."""
        m, rules = self.mapping, []
        if m.status_column:
            sname = repr(m.status_column).replace("%", "%%")
            rules.append((f"event_type = 'purchase' AND {_status_key_sql('s_raw')} IN {_UNPAID_SQL}", "not_a_purchase",
                          f"column {sname} is '%s'; only paid orders are purchases", "s_raw"))
        if self._reads_refunds():
            rname = repr(m.refund_column).replace("%", "%%")
            amount = "amount" if self._divides_total() else "price"
            rules.append((f"event_type = 'purchase' AND r_amount > 0 AND r_amount >= {amount}", "not_a_purchase",
                          f"column {rname} is '%s', the whole amount in column {self._name('price')}: the payment was "
                          "refunded in full", "r_raw"))
        return rules

    def _reads_refunds(self) -> bool:
        """Whether the amount refunded is compared with the price column (it holds order totals)."""
        m = self.mapping
        return bool(m.refund_column and m.columns.get("price")) and m.price_is == "order_total"

    def _money_sql(self) -> str:
        """The select expressions of the status and the amount refunded as written (``s_raw``, ``r_raw``) and of the
        refund as a number (``r_amount``): NULL where the file has none or the refund is not compared."""
        m = self.mapping
        status = _trimmed(self.col_of[m.status_column]) if m.status_column else "CAST(NULL AS VARCHAR)"
        if not self._reads_refunds():
            return f"{status} AS s_raw, CAST(NULL AS VARCHAR) AS r_raw, CAST(NULL AS DOUBLE) AS r_amount"
        refund = _trimmed(self.col_of[m.refund_column])
        return f"{status} AS s_raw, {refund} AS r_raw, {_price_sql(refund, m.decimal_comma)} AS r_amount"

    def _mark_unpaid_orders(self, duck) -> None:
        """Quarantine the lines of an order whose status is written on one of its lines only (Shopify writes the
        Financial Status on an order's first line) when that status says no money was kept."""
        m = self.mapping
        if not (m.status_column and m.columns.get("session_id")):
            return
        template = (f"column {m.status_column!r} is empty on this line and '%s' on another line of the order "
                    f"'%s' in column {m.columns['session_id']!r}; only paid orders are purchases")
        duck.execute(
            f"UPDATE {self.chk} SET reason = 'not_a_purchase', detail = printf(?, o.status, o.session) FROM "
            f"(SELECT session_id AS session, min(s_raw) AS status FROM {self.chk} WHERE reason = 'not_a_purchase' "
            f"AND session_id IS NOT NULL AND {_status_key_sql('s_raw')} IN {_UNPAID_SQL} GROUP BY session_id) o "
            f"WHERE {self.chk}.session_id = o.session AND {self.chk}.reason IS NULL AND {self.chk}.s_raw IS NULL "
            f"AND {self.chk}.event_type = 'purchase'", [template])

    def _divides_total(self) -> bool:
        """Whether the price column holds a total to divide by the quantity (:data:`core.sniff.PRICE_KINDS`)."""
        m = self.mapping
        return m.price_is != "unit_price" and bool(m.columns.get("quantity"))

    def _price_sql(self, price_raw: str, qty_raw: str) -> str:
        """The select expressions of ``amount`` (the number written, for a total only) and ``price``: the number
        written, or a total divided by its quantity, so that price x quantity is the total."""
        amount = _price_sql(price_raw, self.mapping.decimal_comma)
        if not self._divides_total():
            return f"{amount} AS price"
        q = _quantity_sql(qty_raw)
        return (f"{amount} AS amount, CASE WHEN {q} IS NULL THEN {amount} WHEN {q} <> 0 THEN {amount} / {q} "
                f"WHEN {amount} = 0 THEN 0.0 END AS price")

    def _nested_rules(self) -> list[tuple[str, str, str, str | None]]:
        """A list or an object (written as JSON by :mod:`core.tabular`) in a loaded column of a JSON or Parquet
        file where one value belongs: the row is quarantined, not stored as its JSON text."""
        m = self.mapping
        used = {src for fld, src in m.columns.items() if src and not (fld == "event_type" and m.constant_event_type)}
        used.update(c for c in self._side_columns() if c)
        rules = []
        for name, c in self._loaded_columns():
            if name in used and name in self.nested:
                what = (f"concat('''', {c}, CASE WHEN starts_with({c}, '[') THEN ''' is a list' "
                        "ELSE ''' is an object' END)")
                rules.append((f"(starts_with({c}, '[') OR starts_with({c}, '{{')) AND json_valid({c})", "nested_value",
                              f"column {repr(name).replace('%', '%%')}: %s; expected one value (a text or a number)",
                              what))
        return rules

    def _newlines_expr(self, cols: list[str]) -> str:
        """The line breaks inside a row's fields (a quoted field running over several lines): 0 for most rows."""
        if self.n_cols > _WIDE_COLUMNS:
            return ("list_sum(list_transform(raw_fields, "
                    "lambda x: coalesce(length(x) - length(replace(x, chr(10), '')), 0)))")
        joined = f"concat({', '.join(cols)})"
        return (f"CASE WHEN {' OR '.join(f'contains({c}, chr(10))' for c in cols)} "
                f"THEN length({joined}) - length(replace({joined}, chr(10), '')) ELSE 0 END")

    def _check_sql(self) -> tuple[str, list]:
        """SQL reading the file into the checked table, and its bound values in text order."""
        m = self.mapping
        cols = _ident_list(self.n_cols)
        conv_params: list = []

        def trimmed(fld: str) -> str:
            c = self._col(fld)
            return _trimmed(c) if c else "NULL"

        cat = trimmed("category")
        if m.category_fallback:
            cat = f"coalesce({cat}, {_trimmed(self.col_of[m.category_fallback])})"
        price_raw = trimmed("price")
        qty_raw = trimmed("quantity")
        if not m.constant_event_type:  # a constant set for every row wins over a mapped column
            raw_ev = trimmed("event_type")
            whens = []
            for raw, canon in m.event_type_map.items():
                whens.append("WHEN ? THEN ?")
                conv_params.extend([raw.lower(), canon])
            event = f"CASE lower({raw_ev}) {' '.join(whens)} ELSE {raw_ev} END" if whens else raw_ev
        else:
            conv_params.append(m.constant_event_type)
            event = "?"
        delim = _sql_literal(" " if m.delimiter == " " else self.delimiter)
        if self.n_cols > _WIDE_COLUMNS:
            # every projection of 10,000 columns reserves 10,000 vectors (gigabytes at DuckDB's vector size):
            # carry the raw fields as one list, and the loaded columns for their own tests
            loaded = list(dict.fromkeys(c for _, c in self._loaded_columns()))
            carried = ["raw_fields", *loaded]
            inner = f"SELECT [{', '.join(cols)}] AS raw_fields, {', '.join(loaded)}"
            h = "hash(raw_fields)"
            raw_text = f"array_to_string(list_transform(raw_fields, lambda x: coalesce(x, '')), {delim})"
        else:
            carried, inner, h = cols, "SELECT *", f"hash({', '.join(cols)})"
            fields = ", ".join(f"coalesce({c}, '')" for c in cols)
            raw_text = f"concat_ws({delim}, {fields})"
        newlines = self._newlines_expr(cols) if self.multiline else "0"
        conv = (f"SELECT {h} AS h, {newlines} AS nl, {', '.join(carried)}, {trimmed('user_id')} AS user_id, "
                f"t_raw, t_zone, t_offset, {self._zoned_time('t_raw')} AS event_time, "
                f"{event} AS event_type, {trimmed('item_id')} AS item_id, {cat} AS category, "
                f"lower({trimmed('brand')}) AS brand, {price_raw} AS p_raw, "
                f"{self._price_sql(price_raw, qty_raw)}, "
                f"{qty_raw} AS q_raw, {_quantity_sql(qty_raw)} AS quantity, {trimmed('session_id')} AS session_id, "
                f"{self._money_sql()} "
                f"FROM (SELECT *, {_offset_minutes('t_zone')} AS t_offset FROM "
                f"(SELECT *, {self._zone('t_raw')} AS t_zone FROM "
                f"({inner}, {self._time_raw(trimmed('event_time'))} AS t_raw FROM {self._read_expr()})))")
        reason_cases, detail_cases, detail_params = [], [], []
        for cond, code, template, value in self._rules():
            reason_cases.append(f"WHEN {cond} THEN '{code}'")
            # the template carries user-given column names: it is bound, never SQL text
            detail_cases.append(f"WHEN {cond} THEN printf(?, {value})" if value else f"WHEN {cond} THEN ?")
            detail_params.append(template if value else template.replace("%%", "%"))
        reason = f"CASE {' '.join(reason_cases)} END"
        # no row number here: it would serialise the pass; the table's rowid keeps file order
        sql = (f"CREATE TEMP TABLE {self.chk} AS SELECT h, user_id, event_time, event_type, item_id, "
               f"category, brand, price, quantity, session_id, s_raw, nl, reason, "
               f"CASE WHEN reason IS NOT NULL THEN CASE {' '.join(detail_cases)} END END AS detail, "
               f"CASE WHEN reason IS NOT NULL THEN replace({raw_text}, chr(0), {_sql_literal(_NUL_SHOWN_AS)}) "
               f"END AS raw_line "
               f"FROM (SELECT *, {reason} AS reason FROM ({conv}))")
        # placeholders are numbered in text order: the detail CASE precedes the converting subquery
        return sql, detail_params + conv_params + [str(self.source.path)]

    def _line_no(self, rn: str) -> str:
        # staged row rn (0-based) sits after every skipped line j with (data index - j) <= rn
        return (f"({self.header_lines} + {rn} + 1 + (SELECT count(*) FROM {self.skipped} r "
                f"WHERE r.accepted_before <= {rn}))")

    def _quarantine_select(self) -> str:
        return (
            f"SELECT {self._physical(self._line_no('k.rn'))} AS line_no, coalesce(r.raw, k.raw_line) AS raw_line, "
            f"k.reason, CASE WHEN k.reason = 'duplicate' THEN k.detail || ' (line ' || "
            f"CAST({self._physical(self._line_no('d.first_rn'))} AS VARCHAR) || ')' ELSE k.detail END AS detail "
            f"FROM {self._rows()} k LEFT JOIN {self.dups} d ON d.rn = k.rn LEFT JOIN {self.raws} r ON r.rn = k.rn "
            f"WHERE k.reason IS NOT NULL "
            f"UNION ALL SELECT {self._physical('line')}, csv_line, reason, detail FROM {self.rej_lines}"
        )

    def _events_select(self) -> tuple[str, bool]:
        """SELECT of good rows in event-table column order, and whether sessions are derived."""
        base = f"SELECT * FROM {self._rows()} WHERE reason IS NULL"
        if self.mapping.columns.get("session_id"):
            return (f"SELECT user_id, event_time, event_type, item_id, category, brand, price, quantity, "
                    f"session_id FROM ({base})"), False
        gap = f"INTERVAL {int(config.SESSION_GAP_MINUTES)} MINUTE"
        flagged = (f"SELECT *, CASE WHEN event_time - lag(event_time) OVER w > {gap} "
                   f"OR lag(event_time) OVER w IS NULL THEN 1 ELSE 0 END AS new_session "
                   f"FROM ({base}) WINDOW w AS (PARTITION BY user_id ORDER BY event_time, rn)")
        numbered = (f"SELECT *, sum(new_session) OVER (PARTITION BY user_id ORDER BY event_time, rn "
                    f"ROWS UNBOUNDED PRECEDING) AS session_no FROM ({flagged})")
        return (f"SELECT user_id, event_time, event_type, item_id, category, brand, price, quantity, "
                f"user_id || '-' || CAST(session_no AS VARCHAR) AS session_id FROM ({numbered})"), True

    # -- running -------------------------------------------------------------------------------------------

    def run(self, conn: sa.Connection, duck, name: str, path: Path, native_store: bool) -> IngestReport:
        try:
            return self._run(conn, duck, name, path, native_store)
        finally:
            if native_store:  # the in-memory DuckDB of a PostgreSQL load is closed by the caller
                self._drop(duck)

    def _drop(self, duck) -> None:
        for table in (self.chk, self.rej, self.rej_scan, self.rej_lines, self.skipped, self.blanks, self.dups,
                      self.raws, self.repeats, self.shifts):
            try:
                duck.execute(f"DROP TABLE IF EXISTS {table}")
            except Exception:  # noqa: BLE001 - an aborted transaction drops them with the rollback
                break

    def _run(self, conn: sa.Connection, duck, name: str, path: Path, native_store: bool) -> IngestReport:
        m = self.mapping
        _tick(self.progress, 0.05, "reading and validating rows")
        sql, params = self._check_sql()
        try:
            duck.execute(sql, params)
        except Exception as exc:  # noqa: BLE001 - DuckDB reader errors: unreadable file
            import duckdb

            if not isinstance(exc, duckdb.IOException) and "read_csv" not in str(exc) and "CSV" not in str(exc) \
                    and "encoding" not in str(exc).lower():
                raise
            raise SchemaError(f"{path.name} could not be read as a {DELIMITER_NAMES[m.delimiter]}-separated "
                              f"{m.encoding} file: {str(exc).splitlines()[0]}", reason="unreadable_file") from exc
        self._mark_unpaid_orders(duck)
        _tick(self.progress, 0.45, "checking duplicates")
        self._collect_rejects(duck)
        self._add_long_lines(duck)
        self._refuse_swallowed_lines(duck, path)
        n_staged = duck.execute(f"SELECT count(*) FROM {self.chk}").fetchone()[0]
        self._refuse_lost_lines(duck, path, n_staged)
        self._mark_duplicates(duck)
        n_rejected = duck.execute(f"SELECT count(*) FROM {self.rej_lines}").fetchone()[0]
        rows_read = n_staged + n_rejected
        if rows_read == 0:
            raise SchemaError(f"{path.name} has no data rows (header only?): nothing could be loaded; "
                              f"expected event rows after the header", reason="no_data")
        stats = self._stats(duck)
        by_reason = dict(duck.execute(
            f"SELECT reason, count(*) FROM (SELECT reason FROM {self.chk} WHERE reason IS NOT NULL "
            f"UNION ALL SELECT reason FROM {self.rej_lines}) GROUP BY reason ORDER BY count(*) DESC, reason"
        ).fetchall())
        rows_loaded = stats["rows"]
        rows_quarantined = sum(by_reason.values())
        assert rows_read == rows_loaded + rows_quarantined, (rows_read, rows_loaded, rows_quarantined)
        self._map_lines(duck, staged_bad=rows_quarantined - n_rejected)
        if rows_loaded == 0:
            examples = [r[0] for r in duck.execute(
                f"SELECT detail FROM ({self._quarantine_select()}) ORDER BY line_no LIMIT 3").fetchall()]
            raise SchemaError(
                f"nothing could be loaded from {path.name}: all {rows_read:,} rows are bad "
                f"({', '.join(f'{k}: {v:,}' for k, v in by_reason.items())}); for example: {'; '.join(examples)}",
                cases=examples, reason="no_data")
        _tick(self.progress, 0.6, "loading events")
        did = store.next_dataset_id(conn)
        events_sql, sessions_derived = self._events_select()
        q_sql = self._quarantine_select()
        if native_store:  # the price bands computed as the events go in (derived.banded_events_sql)
            staged = sa.text(f"SELECT category, price FROM {self.chk} WHERE reason IS NULL").columns(
                sa.column("category", sa.String), sa.column("price", sa.Float)).subquery("staged")
            derived.write_price_edges(conn, did, staged)
            cols = ", ".join(("dataset_id",) + _EVENT_COLUMNS + ("price_band",))
            duck.execute(f"INSERT INTO cs_events ({cols}) SELECT ?, * FROM "
                         f"({derived.banded_events_sql(conn, did, events_sql)})", [did])
            _tick(self.progress, 0.85, "writing the quarantine")
            duck.execute(f"INSERT INTO cs_quarantine (dataset_id, line_no, raw_line, reason, detail) "
                         f"SELECT ?, * FROM ({q_sql})", [did])
        else:
            self._copy_to_postgres(conn, duck, did, events_sql, q_sql)
        _tick(self.progress, 0.9, "summarising sessions and price bands")
        derived.derive_dataset(conn, did, banded=native_store)
        notes = [n for n in m.notes if not n.startswith((PRICE_NOTE_START, *STATUS_NOTE_STARTS))]
        notes += [*filter(None, [price_note(m)]), *status_notes(m)]  # of the mapping loaded with, set by hand or not
        if sessions_derived:
            notes.append(f"the file has no session column: sessions derived by a "
                         f"{config.SESSION_GAP_MINUTES}-minute inactivity gap")
        if stats["unknown"]:
            notes.append(f"event types kept as given (not one of {list(config.EVENT_TYPES)}): "
                         f"{', '.join(stats['unknown'])}")
        if m.layout == "online_retail" and stats["negative_quantity"]:
            notes.append(f"{stats['negative_quantity']:,} cancellation lines loaded as purchases with "
                         f"negative quantity")
        report = IngestReport(
            dataset=name, dataset_id=did, layout=m.layout, rows_read=rows_read, rows_loaded=rows_loaded,
            rows_quarantined=rows_quarantined, users=stats["users"], events_by_type=stats["by_type"],
            unknown_event_types=stats["unknown"], first_event=stats["first"], last_event=stats["last"],
            quarantine_by_reason=by_reason, sessions_derived=sessions_derived, notes=notes, source=path.name,
        )
        _tick(self.progress, 0.95, "recording the dataset")
        report.seconds = round(time.perf_counter() - self.started, 3)
        conn.execute(store.datasets.insert().values(
            dataset_id=did, name=name, layout=m.layout, source=path.name,
            created_at=dt.datetime.now(dt.UTC).replace(tzinfo=None), rows_read=rows_read,
            rows_loaded=rows_loaded, rows_quarantined=rows_quarantined, n_users=report.users,
            first_event=report.first_event, last_event=report.last_event,
            mapping_json=json.dumps(m.to_dict()), report_json=json.dumps(report.to_dict()),
        ))
        # still inside the transaction: a cancel here also leaves nothing
        _tick(self.progress, 1.0, f"done: {rows_loaded:,} rows loaded, {rows_quarantined:,} quarantined")
        return report

    def _collect_rejects(self, duck) -> None:
        """One row per line DuckDB could not split (first error of the line, an error of the whole line, which has no
        column, first of all), with its reason."""
        duck.execute(
            f"CREATE TEMP TABLE {self.rej_lines} AS "
            f"SELECT line, replace(trim(arg_min(csv_line, col), chr(10) || chr(13)), chr(0), "
            f"{_sql_literal(_NUL_SHOWN_AS)}) AS csv_line, "
            f"CASE WHEN contains(arg_min(csv_line, col), chr(0)) THEN 'nul_byte' "
            f"WHEN arg_min(error_type, col) = 'MISSING COLUMNS' THEN 'truncated_row' "
            f"WHEN arg_min(error_type, col) = 'TOO MANY COLUMNS' THEN 'too_many_fields' "
            f"WHEN arg_min(error_type, col) = 'LINE SIZE OVER MAXIMUM' THEN 'line_too_long' "
            f"ELSE 'unreadable_row' END AS reason, "
            f"CASE WHEN contains(arg_min(csv_line, col), chr(0)) "
            f"THEN 'line holds NUL bytes (\\x00, shown as {_NUL_SHOWN_AS}), a sign of a damaged file: ' "
            f"WHEN arg_min(error_type, col) = 'MISSING COLUMNS' THEN 'line is cut off or lacks fields: ' "
            f"WHEN arg_min(error_type, col) = 'TOO MANY COLUMNS' THEN 'line has more fields than the header: ' "
            f"ELSE 'line cannot be read: ' END || arg_min(error_message, col) AS detail, "
            f"false AS emptied FROM (SELECT *, coalesce(column_idx, -1) AS col FROM {self.rej}) GROUP BY line"
        )

    def _add_long_lines(self, duck) -> None:
        """The data lines too long to load (left out of what DuckDB reads: :func:`_empty_long_lines`) as rejected
        lines of their own reason, each with its first characters."""
        long = {n: v for n, v in self.source.long_lines.items() if n > self.header_lines}
        if not long:
            return
        limit = config.MAX_LINE_BYTES
        frame = pd.DataFrame({
            "line": pd.Series(list(long), dtype="int64"),
            "csv_line": [text.replace("\x00", _NUL_SHOWN_AS) for text, _ in long.values()],
            "detail": [f"line is {size:,} bytes long, more than the {limit:,} bytes ({limit / 2**20:g} MiB) a line "
                       f"may hold, so it is not read: only its first {_MAX_LINE_SHOWN} characters are kept; "
                       "expected one event per line" for _, size in long.values()],
        })
        with _registered(duck, f"{self.rej_lines}_long", frame) as view:
            duck.execute(f"INSERT INTO {self.rej_lines} SELECT line, csv_line, 'line_too_long', detail, true "
                         f"FROM {view}")

    def _refuse_lost_lines(self, duck, path: Path, n_staged: int) -> None:
        """Raise :class:`SchemaError` when the rows read do not cover every line of the file.

        Each line is the header's, a row's (a row with a quoted field over several lines covers
        several), a rejected line's, or empty; DuckDB skips empty lines, so at most that many may be
        unaccounted for. More means the reader lost lines without a word (it does after a quote
        left open in a large file): the load is refused rather than made short.
        """
        if self.lines is None:
            return
        in_rows = duck.execute(f"SELECT coalesce(sum(nl), 0) FROM {self.chk}").fetchone()[0] if self.multiline else 0
        n_rejected, in_rejects = duck.execute(
            f"SELECT count(*), coalesce(sum(length(csv_line) - length(replace(csv_line, chr(10), ''))), 0) "
            f"FROM {self.rej_lines}").fetchone()
        self.rows_over_lines = in_rows + in_rejects > 0
        lost = self.lines.lines - self.header_lines - n_staged - n_rejected - in_rows - in_rejects
        if lost <= 0:
            return
        src = self.source
        with _open_bytes(src.lines_path, src.lines_compression) as fh:  # its long lines are empty there
            lost -= count_empty_lines(fh) - len(self.lines.long) + src.emptied
        if lost <= 0:
            return
        quote, huge = duck.execute(
            f"SELECT min(line) FILTER (detail LIKE '%unterminated quote%'), "
            f"min(line) FILTER (reason = 'line_too_long' AND NOT emptied) FROM {self.rej_lines}").fetchone()
        where = (f"line {quote:,} opens a quote (\") that is not closed on that line, and the lines after it were "
                 f"read as part of that field; " if quote is not None else
                 f"line {huge:,} opens a quoted field that runs over several lines, more than "
                 f"{_DUCKDB_MAX_LINE_BYTES // 2**20} MiB in all; " if huge is not None else "")
        raise SchemaError(
            f"{path.name}: {lost:,} of its {self.lines.lines:,} lines could "
            f"not be read as rows and counted one by one: {where}nothing was loaded. Expected one event per line "
            "and every quoted field closed: fix the file and load again.", reason="unreadable_file")

    def _refuse_swallowed_lines(self, duck, path: Path) -> None:
        """Raise :class:`SchemaError` when a quote opened and never closed made DuckDB read later lines as one field.

        Those lines would be neither loaded nor quarantined one by one (their rows could not be
        counted), so the file is refused with the line to fix rather than loaded short.
        """
        hit = duck.execute(
            f"SELECT line, csv_line FROM {self.rej_lines} WHERE detail LIKE '%unterminated quote%' "
            f"AND contains(csv_line, chr(10)) ORDER BY line LIMIT 1").fetchone()
        if hit:
            line, text = hit
            raise SchemaError(
                f"{path.name}: line {line:,} opens a quote (\") that is not closed on that line, so the lines after "
                f"it (up to the next quote or the end of the file) were read as one field and cannot be counted row "
                f"by row; expected every quoted field to close on its own line: fix or remove that quote and load "
                f"again. Line {line:,} begins: {text.splitlines()[0][:_MAX_LINE_SHOWN]!r}",
                cases=[text.splitlines()[0][:_MAX_LINE_SHOWN]], reason="unreadable_file")

    def _rows(self) -> str:
        """The checked table with ``rn``: 0-based row number among the lines DuckDB staged, in file order."""
        return f"(SELECT rowid - {self.row0} AS rn, * FROM {self.chk})"

    def _mark_duplicates(self, duck) -> None:
        """Mark exact repeats of an earlier line (the first is kept): rows sharing the hash of their raw
        fields are compared on every converted field and on the rebuilt raw text.

        Two choices keep the cost per row flat as files grow (measured on 20.4 M REES46 rows, 106
        repeats: 7.5 s before, 1.2 s after):

        - the repeated hashes are found by sorting the hashes and comparing neighbours, not by
          grouping them: a hash table holding every row's hash outgrows the CPU caches, and its cost
          per row doubled from 5 to 20 M rows, while the sort's stayed flat;
        - the rows holding a repeated hash are picked by their row ids, scanning the hash column only;
          a join that read the wide rows scanned every column of every row to keep a few hundred.
        """
        self.row0 = duck.execute(f"SELECT coalesce(min(rowid), 0) FROM {self.chk}").fetchone()[0]
        repeated = f"SELECT DISTINCT h FROM (SELECT h, lag(h) OVER (ORDER BY h) AS prev FROM {self.chk}) WHERE h = prev"
        duck.execute(f"CREATE TEMP TABLE {self.repeats} AS SELECT rowid AS id FROM {self.chk} WHERE h IN ({repeated})")
        candidates = (f"(SELECT k.rowid - {self.row0} AS rn, k.* FROM {self.repeats} x "
                      f"JOIN {self.chk} k ON k.rowid = x.id)")
        duck.execute(
            f"CREATE TEMP TABLE {self.dups} AS SELECT rn, first_rn FROM (SELECT rn, "
            f"row_number() OVER g AS dup_rank, min(rn) OVER g AS first_rn FROM {candidates} "
            f"WINDOW g AS (PARTITION BY h, user_id, event_time, event_type, item_id, category, brand, price, "
            f"quantity, session_id, reason ORDER BY rn)) WHERE dup_rank > 1"
        )
        duck.execute(
            f"UPDATE {self.chk} SET reason = 'duplicate', detail = 'exact duplicate of an earlier line' "
            f"WHERE reason IS NULL AND rowid - {self.row0} IN (SELECT rn FROM {self.dups})"
        )

    def _map_lines(self, duck, staged_bad: int) -> None:
        """Physical line numbers: the lines DuckDB did not stage (rejected or blank) and raw duplicates."""
        duck.execute(f"CREATE TEMP TABLE {self.blanks} (line BIGINT)")
        duck.execute(f"CREATE TEMP TABLE {self.raws} (rn BIGINT, raw VARCHAR)")
        # DuckDB keeps only the first _REJECT_TEXT_CAP characters of a line it rejects, and mangles a line that
        # is not in the file's encoding (a Latin-1 'Café,' in UTF-8 shows as 'Caf??'): those are re-read
        cut = {r[0] for r in duck.execute(
            f"SELECT line FROM {self.rej_lines} WHERE NOT emptied AND (length(csv_line) >= {_REJECT_TEXT_CAP} "
            "OR detail LIKE '%Invalid unicode%')").fetchall()}
        quoted = self.rows_over_lines and self.mapping.delimiter != " "
        n_rejected = duck.execute(f"SELECT count(*) FROM {self.rej_lines}").fetchone()[0]
        if staged_bad or cut or (quoted and n_rejected):
            # DuckDB skips empty lines silently: find them (and the text of repeated rows) in one stream
            rejected = {r[0] for r in duck.execute(f"SELECT line FROM {self.rej_lines} WHERE NOT emptied").fetchall()}
            wanted = {r[0] for r in duck.execute(f"SELECT rn FROM {self.dups}").fetchall()}
            found = _scan_lines(self.source, self.header_lines, rejected, wanted, cut, set(self.source.long_lines),
                                quoted, spaces_blank=self.mapping.delimiter == " ")
            self._store_line_map(duck, found, quoted)
        duck.execute(
            f"CREATE TEMP TABLE {self.skipped} AS SELECT line, line - {self.header_lines} - "
            f"row_number() OVER (ORDER BY line) AS accepted_before FROM "
            f"(SELECT line FROM {self.rej_lines} UNION ALL SELECT line FROM {self.blanks} "
            f"WHERE line > {self.header_lines})")

    def _store_line_map(self, duck, found: _LineMap, quoted: bool) -> None:
        """Write what :func:`_scan_lines` found into the load's tables (one statement per table: executemany
        runs one per row, 195 s for 408,773 repeated rows)."""
        def frame(**columns) -> pd.DataFrame:
            return pd.DataFrame({k: pd.Series(v, dtype="int64" if k != "text" else object) for k, v in columns.items()})

        if found.texts:
            with _registered(duck, f"{self.rej_lines}_text",
                             frame(line=list(found.texts), text=list(found.texts.values()))) as view:
                duck.execute(f"UPDATE {self.rej_lines} SET csv_line = {view}.text FROM {view} "
                             f"WHERE {self.rej_lines}.line = {view}.line AND NOT {self.rej_lines}.emptied")
        if found.blanks:
            with _registered(duck, f"{self.blanks}_src", frame(line=found.blanks)) as view:
                duck.execute(f"INSERT INTO {self.blanks} SELECT line FROM {view}")
        if found.raws:
            with _registered(duck, f"{self.raws}_src",
                             frame(rn=list(found.raws), text=list(found.raws.values()))) as view:
                duck.execute(f"INSERT INTO {self.raws} SELECT rn, text FROM {view}")
        if quoted and found.long_rows:  # the lines too long to load were numbered by line: number them by row
            with _registered(duck, f"{self.rej_lines}_long_rows",
                             frame(line=list(found.long_rows), row=list(found.long_rows.values()))) as view:
                duck.execute(f"UPDATE {self.rej_lines} SET line = {view}.row FROM {view} "
                             f"WHERE {self.rej_lines}.line = {view}.line AND {self.rej_lines}.emptied")
        if quoted and found.shifts:
            rows, deltas = zip(*found.shifts)
            with _registered(duck, f"{self.shifts}_src", frame(row=list(rows), delta=list(deltas))) as view:
                duck.execute(f"CREATE TEMP TABLE {self.shifts} AS SELECT row, delta FROM {view}")
            self.shifted = True

    def _physical(self, row: str) -> str:
        """SQL of the physical line number of DuckDB's row number ``row`` (they differ after a row over several
        lines)."""
        if not self.shifted:
            return row
        return f"({row} + coalesce((SELECT arg_max(s.delta, s.row) FROM {self.shifts} s WHERE s.row <= {row}), 0))"

    def _stats(self, duck) -> dict:
        good = f"FROM {self.chk} WHERE reason IS NULL"
        rows, users, first, last = duck.execute(
            f"SELECT count(*), count(DISTINCT user_id), min(event_time), max(event_time) {good}").fetchone()
        by_type = dict(duck.execute(
            f"SELECT event_type, count(*) {good} GROUP BY event_type ORDER BY count(*) DESC, event_type").fetchall())
        neg_q = duck.execute(f"SELECT count(*) {good} AND quantity < 0").fetchone()[0] \
            if self.mapping.columns.get("quantity") else 0
        unknown = {k: v for k, v in by_type.items() if k not in config.EVENT_TYPES}
        return {"rows": rows, "users": users, "first": first, "last": last, "by_type": by_type,
                "unknown": unknown, "negative_quantity": neg_q}

    def _copy_to_postgres(self, conn: sa.Connection, duck, did: int, events_sql: str, q_sql: str) -> None:
        pg = store.driver_connection(conn)
        targets = [
            (events_sql, "cs_events", ("dataset_id",) + _EVENT_COLUMNS, 0.6, "loading events"),
            (q_sql, "cs_quarantine", ("dataset_id", "line_no", "raw_line", "reason", "detail"), 0.85,
             "writing the quarantine"),
        ]
        for select, table, cols, fraction, message in targets:
            _tick(self.progress, fraction, message)
            out = self.tmp / f"{table}.csv"
            duck.execute(f"COPY (SELECT {int(did)}, * FROM ({select})) TO {_sql_literal(str(out))} "
                         f"(FORMAT csv, HEADER false)")
            with pg.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN (FORMAT csv)") as cp, \
                    open(out, "rb") as fh:
                while chunk := fh.read(_COPY_CHUNK_BYTES):
                    cp.write(chunk)
            out.unlink()


@contextlib.contextmanager
def _registered(duck, name: str, frame: pd.DataFrame) -> Iterator[str]:
    """``frame`` as the view ``name`` of the DuckDB connection while the block runs."""
    duck.register(name, frame)
    try:
        yield name
    finally:
        duck.unregister(name)


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
