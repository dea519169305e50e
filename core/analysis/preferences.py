"""What shoppers like: shares and affinity by category, brand and price band, computed in the database.

Every figure is computed in the database by SQL built with SQLAlchemy Core (run unchanged on DuckDB and
PostgreSQL); only the small per-value result reaches pandas, so the cost is a grouped scan of the
events (two for a top-N list: a cheap ranking by value, then shoppers for the shown values only)
however many events there are. Price-band edges and bands are written once at load (core.store.derived).

Definitions (the Preferences page shows them in its help texts):

- **group**: everyone (the whole dataset), one segment of a segmentation run (``cs_segments``;
  the dataset's latest run unless ``run_id`` says otherwise), or one shopper.
- **events**: the group's events of the chosen types (all types when ``event_types`` is None)
  in the ``[start, end)`` window that carry a value for the dimension (events without a brand
  do not count for brands; events without a positive price have no price band). A
  cancellation (a ``purchase`` with negative quantity) is not counted as an event.
- **revenue**: ``sum(price * coalesce(quantity, 1))`` over the group's ``purchase`` events in
  the window, cancellations included (they subtract), in the currency of the file. Revenue is
  always taken from purchases, whatever ``event_types`` says: the event-type filter chooses
  which events are counted, so "share of views" and "share of revenue" can sit side by side.
- **share of events** of a value: the group's events on that value ÷ the group's events on
  any value of the dimension (so the shares of all values add up to 1). **Share of revenue**
  likewise with revenue (NaN when the group has no revenue).
- **affinity index**: the group's share ÷ everyone's share, with the same window and event
  types; everyone is the whole dataset. 1.0 means "as much as everyone", 2.0 "twice as much",
  0.5 "half as much". NaN where everyone's share is 0.
- **shoppers** behind a figure: distinct shoppers of the group with at least one counted
  event on that value; **buyers**: those with at least one purchase (not a cancellation).
  A figure with fewer than ``config.PREFERENCES_MIN_SHOPPERS`` shoppers is flagged
  ``few_shoppers``: read it with care.
- **price band** of an event: where its unit price sits among the quartiles of its category's
  distinct items over the whole dataset, each item once at its typical (median) price, so a
  popular item cannot fill several bands (:func:`core.store.derived.band_edge_selects`): budget
  ``< p25 <=`` mid ``< p50 <=`` premium ``< p75 <=`` luxury. A price exactly on an edge goes to
  the upper band. A category with too few items uses its parent path's bands (``apparel.shoes``
  -> ``apparel``), else the whole catalogue's; events without a category use the catalogue's.
  No two edges are equal: where a category's distinct prices allow fewer than four bands it
  has fewer, named from budget up. The bands do not move with the page's date or event-type
  filter, so a band means the same prices everywhere.
"""
from __future__ import annotations

import datetime as dt
import json
import numbers
from collections.abc import Iterable, Iterator, Sequence

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import config, store
from core.store import segment_totals, sql, summaries
from core.errors import CartsightError
from core.store.price_bands import PRICE_BANDS
from core.analysis.query_parts import _filters
from core.analysis.affinity_grid import MATRIX_COLUMNS, _ratio, matrix_grid
from core.analysis.band_table import price_band_sql

DIMENSIONS = ("category", "brand", "price_band")
PREFERENCE_COLUMNS = (
    "value", "events", "share_events", "revenue", "share_revenue", "shoppers", "buyers", "affinity",
    "revenue_affinity", "events_all", "share_events_all", "revenue_all", "share_revenue_all", "shoppers_all",
    "buyers_all", "few_shoppers",
)

_e = store.events.c


# --- small shared pieces -----------------------------------------------------------------------


def _check_dimension(dimension: str) -> None:
    if dimension not in DIMENSIONS:
        raise CartsightError(f"Parameter 'dimension' is {dimension!r}; expected one of {list(DIMENSIONS)}.")


