"""The overview's product queries: top categories and brands, and the price distribution.

Same conventions as :mod:`core.analysis.queries` (an engine or connection, a ``dataset_id``, an optional
[start, end) window; the work done in the database), which re-exports these functions.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from core import config, store
from core.store import sql, summaries
from core.errors import CartsightError
from core.analysis.query_parts import _check_choice, _e, _fetch, _filters

TOP_MEASURES = ("views", "purchases", "revenue")


# --- top categories and brands --------------------------------------------------------------


def _top(
    column: sa.Column,
    engine_or_conn: Engine | Connection,
    dataset_id: int,
    by: str,
    n: int,
    start: dt.datetime | None,
    end: dt.datetime | None,
) -> pd.DataFrame:
    """Top-``n`` values of ``column`` by a measure; shared by categories and brands."""
    _check_choice("by", by, TOP_MEASURES)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= config.MAX_TOP_N:
        raise CartsightError(f"Parameter 'n' is {n!r}; expected a whole number from 1 to {config.MAX_TOP_N}.")
    if summaries.answers(start, end):
        return _top_of_totals(column.name, engine_or_conn, dataset_id, by, n)
    where = [*_filters(dataset_id, start, end), column.is_not(None)]
    per_user = _events_per_user(column, where, by, n)
    u = per_user.c
    measures = {
        "views": sa.func.sum(u.views),
        "viewers": sa.func.sum(sql.flag(u.views > 0)),
        "purchases": sa.func.sum(u.purchases),
        "buyers": sa.func.sum(sql.flag(u.purchases > 0)),
        "revenue": sa.func.sum(u.revenue),
    }
    stmt = sa.select(u.name, *[m.label(k) for k, m in measures.items()]).group_by(u.name).order_by(
        measures[by].desc(), u.name)
    frame = _top_frame(_fetch(engine_or_conn, stmt), by)
    if column is _e.brand:  # grouped as stored (lower-cased), shown as the files spell it
        frame["name"] = store.show_brands(engine_or_conn, dataset_id, frame["name"])
    return frame


def _top_of_totals(dimension: str, engine_or_conn: Engine | Connection, dataset_id: int, by: str, n: int) -> pd.DataFrame:
    """:func:`_top` of the whole dataset: one read of its per-value totals (``cs_value_totals``), brands with their
    shown spelling joined in (else as stored), ranked as the events rank them (ties by the stored value)."""
    vt = store.value_totals.c
    measures = {"views": vt.n_views, "viewers": vt.viewers, "purchases": vt.n_purchases, "buyers": vt.buyers,
                "revenue": vt.revenue}
    name, source = vt.value, store.value_totals
    if dimension == "brand":
        bs = store.brand_spellings.c
        source = source.outerjoin(store.brand_spellings, sa.and_(bs.dataset_id == dataset_id, bs.brand == vt.value,
                                                                 bs.shown))
        name = sa.func.coalesce(bs.spelling, vt.value)
    stmt = (sa.select(name.label("name"), *[m.label(k) for k, m in measures.items()]).select_from(source)
            .where(vt.dataset_id == dataset_id, vt.dimension == dimension, measures[by] > 0)
            .order_by(measures[by].desc(), vt.value).limit(n))
    return _top_frame(_fetch(engine_or_conn, stmt), by)


def _top_frame(rows, by: str) -> pd.DataFrame:
    frame = pd.DataFrame([tuple(r) for r in rows], columns=["name", "views", "viewers", "purchases", "buyers", "revenue"])
    frame = frame.astype(
        {"name": object, "views": "int64", "viewers": "int64", "purchases": "int64", "buyers": "int64",
         "revenue": float}
    )
    frame["shoppers"] = frame["viewers"] if by == "views" else frame["buyers"]
    return frame


def _events_per_user(column: sa.Column, where: list, by: str, n: int) -> sa.Subquery:
    """Per (value, shopper) of the top ``n`` values by ``by``, grouped from the events in the window."""
    score = {
        "views": sa.func.sum(sql.flag(_e.event_type == "view")),
        "purchases": sa.func.sum(sql.flag(sql.is_purchase())),
        "revenue": sa.func.sum(sql.amount()),
    }[by]
    # Rank on a cheap one-level group-by first; count the shoppers behind only the top n. The ranking orders a
    # derived table's columns, not the aggregate: inside the IN below, Spark resolved the aggregate's columns of
    # the same table against the outer query's and refused it (UNSUPPORTED_EXPR_FOR_OPERATOR).
    scored = (sa.select(column.label("value"), score.label("score")).where(*where).group_by(column)
              .having(score > 0).subquery("scored"))
    ranked = sa.select(scored.c.value).order_by(scored.c.score.desc(), scored.c.value).limit(n)
    # Per (value, shopper), then per value: shoppers counted without COUNT(DISTINCT).
    return (
        sa.select(
            column.label("name"),
            sa.func.sum(sql.flag(_e.event_type == "view")).label("views"),
            sa.func.sum(sql.flag(sql.is_purchase())).label("purchases"),
            sa.func.sum(sql.amount()).label("revenue"),
        )
        .where(*where, column.in_(ranked.scalar_subquery()))
        .group_by(column, _e.user_id)
        .subquery("per_user")
    )


def _ranking(column: sa.Column, name: str, doc: str):
    """The public ranking of ``column``'s values: :func:`_top` under the signature every query has."""
    def ranking(engine_or_conn: Engine | Connection, dataset_id: int, by: str = "views", n: int = config.TOP_N,
                start: dt.datetime | None = None, end: dt.datetime | None = None) -> pd.DataFrame:
        return _top(column, engine_or_conn, dataset_id, by, n, start, end)

    ranking.__name__ = ranking.__qualname__ = name
    ranking.__doc__ = doc
    return ranking


