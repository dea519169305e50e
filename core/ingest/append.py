"""Adding a file to a dataset that exists: its transaction, the dataset's own mapping, the lines that repeat
events already stored, and the dataset's figures once the file is in.

An append runs the same load as a new dataset (:mod:`core.ingest.load`) with a :class:`FileTarget`: the
file gets the dataset's next file number, its good rows are compared with the dataset's stored events,
and a row equal to one of them on every canonical field (user, time, type, item, category, brand however
cased, price, quantity, and the session when the file gives one) is quarantined as ``duplicate`` naming the
file and line it repeats. Only the stored events within the file's time range are compared, so a weekly file
costs what its overlap with the dataset costs, not the dataset's size.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from core import store
from core.errors import ParameterError
from core.store import sql as store_sql
from core.ingest import spark_rows
from core.ingest.checks import stored_brand
from core.ingest.sniff import Mapping, Sniffed, sniff

#: the fields a stored event and a new row must share to be the same event (the session only when given)
EVENT_KEY = ("user_id", "event_time", "event_type", "item_id", "category", "brand", "price", "quantity")
_PRIOR_TYPES = {"user_id": "VARCHAR", "event_time": "TIMESTAMP", "event_type": "VARCHAR", "item_id": "VARCHAR",
                "category": "VARCHAR", "brand": "VARCHAR", "price": "DOUBLE", "quantity": "BIGINT",
                "session_id": "VARCHAR", "file_no": "INTEGER", "line_no": "BIGINT"}
DATASET_MAPPING_NOTE = "the dataset's own mapping: this file has the header its earlier files had"


@dataclass(frozen=True)
class FileTarget:
    """The dataset a file is appended to: its id, the file's number and the names of the files already in."""

    dataset_id: int
    file_no: int
    file_names: dict[int, str]
    #: the dataset's sessions were derived by the inactivity gap (its first file had no session column)
    sessions_derived: bool = False


@contextlib.contextmanager
def appending(engine: sa.Engine, name: str) -> Iterator[tuple[sa.Connection, FileTarget]]:
    """The append's transaction on dataset ``name`` and the file's :class:`FileTarget`.

    The dataset's row is written first: a second append to the same dataset waits for this one to end
    (PostgreSQL) or fails at its commit (DuckDB), so two files never take one number. Raises
    :class:`core.errors.DatasetNotFoundError` listing the datasets when there is none of that name.
    """
    with engine.begin() as conn:
        ds = store.get_dataset(conn, name)
        did = ds["dataset_id"]
        d = store.datasets
        if not spark_rows.is_spark(conn):  # Spark has no locks: its rewrite would only cost time
            conn.execute(d.update().where(d.c.dataset_id == did).values(rows_read=d.c.rows_read))
        store.record_first_files(conn, did)
        history = store.dataset_file_history(conn, did)
        yield conn, FileTarget(did, max(f["file_no"] for f in history) + 1,
                               {f["file_no"]: f["name"] or f"file {f['file_no']}" for f in history},
                               sessions_derived=bool((ds.get("report") or {}).get("sessions_derived")))


def dataset_mapping_instead(guess: Mapping, stored: dict | None) -> Mapping:
    """The dataset's stored mapping in place of the sniffed ``guess`` when the file has the header the dataset was
    loaded with (same columns, with or without a header alike); its encoding, delimiter, compression and lines
    above the table are this file's. The guess otherwise."""
    if not stored or not stored.get("source_columns"):
        return guess
    mine = Mapping.from_dict(stored)
    if (mine.source_columns, mine.has_header) != (guess.source_columns, guess.has_header):
        return guess
    notes = [n for n in mine.notes if n != DATASET_MAPPING_NOTE] + [DATASET_MAPPING_NOTE]
    return replace(mine, encoding=guess.encoding, delimiter=guess.delimiter, compression=guess.compression,
                   skip_lines=guess.skip_lines, sheet=guess.sheet, confident=True, notes=notes)


def appendable(engine: sa.Engine, name: str) -> dict:
    """Dataset ``name`` to append a file to; :class:`ParameterError` for a connected one (its events are its table's)."""
    ds = store.get_dataset(engine, name)
    if ds["layout"] == store.CONNECTED_LAYOUT:
        raise ParameterError(f"dataset {name!r} is a team's table read in place ({ds['source']}): a file cannot be "
                             "appended to it; add the rows to that table, or load the file as a dataset of its own",
                             parameter="append", cases=[name])
    return ds


