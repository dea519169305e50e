"""Shopper segments: per-shopper features computed in the database, k-means, names and profile cards.

:func:`shopper_features` aggregates each shopper's events in SQL (two grouped levels,
session then shopper, so only one row per shopper leaves the database): recency,
frequency, monetary value, event mix, conversion, shares of the top category groups and of
the four price bands, and, when a forecast model exists, the purchase propensity and the
model's shopper embedding (its first principal components).

:class:`Segmenter` is a scikit-learn-style estimator: standard scaling, k-means (mini-batch
above :data:`core.config.SEGMENT_MINIBATCH_ABOVE` shoppers), the number of segments given
or chosen by silhouette on a seeded sample. :func:`run_segmentation` runs it all, names and
profiles the segments and stores the run and its assignments in one transaction.

Definitions (as in :mod:`core.queries`): a purchase is a ``purchase`` event with a
non-negative quantity (NULL is 1); revenue is ``price * coalesce(quantity, 1)`` over
purchase events, cancellations subtracting; an order is a session with a purchase; a
category group is the top level of a dotted category path (``electronics`` for
``electronics.smartphone``; a category id without dots is its own group). Price bands are
those of the sequence model (:func:`core.sequences.price_bands`): the quartiles of the
prices in the item's own category (all categories' prices for events without category),
budget below p25, mid below p50, premium below p75, luxury above.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from core import config, sql, store
from core.errors import NotFittedError, ParameterError, SchemaError
from core.price_bands import PRICE_BANDS

SECONDS_PER_DAY = 86_400.0
#: Features every dataset has; category, price-band, propensity and embedding features follow.
BASE_FEATURES = ("recency_days", "frequency_log", "monetary_log", "events_log", "view_share", "cart_share",
                 "purchase_share", "remove_share", "conversion")
PROPENSITY_FEATURE = "propensity"
EMBEDDING_PREFIX = "embedding_"
CATEGORY_PREFIX = "category_"
BAND_PREFIX = "band_"
OTHER_GROUP = "other"
#: Raw per-shopper columns kept beside the features (profiles, CLI output, the shopper page).
RAW_COLUMNS = ("n_events", "n_views", "n_carts", "n_removes", "n_purchases", "n_sessions", "n_orders", "revenue",
               "first_event", "last_event", "last_purchase", "n_priced")
BAND_LABELS = {"budget": "bargain", "mid": "mid-range", "premium": "premium", "luxury": "luxury"}
AUTO = "auto"

_e = store.events.c


# --- features ------------------------------------------------------------------------------------


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


def _per_user_query(dataset_id: int, groups: list[str]):
    band = _e.price_band  # stored at load (core.derived)
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
    ]
    # Hash aggregation level by level (session, then shopper) instead of COUNT(DISTINCT).
    per_session = (
        sa.select(_e.user_id.label("user_id"), *session_cols)
        .where(_e.dataset_id == dataset_id)
        .group_by(_e.user_id, _e.session_id)
        .subquery("per_session")
    )
    s = per_session.c
    summed = ["n_events", "n_views", "n_carts", "n_removes", "n_purchases", "revenue", "n_priced",
              *[f"n_band_{i}" for i in range(len(PRICE_BANDS))], *[f"n_group_{j}" for j in range(len(groups))]]
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
                     use_embedding: bool = True) -> tuple[pd.DataFrame, list[str]]:
    """Per-shopper segmentation features, aggregated in the database.

    Inputs: the store ``engine``, a ``dataset_id``; ``model_version`` of the forecasts whose
    ``purchase_propensity`` (and, with ``use_embedding``, whose shopper embedding, reduced to
    :data:`core.config.SEGMENT_EMBEDDING_COMPONENTS` principal components) become features
    (None: no forecast features); ``top_categories``: category groups whose shares are
    features (the rest is summed as ``category_other``).

    Output: ``(frame, names)``. ``frame`` is indexed by ``user_id`` (text, sorted) and holds
    the features listed in ``names`` (``recency_days`` since the shopper's last event at the
    dataset's last event; ``frequency_log`` = log1p(sessions); ``monetary_log`` =
    log1p(revenue, negative as 0); ``events_log``; the view/cart/purchase/remove shares of
    events; ``conversion`` = orders / sessions; ``category_<group>`` shares of events;
    ``band_<band>`` shares of priced events; then ``propensity`` and ``embedding_<i>``) plus
    the raw counts of :data:`RAW_COLUMNS` and ``n_group_<j>`` event counts per top group.
    ``frame.attrs`` records the category groups, the dataset's last event and notes (e.g. why
    the embedding was left out). An empty dataset gives an empty frame.
    Errors: ``ParameterError`` when ``top_categories`` is below 1.
    """
    if not isinstance(top_categories, int) or top_categories < 1:
        raise ParameterError(f"Parameter 'top_categories' is {top_categories!r}; expected a whole number of at least "
                             "1.",
                             parameter="top_categories", cases=[top_categories])
    groups = top_category_groups(engine, dataset_id, top_categories)
    with engine.connect() as conn:
        raw = sql.frame(conn.execute(_per_user_query(dataset_id, groups)))
    notes: list[str] = []
    if raw.empty:
        frame = pd.DataFrame(columns=list(BASE_FEATURES)).rename_axis("user_id")
        frame.attrs.update(groups=groups, last_event=None, notes=["the dataset has no events"])
        return frame, list(BASE_FEATURES)
    raw = raw.set_index("user_id")
    numeric = [c for c in raw.columns if c not in ("first_event", "last_event", "last_purchase")]
    raw[numeric] = raw[numeric].apply(pd.to_numeric, errors="coerce").astype(float)
    raw["revenue"] = raw["revenue"].fillna(0.0)
    for c in ("first_event", "last_event", "last_purchase"):
        raw[c] = pd.to_datetime(raw[c])
    end = raw["last_event"].max()
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
    names = list(BASE_FEATURES)
    in_groups = np.zeros(len(raw))
    for j, g in enumerate(groups):
        name = f"{CATEGORY_PREFIX}{_slug(g)}"
        if name in out.columns:  # two groups with the same slug: keep them apart
            name = f"{name}_{j}"
        out[name] = raw[f"n_group_{j}"] / n_events
        in_groups += raw[f"n_group_{j}"].to_numpy()
        names.append(name)
    out[f"{CATEGORY_PREFIX}{OTHER_GROUP}"] = 1.0 - in_groups / n_events.to_numpy()
    names.append(f"{CATEGORY_PREFIX}{OTHER_GROUP}")
    priced = raw["n_priced"].replace(0, np.nan)
    for i, band in enumerate(PRICE_BANDS):
        out[f"{BAND_PREFIX}{band}"] = (raw[f"n_band_{i}"] / priced).fillna(0.0)
        names.append(f"{BAND_PREFIX}{band}")
    if model_version is not None:
        prop = _propensity(engine, dataset_id, model_version)
        out[PROPENSITY_FEATURE] = prop.reindex(out.index).astype(float)
        out[PROPENSITY_FEATURE] = out[PROPENSITY_FEATURE].fillna(out[PROPENSITY_FEATURE].median()).fillna(0.0)
        names.append(PROPENSITY_FEATURE)
        if use_embedding:
            emb, note = _embedding_features(engine, dataset_id, model_version, out.index)
            if note:
                notes.append(note)
            if emb is not None:
                out = out.join(emb)
                names.extend(emb.columns)
    for c in RAW_COLUMNS:
        out[c] = raw[c]
    for j in range(len(groups)):
        out[f"n_group_{j}"] = raw[f"n_group_{j}"]
    out.attrs.update(groups=groups, last_event=end.to_pydatetime(), notes=notes)
    return out, names


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

    from core import sequences as seq
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
        for batch in seq.iter_sequences(engine, dataset_id, cutoff, loaded.vocabs, cfg.max_len,
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


# --- the segmenter ---------------------------------------------------------------------------------


class Segmenter:
    """k-means segments of shoppers, scikit-learn style.

    Parameters (stored as given; checked by :meth:`fit`):
        n_segments: a whole number in ``k_range``, or ``"auto"`` to choose it by silhouette.
        k_range: (smallest, largest) number of segments allowed and searched; default
            :data:`core.config.SEGMENT_K_RANGE` (2, 10).
        sample_size: shoppers sampled (seeded) to choose k: k-means and the silhouette for
            each candidate run on this sample; the final fit uses every shopper.
        random_state: seed of the sampling and of k-means; the same seed and data give the
            same segments.
        feature_weights: feature name → multiplier applied after standard scaling (missing
            names weigh 1); None weighs every feature 1. See :func:`block_weights`.
        sqrt_features: names of share features (0..1) replaced by their square root before
            scaling (the Hellinger transform: distances between mixes then depend less on
            the largest shares).
        n_threads: CPU threads for k-means and the silhouette; default
            :data:`core.config.SEGMENT_THREADS`.

    Learned state: ``scaler_`` (StandardScaler), ``model_`` (KMeans or MiniBatchKMeans),
    ``n_segments_``, ``silhouette_by_k_`` (k → silhouette on the sample; only the chosen k
    when it was given), ``feature_names_``, ``labels_``, ``n_shoppers_``.
    """

    def __init__(self, n_segments: int | str = AUTO, k_range: tuple[int, int] = config.SEGMENT_K_RANGE,
                 sample_size: int = config.SEGMENT_SILHOUETTE_SAMPLE, random_state: int = 0,
                 feature_weights: dict[str, float] | None = None, sqrt_features=(),
                 n_threads: int = config.SEGMENT_THREADS):
        self.n_segments = n_segments
        self.k_range = k_range
        self.sample_size = sample_size
        self.random_state = random_state
        self.feature_weights = feature_weights
        self.sqrt_features = sqrt_features
        self.n_threads = n_threads

    # -- validation ---------------------------------------------------------------------------
    def _check_params(self) -> tuple[int, int]:
        kr = self.k_range
        if (not isinstance(kr, (tuple, list)) or len(kr) != 2 or not all(_is_int(v) for v in kr)
                or not 2 <= kr[0] <= kr[1]):
            raise ParameterError(f"Segmenter parameter 'k_range' is {kr!r}; expected (smallest, largest) whole numbers "
                                 "with 2 <= smallest <= largest.", parameter="k_range", cases=[kr])
        lo, hi = int(kr[0]), int(kr[1])
        k = self.n_segments
        if not (k == AUTO or (_is_int(k) and lo <= k <= hi)):
            raise ParameterError(f"Segmenter parameter 'n_segments' is {k!r}; expected 'auto' or a whole number from "
                                 f"{lo} to {hi}.", parameter="n_segments", cases=[k])
        if not _is_int(self.n_threads) or self.n_threads < 1:
            raise ParameterError(f"Segmenter parameter 'n_threads' is {self.n_threads!r}; expected a whole number of "
                                 "at least 1.", parameter="n_threads", cases=[self.n_threads])
        if not _is_int(self.sample_size) or self.sample_size < 2 * hi:
            raise ParameterError(f"Segmenter parameter 'sample_size' is {self.sample_size!r}; expected a whole number "
                                 f"of at least {2 * hi}.", parameter="sample_size", cases=[self.sample_size])
        return lo, hi

    def _matrix(self, features, fitting: bool) -> np.ndarray:
        if isinstance(features, pd.DataFrame):
            names = [str(c) for c in features.columns]
            if not fitting and names != self.feature_names_:
                missing = [c for c in self.feature_names_ if c not in names]
                raise SchemaError(f"features have columns {names}; expected {self.feature_names_}"
                                  + (f" (missing {missing})" if missing else " in that order") + ".",
                                  column=(missing or [None])[0], cases=names, reason="bad_shape")
            non_numeric = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
            if non_numeric:
                raise SchemaError(f"feature column {non_numeric[0]!r} has type {features[non_numeric[0]].dtype}; "
                                  "expected numbers.", column=str(non_numeric[0]), cases=non_numeric,
                                  reason="bad_value")
            x = features.to_numpy(dtype=float)
        else:
            x = np.asarray(features, dtype=float)
            if x.ndim != 2:
                raise ParameterError(f"features have {x.ndim} dimension(s); expected a 2-D table (shoppers x features).",
                                     parameter="features", cases=[x.shape])
            names = [f"x{i}" for i in range(x.shape[1])]
            if not fitting and x.shape[1] != len(self.feature_names_):
                raise ParameterError(f"features have {x.shape[1]} columns; expected {len(self.feature_names_)}.",
                                     parameter="features", cases=[x.shape])
        bad = ~np.isfinite(x)
        if bad.any():
            col = names[int(np.argwhere(bad)[0][1])]
            raise SchemaError(f"feature column {col!r} has {int(bad[:, names.index(col)].sum())} missing or infinite "
                              "value(s); expected finite numbers for every shopper.", column=col, reason="bad_value")
        if fitting:
            self.feature_names_ = names
            self._sqrt = np.array([n in set(self.sqrt_features) for n in names])
            weights = self.feature_weights or {}
            bad_w = [n for n, w in weights.items() if not (isinstance(w, (int, float)) and w >= 0)]
            if bad_w:
                raise ParameterError(f"Segmenter parameter 'feature_weights' has {weights[bad_w[0]]!r} for "
                                     f"{bad_w[0]!r}; expected a number of at least 0.", parameter="feature_weights",
                                     cases=bad_w)
            self.weights_ = np.array([float(weights.get(n, 1.0)) for n in names])
        if self._sqrt.any():
            x = x.copy()
            x[:, self._sqrt] = np.sqrt(np.clip(x[:, self._sqrt], 0.0, None))
        return x

    # -- fit / predict -------------------------------------------------------------------------
    def fit(self, features) -> "Segmenter":
        """Scale ``features`` (DataFrame or 2-D array, one row per shopper), choose k, fit k-means.

        Returns ``self``. Errors: ``ParameterError`` naming the parameter (``n_segments``,
        ``k_range``, ``sample_size``) and the value when it is out of range or when there are
        fewer shoppers than the segments need (:data:`core.config.SEGMENT_MIN_SHOPPERS_PER_SEGMENT`
        per segment); ``SchemaError`` when a feature is missing or not a number.
        """
        from threadpoolctl import threadpool_limits

        lo, hi = self._check_params()
        with threadpool_limits(limits=self.n_threads):
            return self._fit(features, lo, hi)

    def _fit(self, features, lo: int, hi: int) -> "Segmenter":
        from sklearn.preprocessing import StandardScaler

        x = self._matrix(features, fitting=True)
        n = len(x)
        per = config.SEGMENT_MIN_SHOPPERS_PER_SEGMENT
        k_min = lo if self.n_segments == AUTO else int(self.n_segments)
        if n < per * k_min:
            raise ParameterError(f"features have {n} shopper(s); {k_min} segments need at least {per * k_min} "
                                 f"({per} per segment): parameter 'n_segments' is {self.n_segments!r}, expected at "
                                 f"most {n // per} for this many shoppers.", parameter="n_segments", cases=[n])
        self.scaler_ = StandardScaler().fit(x)
        z = self.scaler_.transform(x) * self.weights_
        if self.n_segments == AUTO:
            candidates = [k for k in range(lo, hi + 1) if n >= per * k]
            self.silhouette_by_k_ = self._silhouettes(z, candidates)
            self.n_segments_ = max(self.silhouette_by_k_, key=lambda k: (self.silhouette_by_k_[k], -k))
        else:
            self.n_segments_ = int(self.n_segments)
            self.silhouette_by_k_ = {}
        self.model_ = self._kmeans(self.n_segments_, n).fit(z)
        self.labels_ = self._ordered(self.model_.labels_, z)
        if not self.silhouette_by_k_:
            self.silhouette_by_k_ = {self.n_segments_: self._silhouette(z, self.labels_)}
        self.n_shoppers_ = n
        return self

    def _kmeans(self, k: int, n: int):
        from sklearn.cluster import KMeans, MiniBatchKMeans

        if n > config.SEGMENT_MINIBATCH_ABOVE:
            return MiniBatchKMeans(n_clusters=k, random_state=self.random_state, n_init=config.SEGMENT_MINIBATCH_N_INIT,
                                   batch_size=config.SEGMENT_MINIBATCH_SIZE)
        return KMeans(n_clusters=k, random_state=self.random_state, n_init=config.SEGMENT_N_INIT)

    def _sample(self, n: int) -> np.ndarray:
        if n <= self.sample_size:
            return np.arange(n)
        return np.sort(np.random.default_rng(self.random_state).choice(n, size=self.sample_size, replace=False))

    def _silhouette(self, z: np.ndarray, labels: np.ndarray) -> float:
        from sklearn.metrics import silhouette_score

        idx = self._sample(len(z))
        if len(np.unique(labels[idx])) < 2:
            return float("nan")
        return float(silhouette_score(z[idx], labels[idx]))

    def _silhouettes(self, z: np.ndarray, candidates: list[int]) -> dict[int, float]:
        from sklearn.cluster import KMeans
        from sklearn.metrics import silhouette_score

        sample = z[self._sample(len(z))]
        scores = {}
        for k in candidates:
            if k >= len(sample):
                continue
            labels = KMeans(n_clusters=k, random_state=self.random_state, n_init=config.SEGMENT_N_INIT).fit_predict(sample)
            scores[k] = float(silhouette_score(sample, labels)) if len(np.unique(labels)) > 1 else -1.0
        return scores

    def _ordered(self, labels: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Relabel segments by size (0 the largest) so numbering does not depend on k-means' order."""
        counts = np.bincount(labels, minlength=self.n_segments_)
        order = sorted(range(self.n_segments_), key=lambda s: (-counts[s], tuple(self.model_.cluster_centers_[s])))
        self._relabel = np.empty(self.n_segments_, dtype=int)
        self._relabel[order] = np.arange(self.n_segments_)
        return self._relabel[labels]

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError("This Segmenter is not fitted yet: call fit(features) before predict or transform.")

    def transform(self, features) -> np.ndarray:
        """The features transformed, scaled and weighted as in :meth:`fit`; :class:`NotFittedError` before fit."""
        self._check_fitted()
        return self.scaler_.transform(self._matrix(features, fitting=False)) * self.weights_

    def predict(self, features) -> np.ndarray:
        """Segment numbers (0 = largest segment at fit) of ``features``; :class:`NotFittedError` before fit."""
        from threadpoolctl import threadpool_limits

        z = self.transform(features)
        with threadpool_limits(limits=self.n_threads):
            return self._relabel[self.model_.predict(z)]

    @property
    def centers_(self) -> np.ndarray:
        """Segment centres in standard units (weights undone), row s for segment s."""
        self._check_fitted()
        centers = np.empty_like(self.model_.cluster_centers_)
        centers[self._relabel] = self.model_.cluster_centers_
        w = np.where(self.weights_ > 0, self.weights_, 1.0)
        return centers / w


