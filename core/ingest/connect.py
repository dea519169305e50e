"""Connected datasets: a team's own events table read in place, not copied.

``connect_table`` maps the table's columns onto the canonical event schema the way a file is mapped (the
same header aliases, checked on a sample of its rows, ``FIELD=COLUMN`` overrides), records the mapping, and
makes the dataset a view, ``cs_connected_<id>``, over the table: each column cast to the canonical type, event
types read through the same aliases, brands lower-cased, sessions derived by the inactivity gap when the
table has none, the price band from edges computed over the table's items. A row a file load would quarantine
(no shopper, no or an implausible time, no event type, a price that is negative or too high) is left out of
the view, and the report counts them per reason, computed in the database: nothing is copied out of it.

The table lives in the store's own database (a schema of the team's PostgreSQL, a table of the Spark
metastore, a table of the DuckDB file): the view is a query of that database. The dataset's summaries (session
days, per-shopper figures, price edges) are aggregates written when it is connected; ``refresh_connected``
writes them again when the team's table has grown.
"""
from __future__ import annotations

import datetime as dt
import decimal
import json
import time
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from core import config, store
from core.errors import ParameterError, SchemaError
from core.ingest.checks import _MAX_TIME, _MIN_TIME
from core.ingest.columns import (CANONICAL_FIELDS, EVENT_ALIASES, ORDER_WHOLE_EVENTS, _match_aliases, _norm,
                                 order_lines_note)
from core.ingest.load import IngestReport
from core.store import derived, sql
from core.store.dataset_names import check_dataset_name
from core.store.event_views import (CONNECTED_LAYOUT, connected_view_name, create_view, drop_view, unreadable_connected,
                                    write_events_view)

#: Rows of the table read to propose the mapping and to tell a column's kind.
SAMPLE_ROWS = 500
REQUIRED = ("user_id", "event_time", "event_type")
#: What each reason means, in the words of a file's quarantine.
REASONS = {
    "missing_user": "no shopper id", "missing_time": "no time", "unparseable_time": "a time that is no time",
    "time_out_of_range": f"a time outside {_MIN_TIME} to {_MAX_TIME}", "missing_event_type": "no event type",
    "non_numeric_price": "a price that is no number", "negative_price": "a negative price",
    "price_too_high": f"a price above {config.MAX_PRICE:,.0f}",
    "non_numeric_quantity": "a quantity that is no whole number",
}


@dataclass
class TableProposal:
    """What :func:`propose_mapping` found: the table's columns, their kinds (``time``, ``number``, ``text``), the
    proposed canonical field -> column, notes, and the sampled rows (as text) the proposal was made from."""

    table: str
    source_columns: list[str]
    kinds: dict[str, str]
    columns: dict[str, str | None]
    notes: list[str]
    sample: list[list[str]]
    #: a column of category ids read where the category (a ``category_code``) is empty, as a file's (REES46)
    category_fallback: str | None = None
    #: the SELECT that reads a table of nested columns flat (GA4's BigQuery export; JSON columns on PostgreSQL), else None
    flat_sql: str | None = None
    #: whole orders kept as given, not read as purchases: the sample holds their lines too (as a file's sniff decides)
    whole_orders_kept: bool = False


def _split_name(table: str) -> tuple[str | None, str]:
    parts = table.split(".")
    if not table or len(parts) > 2 or not all(p.strip() for p in parts):
        raise ParameterError(f"table {table!r} is not a table name: expected TABLE or SCHEMA.TABLE",
                             parameter="table", cases=[table])
    return (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])


