"""Simple forecasts the sequence model is measured against, on exactly the same cutoffs.

Every baseline learns from ``history``: canonical events (``user_id``, ``event_time``,
``event_type``, ``item_id``, ``category``, ``price``, ``quantity``, ``session_id``) with
``event_time`` before the cutoff. Rankers return, for each shopper asked about, a list
of at most ``k`` category or item ids, best first:

- :class:`MostPopular`: the most frequent categories/items (optionally of the last days);
- :class:`OwnMostFrequent`: the shopper's own categories/items by count (ties: most recent);
- :class:`MarkovChain`: first-order transitions from the shopper's last category/item.

Rankers fill lists shorter than ``k`` with the popular order. :class:`RFMPropensity` and
:class:`RFMNextType` are scikit-learn gradient boosting on :func:`rfm_features`, trained on
the stacked training cutoffs; they and their features live in :mod:`core.model.rfm_baseline`.
Use before ``fit`` raises :class:`NotFittedError`.

A model version keeps the baselines it scores with (``to_dict``/``from_dict``: plain JSON, no
pickle), so re-scoring needs no refit: the gradient boosting as its trees
(:class:`TreeEnsemble`), a ranker as its popular lists and transitions cut to the ``k`` it is
asked for; a shopper's own state (own lists, last category/item) comes from their history when
they are scored.
"""
from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd

from core.errors import ParameterError, SchemaError
from core.model.rfm_baseline import RFMNextType, RFMPropensity, _check_history, _not_fitted


#: Name of each baseline in the model card's metrics, and the words the page shows for it.
BASELINE_LABELS = {
    "most_popular": "Most popular",
    "own_most_frequent": "Shopper's own most frequent",
    "markov_chain": "Markov chain (last category → next)",
    "gradient_boosting_rfm": "Gradient boosting on recency/frequency/monetary",
}


def _sorted(history: pd.DataFrame) -> pd.DataFrame:
    h = history.assign(user_id=history["user_id"].astype(str), _pos=np.arange(len(history)))
    return h.sort_values(["user_id", "event_time", "_pos"], kind="stable")


def last_known(users, values) -> dict[str, str]:
    """Each shopper's last non-missing value (as text), from rows grouped by shopper in time order.

    A shopper's rows must be together (``_sorted`` order, or the order ``core.model.sequences.load_events``
    reads a chunk in); the last row of each run wins. Numpy over the run ends: a third of the
    time of a pandas group-by, which scoring paid for every chunk (measured).
    """
    users = np.asarray(users, dtype=object)
    values = np.asarray(values, dtype=object)
    known = pd.notna(values)
    u, v = users[known], values[known]
    if not len(u):
        return {}
    ends = np.flatnonzero(np.append(u[1:] != u[:-1], True))
    return dict(zip(u[ends].tolist(), [str(x) for x in v[ends].tolist()]))


def _group_lists(keys: pd.Series, values: pd.Series) -> dict[str, list[str]]:
    """{key: [values in row order]} (much faster than groupby(...).agg(list) for many small groups)."""
    out: dict[str, list[str]] = {}
    for k, v in zip(keys.tolist(), values.tolist()):
        out.setdefault(k, []).append(v)
    return out


def _popular_order(h: pd.DataFrame, column: str) -> list[str]:
    """Ids by event count, ties by the more recent last event, then by id."""
    s = h[h[column].notna()]
    if s.empty:
        return []
    stats = s.assign(_id=s[column].astype(str)).groupby("_id").agg(n=("event_time", "size"), last=("event_time", "max"))
    stats = stats.reset_index().sort_values(["n", "last", "_id"], ascending=[False, False, True], kind="stable")
    return stats["_id"].tolist()


def _fill(first: Sequence[str], popular: Sequence[str], k: int) -> list[str]:
    out, seen = [], set()
    for x in itertools.chain(first, popular):  # no copy of the popular list: it can be the whole catalogue
        if x not in seen:
            out.append(x)
            seen.add(x)
            if len(out) == k:
                break
    return out


def _check_k(k: int, max_k: int | None = None) -> None:
    if int(k) != k or k < 1:
        raise ParameterError(f"k must be a whole number >= 1; got {k!r}.", parameter="k")
    if max_k is not None and k > max_k:
        raise ParameterError(f"k={k} is more than this saved ranker keeps (k <= {max_k}); refit it for longer lists.",
                             parameter="k")


def _ranker_state(obj, **lists) -> dict:
    """The saved form of a ranker (see :meth:`MostPopular.to_dict`)."""
    return {"kind": type(obj).__name__, **lists}


class _Ranker:
    """What the rankers share: use before ``fit`` raises :class:`NotFittedError`, and a list length ``k`` is
    checked against what a saved ranker keeps."""

    _fitted = "categories_"  # an attribute that fit sets

    def _check(self, k: int | None = None) -> None:
        if not hasattr(self, self._fitted):
            raise _not_fitted(self)
        if k is not None:
            _check_k(k, self._max_k())

    def _max_k(self) -> int | None:
        return self.popular_.max_k_


