"""Load an event file into the store as one named dataset: validate, quarantine, reconcile.

The file is first made readable for DuckDB (:mod:`core.ingest.prepare`: one byte scan, the rewrites it
calls for), then one SQL pass (:mod:`core.ingest.checks`) reads it, converts and checks every field and
gives each bad row a reason code and a detail; lines that do not split into the expected fields
land in DuckDB's reject table with their line number and text. Exact repeats of an earlier line
are found among rows sharing a hash of their fields. Good rows go to ``cs_events`` with their file's number in the
dataset and their physical line, bad ones to ``cs_quarantine`` with their physical line number. A file appended
to a dataset (:mod:`core.ingest.append`) runs the same load. Everything (dataset row, events, quarantine)
is written in one transaction of the store: a failure or a cancel leaves nothing behind, and
``rows_read == rows_loaded + rows_quarantined`` is checked before it commits.

A line too long to load is quarantined as ``line_too_long`` with its first characters. After the
read, the rows, the rejected lines and the empty lines must cover every line of the file, or the
load is refused: DuckDB loses lines without a word after a quote left open in a large file, and a
quote opened and never closed on its line makes it read the following lines as one field (refused
with the line to fix). A quoted field may run over several lines: such a row is one row read, and
the quarantine still gives each row the line it starts on.

On a DuckDB store the SQL runs in the store's own connection; on PostgreSQL an in-memory
DuckDB reads and validates, and the results are streamed into PostgreSQL with ``COPY``.
"""
from __future__ import annotations

import datetime as dt
import json
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import duckdb
import pandas as pd
import sqlalchemy as sa

from core import config, store
from core.store import derived
from core.ingest import append as appends, spark_rows
from core.ingest.checks import LoadSQL, _sql_literal
from core.ingest.transaction import load_transaction
from core.store.dataset_names import check_dataset_name
from core.errors import SchemaError
from core.ingest.lines import count_empty_lines
from core.ingest.prepare import (_DUCKDB_MAX_LINE_BYTES, _MAX_LINE_SHOWN, _NUL_SHOWN_AS,
                          _WINDOWS_1252_NOTE, Progress, _check_required, _follow_json_columns, _LineMap,
                          _open_bytes, _prepare_source, _registered, _scan_bytes, _scan_lines, _table_as_csv, _tick)
from core.ingest.sniff import PRICE_NOTE_START, STATUS_NOTE_STARTS, Mapping, price_note, sniff, status_notes
from core.ingest.delimited import DELIMITER_NAMES

_EVENT_COLUMNS = ("user_id", "event_time", "event_type", "item_id", "category", "brand", "price", "quantity",
                  "session_id", "file_no", "line_no")
_COPY_CHUNK_BYTES = 1 << 20
#: memory of the in-memory DuckDB that validates a load for PostgreSQL; beyond it DuckDB spills to disk
_STAGING_MEMORY_LIMIT = "2GB"
#: characters of a rejected line DuckDB keeps in its reject table
_REJECT_TEXT_CAP = 10_000


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
    #: the file's number in its dataset: 1 for the load that made it, the next one for each append
    file_no: int = 1
    appended: bool = False
    #: of the quarantined rows: lines that repeat an event already in the dataset (another file's)
    repeated_events: int = 0

    def to_dict(self) -> dict:
        """JSON-safe dict: times as ISO text, every other field as is."""
        out = asdict(self)
        for key in ("first_event", "last_event"):
            out[key] = out[key].isoformat(sep=" ") if out[key] is not None else None
        return out


def repeats_note(n_repeats: int, n_loaded: int) -> str:
    """What an append says of its lines that repeat events already in its dataset."""
    line = "line repeats an event" if n_repeats == 1 else "lines repeat events"
    tail = "this file adds no event" if n_loaded == 0 else "quarantined as duplicate, not added again"
    return f"{n_repeats:,} {line} already in the dataset: {tail}"


# --- public API ------------------------------------------------------------------------------------------