def feature_block(name: str) -> str:
    """The block of a feature: ``activity``, ``categories``, ``price_bands`` or ``forecast``."""
    if name.startswith(CATEGORY_PREFIX):
        return "categories"
    if name.startswith(BAND_PREFIX):
        return "price_bands"
    if name == PROPENSITY_FEATURE or name.startswith(EMBEDDING_PREFIX):
        return "forecast"
    return "activity"


def block_weights(names: list[str], weights: dict[str, float] | None = None) -> dict[str, float]:
    """Per-feature weights giving each block the total variance weight² (:data:`core.config.SEGMENT_BLOCK_WEIGHTS`)."""
    weights = config.SEGMENT_BLOCK_WEIGHTS if weights is None else weights
    blocks = [feature_block(n) for n in names]
    return {n: weights[b] / math.sqrt(blocks.count(b)) for n, b in zip(names, blocks)}


def share_features(names: list[str]) -> list[str]:
    """The features that are shares of a mix (category and price-band shares), for the square-root transform."""
    return [n for n in names if feature_block(n) in ("categories", "price_bands")]


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


# --- names and profiles -----------------------------------------------------------------------------


def _group_label(group: str) -> str:
    return str(group).replace("_", " ")


def _segment_stats(features: pd.DataFrame, labels: np.ndarray, groups: list[str]) -> pd.DataFrame:
    """Per-segment sums and means of the raw columns (one row per segment)."""
    f = features.assign(_segment=labels, _buyer=(features["n_orders"] > 0).astype(float))
    agg = {"n_events": "sum", "n_sessions": "sum", "n_orders": "sum", "revenue": "sum", "n_priced": "sum",
           "_buyer": "mean", "recency_days": "median", "frequency_log": "count"}
    for j in range(len(groups)):
        agg[f"n_group_{j}"] = "sum"
    for band in PRICE_BANDS:
        f[f"_n_{band}"] = f[f"{BAND_PREFIX}{band}"] * f["n_priced"]
        agg[f"_n_{band}"] = "sum"
    if PROPENSITY_FEATURE in f.columns:
        agg[PROPENSITY_FEATURE] = "mean"
    stats = f.groupby("_segment").agg(agg).rename(columns={"frequency_log": "size", "_buyer": "conversion"})
    total = f.agg({k: v for k, v in agg.items()}).rename({"frequency_log": "size", "_buyer": "conversion"})
    stats.loc["all"] = total
    return stats


