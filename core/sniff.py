"""Recognise what an uploaded event file is: encoding, delimiter, header, layout and column mapping.

Only the first :data:`core.config.SNIFF_BYTES` of the file are read. The result is a
:class:`Mapping` (how the file's columns map to the canonical event schema) that the
Data page shows for confirmation when :attr:`Mapping.confident` is False, and that
:func:`core.ingest.ingest_file` applies to the whole file.
"""
from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import io
import json
import re
import statistics
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pandas as pd

from core import config, tabular
from core.errors import ParameterError, SchemaError
from core.field_aliases import FIELD_ALIASES

CANONICAL_FIELDS = (
    "user_id", "event_time", "event_type", "item_id", "category", "brand", "price", "quantity", "session_id",
)
DELIMITERS = (",", "\t", ";", "|", " ")
#: how the Data page and the load's messages name each delimiter
DELIMITER_NAMES = {",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe", " ": "whitespace"}
ENCODINGS = ("utf-8", "utf-8-sig", "latin-1", "cp1252")
#: bytes 0x80-0x9F: control characters in Latin-1 that no text holds, but Windows-1252's curly quotes,
#: dashes, euro sign and trademark sign (Excel's "CSV" on a Western Windows writes Windows-1252)
C1_BYTES = re.compile(rb"[\x80-\x9f]")
#: decoding errors of Windows-1252's five unassigned bytes (0x81, 0x8D, 0x8F, 0x90, 0x9D) keep them as
#: Latin-1 characters, as Windows itself reads them: nothing of the file is replaced
_KEEP_AS_LATIN1 = "cartsight-keep-as-latin-1"
codecs.register_error(_KEEP_AS_LATIN1, lambda err: (err.object[err.start:err.end].decode("latin-1"), err.end))
LAYOUTS = ("rees46", "taobao", "online_retail", "yoochoose", "transactions", "generic", "manual")
#: time_format code -> what the analyst sees in the mapping editor
TIME_FORMATS = {
    "iso": "ISO 8601 (2019-10-01 00:00:00, optional T, offset or ' UTC'; 2019/10/01 too)",
    "unix_s": "Unix seconds (fractions allowed)",
    "unix_ms": "Unix milliseconds",
    "unix_us": "Unix microseconds (GA4's event_timestamp)",
    "excel": "Excel serial days (45352.5 = 2024-03-01 12:00: days since 1899-12-30, the fraction the time of day)",
    "mdy_hm": "MM-DD-YYYY HH:MM (or with /; two-digit years, seconds, AM/PM allowed)",
    "dmy_hm": "DD-MM-YYYY HH:MM (or with / or .; two-digit years, seconds, AM/PM allowed)",
    "month_name": "a month name (Mar 1, 2024 1:05 PM; 01-Mar-2024 10:05; Fri, 01 Mar 2024 10:05:00 GMT)",
    "ymd": "YYYYMMDD",
}

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
#: names of an order's number in order exports and transaction files (the session of their purchases), best first
ORDER_ALIASES = ("order_id", "orderid", "order_number", "order_no", "order_num", "order_name", "order",
                 "order_reference", "order_ref", "invoice_id", "invoice_number", "invoice_no", "invoiceno",
                 "invoice", "transaction_id", "transactionid", "receipt_id", "receipt_number", "receipt_no",
                 "purchase_id")
#: how every note on what the amounts in the price column are begins (:func:`price_note`)
PRICE_NOTE_START = "the amounts in "
#: names of an order's or a payment's status, best first: money's before the order's (Shopify's Financial Status
#: beside its Fulfillment Status, which says nothing of the money); the column must hold statuses (a State column
#: of US states is no status: see :func:`_status_column`)
STATUS_ALIASES = ("financial_status", "payment_status", "charge_status", "transaction_status", "order_status",
                  "status", "payment_state", "order_state", "state")
#: names of the amount refunded of a payment or an order (Stripe's Amount Refunded, Shopify's Refunded Amount)
REFUND_ALIASES = ("amount_refunded", "refunded_amount", "refund_amount", "total_refunded", "refunded_total")
#: statuses (see :func:`status_key`) saying that no money was kept: a purchase holding one is quarantined as
#: ``not_a_purchase``. Magento's ``closed`` (refunded by a credit memo) is not among them: other systems close
#: finished orders
UNPAID_STATUSES = ("refunded", "fully_refunded", "voided", "void", "cancelled", "canceled", "cancel", "failed",
                   "payment_failed", "declined", "rejected", "denied", "expired", "blocked", "reversed",
                   "charged_back", "chargeback", "incomplete", "abandoned")
#: statuses of orders and payments that stay purchases. Pending and authorized ones (awaiting payment, on hold,
#: uncaptured) are kept: the shopper placed the order, bank transfers and cash on delivery stay pending until
#: paid, and shops cancel or void an order that is never paid, which a later export shows
PAID_STATUSES = ("paid", "succeeded", "success", "successful", "complete", "completed", "fulfilled", "unfulfilled",
                 "processing", "partially_refunded", "partially_paid", "authorized", "authorised", "pending",
                 "pending_payment", "payment_review", "on_hold", "holded", "awaiting_payment", "awaiting_fulfillment",
                 "awaiting_shipment", "awaiting_pickup", "shipped", "partially_shipped", "delivered", "captured",
                 "uncaptured", "settled", "approved", "new", "open", "closed", "disputed", "in_progress",
                 "manual_verification_required", "ready_for_pickup")
