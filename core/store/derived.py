"""What a dataset's pages read instead of its events: figures derived once, when the dataset is loaded.

A dataset changes only when a file is loaded into it (its first, or one appended), so what every page
would otherwise recompute from all its events on every click is written then, inside the load's transaction
(an append derives them again over the whole dataset):

- ``cs_events.price_band``: each event's price band (``core.store.price_bands.PRICE_BANDS``) within
  its category over the whole dataset, NULL without a positive price (the definition is in
  :mod:`core.analysis.preferences`); the Preferences, Segments and Campaigns pages group by it like any
  column instead of joining every event to edges computed on the fly.
- ``cs_price_edges``: those bands' edges per category, plus one row (``category`` NULL) over every
  priced event, used for events without a category.
- ``cs_session_days``: one row per shopper, session and UTC day with the session's counts
  (events, views, carts, purchases, cancellations, priced purchases), revenue and first/last
  event and purchase time; the Overview's headline numbers and funnel (for the whole dataset
  or any whole-day window) and the RFM lens read it (about a quarter as many rows as events).

The cost is paid once, by the load: a few seconds on DuckDB, where the bands are written as the
events are inserted; on PostgreSQL the band is an UPDATE of every priced event, which makes the
load itself more than twice as slow. bench/scale.py measures both sides (docs/benchmarks.md).

Everything is SQLAlchemy Core, run unchanged on DuckDB and PostgreSQL, in the caller's
connection (so a failed or cancelled load leaves none of it).
"""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.store import schema, sql
from core.store.price_bands import PRICE_BAND_QUANTILES, PRICE_BANDS

#: Names of the band-edge columns, as :func:`core.model.sequences.price_bands` returns them.
EDGE_COLUMNS = tuple(f"p{round(q * 100)}" for q in PRICE_BAND_QUANTILES)

_e = schema.events.c
_sd = schema.session_days.c


def band_edge_selects(dataset_id: int, source: sa.FromClause | None = None,
                      direct: bool = False) -> tuple[sa.Select, sa.Select]:
    """The price-band edges of ``dataset_id`` computed from its events: ``(per_category, overall)`` selects.

    ``source``: rows with ``category`` and ``price`` columns to compute them from instead (a
    load's validated rows, before they are events).

    ``per_category`` has one row per category with a positive price (``band_category``, ``n``,
    ``p25``, ``p50``, ``p75``); ``overall`` one row with ``n`` and the edges over every positive
    price. The edges are exactly those of :func:`core.model.sequences.price_bands` (quartiles of the
    positive prices of the category's events, each event counting once).

    ``direct`` (DuckDB): one ``quantile_cont`` of the three quartiles per category, which selects
    them from each category's prices without a sort. Otherwise (PostgreSQL, whose
    ``percentile_cont`` sorts every event): :func:`core.store.sql.weighted_quantiles` from
    per-(category, price) counts, one grouped scan of the events and a sort of the distinct
    prices only. On DuckDB that sort is the slow part when prices barely repeat: 14.8 s against
    0.6 s for 20 M events whose (category, price) pairs are all distinct (measured); when prices
    repeat, both take a fraction of a second.
    """
    c = _e if source is None else source.c
    priced = [c.price > 0] + ([_e.dataset_id == dataset_id] if source is None else [])
    if direct:
        wanted = sa.literal_column(f"[{', '.join(repr(float(q)) for q in PRICE_BAND_QUANTILES)}]")

        def quartiles(keys: list, where: list, name: str) -> sa.Select:
            inner = (sa.select(*keys, sa.func.count().label("n"), sa.func.quantile_cont(c.price, wanted).label("qs"))
                     .where(*where).group_by(*keys).subquery(name))
            edges = [sa.func.list_extract(inner.c.qs, i + 1).label(col) for i, col in enumerate(EDGE_COLUMNS)]
            return sa.select(*[inner.c[k.name] for k in keys], inner.c.n, *edges)

        return (quartiles([c.category.label("band_category")], [*priced, c.category.is_not(None)], "band_q"),
                quartiles([], priced, "band_q_all"))
    cat_counts = (sa.select(c.category.label("band_category"), c.price.label("price"), sa.func.count().label("n"))
                  .where(*priced, c.category.is_not(None)).group_by(c.category, c.price).subquery("band_counts"))
    all_counts = (sa.select(c.price.label("price"), sa.func.count().label("n"))
                  .where(*priced).group_by(c.price).subquery("band_counts_all"))
    per_category = sql.weighted_quantiles(cat_counts, "price", "n", ["band_category"], PRICE_BAND_QUANTILES, EDGE_COLUMNS)
    overall = sql.weighted_quantiles(all_counts, "price", "n", [], PRICE_BAND_QUANTILES, EDGE_COLUMNS)
    return per_category, overall