def _flat_sql(conn: Connection, qualified: str) -> tuple[str | None, str]:
    """A table with nested columns (GA4's BigQuery export: ``items``, ``event_params``; JSON columns on
    PostgreSQL): the SELECT that reads it flat as a file of it is read (one row per item, a column per parameter:
    ``core.ingest.json_tables``, ``core.ingest.spark_flat``, ``core.ingest.pg_flat``), and what that did; else
    ``(None, "")``."""
    if conn.dialect.name == "spark":
        from core.ingest.spark_flat import flat_select

        return flat_select(conn, qualified)
    if conn.dialect.name == "postgresql":
        from core.ingest.pg_flat import flat_select

        return flat_select(conn, qualified)
    if conn.dialect.name != "duckdb":
        return None, ""
    from core.ingest.json_tables import _ITEM, _flat_columns, _ident

    duck = store.driver_connection(conn)
    if not any(t.id in ("struct", "list", "map") for t in duck.sql(f"SELECT * FROM {qualified}").types):
        return None, ""
    columns, items, said, _ = _flat_columns(duck, qualified)
    source = qualified
    if items is not None:  # one row per item; an event without items keeps one row
        ident = _ident(items)
        source = f"(SELECT *, unnest(CASE WHEN len({ident}) > 0 THEN {ident} ELSE [NULL] END) AS {_ITEM} FROM {qualified})"
    return f"SELECT {', '.join(columns)} FROM {source}", said


def _sample(conn: Connection, table: str) -> tuple[list[str], list[list], str | None, str]:
    """The table's column names, its first :data:`SAMPLE_ROWS` rows, the SELECT reading it flat when its columns
    are nested and the note saying so (:func:`_flat_sql`); :class:`SchemaError` when there is no such table.
    (Read by a query, not the catalogue: duckdb-engine cannot reflect through SQLAlchemy.)"""
    schema, name = _split_name(table)
    quote = conn.dialect.identifier_preparer.quote
    qualified = f"{quote(schema)}.{quote(name)}" if schema else quote(name)
    try:
        with conn.begin_nested() if conn.dialect.name == "postgresql" else _nothing():
            conn.exec_driver_sql(f"SELECT * FROM {qualified} LIMIT 0").fetchall()  # no such table: a DBAPIError
            flat, note = _flat_sql(conn, qualified)
            result = conn.exec_driver_sql(f"SELECT * FROM ({flat or f'SELECT * FROM {qualified}'}) AS flat "
                                          f"LIMIT {SAMPLE_ROWS}")
            # the driver's own names: PyHive's SQLAlchemy keys drop what precedes a dot (items.item_id)
            names = [d[0] for d in result.cursor.description]
            return names, [list(r) for r in result], flat, note
    except sa.exc.DBAPIError as exc:
        raise SchemaError(f"No table {table!r} can be read in the store's database ({_first_line(exc)}): connect a "
                          f"table of that database (SCHEMA.TABLE), which cartsight reads in place",
                          reason="invalid_input", cases=[table]) from exc


@contextmanager
def _nothing():
    yield


def _first_line(exc: sa.exc.DBAPIError) -> str:
    return str(exc.orig or exc).strip().splitlines()[0][:200]


def _kind(values: list) -> str:
    filled = [v for v in values if v is not None]
    if filled and all(isinstance(v, (dt.datetime, dt.date)) for v in filled):
        zoned = any(isinstance(v, dt.datetime) and v.tzinfo is not None for v in filled)
        return "time_tz" if zoned else "time"  # a zoned time is read as UTC, whatever the session's zone
    if filled and all(isinstance(v, (int, float, decimal.Decimal)) and not isinstance(v, bool) for v in filled):
        return "number"  # a Decimal: PostgreSQL's numeric (how money is kept there), DuckDB's and Spark's DECIMAL
    return "text"