def _share_rows(counts: pd.Series, total: float, overall: pd.Series, overall_total: float, top: int) -> list[dict]:
    rows = []
    for name, c in counts.sort_values(ascending=False).items():
        share = c / total if total else 0.0
        base = overall.get(name, 0.0) / overall_total if overall_total else 0.0
        rows.append({"name": name, "share": float(share), "affinity": float(share / base) if base else None})
    return rows[:top]


def name_segments(profiles: list[dict]) -> list[str]:
    """A distinct readable name per profile, from its distinctive category group, price band and activity.

    The pieces: the price band whose index (share in the segment ÷ share among all shoppers)
    is highest when at least :data:`core.config.SEGMENT_NAME_MIN_INDEX` ("premium",
    "bargain", ...); the category group with the highest index among those holding at least
    :data:`core.config.SEGMENT_NAME_MIN_SHARE` of the segment's events; "buyers" or
    "browsers" when the segment's conversion (share of shoppers who bought) is at least that
    index above or below everyone's, else "shoppers"; "lapsed" when the median days since the
    last event is that index above everyone's; ", ready to buy" when the mean propensity is
    that index above everyone's. Names that still collide get the next distinctive group, then
    a number.
    """
    idx = config.SEGMENT_NAME_MIN_INDEX
    parts = []
    for p in profiles:
        band = _distinctive(p["group_index"]["bands"], idx)
        groups = [g for g in sorted(p["group_index"]["groups"], key=lambda r: -(r["affinity"] or 0))
                  if r_share(g) >= config.SEGMENT_NAME_MIN_SHARE and g["name"] != OTHER_GROUP]
        if not groups:
            groups = sorted(p["group_index"]["groups"], key=lambda r: -r["share"])
        a = p["activity_index"]
        conversion = 1.0 if a["conversion"] is None else a["conversion"]  # None: nobody bought anywhere
        role = "buyers" if conversion >= idx else "browsers" if conversion <= 1 / idx else "shoppers"
        lapsed = a["recency"] is not None and a["recency"] >= idx
        ready = a.get("propensity") is not None and a["propensity"] >= idx
        parts.append({"band": band, "groups": [_group_label(g["name"]) for g in groups], "role": role,
                      "lapsed": lapsed, "ready": ready})

    def render(pt: dict, n_groups: int) -> str:
        words = (["lapsed"] if pt["lapsed"] else []) + ([BAND_LABELS[pt["band"]]] if pt["band"] else [])
        words.append(" & ".join(pt["groups"][:n_groups]) if pt["groups"] else "all-category")
        words.append(pt["role"])
        return " ".join(words) + (", ready to buy" if pt["ready"] else "")

    names = [render(pt, 1) for pt in parts]
    for i in range(len(names)):
        clash = [j for j in range(len(names)) if names[j] == names[i]]
        if len(clash) > 1:
            for j in clash:
                names[j] = render(parts[j], 2)
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        seen[name] = seen.get(name, 0) + 1
        if names.count(name) > 1:
            names[i] = f"{name} ({seen[name]})"
    return names


