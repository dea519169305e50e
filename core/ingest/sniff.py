"""Recognise what an uploaded event file is: encoding, delimiter, header, layout and column mapping.

Only the first :data:`core.config.SNIFF_BYTES` of the file are read. The result is a
:class:`Mapping` (how the file's columns map to the canonical event schema) that the
Data page shows for confirmation when :attr:`Mapping.confident` is False, and that
:func:`core.ingest.load.ingest_file` applies to the whole file. Reading the text, its columns, times, prices,
known layouts and order exports live in :mod:`core.ingest.delimited`, :mod:`core.ingest.columns`, :mod:`core.ingest.time_formats`,
:mod:`core.ingest.prices`, :mod:`core.ingest.layouts` and :mod:`core.ingest.transactions`.
"""
from __future__ import annotations

import gzip
import io
import json
import re
import statistics
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pandas as pd

from core import config
from core.ingest import tabular
from core.ingest.columns import (_PROFILE_ROWS, CANONICAL_FIELDS, EVENT_ALIASES, ORDER_WHOLE_EVENTS,
                                 _column_kinds, _looks_like_header, _major, _match_aliases, _norm, _sample,
                                 header_signature, order_lines_note, unique_names)
from core.ingest.delimited import (DELIMITERS, ENCODINGS, _detect_delimiter, _detect_encoding, _lines, comment_lines,
                            _physical_lines_before, _preamble, _read_head, _refuse_json, _refuse_non_text,
                            _rows_before, decode_errors)
from core.errors import ParameterError, SchemaError
from core.ingest.aliases import FIELD_ALIASES
from core.ingest.layouts import (_LAYOUT_NOTES, RETAIL_COLUMNS, TAOBAO_COLUMNS, _detect_layout, _guess_by_content,
                          _layout_mapping)
from core.ingest.prices import PRICE_KINDS, PRICE_NOTE_START, _decimal_comma, _price_kind
from core.ingest.time_formats import _CLOCK, _DATE_ONLY, _TIME_MIN_SHARE, TIME_FORMATS, detect_time_format
from core.ingest.transactions import STATUS_NOTE_STARTS, _customer_by_name, _order_as_session, _refund_column, _status_column


_PREVIEW_ROWS = 20

#: rows of a workbook or Parquet file written out as CSV for the sniff (the preview and the profiles use fewer)
_TABLE_SNIFF_ROWS = 2_000


@dataclass


