"""Per-shopper event sequences, read from the store in chunks of shoppers, as model arrays.

For a cutoff ``T`` a shopper's sequence is their last ``max_len`` events with
``event_time < T`` (never anything at or after ``T``). Each event becomes one token made
of: item, category and brand ids (frequency-capped vocabularies with an "other" id), the
event type, the item's price band within its category (quartiles of the category's
prices: budget, mid, premium, luxury), the time since the previous event and the age of
the event at the cutoff (log-spaced buckets). Beside the sequence each shopper gets the
time since their last event at the cutoff and a few whole-history counts.

Shoppers are read in chunks (``chunk_users`` per SQL query, a range of user ids plus an
``IN`` list when a sample is read), and the window function keeps only the last
``max_len`` events per shopper in the database, so memory stays bounded by the chunk.
Vocabularies and price bands are plain JSON and are saved with each model version so that
scoring maps ids exactly as training did.
"""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import store
from core.store import executors, sql
from core.errors import SchemaError
from core.model.config import (
    DAYS_SINCE_CAP,
    EVENT_TYPE_IDS,
    EVENT_TYPE_UNKNOWN_ID,
    TIME_BUCKET_EDGES_S,
    USER_FEATURES,
)
from core.store import derived
from core.store.derived import EDGE_COLUMNS as _EDGE_COLUMNS

PAD_ID = 0
OTHER_ID = 1
#: Price-band ids: 0 padding, 1 unknown (no price), 2.. the bands cheapest first.
PRICE_UNKNOWN_ID = 1
#: Key of the all-categories price bands used for items whose category has too few prices.
ALL_CATEGORIES = "__all__"
#: Time-bucket id of the first event of a sequence (no previous event).
NO_PREVIOUS_ID = 1
EVENT_COLUMNS = ("user_id", "event_time", "event_type", "item_id", "category", "brand", "price", "quantity", "session_id")
#: What a sequence is built from: the event columns less quantity and session id (reading those two nullable
#: columns was a third of reading a chunk's last events, measured).
SEQUENCE_COLUMNS = ("user_id", "event_time", "event_type", "item_id", "category", "brand", "price")
SECONDS_PER_DAY = 86400.0


# --- vocabularies ---------------------------------------------------------------------


@dataclass
class Vocabulary:
    """Token ids for one field: id 0 is padding, id 1 "other" (rare, unseen or missing values)."""

    name: str
    tokens: list[str]  # tokens[i] is the value of id i + 2

    def __post_init__(self) -> None:
        self._index = {t: i + 2 for i, t in enumerate(self.tokens)}

    def __len__(self) -> int:
        """Number of ids, padding and "other" included."""
        return len(self.tokens) + 2

    def encode(self, values) -> np.ndarray:
        """Ids of ``values`` (a sequence or Series); unknown or missing values get the "other" id."""
        # one dictionary lookup per distinct value (Series.map with a dict builds a string index of the whole
        # vocabulary on every call: a fifth of encoding a chunk of sequences, measured)
        codes, uniques = pd.factorize(np.asarray(values, dtype=object))
        table = np.array([self._index.get(u, OTHER_ID) for u in uniques] + [OTHER_ID], dtype=np.int64)
        return table[codes]

    def decode(self, ids) -> list[str | None]:
        """Values of ``ids``; padding and "other" decode to None."""
        return [self.tokens[i - 2] if i >= 2 else None for i in np.asarray(ids).tolist()]

    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        return {"name": self.name, "tokens": list(self.tokens)}

    @classmethod
    def from_dict(cls, data: dict) -> "Vocabulary":
        """Inverse of :meth:`to_dict`."""
        return cls(name=data["name"], tokens=list(data["tokens"]))