def ingest_file(engine: sa.Engine, path: str | Path, name: str, mapping: Mapping | None = None,
                progress: Progress | None = None, append: bool = False,
                source_name: str | None = None) -> IngestReport:
    """Load the event file at ``path`` as a new dataset called ``name``, or with ``append`` add it to that dataset.

    The file is delimited text (optionally gzip'd), or a spreadsheet (.xlsx, .xls, .ods) or a
    Parquet file, recognised by content and written out as CSV first (:mod:`core.ingest.tabular`).
    ``mapping`` defaults to :func:`core.ingest.sniff.sniff`'s guess (a remembered mapping for the
    same header when there is one). ``progress(fraction, message)`` is called at each stage
    (reading, validating, loading, done) and may raise :class:`IngestCancelled` to cancel.

    An append (:mod:`core.ingest.append`) offers the dataset's own mapping first (when the header is the
    one it was loaded with), quarantines the lines that repeat events already in the dataset as
    ``duplicate``, records the file in the dataset's history and derives the dataset's price bands, price
    edges and session days again over all its events; the dataset's counts, shoppers and first and last
    event include the file. An append whose every line was already there adds no event and says so.
    ``source_name``: the file's name as the analyst knows it (an upload saved under another name), recorded
    in the report and the dataset's file history; ``path``'s name by default.

    Returns the :class:`IngestReport`, also stored as the dataset's ``report_json`` (a new dataset) and with
    the file in the dataset's history (``cs_dataset_files``).
    Raises :class:`SchemaError` (its ``reason`` says which) when the mapping lacks a required column,
    when the file cannot be read to its end (a cut-off .gz) or has a quote that swallows later lines, or
    when nothing could be loaded (empty, header only, binary, every row bad), :class:`ParameterError` when
    ``name`` is no usable dataset name (:func:`core.store.dataset_names.check_dataset_name`) or an option of the
    mapping holds a value ingest cannot use (:meth:`core.ingest.sniff.Mapping.validate`),
    :class:`DatasetExistsError` when ``name`` is taken (a new dataset), :class:`DatasetNotFoundError` when
    there is no dataset to append to, :class:`IngestCancelled` when cancelled. In every error case nothing
    is written.
    """
    started = time.perf_counter()
    check_dataset_name(name)  # before the file is read: a refused name costs nothing
    stored_mapping = appends.appendable(engine, name).get("mapping") if append else None
    path = Path(path)
    _tick(progress, 0.0, "reading the file's layout")
    with tempfile.TemporaryDirectory(prefix=store.temp_prefix("ingest")) as tmp:
        data_path, converted, kind = _table_as_csv(path, Path(tmp), progress, mapping.sheet if mapping else None)
        table_note = converted.note if converted else None
        if mapping is None:
            mapping = sniff(data_path, engine).mapping
            if append:
                mapping = appends.dataset_mapping_instead(mapping, stored_mapping)
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
        job.started, job.source_name = started, source_name or path.name
        return _run_job(engine, job, name, path, append)


def _run_job(engine: sa.Engine, job: _Job, name: str, path: Path, append: bool) -> IngestReport:
    """Run the load in its transaction: in the DuckDB store's own connection, or validated by an in-memory
    DuckDB for PostgreSQL (its statistics refreshed after the commit) and Spark (:mod:`core.ingest.spark_rows`)."""
    if store.is_duckdb(engine):
        with load_transaction(engine, name, append) as (conn, target):
            return job.run(conn, store.driver_connection(conn), name, path, native_store=True, target=target)
    duck = duckdb.connect(":memory:")
    try:
        duck.execute(f"SET temp_directory = {_sql_literal(str(job.tmp / 'spill'))}")
        duck.execute(f"SET memory_limit = {_sql_literal(_STAGING_MEMORY_LIMIT)}")
        with load_transaction(engine, name, append) as (conn, target), spark_rows.undone_if_failed(conn, job, target):
            report = job.run(conn, duck, name, path, native_store=False, target=target)
    finally:
        duck.close()
    analyze_loaded(engine)
    return report


def analyze_loaded(engine: sa.Engine) -> None:
    """Fresh PostgreSQL planner statistics for every table a load writes (:func:`core.store.analyze`), after its
    commit; code that inserts events itself (tests, benchmarks) calls it too, or PostgreSQL plans the next queries
    for the rows it counted before the insert."""
    store.analyze(engine, store.stored_events, store.quarantine, store.session_days, store.price_edges, store.shoppers,
                  *store.shopper_values.values(), store.type_days, store.price_counts, store.dataset_files)