class Mapping:
    """How a file maps onto the canonical event schema; JSON round-trippable (:meth:`to_dict`)."""

    layout: str
    encoding: str
    delimiter: str
    has_header: bool
    source_columns: list[str]
    columns: dict[str, str | None]
    time_format: str
    event_type_map: dict[str, str] = field(default_factory=lambda: dict(EVENT_ALIASES))
    constant_event_type: str | None = None
    notes: list[str] = field(default_factory=list)
    confident: bool = True
    #: second source column for ``category`` used where the first is empty (REES46: category_id)
    category_fallback: str | None = None
    #: "gzip" when the file is gzip-compressed (detected by magic bytes), else None
    compression: str | None = None
    #: prices written with a decimal comma (3,50), as in semicolon-separated European files
    decimal_comma: bool = False
    #: a column holding the time of day (10:15:00, 1:05 PM) when ``event_time`` holds only the date
    time_of_day: str | None = None
    #: physical lines above the header that are no part of the table (a report's title, its date), skipped
    skip_lines: int = 0
    #: the worksheet of a spreadsheet to read (:func:`core.ingest.tabular.worksheets`); None: the first
    sheet: str | None = None
    #: what the price column holds, a key of :data:`PRICE_KINDS`: a total is stored as the unit price that
    #: gives it (total / quantity), so that revenue downstream is the total
    price_is: str = "unit_price"
    #: a column of each order's or payment's status (Financial Status, Status): a purchase whose status says no
    #: money was kept (:data:`UNPAID_STATUSES`) is quarantined as no purchase
    status_column: str | None = None
    #: a column of the amount refunded (Amount Refunded): a payment refunded in full is no purchase; compared only
    #: where the price column holds order totals (a line's price is no order's amount)
    refund_column: str | None = None

    def to_dict(self) -> dict:
        """A JSON-safe dict of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Mapping:
        """Rebuild a mapping from :meth:`to_dict` output (unknown keys are ignored)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        mapping = cls(**known)
        mapping.columns = {f: mapping.columns.get(f) for f in CANONICAL_FIELDS}
        return mapping

    def validate(self) -> None:
        """Raise :class:`ParameterError` naming the field when an option holds a value ingest cannot use (an
        unknown field, encoding, delimiter, time format, price kind, ...), and :class:`SchemaError`
        (``missing_column``) when a field is mapped to a column the file lacks; both say the value and what was
        expected."""
        if unknown := [f for f in self.columns if f not in CANONICAL_FIELDS]:
            raise ParameterError(f"{unknown[0]!r} is no field of the event schema: expected one of "
                                 f"{list(CANONICAL_FIELDS)}", parameter="columns", cases=[unknown[0]])
        if self.constant_event_type is not None and self.constant_event_type not in config.EVENT_TYPES:
            raise ParameterError(f"event type {self.constant_event_type!r} is not supported for every row: expected "
                                 f"one of {list(config.EVENT_TYPES)}", parameter="constant_event_type",
                                 cases=[self.constant_event_type])
        if self.price_is not in PRICE_KINDS:
            raise ParameterError(f"price_is {self.price_is!r} is not supported: expected one of {list(PRICE_KINDS)}",
                                 parameter="price_is", cases=[self.price_is])
        if self.encoding not in ENCODINGS:
            raise ParameterError(f"encoding {self.encoding!r} is not supported: expected one of {list(ENCODINGS)}",
                                 parameter="encoding", cases=[self.encoding])
        if self.delimiter not in DELIMITERS:
            raise ParameterError(f"delimiter {self.delimiter!r} is not supported: expected one of {list(DELIMITERS)}",
                                 parameter="delimiter", cases=[self.delimiter])
        if self.time_format not in TIME_FORMATS:
            raise ParameterError(f"time format {self.time_format!r} is not supported: expected one of "
                                 f"{list(TIME_FORMATS)}", parameter="time_format", cases=[self.time_format])
        if not isinstance(self.skip_lines, int) or self.skip_lines < 0:
            raise ParameterError(f"skip_lines {self.skip_lines!r} is not supported: expected a whole number >= 0",
                                 parameter="skip_lines", cases=[self.skip_lines])
        if self.compression not in (None, "gzip"):
            raise ParameterError(f"compression {self.compression!r} is not supported: expected gzip or none",
                                 parameter="compression", cases=[self.compression])
        for canon, src in [*self.columns.items(), ("category", self.category_fallback),
                           ("event_time", self.time_of_day), ("status", self.status_column),
                           ("amount_refunded", self.refund_column)]:
            if src is not None and src not in self.source_columns:
                raise SchemaError(f"{canon} is mapped to column {src!r}, which is not in the file. "
                                  f"Columns in file: {self.source_columns}", column=canon, cases=[src],
                                  reason="missing_column")


@dataclass


class Sniffed:
    """What :func:`sniff` found: the mapping, a preview of the first rows and the header signature."""

    mapping: Mapping
    preview: pd.DataFrame
    signature: str
    compression: str | None


# --- entry point -----------------------------------------------------------------------------------------


#: what a mapping set by hand may name besides the canonical fields -> the attribute of :class:`Mapping` it sets:


#: the time-of-day column, the order status and the amount refunded


_HAND_ATTRIBUTES = {"time_of_day": "time_of_day", "status": "status_column", "amount_refunded": "refund_column"}
HAND_FIELDS = (*CANONICAL_FIELDS, *_HAND_ATTRIBUTES)