def sniff_for_dataset(path: str | Path, engine: sa.Engine, dataset: str, sheet: str | None = None,
                      skip_lines: int | None = None) -> Sniffed:
    """:func:`core.ingest.sniff.sniff` of a file to append to ``dataset``, the dataset's own mapping offered first
    (:func:`dataset_mapping_instead`). Raises what ``sniff`` raises, and
    :class:`core.errors.DatasetNotFoundError` when there is no such dataset."""
    stored = appendable(engine, dataset).get("mapping")
    sniffed = sniff(path, engine, sheet=sheet, skip_lines=skip_lines)
    return replace(sniffed, mapping=dataset_mapping_instead(sniffed.mapping, stored))


def stage_prior_events(conn: sa.Connection, duck, table: str, dataset_id: int, first: dt.datetime,
                       last: dt.datetime, tmp: Path, native_store: bool) -> None:
    """Copy the dataset's stored events from ``first`` to ``last`` (their key, file and line) into the DuckDB
    table ``table``: from the store's own tables on DuckDB, by ``COPY`` out of PostgreSQL otherwise."""
    cols = [c for c in _PRIOR_TYPES if c not in ("file_no", "line_no")]
    select = (f"SELECT {', '.join(cols)}, coalesce(file_no, 1) AS file_no, line_no FROM cs_events "
              f"WHERE dataset_id = {{p}} AND event_time BETWEEN {{p}} AND {{p}}")
    if native_store:
        duck.execute(f"CREATE TEMP TABLE {table} AS {select.format(p='?')}", [dataset_id, first, last])
        return
    if spark_rows.is_spark(conn):
        spark_rows.stage_prior_events(conn, duck, table, dataset_id, first, last, _PRIOR_TYPES)
        return
    out = tmp / f"{table}.csv"
    with store.driver_connection(conn).cursor() as cur, open(out, "wb") as fh, \
            cur.copy(f"COPY ({select.format(p='%s')}) TO STDOUT (FORMAT csv)", (dataset_id, first, last)) as cp:
        for chunk in cp:
            fh.write(chunk)
    types = "{" + ", ".join(f"'{c}': '{t}'" for c, t in _PRIOR_TYPES.items()) + "}"
    duck.execute(f"CREATE TEMP TABLE {table} AS SELECT * FROM read_csv(?, columns = {types}, header = false, "
                 f"auto_detect = false, quote = '\"', escape = '\"', allow_quoted_nulls = false)", [str(out)])
    out.unlink()


def mark_repeats(duck, chk: str, row0: int, prior: str, repeats: str, target: FileTarget,
                 with_session: bool) -> int:
    """Quarantine as ``duplicate`` the good rows of the checked table ``chk`` that equal an event in ``prior``,
    naming the earliest file and line they repeat; their row numbers go to ``repeats`` (``rn``). Returns how many."""
    key = [*EVENT_KEY, "session_id"] if with_session else list(EVENT_KEY)
    same = " AND ".join(["k.user_id = p.user_id", "k.event_time = p.event_time"]
                        + [f"{_checked(c)} IS NOT DISTINCT FROM p.{c}" for c in key[2:]])
    order = "p.file_no * 1e12 + coalesce(p.line_no, 0)"
    names = pd.DataFrame({"file_no": pd.Series(list(target.file_names), dtype="int64"),
                          "name": list(target.file_names.values())})
    view = f"{repeats}_names"
    duck.register(view, names)
    try:
        duck.execute(
            f"CREATE TEMP TABLE {repeats} AS SELECT m.rn, CASE WHEN m.line_no IS NULL THEN "
            f"printf('repeats an event already in the dataset, loaded from %s (file %d)', n.name, m.file_no) "
            f"ELSE printf('repeats an event already in the dataset: line %d of %s (file %d)', m.line_no, n.name, "
            f"m.file_no) END AS detail FROM (SELECT k.rowid - {int(row0)} AS rn, arg_min(p.file_no, {order}) AS "
            f"file_no, arg_min(p.line_no, {order}) AS line_no FROM {chk} k JOIN {prior} p ON {same} "
            f"WHERE k.reason IS NULL GROUP BY k.rowid) m LEFT JOIN {view} n ON n.file_no = m.file_no")
    finally:
        duck.unregister(view)
    duck.execute(f"UPDATE {chk} SET reason = 'duplicate', detail = r.detail FROM {repeats} r "
                 f"WHERE {chk}.rowid - {int(row0)} = r.rn")
    return duck.execute(f"SELECT count(*) FROM {repeats}").fetchone()[0]