def propose_mapping(engine: Engine, table: str, overrides: dict[str, str | None] | None = None) -> TableProposal:
    """The mapping of ``table`` onto the canonical schema, from its column names and a sample of its rows (the
    file aliases), with ``overrides`` (field -> column, None to unmap) applied and checked; a required field may
    still lack a column (:func:`check_required`)."""
    with engine.connect() as conn:
        names, rows, flat, flat_note = _sample(conn, table)
    kinds = {n: _kind([r[i] for r in rows]) for i, n in enumerate(names)}
    text = [["" if v is None else str(v) for v in r] for r in rows]
    columns, notes = _match_aliases(names, text)
    notes = [flat_note, *notes] if flat_note else notes
    for fld, col in (overrides or {}).items():
        if fld not in CANONICAL_FIELDS:
            raise ParameterError(f"{fld!r} is no field of the event schema: expected one of {list(CANONICAL_FIELDS)}",
                                 parameter="map", cases=[fld])
        if col is not None and col not in names:
            raise SchemaError(f"{fld} is mapped to column {col!r}, which is not in table {table!r}. Columns in the "
                              f"table: {names}", column=fld, cases=[col], reason="missing_column")
        columns[fld] = col
    fallback = None
    if columns.get("category") and _norm(columns["category"]) == "category_code":
        fallback = next((n for n in names if _norm(n) in ("category_id", "categoryid")), None)
    event = columns.get("event_type")
    lines_note = order_lines_note(r[names.index(event)] for r in text) if event in names else None
    notes = [*notes, lines_note] if lines_note else notes  # whole orders beside their lines: a file's rule
    return TableProposal(table, names, kinds, columns, notes, text[:20], fallback, flat,
                         whole_orders_kept=lines_note is not None)


def check_required(proposal: TableProposal) -> None:
    """:class:`SchemaError` naming the first field a row cannot do without that has no column."""
    for fld in REQUIRED:
        if not proposal.columns.get(fld):
            raise SchemaError(f"no column of table {proposal.table!r} is the {fld}: map one with --map {fld}=COLUMN. "
                              f"Columns in the table: {proposal.source_columns}", column=fld, reason="missing_column")


def _time_unit(texts: list[str]) -> float:
    """Microseconds per unit of a numeric time column, by the size of its sampled values (seconds, milliseconds,
    microseconds or nanoseconds since 1970)."""
    values = [abs(float(v)) for v in texts if v.strip()]
    biggest = max(values, default=0.0)
    return 1e6 if biggest < 1e11 else 1e3 if biggest < 1e14 else 1.0 if biggest < 1e17 else 1e-3


def _time_expr(conn: Connection, col: sa.ColumnClause, kind: str, texts: list[str]) -> sa.ColumnElement:
    """The column as a naive UTC timestamp (NULL where it holds no time), in the connection's SQL."""
    backend, quoted = conn.dialect.name, str(col.compile(dialect=conn.dialect))
    if kind == "time_tz" and backend in ("duckdb", "postgresql"):
        return sa.func.timezone("UTC", col)
    if kind in ("time", "time_tz"):
        return sa.cast(col, sa.DateTime)
    if kind == "number":
        micros = sa.cast(col * _time_unit(texts), sa.BigInteger)
        if backend == "duckdb":
            return sa.func.make_timestamp(micros)
        if backend == "postgresql":
            return sa.func.timezone("UTC", sa.func.to_timestamp(sa.cast(micros, sa.Double) / 1e6))
        return sa.cast(sa.func.timestamp_micros(micros), sa.DateTime)
    if backend in ("duckdb", "spark"):
        return _try_text_time(backend, quoted)
    if backend == "postgresql":
        return _pg_text_time(col)
    raise ParameterError(f"column {col.name!r} (event_time) holds text; on {backend} connect a table whose time is a "
                         f"timestamp or a number, or a view of it that casts the text", parameter="map",
                         cases=[col.name])


def _try_text_time(backend: str, quoted: str) -> sa.ColumnElement:
    """A text time on DuckDB or Spark as a naive UTC timestamp, NULL where the text is none (their safe cast): with
    a UTC offset after the time (``+02``, ``-05:30``) converted to UTC, as a file's load does, whatever the
    session's time zone; without one, or with `` UTC`` or ``Z`` after it, read as it is. (Each literal names
    the column once: PyHive's compiler refuses a column expression with more than two dots.)"""
    if backend == "duckdb":
        text = f"replace(trim(CAST({quoted} AS VARCHAR)), ' UTC', '')"
        naive = sa.literal_column(f"TRY_CAST({text} AS TIMESTAMP)", sa.DateTime)
        offset = sa.literal_column(f"timezone('UTC', TRY_CAST({text} AS TIMESTAMPTZ))", sa.DateTime)
        has_offset = sa.func.regexp_matches(sa.literal_column(text, sa.String), _PG_DATE + _PG_OFFSET)
    else:
        text = f"replace(trim(CAST({quoted} AS STRING)), ' UTC', '')"
        naive = sa.literal_column(f"try_cast({text} AS TIMESTAMP_NTZ)", sa.DateTime)
        offset = sa.literal_column(
            f"CAST(to_utc_timestamp(try_cast({text} AS TIMESTAMP), current_timezone()) AS TIMESTAMP_NTZ)", sa.DateTime)
        has_offset = sa.literal_column(text, sa.String).op("RLIKE")(_PG_DATE + _PG_OFFSET)
    return sa.case((has_offset, offset), else_=naive)


