"""Prices as files write them: currency signs, thousands separators, a decimal comma (:func:`price_pattern`,
:func:`bare_price`), and whether the price column holds unit prices, line totals or order totals."""
from __future__ import annotations

import re

from core.ingest.columns import _name_keys, _sample
from core.ingest.aliases import FIELD_ALIASES
from core.ingest.time_formats import _NUM

#: names of the unit price among the price aliases; of a line's total (unit price x quantity) after them
_UNIT_PRICE_ALIASES = FIELD_ALIASES["price"][:FIELD_ALIASES["price"].index("line_total")]
_LINE_TOTAL_ALIASES = FIELD_ALIASES["price"][len(_UNIT_PRICE_ALIASES):FIELD_ALIASES["price"].index("order_total")]
#: names that say the amount is a whole order's (Etsy's Order Total beside its SKU column)
_ORDER_TOTAL_ALIASES = ("order_total", "grand_total", "order_total_amount", "order_amount", "order_value",
                        "amount_paid", "total_paid", "order_subtotal", "order_subtotal_amount")
#: what the price column of a file holds -> what the analyst reads; the load stores a unit price for each, so
#: that revenue (price x quantity, a missing quantity 1) is the amount written
PRICE_KINDS = {
    "unit_price": "a unit price",
    "line_total": "a line total (unit price x quantity)",
    "order_total": "an order total",
}

#: how every note on what the amounts in the price column are begins (:func:`price_note`)
PRICE_NOTE_START = "the amounts in "

#: spaces around a price's currency or grouping its thousands: no-break, narrow no-break and thin ones too
_PRICE_SPACE = r"[\s\x{00a0}\x{202f}\x{2009}]*"
#: a price's currency, before or after its number: a sign ($ € £ ¥ ₹ ₽ ₩ ₺ ₪ ฿, the Unicode block of currency
#: signs), a dollar with its country (US$, A$, CA$, NZ$, HK$, R$, MX$), any three-letter ISO code in either case
#: with or without a space (NZD 45.00, 45.00 usd, EUR45.00), or a word (kr, Kč, zł, Fr., Rs., руб.)
CURRENCY = (r"(?:[$¢£¤¥\x{0e3f}\x{20a0}-\x{20cf}]|[A-Za-z]{1,3}\$|[A-Za-z]{3}|"
            r"(?i:kr|k[čc]|z[łl]|s?fr|rs|rp|ft|kn|руб|грн|лв|р)\.?)")
#: the South African rand's R counts only before the number (R45.00, R 1 234,50): after it, or any other lone
#: letter (A45, 45 L), it is as likely a size or a grade as a currency, and such a price is no number
_CURRENCY_BEFORE = rf"(?:{CURRENCY}|R)"
#: the digits of a price, grouped by commas, spaces or the Swiss apostrophe (1'234.50), or by points, spaces
#: or apostrophes with a decimal comma (1.234,50); never a point and a comma both as the decimal one
_GROUPS = r"[ \x{00a0}\x{202f}\x{2009}'\x{2019}]"
PRICE_DIGITS = {
    False: rf"\d{{1,3}}(?:(?:,|{_GROUPS})\d{{3}})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+",
    True: rf"\d{{1,3}}(?:(?:\.|{_GROUPS})\d{{3}})+(?:,\d+)?|\d+(?:,\d+)?|,\d+",
    None: r"\.?\d(?:[\d.,\s\x{00a0}\x{202f}\x{2009}'\x{2019}]*\d)?",  # the sniffer's: either decimal sign
}


def price_pattern(decimal_comma: bool | None) -> str:
    """A price as written, whole (RE2 and Python's re alike): groups 1 and 3 an opening bracket of an accounting
    negative, 2 and 4 a minus, 5 the digits, 6 and 7 a closing bracket. A currency (:data:`CURRENCY`) may stand
    before or after the number, and ``.-`` after a whole amount (Swiss and German 45.-)."""
    s, minus = _PRICE_SPACE, r"([-\x{2212}])?"
    return (rf"^{s}(\()?{s}{minus}{s}(?:{_CURRENCY_BEFORE}{s})?(\()?{s}{minus}{s}({PRICE_DIGITS[decimal_comma]})"
            rf"(?:[.,][-\x{{2013}}])?{s}(\))?{s}(?:{CURRENCY})?{s}(\))?{s}$")


