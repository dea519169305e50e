"""Gradient boosting on recency/frequency/monetary features: the baselines the model's propensity and
next-event type are measured against, and stacked with.

:func:`rfm_features` computes each shopper's features at a cutoff from a history frame
(:func:`rfm_features_from_store` groups them in the database, for scoring in chunks).
:class:`RFMPropensity` and :class:`RFMNextType` are scikit-learn gradient boosting on those
features, trained on the stacked training cutoffs; a saved version keeps them as their trees
(:class:`TreeEnsemble`, plain JSON walked by numpy, no pickle). Use before ``fit`` raises
:class:`NotFittedError`.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa

from core import config, store
from core.store import sql
from core.errors import NotFittedError, ParameterError, SchemaError
from core.model.config import RECENT_WINDOWS_DAYS
from core.model import sequences
from core.model.labels import NEXT_EVENT_CLASSES
from core.model.trees import TreeEnsemble



@dataclass
class BaselineConfig:
    """Settings of the gradient-boosting baselines (scikit-learn ``HistGradientBoostingClassifier``).

    seed: random state, so a refit gives the same forecasts.
    max_iter: boosting rounds (100 is scikit-learn's default).
    learning_rate: shrinkage per round.
    max_leaf_nodes: leaves per tree.
    min_samples_leaf: least examples in a leaf; keeps trees small on a few hundred shoppers.
    min_leaf_share: when set, a leaf holds at least this share of the training examples (``min_samples_leaf``
        still the floor), so the trees stay as coarse on 3,000 shoppers as on 300.
    never_days: "days since" value for a shopper who never did the thing.
    recent_days: windows (days before the cutoff) of the recent-activity counts.
    n_threads: OpenMP threads for fitting and scoring; 1 avoids oversubscribing a shared 2-core machine
        (measured: 4.6 s with the default threads vs 0.5 s with one, 300 shoppers, other jobs busy).
    """

    seed: int = 0
    max_iter: int = 100
    learning_rate: float = 0.1
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 20
    min_leaf_share: float | None = None
    never_days: float = config.RFM_NEVER_DAYS
    recent_days: tuple[int, ...] = RECENT_WINDOWS_DAYS
    n_threads: int = 1




#: The propensity baseline's settings (the one the model's propensity is stacked with): the activity of the last two
#: and four weeks beside the last days, and small, shallow trees. The defaults' 31-leaf trees over-fitted a few
#: thousand shoppers: on simulated shops of 3,000 (bench/quality.py) they ranked next week's buyers below a bare
#: count of the last 28 days' events (ROC-AUC 0.693 against 0.736); these reach 0.749-0.765.
PROPENSITY_BASELINE = BaselineConfig(recent_days=(1, 3, 7, 14, 28), max_iter=200, learning_rate=0.05,
                                     max_leaf_nodes=4, min_samples_leaf=20, min_leaf_share=0.02)


def _check_history(history: pd.DataFrame, needed: Sequence[str], who: str) -> None:
    missing = [c for c in needed if c not in history.columns]
    if missing:
        raise SchemaError(
            f"{who}: column(s) {missing} not in the history. Columns found: {list(history.columns)}",
            column=missing[0], reason="missing_column",
        )


def _str_array(values: pd.Series) -> np.ndarray:
    """``values`` as an object array of Python strings (without a round trip through pandas' Arrow strings)."""
    if pd.api.types.is_string_dtype(values):
        return values.to_numpy(dtype=object)
    return np.array([str(v) for v in values.tolist()], dtype=object)


#: Decimals kept of the money features (``monetary``, ``mean_price``). A sum of floats depends on the order of its
#: terms, and the database sums a shopper's prices in whatever order its threads finish: unrounded, a last-bit
#: difference that sat on a tree's threshold moved a shopper's gradient-boosting propensity by up to 0.05 between
#: two re-scorings of one model (1-2 shoppers in 20,000 per run, measured).
MONEY_DECIMALS = 6


def _money(values) -> np.ndarray:
    """Money amounts rounded to :data:`MONEY_DECIMALS`: the same whatever order they were summed in."""
    return np.round(np.asarray(values, dtype=float), MONEY_DECIMALS)


def _codes(values) -> np.ndarray:
    """Integer codes of ``values`` (missing: -1)."""
    return pd.factorize(np.asarray(values, dtype=object))[0]


def _distinct_per_group(group: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Number of distinct non-negative ``codes`` in each group 0..n_groups-1."""
    ok = codes >= 0
    pairs = np.unique(group[ok].astype(np.int64) * (int(codes.max(initial=0)) + 1) + codes[ok])
    return np.bincount(pairs // (int(codes.max(initial=0)) + 1), minlength=n_groups)


@dataclass
class _ShopperEvents:
    """The events before a cutoff as arrays sorted by shopper, time, then the rows' order: what
    :func:`rfm_features` sums per shopper."""

    frame: pd.DataFrame  # the events before the cutoff, in the history's order
    order: np.ndarray  # the frame's rows in sorted order
    user_code: np.ndarray  # each sorted event's shopper, 0..n_users-1 in the order of ``names``
    names: pd.Index  # the shoppers' ids, sorted
    times: np.ndarray  # microseconds since 1970
    age: np.ndarray  # days before the cutoff
    first: np.ndarray  # True at each shopper's first event
    starts: np.ndarray  # the index of each shopper's first event
    n: int  # events
    n_users: int

    @classmethod
    def before(cls, history: pd.DataFrame, cutoff: pd.Timestamp) -> _ShopperEvents:
        h = history[history["event_time"] < cutoff]
        n = len(h)
        user_code, names = pd.factorize(_str_array(h["user_id"]), sort=True)
        times = pd.to_datetime(h["event_time"]).to_numpy().astype("datetime64[us]").astype(np.int64)
        order = np.lexsort((np.arange(n), times, user_code))  # by shopper, time, then the rows' order
        user_code, times = user_code[order], times[order]
        age = (cutoff.to_datetime64().astype("datetime64[us]").astype(np.int64) - times) / 86_400e6
        first = np.ones(n, dtype=bool)
        first[1:] = user_code[1:] != user_code[:-1]
        return cls(h, order, user_code, names, times, age, first, np.flatnonzero(first), n, len(names))

    def col(self, name: str) -> np.ndarray:
        """The sorted values of column ``name`` (all None where the history has no such column)."""
        h = self.frame
        return np.asarray(h[name].to_numpy(dtype=object))[self.order] if name in h else np.full(self.n, None, dtype=object)

    def numbers(self, name: str) -> np.ndarray:
        """The sorted values of column ``name`` as floats (NaN where missing or not a number)."""
        h = self.frame
        return (pd.to_numeric(h[name], errors="coerce").to_numpy(dtype=float)[self.order] if name in h
                else np.full(self.n, np.nan))

    def per_user(self, values) -> np.ndarray:
        return np.bincount(self.user_code, weights=values, minlength=self.n_users)

    def nmin(self, values) -> np.ndarray:
        return np.fmin.reduceat(values, self.starts) if self.n else np.zeros(0)

    def sessions(self) -> np.ndarray:
        """Each event's session: its id where the event has one, else the run of events without long gaps."""
        new_session = self.first.copy()
        new_session[1:] |= (self.times[1:] - self.times[:-1]) > config.SESSION_GAP_MINUTES * 60e6
        sid = self.col("session_id")
        has_sid = pd.notna(sid)
        session = np.where(has_sid, _codes(np.where(has_sid, sid.astype(str), None)), -1)
        gap_runs = np.cumsum(new_session)
        return np.where(has_sid, session, session.max(initial=-1) + gap_runs)


def _activity_features(ev: _ShopperEvents, cfg: BaselineConfig) -> pd.DataFrame:
    """Recency, tenure, visits, purchase revenue, counts by type and recent window, and days since the last
    purchase and cart, one row per shopper."""
    etype = ev.col("event_type")
    price, qty = ev.numbers("price"), ev.numbers("quantity")
    is_buy, is_cart = etype == "purchase", etype == "cart"
    is_view = (etype == "view") | (etype == "wishlist")
    out = pd.DataFrame({
        "recency_days": ev.nmin(ev.age),
        "tenure_days": np.fmax.reduceat(ev.age, ev.starts) if ev.n else np.zeros(0),
        "frequency": _distinct_per_group(ev.user_code, ev.sessions(), ev.n_users),
        "monetary": _money(ev.per_user(np.where(is_buy, np.nan_to_num(price, nan=0.0) * np.nan_to_num(qty, nan=1.0),
                                                0.0))),
        "n_events": np.diff(np.append(ev.starts, ev.n)),
        "n_views": ev.per_user(is_view),
        "n_carts": ev.per_user(is_cart),
        "n_purchases": ev.per_user(is_buy),
        "n_removes": ev.per_user(etype == "remove_from_cart"),
    }, index=pd.Index(ev.names, name="user_id", dtype=object))
    for d in cfg.recent_days:
        out[f"events_{d}d"] = ev.per_user(ev.age <= d)
        out[f"carts_{d}d"] = ev.per_user((ev.age <= d) & is_cart)
    out["days_since_last_purchase"] = np.nan_to_num(ev.nmin(np.where(is_buy, ev.age, np.nan)), nan=cfg.never_days)
    out["days_since_last_cart"] = np.nan_to_num(ev.nmin(np.where(is_cart, ev.age, np.nan)), nan=cfg.never_days)
    return out


def _add_variety_features(out: pd.DataFrame, ev: _ShopperEvents) -> None:
    """Distinct categories and items, active days and mean price of each shopper, added to ``out``."""
    out["distinct_categories"] = _distinct_per_group(ev.user_code, _codes(ev.col("category")), ev.n_users)
    out["distinct_items"] = _distinct_per_group(ev.user_code, _codes(ev.col("item_id")), ev.n_users)
    day = ev.times // 86_400_000_000  # days since 1970 (negative before); sorted within each shopper
    new_day = ev.first.copy()
    new_day[1:] |= day[1:] != day[:-1]
    out["active_days"] = ev.per_user(new_day)
    price = ev.numbers("price")
    priced = ~np.isnan(price)
    n_priced = ev.per_user(priced)
    out["mean_price"] = _money(np.divide(ev.per_user(np.where(priced, price, 0.0)), n_priced,
                                         out=np.zeros(ev.n_users), where=n_priced > 0))


def _for_users(out: pd.DataFrame, users: Sequence[str], cfg: BaselineConfig) -> pd.DataFrame:
    """The rows of exactly ``users`` in that order; a shopper without events gets ``never_days`` recencies and
    zero counts."""
    fill = {c: 0.0 for c in out.columns}
    fill.update(recency_days=cfg.never_days, days_since_last_purchase=cfg.never_days,
                days_since_last_cart=cfg.never_days)
    return out.reindex(pd.Index([str(u) for u in users], dtype=object, name="user_id")).fillna(fill)


def rfm_features(history: pd.DataFrame, cutoff: dt.datetime, users: Sequence[str] | None = None,
                 cfg: BaselineConfig | None = None) -> pd.DataFrame:
    """Recency, frequency, monetary and recent-activity features of each shopper at ``cutoff``.

    Only events before ``cutoff`` count. Returns a frame indexed by ``user_id`` (the
    shoppers of ``history``, or exactly ``users`` in that order, shoppers without events
    getting ``never_days`` recencies and zero counts) with the columns: ``recency_days``,
    ``tenure_days`` (days since the first event), ``frequency`` (sessions; by session id,
    else a new session after ``config.SESSION_GAP_MINUTES`` idle), ``monetary`` (purchase
    revenue, price × quantity with a missing quantity taken as 1), ``n_events``, ``n_views``,
    ``n_carts``, ``n_purchases``, ``n_removes``, ``events_<d>d`` and ``carts_<d>d`` for each
    recent window ``d``, ``days_since_last_purchase``, ``days_since_last_cart``,
    ``distinct_categories``, ``distinct_items``, ``active_days``, ``mean_price`` (the two money
    features rounded to :data:`MONEY_DECIMALS`).

    Computed on numpy arrays (integer codes, per-shopper sums): scoring computes these for every
    chunk of shoppers, and the grouped pandas version was a tenth of scoring's time (measured).
    """
    cfg = cfg or BaselineConfig()
    _check_history(history, ["user_id", "event_time", "event_type"], "rfm_features")
    ev = _ShopperEvents.before(history, pd.Timestamp(cutoff))
    out = _activity_features(ev, cfg)
    _add_variety_features(out, ev)
    out = out.astype(float)
    return out if users is None else _for_users(out, users, cfg)


def _chunk_events(engine, dataset_id: int, chunk, cutoff: dt.datetime):
    """``(columns, visits)``: the columns of the chunk's events before ``cutoff`` and the count of their
    visits (sessions by id, else runs split by the inactivity gap) to group them by shopper."""
    ev = store.events
    where = [ev.c.dataset_id == dataset_id, ev.c.event_time < cutoff, *sequences.chunk_where(chunk)]
    with engine.connect() as conn:
        gaps = conn.execute(sa.select(sa.exists().where(*where, ev.c.session_id.is_(None)))).scalar()
    fields = (ev.c.user_id, ev.c.event_time, ev.c.event_type, ev.c.item_id, ev.c.category, ev.c.price, ev.c.quantity,
              ev.c.session_id)
    if not gaps:  # every event has its session id (the file had them, or the load derived them): no window to
        # run, which were most of the query's time (scoring 20,000 shoppers, measured)
        e = sa.select(*fields).where(*where).subquery().c
        return e, sa.func.count(sa.distinct(e.session_id))
    # events without a session id: their visits are runs split by the inactivity gap (two windows)
    # the gap as an INTERVAL literal (sql.new_session): a Python timedelta is bound on Spark as a timestamp, which it
    # refuses to subtract from a time
    rows = sa.select(*fields, sql.new_session(ev.c.user_id, ev.c.event_time).label("new_session")).where(
        *where).subquery()
    # ties on the time share one run number (a RANGE frame), as the first of them starts it in rfm_features
    e = sa.select(rows, sa.func.sum(rows.c.new_session).over(
        partition_by=rows.c.user_id, order_by=rows.c.event_time, range_=(None, 0)).label("run")).subquery().c
    return e, (sa.func.count(sa.distinct(e.session_id))
               + sa.func.count(sa.distinct(sa.case((e.session_id.is_(None), e.run), else_=None))))


def _grouped_columns(e, visits, cutoff: dt.datetime, cfg: BaselineConfig) -> list:
    """The per-shopper aggregates behind :func:`rfm_features`' columns (times where it has days)."""
    def count_if(cond):
        return sa.func.sum(sa.case((cond, 1), else_=0))

    def last_time(kind: str):
        return sa.func.max(sa.case((e.event_type == kind, e.event_time), else_=None))

    columns = [
        e.user_id,
        sa.func.max(e.event_time).label("last_event"),
        sa.func.min(e.event_time).label("first_event"),
        visits.label("frequency"),
        sa.func.sum(sa.case((e.event_type == "purchase",
                             sa.func.coalesce(e.price, 0.0) * sa.func.coalesce(e.quantity, 1.0)),
                            else_=0.0)).label("monetary"),
        sa.func.count().label("n_events"),
        count_if(e.event_type.in_(["view", "wishlist"])).label("n_views"),
        count_if(e.event_type == "cart").label("n_carts"),
        count_if(e.event_type == "purchase").label("n_purchases"),
        count_if(e.event_type == "remove_from_cart").label("n_removes"),
    ]
    for d in cfg.recent_days:
        since = cutoff - dt.timedelta(days=d)
        columns.append(count_if(e.event_time >= since).label(f"events_{d}d"))
        columns.append(count_if(sa.and_(e.event_time >= since, e.event_type == "cart")).label(f"carts_{d}d"))
    return columns + [
        last_time("purchase").label("last_purchase"),
        last_time("cart").label("last_cart"),
        sa.func.count(sa.distinct(e.category)).label("distinct_categories"),
        sa.func.count(sa.distinct(e.item_id)).label("distinct_items"),
        sa.func.count(sa.distinct(sa.cast(e.event_time, sa.Date))).label("active_days"),
        sa.func.avg(e.price).label("mean_price"),
    ]


def _grouped_features(frame: pd.DataFrame, cutoff: dt.datetime, cfg: BaselineConfig) -> pd.DataFrame:
    """:func:`rfm_features`' frame from the grouped rows: times turned into days before ``cutoff``, money
    rounded, counts as floats."""
    def days_before_cutoff(column: str) -> np.ndarray:
        t = pd.to_datetime(frame[column]).to_numpy().astype("datetime64[us]")
        return (np.datetime64(cutoff, "us") - t) / np.timedelta64(86_400_000_000, "us")

    def numbers(name: str) -> np.ndarray:
        return pd.to_numeric(frame[name]).to_numpy(dtype=float)

    out = pd.DataFrame({"recency_days": days_before_cutoff("last_event"),
                        "tenure_days": days_before_cutoff("first_event")},
                       index=pd.Index(_str_array(frame["user_id"]), dtype=object, name="user_id"))
    for name in ("frequency", "monetary", "n_events", "n_views", "n_carts", "n_purchases", "n_removes"):
        out[name] = numbers(name)
    out["monetary"] = _money(out["monetary"])
    for d in cfg.recent_days:
        for name in (f"events_{d}d", f"carts_{d}d"):
            out[name] = numbers(name)
    out["days_since_last_purchase"] = np.nan_to_num(days_before_cutoff("last_purchase"), nan=cfg.never_days)
    out["days_since_last_cart"] = np.nan_to_num(days_before_cutoff("last_cart"), nan=cfg.never_days)
    for name in ("distinct_categories", "distinct_items", "active_days"):
        out[name] = numbers(name)
    out["mean_price"] = _money(np.nan_to_num(numbers("mean_price"), nan=0.0))
    return out


def rfm_features_from_store(engine, dataset_id: int, chunk, cutoff: dt.datetime, users: Sequence[str],
                            cfg: BaselineConfig | None = None) -> pd.DataFrame:
    """:func:`rfm_features` of ``users`` (in that order) at ``cutoff``, grouped in the database.

    ``chunk`` is the ``core.model.sequences.UserChunk`` that holds ``users``. One query over the
    chunk's events (a window function numbers the sessions without an id) returns one row per
    shopper instead of every event: scoring needs these features for every shopper, and reading
    each chunk's whole history into pandas for them cost a quarter of scoring (measured). The same
    numbers as :func:`rfm_features` on that history (tested on both stores).
    """
    cfg = cfg or BaselineConfig()
    cutoff = pd.Timestamp(cutoff).to_pydatetime()
    e, visits = _chunk_events(engine, dataset_id, chunk, cutoff)
    frame = sequences.read_frame(engine, sa.select(*_grouped_columns(e, visits, cutoff, cfg)).group_by(e.user_id))
    return _for_users(_grouped_features(frame, cutoff, cfg), users, cfg)


def _not_fitted(obj) -> NotFittedError:
    return NotFittedError(f"{type(obj).__name__} is not fitted yet: call fit(...) before asking it for forecasts.")


def _examples(examples: Iterable, target: str, cfg: BaselineConfig) -> tuple[pd.DataFrame, np.ndarray]:
    """Stack features and targets over training cutoffs.

    Each example is ``(history, targets)`` (the cutoff read from ``targets["cutoff"]``, as
    :func:`core.model.labels.make_targets` writes it) or ``(history, cutoff, targets)``.
    """
    xs, ys = [], []
    for i, ex in enumerate(examples):
        if len(ex) == 3:
            history, cutoff, targets = ex
        elif len(ex) == 2:
            history, targets = ex
            if "cutoff" not in targets.columns or targets.empty:
                raise SchemaError(
                    f"Example {i}: targets have no 'cutoff' column; pass (history, cutoff, targets) instead.",
                    column="cutoff", reason="missing_column",
                )
            cutoff = targets["cutoff"].iloc[0]
        else:
            raise ParameterError(f"Example {i} has {len(ex)} parts; expected (history, targets) or "
                                 "(history, cutoff, targets).", parameter="examples")
        if target not in targets.columns:
            raise SchemaError(f"Example {i}: column {target!r} not in the targets. Columns found: "
                              f"{list(targets.columns)}", column=target, reason="missing_column")
        xs.append(rfm_features(history, cutoff, users=targets["user_id"].astype(str).tolist(), cfg=cfg))
        ys.append(targets[target].to_numpy())
    if not xs:
        raise ParameterError("fit needs at least one training cutoff's (history, targets); got none.",
                             parameter="examples")
    return pd.concat(xs, ignore_index=True), np.concatenate(ys)


def _threads(cfg: BaselineConfig):
    import sklearn.ensemble  # noqa: F401 - loads the OpenMP runtime first: threadpoolctl limits only loaded libraries
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=cfg.n_threads, user_api="openmp")


def _hgb(cfg: BaselineConfig, n_examples: int = 0):
    from sklearn.ensemble import HistGradientBoostingClassifier

    leaf = cfg.min_samples_leaf
    if cfg.min_leaf_share is not None:
        leaf = max(leaf, int(cfg.min_leaf_share * n_examples))
    return HistGradientBoostingClassifier(
        max_iter=cfg.max_iter, learning_rate=cfg.learning_rate, max_leaf_nodes=cfg.max_leaf_nodes,
        min_samples_leaf=leaf, early_stopping=False, random_state=cfg.seed,
    )


class _RFMModel:
    """What the two gradient-boosting baselines share: their forecasts from :func:`rfm_features` of a history,
    or from those features already computed (scoring groups them in the database)."""

    config: BaselineConfig | None
    _constant: str  # the fitted forecast kept when there are no trees (attribute name without its "_")

    def __init__(self, config: BaselineConfig | None = None):
        self.config = config

    def predict_proba(self, history: pd.DataFrame, cutoff: dt.datetime, users: Sequence[str]) -> np.ndarray:
        """:meth:`predict_from_features` of ``users`` (in order) from the events before ``cutoff``."""
        self._inputs(None)
        cfg = self.config or BaselineConfig()
        return self.predict_from_features(rfm_features(history, cutoff, users=users, cfg=cfg))

    def predict_from_features(self, features: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def _inputs(self, features: pd.DataFrame | None) -> pd.DataFrame | None:
        """The fitted feature columns of ``features``; :class:`NotFittedError` before ``fit``."""
        if not hasattr(self, "features_"):
            raise _not_fitted(self)
        return None if features is None else features[self.features_]

    def to_dict(self) -> dict:
        """JSON-able state: settings, feature columns, the trees as :class:`TreeEnsemble` (no pickle), or
        ``None`` and the constant forecast."""
        self._inputs(None)
        model = self.model_
        if model is not None and not isinstance(model, TreeEnsemble):
            model = TreeEnsemble.from_sklearn(model)
        cfg = None if self.config is None else {**vars(self.config), "recent_days": list(self.config.recent_days)}
        return {"kind": type(self).__name__, "config": cfg, "features": list(self.features_),
                "trees": None if model is None else model.to_dict(),
                self._constant: getattr(self, f"{self._constant}_")}

    @classmethod
    def from_dict(cls, state: dict):
        """The baseline saved by :meth:`to_dict`; it forecasts as the fitted one did."""
        cfg = state["config"]
        obj = cls(None if cfg is None else BaselineConfig(**{**cfg, "recent_days": tuple(cfg["recent_days"])}))
        obj.features_ = list(state["features"])
        obj.model_ = None if state["trees"] is None else TreeEnsemble.from_dict(state["trees"])
        setattr(obj, f"{cls._constant}_", state[cls._constant])
        return obj


class RFMPropensity(_RFMModel):
    """Chance of a purchase within the horizon from :func:`rfm_features`, by gradient boosting.

    When every training example has the same label the forecast is that constant rate.
    """

    name = "gradient_boosting_rfm"
    _constant = "base_rate"

    def fit(self, examples: Iterable) -> RFMPropensity:
        """Train on ``[(history, targets), ...]`` of the training cutoffs (see ``make_targets``); returns self."""
        cfg = self.config or BaselineConfig()
        X, y = _examples(examples, "purchased", cfg)
        y = y.astype(int)
        self.features_ = list(X.columns)
        self.base_rate_ = float(y.mean())
        self.model_ = None
        if y.min() != y.max():
            with _threads(cfg):
                self.model_ = _hgb(cfg, len(y)).fit(X, y)
        return self

    def predict_from_features(self, features: pd.DataFrame) -> np.ndarray:
        """Purchase probability of each row of ``features`` (:func:`rfm_features`' columns, in any order)."""
        X = self._inputs(features)
        if self.model_ is None:
            return np.full(len(X), self.base_rate_)
        with _threads(self.config or BaselineConfig()):
            return self.model_.predict_proba(X)[:, 1]


class RFMNextType(_RFMModel):
    """The next-event-type distribution (classes of :data:`NEXT_EVENT_CLASSES`) by gradient boosting.

    Classes never seen in training get probability 0; with a single class seen the
    forecast is that class with probability 1.
    """

    name = "gradient_boosting_rfm"
    classes = NEXT_EVENT_CLASSES
    _constant = "only_class"

    def fit(self, examples: Iterable) -> RFMNextType:
        """Train on ``[(history, targets), ...]`` of the training cutoffs; returns self."""
        cfg = self.config or BaselineConfig()
        X, y = _examples(examples, "next_event_type", cfg)
        y = np.asarray([str(v) for v in y], dtype=object)
        unknown = sorted(set(y) - set(NEXT_EVENT_CLASSES))
        if unknown:
            raise SchemaError(f"next_event_type holds {unknown} not in {NEXT_EVENT_CLASSES}.",
                              column="next_event_type", cases=unknown, reason="bad_value")
        self.features_ = list(X.columns)
        seen = sorted(set(y), key=NEXT_EVENT_CLASSES.index)
        self.only_class_ = seen[0] if len(seen) == 1 else None
        self.model_ = None
        if self.only_class_ is None:
            with _threads(cfg):
                self.model_ = _hgb(cfg).fit(X, y)
        return self

    def predict_from_features(self, features: pd.DataFrame) -> np.ndarray:
        """Array (rows of ``features``, 5) of probabilities, columns in :data:`NEXT_EVENT_CLASSES` order."""
        X = self._inputs(features)
        out = np.zeros((len(X), len(NEXT_EVENT_CLASSES)))
        if self.model_ is None:
            out[:, NEXT_EVENT_CLASSES.index(self.only_class_)] = 1.0
            return out
        with _threads(self.config or BaselineConfig()):
            proba = self.model_.predict_proba(X)
        for j, c in enumerate(self.model_.classes_):
            out[:, NEXT_EVENT_CLASSES.index(c)] = proba[:, j]
        return out