@dataclass
class Vocabularies:
    """Everything needed to turn events into ids the same way at training and scoring time."""

    items: Vocabulary
    categories: Vocabulary
    brands: Vocabulary
    price_bands: dict = field(default_factory=dict)  # category (or ALL_CATEGORIES) -> [q25, q50, q75]

    def to_dict(self) -> dict:
        """JSON-serialisable form (saved as ``vocabularies.json`` beside the weights)."""
        return {
            "items": self.items.to_dict(),
            "categories": self.categories.to_dict(),
            "brands": self.brands.to_dict(),
            "price_bands": {k: [None if math.isnan(x) else x for x in v] for k, v in self.price_bands.items()},
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Vocabularies":
        """Inverse of :meth:`to_dict`."""
        return cls(
            items=Vocabulary.from_dict(data["items"]),
            categories=Vocabulary.from_dict(data["categories"]),
            brands=Vocabulary.from_dict(data["brands"]),
            price_bands={k: [math.nan if x is None else float(x) for x in v] for k, v in data["price_bands"].items()},
        )


def _top_values(engine: Engine, dataset_id: int, column: sa.Column, before: dt.datetime | None,
                cap: int, min_count: int) -> list[str]:
    ev = store.events
    n = sa.func.count().label("n")
    query = (
        sa.select(column, n)
        .where(ev.c.dataset_id == dataset_id, column.is_not(None))
        .group_by(column)
        .having(sa.func.count() >= min_count)
        .order_by(n.desc(), column)
        .limit(cap)
    )
    if before is not None:
        query = query.where(ev.c.event_time < before)
    with engine.connect() as conn:
        return [str(r[0]) for r in conn.execute(query)]


def build_vocabularies(engine: Engine, dataset_id: int, before: dt.datetime | None = None, *,
                       item_cap: int, category_cap: int, brand_cap: int, min_count: int) -> Vocabularies:
    """Vocabularies of items, categories and brands from events before ``before`` (all when None).

    Values are kept by frequency (most frequent first, at most ``*_cap`` of each, and only
    those seen at least ``min_count`` times); everything else maps to the "other" id. The
    price bands come from :func:`price_bands` over the same events.
    """
    ev = store.events
    bands = price_bands(engine, dataset_id, before=before)
    band_map = {
        (ALL_CATEGORIES if pd.isna(row.category) else row.category): [row.p25, row.p50, row.p75]
        for row in bands.itertuples()
    }
    return Vocabularies(
        items=Vocabulary("items", _top_values(engine, dataset_id, ev.c.item_id, before, item_cap, min_count)),
        categories=Vocabulary("categories", _top_values(engine, dataset_id, ev.c.category, before, category_cap, 1)),
        brands=Vocabulary("brands", _top_values(engine, dataset_id, ev.c.brand, before, brand_cap, min_count)),
        price_bands=band_map,
    )


# --- price bands -----------------------------------------------------------------------


def price_bands(engine: Engine, dataset_id: int, before: dt.datetime | None = None) -> pd.DataFrame:
    """Price-band edges per category: the store's own (``cs_price_edges``), so the model's band of an event is the
    band the Preferences, Segments and Campaigns pages show for it.

    Returns a DataFrame with columns ``category``, ``n_priced``, ``p25``, ``p50``, ``p75``:
    an item priced below ``p25`` of its category is "budget", below ``p50`` "mid", below
    ``p75`` "premium", else "luxury" (see ``core.store.price_bands.PRICE_BANDS``); a NaN edge ends
    the bands below it (a category with fewer distinct prices has fewer bands). One extra row
    with ``category`` None holds the edges over the whole catalogue, used for events without a
    category. The edges are those of :func:`core.store.derived.band_edge_selects` (quartiles
    over a category's distinct items at their typical price, a parent's when it has too few);
    the stored ones cover the whole dataset (an item's band is a fact of the catalogue, not of a
    label window). A dataset whose edges were never stored gets them computed the same way over
    its events before ``before`` (all when None). Categories without priced events are absent.
    """
    pe = store.price_edges
    cols = ["category", "n_priced", *_EDGE_COLUMNS]
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(
            sa.select(*[pe.c[c] for c in cols]).where(pe.c.dataset_id == dataset_id).order_by(pe.c.category))]
        if not rows:
            rows = _computed_edges(conn, dataset_id, before)
    frame = pd.DataFrame(rows, columns=cols)
    frame = pd.concat([frame[frame["category"].notna()], frame[frame["category"].isna()]], ignore_index=True)
    for c in _EDGE_COLUMNS:
        frame[c] = pd.to_numeric(frame[c], errors="coerce").astype(float)
    frame["n_priced"] = frame["n_priced"].astype(int)
    return frame