def band_case(price: sa.ColumnElement, edges: list[sa.ColumnElement]) -> sa.ColumnElement:
    """The band name of ``price`` given the three edges (NULL without a positive price; an edge goes up)."""
    whens = [(sa.or_(price.is_(None), price <= 0), sa.null())]
    whens += [(price < edge, sa.literal(band, literal_execute=True)) for edge, band in zip(edges, PRICE_BANDS)]
    return sa.case(*whens, else_=sa.literal(PRICE_BANDS[-1], literal_execute=True))


def derive_dataset(conn: Connection, dataset_id: int, banded: bool = False, users: sa.Select | None = None) -> None:
    """Write (or rewrite) the derived figures of ``dataset_id`` from its events, in ``conn``'s transaction.

    Called by every load after its events are in (``core.ingest.load``), by the schema upgrade for
    datasets loaded before these tables existed, and by code that inserts events itself (tests,
    benchmarks). Idempotent: the dataset's previous derived rows are replaced. ``banded``: the
    load already wrote the price edges (:func:`write_price_edges`) and its events' bands
    (:func:`banded_events_sql`), so only the session days are left. ``users``: a SELECT of the shoppers whose
    session days are rewritten, the others' kept (a file appended holds only some shoppers' new events).
    """
    sd = schema.session_days
    only = [sd.c.user_id.in_(users)] if users is not None else []
    conn.execute(sd.delete().where(sd.c.dataset_id == dataset_id, *only))
    if not banded:
        write_price_edges(conn, dataset_id)
        _write_bands(conn, dataset_id)
    _write_session_days(conn, dataset_id, users)


def write_price_edges(conn: Connection, dataset_id: int, source: sa.FromClause | None = None) -> None:
    """(Re)write ``cs_price_edges`` of ``dataset_id`` from its events, or from ``source`` (see :func:`band_edge_selects`)."""
    pe = schema.price_edges
    conn.execute(pe.delete().where(pe.c.dataset_id == dataset_id))
    per_category, overall = band_edge_selects(dataset_id, source, direct=schema.is_duckdb(conn))
    cols = ["dataset_id", "category", "n_priced", *EDGE_COLUMNS]
    pc, ov = per_category.subquery("pc"), overall.subquery("ov")
    conn.execute(pe.insert().from_select(cols, sa.select(
        sa.literal(dataset_id, sa.Integer), pc.c.band_category, pc.c.n, *[pc.c[c] for c in EDGE_COLUMNS])))
    conn.execute(pe.insert().from_select(cols, sa.select(
        sa.literal(dataset_id, sa.Integer), sa.null(), ov.c.n, *[ov.c[c] for c in EDGE_COLUMNS]).where(ov.c.n > 0)))


def banded_events_sql(conn: Connection, dataset_id: int, events_sql: str) -> str:
    """``events_sql`` (a SELECT of event rows) with each row's price band appended, read from ``cs_price_edges``.

    The same band as :func:`_write_bands` gives (its category's edges, the overall ones without a
    category), computed as the rows are inserted. On DuckDB, updating the band of every event
    after the insert cost more at the commit than the update itself (6.4 s of a 42 s load of
    20.4 M events, and growing faster than the events; measured), so a DuckDB load inserts
    banded rows. Dialect SQL text: the caller binds nothing in it.
    """
    rows = "cs_rows_being_loaded"  # a stand-in name, replaced by the rows' SELECT once compiled
    ev, pe = sa.table(rows, sa.column("price"), sa.column("category")).alias("ev"), schema.price_edges
    pc, ov = pe.alias("pc"), pe.alias("ov")
    edges = [sa.func.coalesce(pc.c[c], ov.c[c]) for c in EDGE_COLUMNS]
    band = band_case(ev.c.price, edges).label("price_band")
    query = (sa.select(sa.literal_column("ev.*"), band).select_from(
        ev.outerjoin(pc, sa.and_(pc.c.dataset_id == dataset_id, pc.c.category == ev.c.category))
        .outerjoin(ov, sa.and_(ov.c.dataset_id == dataset_id, ov.c.category.is_(None)))))
    text = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    return text.replace(rows, f"({events_sql})", 1)


