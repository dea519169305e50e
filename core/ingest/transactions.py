"""Order exports and transaction files (a row per purchase, no event type): the customer, the order taken as
the session, and the columns of an order's status and its refund that say whether money was kept."""
from __future__ import annotations

import re

from core.ingest.columns import _MIN_FILLED_SHARE, _filled_share, _name_keys, _norm, _sample, _share
from core.ingest.prices import _DECIMAL_COMMA, bare_price
from core.ingest.time_formats import _NUM, _TIME_MIN_SHARE

#: names of an order's number in order exports and transaction files (the session of their purchases), best first
ORDER_ALIASES = ("order_id", "orderid", "order_number", "order_no", "order_num", "order_name", "order",
                 "order_reference", "order_ref", "invoice_id", "invoice_number", "invoice_no", "invoiceno",
                 "invoice", "transaction_id", "transactionid", "receipt_id", "receipt_number", "receipt_no",
                 "purchase_id")

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

#: an order's number as shops show it (Shopify's Name column: #1001)
_ORDER_NUMBER = re.compile(r"^#\d+$")


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