#: how the notes of :func:`status_notes` begin
STATUS_NOTE_STARTS = ("the order status is read from ", "the amount refunded is read from ")

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

REES46_COLUMNS = ("event_time", "event_type", "product_id", "category_id", "category_code", "brand", "price",
                  "user_id", "user_session")
TAOBAO_COLUMNS = ("user_id", "item_id", "category_id", "behavior_type", "timestamp")
RETAIL_COLUMNS = ("InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID",
                  "Country")
YOOCHOOSE_COLUMNS = ("SessionId", "ItemId", "Time")

_PREVIEW_ROWS = 20
#: non-blank lines above the header a file may have that are no part of its table (see _preamble)
_MAX_PREAMBLE_ROWS = 10
#: a sniff window whose control characters (other than tab, CR, LF and NUL) exceed this share is not text
_MAX_CONTROL_SHARE = 0.01
#: share of the sampled rows that must have the header's number of fields for a delimiter to be trusted
_MIN_DELIMITER_SHARE = 0.5
#: share of sampled time values a format must read to be chosen (the rest go to quarantine)
_TIME_MIN_SHARE = 0.8
_PROFILE_ROWS = 500
#: rows of a workbook or Parquet file written out as CSV for the sniff (the preview and the profiles use fewer)
_TABLE_SNIFF_ROWS = 2_000
#: microsecond times are taken only between 1990 and 2100: longer numbers are more often ids
_UNIX_US_FROM, _UNIX_US_TO = 6.3e14, 4.1e15
#: Excel serial days (a workbook's dates written into a CSV as numbers) are taken between 1954 and 2119
_EXCEL_FROM, _EXCEL_TO = 20_000, 80_000
#: a header name that matches a field a row cannot do without is passed over for a later one when less
#: than this share of its sampled values are filled (GA4's user_id next to user_pseudo_id, Segment's
#: userId next to anonymousId): its empty rows would all be quarantined. Optional fields keep the name
#: order (a price empty on views is still the price).
_MIN_FILLED_SHARE = 0.5
_PREFER_FILLED = ("user_id", "event_time", "event_type")
#: a headerless column of whole numbers is read as a count of items when none exceeds this and half are at most
#: _MAX_MEDIAN_COUNT (CDNOW's quantities: 1 to 99, mostly 1 or 2); larger or zero-padded numbers are ids
_MAX_COUNT, _MAX_MEDIAN_COUNT = 1_000, 10
#: fields that describe the item, read from the item id's own nested record when it is one
_ITEM_FIELDS = ("category", "brand", "price", "quantity")
_NUM = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")
_INT = re.compile(r"^\s*[+-]?\d+\s*$")
_WHOLE = re.compile(r"^[+-]?\d+(\.0*)?$")
_ISO = re.compile(r"^\d{4}[-/]\d{1,2}[-/]\d{1,2}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?( [AaPp][Mm])?)?"
                  r"\s*(Z|UTC|[+-]\d{2}(:?\d{2})?)?$")
_OFFSET = re.compile(r"([+-]\d{2}(:?\d{2})?|Z)$")
_DMY = re.compile(r"^(\d{1,2})[-/.](\d{1,2})[-/.](\d{4}|\d{2})( \d{1,2}:\d{2}(:\d{2})?( [AaPp][Mm])?)?$")
_MONTH = r"(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
#: a date with a month name, an optional weekday before it and clock and UTC/GMT after it (see TIME_FORMATS)
_MONTH_NAME = re.compile(rf"^([a-z]{{3,9}}, )?(\d{{1,2}}[- ]{_MONTH}[- ](\d{{4}}|\d{{2}})|{_MONTH} \d{{1,2}},? \d{{4}})"
                         r"(,? \d{1,2}:\d{2}(:\d{2})?( [ap]m)?)?( utc| gmt| z)?$", re.IGNORECASE)
_YMD = re.compile(r"^(19|20)\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])( \d{1,2}:\d{2}(:\d{2})?( [AaPp][Mm])?)?$")
_INVOICE = re.compile(r"^C?\d{6}$")
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
_CLOCK = re.compile(r"^\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?( [AaPp][Mm])?$")
_DATE_ONLY = re.compile(rf"^(\d{{4}}[-/]\d{{1,2}}[-/]\d{{1,2}}|\d{{1,2}}[-/.]\d{{1,2}}[-/.](\d{{4}}|\d{{2}})|"
                        rf"(19|20)\d{{6}}|\d{{1,2}}[- ]{_MONTH}[- ](\d{{4}}|\d{{2}})|{_MONTH} \d{{1,2}},? \d{{4}})$",
                        re.IGNORECASE)