#: an ISO date (a year from 1000) and, when given, a time of day, each field in range, as PostgreSQL casts it; with
#: :data:`_PG_OFFSET` after the time, a time at that UTC offset (on every store; no backslash, which Spark's string
#: literals would read as an escape)
_PG_DATE = r"^[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
_PG_TIME = _PG_DATE + r"([ T]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9]([.][0-9]{1,6})?)?)?"
_PG_OFFSET = r"[ T]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9]([.][0-9]{1,6})?)?[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?$"


def _pg_text_time(col: sa.ColumnClause) -> sa.ColumnElement:
    """A text time on PostgreSQL as a naive UTC timestamp, NULL where the text is none (its row quarantined as
    ``unparseable_time``, as a file's would be): PostgreSQL has no safe cast, and one bad row would fail the whole
    query. Read: ISO dates and times (``2024-03-01``, ``2024-03-01 09:30``, ``2024-03-01T09:30:00.25``), with
    `` UTC`` or ``Z`` after them, or a UTC offset after the time (``+02``, ``-05:30``: converted to UTC). Other
    forms (``03/01/2024``) are NULL. Nested CASEs: PostgreSQL evaluates a CASE's branches in order, so no cast
    runs on a text the patterns refused, and the day is checked against its month (no 30 February) first."""
    from sqlalchemy.dialects.postgresql import TIMESTAMP

    v = sa.func.regexp_replace(sa.func.trim(sa.cast(col, sa.String)), "( UTC|Z)$", "")
    null = sa.cast(sa.null(), sa.DateTime)
    year, month, day = (sa.cast(sa.func.substr(v, start, n), sa.Integer) for start, n in ((1, 4), (6, 2), (9, 2)))
    month_days = sa.extract("day", sa.func.make_date(year, month, 1) + sa.text("interval '1 month - 1 day'"))
    parsed = sa.case((v.regexp_match(_PG_TIME + "$"), sa.cast(v, sa.DateTime)),
                     (v.regexp_match(_PG_DATE + _PG_OFFSET), sa.func.timezone("UTC", sa.cast(v, TIMESTAMP(timezone=True)))),
                     else_=null)
    return sa.case((v.regexp_match(_PG_DATE), sa.case((day <= month_days, parsed), else_=null)), else_=null)


#: a number as PostgreSQL's cast reads it and double precision holds it (no exponent over 99): the text a
#: ``TRY_CAST`` would read on DuckDB and Spark, so that no row fails the whole query there
_PG_NUMBER = r"^[+-]?([0-9]{1,30}(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,2})?$"


def _text_number(conn: Connection, col: sa.ColumnClause) -> sa.ColumnElement:
    """A text column's number as a double, NULL where the text is no number."""
    value = sa.func.trim(sa.cast(col, sa.String))
    if conn.dialect.name == "postgresql":
        return sa.case((value.regexp_match(_PG_NUMBER), sa.cast(value, sa.Double)), else_=sa.cast(sa.null(), sa.Double))
    if conn.dialect.name in ("duckdb", "spark"):
        return sa.literal_column(f"TRY_CAST({value.compile(dialect=conn.dialect)} AS DOUBLE)", sa.Double)
    raise ParameterError(f"column {col.name!r} holds text; on {conn.dialect.name} connect a table whose numbers are "
                         f"numbers, or a view of it that casts the text", parameter="map", cases=[col.name])