def with_overrides(mapping: Mapping, columns: dict[str, str | None] | None = None, event_type: str | None = None,
                   time_format: str | None = None, price_is: str | None = None,
                   preview: pd.DataFrame | None = None) -> Mapping:
    """``mapping`` with what the analyst set by hand, checked as the Data page's mapping is.

    ``columns``: field -> source column, or None to unmap it (a field of :data:`HAND_FIELDS`; a column named
    in another case than the file's is taken when only one matches; ``status`` and ``amount_refunded`` name the
    columns of an order's status and its refund, :attr:`Mapping.status_column` and :attr:`Mapping.refund_column`);
    a field mapped to the event type column reads the type from it again. ``event_type``: one type for every row
    (a canonical type or a name for one, ``order`` for ``purchase``). ``time_format``: a key of
    :data:`TIME_FORMATS`; ``price_is`` one of :data:`PRICE_KINDS`. Returns a new mapping with a note of what was
    set; raises :class:`ParameterError` naming an unknown field, time format, price kind or event type (or one
    set twice), and :class:`SchemaError` (``missing_column``) for a column the file lacks. ``preview``: the
    sniff's first rows, from which a price or time column chosen by hand is read again (:func:`refit`).
    """
    columns, changes = dict(columns or {}), []
    if unknown := [f for f in columns if f not in HAND_FIELDS]:
        raise ParameterError(f"{unknown[0]!r} is no field of the event schema: expected one of {list(HAND_FIELDS)}",
                             parameter="columns", cases=[unknown[0]])
    if event_type is not None and columns.get("event_type"):
        raise ParameterError(f"the event type is set twice, for every row ({event_type!r}) and from column "
                             f"{columns['event_type']!r}: expected one of them", parameter="event_type",
                             cases=[event_type, columns["event_type"]])
    fields = {f: _source_column(c, mapping.source_columns) for f, c in columns.items()}
    out = replace(mapping, columns={**mapping.columns,
                                    **{f: c for f, c in fields.items() if f not in _HAND_ATTRIBUTES}})
    for fld, attribute in _HAND_ATTRIBUTES.items():
        setattr(out, attribute, fields.get(fld, getattr(mapping, attribute)))
    changes += [f"{f}={c!r}" if c else f"{f} unmapped" for f, c in fields.items()]
    if fields.get("event_type"):
        out.constant_event_type = None
    if event_type is not None:
        out.constant_event_type = EVENT_ALIASES.get(event_type.strip().lower(), event_type)
        changes.append(f"every row {out.constant_event_type!r}")
    for name, value in (("time_format", time_format), ("price_is", price_is)):
        if value is not None:
            value = value.strip().lower()  # ISO, Order_Total: the codes are lower-case
            setattr(out, name, value)
            changes.append(f"{name} {value!r}")
    if preview is not None:
        refit(out, mapping, preview, time_format_set=time_format is not None)
    out.validate()
    if changes:  # what was missing is said again of the mapping as set
        out.notes = [n for n in mapping.notes if not n.startswith(_MISSING_NOTE_STARTS)]
        _required_present(out.columns, out.constant_event_type, out.notes)
        out.notes.append(f"mapping set by hand: {', '.join(changes)}")
    return out


def refit(mapping: Mapping, sniffed: Mapping, preview: pd.DataFrame, time_format_set: bool = False) -> None:
    """Read again from ``preview`` what the sniff read off the price and time columns, where ``mapping`` names
    other ones than the ``sniffed`` mapping did (a German export's 'Preis' and 'Zeitpunkt' mapped by hand): whether
    the prices write a decimal comma (1.299,00), and the time format unless one was chosen (``time_format_set``)."""
    names, data = list(preview.columns), preview.fillna("").astype(str).values.tolist()
    price = mapping.columns.get("price")
    if price != sniffed.columns.get("price"):
        mapping.decimal_comma = bool(price in names and _decimal_comma(names, {"price": price}, data, []))
    when = mapping.columns.get("event_time")
    if not time_format_set and when in names and when != sniffed.columns.get("event_time"):
        found, _ = detect_time_format([r[names.index(when)] for r in data])
        mapping.time_format = found or mapping.time_format


def _source_column(name: str | None, source_columns: list[str]) -> str | None:
    """``name`` as the file writes it: itself, or the one column that matches it in another case; None for none."""
    if not name:
        return None
    if name in source_columns:
        return name
    same = [c for c in source_columns if c.lower() == name.lower()]
    return same[0] if len(same) == 1 else name  # a name the file lacks: validate() names it