_NAME = re.compile(r"^[A-Za-z_][\w .\-/()#]*$")
#: a qualifier in brackets after a column's name: a unit, a currency, a zone, taxes in or out
_UNQUALIFIED = re.compile(r"\s*[(\[][^)\]]*[)\]]")
#: an order's number as shops show it (Shopify's Name column: #1001)
_ORDER_NUMBER = re.compile(r"^#\d+$")
#: a time's trailing time zone: an abbreviation (PST, CEST: config.TIME_ZONE_ABBREVIATIONS) or UTC/GMT with an
#: offset (GMT+2, UTC-05:30, UTC+0530); written for Python's re and DuckDB's RE2 alike (core.ingest reads it too)
TIME_ZONE_SUFFIX = r" ((?:UTC|GMT|utc|gmt)[+-][0-9]{1,2}(?::?[0-9]{2})?|[A-Za-z]{2,5}|[Zz])$"
_TIME_ZONE_SUFFIX = re.compile(TIME_ZONE_SUFFIX)
_ZONE_OFFSET = re.compile(r"^(?:UTC|GMT)([+-])(\d{1,2}(?::\d{2})?|\d{4})$", re.IGNORECASE)
#: the largest offset from UTC a zone has (Kiribati, UTC+14:00), in minutes
MAX_ZONE_OFFSET_MINUTES = 14 * 60
_JSON_START = re.compile(r'^[\[{]\s*[\[{]?\s*"[^"\n]{0,200}"\s*:')


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
    #: the worksheet of a spreadsheet to read (:func:`core.tabular.worksheets`); None: the first
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


# --- reading the head of the file ---------------------------------------------------------------


def _read_head(path: Path) -> tuple[bytes, str | None, bool]:
    """The first SNIFF_BYTES (decompressed), the compression, and whether the whole file fitted."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
    compression = "gzip" if magic == b"\x1f\x8b" else None
    opener = gzip.open if compression else open
    try:
        with opener(path, "rb") as fh:
            head = fh.read(config.SNIFF_BYTES + 1)
    except (OSError, EOFError) as exc:
        raise SchemaError(f"{path.name}: the gzip data is damaged ({exc}); expected a readable .csv.gz file",
                          reason="unreadable_file") from exc
    return head[: config.SNIFF_BYTES], compression, len(head) <= config.SNIFF_BYTES


_SAVE_AS_CSV = "expected a CSV/TSV file of events: open it in its program and save or export it as CSV (UTF-8)"
#: leading bytes of file kinds analysts upload by mistake (often renamed .csv), and what to call them
_MAGIC = (
    # a readable .xls shares this container and is read as a spreadsheet (core.tabular) before this is asked
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Office document (Word, PowerPoint) or a damaged Excel "
                                            "97-2003 workbook (.xls)"),
    (b"%PDF", "a PDF document"),
    (b"SQLite format 3\x00", "an SQLite database"),
)


_UNZIP = "expected a CSV/TSV file of events: unzip it and upload the file inside (a .csv.gz file is read as it is)"


def _zip_kind(path: Path) -> tuple[str, str]:
    """What a ZIP container is, in the analyst's words (workbooks are ZIP files inside), and what to do."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            mimetype = zf.read("mimetype").decode("ascii", "replace") if "mimetype" in names else ""
    except (zipfile.BadZipFile, OSError, KeyError):
        return "a damaged ZIP archive", _UNZIP
    if any(n.startswith("xl/") for n in names):
        return "an Excel workbook (.xlsx)", _SAVE_AS_CSV
    if any(n.startswith("word/") for n in names) or "opendocument.text" in mimetype:
        return "a word-processor document", _SAVE_AS_CSV
    shown = [n for n in names if not n.endswith("/")][:3]
    return f"a ZIP archive holding {', '.join(shown) or 'nothing'}", _UNZIP


def _refuse_non_text(head: bytes, path: Path, compression: str | None) -> None:
    """Raise :class:`SchemaError` naming the file's kind when it is a workbook, archive or other binary file."""
    name = path.name
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        kind, advice = _zip_kind(path) if compression is None else ("a gzip-compressed ZIP archive", _UNZIP)
        raise SchemaError(f"{name} is {kind}, not a CSV file (was it renamed?); {advice}", reason="unreadable_file")
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            raise SchemaError(f"{name} is {kind}, not a CSV file (was it renamed?); {_SAVE_AS_CSV}",
                              reason="unreadable_file")
    if b"\x00" in head:
        text = head.replace(b"\x00", b"")
        # a few NUL bytes in text (a damaged or zero-padded file) are quarantined row by row at load;
        # a file made of them, or binary bytes around them, is no text file
        if not text.strip() or _control_share(text) > _MAX_CONTROL_SHARE:
            raise SchemaError(f"{name} looks like a binary file (it contains NUL bytes), not a delimited text "
                              "file; expected a CSV/TSV file of events", reason="unreadable_file")


def _refuse_json(text: str, name: str) -> None:
    """Raise :class:`SchemaError` when the text is JSON (an array of objects, or JSON lines), not CSV."""
    if _JSON_START.match(text.lstrip("\ufeff \t\r\n")):
        raise SchemaError(f"{name} is JSON, not a delimited text file; expected a CSV/TSV file of events (a header "
                          "row, then one event per line): export the data as CSV", reason="unreadable_file")


