"""Reading a file's columns: the canonical fields and event names, header names matched to fields
(:func:`_match_aliases`), whether the first row is a header, and the kind of value each column holds."""
from __future__ import annotations

import hashlib
import re

from core.ingest.aliases import FIELD_ALIASES
from core.ingest.time_formats import _DMY, _ISO, _MONTH_NAME, _NUM, _YMD, split_time_zone

CANONICAL_FIELDS = (
    "user_id", "event_time", "event_type", "item_id", "category", "brand", "price", "quantity", "session_id",
)

#: Raw event values (lower-cased) and the canonical type they mean.
EVENT_ALIASES: dict[str, str] = {
    **dict.fromkeys(("pv", "view", "views", "viewed", "page_view", "pageview", "detail", "product_view",
                     "click", "clicks", "impression",
                     # GA4, Segment's e-commerce spec, Shopify/Klaviyo, Adobe Analytics
                     "view_item", "select_item", "product viewed", "product clicked", "viewed product",
                     "prodview"), "view"),
    **dict.fromkeys(("cart", "add_to_cart", "addtocart", "add", "add-to-cart", "added_to_cart", "carted",
                     "add to cart", "added to cart", "product added", "add_to_basket", "add to basket", "scadd"),
                    "cart"),
    **dict.fromkeys(("remove", "remove_from_cart", "removefromcart", "remove-from-cart", "remove from cart",
                     "product removed", "scremove"), "remove_from_cart"),
    **dict.fromkeys(("buy", "purchase", "purchased", "order", "transaction", "checkout", "sale",
                     "order completed", "order_completed", "placed order", "ordered product", "payment"),
                    "purchase"),
    **dict.fromkeys(("fav", "wishlist", "favorite", "favourite", "like", "add_to_wishlist",
                     "product added to wishlist", "added to wishlist"), "wishlist"),
}

#: Klaviyo (and what sends orders to it: Shopify, Segment) writes an order twice, once whole ("Placed Order", its
#: total) and once per line ("Ordered Product"): where a file holds the lines, the whole orders are no purchases,
#: or every order's revenue would count twice (:func:`order_lines_note`)
ORDER_WHOLE_EVENTS = ("placed order", "order completed", "order_completed")
ORDER_LINE_EVENTS = ("ordered product",)

_PROFILE_ROWS = 500

#: a header name that matches a field a row cannot do without is passed over for a later one when less
#: than this share of its sampled values are filled (GA4's user_id next to user_pseudo_id, Segment's
#: userId next to anonymousId): its empty rows would all be quarantined. Optional fields keep the name
#: order (a price empty on views is still the price).
_MIN_FILLED_SHARE = 0.5
_PREFER_FILLED = ("user_id", "event_time", "event_type")

#: fields that describe the item, read from the item id's own nested record when it is one
_ITEM_FIELDS = ("category", "brand", "price", "quantity")

_INT = re.compile(r"^\s*[+-]?\d+\s*$")
_WHOLE = re.compile(r"^[+-]?\d+(\.0*)?$")

_NAME = re.compile(r"^[A-Za-z_][\w .\-/()#]*$")
#: a qualifier in brackets after a column's name: a unit, a currency, a zone, taxes in or out
_UNQUALIFIED = re.compile(r"\s*[(\[][^)\]]*[)\]]")


def order_lines_note(values) -> str | None:
    """Where an event column's sampled ``values`` hold an order's lines ("Ordered Product"), the note that the whole
    orders ("Placed Order") are kept as given instead of read as purchases, so that each order's revenue counts
    once (the caller drops :data:`ORDER_WHOLE_EVENTS` from its event map); None where they hold no lines."""
    seen = {str(v).strip(): str(v).strip().lower() for v in values if v is not None}
    lines = sorted(raw for raw, low in seen.items() if low in ORDER_LINE_EVENTS)
    if not lines:
        return None
    whole = sorted(raw for raw, low in seen.items() if low in ORDER_WHOLE_EVENTS) or ["Placed Order"]
    return (f"orders come whole ({', '.join(map(repr, whole))}) and line by line ({', '.join(map(repr, lines))}): "
            "only the lines are read as purchases, so each order's revenue counts once; the whole orders are kept "
            "as given (the event table changes it)")


def _kind(value: str) -> str:
    v = value.strip()
    if not v:
        return "empty"
    if _YMD.match(v):
        return "ymd"
    if _INT.match(v):
        return "int"
    if _NUM.match(v):
        return "num"
    if _ISO.match(v):
        return "iso"
    if _DMY.match(v):
        return "dmy"
    if _MONTH_NAME.match(v):
        return "month_name"
    if v.lower() in EVENT_ALIASES:
        return "event"
    local, zone = split_time_zone(v)
    if zone and (kind := _kind(local)) in ("iso", "dmy", "month_name", "ymd"):
        return kind
    return "text"


def _column_kinds(rows: list[list[str]], n_cols: int) -> list[dict[str, int]]:
    kinds: list[dict[str, int]] = [{} for _ in range(n_cols)]
    for row in rows[:_PROFILE_ROWS]:
        for i, v in enumerate(row[:n_cols]):
            k = _kind(v)
            kinds[i][k] = kinds[i].get(k, 0) + 1
    return kinds


def _major(kinds: dict[str, int]) -> str:
    nonempty = {k: n for k, n in kinds.items() if k != "empty"}
    if not nonempty:
        return "empty"
    if set(nonempty) <= {"int", "num"}:
        return "int" if "num" not in nonempty else "num"
    k, n = max(nonempty.items(), key=lambda kv: kv[1])
    return k if n >= 0.9 * sum(nonempty.values()) else "mixed"