def _check_types(event_types: Sequence[str] | None) -> tuple[str, ...] | None:
    if event_types is None:
        return None
    if isinstance(event_types, str):
        event_types = (event_types,)
    types = tuple(event_types)
    if not types or not all(isinstance(t, str) and t for t in types):
        raise CartsightError(
            f"Parameter 'event_types' is {event_types!r}; expected None (all types) or a non-empty list of "
            f"event types such as {list(config.EVENT_TYPES)}."
        )
    return types


def _check_top_n(top_n: int | None) -> None:
    if top_n is None:
        return
    if isinstance(top_n, bool) or not isinstance(top_n, int) or not 1 <= top_n <= config.MAX_TOP_N:
        raise CartsightError(
            f"Parameter 'top_n' is {top_n!r}; expected None or a whole number from 1 to {config.MAX_TOP_N}."
        )


def _dimension_sql(dimension: str, dataset_id: int) -> tuple[sa.FromClause, sa.ColumnElement]:
    if dimension == "price_band":
        return price_band_sql(dataset_id)
    return store.events, _e[dimension]


# --- segmentation runs ------------------------------------------------------------------------------


def latest_run_summary(engine: Engine, dataset_id: int) -> dict | None:
    """The dataset's current segmentation in brief, or None when it was never segmented.

    A dict of its latest ``cs_segment_runs`` row's ``run_id``, ``created_at``, ``n_segments`` and
    ``model_version``: one cheap query by dataset id, for pages and lists that only need to know
    which run is current (:func:`core.analysis.segments.latest_run` reads the whole run, profiles included).
    """
    runs = store.segment_runs.c
    stmt = sql.segment_runs_newest_first(dataset_id, runs.run_id, runs.created_at, runs.n_segments, runs.model_version)
    rows = sql.fetch(engine, stmt.limit(1))
    return dict(rows[0]._mapping) if rows else None


def segment_list(engine: Engine, dataset_id: int, run_id: int | None = None) -> pd.DataFrame:
    """Segments of a run (the latest when ``run_id`` is None): ``segment``, ``segment_name``, ``shoppers``.

    Sorted by segment number; an empty frame when the dataset has no segmentation.
    """
    if run_id is None:
        run = latest_run_summary(engine, dataset_id)
        if run is None:
            return pd.DataFrame({"segment": pd.Series(dtype="int64"), "segment_name": pd.Series(dtype=object),
                                 "shoppers": pd.Series(dtype="int64")})
        run_id = run["run_id"]
    seg = store.segments.c
    stmt = (
        sa.select(seg.segment, seg.segment_name, sa.func.count().label("shoppers"))
        .where(seg.dataset_id == dataset_id, seg.run_id == run_id)
        .group_by(seg.segment, seg.segment_name)
        .order_by(seg.segment)
    )
    frame = pd.DataFrame([tuple(r) for r in sql.fetch(engine, stmt)], columns=["segment", "segment_name", "shoppers"])
    return frame.astype({"segment": "int64", "segment_name": object, "shoppers": "int64"})


def _run_segments(engine: Engine, dataset_id: int, run_id: int) -> pd.DataFrame:
    """``segment`` and ``segment_name`` of run ``run_id``, from its profiles (one row; a run stores a profile per
    segment it assigned) rather than by grouping every assignment, which costs a Spark store 0.3 s at 5 M
    events; :func:`segment_list`'s for a run stored without profiles."""
    runs = store.segment_runs.c
    rows = sql.fetch(engine, sa.select(runs.profiles_json).where(runs.dataset_id == dataset_id, runs.run_id == run_id))
    profiles = json.loads(rows[0][0] or "[]") if rows else []
    if not profiles:
        return segment_list(engine, dataset_id, run_id)[["segment", "segment_name"]]
    rows = sorted((int(p["segment"]), p["name"]) for p in profiles)
    return pd.DataFrame(rows, columns=["segment", "segment_name"]).astype({"segment": "int64", "segment_name": object})


