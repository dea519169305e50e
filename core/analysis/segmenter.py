"""The :class:`Segmenter`, a scikit-learn-style k-means estimator of shopper segments, and the feature weights.

Standard scaling (or centring only, for taste features in their own units), k-means (mini-batch
above :data:`core.config.SEGMENT_MINIBATCH_ABOVE` shoppers), the number of segments given or
chosen by silhouette on a seeded sample. :func:`block_weights` gives each block of features
(activity, categories, price bands, forecast) its weight, so that taste leads.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from core import config
from core.errors import NotFittedError, ParameterError, SchemaError
from core.analysis.shopper_features import (BAND_PREFIX, CATEGORY_PREFIX, EMBEDDING_PREFIX, PRICE_POSITION_FEATURE,
                                   PROPENSITY_FEATURE)

AUTO = "auto"


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
        unscaled_features: names of features only centred, not divided by their standard
            deviation (weights still apply): features in comparable units of their own, such
            as square-rooted shares, whose rare columns should not weigh like common ones.
        n_threads: CPU threads for k-means and the silhouette; default
            :data:`core.config.SEGMENT_THREADS`.

    Learned state: ``scaler_`` (StandardScaler), ``model_`` (KMeans or MiniBatchKMeans),
    ``n_segments_``, ``silhouette_by_k_`` (k → silhouette on the sample; only the chosen k
    when it was given), ``feature_names_``, ``labels_``, ``n_shoppers_``.
    """

    def __init__(self, n_segments: int | str = AUTO, k_range: tuple[int, int] = config.SEGMENT_K_RANGE,
                 sample_size: int = config.SEGMENT_SILHOUETTE_SAMPLE, random_state: int = 0,
                 feature_weights: dict[str, float] | None = None, sqrt_features=(), unscaled_features=(),
                 n_threads: int = config.SEGMENT_THREADS):
        self.n_segments = n_segments
        self.k_range = k_range
        self.sample_size = sample_size
        self.random_state = random_state
        self.feature_weights = feature_weights
        self.sqrt_features = sqrt_features
        self.unscaled_features = unscaled_features
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
        unscaled = np.array([name in set(self.unscaled_features) for name in self.feature_names_])
        self.units_ = np.where(unscaled, self.scaler_.scale_, 1.0)  # undoes the scaling of unscaled features
        z = self.scaler_.transform(x) * self.units_ * self.weights_
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
        return self.scaler_.transform(self._matrix(features, fitting=False)) * self.units_ * self.weights_

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
        w = np.where(self.weights_ > 0, self.weights_, 1.0) * self.units_
        return centers / w


def feature_block(name: str) -> str:
    """The block of a feature: ``activity``, ``categories``, ``price_bands`` or ``forecast``."""
    if name.startswith(CATEGORY_PREFIX):
        return "categories"
    if name.startswith(BAND_PREFIX) or name == PRICE_POSITION_FEATURE:
        return "price_bands"
    if name == PROPENSITY_FEATURE or name.startswith(EMBEDDING_PREFIX):
        return "forecast"
    return "activity"


def block_weights(names: list[str], weights: dict[str, float] | None = None) -> dict[str, float]:
    """Per-feature weights of :data:`core.config.SEGMENT_BLOCK_WEIGHTS`: a standard-scaled block gets the total
    variance weight² (weight / sqrt(block size) each); a feature of an unscaled block the weight itself."""
    weights = config.SEGMENT_BLOCK_WEIGHTS if weights is None else weights
    blocks = [feature_block(n) for n in names]
    return {n: weights[b] if b in config.SEGMENT_UNSCALED_BLOCKS else weights[b] / math.sqrt(blocks.count(b))
            for n, b in zip(names, blocks)}


def share_features(names: list[str]) -> list[str]:
    """The features that are shares of a mix (category and price-band shares), for the square-root transform."""
    return [n for n in names if n.startswith((CATEGORY_PREFIX, BAND_PREFIX))]


def unscaled_features(names: list[str]) -> list[str]:
    """The features of the blocks kept in their own units (:data:`core.config.SEGMENT_UNSCALED_BLOCKS`)."""
    return [n for n in names if feature_block(n) in config.SEGMENT_UNSCALED_BLOCKS]


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