def _write_bands(conn: Connection, dataset_id: int) -> None:
    """``cs_events.price_band`` of the dataset's priced events: by their category's edges, else the overall ones."""
    ev = schema.events
    conn.execute(ev.update().where(_e.dataset_id == dataset_id, _e.price_band.is_not(None)).values(price_band=None))
    edges = schema.price_edges.alias("edges")
    conn.execute(  # UPDATE ... FROM: one hash join of the events with the few edge rows
        ev.update()
        .where(_e.dataset_id == dataset_id, _e.price > 0, edges.c.dataset_id == dataset_id,
               edges.c.category == _e.category)
        .values(price_band=band_case(_e.price, [edges.c[c] for c in EDGE_COLUMNS]))
    )
    pe = schema.price_edges.c
    overall = [sa.select(pe[c]).where(pe.dataset_id == dataset_id, pe.category.is_(None)).scalar_subquery()
               for c in EDGE_COLUMNS]  # one row: evaluated once
    conn.execute(
        ev.update()
        .where(_e.dataset_id == dataset_id, _e.price > 0, _e.category.is_(None))
        .values(price_band=band_case(_e.price, overall))
    )


def _write_session_days(conn: Connection, dataset_id: int, users: sa.Select | None = None) -> None:
    day = sa.cast(_e.event_time, sa.Date)
    select = (
        sa.select(
            _e.dataset_id, _e.user_id, _e.session_id, day.label("day"),
            sa.func.count().label("n_events"),
            sa.func.sum(sql.flag(_e.event_type == "view")).label("n_views"),
            sa.func.sum(sql.flag(_e.event_type == "cart")).label("n_carts"),
            sa.func.sum(sql.flag(sql.is_purchase())).label("n_purchases"),
            sa.func.sum(sql.flag(sql.is_cancellation())).label("n_cancels"),
            sa.func.sum(sql.amount()).label("revenue"),
            sa.func.count(sql.amount()).label("n_amounts"),
            sa.func.min(_e.event_time).label("first_event"),
            sa.func.max(_e.event_time).label("last_event"),
            sa.func.max(sa.case((sql.is_purchase(), _e.event_time), else_=sa.null())).label("last_purchase"),
        )
        .where(_e.dataset_id == dataset_id, *([_e.user_id.in_(users)] if users is not None else []))
        .group_by(_e.dataset_id, _e.user_id, _e.session_id, day)
    )
    names = ["dataset_id", "user_id", "session_id", "day", "n_events", "n_views", "n_carts", "n_purchases",
             "n_cancels", "revenue", "n_amounts", "first_event", "last_event", "last_purchase"]
    conn.execute(schema.session_days.insert().from_select(names, select))


def whole_days(start: dt.datetime | None, end: dt.datetime | None) -> bool:
    """True when the window ``[start, end)`` is made of whole UTC days (open ends count), so that
    ``cs_session_days`` answers it exactly; the pages' date filters always give such windows."""
    return all(t is None or t.time() == dt.time() for t in (start, end))


def session_day_filters(dataset_id: int, start: dt.datetime | None, end: dt.datetime | None) -> list:
    """WHERE terms on ``cs_session_days`` for a whole-day window (see :func:`whole_days`)."""
    terms = [_sd.dataset_id == dataset_id]
    if start is not None:
        terms.append(_sd.day >= start.date())
    if end is not None:
        terms.append(_sd.day < end.date())
    return terms