def python_regex(pattern: str) -> re.Pattern:
    """``pattern``, written for DuckDB's RE2 with ``\\x{hhhh}`` escapes, compiled for Python's re."""
    return re.compile(re.sub(r"\\x\{([0-9a-f]{4})\}", lambda m: "\\u" + m.group(1), pattern))


_PRICE = python_regex(price_pattern(None))
_GROUP_MARKS = python_regex(_GROUPS)


def bare_price(value: str) -> str:
    """``value`` as a plain signed number if it is a price as written (``$1,234.50`` -> ``1,234.50``, ``(5.00)``
    -> ``-5.00``, ``CHF 1'234.-`` -> ``1234``): currency, spaces and apostrophes grouping thousands gone, its
    decimal sign and other separators kept for the sniffer to judge; else ``value`` as it is."""
    m = _PRICE.match(value)
    if not m:
        return value
    opened, minus, closed = bool(m[1] or m[3]), bool(m[2] or m[4]), bool(m[6] or m[7])
    if opened != closed or (m[1] and m[3]) or (m[6] and m[7]) or (m[2] and m[4]) or (opened and minus):
        return value
    return ("-" if opened or minus else "") + _GROUP_MARKS.sub("", m[5])


#: a number with a decimal comma (3,50), dots grouping its thousands or not (1.234,56)


_DECIMAL_COMMA = re.compile(r"^-?(\d{1,3}(\.\d{3})+|\d+),\d+$")
#: a number with a decimal point that cannot be a dot grouping thousands (3.50, 1,234.5; not 1.234)
_DECIMAL_POINT = re.compile(r"^-?(\d{1,3}(,\d{3})+\.\d+|\d+\.(\d{1,2}|\d{4,}))$")
#: thousands grouped by commas (1,234 or 1,234.50) or, with a decimal comma, by dots (1.234 or 1.234,50)
GROUPED_BY_COMMA = r"-?\d{1,3}(,\d{3})+(\.\d+)?"
GROUPED_BY_DOT = r"-?\d{1,3}(\.\d{3})+(,\d+)?"


def _is_amount(values: list[str]) -> bool:
    """Sampled values that are money: numbers with decimals (11.77), or with currency signs ($12.00, 12,50 €)."""
    filled = [v for v in values if v]
    bare = [bare_price(v) for v in filled]
    numbers = [b for b in bare if _NUM.match(b) or _DECIMAL_COMMA.match(b) or re.match(f"^{GROUPED_BY_COMMA}$", b)]
    return bool(filled) and len(numbers) >= 0.9 * len(filled) and (
        any("." in b or "," in b for b in numbers) or any(b != v for b, v in zip(bare, filled)))


def _price_kind(columns: dict, has_header: bool) -> str:
    """What the price column holds (a key of :data:`PRICE_KINDS`): a unit price or a line total when its name says
    so; else (a total, an amount, a value, or no header) a line total where rows name an item, an order total
    where they do not."""
    if not columns.get("price"):
        return "unit_price"
    keys = _name_keys(columns["price"]) if has_header else set()

    def named(aliases: tuple[str, ...]) -> bool:
        return any(a in keys or a.replace("_", "") in keys for a in aliases)

    if named(_UNIT_PRICE_ALIASES):
        return "unit_price"
    if named(_LINE_TOTAL_ALIASES):
        return "line_total"
    if named(_ORDER_TOTAL_ALIASES):
        return "order_total"
    return "line_total" if columns.get("item_id") else "order_total"


def _decimal_comma(names, columns, data, notes: list[str]) -> bool:
    """True when the price column writes decimals with a comma (3,50; 1.234,56) and never with a point.

    Notes currency signs and thousands separators, which the load reads past (see :data:`CURRENCY`)."""
    if not columns.get("price"):
        return False
    written = [p for p in _sample(names, data, columns["price"]) if p]
    prices = [bare_price(p) for p in written]
    comma = any(_DECIMAL_COMMA.match(p) for p in prices) and not any(_DECIMAL_POINT.match(p) for p in prices)
    if comma:
        notes.append(f"prices in {columns['price']!r} use a decimal comma (like {written[0]!r}): read as decimals, "
                     "a point in them as a thousands separator")
    grouped = re.compile(f"^{GROUPED_BY_DOT if comma else GROUPED_BY_COMMA}$")
    decorated = next((w for w, p in zip(written, prices) if w != p or grouped.match(p)), None)
    if decorated is not None:
        notes.append(f"prices in {columns['price']!r} carry currency signs or thousands separators (like "
                     f"{decorated!r}): read as plain numbers")
    return comma