def _resolve_run(engine: Engine, dataset_id: int, run_id: int | None) -> int:
    if run_id is not None:
        return run_id
    run = latest_run_summary(engine, dataset_id)
    if run is None:
        raise CartsightError(
            f"Dataset {dataset_id} has no segmentation yet (no row in cs_segment_runs): run Segments first, "
            "or ask for everyone (segment=None)."
        )
    return int(run["run_id"])


# --- the preference query ------------------------------------------------------------------------------


def _scoped(dimension: str, dataset_id: int, start, end, event_types: tuple[str, ...] | None,
            category: str | None, values: list | None = None, in_group=None) -> sa.Subquery:
    """The counted rows: per event its value, shopper, counted/bought flags and amount (and group flag)."""
    from_clause, value = _dimension_sql(dimension, dataset_id)
    where = [*_filters(dataset_id, start, end), value.is_not(None)]
    if category is not None:
        where.append(_e.category == category)
    if values is not None:
        where.append(value.in_(values))
    counted = sa.not_(sql.is_cancellation())
    if event_types is not None:
        where.append(sa.or_(_e.event_type.in_(event_types), _e.event_type == "purchase"))
        counted = sa.and_(_e.event_type.in_(event_types), counted)
    return (
        sa.select(
            value.label("value"),
            _e.user_id,
            sql.flag(counted).label("counted"),
            sql.flag(sql.is_purchase()).label("bought"),
            sql.amount().label("amount"),
            *([] if in_group is None else [sql.flag(in_group).label("in_group")]),
        )
        .select_from(from_clause)
        .where(*where)
        .subquery("scoped")
    )


def _per_user(dimension: str, dataset_id: int, start, end, event_types: tuple[str, ...] | None,
              category: str | None, values: list | None = None) -> sa.Subquery:
    """Per (value, shopper): counted events, purchases and revenue in the window (one grouped scan).

    Over the whole dataset (no window) and canonical event types, read from the dimension's per-shopper table
    (core.store.summaries), which holds those sums per shopper already.
    """
    if summaries.answers(start, end, event_types):
        table, where = summaries.value_rows(dataset_id, dimension, category)
        sv = table.c
        return (sa.select(sv.value, sv.user_id, summaries.counted(table, event_types).label("events"),
                          sv.n_purchases.label("purchases"), sv.revenue)
                .where(*where, *([] if values is None else [sv.value.in_(values)])).subquery("per_user"))
    rows = _scoped(dimension, dataset_id, start, end, event_types, category, values)
    return (
        sa.select(
            rows.c.value,
            rows.c.user_id,
            sa.func.sum(rows.c.counted).label("events"),
            sa.func.sum(rows.c.bought).label("purchases"),
            sa.func.sum(rows.c.amount).label("revenue"),
        )
        .group_by(rows.c.value, rows.c.user_id)
        .subquery("per_user")
    )


def _is_number(segment) -> bool:
    return isinstance(segment, numbers.Integral) and not isinstance(segment, bool)


def _check_segment(engine: Engine, dataset_id: int, run: int, segment) -> None:
    """Raise :class:`CartsightError` unless ``segment`` is a segment of run ``run`` (one member is enough to know
    it: counting every member took 0.3 s of a 1.1 s page query on Spark at 5 M events); the list for the message."""
    seg = store.segments.c
    if not _is_number(segment) or not sql.fetch(engine, sa.select(seg.segment).where(
            seg.dataset_id == dataset_id, seg.run_id == run, seg.segment == int(segment)).limit(1)):
        raise CartsightError(
            f"Parameter 'segment' is {segment!r}; segmentation run {run} of dataset {dataset_id} has segments "
            f"{segment_list(engine, dataset_id, run)['segment'].tolist()}."
        )