def sniff(path: str | Path, engine=None, sheet: str | None = None, skip_lines: int | None = None) -> Sniffed:
    """Detect encoding, delimiter, header and layout of the file at ``path`` and propose a mapping.

    Reads only the first ``SNIFF_BYTES`` (decompressing gzip, recognised by its magic bytes); a
    spreadsheet, a Parquet file, JSON or UTF-16 text is read through its first rows written out as UTF-8
    CSV (:mod:`core.ingest.tabular`).
    With ``engine``, a mapping remembered for the same header signature (see
    :func:`core.ingest.load.remember_mapping`) replaces the guess and is marked confident. ``sheet``: the
    worksheet of a spreadsheet to read (the first visible one by default; see :func:`core.ingest.tabular.worksheets`).
    ``skip_lines``: the lines above the header that are no part of the table, as the analyst set them
    (None: found by :func:`_preamble`).

    Returns a :class:`Sniffed`. Raises :class:`SchemaError` naming the file and what was expected for a
    missing or empty file, an archive or binary file nothing here reads (renamed or not), JSON that is no
    table of objects, and a first line longer than the sniff window (its ``reason`` says which), and
    :class:`ParameterError` when ``skip_lines`` leaves no line to read. A few NUL bytes in a text file are let
    through: their rows are quarantined at load.
    """
    path = Path(path)
    if not path.is_file():
        raise SchemaError(f"file {str(path)!r} does not exist; expected a CSV/TSV file of events",
                          reason="unreadable_file")
    if kind := tabular.kind_of(path):
        return _sniff_table(path, kind, engine, sheet, skip_lines)
    text, lines, encoding, compression = _head_text(path)
    chosen = skip_lines is not None
    delimiter, delim_sure, rows, n_cols, preamble, skip_lines = _locate_table(path.name, text, lines, skip_lines)
    has_header = _looks_like_header(rows[0], rows[1:])
    header = list(rows[0]) if has_header else []
    data = rows[1:] if has_header else rows
    names = unique_names(header[:n_cols] + [f"c{i}" for i in range(len(header), n_cols)]) if has_header \
        else [f"c{i}" for i in range(n_cols)]
    notes = [] if delim_sure else ["the delimiter is uncertain; check the preview"]
    if has_header and len({_norm(h) for h in header}) < len(header):
        notes.append(f"the header repeats column names ({header})")
    if chosen and skip_lines:
        notes.append(f"the first {skip_lines} lines are skipped, as chosen; the table starts at line {skip_lines + 1}")
    elif preamble:
        notes.append(f"the first {skip_lines} lines are no part of the table (a title or report details, like "
                     f"{lines[0][:80]!r}): skipped; the header is line {skip_lines + 1}")
    mapping = _propose(names, data, has_header, notes)
    mapping.encoding, mapping.delimiter, mapping.compression = encoding, delimiter, compression
    mapping.skip_lines = skip_lines
    mapping.confident = mapping.confident and delim_sure
    signature = header_signature(header, n_cols, has_header)
    mapping = _remembered_instead(engine, signature, mapping)
    columns = mapping.source_columns if len(mapping.source_columns) == n_cols else names
    # object columns: building 10,000 string-typed columns takes seconds, object ones a fraction
    preview = pd.DataFrame([(r + [""] * n_cols)[:n_cols] for r in data[:_PREVIEW_ROWS]], columns=columns,
                           dtype=object)
    return Sniffed(mapping=mapping, preview=preview, signature=signature, compression=compression)


def _head_text(path: Path) -> tuple[str, list[str], str, str | None]:
    """``(text, lines, encoding, compression)`` of the file's first ``SNIFF_BYTES``, decoded; a binary or JSON
    file, a first line longer than the window and an empty file are refused with a :class:`SchemaError`."""
    head, compression, complete = _read_head(path)
    if head.strip():
        _refuse_non_text(head, path, compression)
    encoding = _detect_encoding(head, path.name) if head.strip() else "utf-8"
    text = head.decode(encoding, errors=decode_errors(encoding))
    _refuse_json(text, path.name)
    if not complete and "\n" not in text and "\r" not in text:
        raise SchemaError(f"{path.name}: its first line is longer than {config.SNIFF_BYTES // 1024} KiB (no line "
                          "break found), so it is no header row; expected a header row and then one event per line",
                          reason="bad_shape")
    lines = _lines(text, complete)
    if not lines:
        raise SchemaError(f"{path.name} is empty: nothing could be loaded (expected a header and event rows)",
                          reason="no_data")
    return text, lines, encoding, compression