def _number(conn: Connection, col: sa.ColumnClause, kind: str, type_: sa.types.TypeEngine):
    """A numeric column as ``type_``; a text column's numbers read, NULL where it holds none (or, for a whole
    ``type_``, no whole number: 2.5 is no quantity), as a file's text is read."""
    if kind == "number":
        return sa.cast(col, type_)
    value = _text_number(conn, col)
    if type_ is sa.Double:
        return value
    return sa.case((value == sa.func.floor(value), sa.cast(value, type_)), else_=sa.cast(sa.null(), type_))


def _not_a_number(col: sa.ColumnClause | None, kind: str | None, value: sa.ColumnElement):
    """Where a text column holds something that is no number (a file load quarantines that row); None for a
    column that is no text."""
    return None if col is None or kind != "text" else sa.and_(_text(col).is_not(None), value.is_(None))


def _text(col: sa.ColumnClause | None, lower: bool = False) -> sa.ColumnElement:
    if col is None:
        return sa.cast(sa.null(), sa.String)
    value = sa.func.trim(sa.cast(col, sa.String))
    return sa.func.nullif(sa.func.lower(value) if lower else value, "")


def _event_type(col: sa.ColumnClause, whole_orders_kept: bool) -> sa.ColumnElement:
    """The canonical event type of each row: the file aliases (but whole orders beside their lines, as a file's
    load), else the value as given (lower-cased, trimmed)."""
    raw = _text(col, lower=True)
    skip = ORDER_WHOLE_EVENTS if whole_orders_kept else ()
    return sa.case({alias: canonical for alias, canonical in EVENT_ALIASES.items() if alias not in skip},
                   value=raw, else_=raw)


def _category(src: sa.TableClause, name: sa.ColumnElement, fallback: str | None):
    """``(category, FROM clause)``: the category's name; without one, the name other rows give the same category id
    (the most frequent, a tie to the first alphabetically), else the id itself: what a file load stores."""
    if fallback is None:
        return name, src
    cat_id = _text(src.c[fallback])
    counted = (sa.select(cat_id.label("cat_id"), name.label("name"), sa.func.count().label("n"))
               .where(cat_id.is_not(None), name.is_not(None)).group_by(cat_id, name).subquery("named"))
    rank = sa.func.row_number().over(partition_by=counted.c.cat_id, order_by=(counted.c.n.desc(), counted.c.name))
    ranked = sa.select(counted.c.cat_id, counted.c.name, rank.label("rk")).subquery("ranked")
    names = sa.select(ranked.c.cat_id, ranked.c.name).where(ranked.c.rk == 1).subquery("id_names")
    return sa.func.coalesce(name, names.c.name, cat_id), src.outerjoin(names, names.c.cat_id == cat_id)