class MostPopular(_Ranker):
    """The same list for everyone: the categories/items with the most events.

    ``window_days``: count only events in the last ``window_days`` before the cutoff (or
    before the history's last event when ``fit`` gets no cutoff); None counts all history.
    """

    name = "most_popular"

    def __init__(self, window_days: float | None = None):
        self.window_days = window_days

    def _max_k(self) -> int | None:
        return self.max_k_

    def fit(self, history: pd.DataFrame, cutoff: dt.datetime | None = None) -> MostPopular:
        """Count events per category and item; returns self."""
        _check_history(history, ["user_id", "event_time", "item_id", "category"], type(self).__name__)
        h = history
        if self.window_days is not None and len(h):
            end = pd.Timestamp(cutoff) if cutoff is not None else h["event_time"].max() + pd.Timedelta(microseconds=1)
            h = h[(h["event_time"] >= end - pd.Timedelta(days=self.window_days)) & (h["event_time"] < end)]
        self.categories_ = _popular_order(h, "category")
        self.items_ = _popular_order(h, "item_id")
        self.max_k_ = None
        return self

    def rank_categories(self, users: Sequence[str], k: int) -> list[list[str]]:
        """The top ``k`` categories, the same list for each of ``users``."""
        self._check(k)
        return [list(self.categories_[:k]) for _ in users]

    def rank_items(self, users: Sequence[str], k: int) -> list[list[str]]:
        """The top ``k`` items, the same list for each of ``users``."""
        self._check(k)
        return [list(self.items_[:k]) for _ in users]

    def to_dict(self, k: int) -> dict:
        """JSON-able state that ranks exactly as now for any ``k`` up to the given one.

        The lists keep ``2 k`` ids: a ranker that fills a shopper's own ``k`` with the popular
        order skips at most ``k`` of them.
        """
        self._check()
        _check_k(k)
        return _ranker_state(self, window_days=self.window_days, categories=self.categories_[:2 * k],
                             items=self.items_[:2 * k], max_k=int(k))

    @classmethod
    def from_dict(cls, state: dict) -> MostPopular:
        """The ranker saved by :meth:`to_dict` (ranks up to its ``k``)."""
        obj = cls(state["window_days"])
        obj.categories_, obj.items_, obj.max_k_ = list(state["categories"]), list(state["items"]), state["max_k"]
        return obj


class OwnMostFrequent(_Ranker):
    """Each shopper's own categories/items by event count, ties to the most recent; popular fill.

    ``popular_window_days`` is passed to the :class:`MostPopular` used for the fill.
    """

    name = "own_most_frequent"

    def __init__(self, popular_window_days: float | None = None):
        self.popular_window_days = popular_window_days

    @staticmethod
    def _own(h: pd.DataFrame, column: str) -> dict[str, list[str]]:
        s = h[h[column].notna()]
        if s.empty:
            return {}
        s = s.assign(_id=s[column].astype(str))
        stats = s.groupby(["user_id", "_id"]).agg(n=("event_time", "size"), last=("_pos", "max")).reset_index()
        stats = stats.sort_values(["user_id", "n", "last"], ascending=[True, False, False], kind="stable")
        return _group_lists(stats["user_id"], stats["_id"])

    def fit(self, history: pd.DataFrame, cutoff: dt.datetime | None = None) -> OwnMostFrequent:
        """Count each shopper's events per category and item; returns self."""
        _check_history(history, ["user_id", "event_time", "item_id", "category"], type(self).__name__)
        h = _sorted(history)
        h = h.assign(_pos=np.arange(len(h)))  # position in time order breaks count ties: later wins
        self.popular_ = MostPopular(self.popular_window_days).fit(history, cutoff)
        self.categories_ = self._own(h, "category")
        self.items_ = self._own(h, "item_id")
        return self

    def rank_categories(self, users: Sequence[str], k: int) -> list[list[str]]:
        """Each shopper's own top categories, then the popular ones, ``k`` in all."""
        self._check(k)
        return [_fill(self.categories_.get(str(u), []), self.popular_.categories_, k) for u in users]

    def rank_items(self, users: Sequence[str], k: int) -> list[list[str]]:
        """Each shopper's own top items, then the popular ones, ``k`` in all."""
        self._check(k)
        return [_fill(self.items_.get(str(u), []), self.popular_.items_, k) for u in users]

    def to_dict(self, k: int) -> dict:
        """JSON-able popular fill (see :meth:`MostPopular.to_dict`); the shoppers' own lists are not kept."""
        self._check()
        return _ranker_state(self, popular_window_days=self.popular_window_days, popular=self.popular_.to_dict(k))

    @classmethod
    def from_dict(cls, state: dict) -> OwnMostFrequent:
        """The ranker saved by :meth:`to_dict`: every shopper gets the popular list until their own
        lists are added (``categories_``/``items_``, from their history)."""
        obj = cls(state["popular_window_days"])
        obj.popular_ = MostPopular.from_dict(state["popular"])
        obj.categories_, obj.items_ = {}, {}
        return obj