def _locate_table(file_name: str, text: str, lines: list[str],
                  skip_lines: int | None) -> tuple[str, bool, list[list[str]], int, int, int]:
    """``(delimiter, delimiter sure, rows from the header on, columns, rows above the table, lines above it)``:
    the lines above the table as the analyst set them (``skip_lines``), else found (:func:`_preamble`)."""
    if skip_lines is not None:  # the lines skipped say nothing of the delimiter either
        preamble = _rows_before(text, skip_lines)
        if preamble >= len(lines):
            raise ParameterError(f"{file_name}: no line is left to read after skipping {skip_lines:,} lines; "
                                 f"expected the header within the first {len(lines):,} lines", parameter="skip_lines",
                                 cases=[skip_lines])
        delimiter, rows, delim_sure = _detect_delimiter(lines[preamble:])
        n_cols = statistics.mode(len(r) for r in rows[:_PROFILE_ROWS])
        return delimiter, delim_sure, rows, n_cols, preamble, skip_lines
    comments = comment_lines(lines)  # a report's '# Account: …' block: no part of the table, nor of its delimiter
    delimiter, rows, delim_sure = _detect_delimiter(lines[comments:])
    n_cols = statistics.mode(len(r) for r in rows[:_PROFILE_ROWS])
    preamble = comments + _preamble(rows, n_cols)
    return delimiter, delim_sure, rows[preamble - comments:], n_cols, preamble, _physical_lines_before(text, preamble)


def _remembered_instead(engine, signature: str, mapping: Mapping) -> Mapping:
    """The mapping remembered for this header signature (confident, with this file's encoding, compression and
    lines above the table) in place of the guess ``mapping``; the guess where none is remembered."""
    remembered = _remembered(engine, signature, mapping) if engine is not None else None
    if remembered is None:
        return mapping
    remembered.encoding, remembered.compression, remembered.confident = mapping.encoding, mapping.compression, True
    remembered.skip_lines = mapping.skip_lines  # the title above the same header may differ from file to file
    note = "mapping remembered from an earlier file with the same header"
    remembered.notes = [n for n in remembered.notes if n != note] + [note]
    return remembered


def _sniff_table(path: Path, kind: str, engine, sheet: str | None, skip_lines: int | None) -> Sniffed:
    """:func:`sniff` of a spreadsheet, a Parquet file, JSON or UTF-16 text: its first rows written out as CSV
    (:mod:`core.ingest.tabular`), then read as one."""
    from core.store import temp_prefix

    with tempfile.TemporaryDirectory(prefix=temp_prefix("sniff")) as tmp:
        head = Path(tmp) / path.name
        converted = tabular.to_csv(path, head, max_rows=_TABLE_SNIFF_ROWS, kind=kind, sheet=sheet)
        sniffed = sniff(head, engine, skip_lines=skip_lines)
    sniffed.mapping.notes.insert(0, converted.note)
    sniffed.mapping.sheet = converted.sheet
    return sniffed


def _propose(names: list[str], data: list[list[str]], has_header: bool, notes: list[str]) -> Mapping:
    """The best-guess mapping for a file with these column names and sample rows."""
    kinds = _column_kinds(data, len(names))
    normed = [_norm(n) for n in names]
    layout = _detect_layout(normed, kinds, data, has_header)
    constant = fallback = time_format = status = refund = None
    confident, price_is = True, "unit_price"
    if layout == "generic":
        if has_header:
            columns, match_notes = _match_aliases(names, data)
            notes.extend(match_notes)
            confident = not any(n.startswith("several columns") for n in match_notes)
        else:
            columns = _guess_by_content(names, kinds, data)
            notes.append("no header row: columns guessed from their content; please check the mapping")
            confident = False
        if has_header and columns["event_time"] is None:
            columns["event_time"] = _time_by_content(names, kinds, columns, notes)
            confident = confident and columns["event_time"] is None  # a guess: the mapping opens for checking
        if has_header and columns["user_id"] is None and columns["event_type"] is None and columns["event_time"] and (
                columns["price"] or columns["quantity"]):
            columns["user_id"] = _customer_by_name(names, columns, notes)
            confident = confident and columns["user_id"] is None
        if columns["event_type"] is None and columns["user_id"] and columns["event_time"] and (
                columns["price"] or columns["quantity"]):
            layout, constant = "transactions", "purchase"
            notes.append("no event type column but a customer, a time and an amount or a count on each row (an order "
                         "export or a transaction file): each row is read as a purchase")
            _order_as_session(names, data, columns, has_header, notes)
        price_is = _price_kind(columns, has_header)
        if layout == "transactions" and has_header:
            status = _status_column(names, data, columns)
            refund = _refund_column(names, data, columns, status) if price_is == "order_total" else None
    else:
        if layout == "online_retail":
            names = list(RETAIL_COLUMNS)
        elif layout == "taobao":
            names = list(TAOBAO_COLUMNS)
        columns, fallback, constant, time_format = _layout_mapping(layout, names)
        notes[:0] = _LAYOUT_NOTES[layout](has_header, normed)  # the layout explains the rest
    if fallback is None and columns.get("category") and _norm(columns["category"]) == "category_code":
        fallback = next((n for n in names if _norm(n) in ("category_id", "categoryid")), None)
    time_of_day = _time_of_day_column(names, columns, data, notes) if layout in ("generic", "transactions") else None
    time_format, time_sure = _time_settings(names, columns, data, time_format, notes, time_of_day)
    required = _required_present(columns, constant, notes)  # its notes even when the time is unsure
    confident = confident and time_sure and required
    mapping = Mapping(
        layout=layout, encoding="utf-8", delimiter=",", has_header=has_header, source_columns=names,
        columns=columns, time_format=time_format, constant_event_type=constant, notes=notes,
        confident=confident, category_fallback=fallback,
        decimal_comma=_decimal_comma(names, columns, data, notes), time_of_day=time_of_day, price_is=price_is,
        status_column=status, refund_column=refund,
    )
    if note := price_note(mapping):
        notes.append(note)
    notes.extend(status_notes(mapping))
    order_lines_only(mapping, data)
    return mapping