def r_share(row: dict) -> float:
    """The share of a profile row (0 when missing)."""
    return row.get("share") or 0.0


def _distinctive(rows: list[dict], min_index: float) -> str | None:
    best = max(rows, key=lambda r: r["affinity"] or 0.0, default=None)
    if best is None or (best["affinity"] or 0.0) < min_index:
        return None
    return best["name"]


def build_profiles(features: pd.DataFrame, labels: np.ndarray, centers: np.ndarray,
                   feature_names: list[str]) -> list[dict]:
    """Profile cards (without the category/brand detail read from the store) and names, one per segment.

    Inputs: the frame of :func:`shopper_features`, each shopper's segment, the segment
    centres in standard units and the feature names. Output: dicts with ``segment``,
    ``name``, ``size``, ``share_shoppers``, ``revenue``, ``share_revenue``, ``conversion``
    (share of the segment's shoppers who bought), ``session_conversion``,
    ``mean_propensity`` (None without forecasts), ``median_recency_days``,
    ``revenue_per_shopper``, ``group_index`` (category groups and price bands with share and
    affinity), ``activity_index`` and ``center`` (feature → standard units).
    """
    groups = list(features.attrs.get("groups", []))
    stats = _segment_stats(features, labels, groups)
    everyone = stats.loc["all"]
    group_counts_all = pd.Series({g: everyone[f"n_group_{j}"] for j, g in enumerate(groups)})
    group_counts_all[OTHER_GROUP] = everyone["n_events"] - group_counts_all.sum()
    band_all = pd.Series({b: everyone[f"_n_{b}"] for b in PRICE_BANDS})
    has_prop = PROPENSITY_FEATURE in stats.columns
    profiles = []
    for s in range(len(centers)):
        row = stats.loc[s] if s in stats.index else None
        if row is None:
            continue
        gc = pd.Series({g: row[f"n_group_{j}"] for j, g in enumerate(groups)})
        gc[OTHER_GROUP] = row["n_events"] - gc.sum()
        bc = pd.Series({b: row[f"_n_{b}"] for b in PRICE_BANDS})
        prop = float(row[PROPENSITY_FEATURE]) if has_prop else None
        all_prop = float(everyone[PROPENSITY_FEATURE]) if has_prop else None
        conv = float(row["n_orders"] / row["n_sessions"]) if row["n_sessions"] else 0.0
        all_conv = float(everyone["n_orders"] / everyone["n_sessions"]) if everyone["n_sessions"] else 0.0
        profiles.append({
            "segment": int(s),
            "size": int(row["size"]),
            "share_shoppers": float(row["size"] / everyone["size"]),
            "revenue": float(row["revenue"]),
            "share_revenue": float(row["revenue"] / everyone["revenue"]) if everyone["revenue"] else None,
            "revenue_per_shopper": float(row["revenue"] / row["size"]),
            "conversion": float(row["conversion"]),
            "session_conversion": conv,
            "mean_propensity": prop,
            "median_recency_days": float(row["recency_days"]),
            "group_index": {
                "groups": _share_rows(gc, row["n_events"], group_counts_all, everyone["n_events"], len(gc)),
                "bands": _share_rows(bc, row["n_priced"], band_all, everyone["n_priced"], len(bc)),
            },
            "activity_index": {
                "conversion": _ratio(row["conversion"], everyone["conversion"]),
                "recency": _ratio(row["recency_days"], everyone["recency_days"]),
                "propensity": _ratio(prop, all_prop) if has_prop else None,
                "session_conversion": _ratio(conv, all_conv),
            },
            "center": {n: float(v) for n, v in zip(feature_names, centers[s])},
        })
    for p, name in zip(profiles, name_segments(profiles)):
        p["name"] = name
    return profiles