def _detect_encoding(head: bytes, name: str) -> str:
    """'utf-8-sig' for a BOM, 'utf-8' when it decodes (or mostly does), else, when it is text at all,
    'cp1252' (Windows-1252) when it holds bytes 0x80-0x9F and 'latin-1' when not (a later 0x80-0x9F byte
    turns a Latin-1 file into Windows-1252 at load: :func:`core.ingest.ingest_file`)."""
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    head = head.replace(b"\x00", b"")  # stray NUL bytes (see _refuse_non_text) say nothing of the encoding
    try:
        head.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 3:  # a multi-byte character cut by the sniff window
            return "utf-8"
    decoded = head.decode("utf-8", errors="replace")
    bad = decoded.count("\ufffd")
    if sum(1 for ch in decoded if ch > "\x7f") - bad > bad:
        return "utf-8"  # UTF-8 with a few lines in another encoding (files joined): those lines are quarantined
    from charset_normalizer import from_bytes

    best = from_bytes(head).best()
    if best is None or _control_share(head) > _MAX_CONTROL_SHARE:
        raise SchemaError(f"{name} does not look like text (no character encoding fits it); "
                          "expected a CSV/TSV file of events in UTF-8 or Latin-1", reason="unreadable_file")
    return "cp1252" if C1_BYTES.search(head) else "latin-1"


def decode_errors(encoding: str) -> str:
    """The ``errors`` argument to decode text of ``encoding`` with: nothing is lost that the encoding has."""
    return _KEEP_AS_LATIN1 if encoding == "cp1252" else "replace"


def _control_share(data: bytes) -> float:
    bad = sum(1 for b in data if b < 32 and b not in (9, 10, 13))
    return bad / max(1, len(data))


def _lines(text: str, complete: bool) -> list[str]:
    lines = text.splitlines()
    if not complete and len(lines) > 1:
        lines = lines[:-1]  # the sniff window cut the last line
    return [ln for ln in lines if ln.strip()]


def _split(lines: list[str], delimiter: str) -> list[list[str]]:
    """The rows of ``lines``: a quoted field may run over several lines (a description with line breaks),
    unless reading so makes the rows less consistent than reading line by line (a quote opened and never
    closed swallows the lines after it into one field)."""
    if delimiter == " ":
        return [ln.split() for ln in lines]
    # one field may fill the whole sniff window (a 1 MB line); the csv module refuses fields over its limit
    csv.field_size_limit(max(csv.field_size_limit(), config.SNIFF_BYTES + 1))
    try:
        rows = list(csv.reader((ln + "\n" for ln in lines), delimiter=delimiter))
    except csv.Error:
        rows = []
    rows = [[v.removesuffix("\n") for v in r] if r and r[-1].endswith("\n") else r for r in rows]
    if len(rows) == len(lines):
        return rows
    by_line = [_split_line(ln, delimiter) for ln in lines]
    return rows if rows and _consistency(rows) >= _consistency(by_line) else by_line


def _consistency(rows: list[list[str]]) -> float:
    """The share of rows with the most common number of fields."""
    counts = [len(r) for r in rows]
    return counts.count(statistics.mode(counts)) / len(counts) if counts else 0.0


def _split_line(line: str, delimiter: str) -> list[str]:
    try:
        return next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error:
        return line.split(delimiter)


def _preamble(rows: list[list[str]], n_cols: int) -> int:
    """How many leading rows are no part of the table: a report's title, its date range, a blank-padded
    ``Sales report,,,,`` as Excel writes a title cell, above a header. 0 when the table starts at once.

    They fill less than half of the table's width, and the first row that fills more is a header."""
    for k, row in enumerate(rows[:_MAX_PREAMBLE_ROWS + 1]):
        if 2 * sum(1 for v in row if v.strip()) > n_cols:
            return k if k and len(row) >= n_cols and _looks_like_header(row, rows[k + 1:]) else 0
    return 0


def _rows_before(text: str, lines: int) -> int:
    """How many non-blank lines the file's first ``lines`` lines hold (the rows :func:`_lines` keeps of them)."""
    return sum(1 for line in re.split(r"\r\n|\r|\n", text)[:lines] if line.strip())


def _physical_lines_before(text: str, rows: int) -> int:
    """The file's lines (blank ones included, as DuckDB counts them) before its ``rows``-th non-blank line."""
    if not rows:
        return 0
    seen = 0
    for i, line in enumerate(re.split(r"\r\n|\r|\n", text)):
        if line.strip():
            if seen == rows:
                return i
            seen += 1
    return 0


def _detect_delimiter(lines: list[str]) -> tuple[str, list[list[str]], bool]:
    """The delimiter that splits most rows, and the header, into the same number of fields (>1); ties make it
    unsure.

    Ranked by: a real delimiter whose count is the consistent majority's (at least ``_MIN_DELIMITER_SHARE``
    of the rows) before whitespace, then whether the header row has that count too, then the share of
    consistent rows and their width. Whitespace is the last resort: REES46 times (``2019-10-01 00:00:00
    UTC``) put two spaces on every line, so a few ragged lines would otherwise make a space-split file look
    more consistent than its commas.
    """
    scored = []
    for delim in DELIMITERS:
        rows = _split(lines[:_PROFILE_ROWS], delim)
        counts = [len(r) for r in rows]
        if not counts:
            continue
        mode = statistics.mode(counts)
        share = counts.count(mode) / len(counts)
        if mode > 1:
            majority = delim != " " and share >= _MIN_DELIMITER_SHARE
            header_agrees = _header_width(rows, mode) == mode
            scored.append(((majority, header_agrees, share, mode), -DELIMITERS.index(delim), delim))
    if not scored:
        return ",", _split(lines, ","), False
    scored.sort(reverse=True)
    best = scored[0]
    rivals = [s for s in scored[1:] if s[0] == best[0] and " " not in (s[2], best[2])]
    return best[2], _split(lines, best[2]), not rivals