def order_lines_only(mapping: Mapping, data: list[list[str]]) -> None:
    """The whole orders kept as given where the sample rows hold their lines too (:func:`order_lines_note`)."""
    col = mapping.columns.get("event_type")
    if not col or col not in mapping.source_columns:
        return
    i = mapping.source_columns.index(col)
    if note := order_lines_note(row[i] for row in data if i < len(row)):
        for value in ORDER_WHOLE_EVENTS:
            mapping.event_type_map.pop(value, None)
        mapping.notes.append(note)


def _time_by_content(names: list[str], kinds: list[dict[str, int]], columns: dict, notes: list[str]) -> str | None:
    """The first column of dates or times (not bare numbers, which are more often ids or amounts) when no header
    name is a time's (an order export's Placed); ``notes`` says which was taken."""
    found = next((n for n, k in zip(names, kinds) if n not in columns.values()
                  and _major(k) in ("iso", "dmy", "ymd", "month_name")), None)
    if found is not None:
        notes.append(f"no column is named as the time: {found!r} holds dates and is taken as the time; check the "
                     "mapping")
    return found


def price_note(mapping: Mapping) -> str | None:
    """What the analyst is told when the price column holds a total, not a unit price (None for a unit price)."""
    if mapping.price_is == "unit_price" or not mapping.columns.get("price"):
        return None
    price, quantity = mapping.columns["price"], mapping.columns.get("quantity")
    kind = {"line_total": "line totals (unit price x quantity)", "order_total": "order totals"}[mapping.price_is]
    stored = (f"the price stored is the total / {quantity!r} (the average unit price)" if quantity
              else "the price stored is the whole total, for one unit")
    return f"{PRICE_NOTE_START}{price!r} are {kind}, not unit prices: each row's revenue is its total; {stored}"


def status_notes(mapping: Mapping) -> list[str]:
    """What the analyst is told of the status and refund columns a load reads (nothing when neither is mapped)."""
    notes = []
    if mapping.status_column:
        order = (" (and so are the other lines of its order where the status is empty)"
                 if mapping.columns.get("session_id") and mapping.columns.get("item_id") else "")
        notes.append(f"{STATUS_NOTE_STARTS[0]}{mapping.status_column!r}: a purchase whose status says no money was "
                     f"kept (refunded, voided, cancelled, failed, declined) is quarantined as not_a_purchase{order}; "
                     "paid, completed and partly refunded orders stay purchases, and so do pending and authorized "
                     "ones (the order was placed; one never paid is later cancelled or voided)")
    if mapping.refund_column:
        price = mapping.columns.get("price")
        tail = (f"a payment whose refund is its whole amount in {price!r} is quarantined as not_a_purchase; a "
                "partial refund stays a purchase of the amount charged"
                if price and mapping.price_is == "order_total"
                else "not compared, since the price column holds no order's amount (only an order total is one)")
        notes.append(f"{STATUS_NOTE_STARTS[1]}{mapping.refund_column!r}: {tail}")
    return notes


