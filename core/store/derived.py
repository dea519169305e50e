"""What a dataset's pages read instead of its events: figures derived once, when the dataset is loaded.

A dataset changes only when a file is loaded into it (its first, or one appended), so what every page
would otherwise recompute from all its events on every click is written then, inside the load's transaction
(an append derives them again over the whole dataset):

- ``cs_events.price_band``: each event's price band (``core.store.price_bands.PRICE_BANDS``) within
  its category over the whole dataset, NULL without a positive price (defined by
  :func:`band_edge_selects`); the Preferences, Segments and Campaigns pages group by it like any
  column instead of joining every event to edges computed on the fly.
- ``cs_price_edges``: those bands' edges per category (over its distinct items, or a parent
  path's or the whole catalogue's when it has too few items; :func:`band_edge_selects`), plus
  one row (``category`` NULL) over every priced item, used for events without a category.
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

from core import config
from core.store import schema, sql, summaries
from core.store.price_bands import PRICE_BAND_QUANTILES, PRICE_BANDS

#: Names of the band-edge columns (as :func:`core.model.sequences.price_bands` names the sequence model's own).
EDGE_COLUMNS = tuple(f"p{round(q * 100)}" for q in PRICE_BAND_QUANTILES)
#: Parts of a category path searched for a parent with enough items (``a.b.c.d``: ``a.b.c``, ``a.b``,
#: ``a``); REES46's category codes have at most four.
_PATH_PARTS = 4

_e = schema.events.c
_sd = schema.session_days.c


def band_edge_selects(dataset_id: int, source: sa.FromClause | None = None) -> tuple[sa.Select, sa.Select]:
    """The price-band edges of ``dataset_id`` computed from its events: ``(per_category, overall)`` selects.

    ``source``: rows with ``category``, ``item_id`` and ``price`` columns to compute them from
    instead (a load's validated rows, before they are events).

    Edges are quartiles over a category's distinct items, not its events: each item counts once,
    at its typical price (the median of its positive prices), so one popular item cannot fill
    several bands (events without an item id count once per distinct price). A category with
    fewer than ``config.PRICE_BAND_MIN_ITEMS`` items takes the edges of its nearest parent path
    that has enough (``apparel.shoes.boots``: ``apparel.shoes``, then ``apparel``; a parent's
    items are those of every category under it), else those of the whole catalogue.
    :func:`_edges_of` keeps every edge an item's price strictly above the one before, so no two
    edges are equal and no band is empty; where the distinct prices allow fewer than four bands,
    the edges from the top are NULL (fewer bands, named from ``budget`` up).

    ``per_category``: one row per category with a positive price (``band_category``, ``n``
    priced events, ``n_items``, ``edges_from``: the path whose items gave the edges, NULL for
    the whole catalogue, ``p25``, ``p50``, ``p75``); ``overall``: one row over every priced
    item (``n``, ``n_items``, the edges), used for events without a category.
    """
    c = _e if source is None else source.c
    priced = [c.price > 0] + ([_e.dataset_id == dataset_id] if source is None else [])
    no_id_price = sa.case((c.item_id.is_(None), c.price), else_=sa.null())
    items = (sa.select(c.category.label("category"), c.item_id.label("item_id"), no_id_price.label("item_price"),
                       sa.func.count().label("n"), sa.func.percentile_cont(0.5).within_group(c.price).label("price"))
             .where(*priced).group_by(c.category, c.item_id, no_id_price)
             .cte("band_items").prefix_with("MATERIALIZED"))  # read four times: computed once
    i = items.c
    catalogue = (sa.select(i.item_id, i.item_price, sa.func.percentile_cont(0.5).within_group(i.price).label("price"))
                 .group_by(i.item_id, i.item_price).subquery("band_catalogue"))
    ov_edges = _edges_of(catalogue, [], "band_all")
    n_all = sa.select(sa.func.sum(i.n)).scalar_subquery()
    overall = sa.select(n_all.label("n"), *ov_edges.c)
    nodes = _category_paths(items)
    node_items = (sa.select(nodes.c.node, i.item_id, i.item_price, sa.func.avg(i.price).label("price"))
                  .select_from(items.join(nodes, nodes.c.category == i.category))
                  .group_by(nodes.c.node, i.item_id, i.item_price).subquery("band_node_items"))
    node_edges = _edges_of(node_items, ["node"], "band_node", materialized=True)
    usable = (sa.select(nodes.c.category, nodes.c.node, sa.func.length(nodes.c.node).label("depth"))
              .join(node_edges, node_edges.c.node == nodes.c.node)
              .where(node_edges.c.n_items >= sa.bindparam("min_items", config.PRICE_BAND_MIN_ITEMS))
              .subquery("band_usable"))
    nearest = (sa.select(usable.c.category, sa.func.max(usable.c.depth).label("depth"))
               .group_by(usable.c.category).subquery("band_nearest"))
    chosen = (sa.select(usable.c.category, usable.c.node)
              .join(nearest, sa.and_(nearest.c.category == usable.c.category, nearest.c.depth == usable.c.depth))
              .subquery("band_chosen"))
    per_cat = (sa.select(i.category, sa.func.sum(i.n).label("n"), sa.func.count().label("n_items"))
               .where(i.category.is_not(None)).group_by(i.category).subquery("band_per_category"))
    ne, ov = node_edges.alias("band_ne"), ov_edges.alias("band_ov")
    edges = [sa.case((chosen.c.node.is_(None), ov.c[col]), else_=ne.c[col]).label(col) for col in EDGE_COLUMNS]
    per_category = (sa.select(per_cat.c.category.label("band_category"), per_cat.c.n, per_cat.c.n_items,
                              chosen.c.node.label("edges_from"), *edges)
                    .select_from(per_cat.outerjoin(chosen, chosen.c.category == per_cat.c.category)
                                 .outerjoin(ne, ne.c.node == chosen.c.node).join(ov, sa.true())))
    return per_category, overall


def _category_paths(items: sa.Subquery) -> sa.Subquery:
    """Each category of ``items`` with itself and every parent path above it (``category``, ``node``)."""
    cats = sa.select(items.c.category).where(items.c.category.is_not(None)).distinct().subquery("band_categories")
    cat = cats.c.category
    parts = [sa.func.split_part(cat, ".", k) for k in range(1, _PATH_PARTS + 1)]
    selects = [sa.select(cat.label("category"), cat.label("node"))]
    for k in range(1, _PATH_PARTS):  # the first k parts, where the path has more than k
        prefix = sa.func.concat_ws(".", *parts[:k])
        selects.append(sa.select(cat, prefix).where(parts[k] != "", *[p != "" for p in parts[:k]]))
    return sa.union_all(*selects).subquery("band_paths")


def _edges_of(rows: sa.Subquery, keys: list[str], name: str, materialized: bool = False) -> sa.FromClause:
    """Band edges of each ``keys`` group of ``rows`` (one row per item, its typical ``price``).

    Edge k is the item price at quantile ``PRICE_BAND_QUANTILES[k]`` (``percentile_disc``: the
    first price whose share of items at or below it reaches the quantile), raised where needed
    to the next distinct price above the previous edge (the first edge above the cheapest
    price): every band then holds at least one item's price and no two edges are equal. An
    edge with no price left above the previous one is NULL. Columns: ``keys``, ``n_items``,
    ``p25``, ``p50``, ``p75``. ``materialized``: a CTE computed once, for a caller that reads it twice.
    """
    key_cols = [rows.c[k] for k in keys]
    counts = (sa.select(*key_cols, rows.c.price, sa.func.count().label("n"))
              .group_by(*key_cols, rows.c.price).subquery(f"{name}_counts"))
    k = counts.c
    part = [k[x] for x in keys] or None
    ranked = sa.select(
        *[k[x] for x in keys], k.price,
        sa.func.row_number().over(partition_by=part, order_by=k.price).label("r"),
        sa.cast(sa.func.sum(k.n).over(partition_by=part, order_by=k.price, rows=(None, 0)), sa.Double).label("running"),
        sa.cast(sa.func.sum(k.n).over(partition_by=part), sa.Double).label("total"),
    ).subquery(f"{name}_ranked")
    r = ranked.c
    disc = [sa.func.min(sa.case((r.running >= r.total * sa.literal(float(q), literal_execute=True), r.r)))
            .label(f"d{j}") for j, q in enumerate(PRICE_BAND_QUANTILES)]
    ranks = (sa.select(*[r[x] for x in keys], sa.cast(sa.func.max(r.total), sa.BigInteger).label("n_items"), *disc)
             .group_by(*[r[x] for x in keys]).subquery(f"{name}_ranks"))
    g = ranks.c
    chosen, previous = [], sa.literal(1, literal_execute=True)  # rank 1: the cheapest price
    for j in range(len(PRICE_BAND_QUANTILES)):
        previous = sa.func.greatest(g[f"d{j}"], previous + 1)
        chosen.append(previous)
    on = sa.and_(*[g[x] == r[x] for x in keys]) if keys else sa.true()
    edges = [sa.func.max(sa.case((r.r == d, r.price))).label(col) for d, col in zip(chosen, EDGE_COLUMNS)]
    select = (sa.select(*[g[x] for x in keys], g.n_items, *edges).select_from(ranks.join(ranked, on))
              .group_by(*[g[x] for x in keys], g.n_items))
    return select.cte(name).prefix_with("MATERIALIZED") if materialized else select.subquery(name)


def band_case(price: sa.ColumnElement, edges: list[sa.ColumnElement]) -> sa.ColumnElement:
    """The band name of ``price`` given the three edges (NULL without a positive price; an edge goes up).

    A NULL edge ends the bands below it (a category with fewer bands): every price from the
    last edge up belongs to the band above that edge.
    """
    whens = [(sa.or_(price.is_(None), price <= 0), sa.null())]
    whens += [(sa.or_(edge.is_(None), price < edge), sa.literal(band, literal_execute=True))
              for edge, band in zip(edges, PRICE_BANDS)]
    return sa.case(*whens, else_=sa.literal(PRICE_BANDS[-1], literal_execute=True))


def derive_dataset(conn: Connection, dataset_id: int, banded: bool = False, users: sa.Select | None = None) -> None:
    """Write (or rewrite) the derived figures of ``dataset_id`` from its events, in ``conn``'s transaction.

    Called by every load after its events are in (``core.ingest.load``), by the schema upgrade for
    datasets loaded before these tables existed, and by code that inserts events itself (tests,
    benchmarks). Idempotent: the dataset's previous derived rows are replaced. ``banded``: the
    load already wrote the price edges (:func:`write_price_edges`) and its events' bands
    (:func:`banded_events_sql`), so only the session days and the per-shopper summaries
    (:mod:`core.store.summaries`) are left. ``users``: a SELECT of the shoppers whose
    session days are rewritten, the others' kept (a file appended holds only some shoppers' new events).
    """
    sd = schema.session_days
    only = [sd.c.user_id.in_(users)] if users is not None else []
    conn.execute(sd.delete().where(sd.c.dataset_id == dataset_id, *only))
    if not banded:
        write_price_edges(conn, dataset_id)
        _write_bands(conn, dataset_id)
    _write_session_days(conn, dataset_id, users)
    summaries.write_summaries(conn, dataset_id, users, bands_moved=not banded)


def write_price_edges(conn: Connection, dataset_id: int, source: sa.FromClause | None = None) -> None:
    """(Re)write ``cs_price_edges`` of ``dataset_id`` from its events, or from ``source`` (see :func:`band_edge_selects`)."""
    pe = schema.price_edges
    conn.execute(pe.delete().where(pe.c.dataset_id == dataset_id))
    per_category, overall = band_edge_selects(dataset_id, source)
    cols = ["dataset_id", "category", "n_priced", "n_items", "edges_from", *EDGE_COLUMNS]
    pc, ov = per_category.subquery("pc"), overall.subquery("ov")
    no_text = sa.cast(sa.null(), sa.String)
    # one statement for both: on Spark each is some ten jobs of a tenth of a second, and the overall edges are
    # the per-category statement's own fallback, computed once where the two are one plan
    conn.execute(pe.insert().from_select(cols, sa.union_all(
        sa.select(sa.literal(dataset_id, sa.Integer), pc.c.band_category, pc.c.n, pc.c.n_items, pc.c.edges_from,
                  *[pc.c[c] for c in EDGE_COLUMNS]),
        sa.select(sa.literal(dataset_id, sa.Integer), no_text, ov.c.n, ov.c.n_items, no_text,
                  *[ov.c[c] for c in EDGE_COLUMNS]).where(ov.c.n > 0))))


def rewrite_bands(conn: Connection, dataset_id: int) -> int:
    """Recompute the price edges and every event's band of ``dataset_id`` (the schema upgrade's path when
    the definition of the bands changes; the session days do not depend on them). Returns the number of
    events whose band changed (-1 where the database does not count the rows an UPDATE changes)."""
    write_price_edges(conn, dataset_id)
    return _write_bands(conn, dataset_id)


def banded(rows: sa.FromClause, dataset_id: int) -> tuple[sa.ColumnElement, sa.FromClause]:
    """``(band, FROM clause)``: the price band of each of ``rows`` (with ``price`` and ``category``) from the
    dataset's edges in ``cs_price_edges``, and ``rows`` joined to them. Every category has its row of edges (its
    own, a parent's or the catalogue's); a row without a category takes the catalogue's."""
    pe = schema.price_edges
    pc, ov = pe.alias("pc"), pe.alias("ov")
    edges = [sa.case((pc.c.dataset_id.is_(None), ov.c[c]), else_=pc.c[c]) for c in EDGE_COLUMNS]
    joined = (rows.outerjoin(pc, sa.and_(pc.c.dataset_id == dataset_id, pc.c.category == rows.c.category))
              .outerjoin(ov, sa.and_(ov.c.dataset_id == dataset_id, ov.c.category.is_(None))))
    return band_case(rows.c.price, edges), joined