def _check_user(engine: Engine, dataset_id: int, user_id) -> None:
    found = sql.fetch(engine, sa.select(_e.user_id).where(_e.dataset_id == dataset_id, _e.user_id == str(user_id))
                      .limit(1))
    if not found:
        raise CartsightError(f"Parameter 'user_id' is {user_id!r}: no such shopper in dataset {dataset_id}.")


def _check_if_nobody(engine: Engine, dataset_id: int, frame: pd.DataFrame, segment, run_id, user_id) -> None:
    """When the group's figures show nobody: whether the segment or the shopper is one at all (looked up only then)."""
    if (frame["shoppers"].fillna(0) > 0).any():
        return
    if segment is not None:
        _check_segment(engine, dataset_id, _resolve_run(engine, dataset_id, run_id), segment)
    elif user_id is not None:
        _check_user(engine, dataset_id, user_id)


def _group_membership(engine: Engine, dataset_id: int, per_user: sa.Subquery, segment: int | None,
                      run_id: int | None, user_id: str | None, check: bool = True,
                      ) -> tuple[sa.FromClause, sa.ColumnElement, sa.ColumnElement]:
    """The FROM over ``per_user``, the condition "this row's shopper is in the group", and the same on events.
    ``check=False``: a numbered segment or a shopper is not looked up first (the caller checks it when the group
    shows nothing: a segment that is not in the run and a shopper not in the dataset have no row, and each
    statement costs a Spark store tenths of a second; the shopper's lookup reads the events)."""
    if segment is not None and user_id is not None:
        raise CartsightError(
            f"Parameters 'segment' ({segment!r}) and 'user_id' ({user_id!r}) were both given; expected at most one "
            "of them (a segment or one shopper)."
        )
    if user_id is not None:
        if check:
            _check_user(engine, dataset_id, user_id)
        return per_user, per_user.c.user_id == str(user_id), _e.user_id == str(user_id)
    if segment is None:
        return per_user, sa.true(), sa.true()
    run = _resolve_run(engine, dataset_id, run_id)
    seg = store.segments.c
    if check or not _is_number(segment):
        _check_segment(engine, dataset_id, run, segment)
    members = (  # a shopper has one row per run: no DISTINCT (on Spark one more shuffle of every member)
        sa.select(seg.user_id)
        .where(seg.dataset_id == dataset_id, seg.run_id == run, seg.segment == int(segment))
        .subquery("members")
    )
    in_segment = _e.user_id.in_(
        sa.select(seg.user_id).where(seg.dataset_id == dataset_id, seg.run_id == run, seg.segment == int(segment)))
    return (per_user.outerjoin(members, members.c.user_id == per_user.c.user_id), members.c.user_id.is_not(None),
            in_segment)


