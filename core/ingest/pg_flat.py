"""A PostgreSQL table of JSON columns read flat, as a file of it is (``core.ingest.json_tables`` on DuckDB,
``core.ingest.spark_flat`` on Spark).

A team that lands GA4's BigQuery export in PostgreSQL keeps its nested fields as ``json`` or ``jsonb``: ``items``
an array of objects, ``event_params`` an array of ``{"key", "value"}`` objects, ``device`` and ``geo`` objects.
:func:`flat_select` writes the SELECT that reads such a table the way a file of it is read: one row per item of
the first array of objects with an item id (an event without items keeps one row), its keys as ``items.item_id``
and so on; one column per key of a key-value array (``event_params.ga_session_id``: the first value field that
is set, as text); an object's keys as ``device.category``; anything else as its JSON text. A key whose values
are all JSON numbers is read as a number (``bigint`` when every one is whole, else ``double precision``), so
that prices and quantities map as a typed table's columns do; every other value is text, as written. The
shapes and keys come from the table itself: a few grouped queries per JSON column, none per row.
"""
from __future__ import annotations

from sqlalchemy.engine import Connection

from core.ingest.aliases import FIELD_ALIASES

#: psycopg's type codes (PostgreSQL type OIDs) of the JSON types
JSON_TYPE_CODES = {114: "json", 3802: "jsonb"}
_ITEM = '"__cartsight_item__"'
#: GA4's value fields in the order its export lists them (``jsonb`` keeps no key order); others follow by name
_VALUE_ORDER = ("string_value", "int_value", "float_value", "double_value")
#: a JSON number that fits a bigint, as PostgreSQL writes it
_WHOLE = r"'^-?[0-9]{1,18}$'"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _elements(expr: str) -> str:
    """The elements of the JSON array ``expr`` (none where it holds no array)."""
    return f"jsonb_array_elements(CASE WHEN jsonb_typeof({expr}) = 'array' THEN {expr} END)"


def _keys(conn: Connection, qualified: str, objects: str) -> dict[str, tuple[set[str], bool]]:
    """Each key of the JSON objects ``objects`` (a FROM-clause tail giving them as ``x.o``) over the whole table:
    the JSON types of its values and whether every number among them is whole."""
    rows = conn.exec_driver_sql(
        f"SELECT k.key, array_agg(DISTINCT jsonb_typeof(k.value)), "
        f"bool_and(jsonb_typeof(k.value) <> 'number' OR k.value::text ~ {_WHOLE}) "
        f"FROM {qualified} t{objects}, jsonb_each(CASE WHEN jsonb_typeof(x.o) = 'object' THEN x.o END) k "
        f"GROUP BY k.key ORDER BY k.key").fetchall()
    return {key: (set(types) - {"null"}, bool(whole)) for key, types, whole in rows}


def _typed(obj: str, key: str, types: set[str], whole: bool) -> str:
    """The value of ``key`` in the JSON object ``obj``: a number where every value is one, else its text."""
    text = f"({obj} ->> {_lit(key)})"
    if types == {"number"}:
        return f"{text}::{'bigint' if whole else 'double precision'}"
    return text


def _object_columns(obj: str, name: str, keys: dict[str, tuple[set[str], bool]]) -> list[str]:
    return [f"{_typed(obj, key, *seen)} AS {_q(f'{name}.{key}')}" for key, seen in keys.items()]


def _param_columns(conn: Connection, qualified: str, expr: str, name: str) -> list[str]:
    """One column per key of the key-value array ``expr``: the first element with that key, its value's first
    field that is set (GA4: ``string_value``, ``int_value``…), as text."""
    keys = [r[0] for r in conn.exec_driver_sql(
        f"SELECT DISTINCT e.p ->> 'key' AS k FROM {qualified} t, {_elements(expr)} AS e(p) "
        f"WHERE e.p ->> 'key' IS NOT NULL ORDER BY k")]
    fields = sorted(_keys(conn, qualified, f", {_elements(expr)} AS e(p), LATERAL (SELECT e.p -> 'value') AS x(o)"),
                    key=lambda f: (_VALUE_ORDER.index(f) if f in _VALUE_ORDER else len(_VALUE_ORDER), f))
    value = ("coalesce(" + ", ".join(f"p.o -> 'value' ->> {_lit(f)}" for f in fields) + ")" if fields
             else "p.o ->> 'value'")
    return [f"(SELECT {value} FROM {_elements(expr)} WITH ORDINALITY AS p(o, i) WHERE p.o ->> 'key' = {_lit(key)} "
            f"ORDER BY p.i LIMIT 1) AS {_q(f'{name}.{key}')}" for key in keys]


def _json_column(conn: Connection, qualified: str, name: str, expr: str, items: str | None):
    """``(select expressions, kind)`` of one JSON column: kind ``items`` (one row per element), ``params``
    (a key-value array) or None (an object's keys, or the JSON text)."""
    types = {r[0] for r in conn.exec_driver_sql(f"SELECT DISTINCT jsonb_typeof({expr}) FROM {qualified} t")} - {
        None, "null"}
    if types == {"object"}:
        return _object_columns(expr, name, _keys(conn, qualified, f", LATERAL (SELECT {expr}) AS x(o)")), None
    if types == {"array"}:
        keys = _keys(conn, qualified, f", {_elements(expr)} AS x(o)")
        if items is None and set(keys) & set(FIELD_ALIASES["item_id"]):
            return _object_columns(f"{_ITEM}.o", name, keys), "items"
        if {"key", "value"} <= set(keys):
            return _param_columns(conn, qualified, expr, name), "params"
    if types <= {"string", "number", "boolean"}:
        return [f"({expr} #>> '{{}}') AS {_q(name)}"], None
    return [f"({expr})::text AS {_q(name)}"], None


def flat_select(conn: Connection, qualified: str) -> tuple[str | None, str]:
    """The PostgreSQL SELECT reading ``qualified`` flat and what it did, or ``(None, "")`` when it has no JSON
    column."""
    described = conn.exec_driver_sql(f"SELECT * FROM {qualified} LIMIT 0").cursor.description
    if not any(d.type_code in JSON_TYPE_CODES for d in described):
        return None, ""
    columns, items, params = [], None, []
    for d in described:
        if d.type_code not in JSON_TYPE_CODES:
            columns.append(f"t.{_q(d.name)} AS {_q(d.name)}")
            continue
        expr = f"t.{_q(d.name)}" + ("::jsonb" if JSON_TYPE_CODES[d.type_code] == "json" else "")
        made, kind = _json_column(conn, qualified, d.name, expr, items)
        columns += made
        if kind == "items":
            items = (d.name, expr)
        elif kind == "params":
            params.append(d.name)
    source = f"{qualified} t"
    if items is not None:  # an event without items keeps one row: a JSON null's keys are all NULL
        expr = items[1]
        source += (f" LEFT JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof({expr}) = 'array' AND "
                   f"jsonb_array_length({expr}) > 0 THEN {expr} ELSE '[null]'::jsonb END) AS {_ITEM}(o) ON true")
    said = [f"one row per item of each event's {items[0]!r} list (an event without items: one row)"] if items else []
    if params:
        said.append(f"key-value lists ({', '.join(repr(p) for p in params)}) as one column per key")
    return f"SELECT {', '.join(columns)} FROM {source}", "; ".join(said)