def banded_events_sql(conn: Connection, dataset_id: int, events_sql: str) -> str:
    """``events_sql`` (a SELECT of event rows) with each row's price band appended, read from ``cs_price_edges``.

    The same band as :func:`_write_bands` gives (its category's edges, the overall ones without a
    category), computed as the rows are inserted. On DuckDB, updating the band of every event
    after the insert cost more at the commit than the update itself (6.4 s of a 42 s load of
    20.4 M events, and growing faster than the events; measured), so a DuckDB load inserts
    banded rows. Dialect SQL text: the caller binds nothing in it.
    """
    rows = "cs_rows_being_loaded"  # a stand-in name, replaced by the rows' SELECT once compiled
    ev = sa.table(rows, sa.column("price"), sa.column("category")).alias("ev")
    band, joined = banded(ev, dataset_id)
    query = sa.select(sa.literal_column("ev.*"), band.label("price_band")).select_from(joined)
    text = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    return text.replace(conn.dialect.identifier_preparer.quote(rows), f"({events_sql})", 1)  # Spark quotes every name


def _write_bands(conn: Connection, dataset_id: int) -> int:
    """``cs_events.price_band`` of the dataset's events: by their category's edges, else the overall ones; NULL
    without a positive price. Only events whose band changes are written (an UPDATE rewrites every row it
    touches: on PostgreSQL a new version of the row and of its index entries, on Spark the whole table), so
    deriving again after an append that moves few edges rewrites few events. Returns the events changed."""
    ev = schema.stored_events
    _e = ev.c  # the table written, not the readers' view
    edges = schema.price_edges.alias("edges")
    pe = schema.price_edges.c
    overall = [sa.select(pe[c]).where(pe.dataset_id == dataset_id, pe.category.is_(None)).scalar_subquery()
               for c in EDGE_COLUMNS]  # one row: evaluated once
    by_category = band_case(_e.price, [edges.c[c] for c in EDGE_COLUMNS])
    by_overall = band_case(_e.price, overall)
    changed = [
        # every category with a positive price has its row of edges (write_price_edges), so these three cover
        # every event; a band is never NULL after them, so coalescing to '' tells a change from NULL apart
        ev.update()  # UPDATE ... FROM: one hash join of the events with the few edge rows
        .where(_e.dataset_id == dataset_id, _e.price > 0, edges.c.dataset_id == dataset_id,
               edges.c.category == _e.category, _differs(_e.price_band, by_category))
        .values(price_band=by_category),
        ev.update()
        .where(_e.dataset_id == dataset_id, _e.price > 0, _e.category.is_(None), _differs(_e.price_band, by_overall))
        .values(price_band=by_overall),
        ev.update()
        .where(_e.dataset_id == dataset_id, _e.price_band.is_not(None), sa.or_(_e.price.is_(None), _e.price <= 0))
        .values(price_band=None),
    ]
    counts = [conn.execute(statement).rowcount for statement in changed]
    return -1 if any(n is None or n < 0 for n in counts) else sum(counts)


def _differs(band: sa.ColumnElement, new: sa.ColumnElement) -> sa.ColumnElement:
    """``band`` is not ``new``, NULL included (written with coalesce: every store's SQL has it)."""
    return sa.func.coalesce(band, "") != sa.func.coalesce(new, "")


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
