"""Event tables that the CSV path cannot read as they are, written out as UTF-8 CSV: spreadsheets
(.xlsx, .xls, .ods), Parquet files, JSON and UTF-16 text.

UCI Online Retail is published as an .xlsx file, analysts keep exports in Excel, and warehouses
(BigQuery, Snowflake, Spark) export Parquet. Each is accepted wherever a CSV is, recognised by its
content whatever its name: :func:`core.sniff.sniff` reads its first rows and
:func:`core.ingest.ingest_file` all of it, each through :func:`to_csv` and then the CSV path, so
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

from core import config
from core.errors import CartsightError, ParameterError, SchemaError
from core.field_aliases import FIELD_ALIASES

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
    #: lists and maps): a row holding one where one value belongs is quarantined (:mod:`core.ingest`)
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


_CASE_TWINS_NOTE = ("keys that differ only in case (Price and price) are read as DuckDB's reader types them from its "
                    "sample: a later value of another type may be changed")


def _case_twins(names, kinds) -> bool:
    """Whether two keys of one object differ only in case (DuckDB's reader names the second ``price_1``), at
    any depth: a list of columns to read cannot name both."""
    lower = {n.lower() for n in names}
    if any((m := re.match(r"^(.*)_\d+$", n)) and m.group(1).lower() in lower for n in names):
        return True
    return any(_case_twins(*zip(*k.children)) for k in kinds if k.id == "struct" and k.children) or any(
        _case_twins(*zip(*k.child.children)) for k in kinds if k.id == "list" and k.child.id == "struct"
        and k.child.children)


def _mixed(rel, parent: str = "", kinds=None) -> set[str]:
    """Names (``parent.field``) of the columns of ``rel`` (a JSON reader's, typed from its sample) typed JSON:
    values of several types, objects among them (``properties`` an object but text in some rows), whose objects'
    keys may be columns (:func:`_flatten`)."""
    out: set[str] = set()
    for name, kind in (zip(rel.columns, rel.types) if kinds is None else kinds):
        full = f"{parent}.{name}" if parent else name
        if kind.id == "struct":
            out |= _mixed(None, full, kind.children)
        elif str(kind) == "JSON":
            out.add(full)
    return out


def _as_written(kind) -> str:
    """The DuckDB type to read a JSON value of sampled type ``kind`` with: objects keep their fields and a
    list of objects its objects, so that they are flattened (:func:`_flat_columns`); every other value is
    text, which DuckDB's reader fills with the value as written whatever its type (a text unquoted, a number
    as its digits, a list or an object as JSON)."""
    if kind.id == "struct" and kind.children:
        return "STRUCT(" + ", ".join(f"{_ident(n)} {_as_written(k)}" for n, k in kind.children) + ")"
    if kind.id == "list" and kind.child.id == "struct" and kind.child.children:
        return f"{_as_written(kind.child)}[]"
    if kind.id == "map":  # an object of many keys, or of keys each in few objects (see _frequent_keys)
        return "MAP(VARCHAR, VARCHAR)"
    return "VARCHAR"


#: objects DuckDB's JSON reader types its columns from (its default ``sample_size``)
_JSON_SAMPLE_OBJECTS = 20_480


def _keys_beyond_sample(con, path: Path, compression: str, sampled) -> list[str]:
    """Keys of the JSON objects at ``path`` (top level and one level down, ``properties.price``) that the
    columns of ``sampled`` (the reader's relation, typed from its sample) do not hold; one pass that parses
    no values."""
    known = {("", name): None for name in sampled.columns}
    parents = [""]
    for name, kind in zip(sampled.columns, sampled.types):
        if kind.id == "struct":
            parents.append(name)
            known.update({(name, field): None for field, _ in kind.children})
    paths = ", ".join(
        f"struct_pack(p := {_literal(p)}, ks := json_keys(json{', ' + _literal(_json_path(p)) if p else ''}))"
        for p in parents)
    found = con.execute(
        f"SELECT DISTINCT e.p, unnest(e.ks) FROM (SELECT unnest([{paths}]) AS e FROM read_json_objects("
        f"{_literal(path)}, compression = '{compression}', format = 'auto')) ORDER BY ALL").fetchall()
    # compared in any case: DuckDB names the second of two keys that differ only in case price_1 (_case_twins)
    known = {(p.lower(), k.lower()) for p, k in known}
    return [f"{p}.{k}" if p else k for p, k in found if (p.lower(), k.lower()) not in known]


def _json_path(key: str) -> str:
    return '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- both: DuckDB's readers, written out by COPY ---------------------------------------------------------


class _duck:
    """An in-memory DuckDB connection within the project's memory budget, its session zone UTC."""

    def __enter__(self):
        import duckdb

        self.con = duckdb.connect(":memory:")
        self.con.execute(f"SET memory_limit = '{config.DUCKDB_MEMORY_LIMIT}'")
        self.con.execute("SET TimeZone = 'UTC'")
        return self.con

    def __exit__(self, *exc) -> None:
        self.con.close()


def _copy_flat(con, source: str, out: Path, max_rows: int | None, what: str, mixed: set[str] = frozenset(),
               loose: bool = False) -> tuple[int, str, list[str]]:
    """COPY the rows of ``source`` (a DuckDB table function) to ``out`` as CSV with a header, nested values
    flattened (:func:`_flat_columns`); the lines written (header included), what the flattening did, for
    the note, and the columns that may hold a list or an object (``loose``: all of them)."""
    columns, items, said, nested = _flat_columns(con, source, mixed)
    if not columns:
        raise SchemaError(f"{what} without columns; expected a table of events", reason="no_data")
    if items is not None:  # one row per item; an event without items keeps one row
        ident = _ident(items)
        source = (f"(SELECT *, unnest(CASE WHEN len({ident}) > 0 THEN {ident} ELSE [NULL] END) AS {_ITEM} "
                  f"FROM {source})")
    limit = f" LIMIT {int(max_rows) - 1}" if max_rows is not None else ""  # the header is a line too
    if loose:
        nested = con.sql(f"SELECT {', '.join(columns)} FROM {source} LIMIT 0").columns
    rows = con.execute(f"COPY (SELECT {', '.join(columns)} FROM {source}{limit}) TO {_literal(out)} "
                       "(FORMAT csv, HEADER true, QUOTE '\"', ESCAPE '\"', DATEFORMAT '%Y-%m-%d')").fetchone()[0]
    return 1 + rows, said, nested


#: the alias of one element of an event's list of items, unnested (no column of a real export is named so)
_ITEM = '"__cartsight_item__"'


def _flat_columns(con, source: str, mixed: set[str] = frozenset()) -> tuple[list[str], str | None, str, list[str]]:
    """The select expressions that write ``source``'s rows flat, the column of items to unnest, a note, and
    the columns that may hold a list or an object (written as JSON).

    - a struct: its fields as columns of their own (``device.category``);
    - the first list of structs with an item id (GA4's ``items``: ``item_id``, ``price``, ``quantity``):
      one row per item, its fields as ``items.item_id`` and so on;
    - a list of key-value structs (GA4's ``event_params``: ``key`` and ``value``): one column per key
      any row holds (``event_params.ga_session_id``; the keys of a million rows' lists are read in
      0.14 s from Parquet, measured);
    - a map (JSON objects of many keys, or of keys each in few objects: DuckDB's reader makes them one), or a
      JSON column named in ``mixed`` (objects in some rows, text in others): the keys
      :data:`_MAP_KEY_MIN_SHARE` of the rows hold as columns, then the column itself;
    - other lists: their JSON text.
    """
    rel = con.sql(f"SELECT * FROM {source}")
    columns: list[str] = []
    nested: list[str] = []
    items, params, maps = None, [], []

    def frequent(expr: str, name: str, kind) -> list[str]:
        if kind.id != "map" and name not in mixed:
            return []
        keys = _frequent_keys(con, source, expr, kind)
        maps.extend([name] if keys else [])
        return keys

    for name, kind in zip(rel.columns, rel.types):
        children = dict(kind.child.children) if kind.id == "list" and kind.child.id == "struct" else {}
        if items is None and set(children) & set(FIELD_ALIASES["item_id"]):
            items = name
            _flatten(_ITEM, name, kind.child, columns, nested)
        elif {"key", "value"} <= set(children):
            params.append(name)
            ident = _ident(name)
            key = _sql_text("x.key", children["key"])
            keys = [r[0] for r in con.execute(
                f"SELECT DISTINCT k FROM (SELECT unnest(list_transform({ident}, lambda x: {key})) AS k FROM "
                f"{source}) WHERE k IS NOT NULL ORDER BY k").fetchall()]
            value_kind = children["value"]
            for k in keys:
                value = f"list_filter({ident}, lambda x: {key} = {_literal(k)})[1].value"
                parts = ([_sql_text(f"{value}.{_ident(f)}", f_kind) for f, f_kind in value_kind.children]
                         if value_kind.id == "struct" and value_kind.children else [_sql_text(value, value_kind)])
                columns.append(f"coalesce({', '.join(parts)}) AS {_ident(f'{name}.{k}')}")
        else:
            _flatten(_ident(name), name, kind, columns, nested, frequent)
    said = []
    if items is not None:
        said.append(f"one row per item of each event's {items!r} list (an event without items: one row), so line "
                    "numbers count those rows")
    if params:
        said.append(f"key-value lists ({', '.join(repr(p) for p in params)}) as one column per key")
    if maps:
        said.append(f"objects whose keys vary from row to row, or that are text in some rows ({', '.join(maps)}): a "
                    f"key {_MAP_KEY_MIN_SHARE:.0%} of the rows hold as a column of its own, each whole value too")
    return columns, items, "; ".join(said), nested


def _flatten(expr: str, name: str, kind, columns: list[str], nested: list[str], frequent=None) -> None:
    """Append the select expression(s) of one column: a struct's fields one by one (``parent.field``), a map's
    frequent keys as well (``frequent(expr)`` lists them) and then the map itself, other values as the CSV should
    hold them; ``nested`` gets the name of a column that may hold a list or an object."""
    if kind.id == "struct" and kind.children:
        for child, child_kind in kind.children:
            _flatten(f"{expr}.{_ident(child)}", f"{name}.{child}", child_kind, columns, nested, frequent)
        return
    if frequent is not None and (kind.id == "map" and str(kind.key) == "VARCHAR" or str(kind) in ("JSON", "VARCHAR")):
        for key in frequent(expr, name, kind):
            if kind.id == "map":
                _flatten(f"{expr}[{_literal(key)}]", f"{name}.{key}", kind.value, columns, nested)
            else:  # one level down; a value that is no object has none of its keys
                value = f"json_extract_string({expr}, {_literal(_json_path(key))})"
                columns.append(f"CASE WHEN {_is_object(expr)} THEN {_one_line(value)} END AS {_ident(f'{name}.{key}')}")
                nested.append(f"{name}.{key}")
    text = str(kind)
    if text == "TIMESTAMP WITH TIME ZONE":
        value = f"CAST({expr} AS TIMESTAMP)"  # the session's zone is UTC
    elif text == "VARCHAR":
        value = _one_line(expr)
    elif text == "JSON" or kind.id in ("list", "array", "map", "struct", "union"):
        value = _one_line(_sql_text(expr, kind))
        nested.append(name)
    else:
        value = expr
    columns.append(f"{value} AS {_ident(name)}")


#: a key of a map (JSON objects whose keys vary: Mixpanel's properties over hundreds of custom properties) gets a
#: column of its own when at least this share of rows hold it; the others stay in the map's column, as JSON
_MAP_KEY_MIN_SHARE = 0.01


def _frequent_keys(con, source: str, expr: str, kind) -> list[str]:
    """The keys of the map or JSON objects ``expr`` that at least :data:`_MAP_KEY_MIN_SHARE` of ``source``'s rows
    hold, in order."""
    keys = f"map_keys({expr})" if kind.id == "map" else f"CASE WHEN {_is_object(expr)} THEN json_keys({expr}) END"
    return [r[0] for r in con.execute(
        f"SELECT k FROM (SELECT unnest({keys}) AS k FROM {source}) GROUP BY k "
        f"HAVING count(*) >= {_MAP_KEY_MIN_SHARE!r} * (SELECT count(*) FROM {source}) ORDER BY k").fetchall()]


def _is_object(expr: str) -> str:
    """SQL: is ``expr`` (JSON, or text holding JSON) an object? Text that is no JSON is none."""
    return f"(starts_with(CAST({expr} AS VARCHAR), '{{') AND json_valid(CAST({expr} AS VARCHAR)))"


def _sql_text(expr: str, kind) -> str:
    """``expr`` (of DuckDB type ``kind``) as text: a JSON text unquoted, a JSON number as its digits, a list or an
    object as JSON, anything else cast."""
    if str(kind) == "JSON":
        return f"json_extract_string({expr}, '$')"
    if kind.id in ("list", "array", "map", "struct", "union"):
        return f"CAST(to_json({expr}) AS VARCHAR)"
    return f"CAST({expr} AS VARCHAR)"


def _one_line(expr: str) -> str:
    return f"replace(replace({expr}, chr(13), ' '), chr(10), ' ')"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


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
