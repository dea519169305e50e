"""How Parquet and JSON tables are read through DuckDB and flattened into CSV columns: struct fields and
nested objects as ``parent.field`` columns, lists and maps as JSON text, every JSON value as written, keys
that differ only in case or hold mixed types, and the ``COPY`` that writes the CSV (for :mod:`core.ingest.tabular`)."""
from __future__ import annotations

import re
from pathlib import Path

from core import config
from core.errors import SchemaError
from core.ingest.aliases import FIELD_ALIASES

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