def _time_of_day_column(names, columns: dict, data, notes: list[str]) -> str | None:
    """A column of times of day to join to a date-only ``event_time`` (``columns`` is updated), or None.

    Exports often split the moment in two: ``Date`` (2024-03-01) and ``Time`` (10:15:00). When the
    header names put the time of day in ``event_time`` (``time`` is a better alias than ``date``),
    the date column takes its place.
    """
    def share(column: str, pattern: re.Pattern) -> float:
        values = [v for v in _sample(names, data, column) if v]
        return sum(bool(pattern.match(v)) for v in values) / len(values) if values else 0.0

    chosen = columns.get("event_time")
    if not chosen:
        return None
    taken = {c for c in columns.values() if c}
    if share(chosen, _CLOCK) >= _TIME_MIN_SHARE:  # "time" holds clock times: find the date
        dates = [n for n in names if n not in taken and share(n, _DATE_ONLY) >= _TIME_MIN_SHARE]
        if not dates:
            return None
        clock, columns["event_time"] = chosen, dates[0]
    elif share(chosen, _DATE_ONLY) >= _TIME_MIN_SHARE:
        clocks = [n for n in names if n not in taken and share(n, _CLOCK) >= _TIME_MIN_SHARE]
        if not clocks:
            return None
        clock = clocks[0]
    else:
        return None
    notes.append(f"the date is in {columns['event_time']!r} and the time of day in {clock!r}: read together")
    return clock


def _time_settings(names, columns, data, layout_format: str | None, notes: list[str],
                   time_of_day: str | None = None) -> tuple[str, bool]:
    """The time format (a known layout's own, else detected) and whether the sample fits it."""
    if not columns.get("event_time"):
        return layout_format or "iso", False
    values = _sample(names, data, columns["event_time"])
    if time_of_day:
        clocks = _sample(names, data, time_of_day)
        values = [f"{d} {c}".strip() if d else "" for d, c in zip(values, clocks)]
    found, time_notes = detect_time_format(values)
    if layout_format is not None:  # known layouts fix their own format
        notes.extend(n for n in time_notes if "UTC" in n)
    else:
        notes.extend(time_notes)
    if found is None and values:
        notes.append(f"the time column {columns['event_time']!r} holds values like {values[:2]} in no known "
                     "format; choose the format")
    elif found is None:
        notes.append("no data rows below the header to recognise the time format from")
    if layout_format is not None and found == "iso" and layout_format != "iso":
        # the layout's file re-saved with real times (a workbook's or Parquet file's are written out as ISO 8601)
        notes.append(f"times are written as ISO 8601, not in this layout's usual {TIME_FORMATS[layout_format]}: "
                     "read as ISO 8601")
        return found, True
    return layout_format or found or "iso", found is not None


#: how the notes of :func:`_required_present` begin


_MISSING_NOTE_STARTS = ("no user column found", "no time column found", "no event type column found")


def _required_present(columns: dict, constant: str | None, notes: list[str]) -> bool:
    ok = True
    for fld, what in (("user_id", "user"), ("event_time", "time")):
        if columns.get(fld) is None:
            notes.append(f"no {what} column found; choose it in the mapping (expected names like "
                         f"{', '.join(FIELD_ALIASES[fld][:6])})")
            ok = False
    if columns.get("event_type") is None and constant is None:
        notes.append("no event type column found; choose it or set one event type for every row")
        ok = False
    return ok


def _remembered(engine, signature: str, guess: Mapping) -> Mapping | None:
    """The mapping stored for ``signature`` by :func:`core.ingest.load.remember_mapping`, if any. One stored before
    status and refund columns were read takes ``guess``'s: refunded orders would otherwise load as purchases."""
    import sqlalchemy as sa

    from core import store

    with engine.connect() as conn:
        text = conn.execute(
            sa.select(store.mappings.c.mapping_json).where(store.mappings.c.signature == signature)
        ).scalar()
    if not text:
        return None
    stored = json.loads(text)
    mapping = Mapping.from_dict(stored)
    if "status_column" not in stored:
        mapping.status_column, mapping.refund_column = guess.status_column, guess.refund_column
        mapping.notes = [*mapping.notes, *status_notes(mapping)]
    return mapping


def open_text(path: Path, mapping: Mapping) -> io.TextIOBase:
    """The file as a text stream in its encoding (gzip decompressed), for streaming passes."""
    enc, errors = mapping.encoding, decode_errors(mapping.encoding)
    if mapping.compression == "gzip":
        return gzip.open(path, "rt", encoding=enc, errors=errors, newline="")
    return open(path, encoding=enc, errors=errors, newline="")