def checked_rows(conn: Connection, proposal: TableProposal) -> sa.Subquery:
    """Every row of the team's table as canonical columns, with ``reason``: why a file load would quarantine it
    (the first that applies), NULL for a row that is an event."""
    schema, name = _split_name(proposal.table)
    if proposal.flat_sql is not None:
        # a colon in the SQL (PostgreSQL's ``::`` casts, a key named "a :b") is no bind parameter
        flat = sa.text(proposal.flat_sql.replace(":", "\\:"))
        src = flat.columns(*[sa.column(c) for c in proposal.source_columns]).subquery("flat")
    else:
        src = sa.table(name, *[sa.column(c) for c in proposal.source_columns], schema=schema)
    col = {f: (src.c[c] if c else None) for f, c in proposal.columns.items()}
    kind = {f: proposal.kinds.get(c) for f, c in proposal.columns.items() if c}
    texts = {f: [r[proposal.source_columns.index(c)] for r in proposal.sample] for f, c in proposal.columns.items() if c}
    when = _time_expr(conn, col["event_time"], kind["event_time"], texts["event_time"])
    price = (_number(conn, col["price"], kind["price"], sa.Double) if col["price"] is not None
             else sa.cast(sa.null(), sa.Double))
    quantity = (_number(conn, col["quantity"], kind["quantity"], sa.Integer) if col["quantity"] is not None
                else sa.cast(sa.null(), sa.Integer))
    user, etype = _text(col["user_id"]), _event_type(col["event_type"], proposal.whole_orders_kept)
    category, src = _category(src, _text(col["category"]), proposal.category_fallback)
    whens = [(user.is_(None), "missing_user"), (col["event_time"].is_(None), "missing_time"),
             (when.is_(None), "unparseable_time"),
             (sa.or_(when < dt.datetime.fromisoformat(_MIN_TIME), when > dt.datetime.fromisoformat(_MAX_TIME)),
              "time_out_of_range"), (etype.is_(None), "missing_event_type"),
             (_not_a_number(col["price"], kind.get("price"), price), "non_numeric_price"),
             (price < 0, "negative_price"), (price > float(config.MAX_PRICE), "price_too_high"),
             (_not_a_number(col["quantity"], kind.get("quantity"), quantity), "non_numeric_quantity")]
    reason = sa.case(*[(c, r) for c, r in whens if c is not None], else_=sa.cast(sa.null(), sa.String))
    return sa.select(
        user.label("user_id"), when.label("event_time"), etype.label("event_type"),
        _text(col["item_id"]).label("item_id"), category.label("category"),
        _text(col["brand"], lower=True).label("brand"), price.label("price"), quantity.label("quantity"),
        _text(col["session_id"]).label("session_id"), reason.label("reason"),
    ).select_from(src).subquery("checked")


def _with_sessions(kept: sa.Subquery) -> sa.Subquery:
    """``kept``'s rows with a session per shopper derived by the inactivity gap, as a load does for a file
    without a session column (numbered per shopper: ``<user>-<n>``)."""
    flag = sql.new_session(kept.c.user_id, kept.c.event_time)
    others = [c for c in kept.c if c.name != "session_id"]
    flagged = sa.select(*others, flag.label("new_session")).subquery("flagged")
    number = sa.func.sum(flagged.c.new_session).over(partition_by=flagged.c.user_id, order_by=flagged.c.event_time,
                                                     rows=(None, 0))
    session = (flagged.c.user_id + "-" + sa.cast(number, sa.String)).label("session_id")
    return sa.select(*[flagged.c[c.name] for c in others], session).subquery("sessions")


def _events_select(checked: sa.Subquery, dataset_id: int, derive_sessions: bool, banded: bool) -> sa.Select:
    """The connected dataset's events in ``cs_all_events``'s columns: the rows without a reason, each with its
    price band from the dataset's edges when ``banded`` (the edges are computed from the unbanded rows)."""
    kept = sa.select(*[c for c in checked.c if c.name != "reason"]).where(checked.c.reason.is_(None)).subquery("kept")
    rows = _with_sessions(kept) if derive_sessions else kept
    if banded:
        band, source = derived.banded(rows, dataset_id)
    else:
        band, source = sa.cast(sa.null(), sa.String), rows
    out = {"dataset_id": sa.literal(int(dataset_id), sa.Integer), "price_band": band,
           "file_no": sa.cast(sa.null(), sa.Integer), "line_no": sa.cast(sa.null(), sa.BigInteger)}
    # each column cast to the stored events' type: the views' columns keep one type whatever feeds them
    # (PostgreSQL replaces a view only with the same column types)
    return sa.select(*[sa.cast(out[c.name] if c.name in out else rows.c[c.name], c.type).label(c.name)
                       for c in store.events.columns]).select_from(source)


def _counts(conn: Connection, checked: sa.Subquery, view: sa.TableClause) -> dict:
    """Rows read, quarantined per reason, and the kept events' figures, all counted in the database."""
    by_reason = {r: int(n) for r, n in conn.execute(
        sa.select(checked.c.reason, sa.func.count()).group_by(checked.c.reason))}
    rows, users, first, last = conn.execute(sa.select(
        sa.func.count(), sa.func.count(sa.distinct(view.c.user_id)), sa.func.min(view.c.event_time),
        sa.func.max(view.c.event_time)).select_from(view)).one()
    by_type = {t: int(n) for t, n in conn.execute(
        sa.select(view.c.event_type, sa.func.count()).group_by(view.c.event_type)
        .order_by(sa.func.count().desc(), view.c.event_type))}
    kept = by_reason.pop(None, 0)
    return {"rows_read": kept + sum(by_reason.values()), "rows_loaded": int(rows), "users": int(users),
            "first": first, "last": last, "by_type": by_type,
            "by_reason": dict(sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0])))}