def _header_width(rows: list[list[str]], n_cols: int) -> int:
    """The fields of the first row that fills more than half of ``n_cols`` (lines above a header, a report's
    title or its date, fill less: see :func:`_preamble`)."""
    return next((len(r) for r in rows[:_MAX_PREAMBLE_ROWS + 1] if 2 * sum(1 for v in r if v.strip()) > n_cols), 0)


# --- value kinds ------------------------------------------------------------------------------------


#: an abbreviation whose partner is in the same column means the zone listed for it: PDT beside PST is North
#: American Pacific time, not Philippine; BST beside GMT is British
_ZONE_PARTNERS = {"PST": "PDT", "MST": "MDT", "CST": "CDT", "CDT": "CST", "AST": "ADT", "BST": "GMT"}
#: abbreviations named in messages as examples of those read
ZONE_EXAMPLES = "PST, PDT, EST, EDT, CST, CET, CEST, BST, IST, JST, AEST"


def split_time_zone(value: str) -> tuple[str, str | None]:
    """``value`` without the time zone it ends in (``2019-10-01 00:00:00 PST``: see :data:`TIME_ZONE_SUFFIX`) and
    that zone upper-cased; ``value`` and None when it ends in none (AM and PM are a 12-hour clock's)."""
    m = _TIME_ZONE_SUFFIX.search(value)
    if not m or m.group(1).upper() in ("AM", "PM"):
        return value, None
    return value[:m.start()].rstrip(), m.group(1).upper()


def zone_offset_minutes(zone: str) -> int | None:
    """Minutes east of UTC of a zone :func:`split_time_zone` found (PST: -480; UTC+05:30: 330); None when the
    abbreviation is not in :data:`core.config.TIME_ZONE_ABBREVIATIONS` or the offset is past 14 hours."""
    if zone.upper() in config.TIME_ZONE_ABBREVIATIONS:
        return config.TIME_ZONE_ABBREVIATIONS[zone.upper()][0]
    m = _ZONE_OFFSET.match(zone)
    if not m:
        return None
    digits = m.group(2).replace(":", "")
    hours, minutes = (int(digits), 0) if len(digits) <= 2 else (int(digits[:-2]), int(digits[-2:]))
    total = hours * 60 + minutes
    return (-total if m.group(1) == "-" else total) if total <= MAX_ZONE_OFFSET_MINUTES and minutes < 60 else None


def _utc_offset_text(minutes: int) -> str:
    return f"UTC{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _zone_notes(zones: list[str]) -> list[str]:
    """What the analyst is told of the time zones the sampled times end in: each is read with its offset, which
    abbreviations also name other zones, and which are unknown (their rows are quarantined)."""
    found = sorted(set(zones))
    if not found or found == ["UTC"]:
        return ["times carry a ' UTC' suffix: read as UTC"] if found else []
    known = [z for z in found if zone_offset_minutes(z) is not None]
    notes = []
    if known and not any(zone_offset_minutes(z) for z in known):
        notes.append(f"times end in {'/'.join(known)}: read as UTC")
    elif known:
        offsets = ", ".join(f"{z} = {_utc_offset_text(zone_offset_minutes(z))}" for z in known[:8])
        notes.append(f"times end in a time zone ({offsets}): each is read with its own offset and converted to UTC")
    for z in known:
        if z in config.TIME_ZONE_OTHER_MEANINGS and _ZONE_PARTNERS.get(z) not in found:
            minutes, name = config.TIME_ZONE_ABBREVIATIONS[z]
            notes.append(f"'{z}' is read as {name} ({_utc_offset_text(minutes)}); it also names "
                         f"{config.TIME_ZONE_OTHER_MEANINGS[z]}: if the file means another, write its times with "
                         "their UTC offset (such as +08:00) and load it again")
    if unknown := [z for z in found if z not in known]:
        notes.append(f"times end in {unknown[:5]}, no time zone known here (expected an abbreviation such as "
                     f"{ZONE_EXAMPLES} or an offset such as UTC+05:30): those rows will be quarantined, not read "
                     "as UTC")
    return notes


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