def _ratio(a, b) -> float | None:
    if a is None or b is None or not b or (isinstance(a, float) and math.isnan(a)):
        return None if b is None or a is None else (1.0 if not b and not a else None)
    return float(a / b)


def _detail_query(conn: Connection, dataset_id: int, run_id: int, column) -> pd.DataFrame:
    """Event counts per segment and value of ``column`` for a stored run (a join in the database)."""
    sg = store.segments.c
    query = (sa.select(sg.segment, column.label("value"), sa.func.count().label("n"))
             .select_from(store.segments.join(store.events, sa.and_(_e.dataset_id == sg.dataset_id,
                                                                    _e.user_id == sg.user_id)))
             .where(sg.run_id == run_id, sg.dataset_id == dataset_id, column.is_not(None))
             .group_by(sg.segment, column))
    return sql.frame(conn.execute(query))


def _add_details(conn: Connection, dataset_id: int, run_id: int, profiles: list[dict]) -> None:
    """Top categories and brands of each segment with share and affinity, read from the stored assignments."""
    top = config.SEGMENT_PROFILE_TOP
    for key, column in (("top_categories", _e.category), ("top_brands", _e.brand)):
        counts = _detail_query(conn, dataset_id, run_id, column)
        overall = counts.groupby("value")["n"].sum() if not counts.empty else pd.Series(dtype=float)
        for p in profiles:
            mine = counts.loc[counts["segment"] == p["segment"]].set_index("value")["n"] if not counts.empty else overall
            p[key] = _share_rows(mine.astype(float), float(mine.sum()), overall.astype(float), float(overall.sum()), top)


# --- runs in the store ----------------------------------------------------------------------------------


@dataclass
class SegmentRun:
    """One stored segmentation of a dataset; ``features``/``labels`` only on the run just computed."""

    run_id: int
    dataset: str
    dataset_id: int
    created_at: dt.datetime
    n_segments: int
    model_version: str | None
    feature_names: list[str]
    scaling: dict
    silhouette_by_k: dict
    profiles: list[dict]
    notes: list[str] = field(default_factory=list)
    map_points: dict = field(default_factory=dict)
    features: pd.DataFrame | None = None
    assignments: pd.DataFrame | None = None

    def names(self) -> dict[int, str]:
        """Segment number → name."""
        return {p["segment"]: p["name"] for p in self.profiles}


def _map_points(z: np.ndarray, users: pd.Index, labels: np.ndarray, seed: int) -> dict:
    """A seeded sample of at most SEGMENT_MAP_POINTS shoppers placed on the first two principal components."""
    from sklearn.decomposition import PCA

    n = len(z)
    idx = np.arange(n) if n <= config.SEGMENT_MAP_POINTS else np.sort(
        np.random.default_rng(seed).choice(n, size=config.SEGMENT_MAP_POINTS, replace=False))
    dims = min(2, z.shape[1], n)
    pca = PCA(n_components=dims, random_state=seed).fit(z)
    xy = pca.transform(z[idx])
    if dims < 2:
        xy = np.column_stack([xy, np.zeros(len(idx))])
    return {"user_id": [str(u) for u in users[idx]], "x": np.round(xy[:, 0], 4).tolist(),
            "y": np.round(xy[:, 1], 4).tolist(), "segment": [int(v) for v in labels[idx]],
            "explained_variance": [float(v) for v in pca.explained_variance_ratio_],
            "n_shoppers": int(n)}


