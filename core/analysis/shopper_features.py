"""Per-shopper segmentation features, aggregated in the database.

:func:`shopper_features` aggregates each shopper's events in SQL (two grouped levels,
session then shopper, so only one row per shopper leaves the database): recency,
frequency, monetary value, event mix, conversion, shares of the top category groups and of
the four price bands, and, when a forecast model exists, the purchase propensity and the
model's shopper embedding (its first principal components).

Definitions (as in :mod:`core.analysis.queries`): a purchase is a ``purchase`` event with a
non-negative quantity (NULL is 1); revenue is ``price * coalesce(quantity, 1)`` over
purchase events, cancellations subtracting; an order is a session with a purchase; a
category group is the top level of a dotted category path (``electronics`` for
``electronics.smartphone``; a category id without dots is its own group). Price bands are
the events' stored bands (:func:`core.store.derived.band_edge_selects`): quartiles of the distinct
items of the event's category at their typical price (a parent's or the catalogue's for a
category with too few items), budget below p25, mid below p50, premium below p75, luxury above.
"""
from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import config, store
from core.store import sql
from core.errors import NotFittedError, ParameterError
from core.store.price_bands import PRICE_BANDS

SECONDS_PER_DAY = 86_400.0
#: Features every dataset has; category, price-position, propensity and embedding features follow.
BASE_FEATURES = ("recency_days", "frequency_log", "monetary_log", "events_log", "view_share", "cart_share",
                 "purchase_share", "remove_share", "conversion")
PROPENSITY_FEATURE = "propensity"
EMBEDDING_PREFIX = "embedding_"
CATEGORY_PREFIX = "category_"
BAND_PREFIX = "band_"
#: The shopper's mean price band among their priced events, 0 (all budget) .. 1 (all luxury); 0.5 without any.
PRICE_POSITION_FEATURE = "price_position"
OTHER_GROUP = "other"
#: Raw per-shopper columns kept beside the features (profiles, CLI output, the shopper page).
RAW_COLUMNS = ("n_events", "n_views", "n_carts", "n_removes", "n_purchases", "n_sessions", "n_orders", "revenue",
               "first_event", "last_event", "last_purchase", "n_priced")

_e = store.events.c


def category_group(column) -> sa.ColumnElement:
    """SQL for the category group of ``column``: the part before the first dot (the whole id when none)."""
    return sa.func.split_part(column, ".", 1)


def top_category_groups(engine_or_conn, dataset_id: int, n: int) -> list[str]:
    """The ``n`` category groups with the most events in the dataset, most first (ties by name)."""
    grp = category_group(_e.category).label("grp")
    query = (sa.select(grp, sa.func.count().label("n")).where(_e.dataset_id == dataset_id, _e.category.is_not(None))
             .group_by(grp).order_by(sa.desc("n"), grp).limit(n))
    with sql.connect(engine_or_conn) as conn:
        return [r[0] for r in conn.execute(query)]


def top_taste_categories(engine_or_conn, dataset_id: int, n: int) -> list[str]:
    """The ``n`` categories (whole paths) with the most events in the dataset, most first (ties by name)."""
    query = (sa.select(_e.category, sa.func.count().label("n")).where(_e.dataset_id == dataset_id,
                                                                     _e.category.is_not(None))
             .group_by(_e.category).order_by(sa.desc("n"), _e.category).limit(n))
    with sql.connect(engine_or_conn) as conn:
        return [r[0] for r in conn.execute(query)]


def sample_terms(sample: tuple[float, int] | None) -> list:
    """WHERE terms on ``cs_events`` that keep a seeded share of the shoppers (``sample``: (share, seed); None: all).

    A shopper is kept when the first four hex digits of the MD5 of their id and the seed fall below the
    share: the same shoppers on DuckDB, PostgreSQL and Spark (each has ``md5`` giving lower-case hex),
    and all of a shopper's events or none."""
    if sample is None:
        return []
    share, seed = sample
    threshold = f"{min(max(int(share * 65536), 1), 65535):04x}"
    digest = sa.func.md5(sa.func.concat(_e.user_id, sa.literal(f"#{seed}")))
    return [sa.func.substr(digest, 1, 4) < threshold]


