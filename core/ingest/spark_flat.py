"""A Spark table of nested columns read flat, as a file of it is (``core.ingest.json_tables`` on DuckDB).

GA4's BigQuery export lands in a lakehouse as it is: ``items`` an array of structs, ``event_params`` an array of
key-value structs, ``device`` and ``geo`` structs. :func:`flat_select` writes the Spark SQL that reads such a
table the way a file of it is read: one row per item of the first array of structs with an item id (an event
without items keeps one row: ``explode_outer``), its fields as ``items.item_id`` and so on; one column per key
of a key-value array (``event_params.ga_session_id``, the first value field that is set, as text); a struct's
fields as ``device.category``; other arrays and maps as their JSON text. The types come from ``DESCRIBE``.
"""
from __future__ import annotations

from sqlalchemy.engine import Connection

from core.ingest.aliases import FIELD_ALIASES

_ITEM = "`__cartsight_item__`"


def split_type(text: str) -> list[tuple[str, str]]:
    """``name:type`` pairs of a struct's field list (``a:int,b:struct<c:string>``), split at the top level."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(text + ","):
        if ch in "<(":
            depth += 1
        elif ch in ">)":
            depth -= 1
        elif ch == "," and depth == 0:
            name, _, kind = text[start:i].partition(":")
            out.append((name.strip().strip("`"), kind.strip()))
            start = i + 1
    return [f for f in out if f[0]]


def _inner(kind: str, outer: str) -> str | None:
    """``T`` of ``outer<T>`` (``array``, ``struct``), else None."""
    low = kind.lower()
    return kind[len(outer) + 1:-1] if low.startswith(outer + "<") and kind.endswith(">") else None


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _columns(expr: str, name: str, kind: str, out: list[str]) -> None:
    """The select expressions of one column: a struct's fields one by one, arrays and maps as JSON text."""
    fields = _inner(kind, "struct")
    if fields is not None:
        for child, child_kind in split_type(fields):
            _columns(f"{expr}.{_q(child)}", f"{name}.{child}", child_kind, out)
    elif kind.lower().startswith(("array<", "map<")):
        out.append(f"to_json({expr}) AS {_q(name)}")
    else:
        out.append(f"{expr} AS {_q(name)}")


def _params(conn: Connection, qualified: str, name: str, element: str) -> list[str]:
    """One column per key of the key-value array ``name`` (its keys read from the table)."""
    value_kind = dict(split_type(element)).get("value", "string")
    keys = [r[0] for r in conn.exec_driver_sql(
        f"SELECT DISTINCT p.key AS k FROM {qualified} LATERAL VIEW explode({_q(name)}) e AS p "
        "WHERE p.key IS NOT NULL ORDER BY k")]
    out = []
    for key in keys:
        literal = "'" + key.replace("\\", "\\\\").replace("'", "\\'") + "'"
        value = f"get(filter({_q(name)}, p -> p.key = {literal}), 0).value"  # get: NULL when the key is absent
        fields = _inner(value_kind, "struct")
        parts = ([f"CAST({value}.{_q(f)} AS STRING)" for f, _ in split_type(fields)] if fields is not None
                 else [f"CAST({value} AS STRING)"])
        out.append(f"coalesce({', '.join(parts)}) AS {_q(f'{name}.{key}')}")
    return out


def flat_select(conn: Connection, qualified: str) -> tuple[str | None, str]:
    """The Spark SELECT reading ``qualified`` flat and what it did, or ``(None, "")`` when no column is nested."""
    described = [(r[0], r[1]) for r in conn.exec_driver_sql(f"DESCRIBE {qualified}")]
    described = described[:next((i for i, (n, _) in enumerate(described) if not n or n.startswith("#")),
                                len(described))]
    if not any(k.lower().startswith(("array<", "struct<", "map<")) for _, k in described):
        return None, ""
    columns, items, params = [], None, []
    for name, kind in described:
        element = _inner(kind, "array")
        fields = dict(split_type(_inner(element, "struct") or "")) if element else {}
        if items is None and set(fields) & set(FIELD_ALIASES["item_id"]):
            items = name
            _columns(_ITEM, name, element, columns)
        elif {"key", "value"} <= set(fields):
            params.append(name)
            columns += _params(conn, qualified, name, _inner(element, "struct"))
        else:
            _columns(f"t.{_q(name)}", name, kind, columns)
    source = f"{qualified} t"
    if items is not None:
        source += f" LATERAL VIEW OUTER explode(t.{_q(items)}) x AS {_ITEM}"
    said = [f"one row per item of each event's {items!r} list (an event without items: one row)"] if items else []
    if params:
        said.append(f"key-value lists ({', '.join(repr(p) for p in params)}) as one column per key")
    return f"SELECT {', '.join(columns)} FROM {source}", "; ".join(said)