def remember_mapping(engine: sa.Engine, signature: str, mapping: Mapping) -> None:
    """Store ``mapping`` for files whose header hashes to ``signature`` (replacing an older one)."""
    mapping.validate()
    payload = json.dumps(mapping.to_dict())
    with engine.begin() as conn:
        conn.execute(store.mappings.delete().where(store.mappings.c.signature == signature))
        conn.execute(store.mappings.insert().values(signature=signature, mapping_json=payload,
                                                    updated_at=dt.datetime.now(dt.UTC).replace(tzinfo=None)))


# --- the load's transaction ------------------------------------------------------------------------------


# --- the load -------------------------------------------------------------------------------------------------


class _Job(LoadSQL):
    """One load run, its SQL written by :class:`core.ingest.checks.LoadSQL`.

    Stages: (1) one pass reads the file and converts and checks every field into a narrow
    checked table (row number, canonical fields, reason, detail, a hash of the raw fields);
    (2) duplicates are found among rows sharing a hash and marked; (3) when any row is bad,
    one streaming pass over the file finds blank lines (DuckDB skips them) and the raw text
    of duplicate rows, so every quarantined row gets its physical line number; (4) good rows
    go to ``cs_events``, bad ones to ``cs_quarantine``.
    """

    def run(self, conn: sa.Connection, duck, name: str, path: Path, native_store: bool,
            target: appends.FileTarget | None = None) -> IngestReport:
        self.conn, self.target, self.native_store, self.n_repeats = conn, target, native_store, 0
        try:
            return self._run(conn, duck, name, path, native_store)
        finally:
            if native_store:  # the in-memory DuckDB of a PostgreSQL load is closed by the caller
                self._drop(duck)

    def _drop(self, duck) -> None:
        for table in (self.chk, self.rej, self.rej_scan, self.rej_lines, self.skipped, self.blanks, self.dups,
                      self.raws, self.repeats, self.shifts, self.prior, self.repeated):
            try:
                duck.execute(f"DROP TABLE IF EXISTS {table}")
            except Exception:  # noqa: BLE001 - an aborted transaction drops them with the rollback
                break

    def _run(self, conn: sa.Connection, duck, name: str, path: Path, native_store: bool) -> IngestReport:
        _tick(self.progress, 0.05, "reading and validating rows")
        self._read_checked(duck, path)
        self._mark_unpaid_orders(duck)
        n_named = self._name_categories(duck)
        _tick(self.progress, 0.45, "checking duplicates")
        rows_read, stats, by_reason = self._reconcile(duck, path)
        _tick(self.progress, 0.6, "loading events")
        target = self.target
        did = self.did = target.dataset_id if target else store.next_dataset_id(conn)
        file_no = target.file_no if target else 1
        banded = (native_store or spark_rows.is_spark(conn)) and target is None  # an append's: derived below
        sessions_derived = self._write_rows(conn, duck, did, native_store, file_no, banded)
        store.add_spellings(conn, did, duck.execute(self._spellings_sql()).df())
        _tick(self.progress, 0.9, "summarising sessions and price bands")
        if target and sessions_derived and target.sessions_derived:  # never over sessions a file gave
            appends.renumber_sessions(conn, did, file_no)
        if target is None:
            derived.derive_dataset(conn, did, banded=banded)
        elif stats["rows"]:  # a file that adds no event changes no derived figure; one that does, its shoppers' days
            derived.derive_dataset(conn, did, users=appends.file_users(did, file_no))
        m = self.mapping
        report = IngestReport(
            dataset=name, dataset_id=did, layout=m.layout, rows_read=rows_read, rows_loaded=stats["rows"],
            rows_quarantined=sum(by_reason.values()), users=stats["users"], events_by_type=stats["by_type"],
            unknown_event_types=stats["unknown"], first_event=stats["first"], last_event=stats["last"],
            quarantine_by_reason=by_reason, sessions_derived=sessions_derived, appended=target is not None,
            notes=self._report_notes(stats, sessions_derived, n_named), source=self.source_name, file_no=file_no,
            repeated_events=self.n_repeats)
        _tick(self.progress, 0.95, "recording the dataset")
        report.seconds = round(time.perf_counter() - self.started, 3)
        self._record(conn, report)
        # still inside the transaction: a cancel here also leaves nothing
        _tick(self.progress, 1.0, f"done: {report.rows_loaded:,} rows loaded, "
                                  f"{report.rows_quarantined:,} quarantined")
        return report

    def _record(self, conn: sa.Connection, report: IngestReport) -> None:
        """The dataset's row (a new one, or the totals of the one appended to) and the file in its history."""
        if report.appended:
            appends.add_to_totals(conn, report.dataset_id, report)
        else:
            conn.execute(store.datasets.insert().values(
                dataset_id=report.dataset_id, name=report.dataset, layout=report.layout, source=report.source,
                created_at=dt.datetime.now(dt.UTC).replace(tzinfo=None), rows_read=report.rows_read,
                rows_loaded=report.rows_loaded, rows_quarantined=report.rows_quarantined, n_users=report.users,
                first_event=report.first_event, last_event=report.last_event,
                mapping_json=json.dumps(self.mapping.to_dict()), report_json=json.dumps(report.to_dict()),
            ))
        appends.record_file(conn, report.dataset_id, report.file_no, report)

    def _mark_repeats(self, duck) -> None:
        """Quarantine the good rows that repeat an event already in the dataset appended to (none for a new one)."""
        if self.target is None:
            return
        first, last = duck.execute(f"SELECT min(event_time), max(event_time) FROM {self.chk} "
                                   f"WHERE reason IS NULL").fetchone()
        if first is None:
            return
        appends.stage_prior_events(self.conn, duck, self.prior, self.target.dataset_id, first, last, self.tmp,
                                   self.native_store)
        self.n_repeats = appends.mark_repeats(duck, self.chk, self.row0, self.prior, self.repeated, self.target,
                                              with_session=bool(self.mapping.columns.get("session_id")))
        duck.execute(f"INSERT INTO {self.dups} SELECT rn, NULL FROM {self.repeated}")

    def _read_checked(self, duck, path: Path) -> None:
        """Run the checking pass into the checked table; a file DuckDB cannot read is a :class:`SchemaError`."""
        sql, params = self._check_sql()
        try:
            duck.execute(sql, params)
        except Exception as exc:  # noqa: BLE001 - DuckDB reader errors: unreadable file
            if not isinstance(exc, duckdb.IOException) and "read_csv" not in str(exc) and "CSV" not in str(exc) \
                    and "encoding" not in str(exc).lower():
                raise
            raise SchemaError(f"{path.name} could not be read as a {DELIMITER_NAMES[self.mapping.delimiter]}-"
                              f"separated {self.mapping.encoding} file: {str(exc).splitlines()[0]}",
                              reason="unreadable_file") from exc

    def _reconcile(self, duck, path: Path) -> tuple[int, dict, dict[str, int]]:
        """``(rows read, stats of the good rows, quarantined rows by reason)`` once every line of the file is
        accounted for as a row, a rejected line or an empty line, and rows read = loaded + quarantined.

        Raises :class:`SchemaError` when the file has no data rows or every row is bad.
        """
        self._collect_rejects(duck)
        self._add_long_lines(duck)
        self._refuse_swallowed_lines(duck, path)
        n_staged = duck.execute(f"SELECT count(*) FROM {self.chk}").fetchone()[0]
        self._refuse_lost_lines(duck, path, n_staged)
        self._mark_duplicates(duck)
        self._mark_repeats(duck)
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
        if rows_loaded == 0 and not self.n_repeats:  # an append of lines all there already is said, not refused
            examples = [r[0] for r in duck.execute(
                f"SELECT detail FROM ({self._quarantine_select()}) ORDER BY line_no LIMIT 3").fetchall()]
            raise SchemaError(
                f"nothing could be loaded from {path.name}: all {rows_read:,} rows are bad "
                f"({', '.join(f'{k}: {v:,}' for k, v in by_reason.items())}); for example: {'; '.join(examples)}",
                cases=examples, reason="no_data")
        return rows_read, stats, by_reason

    def _write_rows(self, conn: sa.Connection, duck, did: int, native_store: bool, file_no: int,
                    banded: bool) -> bool:
        """Write the good rows to ``cs_events`` and the bad ones to ``cs_quarantine`` as file ``file_no`` of dataset
        ``did``; True when sessions were derived by the inactivity gap (the file has no session column).
        ``banded``: the price bands are computed as the events go in (a new dataset on DuckDB or Spark)."""
        events_sql, sessions_derived = self._events_select(file_no)
        q_sql = self._quarantine_select()
        if native_store:
            cols = ", ".join(("dataset_id",) + _EVENT_COLUMNS)
            if banded:  # the price bands computed as the events go in (derived.banded_events_sql)
                staged = sa.text(f"SELECT category, item_id, price FROM {self.chk} WHERE reason IS NULL").columns(
                    sa.column("category", sa.String), sa.column("item_id", sa.String),
                    sa.column("price", sa.Float)).subquery("staged")
                derived.write_price_edges(conn, did, staged)
                duck.execute(f"INSERT INTO cs_events ({cols}, price_band) SELECT ?, * FROM "
                             f"({derived.banded_events_sql(conn, did, events_sql)})", [did])
            else:
                duck.execute(f"INSERT INTO cs_events ({cols}) SELECT ?, * FROM ({events_sql})", [did])
            _tick(self.progress, 0.85, "writing the quarantine")
            duck.execute(f"INSERT INTO cs_quarantine (dataset_id, file_no, line_no, raw_line, reason, detail) "
                         f"SELECT ?, ?, * FROM ({q_sql})", [did, file_no])
        elif spark_rows.is_spark(conn):
            spark_rows.write_rows(conn, duck, did, file_no, (events_sql, _EVENT_COLUMNS), q_sql, banded, self.progress)
        else:
            self._copy_to_postgres(conn, duck, did, file_no, events_sql, q_sql)
        return sessions_derived

    def _report_notes(self, stats: dict, sessions_derived: bool, n_named: int = 0) -> list[str]:
        """The report's notes: the mapping's own, the price and status notes of the mapping loaded with (set by
        hand or not), derived sessions, event types kept as given and Online Retail's cancellations."""
        m = self.mapping
        notes = [n for n in m.notes if not n.startswith((PRICE_NOTE_START, *STATUS_NOTE_STARTS))]
        notes += [*filter(None, [price_note(m)]), *status_notes(m)]
        if n_named:
            notes.append(f"{n_named:,} rows without a category name took the name other rows give their category "
                         f"id ({m.category_fallback!r})")
        if sessions_derived:
            notes.append(f"the file has no session column: sessions derived by a "
                         f"{config.SESSION_GAP_MINUTES}-minute inactivity gap")
        if stats["unknown"]:
            notes.append(f"event types kept as given (not one of {list(config.EVENT_TYPES)}): "
                         f"{', '.join(stats['unknown'])}")
        if self.n_repeats:
            notes.insert(0, repeats_note(self.n_repeats, stats["rows"]))
        if m.layout == "online_retail" and stats["negative_quantity"]:
            notes.append(f"{stats['negative_quantity']:,} cancellation lines loaded as purchases with "
                         f"negative quantity")
        return notes

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
        """The data lines too long to load (left out of what DuckDB reads: :func:`core.ingest.prepare._empty_long_lines`)
        as rejected lines of their own reason, each with its first characters."""
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
        self.any_skipped = duck.execute(f"SELECT count(*) > 0 FROM {self.skipped}").fetchone()[0]

    def _store_line_map(self, duck, found: _LineMap, quoted: bool) -> None:
        """Write what :func:`core.ingest.prepare._scan_lines` found into the load's tables (one statement per table:
        executemany runs one per row, 195 s for 408,773 repeated rows)."""
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

    def _copy_to_postgres(self, conn: sa.Connection, duck, did: int, file_no: int, events_sql: str,
                          q_sql: str) -> None:
        pg = store.driver_connection(conn)
        targets = [
            (events_sql, "cs_events", ("dataset_id",) + _EVENT_COLUMNS, 0.6, "loading events"),
            (f"SELECT {int(file_no)}, * FROM ({q_sql})", "cs_quarantine",
             ("dataset_id", "file_no", "line_no", "raw_line", "reason", "detail"), 0.85, "writing the quarantine"),
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