def _computed_edges(conn, dataset_id: int, before: dt.datetime | None) -> list[dict]:
    """The store's band edges computed from the events before ``before``, as ``cs_price_edges`` rows."""
    ev = store.events
    where = [ev.c.dataset_id == dataset_id] + ([ev.c.event_time < before] if before is not None else [])
    source = sa.select(ev.c.category, ev.c.item_id, ev.c.price).where(*where).subquery("band_source")
    per_category, overall = derived.band_edge_selects(dataset_id, source)
    rows = [{"category": r.band_category, "n_priced": r.n, **{c: r._mapping[c] for c in _EDGE_COLUMNS}}
            for r in conn.execute(per_category)]
    total = conn.execute(overall).first()  # no row at all when nothing is priced
    total = None if total is None else total._mapping
    if total is not None and total["n"]:
        rows.append({"category": None, "n_priced": total["n"], **{c: total[c] for c in _EDGE_COLUMNS}})
    return rows


def price_band_ids(categories: Sequence, prices: Sequence, bands: dict) -> np.ndarray:
    """Price-band ids (2 budget .. 5 luxury, 1 unknown) of items given their category and price.

    ``bands`` maps a category (or ``ALL_CATEGORIES``) to its three edges, as in
    :attr:`Vocabularies.price_bands`; a category without bands falls back to the overall ones,
    and without either the band is unknown. A NaN edge ends the bands below it, as in the store
    (``core.store.derived.band_case``): a price at or above the last edge is in the band above it.
    """
    cats = pd.Series(categories, dtype="object")
    price = pd.to_numeric(pd.Series(prices), errors="coerce").to_numpy(dtype=float)
    overall = bands.get(ALL_CATEGORIES)
    codes, uniques = pd.factorize(cats)  # one lookup per distinct category; missing ones get code -1
    known = [bands.get(c, overall) for c in uniques] + [overall]
    table = np.array([[math.nan] * 3 if e is None else e for e in known], dtype=float).reshape(-1, 3)
    row = np.where(codes < 0, len(uniques), codes)
    edges = table[row]
    above = (price[:, None] >= edges) & ~np.isnan(edges)
    ids = 2 + above.sum(axis=1)  # edges go up and NaN ones come last
    has_edges = np.array([e is not None for e in known])[row]
    unknown = ~(price > 0) | ~has_edges
    return np.where(unknown, PRICE_UNKNOWN_ID, ids).astype(np.int64)


def time_bucket_ids(seconds) -> np.ndarray:
    """Log-spaced bucket ids (2..) of non-negative durations in seconds; NaN (no previous event) gives 1."""
    sec = np.asarray(seconds, dtype=float)
    ids = 2 + np.searchsorted(np.asarray(TIME_BUCKET_EDGES_S, dtype=float), np.nan_to_num(sec, nan=0.0), side="right")
    return np.where(np.isnan(sec), NO_PREVIOUS_ID, ids).astype(np.int64)


# --- users and chunks ----------------------------------------------------------------------


def list_users(engine: Engine, dataset_id: int, before: dt.datetime | None = None) -> list[str]:
    """Distinct user ids of the dataset (with an event before ``before`` if given), in the database's order."""
    ev = store.events
    query = sa.select(ev.c.user_id).where(ev.c.dataset_id == dataset_id).distinct().order_by(ev.c.user_id)
    if before is not None:
        query = query.where(ev.c.event_time < before)
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(query)]


def sample_users(users: Sequence[str], max_users: int, seed: int) -> tuple[list[str], bool]:
    """At most ``max_users`` of ``users`` chosen with a seeded generator, order kept; and whether it sampled."""
    if len(users) <= max_users:
        return list(users), False
    keep = np.sort(np.random.default_rng(seed).choice(len(users), size=max_users, replace=False))
    return [users[i] for i in keep], True


@dataclass(frozen=True)
class UserChunk:
    """A slice of shoppers read by one query: the id range and, for a sample, the ids themselves."""

    first: str
    last: str
    users: tuple[str, ...] | None  # None: every user in [first, last]


