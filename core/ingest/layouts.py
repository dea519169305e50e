"""The public datasets recognised by their header or content (REES46, Taobao, UCI Online Retail, YooChoose), and
the roles of a headerless file's columns guessed from their values."""
from __future__ import annotations

import re
import statistics

from core.ingest.columns import _PROFILE_ROWS, CANONICAL_FIELDS, _major, _norm, _sample
from core.ingest.prices import _is_amount
from core.ingest.time_formats import detect_time_format

LAYOUTS = ("rees46", "taobao", "online_retail", "yoochoose", "transactions", "generic", "manual")

REES46_COLUMNS = ("event_time", "event_type", "product_id", "category_id", "category_code", "brand", "price",
                  "user_id", "user_session")
TAOBAO_COLUMNS = ("user_id", "item_id", "category_id", "behavior_type", "timestamp")
RETAIL_COLUMNS = ("InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID",
                  "Country")
YOOCHOOSE_COLUMNS = ("SessionId", "ItemId", "Time")


#: a headerless column of whole numbers is read as a count of items when none exceeds this and half are at most
#: _MAX_MEDIAN_COUNT (CDNOW's quantities: 1 to 99, mostly 1 or 2); larger or zero-padded numbers are ids
_MAX_COUNT, _MAX_MEDIAN_COUNT = 1_000, 10

_INVOICE = re.compile(r"^C?\d{6}$")


def _is_retail_content(kinds: list[dict[str, int]], rows: list[list[str]]) -> bool:
    if len(kinds) != len(RETAIL_COLUMNS) or not rows:
        return False
    sample = rows[:_PROFILE_ROWS]
    invoices = sum(bool(_INVOICE.match(r[0].strip())) for r in sample if len(r) > 0)
    # dates as the CSV writes them (12/1/2010 8:26), or as real times (the .xlsx the data is published as)
    return (invoices >= 0.9 * len(sample) and _major(kinds[3]) == "int" and _major(kinds[4]) in ("dmy", "iso")
            and _major(kinds[5]) in ("num", "int"))


def _is_taobao_content(kinds: list[dict[str, int]], rows: list[list[str]]) -> bool:
    if len(kinds) != len(TAOBAO_COLUMNS) or not rows:
        return False
    behaviours = {r[3].strip() for r in rows[:_PROFILE_ROWS] if len(r) > 3}
    return (behaviours <= {"pv", "cart", "fav", "buy"} and _major(kinds[0]) == "int"
            and _major(kinds[4]) == "int"
            and detect_time_format([r[4] for r in rows[:_PROFILE_ROWS] if len(r) > 4])[0] == "unix_s")


def _layout_mapping(layout: str, names: list[str]) -> tuple[dict[str, str | None], str | None, str | None, str]:
    """columns, category fallback, constant event type and time format of a known layout."""
    col = dict.fromkeys(CANONICAL_FIELDS)
    if layout == "rees46":
        by = {_norm(n): n for n in names}
        col.update(user_id=by["user_id"], event_time=by["event_time"], event_type=by["event_type"],
                   item_id=by["product_id"], category=by["category_code"], brand=by["brand"], price=by["price"],
                   session_id=by["user_session"])
        return col, by["category_id"], None, "iso"
    if layout == "taobao":
        col.update(user_id=names[0], item_id=names[1], category=names[2], event_type=names[3], event_time=names[4])
        return col, None, None, "unix_s"
    if layout == "online_retail":
        col.update(user_id=names[6], event_time=names[4], item_id=names[1], price=names[5], quantity=names[3],
                   session_id=names[0])
        return col, None, "purchase", "mdy_hm"
    if layout == "yoochoose":
        col.update(user_id=names[0], session_id=names[0], item_id=names[1], event_time=names[2])
        return col, None, "view", "unix_s"
    raise ValueError(layout)


def _guess_by_content(names: list[str], kinds: list[dict[str, int]], rows: list[list[str]]) -> dict[str, str | None]:
    """Roles for a file without usable names: time and event columns by their values, user as the first id."""
    col: dict[str, str | None] = dict.fromkeys(CANONICAL_FIELDS)
    majors = [_major(k) for k in kinds]
    for i, m in enumerate(majors):
        fmt = None if col["event_time"] else detect_time_format([r[i] for r in rows[:_PROFILE_ROWS] if len(r) > i])[0]
        if fmt and fmt != "excel":  # five-digit numbers without a name saying "time" are more often ids
            if m in ("iso", "dmy", "ymd", "month_name") or (m in ("int", "num") and i > 0):
                col["event_time"] = names[i]
        if col["event_type"] is None and m == "event":
            col["event_type"] = names[i]
    ids = [names[i] for i, m in enumerate(majors) if m in ("int", "text") and names[i] not in col.values()]
    if ids:
        col["user_id"] = ids[0]
    if col["event_type"] is None:  # a transaction file (CDNOW's: customer, yyyymmdd, quantity, dollar value)
        free = [i for i, n in enumerate(names) if n not in col.values()]
        col["price"] = next((names[i] for i in free if _is_amount(_sample(names, rows, names[i]))), None)
        if col["price"]:  # without an amount beside it, small numbers are as likely an item or a category
            col["quantity"] = next((names[i] for i in free if majors[i] == "int" and names[i] != col["price"]
                                    and _is_count(_sample(names, rows, names[i]))), None)
        ids = [n for n in ids if n not in (col["price"], col["quantity"])]
    if len(ids) > 1:
        col["item_id"] = ids[1]
    return col


def _is_count(values: list[str]) -> bool:
    """Sampled whole numbers that count items (1, 2, 12): small, none written with leading zeros (ids are)."""
    counts = [v.lstrip("+-") for v in values if v]
    return bool(counts) and all(c.isdigit() and (c == "0" or not c.startswith("0")) for c in counts) and (
        max(int(c) for c in counts) <= _MAX_COUNT and statistics.median(int(c) for c in counts) <= _MAX_MEDIAN_COUNT)


def _detect_layout(normed: list[str], kinds: list[dict[str, int]], data: list[list[str]], has_header: bool) -> str:
    if set(REES46_COLUMNS) <= set(normed):
        return "rees46"
    if _is_retail_content(kinds, data):
        return "online_retail"
    if not has_header and _is_taobao_content(kinds, data):
        return "taobao"
    if normed[:3] == ["sessionid", "itemid", "time"]:
        return "yoochoose"
    return "generic"


def _retail_notes(has_header: bool, normed: list[str]) -> list[str]:
    notes = []
    if has_header and normed != [_norm(n) for n in RETAIL_COLUMNS]:
        notes.append("the header does not name the columns correctly: recognised as UCI Online Retail by "
                     "content (InvoiceNo, StockCode, Description, Quantity, InvoiceDate, UnitPrice, "
                     "CustomerID, Country)")
    return notes + ["UCI Online Retail transactions: each line is a purchase of Quantity x UnitPrice; "
                    "cancellations (InvoiceNo starting with C) are kept as purchases with negative quantity; "
                    "the invoice number is used as the session"]


_LAYOUT_NOTES = {
    "rees46": lambda has_header, normed: [],
    "online_retail": _retail_notes,
    "taobao": lambda has_header, normed: [
        "no header row: recognised as Taobao UserBehavior by its content (user, item, category, behaviour, "
        "Unix time)"],
    "yoochoose": lambda has_header, normed: [
        "YooChoose clicks carry sessions, not users: each session is taken as a shopper (user_id = SessionId) "
        "and every click as a 'view'"],
}