def detect_time_format(values: list[str]) -> tuple[str | None, list[str]]:
    """The time format of sample ``values`` (see :data:`TIME_FORMATS`) and notes; None when none fits.

    A format fits when it reads at least ``_TIME_MIN_SHARE`` of the non-empty values; the
    rest will be quarantined as unparseable, and a note says so.
    """
    written = [v.strip() for v in values if v and v.strip()]
    if not written:
        return None, []
    split = [split_time_zone(v) for v in written]  # a zone at the end is read in any format
    vals = [local for local, _ in split]
    notes: list[str] = []
    need = _TIME_MIN_SHARE * len(vals)

    def fits(pattern: re.Pattern) -> list[str]:
        hits = [v for v in vals if pattern.match(v)]
        return hits if len(hits) >= need else []

    if iso := fits(_ISO):
        offsets = {m.group(1) for v in iso if len(v) > 10 and (m := _OFFSET.search(v)) and not v.endswith("UTC")}
        if len(offsets) > 1:
            notes.append(f"times carry different UTC offsets ({', '.join(sorted(offsets)[:4])}): converted to UTC")
        elif any(v.endswith("UTC") for v in iso):
            notes.append("times carry a ' UTC' suffix: read as UTC")
        fmt, hits = "iso", iso
    elif ymd := fits(_YMD):
        fmt, hits = "ymd", ymd
    elif nums := fits(_NUM):
        mid = statistics.median(float(v) for v in nums)
        fmt = ("unix_ms" if 1e11 <= mid < 1e14 else "unix_s" if 1e8 <= mid < 1e11
               else "unix_us" if _UNIX_US_FROM <= mid < _UNIX_US_TO
               else "excel" if _EXCEL_FROM <= mid < _EXCEL_TO else None)
        hits = nums
        if fmt == "excel":
            notes.append("times are Excel serial day numbers (45352.5 is 2024-03-01 12:00): read as days since "
                         "1899-12-30, to the second")
    elif dmy := fits(_DMY):
        matches = [_DMY.match(v) for v in dmy]
        firsts = [int(m.group(1)) for m in matches]
        seconds = [int(m.group(2)) for m in matches]
        hits = dmy
        if max(firsts) > 12 >= max(seconds):
            fmt = "dmy_hm"
        elif max(seconds) > 12 >= max(firsts):
            fmt = "mdy_hm"
        else:
            fmt = "mdy_hm"
            notes.append("dates could be month-first or day-first; read as MM-DD-YYYY (month first)")
    elif named := fits(_MONTH_NAME):
        fmt, hits = "month_name", named
    else:
        return None, notes
    if fmt and len(hits) < len(vals):
        read = set(hits)
        odd = [w for w, v in zip(written, vals) if v not in read][:3]
        notes.append(f"some times are not in the detected format (for example {odd}): those rows will be "
                     "quarantined")
    if fmt:
        zones = [z for _, z in split if z]
        notes.extend(n for n in _zone_notes(zones) if n not in notes)
        if zones and (bare := [w for w, (_, z) in zip(written, split) if not z and not _OFFSET.search(w)]):
            notes.append(f"some times carry no time zone (like {bare[0]!r}) where others do: read as UTC")
    return fmt, notes


# --- layouts ------------------------------------------------------------------------------------------


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


def _is_amount(values: list[str]) -> bool:
    """Sampled values that are money: numbers with decimals (11.77), or with currency signs ($12.00, 12,50 €)."""
    filled = [v for v in values if v]
    bare = [bare_price(v) for v in filled]
    numbers = [b for b in bare if _NUM.match(b) or _DECIMAL_COMMA.match(b) or re.match(f"^{GROUPED_BY_COMMA}$", b)]
    return bool(filled) and len(numbers) >= 0.9 * len(filled) and (
        any("." in b or "," in b for b in numbers) or any(b != v for b, v in zip(bare, filled)))


def _is_count(values: list[str]) -> bool:
    """Sampled whole numbers that count items (1, 2, 12): small, none written with leading zeros (ids are)."""
    counts = [v.lstrip("+-") for v in values if v]
    return bool(counts) and all(c.isdigit() and (c == "0" or not c.startswith("0")) for c in counts) and (
        max(int(c) for c in counts) <= _MAX_COUNT and statistics.median(int(c) for c in counts) <= _MAX_MEDIAN_COUNT)


# --- entry point -----------------------------------------------------------------------------------------


#: what a mapping set by hand may name besides the canonical fields -> the attribute of :class:`Mapping` it sets:
#: the time-of-day column, the order status and the amount refunded
_HAND_ATTRIBUTES = {"time_of_day": "time_of_day", "status": "status_column", "amount_refunded": "refund_column"}
HAND_FIELDS = (*CANONICAL_FIELDS, *_HAND_ATTRIBUTES)