def _norm(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower().lstrip("\ufeff"))


def unique_names(names: list[str]) -> list[str]:
    """Header names as the mapping holds them: an empty one named by its position (``c4``), a repeated
    one numbered (``price_2``)."""
    out: list[str] = []
    seen: set[str] = set()  # a set: files with 10,000 columns exist
    for i, n in enumerate(names):
        base = n.strip() or f"c{i}"
        name, k = base, 2
        while name in seen:
            name, k = f"{base}_{k}", k + 1
        out.append(name)
        seen.add(name)
    return out


def _looks_like_header(first: list[str], data: list[list[str]]) -> bool:
    # a header may leave a name out: a trailing delimiter (user_id,event_time,) or an unnamed column
    named = [v for v in first if v.strip()]
    if len(named) < max(1, (len(first) + 1) // 2):
        return False
    known = {a for aliases in FIELD_ALIASES.values() for a in aliases}
    if sum(bool(_name_keys(v) & known) for v in named) >= 2:  # properties.time, UserId: as _match_aliases reads
        return True
    if len(named) < len(first) or not all(_NAME.match(v.strip()) and _kind(v) in ("text",) for v in named):
        return False
    # names over data: some column holds numbers or times below a text name
    kinds = _column_kinds(data, len(first))
    return any(_major(k) in ("int", "num", "iso", "dmy", "ymd", "month_name") for k in kinds) or not data


def _name_keys(name: str) -> set[str]:
    """What a header name can match an alias on: the name and its last dotted part (``items.price``,
    ``properties.product_id``), each also without separators (``UserId``, ``user-id``), and all of those
    again without a bracketed qualifier (``Order Total (inc tax)``, ``Created (UTC)``, ``Email (Billing)``)."""
    keys: set[str] = set()
    for normed in (_norm(name), _norm(_UNQUALIFIED.sub("", name.replace("(s)", "s")))):  # Created (UTC): created
        last = normed.rsplit(".", 1)[-1]
        keys.update((normed, last, re.sub(r"[^a-z0-9]", "", normed), re.sub(r"[^a-z0-9]", "", last)))
    keys.discard("")
    return keys


def _match_aliases(names: list[str], data: list[list[str]]) -> tuple[dict[str, str | None], list[str]]:
    """canonical field -> source column by header name, and notes (ties, names passed over as mostly empty).

    A field takes the column of its best alias; a name matches an alias as written, or by its last
    dotted part, or with separators and case ignored. For a shopper, a time and an event type, the
    first matching column whose sampled values are mostly filled wins over a mostly empty one. When the
    item id is a nested field (``items.item_id``), the item's category, brand, price and quantity are taken
    from its siblings first (``items.item_category`` over ``device.category``).
    """
    keys = [_name_keys(n) for n in names]
    columns: dict[str, str | None] = dict.fromkeys(CANONICAL_FIELDS)
    used: set[int] = set()
    notes: list[str] = []
    for fld in CANONICAL_FIELDS:
        candidates: list[tuple[int, int]] = []  # (alias rank, column), best alias first
        seen = set(used)
        for rank, alias in enumerate(FIELD_ALIASES[fld]):
            compact = alias.replace("_", "")
            hits = [i for i, k in enumerate(keys) if i not in seen and (alias in k or compact in k)]
            candidates += [(rank, i) for i in hits]
            seen.update(hits)
        if not candidates:
            continue
        parent = (columns["item_id"] or "").rpartition(".")[0]
        if parent and fld in _ITEM_FIELDS:  # items.price over a column of the event (device.category): stable sort
            candidates.sort(key=lambda c: not names[c[1]].startswith(parent + "."))
        if fld == "quantity":  # "Items" holds a count in one export and product names in another
            candidates = [(rank, i) for rank, i in candidates if _share(data, i, _WHOLE) >= _MIN_FILLED_SHARE]
            if not candidates:
                continue
        filled = [(rank, i) for rank, i in candidates
                  if fld not in _PREFER_FILLED or _filled_share(data, i) >= _MIN_FILLED_SHARE]
        rank, chosen = (filled or candidates)[0]
        ties = [names[i] for r, i in (filled or candidates) if r == rank]
        if len(ties) > 1:
            notes.append(f"several columns could be {fld}: {ties}; took the first")
        if filled and candidates[0][1] != chosen:
            skipped = names[candidates[0][1]]
            notes.append(f"column {skipped!r} is mostly empty in the first rows: {fld} read from {names[chosen]!r}")
        columns[fld] = names[chosen]
        used.add(chosen)
    return columns, notes


def _share(data: list[list[str]], i: int, pattern: re.Pattern) -> float:
    """The share of column ``i``'s filled sample values that ``pattern`` matches (1.0 when none is filled)."""
    values = [v for r in data[:_PROFILE_ROWS] if len(r) > i and (v := r[i].strip())]
    return sum(bool(pattern.match(v)) for v in values) / len(values) if values else 1.0


def _filled_share(data: list[list[str]], i: int) -> float:
    values = [r[i].strip() if len(r) > i else "" for r in data[:_PROFILE_ROWS]]
    return sum(bool(v) for v in values) / len(values) if values else 1.0


def header_signature(names: list[str], n_cols: int, has_header: bool) -> str:
    """Hash of the normalised header (or of the column count when there is none)."""
    key = "|".join(_norm(n) for n in names) if has_header else f"<no header>|{n_cols}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def _sample(names: list[str], data: list[list[str]], column: str) -> list[str]:
    i = names.index(column)
    return [r[i].strip() for r in data[:_PROFILE_ROWS] if len(r) > i]