def _checked(column: str) -> str:
    """The checked row's value of ``column`` as the stored events hold it (the brand lower-cased)."""
    return stored_brand("k.brand") if column == "brand" else f"k.{column}"


def file_users(dataset_id: int, file_no: int) -> sa.Select:
    """A SELECT of the shoppers with events in file ``file_no`` of the dataset: the only ones whose session days
    an append changes."""
    e = store.stored_events.c
    return sa.select(e.user_id).where(e.dataset_id == dataset_id, e.file_no == file_no).distinct()


def renumber_sessions(conn: sa.Connection, dataset_id: int, file_no: int) -> None:
    """Derive again the sessions of the shoppers in file ``file_no`` over all their events in the dataset, as a load
    of every file at once would (a new session after a gap of ``SESSION_GAP_MINUTES``, numbered per shopper):
    the file's sessions were numbered within the file alone, and may continue one of an earlier file."""
    e = store.stored_events
    users = file_users(dataset_id, file_no)
    flag = store_sql.new_session(e.c.user_id, e.c.event_time)
    flagged = (sa.select(e.c.user_id, e.c.event_time, flag.label("new_session"))
               .where(e.c.dataset_id == dataset_id, e.c.user_id.in_(users)).subquery("flagged"))
    number = sa.func.sum(flagged.c.new_session).over(partition_by=flagged.c.user_id,
                                                     order_by=flagged.c.event_time, rows=(None, 0))
    numbered = sa.select(flagged.c.user_id, flagged.c.event_time, number.label("n")).subquery("numbered")
    sid = (numbered.c.user_id + "-" + sa.cast(numbered.c.n, sa.String)).label("sid")
    # ties share their number (the second of two events at one time starts no session): one per shopper and time
    s = sa.select(numbered.c.user_id, numbered.c.event_time, sid).distinct().subquery("renumbered")
    conn.execute(e.update().where(e.c.dataset_id == dataset_id, e.c.user_id == s.c.user_id,
                                  e.c.event_time == s.c.event_time, e.c.session_id.is_distinct_from(s.c.sid))
                 .values(session_id=s.c.sid))


def record_file(conn: sa.Connection, dataset_id: int, file_no: int, report) -> None:
    """Add the loaded file to the dataset's file history (``report``: its :class:`core.ingest.load.IngestReport`)."""
    conn.execute(store.dataset_files.insert().values(
        dataset_id=dataset_id, file_no=file_no, name=report.source, loaded_at=_now(), rows_read=report.rows_read,
        rows_loaded=report.rows_loaded, rows_quarantined=report.rows_quarantined,
        rows_repeated=report.repeated_events, first_event=report.first_event, last_event=report.last_event,
        report_json=json.dumps(report.to_dict())))


def add_to_totals(conn: sa.Connection, dataset_id: int, report) -> None:
    """The dataset's row once the file is in: its rows read, loaded and quarantined grow by the file's; its
    shoppers and first and last event are counted again from its session days (derived with the file)."""
    sd, d = store.session_days.c, store.datasets
    users, first, last = conn.execute(sa.select(sa.func.count(sa.distinct(sd.user_id)), sa.func.min(sd.first_event),
                                                sa.func.max(sd.last_event)).where(sd.dataset_id == dataset_id)).one()
    conn.execute(d.update().where(d.c.dataset_id == dataset_id).values(
        rows_read=d.c.rows_read + report.rows_read, rows_loaded=d.c.rows_loaded + report.rows_loaded,
        rows_quarantined=d.c.rows_quarantined + report.rows_quarantined, n_users=users, first_event=first,
        last_event=last))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)