def with_overrides(mapping: Mapping, columns: dict[str, str | None] | None = None, event_type: str | None = None,
                   time_format: str | None = None, price_is: str | None = None) -> Mapping:
    """``mapping`` with what the analyst set by hand, checked as the Data page's mapping is.

    ``columns``: field -> source column, or None to unmap it (a field of :data:`HAND_FIELDS`; a column named
    in another case than the file's is taken when only one matches; ``status`` and ``amount_refunded`` name the
    columns of an order's status and its refund, :attr:`Mapping.status_column` and :attr:`Mapping.refund_column`);
    a field mapped to the event type column reads the type from it again. ``event_type``: one type for every row
    (a canonical type or a name for one, ``order`` for ``purchase``). ``time_format``: a key of
    :data:`TIME_FORMATS`; ``price_is`` one of :data:`PRICE_KINDS`. Returns a new mapping with a note of what was
    set; raises :class:`ParameterError` naming an unknown field, time format, price kind or event type (or one
    set twice), and :class:`SchemaError` (``missing_column``) for a column the file lacks.
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
    out.validate()
    if changes:  # what was missing is said again of the mapping as set
        out.notes = [n for n in mapping.notes if not n.startswith(_MISSING_NOTE_STARTS)]
        _required_present(out.columns, out.constant_event_type, out.notes)
        out.notes.append(f"mapping set by hand: {', '.join(changes)}")
    return out


def _source_column(name: str | None, source_columns: list[str]) -> str | None:
    """``name`` as the file writes it: itself, or the one column that matches it in another case; None for none."""
    if not name:
        return None
    if name in source_columns:
        return name
    same = [c for c in source_columns if c.lower() == name.lower()]
    return same[0] if len(same) == 1 else name  # a name the file lacks: validate() names it


def header_signature(names: list[str], n_cols: int, has_header: bool) -> str:
    """Hash of the normalised header (or of the column count when there is none)."""
    key = "|".join(_norm(n) for n in names) if has_header else f"<no header>|{n_cols}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def sniff(path: str | Path, engine=None, sheet: str | None = None, skip_lines: int | None = None) -> Sniffed:
    """Detect encoding, delimiter, header and layout of the file at ``path`` and propose a mapping.

    Reads only the first ``SNIFF_BYTES`` (decompressing gzip, recognised by its magic bytes); a
    spreadsheet, a Parquet file, JSON or UTF-16 text is read through its first rows written out as UTF-8
    CSV (:mod:`core.tabular`).
    With ``engine``, a mapping remembered for the same header signature (see
    :func:`core.ingest.remember_mapping`) replaces the guess and is marked confident. ``sheet``: the
    worksheet of a spreadsheet to read (the first visible one by default; see :func:`core.tabular.worksheets`).
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
    chosen = skip_lines is not None
    if chosen:  # the lines skipped say nothing of the delimiter either
        preamble = _rows_before(text, skip_lines)
        if preamble >= len(lines):
            raise ParameterError(f"{path.name}: no line is left to read after skipping {skip_lines:,} lines; "
                                 f"expected the header within the first {len(lines):,} lines", parameter="skip_lines",
                                 cases=[skip_lines])
        delimiter, rows, delim_sure = _detect_delimiter(lines[preamble:])
        n_cols = statistics.mode(len(r) for r in rows[:_PROFILE_ROWS])
    else:
        delimiter, rows, delim_sure = _detect_delimiter(lines)
        n_cols = statistics.mode(len(r) for r in rows[:_PROFILE_ROWS])
        preamble = _preamble(rows, n_cols)
        skip_lines = _physical_lines_before(text, preamble)
        rows = rows[preamble:]
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
    remembered = _remembered(engine, signature, mapping) if engine is not None else None
    if remembered is not None:
        remembered.encoding, remembered.compression, remembered.confident = encoding, compression, True
        remembered.skip_lines = skip_lines  # the title above the same header may differ from file to file
        note = "mapping remembered from an earlier file with the same header"
        remembered.notes = [n for n in remembered.notes if n != note] + [note]
        mapping = remembered
    columns = mapping.source_columns if len(mapping.source_columns) == n_cols else names
    # object columns: building 10,000 string-typed columns takes seconds, object ones a fraction
    preview = pd.DataFrame([(r + [""] * n_cols)[:n_cols] for r in data[:_PREVIEW_ROWS]], columns=columns,
                           dtype=object)
    return Sniffed(mapping=mapping, preview=preview, signature=signature, compression=compression)


def _sniff_table(path: Path, kind: str, engine, sheet: str | None, skip_lines: int | None) -> Sniffed:
    """:func:`sniff` of a spreadsheet, a Parquet file, JSON or UTF-16 text: its first rows written out as CSV
    (:mod:`core.tabular`), then read as one."""
    from core.store import temp_prefix

    with tempfile.TemporaryDirectory(prefix=temp_prefix("sniff")) as tmp:
        head = Path(tmp) / path.name
        converted = tabular.to_csv(path, head, max_rows=_TABLE_SNIFF_ROWS, kind=kind, sheet=sheet)
        sniffed = sniff(head, engine, skip_lines=skip_lines)
    sniffed.mapping.notes.insert(0, converted.note)
    sniffed.mapping.sheet = converted.sheet
    return sniffed


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
    return mapping


def _time_by_content(names: list[str], kinds: list[dict[str, int]], columns: dict, notes: list[str]) -> str | None:
    """The first column of dates or times (not bare numbers, which are more often ids or amounts) when no header
    name is a time's (an order export's Placed); ``notes`` says which was taken."""
    found = next((n for n, k in zip(names, kinds) if n not in columns.values()
                  and _major(k) in ("iso", "dmy", "ymd", "month_name")), None)
    if found is not None:
        notes.append(f"no column is named as the time: {found!r} holds dates and is taken as the time; check the "
                     "mapping")
    return found