def user_chunks(users: Sequence[str], chunk_users: int, exhaustive: bool) -> list[UserChunk]:
    """Split ``users`` (database order) into chunks; ``exhaustive`` means ``users`` holds every user of the range."""
    chunks = []
    for start in range(0, len(users), chunk_users):
        part = users[start:start + chunk_users]
        chunks.append(UserChunk(part[0], part[-1], None if exhaustive else tuple(part)))
    return chunks


def chunk_where(chunk: UserChunk) -> list:
    """WHERE terms on ``cs_events`` that select the shoppers of ``chunk``."""
    ev = store.events
    where = [ev.c.user_id >= chunk.first, ev.c.user_id <= chunk.last]
    if chunk.users is not None:
        where.append(ev.c.user_id.in_(chunk.users))
    return where


def read_frame(engine: Engine, query) -> pd.DataFrame:
    """Run a SELECT and return its rows as a DataFrame.

    On DuckDB the compiled statement (bound parameters passed positionally) runs on the
    driver connection and comes back column-wise (``fetchnumpy``): about ten times faster than
    building rows in Python, which dominated reading sequences at a million events
    (measured). On Spark with a Connect session the rows come as Arrow batches
    (:func:`core.store.executors.select_frame`). Other databases go through SQLAlchemy.
    """
    if executors.is_spark(engine):
        frame = executors.select_frame(engine, query)
        if frame is not None:
            return frame
    with engine.connect() as conn:
        if engine.dialect.name == "duckdb":
            compiled = query.compile(dialect=engine.dialect, compile_kwargs={"render_postcompile": True})
            params = [compiled.params[k] for k in compiled.positiontup or ()]
            return _numpy_frame(store.driver_connection(conn).execute(str(compiled), params).fetchnumpy())
        return sql.frame(conn.execute(query))


def _numpy_frame(data: dict) -> pd.DataFrame:
    """A DataFrame of DuckDB's numpy columns: text as plain objects with None where missing (as the generic
    path gives), nullable integers where the column has NULLs. Half the time of ``.df()``, whose text went
    through Arrow strings and back to objects (scoring 20,000 shoppers, measured)."""
    columns = {}
    for name, values in data.items():
        missing = np.ma.getmaskarray(values) if np.ma.isMaskedArray(values) else None
        raw = np.asarray(np.ma.getdata(values))
        if raw.dtype == object:
            if missing is not None:
                raw = raw.copy()
                raw[missing] = None
            columns[name] = pd.Series(raw, dtype=object)
        elif missing is None:
            columns[name] = pd.Series(raw)
        elif raw.dtype.kind in "iu":
            columns[name] = pd.Series(pd.arrays.IntegerArray(raw, missing))
        elif raw.dtype.kind == "b":
            columns[name] = pd.Series(pd.arrays.BooleanArray(raw, missing))
        else:  # floats and times: NaN / NaT where missing
            columns[name] = pd.Series(np.ma.filled(values, np.nan if raw.dtype.kind == "f" else np.datetime64("NaT")))
    return pd.DataFrame(columns)


def load_last_events(engine: Engine, dataset_id: int, chunk: UserChunk, cutoff: dt.datetime, max_len: int) -> pd.DataFrame:
    """The last ``max_len`` events before ``cutoff`` of each shopper in ``chunk``, oldest first per shopper.

    One SQL query (a window function keeps the last events in the database). Columns:
    :data:`SEQUENCE_COLUMNS`; sorted by ``user_id`` then time.
    """
    ev = store.events
    rn = sa.func.row_number().over(
        partition_by=ev.c.user_id,
        order_by=(ev.c.event_time.desc(), ev.c.event_type.desc(), ev.c.item_id.desc().nulls_last())
    ).label("rn")
    cols = [ev.c[c] for c in SEQUENCE_COLUMNS]
    inner = sa.select(*cols, rn).where(ev.c.dataset_id == dataset_id, ev.c.event_time < cutoff, *chunk_where(chunk)).subquery()
    query = sa.select(*[inner.c[c] for c in SEQUENCE_COLUMNS]).where(inner.c.rn <= max_len).order_by(
        inner.c.user_id, inner.c.rn.desc())
    return read_frame(engine, query)