top_categories = _ranking(_e.category, "top_categories", """The ``n`` categories with the most views, purchases or revenue (``by``).

    Events without a category are left out; categories whose measure is zero or less do not
    appear (so a file without prices gives an empty frame for ``by="revenue"``).
    Returns a DataFrame, best first (ties by name), with ``name``, ``views``, ``viewers``
    (shoppers who viewed), ``purchases``, ``buyers`` (shoppers who bought), ``revenue``
    (NaN without prices) and ``shoppers`` (the shoppers behind the ranked figure: viewers
    for ``by="views"``, buyers otherwise).
    Raises :class:`CartsightError` for an unknown ``by``, an ``n`` outside
    1..:data:`core.config.MAX_TOP_N` or an empty window.
    """)
top_brands = _ranking(_e.brand, "top_brands",
                      """The ``n`` brands with the most views, purchases or revenue; as :func:`top_categories`.

    A brand however cased is one brand; ``name`` is its spelling most frequent in the dataset's files
    (:mod:`core.store.brand_names`).
    """)


# --- prices ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PriceDistribution:
    """Histogram and summary of unit prices (in the currency of the file).

    ``bins``: DataFrame with ``low``, ``high`` (bin edges, ``low <= price < high``),
    ``label`` (e.g. ``"10–20"``) and ``events``; contiguous from the lowest to the highest
    non-empty bin, empty bins included with 0. Bins follow the 1-2-5 steps of
    :data:`core.config.PRICE_BIN_STEPS` in every decade, so equal widths on a log scale.
    ``summary``: ``events`` (all events considered), ``priced`` (with a price), ``zero``
    (price 0, not in a bin: a log scale has no place for it), ``missing`` (no price), and
    ``min``, ``mean``, ``max`` and ``p25``/``p50``/... (:data:`core.config.PRICE_QUANTILES`)
    over the priced events, None when none is priced.
    """

    bins: pd.DataFrame
    summary: dict = field(default_factory=dict)
    unit: str = "currency of the file, per unit"


def _quantile_key(q: float) -> str:
    return f"p{round(q * 100):g}"