def _customer_by_name(names: list[str], columns: dict, notes: list[str]) -> str | None:
    """The customer of a transaction file whose header names none by a known name (``notes`` says which was
    taken): the first column named for a customer (Client Ref, Member No; Buyer Name only when no other is) or,
    failing that, the first named as an id (BTYD's CDNOW ``masterid``) that is no order's number."""
    free = [n for n in names if n not in columns.values()]
    words = [n for n in free if re.search(r"(customer|client|buyer|shopper|member|user|account|e_?mail|patron|"
                                          r"subscriber)", _norm(n)) and not re.search(r"(type|group|note|status|"
                                                                                      r"since|count)", _norm(n))]
    order = {n for n in free for a in ORDER_ALIASES if a in _name_keys(n) or a.replace("_", "") in _name_keys(n)}
    ids = [n for n in free if re.sub(r"[^a-z0-9]", "", _norm(n)).endswith("id") and n not in order]
    words.sort(key=lambda n: "name" in _norm(n))  # a name last: two Ann Lees are two shoppers
    found = (words or ids or [None])[0]
    if found is not None:
        notes.append(f"no column is named as the customer: {found!r} is taken as the customer; check the mapping")
    return found


def _order_as_session(names: list[str], data: list[list[str]], columns: dict, has_header: bool,
                      notes: list[str]) -> None:
    """Map the order number of an order export or transaction file as the session of its purchases (``columns``
    is updated): a column of ``#1001`` numbers (Shopify's Name), a column named as one (Order ID, Order #,
    Invoice), or, where each row is an order (no item column), one named ``id`` (Magento's, Stripe's)."""
    if columns["session_id"] or not has_header:
        return
    # mostly filled: an order's number on each of its lines, not a receipt number on some
    free = [n for n in names if n not in columns.values() and _filled_share(data, names.index(n)) >= _MIN_FILLED_SHARE]
    keys = {n: _name_keys(n) for n in free}
    found = next((n for n in free if _share(data, names.index(n), _ORDER_NUMBER) >= _TIME_MIN_SHARE), None)
    found = found or next((n for alias in ORDER_ALIASES for n in free
                           if alias in keys[n] or alias.replace("_", "") in keys[n]), None)
    if found is None and not columns["item_id"]:
        found = next((n for n in free if "id" in keys[n]), None)
    if found is not None:
        columns["session_id"] = found
        notes.append(f"each order ({found!r}) is taken as a session")


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


def price_note(mapping: Mapping) -> str | None:
    """What the analyst is told when the price column holds a total, not a unit price (None for a unit price)."""
    if mapping.price_is == "unit_price" or not mapping.columns.get("price"):
        return None
    price, quantity = mapping.columns["price"], mapping.columns.get("quantity")
    kind = {"line_total": "line totals (unit price x quantity)", "order_total": "order totals"}[mapping.price_is]
    stored = (f"the price stored is the total / {quantity!r} (the average unit price)" if quantity
              else "the price stored is the whole total, for one unit")
    return f"{PRICE_NOTE_START}{price!r} are {kind}, not unit prices: each row's revenue is its total; {stored}"


def status_key(value: str) -> str:
    """A status as compared with :data:`UNPAID_STATUSES`: lower-cased and trimmed, spaces and hyphens read as
    underscores, WooCommerce's ``wc-`` prefix dropped (``wc-cancelled``, ``Partially Refunded``)."""
    return re.sub(r"[\s\-]+", "_", value.strip().lower()).removeprefix("wc_")


def _named_as(name: str, aliases: tuple[str, ...]) -> int | None:
    """The rank of the first of ``aliases`` that the header ``name`` matches (see :func:`_name_keys`), or None."""
    keys = _name_keys(name)
    return next((rank for rank, a in enumerate(aliases) if a in keys or a.replace("_", "") in keys), None)


def _status_column(names: list[str], data: list[list[str]], columns: dict) -> str | None:
    """The column of each order's or payment's status in a transaction file: the best named as one
    (:data:`STATUS_ALIASES`) whose filled sample values are mostly statuses known here (a State column of US
    states, a Status column of something else, is none); None when no column is."""
    known = {*UNPAID_STATUSES, *PAID_STATUSES}
    named = [(rank, n) for n in names if n not in columns.values()
             and (rank := _named_as(n, STATUS_ALIASES)) is not None]
    for _, name in sorted(named, key=lambda rn: rn[0]):
        values = [status_key(v) for v in _sample(names, data, name) if v]
        if values and sum(v in known for v in values) >= _MIN_FILLED_SHARE * len(values):
            return name
    return None


def _refund_column(names: list[str], data: list[list[str]], columns: dict, status: str | None) -> str | None:
    """The column of the amount refunded (:data:`REFUND_ALIASES`) whose filled sample values are amounts (Stripe's
    Amount Refunded: 0.00, 41.00), or None."""
    named = [(rank, n) for n in names if n not in columns.values() and n != status
             and (rank := _named_as(n, REFUND_ALIASES)) is not None]
    for _, name in sorted(named, key=lambda rn: rn[0]):
        values = [bare_price(v) for v in _sample(names, data, name) if v]
        if values and sum(bool(_NUM.match(v) or _DECIMAL_COMMA.match(v)) for v in values) >= 0.9 * len(values):
            return name
    return None


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


def _sample(names: list[str], data: list[list[str]], column: str) -> list[str]:
    i = names.index(column)
    return [r[i].strip() for r in data[:_PROFILE_ROWS] if len(r) > i]


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


def _remembered(engine, signature: str, guess: Mapping) -> Mapping | None:
    """The mapping stored for ``signature`` by :func:`core.ingest.remember_mapping`, if any. One stored before
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