def load_user_stats(engine: Engine, dataset_id: int, chunk: UserChunk, cutoff: dt.datetime) -> pd.DataFrame:
    """Whole-history counts per shopper of ``chunk`` before ``cutoff`` (one grouped SQL query).

    Columns: user_id, n_events, n_carts, n_purchases, first_event, last_event, last_purchase, active_days.
    """
    ev = store.events

    def count_of(kind: str):
        return sa.func.sum(sa.case((ev.c.event_type == kind, 1), else_=0))

    query = (
        sa.select(
            ev.c.user_id,
            sa.func.count().label("n_events"),
            count_of("cart").label("n_carts"),
            count_of("purchase").label("n_purchases"),
            sa.func.min(ev.c.event_time).label("first_event"),
            sa.func.max(ev.c.event_time).label("last_event"),
            sa.func.max(sa.case((ev.c.event_type == "purchase", ev.c.event_time), else_=None)).label("last_purchase"),
            sa.func.count(sa.distinct(sa.cast(ev.c.event_time, sa.Date))).label("active_days"),
        )
        .where(ev.c.dataset_id == dataset_id, ev.c.event_time < cutoff, *chunk_where(chunk))
        .group_by(ev.c.user_id)
        .order_by(ev.c.user_id)
    )
    return read_frame(engine, query)


def load_events(engine: Engine, dataset_id: int, chunk: UserChunk, start: dt.datetime | None,
                end: dt.datetime, columns: Sequence[str] = EVENT_COLUMNS) -> pd.DataFrame:
    """All events of the shoppers in ``chunk`` with ``start <= event_time < end`` (``columns``: the canonical ones).

    Sorted by user, then time; ties on the time by event type, then item id (a missing item
    first): the order of :func:`load_last_events` reversed, so that :func:`sequences_from_events`
    keeps the same last events.
    """
    ev = store.events
    where = [ev.c.dataset_id == dataset_id, ev.c.event_time < end, *chunk_where(chunk)]
    if start is not None:
        where.append(ev.c.event_time >= start)
    query = sa.select(*[ev.c[c] for c in columns]).where(*where).order_by(
        ev.c.user_id, ev.c.event_time, ev.c.event_type, ev.c.item_id.asc().nulls_first())
    return read_frame(engine, query)


# --- encoding -------------------------------------------------------------------------------


@dataclass
class SequenceBatch:
    """Model inputs for a set of shoppers at one cutoff; 2-D arrays are [shoppers, max_len], left-padded.

    ``age_days`` is the age of each event at the cutoff (NaN for padding), kept for reasons.
    ``features`` are the whole-history counts of ``USER_FEATURES``, log1p-scaled.
    """

    user_ids: list[str]
    cutoff: dt.datetime
    item: np.ndarray
    category: np.ndarray
    brand: np.ndarray
    event_type: np.ndarray
    price_band: np.ndarray
    gap_bucket: np.ndarray
    age_bucket: np.ndarray
    age_days: np.ndarray
    recency_bucket: np.ndarray
    features: np.ndarray

    TOKEN_FIELDS = ("item", "category", "brand", "event_type", "price_band", "gap_bucket", "age_bucket")

    def __len__(self) -> int:
        return len(self.user_ids)

    @property
    def mask(self) -> np.ndarray:
        """True where a position holds an event."""
        return self.event_type != PAD_ID

    def take(self, index) -> "SequenceBatch":
        """The rows ``index`` (an integer array or slice) as a new batch."""
        idx = np.arange(len(self))[index]
        values = {name: getattr(self, name)[idx] for name in (*self.TOKEN_FIELDS, "age_days", "recency_bucket", "features")}
        return SequenceBatch(user_ids=[self.user_ids[i] for i in idx], cutoff=self.cutoff, **values)

    @staticmethod
    def concat(batches: Sequence["SequenceBatch"]) -> "SequenceBatch":
        """Rows of several batches (possibly of different cutoffs: ``cutoff`` is the first one's)."""
        if not batches:
            raise SchemaError("No sequences to stack: no shopper has an event before the cutoff.", reason="no_data")
        names = (*SequenceBatch.TOKEN_FIELDS, "age_days", "recency_bucket", "features")
        values = {n: np.concatenate([getattr(b, n) for b in batches]) for n in names}
        return SequenceBatch(user_ids=[u for b in batches for u in b.user_ids], cutoff=batches[0].cutoff, **values)