def _per_user_query(dataset_id: int, groups: list[str], categories: list[str],
                    sample: tuple[float, int] | None = None):
    band = _e.price_band  # stored at load (core.store.derived)
    grp = category_group(_e.category)
    amount = sql.amount()
    session_cols = [
        sa.func.count().label("n_events"),
        sa.func.sum(sql.flag(_e.event_type == "view")).label("n_views"),
        sa.func.sum(sql.flag(_e.event_type == "cart")).label("n_carts"),
        sa.func.sum(sql.flag(_e.event_type == "remove_from_cart")).label("n_removes"),
        sa.func.sum(sql.flag(sql.is_purchase())).label("n_purchases"),
        sa.func.max(sql.flag(sql.is_purchase())).label("is_order"),
        sa.func.sum(amount).label("revenue"),
        sa.func.min(_e.event_time).label("first_event"),
        sa.func.max(_e.event_time).label("last_event"),
        sa.func.max(sa.case((sql.is_purchase(), _e.event_time), else_=sa.null())).label("last_purchase"),
        sa.func.count(band).label("n_priced"),
        *[sa.func.sum(sql.flag(band == name)).label(f"n_band_{i}") for i, name in enumerate(PRICE_BANDS)],
        *[sa.func.sum(sql.flag(grp == g)).label(f"n_group_{j}") for j, g in enumerate(groups)],
        *[sa.func.sum(sql.flag(_e.category == c)).label(f"n_cat_{k}") for k, c in enumerate(categories)],
    ]
    # Hash aggregation level by level (session, then shopper) instead of COUNT(DISTINCT).
    per_session = (
        sa.select(_e.user_id.label("user_id"), *session_cols)
        .where(_e.dataset_id == dataset_id, *sample_terms(sample))
        .group_by(_e.user_id, _e.session_id)
        .subquery("per_session")
    )
    s = per_session.c
    summed = ["n_events", "n_views", "n_carts", "n_removes", "n_purchases", "revenue", "n_priced",
              *[f"n_band_{i}" for i in range(len(PRICE_BANDS))], *[f"n_group_{j}" for j in range(len(groups))],
              *[f"n_cat_{k}" for k in range(len(categories))]]
    return (
        sa.select(
            s.user_id,
            sa.func.count().label("n_sessions"),
            sa.func.sum(s.is_order).label("n_orders"),
            *[sa.func.sum(s[c]).label(c) for c in summed],
            sa.func.min(s.first_event).label("first_event"),
            sa.func.max(s.last_event).label("last_event"),
            sa.func.max(s.last_purchase).label("last_purchase"),
        )
        .group_by(s.user_id)
        .order_by(s.user_id)
    )


