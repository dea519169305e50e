"""The price bands as the analyst reads them: per category, the edges written at load and each band's price range,
and the SQL that groups events by their stored band."""
from __future__ import annotations

import math

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import store
from core.store import sql
from core.store.derived import EDGE_COLUMNS
from core.store.price_bands import PRICE_BANDS

_e = store.events.c


def band_edges(engine: Engine, dataset_id: int) -> pd.DataFrame:
    """The price bands shown to the analyst: per category, the edges and the price range of each band.

    Inputs: an engine and a dataset id. The edges are those written at load
    (:func:`core.store.derived.band_edge_selects`): quartiles of the category's distinct items at their
    typical price, or of its nearest parent path's items, or of the whole catalogue's, when it
    has fewer than ``config.PRICE_BAND_MIN_ITEMS`` items.
    Returns a DataFrame, categories by name then the all-categories row (``category`` None,
    used for events without a category), with columns ``category``, ``n_priced`` (its priced
    events), ``n_items`` (its distinct priced items), ``edges_from`` (the path whose items gave
    the edges, None for the whole catalogue), ``bands_from`` (the same in words), ``p25``,
    ``p50``, ``p75`` (NaN from the top where the prices allow fewer bands) and one text column
    per band (``budget``: "< p25", ``mid``: "p25 – < p50", ``premium``: "p50 – < p75",
    ``luxury``: "≥ p75"; "—" for a band the category does not have; prices in the currency of
    the file; a price on an edge belongs to the upper band).
    An empty frame when no event has a positive price.
    """
    pe = store.price_edges.c
    cols = ["category", "n_priced", "n_items", "edges_from", *EDGE_COLUMNS]
    # categories by name, then the all-categories row (NULL sorts last on both stores)
    rows = [tuple(r) for r in sql.fetch(engine, sa.select(*[pe[c] for c in cols])
                                     .where(pe.dataset_id == dataset_id)
                                     .order_by(pe.category.is_(None), pe.category))]
    frame = pd.DataFrame(rows, columns=cols).astype({"n_priced": "int64", **{c: float for c in EDGE_COLUMNS}})
    frame["n_items"] = frame["n_items"].astype("Int64")
    for col in ("category", "edges_from"):  # None stays None (not NaN)
        frame[col] = pd.Series([r[cols.index(col)] for r in rows], dtype=object)
    frame.insert(4, "bands_from", [_bands_from(c, f) for c, f in zip(frame["category"], frame["edges_from"])])
    ranges = [_band_ranges([e for e in edges if not math.isnan(e)]) for edges in frame[list(EDGE_COLUMNS)].to_numpy()]
    for i, band in enumerate(PRICE_BANDS):
        frame[band] = [r[i] for r in ranges]
    return frame


def _bands_from(category: str | None, edges_from: str | None) -> str:
    """Whose items gave a category's band edges, in words."""
    if category is None:
        return "every item"
    if edges_from is None:
        return "whole catalogue (too few items)"
    return "its own items" if edges_from == category else f"{edges_from} (too few items)"


def _band_ranges(edges: list[float]) -> list[str]:
    """The price range of each band given the edges present, "—" for the bands beyond them."""
    out = []
    for k in range(len(PRICE_BANDS)):
        low = edges[k - 1] if 0 < k <= len(edges) else None
        high = edges[k] if k < len(edges) else None
        if k > len(edges):
            out.append("—")
        elif low is None and high is None:
            out.append("any price")
        elif low is None:
            out.append(f"< {high:,.2f}")
        elif high is None:
            out.append(f"≥ {low:,.2f}")
        else:
            out.append(f"{low:,.2f} – < {high:,.2f}")
    return out


def price_band_sql(dataset_id: int) -> tuple[sa.FromClause, sa.ColumnElement]:
    """The events and each event's price band: ``(store.events, cs_events.price_band)``.

    The band (text: one of ``core.store.price_bands.PRICE_BANDS``, NULL for an event without a
    positive price) is written once when the dataset is loaded (:mod:`core.store.derived`, edges as
    :func:`core.store.derived.band_edge_selects`), so it is read like any other column. Kept as a pair
    for callers that select from ``from_clause`` and group by ``band``.
    """
    del dataset_id  # the band is stored per event; kept so callers need not know
    return store.events, _e.price_band