def _event_type_ids(types: pd.Series) -> np.ndarray:
    return types.map(EVENT_TYPE_IDS).fillna(EVENT_TYPE_UNKNOWN_ID).to_numpy(dtype=np.int64)


def _user_runs(user: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For rows sorted by shopper: where each shopper's run starts (bool per row), each row's run number, the
    runs' first rows and their lengths."""
    new_user = np.ones(len(user), dtype=bool)
    new_user[1:] = user[1:] != user[:-1]
    starts = np.flatnonzero(new_user)
    return new_user, np.cumsum(new_user) - 1, starts, np.diff(np.append(starts, len(user)))


def encode_sequences(events: pd.DataFrame, stats: pd.DataFrame, cutoff: dt.datetime, vocabs: Vocabularies,
                     max_len: int) -> SequenceBatch:
    """Turn the output of :func:`load_last_events` (and :func:`load_user_stats`) into a :class:`SequenceBatch`.

    ``events`` must hold only events before ``cutoff``, sorted by user then time; a later
    event raises :class:`SchemaError` (it would leak the future into the inputs). One row
    per shopper in ``events``, in order of first appearance.
    """
    if len(events) and (pd.to_datetime(events["event_time"]) >= pd.Timestamp(cutoff)).any():
        raise SchemaError(f"Sequence inputs must be before the cutoff {cutoff}; found events at or after it.",
                          column="event_time", reason="bad_value")
    user = events["user_id"].to_numpy(dtype=object)
    new_user, row_user, starts, counts = _user_runs(user)
    users = user[starts]
    if len(pd.unique(user)) != len(users):
        raise SchemaError("Sequence inputs must be sorted by user: a shopper's events are not all together.",
                          column="user_id", reason="bad_shape")
    n = len(users)
    idx_in_user = np.arange(len(user)) - starts[row_user]
    take = idx_in_user >= (counts[row_user] - max_len)  # belt and braces: keep only the last max_len
    col = max_len - np.minimum(counts[row_user], max_len) + (idx_in_user - np.maximum(counts[row_user] - max_len, 0))

    times = pd.to_datetime(events["event_time"]).to_numpy()
    age_s = (np.datetime64(pd.Timestamp(cutoff).to_datetime64()) - times) / np.timedelta64(1, "s")
    gap_s = np.full(len(times), np.nan)
    gap_s[1:] = (times[1:] - times[:-1]) / np.timedelta64(1, "s")
    gap_s[new_user] = np.nan
    tokens = {
        "item": vocabs.items.encode(events["item_id"]),
        "category": vocabs.categories.encode(events["category"]),
        "brand": vocabs.brands.encode(events["brand"]),
        "event_type": _event_type_ids(events["event_type"]),
        "price_band": price_band_ids(events["category"], events["price"], vocabs.price_bands),
        "gap_bucket": time_bucket_ids(gap_s),
        "age_bucket": time_bucket_ids(age_s),
    }
    arrays = {}
    for name, values in tokens.items():
        arr = np.zeros((n, max_len), dtype=np.int64)
        arr[row_user[take], col[take]] = values[take]
        arrays[name] = arr
    age_days = np.full((n, max_len), np.nan, dtype=np.float32)
    age_days[row_user[take], col[take]] = age_s[take] / SECONDS_PER_DAY
    last_age_s = age_days[:, -1] * SECONDS_PER_DAY if n else np.zeros(0)
    return SequenceBatch(
        user_ids=[str(u) for u in users], cutoff=cutoff, **arrays, age_days=age_days,
        recency_bucket=time_bucket_ids(last_age_s), features=_user_features(stats, users, cutoff),
    )


def _user_features(stats: pd.DataFrame, users, cutoff: dt.datetime) -> np.ndarray:
    out = np.zeros((len(users), len(USER_FEATURES)), dtype=np.float32)
    if not len(users):
        return out
    s = stats.set_index("user_id").reindex(list(users))
    ts = pd.Timestamp(cutoff)

    def days_since(col: str) -> np.ndarray:
        d = (ts - pd.to_datetime(s[col])).dt.total_seconds().to_numpy() / SECONDS_PER_DAY
        return np.where(np.isnan(d), DAYS_SINCE_CAP, np.clip(d, 0, DAYS_SINCE_CAP))

    raw = {
        "n_events": s["n_events"].to_numpy(dtype=float),
        "n_carts": s["n_carts"].to_numpy(dtype=float),
        "n_purchases": s["n_purchases"].to_numpy(dtype=float),
        "days_since_first": days_since("first_event"),
        "days_since_purchase": days_since("last_purchase"),
        "active_days": s["active_days"].to_numpy(dtype=float),
    }
    for j, name in enumerate(USER_FEATURES):
        out[:, j] = np.log1p(np.nan_to_num(raw[name], nan=0.0))
    return out


def build_sequences(engine: Engine, dataset_id: int, chunk: UserChunk, cutoff: dt.datetime, vocabs: Vocabularies,
                    max_len: int) -> SequenceBatch:
    """Sequences at ``cutoff`` of the shoppers in ``chunk`` who have at least one event before it (two queries)."""
    events = load_last_events(engine, dataset_id, chunk, cutoff, max_len)
    stats = load_user_stats(engine, dataset_id, chunk, cutoff)
    return encode_sequences(events, stats, cutoff, vocabs, max_len)


def sequences_from_events(events: pd.DataFrame, cutoff: dt.datetime, vocabs: Vocabularies,
                          max_len: int) -> SequenceBatch:
    """The :func:`build_sequences` of the shoppers in ``events`` (every event of theirs before ``cutoff``, in
    the order :func:`load_events` reads them), without going back to the database.

    Scoring reads each chunk's whole history anyway when a head uses a baseline; taking the last
    events and the whole-history counts from it saves the two queries of :func:`build_sequences`.
    The same batch, row for row (tested against the SQL on both stores).
    """
    ev = events.assign(user_id=events["user_id"].astype(object), event_time=pd.to_datetime(events["event_time"]))
    ev.index = pd.RangeIndex(len(ev))
    user = ev["user_id"].to_numpy(dtype=object)
    new_user, group, starts, sizes = _user_runs(user)
    times = ev["event_time"].to_numpy()
    etype = ev["event_type"].to_numpy(dtype=object)
    is_cart, is_buy = etype == "cart", etype == "purchase"
    day = times.astype("datetime64[D]")
    new_day = new_user.copy()
    new_day[1:] |= day[1:] != day[:-1]
    buy_times = np.where(is_buy, times, np.datetime64("NaT"))
    stats = pd.DataFrame({
        "user_id": user[starts],
        "n_events": sizes,
        "n_carts": np.bincount(group, weights=is_cart, minlength=len(starts)).astype(np.int64),
        "n_purchases": np.bincount(group, weights=is_buy, minlength=len(starts)).astype(np.int64),
        "first_event": times[starts],
        "last_event": times[np.append(starts[1:], len(ev)) - 1] if len(ev) else times[:0],
        "last_purchase": pd.Series(buy_times).groupby(group).max().to_numpy() if len(ev) else times[:0],
        "active_days": np.bincount(group, weights=new_day, minlength=len(starts)).astype(np.int64),
    })
    position = np.arange(len(ev)) - starts[group]
    last = ev[position >= (sizes[group] - max_len)].reset_index(drop=True)
    # an event at or after the cutoff would be among the latest, so among those kept: encode_sequences refuses it
    return encode_sequences(last, stats, cutoff, vocabs, max_len)


def iter_sequences(engine: Engine, dataset_id: int, cutoff: dt.datetime, vocabs: Vocabularies, max_len: int,
                   chunk_users: int, users: Sequence[str] | None = None) -> Iterator[SequenceBatch]:
    """Stream :class:`SequenceBatch` es at ``cutoff`` chunk by chunk.

    ``users`` restricts to those shoppers (a sample, in database order); None streams every
    shopper of the dataset. Shoppers with no event before ``cutoff`` are skipped.
    """
    exhaustive = users is None
    users = list_users(engine, dataset_id, before=cutoff) if users is None else list(users)
    for chunk in user_chunks(users, chunk_users, exhaustive):
        batch = build_sequences(engine, dataset_id, chunk, cutoff, vocabs, max_len)
        if len(batch):
            yield batch