def _view_table(dataset_id: int) -> sa.TableClause:
    return sa.table(connected_view_name(dataset_id), *[sa.column(c.name) for c in store.events.columns])


def _build(conn: Connection, proposal: TableProposal, dataset_id: int) -> dict:
    """Write the dataset's view and its price edges; returns :func:`_counts`. :class:`SchemaError` when no row
    of the table is an event."""
    checked = checked_rows(conn, proposal)
    derive_sessions = not proposal.columns.get("session_id")
    name, view = connected_view_name(dataset_id), _view_table(dataset_id)
    create_view(conn, name, _events_select(checked, dataset_id, derive_sessions, banded=False))
    derived.write_price_edges(conn, dataset_id, sa.select(view.c.category, view.c.item_id, view.c.price)
                              .subquery("unbanded"))
    create_view(conn, name, _events_select(checked, dataset_id, derive_sessions, banded=True))
    counts = _counts(conn, checked, view)
    if not counts["rows_loaded"]:
        reasons = ", ".join(f"{REASONS.get(r, r)}: {n:,}" for r, n in counts["by_reason"].items()) or "it is empty"
        raise SchemaError(f"nothing to connect: no row of table {proposal.table!r} is an event ({reasons})",
                          reason="no_data", cases=[proposal.table])
    return counts


def _report(proposal: TableProposal, name: str, dataset_id: int, counts: dict, started: float) -> IngestReport:
    notes = [f"connected to table {proposal.table}: read in place, not copied", *proposal.notes]
    if not proposal.columns.get("session_id"):
        notes.append(f"the table has no session column: sessions derived by a {config.SESSION_GAP_MINUTES}-minute "
                     "inactivity gap")
    unknown = {t: n for t, n in counts["by_type"].items() if t not in config.EVENT_TYPES}
    if unknown:
        notes.append(f"event types kept as given (not one of {list(config.EVENT_TYPES)}): {', '.join(unknown)}")
    return IngestReport(
        dataset=name, dataset_id=dataset_id, layout=CONNECTED_LAYOUT, rows_read=counts["rows_read"],
        rows_loaded=counts["rows_loaded"], rows_quarantined=counts["rows_read"] - counts["rows_loaded"],
        users=counts["users"], events_by_type=counts["by_type"], unknown_event_types=unknown,
        first_event=counts["first"], last_event=counts["last"], quarantine_by_reason=counts["by_reason"],
        sessions_derived=not proposal.columns.get("session_id"), notes=notes,
        seconds=round(time.perf_counter() - started, 3), source=proposal.table)


def _mapping_json(proposal: TableProposal) -> str:
    return json.dumps({"connected_table": proposal.table, "columns": proposal.columns, "kinds": proposal.kinds,
                       "category_fallback": proposal.category_fallback, "notes": proposal.notes,
                       "whole_orders_kept": proposal.whole_orders_kept})


def connect_table(engine: Engine, table: str, name: str, overrides: dict[str, str | None] | None = None,
                  progress=None) -> IngestReport:
    """Make ``table`` (in the store's own database) dataset ``name``, read in place: see the module.

    ``overrides``: field -> column (None unmaps) over the proposed mapping. Raises :class:`SchemaError` when the
    table is missing, a required field has no column, a column mapped is not in the table or no row is an
    event; :class:`ParameterError` for a name or an option cartsight cannot use, :class:`DatasetExistsError`
    when the name is taken. Nothing is written then.
    """
    started = time.perf_counter()
    check_dataset_name(name)
    _tick(progress, 0.05, f"reading the columns of {table}")
    proposal = propose_mapping(engine, table, overrides)
    check_required(proposal)
    unreadable = unreadable_connected(engine)
    with engine.begin() as conn, store.new_dataset(conn, name):
        did = store.next_dataset_id(conn)
        try:
            _tick(progress, 0.2, "checking every row of the table")
            report = _report(proposal, name, did, _build(conn, proposal, did), started)
            _record(conn, report, proposal, unreadable)
            _tick(progress, 0.6, "writing the dataset's summaries")
            derived.derive_dataset(conn, did, banded=True)
        except BaseException:
            if conn.dialect.name == "spark":  # no transaction to roll back: take out what was written
                _undo(conn, did)
            raise
    _tick(progress, 1.0, "connected")
    return report