class MarkovChain(_Ranker):
    """First-order transitions between the categories (items) of a shopper's consecutive events.

    Events without a category (item) are skipped. From the shopper's last category (item)
    the next ones are ranked by transition count (ties by popularity), then the popular
    fill; shoppers unseen in ``fit`` get the popular list.
    """

    name = "markov_chain"
    _fitted = "category_transitions_"

    def __init__(self, popular_window_days: float | None = None):
        self.popular_window_days = popular_window_days

    @staticmethod
    def _chain(h: pd.DataFrame, column: str, popular: list[str]) -> tuple[dict[str, list[str]], dict[str, str]]:
        s = h[h[column].notna()]
        if s.empty:
            return {}, {}
        ids = s[column].astype(str)
        users = s["user_id"]
        prev = ids.shift()
        same_user = users.eq(users.shift())
        pairs = pd.DataFrame({"prev": prev[same_user], "next": ids[same_user]})
        pop_rank = {x: i for i, x in enumerate(popular)}
        trans: dict[str, list[str]] = {}
        if not pairs.empty:
            counts = pairs.groupby(["prev", "next"]).size().reset_index(name="n")
            counts["pop"] = counts["next"].map(pop_rank).fillna(len(pop_rank))
            counts = counts.sort_values(["prev", "n", "pop", "next"], ascending=[True, False, True, True], kind="stable")
            trans = _group_lists(counts["prev"], counts["next"])
        return trans, last_known(users, ids)

    def fit(self, history: pd.DataFrame, cutoff: dt.datetime | None = None) -> MarkovChain:
        """Count transitions over every shopper's time-ordered events; returns self."""
        _check_history(history, ["user_id", "event_time", "item_id", "category"], type(self).__name__)
        h = _sorted(history)
        self.popular_ = MostPopular(self.popular_window_days).fit(history, cutoff)
        self.category_transitions_, self.last_category_ = self._chain(h, "category", self.popular_.categories_)
        self.item_transitions_, self.last_item_ = self._chain(h, "item_id", self.popular_.items_)
        return self

    @staticmethod
    def _rank(users, k, last, trans, popular) -> list[list[str]]:
        out = []
        for u in users:
            prev = last.get(str(u))
            out.append(_fill(trans.get(prev, []) if prev is not None else [], popular, k))
        return out

    def rank_categories(self, users: Sequence[str], k: int) -> list[list[str]]:
        """Categories most often following each shopper's last category, then popular, ``k`` in all."""
        self._check(k)
        return self._rank(users, k, self.last_category_, self.category_transitions_, self.popular_.categories_)

    def rank_items(self, users: Sequence[str], k: int) -> list[list[str]]:
        """Items most often following each shopper's last item, then popular, ``k`` in all."""
        self._check(k)
        return self._rank(users, k, self.last_item_, self.item_transitions_, self.popular_.items_)

    def to_dict(self, k: int) -> dict:
        """JSON-able popular fill and transitions (the first ``k`` successors of each); the shoppers'
        last category and item are not kept."""
        self._check()
        return _ranker_state(
            self, popular_window_days=self.popular_window_days, popular=self.popular_.to_dict(k),
            category_transitions={p: n[:k] for p, n in self.category_transitions_.items()},
            item_transitions={p: n[:k] for p, n in self.item_transitions_.items()})

    @classmethod
    def from_dict(cls, state: dict) -> MarkovChain:
        """The ranker saved by :meth:`to_dict`: every shopper gets the popular list until their last
        category and item are added (``last_category_``/``last_item_``, from their history)."""
        obj = cls(state["popular_window_days"])
        obj.popular_ = MostPopular.from_dict(state["popular"])
        obj.category_transitions_, obj.item_transitions_ = state["category_transitions"], state["item_transitions"]
        obj.last_category_, obj.last_item_ = {}, {}
        return obj


def baseline_from_dict(state: dict):
    """A baseline (ranker or gradient boosting) saved by its ``to_dict``; :class:`SchemaError` for an unknown kind."""
    kinds = {c.__name__: c for c in (MostPopular, OwnMostFrequent, MarkovChain, RFMPropensity, RFMNextType)}
    if state.get("kind") not in kinds:
        raise SchemaError(f"Saved baseline kind {state.get('kind')!r} is not one of {sorted(kinds)}.", column="kind",
                          reason="bad_value")
    return kinds[state["kind"]].from_dict(state)