def price_distribution(
    engine_or_conn: Engine | Connection,
    dataset_id: int,
    event_type: str | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> PriceDistribution:
    """Distribution of unit prices over the dataset's events (or only ``event_type``'s).

    Every event with a price counts once, so the histogram shows the prices shoppers
    interact with, weighted by interest. Bin counts and quantiles are computed in the
    database. Returns a :class:`PriceDistribution`.
    Raises :class:`CartsightError` for an empty window.
    """
    # Every statistic comes from the events per distinct price, one grouped query (a shop has thousands of
    # prices, tens of thousands at most): the summary, the quantiles and the bins are computed here from those
    # rows, and give the numbers the database's own percentile_cont gives over every event (tested). One
    # statement, because a Spark SQL endpoint runs each as jobs of about 0.1 s apiece: the three statements
    # this took before, or one statement joining the three, ran 0.8-1.4 s at 5 M events (measured).
    rows = _fetch(engine_or_conn, _per_price(dataset_id, event_type, start, end))
    prices = pd.DataFrame([tuple(r) for r in rows], columns=["price", "n"])
    prices["price"] = pd.to_numeric(prices["price"]).astype(float)
    prices["n"] = pd.to_numeric(prices["n"]).astype("int64")
    priced = prices[prices["price"].notna()].sort_values("price", ignore_index=True)
    summary: dict[str, Any] = {"events": int(prices["n"].sum()), "priced": int(priced["n"].sum()),
                               "zero": int(priced.loc[priced["price"] == 0, "n"].sum())}
    summary["missing"] = summary["events"] - summary["priced"]
    summary["min"] = float(priced["price"].iloc[0]) if len(priced) else None
    summary["max"] = float(priced["price"].iloc[-1]) if len(priced) else None
    total = float((priced["price"] * priced["n"]).sum())
    summary["mean"] = total / summary["priced"] if summary["priced"] else None
    values = _weighted_quantiles(priced["price"].to_numpy(), priced["n"].to_numpy(), config.PRICE_QUANTILES)
    summary.update({_quantile_key(q): v for q, v in zip(config.PRICE_QUANTILES, values)})
    return PriceDistribution(bins=_bins_frame(_bin_counts(priced)), summary=summary)


def _weighted_quantiles(values: np.ndarray, counts: np.ndarray, quantiles) -> list[float | None]:
    """``percentile_cont`` of the events behind distinct ``values`` (ascending) with ``counts`` events each.

    Percentile ``q`` of ``N`` events is the value at 0-based rank ``h = (N - 1) q``, interpolated between ranks
    ``floor(h)`` and ``ceil(h)``; the value holding rank ``r`` is the smallest whose running count exceeds ``r``.
    The same arithmetic as the databases' (in doubles), so the same numbers to the last bit.
    """
    if not len(values):
        return [None] * len(quantiles)
    running = np.cumsum(counts).astype(float)
    out = []
    for q in quantiles:
        rank = (running[-1] - 1) * float(q)
        low = values[np.searchsorted(running, math.floor(rank), side="right")]
        high = values[np.searchsorted(running, math.ceil(rank), side="right")]
        out.append(float(low + (rank - math.floor(rank)) * (high - low)))
    return out


def _per_price(dataset_id: int, event_type: str | None, start, end) -> sa.Select:
    """Events per distinct price (``price``, ``n``; NULL: no price) in the window, of ``event_type`` (None: all);
    for the whole dataset read from ``cs_price_counts`` (core.store.summaries)."""
    where = _filters(dataset_id, start, end)
    if summaries.answers(start, end):
        pc = store.price_counts.c
        terms = [pc.dataset_id == dataset_id] + ([pc.event_type == event_type] if event_type is not None else [])
        return sa.select(pc.price.label("price"), sa.func.sum(pc.n_events).label("n")).where(*terms).group_by(pc.price)
    if event_type is not None:
        where.append(_e.event_type == event_type)
    return sa.select(_e.price.label("price"), sa.func.count().label("n")).where(*where).group_by(_e.price)


def _bin_counts(priced: pd.DataFrame) -> dict[int, int]:
    """Events per 1-2-5 log bin of the positive prices (bin ``3 d + j`` starts at ``steps[j] * 10**d``)."""
    steps = config.PRICE_BIN_STEPS
    n_steps = len(steps)
    positive = priced[priced["price"] > 0]
    price = positive["price"].to_numpy()
    decade = np.floor(np.log10(price))
    scale = np.power(10.0, decade)
    index = decade * n_steps  # the step below the first (never taken: price >= scale after the corrections)
    for j in range(n_steps):  # the highest step the price reaches
        index = np.where(price >= scale * steps[j], decade * n_steps + j, index)
    # log10 may land a hair off at exact powers of ten: these two correct it
    index = np.where(price < scale, (decade - 1) * n_steps + n_steps - 1, index)
    index = np.where(price >= scale * 10, (decade + 1) * n_steps, index)
    sums = pd.Series(positive["n"].to_numpy()).groupby(index.astype("int64")).sum()
    return {int(b): int(c) for b, c in sums.items()}


def _bins_frame(counts: dict[int, int]) -> pd.DataFrame:
    """The bins from the lowest to the highest with events (empty ones between them kept), labelled."""
    rows = []
    if counts:
        for index in range(min(counts), max(counts) + 1):
            low, high = _bin_edge(index), _bin_edge(index + 1)
            rows.append((low, high, f"{low:g}–{high:g}", counts.get(index, 0)))
    frame = pd.DataFrame(rows, columns=["low", "high", "label", "events"])
    return frame.astype({"low": float, "high": float, "label": object, "events": "int64"})


def _bin_edge(index: int) -> float:
    """Lower edge of 1-2-5 bin ``index`` (bin 3*d + j starts at steps[j] * 10**d)."""
    decade, j = divmod(index, len(config.PRICE_BIN_STEPS))
    return float(f"{config.PRICE_BIN_STEPS[j] * 10.0 ** decade:.12g}")