def _insert_assignments(conn: Connection, frame: pd.DataFrame) -> None:
    """Bulk-insert cs_segments rows through the engine's native path."""
    store.bulk_insert(conn, store.segments, frame.loc[:, ["dataset_id", "run_id", "user_id", "segment", "segment_name"]])


def run_segmentation(engine: Engine, dataset: str, n_segments: int | str = AUTO, seed: int = 0, *,
                     top_categories: int = config.SEGMENT_TOP_CATEGORIES, use_forecasts: bool = True,
                     use_embedding: bool = True) -> SegmentRun:
    """Compute features, fit the :class:`Segmenter`, name and profile the segments, and store the run.

    Inputs: the store, the dataset name, ``n_segments`` ("auto" or 2..10), the ``seed``;
    ``use_forecasts``: use the latest ready model's propensity (and, with ``use_embedding``,
    its shopper embedding) when one exists. The assignments (one row per shopper) and the run
    (features and scaling, silhouettes, the map sample and the profile cards as JSON) are
    written in one transaction (bulk insert); a failure leaves nothing. Output: the stored
    :class:`SegmentRun`, with ``features`` and ``assignments`` attached.
    Errors: ``DatasetNotFoundError``; ``ParameterError`` for a bad ``n_segments`` or too few shoppers.
    """
    ds = store.get_dataset(engine, dataset)
    did = ds["dataset_id"]
    version = sql.newest_ready_model_version(engine, did) if use_forecasts else None
    features, names = shopper_features(engine, did, model_version=version, top_categories=top_categories,
                                       use_embedding=use_embedding)
    segmenter = Segmenter(n_segments, random_state=seed, feature_weights=block_weights(names),
                          sqrt_features=share_features(names)).fit(features[names])
    labels = segmenter.labels_
    profiles = build_profiles(features, labels, segmenter.centers_, names)
    name_of = {p["segment"]: p["name"] for p in profiles}
    z = segmenter.transform(features[names])
    map_points = _map_points(z, features.index, labels, seed)
    assignments = pd.DataFrame({"user_id": features.index.astype(str), "segment": labels.astype(int),
                                "segment_name": [name_of[s] for s in labels]})
    created = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    features_meta = {
        "names": names, "mean": segmenter.scaler_.mean_.tolist(), "scale": segmenter.scaler_.scale_.tolist(),
        "weights": segmenter.weights_.tolist(), "sqrt_features": list(segmenter.sqrt_features),
        "category_groups": features.attrs.get("groups", []), "silhouette_by_k": segmenter.silhouette_by_k_,
        "n_segments_asked": n_segments, "seed": seed, "notes": features.attrs.get("notes", []), "map": map_points,
    }
    with engine.begin() as conn:
        run_id = int(conn.execute(sa.select(store.segment_run_id_seq.next_value())).scalar_one())
        _insert_assignments(conn, assignments.assign(dataset_id=did, run_id=run_id))
        _add_details(conn, did, run_id, profiles)
        conn.execute(store.segment_runs.insert().values(
            run_id=run_id, dataset_id=did, created_at=created, n_segments=segmenter.n_segments_, model_version=version,
            features_json=json.dumps(features_meta, default=_json_default),
            profiles_json=json.dumps(profiles, default=_json_default)))
    store.analyze(engine, store.segments, store.segment_runs)
    return SegmentRun(run_id=run_id, dataset=dataset, dataset_id=did, created_at=created,
                      n_segments=segmenter.n_segments_, model_version=version, feature_names=names,
                      scaling={"mean": features_meta["mean"], "scale": features_meta["scale"]},
                      silhouette_by_k={int(k): v for k, v in segmenter.silhouette_by_k_.items()}, profiles=profiles,
                      notes=list(features.attrs.get("notes", [])), map_points=map_points,
                      features=features, assignments=assignments)


def _json_default(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return None if math.isnan(v) else float(v)
    if isinstance(v, (dt.datetime, pd.Timestamp)):
        return v.isoformat()
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


def _run_from_row(row: dict, dataset: str) -> SegmentRun:
    meta = json.loads(row["features_json"] or "{}")
    return SegmentRun(
        run_id=int(row["run_id"]), dataset=dataset, dataset_id=int(row["dataset_id"]), created_at=row["created_at"],
        n_segments=int(row["n_segments"]), model_version=row["model_version"], feature_names=meta.get("names", []),
        scaling={"mean": meta.get("mean", []), "scale": meta.get("scale", [])},
        silhouette_by_k={int(k): v for k, v in meta.get("silhouette_by_k", {}).items()},
        profiles=json.loads(row["profiles_json"] or "[]"), notes=meta.get("notes", []), map_points=meta.get("map", {}),
    )


def list_runs(engine: Engine, dataset: str) -> list[SegmentRun]:
    """Every stored segmentation of ``dataset``, newest first (``DatasetNotFoundError`` for an unknown name)."""
    did = store.get_dataset(engine, dataset)["dataset_id"]
    r = store.segment_runs.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(store.segment_runs).where(r.dataset_id == did)
                            .order_by(r.run_id.desc())).mappings().all()
    return [_run_from_row(dict(row), dataset) for row in rows]


def latest_run(engine: Engine, dataset: str) -> SegmentRun | None:
    """The newest stored segmentation of ``dataset``, or None when it was never segmented."""
    runs = list_runs(engine, dataset)
    return runs[0] if runs else None


def get_run(engine: Engine, dataset: str, run_id: int | None = None) -> SegmentRun:
    """The run ``run_id`` of ``dataset`` (the newest when None).

    Errors: :class:`NotFittedError` when the dataset has no such run (or none at all).
    """
    runs = list_runs(engine, dataset)
    if not runs:
        raise NotFittedError(f"Dataset {dataset!r} has not been segmented yet: run a segmentation first.")
    if run_id is None:
        return runs[0]
    for run in runs:
        if run.run_id == run_id:
            return run
    raise NotFittedError(f"Dataset {dataset!r} has no segmentation run {run_id!r}; runs: {[r.run_id for r in runs]}.")


