"""Per-shopper summaries of a dataset, written with its derived figures so that pages read them instead of every event.

A team's database answers a page by grouping every event of the dataset on every view; what most pages
need over the whole dataset is a grouping by shopper (and by a category, brand, price band or event type
within a shopper), which is a few rows per shopper, written once when the dataset is loaded or appended to
(:func:`core.store.derived.derive_dataset` calls :func:`write_summaries` inside the load's transaction, so a
failed or cancelled load leaves them as they were):

- ``cs_shoppers``: one row per shopper with counts by event type, sessions (and the sessions that reached
  each funnel step), orders, revenue and first/last event and purchase time, summed from ``cs_session_days``
  (the RFM lens, the Overview's headline numbers and funnel over the whole dataset);
- ``cs_shopper_categories``, ``cs_shopper_brands``, ``cs_shopper_price_bands``, ``cs_shopper_event_types``
  and ``cs_shopper_category_brands`` (``schema.shopper_values``, a table per dimension of :data:`DIMENSIONS`,
  so a page reads only its own): one row per shopper and value with counts by event type and revenue (the Overview's rankings and event types, and the Preferences and Shopper pages' shares
  over the whole dataset);
- ``cs_value_totals``: per category, brand and price band, its events, shoppers, views, viewers, purchases,
  buyers and revenue over every shopper, summed from those per-shopper rows (the Overview's rankings and
  everyone's preferences over the whole dataset);
- ``cs_segment_value_totals``: the same per segment of the dataset's newest segmentation run
  (:mod:`core.store.segment_totals`: the Preferences page by segment, its heat map and drill-down);
- ``cs_type_days``: events per UTC day and event type with the fields they carry (the activity chart and
  column coverage, for the whole dataset or any whole-day window);
- ``cs_price_counts``: events per event type and unit price (the price distribution of the whole dataset).

The per-shopper tables are exact for the whole dataset, not for a date window: a query with a window reads
the events (or ``cs_session_days`` for whole days). A file appended rewrites the rows of the shoppers it
holds (the others keep theirs), every shopper's price-band rows when the bands were computed again, and the
small tables whole (a few rows per value, per day and per price).
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.store import schema, segment_totals, sql

#: The dimensions summarised per shopper; ``category_brand`` is the brand within each category (drill-downs).
DIMENSIONS = ("category", "brand", "price_band", "event_type", "category_brand")
#: The dimensions whose totals over every shopper are kept (``cs_value_totals``).
TOTAL_DIMENSIONS = ("category", "brand", "price_band")
#: The per-type count column of each canonical event type (purchases without cancellations).
TYPE_COLUMNS = {"view": "n_views", "cart": "n_carts", "remove_from_cart": "n_removes", "purchase": "n_purchases",
                "wishlist": "n_wishlists"}

_e = schema.events.c
_sd = schema.session_days.c


def write_summaries(conn: Connection, dataset_id: int, users: sa.Select | None = None,
                    bands_moved: bool = True) -> None:
    """(Re)write the summaries of ``dataset_id`` (module docstring) in ``conn``'s transaction.

    ``users``: a SELECT of the shoppers whose rows are rewritten (a file appended), the others kept; None
    rewrites every shopper's. ``bands_moved``: the price bands of every event were computed again, so every
    shopper's price-band rows are rewritten even when ``users`` is given. Reads ``cs_session_days``, which
    must already be written for those shoppers.
    """
    _write_shoppers(conn, dataset_id, users)
    for dimension in DIMENSIONS:
        _write_values(conn, dataset_id, dimension, None if dimension == "price_band" and bands_moved else users)
    write_totals(conn, dataset_id)
    segment_totals.rewrite_newest(conn, dataset_id)
    _write_type_days(conn, dataset_id)
    _write_price_counts(conn, dataset_id)


def _only(column: sa.ColumnElement, users: sa.Select | None) -> list:
    return [] if users is None else [column.in_(users)]


def _write_shoppers(conn: Connection, dataset_id: int, users: sa.Select | None) -> None:
    """``cs_shoppers`` rows of the dataset's (or ``users``') shoppers, grouped from their session days.

    Sums and extremes come from one level of grouping by shopper; only the sessions' flags (a visit over
    midnight has a row per day) are grouped by session first, which keeps that grouping's rows narrow.
    """
    sh = schema.shoppers
    conn.execute(sh.delete().where(sh.c.dataset_id == dataset_id, *_only(sh.c.user_id, users)))
    where = [_sd.dataset_id == dataset_id, *_only(_sd.user_id, users)]
    sums = ("n_events", "n_views", "n_carts", "n_purchases", "n_cancels", "revenue", "n_amounts")
    totals = sa.select(
        _sd.user_id, *[sa.func.sum(_sd[k]).label(k) for k in sums], sa.func.min(_sd.first_event).label("first_event"),
        sa.func.max(_sd.last_event).label("last_event"), sa.func.max(_sd.last_purchase).label("last_purchase"),
    ).where(*where).group_by(_sd.user_id).subquery("totals")
    v, c, o = (sa.func.max(sql.flag(col > 0)) for col in (_sd.n_views, _sd.n_carts, _sd.n_purchases))
    named = sa.func.max(sql.flag(sa.and_(_sd.n_purchases > 0, _sd.session_id.is_not(None))))
    per_session = (sa.select(_sd.user_id, v.label("v"), c.label("c"), o.label("o"), named.label("named"))
                   .where(*where).group_by(_sd.user_id, _sd.session_id).subquery("per_session"))
    s = per_session.c
    visits = sa.select(
        s.user_id, sa.func.count().label("n_sessions"), sa.func.sum(s.o).label("n_orders"),
        sa.func.sum(s.named).label("n_named_orders"),
        sa.func.sum(s.v).label("n_view_sessions"), sa.func.sum(s.c).label("n_cart_sessions"),
        sa.func.sum(s.v * s.c).label("n_view_cart_sessions"), sa.func.sum(s.v * s.c * s.o).label("n_vco"),
    ).group_by(s.user_id).subquery("visits")
    t, n = totals.c, visits.c
    select = sa.select(sa.literal(dataset_id, sa.Integer), t.user_id, *[t[k] for k in sums], n.n_sessions, n.n_orders,
                       n.n_named_orders,
                       n.n_view_sessions, n.n_cart_sessions, n.n_view_cart_sessions, n.n_vco, t.first_event,
                       t.last_event, t.last_purchase).select_from(totals.join(visits, n.user_id == t.user_id))
    names = ["dataset_id", "user_id", *sums, "n_sessions", "n_orders", "n_named_orders", "n_view_sessions", "n_cart_sessions",
             "n_view_cart_sessions", "n_view_cart_order_sessions", "first_event", "last_event", "last_purchase"]
    conn.execute(sh.insert().from_select(names, select))


def _write_values(conn: Connection, dataset_id: int, dimension: str, users: sa.Select | None) -> None:
    """The per-shopper rows of one dimension (its table in ``schema.shopper_values``) for the dataset's
    (or ``users``') shoppers, from its events."""
    sv = schema.shopper_values[dimension]
    conn.execute(sv.delete().where(sv.c.dataset_id == dataset_id, *_only(sv.c.user_id, users)))
    within = dimension == "category_brand"
    value = _e.brand if within else _e[dimension]
    keys = [value, _e.user_id] + ([_e.category] if within else [])
    per_type = [sa.func.sum(sql.flag(_e.event_type == t)) for t in ("view", "cart", "remove_from_cart", "wishlist")]
    select = (
        sa.select(sa.literal(dataset_id, sa.Integer), value, *([_e.category] if within else []), _e.user_id,
                  sa.func.count(), sa.func.sum(sql.flag(sa.not_(sql.is_cancellation()))), *per_type,
                  sa.func.sum(sql.flag(sql.is_purchase())), sa.func.sum(sql.amount()))
        .where(_e.dataset_id == dataset_id, value.is_not(None), *_only(_e.user_id, users))
        .group_by(*keys))
    names = ["dataset_id", "value", *(["category"] if within else []), "user_id", "n_all", "n_counted", "n_views",
             "n_carts", "n_removes", "n_wishlists", "n_purchases", "revenue"]
    conn.execute(sv.insert().from_select(names, select))


def write_totals(conn: Connection, dataset_id: int) -> None:
    """``cs_value_totals`` of the dataset (whole: a row per value), from the per-shopper rows of each dimension of
    :data:`TOTAL_DIMENSIONS`, which must be written first."""
    vt = schema.value_totals
    conn.execute(vt.delete().where(vt.c.dataset_id == dataset_id))
    for dimension in TOTAL_DIMENSIONS:
        sv = schema.shopper_values[dimension].c
        select = (sa.select(sa.literal(dataset_id, sa.Integer), sa.literal(dimension, sa.String), sv.value,
                            sa.func.sum(sv.n_counted), sa.func.sum(sql.flag(sv.n_counted > 0)),
                            sa.func.sum(sv.n_views), sa.func.sum(sql.flag(sv.n_views > 0)), sa.func.sum(sv.n_purchases),
                            sa.func.sum(sql.flag(sv.n_purchases > 0)), sa.func.sum(sv.revenue))
                  .where(sv.dataset_id == dataset_id).group_by(sv.value))
        conn.execute(vt.insert().from_select(["dataset_id", "dimension", "value", "n_counted", "shoppers", "n_views",
                                              "viewers", "n_purchases", "buyers", "revenue"], select))


def _write_type_days(conn: Connection, dataset_id: int) -> None:
    """``cs_type_days`` of the dataset, from all its events (a few rows per day: cheaper whole than in part)."""
    td = schema.type_days
    conn.execute(td.delete().where(td.c.dataset_id == dataset_id))
    day = sa.cast(_e.event_time, sa.Date)
    fields = (_e.price, _e.category, _e.brand, _e.item_id, _e.quantity, _e.session_id)
    select = (sa.select(sa.literal(dataset_id, sa.Integer), day, _e.event_type, sa.func.count(),
                        *[sa.func.count(f) for f in fields])
              .where(_e.dataset_id == dataset_id).group_by(day, _e.event_type))
    names = ["dataset_id", "day", "event_type", "n_events", "with_price", "with_category", "with_brand", "with_item",
             "with_quantity", "with_session"]
    conn.execute(td.insert().from_select(names, select))


def _write_price_counts(conn: Connection, dataset_id: int) -> None:
    """``cs_price_counts`` of the dataset, from all its events."""
    pc = schema.price_counts
    conn.execute(pc.delete().where(pc.c.dataset_id == dataset_id))
    select = (sa.select(sa.literal(dataset_id, sa.Integer), _e.event_type, _e.price, sa.func.count())
              .where(_e.dataset_id == dataset_id).group_by(_e.event_type, _e.price))
    conn.execute(pc.insert().from_select(["dataset_id", "event_type", "price", "n_events"], select))


def answers(start, end, event_types: Sequence[str] | None = None) -> bool:
    """True when the summaries answer a query exactly: no date window, and only canonical event types."""
    if start is not None or end is not None:
        return False
    return event_types is None or all(t in TYPE_COLUMNS for t in event_types)


def counted(table: sa.Table, event_types: Sequence[str] | None) -> sa.ColumnElement:
    """The expression on a per-shopper ``table`` (:func:`value_rows`) counting events of ``event_types`` (None:
    all), cancellations not."""
    if event_types is None:
        return table.c.n_counted
    columns = [table.c[TYPE_COLUMNS[t]] for t in dict.fromkeys(event_types)]
    total = columns[0]
    for column in columns[1:]:
        total = total + column
    return total


def value_rows(dataset_id: int, dimension: str, category: str | None = None) -> tuple[sa.Table, list]:
    """The per-shopper table of ``dimension`` and the WHERE terms selecting the dataset's rows (the brands
    within one ``category`` when given)."""
    if category is not None:
        table = schema.shopper_values["category_brand"]
        return table, [table.c.dataset_id == dataset_id, table.c.category == category]
    table = schema.shopper_values[dimension]
    return table, [table.c.dataset_id == dataset_id]


def everyone_per_value(dataset_id: int, dimension: str) -> sa.Subquery:
    """Per value of ``dimension`` over the whole dataset, everyone's events (not cancellations), revenue (0 without
    any), shoppers and buyers, twice (as the group's and as everyone's, the columns of the Preferences page's
    per-value query), read from ``cs_value_totals`` rather than grouped from a row per shopper."""
    vt = schema.value_totals.c
    revenue = sa.func.coalesce(vt.revenue, 0)
    return (sa.select(vt.value.label("value"), vt.n_counted.label("events"), revenue.label("revenue"),
                      vt.shoppers.label("shoppers"), vt.buyers.label("buyers"), vt.n_counted.label("events_all"),
                      revenue.label("revenue_all"), vt.shoppers.label("shoppers_all"), vt.buyers.label("buyers_all"))
            .where(vt.dataset_id == dataset_id, vt.dimension == dimension).subquery("per_value"))