def preferences(
    engine: Engine,
    dataset_id: int,
    dimension: str = "category",
    *,
    segment: int | None = None,
    run_id: int | None = None,
    user_id: str | None = None,
    start: dt.datetime | dt.date | None = None,
    end: dt.datetime | dt.date | None = None,
    event_types: Sequence[str] | None = None,
    top_n: int | None = None,
    category: str | None = None,
    min_shoppers: int = config.PREFERENCES_MIN_SHOPPERS,
) -> pd.DataFrame:
    """Shares of events and revenue by ``dimension`` for a group, beside everyone's, with affinity.

    Inputs: the dataset id; ``dimension`` one of ``"category"``, ``"brand"``, ``"price_band"``;
    the group: ``segment`` (of segmentation ``run_id``, the latest run when None) or
    ``user_id`` (one shopper) or neither (everyone); the filters ``start`` (inclusive),
    ``end`` (exclusive), naive-UTC datetimes or dates, and ``event_types`` (None: all); ``top_n``
    keeps the group's ``top_n`` values by events (then revenue, then name; ignored for price
    bands); ``category`` restricts to events of that category (see :func:`drilldown`).
    Definitions of share, revenue, affinity and shoppers: the module docstring.

    Returns a DataFrame with :data:`PREFERENCE_COLUMNS`: ``value`` (the category, brand or
    band), the group's ``events``, ``share_events``, ``revenue``, ``share_revenue``,
    ``shoppers``, ``buyers``, the ``affinity`` (events) and ``revenue_affinity`` indexes, the
    same figures for everyone (``*_all``), and ``few_shoppers`` (fewer than ``min_shoppers``
    shoppers behind the group's figure). Shares are fractions (0.25 = 25 %); revenue is in
    the currency of the file. Categories and brands: only values the group has events or
    revenue on, most events first. Price bands: always the four bands, cheapest first.

    Raises :class:`CartsightError` for an unknown dimension, both ``segment`` and ``user_id``,
    a segment that is not in the run, no segmentation at all, an unknown shopper, a bad
    ``top_n`` or ``event_types``, or an empty window.
    """
    _check_dimension(dimension)
    _check_top_n(top_n)
    types = _check_types(event_types)
    whole = summaries.answers(start, end, types)  # the summaries answer it: one pass, top_n as a LIMIT
    if top_n is not None and dimension != "price_band" and not whole:
        return _shown(engine, dataset_id, dimension, _top_preferences(
            engine, dataset_id, dimension, segment, run_id, user_id, start, end, types, top_n, category, min_shoppers))
    candidates = _group_per_value(engine, dataset_id, dimension, segment, run_id, user_id, start, end, types, category)
    frame = _first_with_rows(engine, (_ranked(per_value, dimension, top_n) for per_value in candidates))
    _check_if_nobody(engine, dataset_id, frame, segment, run_id, user_id)
    return _shown(engine, dataset_id, dimension, _finish(frame, dimension, min_shoppers))


def _first_with_rows(engine: Engine, statements: Iterable[sa.Select]) -> pd.DataFrame:
    """The rows of the first of ``statements`` that has any (the last one's, empty, when none has): the
    per-segment totals first, grouping the per-shopper rows only when the run has no totals. The statements are
    made one at a time, so the fallback costs nothing (not even its lookups) when the totals answer."""
    frame = pd.DataFrame()
    for stmt in statements:
        frame = pd.DataFrame([tuple(r) for r in sql.fetch(engine, stmt)], columns=list(stmt.selected_columns.keys()))
        if not frame.empty:
            break
    return frame


def _ranked(per_value: sa.Subquery, dimension: str, top_n: int | None) -> sa.Select:
    """:func:`preferences`' statement over a per-value subquery: everyone's and the group's totals beside each value
    (window sums over the same rows: one reference to ``per_value``, so the scan runs once); categories and
    brands with events or revenue only, most events first, ``top_n`` of them."""
    with_totals = sa.select(*per_value.c, *_totals(per_value.c)).subquery("with_totals")
    t = with_totals.c
    stmt = sa.select(*with_totals.c)
    if dimension != "price_band":
        stmt = stmt.where(sa.or_(t.events > 0, t.revenue != 0)).order_by(t.events.desc(), t.revenue.desc(), t.value)
        stmt = stmt.limit(top_n) if top_n is not None else stmt
    return stmt