def load_assignments(engine: Engine, dataset: str, run_id: int | None = None) -> pd.DataFrame:
    """Shoppers' segments of a run (the newest when None): columns user_id, segment, segment_name, run_id.

    Sorted by user_id. Errors: ``DatasetNotFoundError``; :class:`NotFittedError` when the
    dataset has no such run.
    """
    run = get_run(engine, dataset, run_id)
    sg = store.segments.c
    query = sa.select(sg.user_id, sg.segment, sg.segment_name, sg.run_id).where(
        sg.dataset_id == run.dataset_id, sg.run_id == run.run_id).order_by(sg.user_id)
    with engine.connect() as conn:
        frame = sql.frame(conn.execute(query))
    if frame.empty:
        return pd.DataFrame({"user_id": pd.Series(dtype=object), "segment": pd.Series(dtype=int),
                             "segment_name": pd.Series(dtype=object), "run_id": pd.Series(dtype=int)})
    return frame.astype({"segment": int, "run_id": int})


def segment_of(engine: Engine, dataset: str, user_id: str, run_id: int | None = None) -> dict | None:
    """The segment (``segment``, ``segment_name``, ``run_id``) of one shopper in a run, or None when not in it."""
    run = get_run(engine, dataset, run_id)
    sg = store.segments.c
    query = sa.select(sg.segment, sg.segment_name, sg.run_id).where(
        sg.dataset_id == run.dataset_id, sg.run_id == run.run_id, sg.user_id == str(user_id))
    with engine.connect() as conn:
        row = conn.execute(query).mappings().first()
    return dict(row) if row else None


# --- CLI output -----------------------------------------------------------------------------------------


def profile_text(profile: dict) -> str:
    """One profile card in plain words (CLI and exports)."""
    def pct(v):
        return "—" if v is None else f"{v:.1%}"

    def listing(rows):
        return ", ".join(f"{r['name']} {pct(r['share'])}" + (f" (x{r['affinity']:.2f})" if r.get("affinity") else "")
                         for r in rows) or "—"

    lines = [
        f"Segment {profile['segment']}: {profile['name']}",
        f"  shoppers {profile['size']:,} ({pct(profile['share_shoppers'])}); revenue share {pct(profile['share_revenue'])}; "
        f"conversion {pct(profile['conversion'])}; median days since last event {profile['median_recency_days']:.1f}"
        + (f"; mean propensity {profile['mean_propensity']:.3f}" if profile.get("mean_propensity") is not None else ""),
        f"  top categories: {listing(profile.get('top_categories', []))}",
        f"  top brands: {listing(profile.get('top_brands', []))}",
        f"  price bands: {listing(sorted(profile['group_index']['bands'], key=lambda r: -r['share']))}",
    ]
    return "\n".join(lines)


def segment_cli_output(run: SegmentRun, features: pd.DataFrame | None = None) -> tuple[pd.DataFrame, str]:
    """What ``cartsight segment`` writes and prints.

    Inputs: a :class:`SegmentRun` (from :func:`run_segmentation`) and the features frame
    (default ``run.features``). Output: a DataFrame with ``user_id``, ``segment``,
    ``segment_name`` and one column per feature used (in ``run.feature_names`` order), sorted
    by user_id; and the profile cards as text. Errors: ``ParameterError`` when neither the run
    nor the argument carries the features (a run read back from the store has none: compute
    them with :func:`shopper_features`).
    """
    features = run.features if features is None else features
    if features is None:
        raise ParameterError("segment_cli_output needs the features: parameter 'features' is None and the run has "
                             "none.",
                             parameter="features")
    missing = [n for n in run.feature_names if n not in features.columns]
    if missing:
        raise SchemaError(f"features lack the run's feature column(s) {missing}; expected {run.feature_names}.",
                          column=missing[0], cases=missing, reason="missing_column")
    names = run.names()
    if run.assignments is not None:
        seg = run.assignments.set_index("user_id")["segment"]
    else:
        raise ParameterError("segment_cli_output needs the run's assignments (use the run returned by "
                             "run_segmentation).", parameter="run")
    out = pd.DataFrame({"user_id": features.index.astype(str)})
    out["segment"] = seg.reindex(out["user_id"]).to_numpy()
    out["segment_name"] = out["segment"].map(names)
    for n in run.feature_names:
        out[n] = features[n].to_numpy()
    header = (f"Segmentation run {run.run_id} of dataset {run.dataset!r}: {run.n_segments} segments of "
              f"{len(out):,} shoppers; features: {', '.join(run.feature_names)}")
    sil = ", ".join(f"k={k}: {v:.3f}" for k, v in sorted(run.silhouette_by_k.items()) if v is not None)
    text = "\n\n".join([header + (f"\nSilhouette: {sil}" if sil else "") + "".join(f"\nNote: {n}" for n in run.notes),
                        *[profile_text(p) for p in run.profiles]])
    return out.sort_values("user_id", kind="stable").reset_index(drop=True), text


# --- one shopper (the Shopper page) ------------------------------------------------------------------------

SUGGESTION_KINDS = ("top propensity", "biggest spenders", "segment members")


def suggest_shoppers(engine: Engine, dataset: str, kind: str, n: int = config.SHOPPER_SUGGESTIONS, *,
                     segment: int | None = None, run_id: int | None = None) -> pd.DataFrame:
    """Shoppers worth a look: columns ``user_id`` and ``value`` (what they were ranked by), best first.

    ``kind``: "top propensity" (latest ready model's purchase propensity; empty without a
    model), "biggest spenders" (revenue), "segment members" (members of ``segment`` in the
    run ``run_id`` or the newest, biggest spenders first). Errors: ``ParameterError`` for an
    unknown kind or a missing ``segment``; ``DatasetNotFoundError``; :class:`NotFittedError`
    for members when the dataset has no segmentation.
    """
    if kind not in SUGGESTION_KINDS:
        raise ParameterError(f"Parameter 'kind' is {kind!r}; expected one of {list(SUGGESTION_KINDS)}.",
                             parameter="kind",
                             cases=[kind])
    did = store.get_dataset(engine, dataset)["dataset_id"]
    amount = sql.amount()
    if kind == "top propensity":
        version = sql.newest_ready_model_version(engine, did)
        if version is None:
            return pd.DataFrame({"user_id": pd.Series(dtype=object), "value": pd.Series(dtype=float)})
        p = store.predictions.c
        query = (sa.select(p.user_id, p.purchase_propensity.label("value"))
                 .where(p.dataset_id == did, p.model_version == version)
                 .order_by(p.purchase_propensity.desc(), p.user_id).limit(n))
    elif kind == "biggest spenders":
        revenue = sa.func.coalesce(sa.func.sum(amount), 0.0)
        query = (sa.select(_e.user_id, revenue.label("value")).where(_e.dataset_id == did).group_by(_e.user_id)
                 .order_by(revenue.desc(), _e.user_id).limit(n))
    else:
        if segment is None:
            raise ParameterError("Parameter 'segment' is None; expected a segment number for 'segment members'.",
                                 parameter="segment")
        run = get_run(engine, dataset, run_id)
        sg = store.segments.c
        revenue = sa.func.coalesce(sa.func.sum(amount), 0.0)
        query = (sa.select(sg.user_id, revenue.label("value"))
                 .select_from(store.segments.join(store.events, sa.and_(_e.dataset_id == sg.dataset_id,
                                                                        _e.user_id == sg.user_id)))
                 .where(sg.dataset_id == did, sg.run_id == run.run_id, sg.segment == int(segment))
                 .group_by(sg.user_id).order_by(revenue.desc(), sg.user_id).limit(n))
    with engine.connect() as conn:
        frame = sql.frame(conn.execute(query))
    if frame.empty:
        return pd.DataFrame({"user_id": pd.Series(dtype=object), "value": pd.Series(dtype=float)})
    return frame.astype({"value": float})