def _record(conn: Connection, report: IngestReport, proposal: TableProposal, unreadable: list[int]) -> None:
    """The dataset's row, its one "file" (the table), and the readers' view with the dataset in it."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    conn.execute(store.datasets.insert().values(
        dataset_id=report.dataset_id, name=report.dataset, layout=CONNECTED_LAYOUT, source=proposal.table,
        created_at=now, rows_read=report.rows_read, rows_loaded=report.rows_loaded,
        rows_quarantined=report.rows_quarantined, n_users=report.users, first_event=report.first_event,
        last_event=report.last_event, mapping_json=_mapping_json(proposal), report_json=json.dumps(report.to_dict())))
    conn.execute(store.dataset_files.insert().values(
        dataset_id=report.dataset_id, file_no=1, name=proposal.table, loaded_at=now, rows_read=report.rows_read,
        rows_loaded=report.rows_loaded, rows_quarantined=report.rows_quarantined, rows_repeated=0,
        first_event=report.first_event, last_event=report.last_event, report_json=json.dumps(report.to_dict())))
    write_events_view(conn, leave_out=unreadable)


def _undo(conn: Connection, dataset_id: int) -> None:
    store.clear_dataset_rows(conn, dataset_id)
    conn.execute(store.datasets.delete().where(store.datasets.c.dataset_id == dataset_id))
    write_events_view(conn)
    drop_view(conn, connected_view_name(dataset_id))


def _tick(progress, fraction: float, message: str) -> None:
    if progress is not None:
        progress(fraction, message)


def refresh_connected(engine: Engine, name: str, progress=None) -> IngestReport:
    """Count connected dataset ``name``'s table again and rewrite its price edges and summaries (after the team's
    table has grown); the mapping is the one it was connected with. :class:`ParameterError` for a dataset
    loaded from files."""
    started = time.perf_counter()
    ds = store.get_dataset(engine, name)
    if ds["layout"] != CONNECTED_LAYOUT:
        raise ParameterError(f"dataset {name!r} was loaded from files, not connected to a table: append a file to "
                             "it instead", parameter="refresh", cases=[name])
    saved = ds["mapping"]
    _tick(progress, 0.05, f"reading the columns of {saved['connected_table']}")
    proposal = propose_mapping(engine, saved["connected_table"], overrides=saved["columns"])
    proposal.category_fallback, proposal.notes = saved.get("category_fallback"), saved.get("notes", [])
    did = ds["dataset_id"]
    with engine.begin() as conn:
        _tick(progress, 0.2, "checking every row of the table")
        report = _report(proposal, name, did, _build(conn, proposal, did), started)
        values = dict(rows_read=report.rows_read, rows_loaded=report.rows_loaded,
                      rows_quarantined=report.rows_quarantined, first_event=report.first_event,
                      last_event=report.last_event)
        conn.execute(store.datasets.update().where(store.datasets.c.dataset_id == did)
                     .values(**values, n_users=report.users, report_json=json.dumps(report.to_dict())))
        f = store.dataset_files
        conn.execute(f.update().where(f.c.dataset_id == did, f.c.file_no == 1)
                     .values(**values, loaded_at=dt.datetime.now(dt.UTC).replace(tzinfo=None),
                             report_json=json.dumps(report.to_dict())))
        _tick(progress, 0.6, "writing the dataset's summaries")
        derived.derive_dataset(conn, did, banded=True)
    _tick(progress, 1.0, "refreshed")
    return report