def _shown(engine: Engine, dataset_id: int, dimension: str, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its brands (``value``) spelled as the dataset's files spell them (grouped lower-cased)."""
    if dimension == "brand" and not frame.empty:
        frame["value"] = store.show_brands(engine, dataset_id, frame["value"])
    return frame


def _per_value(rows: sa.FromClause, from_clause: sa.FromClause, in_group, with_counts: bool,
               with_shoppers: bool) -> sa.Select:
    """Per value: the group's and everyone's events and revenue and/or shoppers and buyers.

    ``rows`` is either the per-(value, shopper) subquery (events/purchases/revenue per shopper)
    or the scoped events (counted/bought/amount per event): both have ``value``, and the sums
    below read the same either way.
    """
    r = rows.c
    per_shopper = "events" in r
    events, revenue = (r.events, r.revenue) if per_shopper else (r.counted, r.amount)

    def group_sum(expr):
        return sa.func.sum(sa.case((in_group, expr), else_=0))

    cols = [r.value]
    if with_counts:
        cols += [group_sum(events).label("events"), group_sum(sa.func.coalesce(revenue, 0)).label("revenue")]
    if with_shoppers:
        cols += [group_sum(sql.flag(r.events > 0)).label("shoppers"), group_sum(sql.flag(r.purchases > 0)).label("buyers")]
    if with_counts:
        cols += [sa.func.sum(events).label("events_all"), sa.func.sum(sa.func.coalesce(revenue, 0)).label("revenue_all")]
    if with_shoppers:
        cols += [sa.func.sum(sql.flag(r.events > 0)).label("shoppers_all"),
                 sa.func.sum(sql.flag(r.purchases > 0)).label("buyers_all")]
    return sa.select(*cols).select_from(from_clause).group_by(r.value)


def _group_per_value(engine: Engine, dataset_id: int, dimension: str, segment, run_id, user_id, start, end, types,
                     category) -> Iterator[sa.Subquery]:
    """:func:`_per_value` of :func:`preferences`' group, in the ways that may answer it, the next read only when
    the one before shows nothing. Over the whole dataset and every event type: everyone's from the per-value
    totals; a segment's, or everyone's brands in a category, from the newest run's per-segment totals (nothing
    for an older run, or a dataset never segmented); else the per-shopper rows (or the events) grouped."""
    if all(x is None for x in (start, end, types, user_id)):
        if segment is None and category is None:
            yield summaries.everyone_per_value(dataset_id, dimension)
            return
        if segment is None or _is_number(segment):
            yield segment_totals.group_per_value(dataset_id, run_id, segment, dimension, category)
    per_user = _per_user(dimension, dataset_id, start, end, types, category)
    from_clause, in_group, _ = _group_membership(engine, dataset_id, per_user, segment, run_id, user_id, check=False)
    yield _per_value(per_user, from_clause, in_group, with_counts=True, with_shoppers=True).subquery("per_value")


def _totals(v) -> list:
    """Sums over every value (window sums), the denominators of the shares."""
    return [
        sa.func.sum(v.events).over().label("total_events"),
        sa.func.sum(v.revenue).over().label("total_revenue"),
        sa.func.sum(v.events_all).over().label("total_events_all"),
        sa.func.sum(v.revenue_all).over().label("total_revenue_all"),
    ]


def _top_preferences(engine: Engine, dataset_id: int, dimension: str, segment, run_id, user_id, start, end,
                     types, top_n: int, category, min_shoppers: int) -> pd.DataFrame:
    """:func:`preferences` for the group's ``top_n`` values, in two passes.

    Pass one ranks every value on a one-level group-by of the events (events and revenue for
    the group and everyone, the totals as window sums over all values) and keeps the top
    ``top_n``; pass two counts shoppers and buyers per (value, shopper) for those values only.
    Grouping by value and shopper is the costly part (one hash entry per pair), so the second
    pass grows with the events of the shown values, not of the whole catalogue.
    """
    probe = _per_user(dimension, dataset_id, start, end, types, category)  # validates the group once
    _, _, in_group = _group_membership(engine, dataset_id, probe, segment, run_id, user_id)
    scoped = _scoped(dimension, dataset_id, start, end, types, category, in_group=in_group)
    per_value = _per_value(scoped, scoped, scoped.c.in_group == 1, with_counts=True, with_shoppers=False)
    per_value = per_value.subquery("per_value")
    v = per_value.c
    with_totals = sa.select(*per_value.c, *_totals(v)).subquery("with_totals")
    t = with_totals.c
    ranked = (sa.select(*with_totals.c).where(sa.or_(t.events > 0, t.revenue != 0))
              .order_by(t.events.desc(), t.revenue.desc(), t.value).limit(top_n))
    counts = pd.DataFrame([tuple(r) for r in sql.fetch(engine, ranked)], columns=list(with_totals.c.keys()))
    shopper_cols = ["shoppers", "buyers", "shoppers_all", "buyers_all"]
    if counts.empty:
        shoppers = pd.DataFrame(columns=["value", *shopper_cols])
    else:
        values = counts["value"].tolist()
        per_user = _per_user(dimension, dataset_id, start, end, types, category, values=values)
        from_clause, member, _ = _group_membership(engine, dataset_id, per_user, segment, run_id, user_id,
                                                   check=False)  # checked above
        stmt = _per_value(per_user, from_clause, member, with_counts=False, with_shoppers=True)
        shoppers = pd.DataFrame([tuple(r) for r in sql.fetch(engine, stmt)], columns=["value", *shopper_cols])
    raw = counts.merge(shoppers, on="value", how="left")
    order = ["value", "events", "revenue", "shoppers", "buyers", "events_all", "revenue_all", "shoppers_all",
             "buyers_all", "total_events", "total_revenue", "total_events_all", "total_revenue_all"]
    return _finish(raw[order], dimension, min_shoppers)


def _finish(raw: pd.DataFrame, dimension: str, min_shoppers: int) -> pd.DataFrame:
    """Shares, affinity and the small-group flag from the per-value sums and the totals."""
    counts = ("events", "shoppers", "buyers", "events_all", "shoppers_all", "buyers_all")
    money = ("revenue", "revenue_all", "total_events", "total_revenue", "total_events_all", "total_revenue_all")
    raw = raw.astype({**{c: "float64" for c in (*counts, *money)}, "value": object})
    if dimension == "price_band":
        raw = raw.set_index("value").reindex(list(PRICE_BANDS)).rename_axis("value").reset_index()
        totals = raw[["total_events", "total_revenue", "total_events_all", "total_revenue_all"]].max()
        raw = raw.fillna({c: 0.0 for c in (*counts, "revenue", "revenue_all")})
        for name, value in totals.items():
            raw[name] = value
    out = pd.DataFrame({"value": raw["value"].astype(object)})
    for c in counts:
        out[c] = raw[c].fillna(0).astype("int64")
    out["revenue"] = raw["revenue"].astype(float)
    out["revenue_all"] = raw["revenue_all"].astype(float)
    out["share_events"] = _ratio(raw["events"], raw["total_events"])
    out["share_revenue"] = _ratio(raw["revenue"], raw["total_revenue"])
    out["share_events_all"] = _ratio(raw["events_all"], raw["total_events_all"])
    out["share_revenue_all"] = _ratio(raw["revenue_all"], raw["total_revenue_all"])
    out["affinity"] = _ratio(out["share_events"], out["share_events_all"])
    out["revenue_affinity"] = _ratio(out["share_revenue"], out["share_revenue_all"])
    out["few_shoppers"] = out["shoppers"] < min_shoppers
    return out[list(PREFERENCE_COLUMNS)].reset_index(drop=True)


def drilldown(
    engine: Engine,
    dataset_id: int,
    category: str,
    *,
    segment: int | None = None,
    run_id: int | None = None,
    user_id: str | None = None,
    start: dt.datetime | dt.date | None = None,
    end: dt.datetime | dt.date | None = None,
    event_types: Sequence[str] | None = None,
    top_n: int | None = None,
    min_shoppers: int = config.PREFERENCES_MIN_SHOPPERS,
) -> pd.DataFrame:
    """Brands within one category for a group: shares, revenue, shoppers and affinity.

    As :func:`preferences` with ``dimension="brand"``, counting only events of ``category``:
    a brand's share is its share of the group's events in that category (events without a
    brand left out), and the affinity compares it with everyone's share in that category.
    Returns the columns of :data:`PREFERENCE_COLUMNS`; empty when nobody in the group has an
    event with a brand in that category. Raises :class:`CartsightError` for an empty or
    non-text ``category`` and for the errors of :func:`preferences`.
    """
    if not isinstance(category, str) or not category:
        raise CartsightError(f"Parameter 'category' is {category!r}; expected the name of a category.")
    return preferences(
        engine, dataset_id, "brand", segment=segment, run_id=run_id, user_id=user_id, start=start, end=end,
        event_types=event_types, top_n=top_n, category=category, min_shoppers=min_shoppers,
    )


def affinity_matrix(
    engine: Engine,
    dataset_id: int,
    run_id: int | None = None,
    dimension: str = "category",
    top_n: int = config.PREFERENCES_TOP_N,
    *,
    start: dt.datetime | dt.date | None = None,
    end: dt.datetime | dt.date | None = None,
    event_types: Sequence[str] | None = None,
    min_shoppers: int = config.PREFERENCES_MIN_SHOPPERS,
) -> pd.DataFrame:
    """Value × segment affinity for a heat map: every segment of a run against everyone's top values.

    Inputs: the dataset, the segmentation ``run_id`` (the latest when None), ``dimension``
    (``"category"``, ``"brand"`` or ``"price_band"``), ``top_n`` (everyone's most frequent
    values kept; every band for price bands), and the filters of :func:`preferences`.
    One grouped SQL statement (events per value and shopper, joined to the run's
    assignments, summed per segment and value).

    Returns a long DataFrame (:data:`MATRIX_COLUMNS`), one row per segment and value (zeros
    where a segment has no event on a value), segments in order, values most frequent
    first (bands cheapest first): ``events``, ``share_events`` (of the segment's events on any
    value), ``shoppers`` (the segment's shoppers behind the cell), ``revenue``, ``affinity``
    (share ÷ everyone's share), everyone's ``events_all``, ``share_events_all``,
    ``shoppers_all``, and ``few_shoppers``. Shoppers without an assignment in the run count
    for everyone only. Raises :class:`CartsightError` when the dataset has no segmentation,
    or for a bad dimension, ``top_n``, ``event_types`` or window.
    """
    _check_dimension(dimension)
    _check_top_n(top_n)
    types = _check_types(event_types)
    run = _resolve_run(engine, dataset_id, run_id)
    segments = _run_segments(engine, dataset_id, run)
    whole = all(x is None for x in (start, end, types))  # the newest run's per-segment totals (none for an older run)
    raw = _first_with_rows(engine, [*([segment_totals.cells(dataset_id, run, dimension)] if whole else []),
                                    _cells(dataset_id, run, dimension, start, end, types)])
    raw = raw.astype({"events": "float64", "revenue": "float64", "shoppers": "float64", "value": object})
    return _shown(engine, dataset_id, dimension, matrix_grid(raw, segments, dimension, top_n, min_shoppers))


def _cells(dataset_id: int, run: int, dimension: str, start, end, types) -> sa.Select:
    """Per segment (NULL: shoppers of no segment) and value: events, revenue and shoppers, grouped from the
    per-shopper rows (or the events) joined to run ``run``'s assignments."""
    per_user = _per_user(dimension, dataset_id, start, end, types, None)
    pu = per_user.c
    seg = store.segments.c
    members = sa.select(seg.user_id, seg.segment).where(seg.dataset_id == dataset_id, seg.run_id == run).subquery()
    return (
        sa.select(members.c.segment, pu.value, sa.func.sum(pu.events).label("events"),
                  sa.func.sum(sa.func.coalesce(pu.revenue, 0)).label("revenue"),
                  sa.func.sum(sql.flag(pu.events > 0)).label("shoppers"))
        .select_from(per_user.outerjoin(members, members.c.user_id == pu.user_id))
        .group_by(members.c.segment, pu.value)
    )
