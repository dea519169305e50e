"""Each brand's spelling on screen: the data's own casing, while events match on the lower-cased form.

Events keep the brand lower-cased and trimmed (``cs_events.brand``): a later file that spells "SAMSUNG"
repeats the events an earlier "Samsung" gave, groups with them in every query and feeds the model one
token. What the analyst reads is the brand as the files spell it: every load counts the spellings of the
events it stores into ``cs_brand_spellings`` (one row per brand and spelling, on DuckDB and PostgreSQL
alike) and marks the most frequent spelling of each brand as the one shown, a tie going to the first in
code-point order so that every load and both stores choose alike.

Why a small table and not the original spelling on every event: with one stored form, every query over the
events (rankings, preferences, segment profiles, affinity grids), the append's repeat check and the model's
brand vocabulary group and compare the stored column as they are, on both stores; with the files' spellings
stored, each of them would have to fold spellings (``lower(brand)``) and choose among them on every run, over
tens of millions of events, and a spelling chosen per query could differ from one page to the next. Here the
choice is made once per load over a few rows per brand, and a page looks up only the values it shows (its
top brands, a group's brands). The load pays one grouping of its checked rows by spelling.

Datasets loaded before spellings were kept have no rows here: their brands show as stored (lower-cased)
until a file appended to them spells a brand.
"""
from __future__ import annotations

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from core.store import sql
from core.store.engine import bulk_insert
from core.store.schema import brand_spellings

SPELLING_COLUMNS = ("brand", "spelling", "n_events")


def add_spellings(conn: Connection, dataset_id: int, counts: pd.DataFrame) -> None:
    """Add a load's brand spellings to the dataset's, inside the load's transaction ``conn``.

    ``counts``: one row per ``brand`` (lower-cased, trimmed, as the events store it), ``spelling`` (as the
    file gave it, trimmed) and ``n_events`` (the events stored from the file with that spelling). Each
    brand's shown spelling is chosen again over all the dataset's files (:func:`choose_shown`).
    """
    if counts.empty:
        return
    t = brand_spellings.c
    old = sql.frame(conn.execute(sa.select(t.brand, t.spelling, t.n_events).where(t.dataset_id == dataset_id)))
    both = pd.concat([old.reindex(columns=SPELLING_COLUMNS), counts.loc[:, SPELLING_COLUMNS]], ignore_index=True)
    merged = both.astype({"n_events": "int64"}).groupby(["brand", "spelling"], as_index=False)["n_events"].sum()
    conn.execute(brand_spellings.delete().where(t.dataset_id == dataset_id))
    bulk_insert(conn, brand_spellings, choose_shown(merged).assign(dataset_id=int(dataset_id)))


def choose_shown(spellings: pd.DataFrame) -> pd.DataFrame:
    """``spellings`` (``brand``, ``spelling``, ``n_events``) with ``shown`` True on each brand's most frequent
    spelling, a tie going to the first in code-point order (never by the order rows arrive in)."""
    ordered = spellings.sort_values(["brand", "n_events", "spelling"], ascending=[True, False, True],
                                    kind="stable").reset_index(drop=True)
    return ordered.assign(shown=~ordered["brand"].duplicated())


def shown_names(engine_or_conn: Engine | Connection, dataset_id: int, brands) -> dict[str, str]:
    """``{stored brand: its shown spelling}`` for the ``brands`` (stored, lower-cased values) that have one."""
    wanted = sorted({b for b in brands if isinstance(b, str)})
    if not wanted:
        return {}
    t = brand_spellings.c
    query = sa.select(t.brand, t.spelling).where(t.dataset_id == dataset_id, t.shown, t.brand.in_(wanted))
    return dict(sql.fetch(engine_or_conn, query))


def show_brands(engine_or_conn: Engine | Connection, dataset_id: int, brands: pd.Series) -> pd.Series:
    """``brands`` (stored values) as the analyst reads them: each one's shown spelling, else as stored;
    missing values stay missing."""
    names = shown_names(engine_or_conn, dataset_id, brands.dropna().unique())
    if not names:
        return brands
    return brands.map(lambda b: names.get(b, b) if isinstance(b, str) else b)