def _slug(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", str(text).lower()).strip("_") or "blank"


def shopper_features(engine: Engine, dataset_id: int, *, model_version: str | None = None,
                     top_categories: int = config.SEGMENT_TOP_CATEGORIES,
                     taste_categories: int = config.SEGMENT_TASTE_CATEGORIES,
                     use_embedding: bool = True,
                     sample: tuple[float, int] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Per-shopper segmentation features, aggregated in the database.

    Inputs: the store ``engine``, a ``dataset_id``; ``model_version`` of the forecasts whose
    ``purchase_propensity`` (and, with ``use_embedding``, whose shopper embedding, reduced to
    :data:`core.config.SEGMENT_EMBEDDING_COMPONENTS` principal components) become features
    (None: no forecast features); ``top_categories``: category groups (top level of the path)
    counted for the profiles and names (``n_group_<j>``); ``taste_categories``: categories
    (whole paths, the most visited first) whose shares are features. Taste is read at the
    category level because groups of shoppers differ there (phones and notebooks are both
    "electronics"); the shares are square-rooted and left unscaled by the segmenter
    (:func:`core.analysis.segmenter.share_features`), a Hellinger distance between shoppers' mixes.

    Output: ``(frame, names)``. ``frame`` is indexed by ``user_id`` (text, sorted) and holds
    the features listed in ``names`` (``recency_days`` since the shopper's last event at the
    dataset's last event; ``frequency_log`` = log1p(sessions); ``monetary_log`` =
    log1p(revenue, negative as 0); ``events_log``; the view/cart/purchase/remove shares of
    events; ``conversion`` = orders / sessions; ``category_<category>`` shares of events
    (with :data:`core.config.SEGMENT_SHARE_PRIOR_EVENTS` pseudo-events of everyone's mix added);
    ``price_position`` (:data:`PRICE_POSITION_FEATURE`); then ``propensity`` and
    ``embedding_<i>``) plus ``band_<band>`` shares of priced events, the raw counts of
    :data:`RAW_COLUMNS` and ``n_group_<j>`` event counts per top group.
    ``frame.attrs`` records the category groups, the dataset's last event and notes (e.g. why
    the embedding was left out). ``sample`` = (share, seed): a seeded share of the shoppers (:func:`sample_terms`). An empty dataset gives an empty frame.
    Errors: ``ParameterError`` when ``top_categories`` is below 1.
    """
    if not isinstance(top_categories, int) or top_categories < 1:
        raise ParameterError(f"Parameter 'top_categories' is {top_categories!r}; expected a whole number of at least "
                             "1.",
                             parameter="top_categories", cases=[top_categories])
    groups = top_category_groups(engine, dataset_id, top_categories)
    tastes = top_taste_categories(engine, dataset_id, taste_categories)
    with engine.connect() as conn:
        raw = sql.frame(conn.execute(_per_user_query(dataset_id, groups, tastes, sample)))
        last = conn.execute(sa.select(sa.func.max(_e.event_time)).where(_e.dataset_id == dataset_id)).scalar()
    notes: list[str] = []
    if raw.empty:
        return _no_features(groups)
    raw = _typed(raw.set_index("user_id"))
    end = pd.Timestamp(last)
    out = _activity(raw, end)
    names = list(BASE_FEATURES)
    names += _add_tastes(out, raw, tastes)
    names += _add_price(out, raw)
    propensity_median = None
    if model_version is not None:
        out, forecast_names, propensity_median = _add_forecasts(out, engine, dataset_id, model_version,
                                                                use_embedding, notes)
        names += forecast_names
    for c in RAW_COLUMNS:
        out[c] = raw[c]
    for j in range(len(groups)):
        out[f"n_group_{j}"] = raw[f"n_group_{j}"]
    out.attrs.update(groups=groups, last_event=end.to_pydatetime(), notes=notes, tastes=tastes,
                     taste_mix=taste_mix(raw, tastes), propensity_median=propensity_median)
    return out, names


def _no_features(groups: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """The features of a dataset without events: no rows."""
    frame = pd.DataFrame(columns=list(BASE_FEATURES)).rename_axis("user_id")
    frame.attrs.update(groups=groups, last_event=None, notes=["the dataset has no events"])
    return frame, list(BASE_FEATURES)


def _typed(raw: pd.DataFrame) -> pd.DataFrame:
    """The per-shopper query's columns as floats and timestamps (revenue 0 when missing)."""
    numeric = [c for c in raw.columns if c not in ("first_event", "last_event", "last_purchase")]
    raw[numeric] = raw[numeric].apply(pd.to_numeric, errors="coerce").astype(float)
    raw["revenue"] = raw["revenue"].fillna(0.0)
    for c in ("first_event", "last_event", "last_purchase"):
        raw[c] = pd.to_datetime(raw[c])
    return raw


def _activity(raw: pd.DataFrame, end) -> pd.DataFrame:
    """The :data:`BASE_FEATURES`: recency, frequency, spend, events, event-type shares and conversion."""
    n_events = raw["n_events"].clip(lower=1)
    out = pd.DataFrame(index=raw.index)
    out["recency_days"] = (end - raw["last_event"]).dt.total_seconds() / SECONDS_PER_DAY
    out["frequency_log"] = np.log1p(raw["n_sessions"])
    out["monetary_log"] = np.log1p(raw["revenue"].clip(lower=0))
    out["events_log"] = np.log1p(raw["n_events"])
    out["view_share"] = raw["n_views"] / n_events
    out["cart_share"] = raw["n_carts"] / n_events
    out["purchase_share"] = raw["n_purchases"] / n_events
    out["remove_share"] = raw["n_removes"] / n_events
    out["conversion"] = raw["n_orders"] / raw["n_sessions"].clip(lower=1)
    return out


def taste_mix(raw: pd.DataFrame, tastes: list[str]) -> list[float]:
    """Everyone's mix: each taste category's share of all the shoppers' events in ``raw``."""
    all_events = max(float(raw["n_events"].sum()), 1.0)
    return [float(raw[f"n_cat_{k}"].sum()) / all_events for k in range(len(tastes))]


def _add_tastes(out: pd.DataFrame, raw: pd.DataFrame, tastes: list[str], mix: list[float] | None = None) -> list[str]:
    """Each taste category's share of the shopper's events, shrunk towards everyone's mix (:func:`taste_mix` of
    ``raw`` when ``mix`` is None) by a few pseudo-events (a shopper with three events is not a cluster of their
    own, while a long history keeps its own mix)."""
    prior = config.SEGMENT_SHARE_PRIOR_EVENTS
    mix = taste_mix(raw, tastes) if mix is None else mix
    names = []
    for k, category in enumerate(tastes):
        name = f"{CATEGORY_PREFIX}{_slug(category)}"
        if name in out.columns:  # two categories with the same slug: keep them apart
            name = f"{name}_{k}"
        out[name] = (raw[f"n_cat_{k}"] + prior * mix[k]) / (raw["n_events"] + prior)
        names.append(name)
    return names


def _add_price(out: pd.DataFrame, raw: pd.DataFrame) -> list[str]:
    """The price position (a feature) and each band's share of priced events (for the profiles)."""
    priced = raw["n_priced"].replace(0, np.nan)
    position = sum(i * raw[f"n_band_{i}"] for i in range(len(PRICE_BANDS))) / (len(PRICE_BANDS) - 1)
    out[PRICE_POSITION_FEATURE] = (position / priced).fillna(0.5)
    for i, band in enumerate(PRICE_BANDS):
        out[f"{BAND_PREFIX}{band}"] = (raw[f"n_band_{i}"] / priced).fillna(0.0)
    return [PRICE_POSITION_FEATURE]


def _add_propensity(out: pd.DataFrame, engine: Engine, dataset_id: int, model_version: str) -> str:
    """The model's propensity as a feature (the median for shoppers it did not score); returns its name."""
    prop = _propensity(engine, dataset_id, model_version)
    out[PROPENSITY_FEATURE] = prop.reindex(out.index).astype(float)
    median = out[PROPENSITY_FEATURE].median()
    out.attrs["propensity_median"] = 0.0 if pd.isna(median) else float(median)
    out[PROPENSITY_FEATURE] = out[PROPENSITY_FEATURE].fillna(out.attrs["propensity_median"])
    return PROPENSITY_FEATURE


def _add_forecasts(out: pd.DataFrame, engine: Engine, dataset_id: int, model_version: str, use_embedding: bool,
                   notes: list[str]) -> tuple[pd.DataFrame, list[str], float]:
    """``out`` with the version's propensity (and, with ``use_embedding``, its embedding's components) added; the
    names added; the median propensity that shoppers without a forecast were given."""
    names = [_add_propensity(out, engine, dataset_id, model_version)]
    median = out.attrs["propensity_median"]
    emb = _embedding(engine, dataset_id, model_version, out.index, notes) if use_embedding else None
    if emb is not None:
        out = out.join(emb)
        names.extend(emb.columns)
    return out, names, median


def _embedding(engine: Engine, dataset_id: int, model_version: str, index: pd.Index,
               notes: list[str]) -> pd.DataFrame | None:
    """The model's shopper embedding reduced to its principal components, or None (the reason added to ``notes``)."""
    emb, note = _embedding_features(engine, dataset_id, model_version, index)
    if note:
        notes.append(note)
    return emb


def _propensity(engine: Engine, dataset_id: int, model_version: str) -> pd.Series:
    p = store.predictions.c
    query = sa.select(p.user_id, p.purchase_propensity).where(p.dataset_id == dataset_id,
                                                              p.model_version == model_version)
    with engine.connect() as conn:
        rows = conn.execute(query).fetchall()
    return pd.Series({r[0]: r[1] for r in rows}, dtype=float)


def shopper_embeddings(engine: Engine, dataset_id: int, model_version: str) -> pd.DataFrame:
    """The forecast model's shopper embedding (``ForecastModel.user_embedding``) at the data's end.

    Inputs: the store, the dataset id and a ready model version. Output: a frame indexed by
    ``user_id`` with one column per hidden unit. Reads sequences in chunks of
    :data:`core.config.SEGMENT_EMBEDDING_CHUNK_USERS` shoppers with the version's saved
    vocabularies. Errors: :class:`NotFittedError` when the version or its weights are missing.
    """
    import torch

    from core.model import sequences
    from core.model import registry
    from core.model.modeling import batch_tensors

    row = next((r for r in registry.model_rows(engine, dataset_id) if r["model_version"] == model_version), None)
    if row is None:
        raise NotFittedError(f"Model version {model_version!r} of dataset {dataset_id} is not a ready model.")
    loaded = registry.load_model(row["path"])
    cfg = loaded.config
    with engine.connect() as conn:
        last = conn.execute(sa.select(sa.func.max(_e.event_time)).where(_e.dataset_id == dataset_id)).scalar()
    cutoff = last + dt.timedelta(seconds=1)
    users, parts = [], []
    with torch.no_grad():
        for batch in sequences.iter_sequences(engine, dataset_id, cutoff, loaded.vocabs, cfg.max_len,
                                        config.SEGMENT_EMBEDDING_CHUNK_USERS):
            for start in range(0, len(batch), cfg.batch_size * 4):
                idx = np.arange(start, min(start + cfg.batch_size * 4, len(batch)))
                parts.append(loaded.model.user_embedding(batch_tensors(batch, idx)).numpy())
            users.extend(batch.user_ids)
    width = parts[0].shape[1] if parts else 0
    data = np.concatenate(parts) if parts else np.zeros((0, width))
    return pd.DataFrame(data, index=pd.Index(users, name="user_id"), columns=[f"h{i}" for i in range(width)])


def _embedding_features(engine: Engine, dataset_id: int, model_version: str,
                        index: pd.Index) -> tuple[pd.DataFrame | None, str | None]:
    """The embedding's first principal components as features, or None and the reason it was left out."""
    if len(index) > config.SEGMENT_EMBEDDING_MAX_USERS:
        return None, (f"the model's shopper embedding was left out: {len(index):,} shoppers is above "
                      f"{config.SEGMENT_EMBEDDING_MAX_USERS:,} (scoring them all would take too long)")
    try:
        emb = shopper_embeddings(engine, dataset_id, model_version)
    except (NotFittedError, OSError) as exc:
        return None, f"the model's shopper embedding was left out: {exc}"
    if emb.empty:
        return None, "the model's shopper embedding was left out: no shopper had a sequence"
    from sklearn.decomposition import PCA

    n = min(config.SEGMENT_EMBEDDING_COMPONENTS, emb.shape[1], len(emb))
    comps = PCA(n_components=n, random_state=0).fit_transform(emb.to_numpy(dtype=float))
    frame = pd.DataFrame(comps, index=emb.index, columns=[f"{EMBEDDING_PREFIX}{i + 1}" for i in range(n)])
    return frame.reindex(index).fillna(0.0), None
