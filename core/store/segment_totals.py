"""Per segment and value totals of a dataset's newest segmentation run (``cs_segment_value_totals``).

The Preferences page by segment, its heat map (every segment against everyone) and its brand drill-down
group every shopper's per-dimension rows (:mod:`core.store.summaries`) joined to the run's assignments: on a
Spark store at 5 M events 0.6-1.3 s a view, from the join's shuffle alone. A run's figures per segment and
value change only when the run or the per-shopper rows do, so they are summed once here:

- when a run is stored (:func:`write`, after its assignments, in the run's transaction);
- when a file is appended or the summaries are written again (:func:`rewrite_newest`, from
  :func:`core.store.summaries.write_summaries`): the appended shoppers' rows changed, and new shoppers,
  whom the run did not assign, count in the row of segment NULL;
- when a store of schema 13 or older is opened (:mod:`core.store.migrate`).

Only the newest run of a dataset has totals; a query about an older run, a date window or chosen event types
groups the per-shopper rows (or the events) as before. A query of the totals of a run without any finds no
row, and the pages then group the rows: asking first would cost a statement (on Spark a job) on every view.
Everyone's brands within a category read the newest run's totals too, summed over its segments.
"""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.store import schema, sql

#: The dimensions with totals: ``category_brand`` is the brand within each category (the drill-down).
DIMENSIONS = ("category", "brand", "price_band", "category_brand")

_t = schema.segment_value_totals.c


def write(conn: Connection, dataset_id: int, run_id: int) -> None:
    """Replace the dataset's totals by run ``run_id``'s, summed from the per-shopper rows and the run's assignments
    (which must be written first)."""
    table = schema.segment_value_totals
    conn.execute(table.delete().where(_t.dataset_id == dataset_id))
    seg = schema.segments.c
    members = (sa.select(seg.user_id, seg.segment).where(seg.dataset_id == dataset_id, seg.run_id == run_id)
               .subquery("members"))
    for dimension in DIMENSIONS:
        sv = schema.shopper_values[dimension]
        c = sv.c
        category = c.category if dimension == "category_brand" else sa.cast(sa.null(), sa.String)
        keys = [members.c.segment, *([c.category] if dimension == "category_brand" else []), c.value]
        select = (
            sa.select(sa.literal(dataset_id, sa.Integer), sa.literal(run_id, sa.Integer), members.c.segment,
                      sa.literal(dimension, sa.String), category, c.value, sa.func.sum(c.n_counted),
                      sa.func.sum(sql.flag(c.n_counted > 0)), sa.func.sum(c.n_purchases),
                      sa.func.sum(sql.flag(c.n_purchases > 0)), sa.func.sum(c.revenue))
            .select_from(sv.outerjoin(members, members.c.user_id == c.user_id))
            .where(c.dataset_id == dataset_id)
            .group_by(*keys)
        )
        conn.execute(table.insert().from_select(
            ["dataset_id", "run_id", "segment", "dimension", "category", "value", "n_counted", "shoppers",
             "n_purchases", "buyers", "revenue"], select))


def rewrite_newest(conn: Connection, dataset_id: int) -> None:
    """The totals of the dataset's newest run written again. A dataset never segmented has none to rewrite (runs
    go only with their dataset, which takes its totals along), so nothing is deleted: on Spark a DELETE rewrites
    the table, a few statements on every load."""
    r = schema.segment_runs.c
    run_id = conn.execute(sql.segment_runs_newest_first(dataset_id, r.run_id).limit(1)).scalar()
    if run_id is not None:
        write(conn, dataset_id, int(run_id))


def _rows(dataset_id: int, run_id: int | None, dimension: str, category: str | None) -> list:
    """WHERE terms of run ``run_id``'s rows of ``dimension`` (the brands within ``category`` when given); the newest
    run's when None."""
    if run_id is None:
        r = schema.segment_runs.c
        run = sql.segment_runs_newest_first(dataset_id, r.run_id).limit(1).scalar_subquery()
    else:
        run = sa.literal(run_id, sa.Integer)
    if category is not None:
        return [_t.dataset_id == dataset_id, _t.run_id == run, _t.dimension == "category_brand",
                _t.category == category]
    return [_t.dataset_id == dataset_id, _t.run_id == run, _t.dimension == dimension]


def group_per_value(dataset_id: int, run_id: int | None, segment: int | None, dimension: str,
                    category: str | None = None) -> sa.Subquery:
    """Per value, the group's events (not cancellations), revenue (0 without any), shoppers and buyers, and
    everyone's (every segment's and the unassigned shoppers'): the columns of the Preferences page's per-value
    query (``preferences._per_value``), from run ``run_id``'s totals (the newest run's when None). The group is
    ``segment``, or everyone when None. No row when the run has no totals (an older run; no run)."""
    def group_sum(expr):
        return expr if segment is None else sa.case((_t.segment == segment, expr), else_=0)

    revenue = sa.func.coalesce(_t.revenue, 0)
    sums = [(_t.n_counted, "events"), (revenue, "revenue"), (_t.shoppers, "shoppers"), (_t.buyers, "buyers")]
    return (sa.select(_t.value.label("value"), *[sa.func.sum(group_sum(e)).label(name) for e, name in sums],
                      *[sa.func.sum(e).label(f"{name}_all") for e, name in sums])
            .where(*_rows(dataset_id, run_id, dimension, category)).group_by(_t.value).subquery("per_value"))


def cells(dataset_id: int, run_id: int, dimension: str) -> sa.Select:
    """Per segment (NULL: the shoppers the run did not assign) and value: events, revenue (0 without any) and
    shoppers, the heat map's rows (``preferences.affinity_matrix``), from run ``run_id``'s totals (no row without)."""
    return (sa.select(_t.segment, _t.value, _t.n_counted.label("events"),
                      sa.func.coalesce(_t.revenue, 0).label("revenue"), _t.shoppers)
            .where(*_rows(dataset_id, run_id, dimension, None)))