def shopper_events(engine: Engine, dataset: str, user_id: str,
                   limit: int = config.SHOPPER_TIMELINE_MAX_EVENTS) -> pd.DataFrame:
    """One shopper's events, oldest first (the last ``limit`` of them): the canonical event columns and
    each event's ``price_band`` (stored at load, :mod:`core.derived`).

    An unknown shopper gives an empty frame. Errors: ``DatasetNotFoundError``.
    """
    did = store.get_dataset(engine, dataset)["dataset_id"]
    cols = ["event_time", "event_type", "item_id", "category", "brand", "price", "quantity", "session_id",
            "price_band"]
    inner = (sa.select(*[_e[c] for c in cols]).where(_e.dataset_id == did, _e.user_id == str(user_id))
             .order_by(_e.event_time.desc(), _e.event_type).limit(limit).subquery())
    with engine.connect() as conn:
        frame = sql.frame(conn.execute(sa.select(*[inner.c[c] for c in cols]).order_by(inner.c.event_time)))
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    frame["event_time"] = pd.to_datetime(frame["event_time"])
    frame["price"] = pd.to_numeric(frame["price"]).astype(float)
    return frame


def session_summary(events: pd.DataFrame) -> pd.DataFrame:
    """Per session of one shopper's events: ``session_id``, ``start``, ``end``, ``events``, ``views``,
    ``carts``, ``purchases``, ``revenue``, ``main_category``; oldest first."""
    if events.empty:
        return pd.DataFrame(columns=["session_id", "start", "end", "events", "views", "carts", "purchases", "revenue",
                                     "main_category"])
    ev = events.assign(session_id=events["session_id"].fillna("—"),
                       _purchase=(events["event_type"] == "purchase").astype(int),
                       _amount=np.where(events["event_type"] == "purchase",
                                        events["price"].fillna(0.0) * pd.to_numeric(events["quantity"]).fillna(1), 0.0))
    out = ev.groupby("session_id", sort=False).agg(
        start=("event_time", "min"), end=("event_time", "max"), events=("event_type", "size"),
        views=("event_type", lambda s: int((s == "view").sum())), carts=("event_type", lambda s: int((s == "cart").sum())),
        purchases=("_purchase", "sum"), revenue=("_amount", "sum"),
        main_category=("category", lambda s: s.mode().iloc[0] if s.notna().any() else None),
    ).reset_index()
    return out.sort_values("start", kind="stable").reset_index(drop=True)


def shopper_forecast(engine: Engine, dataset: str, user_id: str) -> dict | None:
    """The latest ready model's forecast row for one shopper (prediction columns and ``model_version``), or None."""
    did = store.get_dataset(engine, dataset)["dataset_id"]
    version = sql.newest_ready_model_version(engine, did)
    if version is None:
        return None
    p = store.predictions
    query = sa.select(p).where(p.c.dataset_id == did, p.c.model_version == version, p.c.user_id == str(user_id))
    with engine.connect() as conn:
        row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def _shares(values: pd.Series) -> pd.Series:
    counts = values.value_counts()
    return counts / counts.sum() if counts.sum() else counts.astype(float)


def shopper_vs_segment(engine: Engine, dataset: str, events: pd.DataFrame, profile: dict | None) -> dict[str, pd.DataFrame]:
    """The shopper's category-group and price-band shares beside their segment's and everyone's.

    Inputs: the shopper's events (:func:`shopper_events`) and their segment's profile card
    (None when the shopper is in no segment run). Output: ``{"category group": frame,
    "price band": frame}``, each with ``name``, ``shopper``, ``segment``, ``everyone``
    (shares of events, 0..1) and ``segment_affinity`` (segment ÷ everyone), rows in the
    order of the shopper's share. Price bands are the events' stored ``price_band`` (the edges of
    :func:`core.sequences.price_bands` over the whole dataset, written at load).
    """
    del engine, dataset  # everything needed is in the events and the profile
    out: dict[str, pd.DataFrame] = {}
    groups = events["category"].dropna().astype(str).str.split(".", n=1).str[0]
    mine = _shares(groups)
    mine_bands = _shares(events["price_band"].dropna().astype(str))
    for dim, shopper_shares, key in (("category group", mine, "groups"), ("price band", mine_bands, "bands")):
        rows = (profile or {}).get("group_index", {}).get(key, [])
        seg = {r["name"]: r["share"] for r in rows}
        aff = {r["name"]: r["affinity"] for r in rows}
        everyone = {r["name"]: (r["share"] / r["affinity"]) if r.get("affinity") else None for r in rows}
        names = list(shopper_shares.index) + [n for n in seg if n not in shopper_shares.index]
        if dim == "price band":
            names = [b for b in PRICE_BANDS if b in names]
        frame = pd.DataFrame({
            "name": names,
            "shopper": [float(shopper_shares.get(n, 0.0)) for n in names],
            "segment": [seg.get(n) for n in names],
            "everyone": [everyone.get(n) for n in names],
            "segment_affinity": [aff.get(n) for n in names],
        })
        out[dim] = frame
    return out
