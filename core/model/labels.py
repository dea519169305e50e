"""Labels by time: where the cutoffs fall, and what each shopper did in the horizon after one.

Let cutoff ``T`` and horizon ``H`` days. A model or baseline sees only events with
``event_time < T``; its targets come from the events in ``[T, T + H)``:

- ``purchased``: 1 when the shopper has any ``purchase`` event in the window, else 0;
- ``next_event_type``: the furthest funnel step reached in the window, in the order
  none < view < remove_from_cart < cart < purchase (wishlist and unknown types count as view);
- ``next_category``: category of the first event in the window whose category is not null;
- ``next_item``: item of the first event in the window whose item is not null;
- ``window_items``: the distinct items of the window in order of first appearance.

Examples exist for every shopper with at least one event before ``T``. The last horizon
of the data is held out (``test_cutoff``), the horizon before it validates (early stopping,
calibration), and the training cutoffs lie before that, so no training label falls in
the validation or test window.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd
import sqlalchemy as sa

from core import config, store
from core.errors import ParameterError, SchemaError

#: Classes of the next-event-type head, in this order everywhere (columns p_view … p_none).
NEXT_EVENT_CLASSES = ["view", "cart", "purchase", "remove_from_cart", "none"]
#: Output column of each class, same order as :data:`NEXT_EVENT_CLASSES`.
NEXT_EVENT_COLUMNS = ["p_view", "p_cart", "p_purchase", "p_remove", "p_none"]
#: Funnel rank: the window's label is the type with the highest rank reached.
FUNNEL_RANK = {"none": 0, "view": 1, "remove_from_cart": 2, "cart": 3, "purchase": 4}
#: Canonical event columns returned by :func:`load_window`.
CANONICAL_COLUMNS = [
    "user_id", "event_time", "event_type", "item_id", "category", "brand", "price", "quantity", "session_id",
]
TARGET_COLUMNS = ["user_id", "purchased", "next_event_type", "next_category", "next_item", "window_items", "cutoff"]

_HOUR = dt.timedelta(hours=1)
_USERS_PER_QUERY = 5000


def funnel_label(event_type: str | None) -> str:
    """The funnel class an event type counts as: purchase, cart, remove_from_cart, else view."""
    return event_type if event_type in ("purchase", "cart", "remove_from_cart") else "view"


def _floor_hour(t: dt.datetime) -> dt.datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def _fmt(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M")


@dataclass
class CutoffPlan:
    """Where the training, validation and held-out test cutoffs fall.

    ``train_cutoffs`` are oldest first and every training label window ends at or before
    ``valid_cutoff``, except when the history is too short for that: then
    ``train_cutoffs == [valid_cutoff]`` and ``valid_shared`` is True (the caller should
    split the validation shoppers for early stopping and calibration). The test window
    ``[test_cutoff, test_cutoff + H)`` is the last horizon of the data and is never trained on.
    """

    train_cutoffs: list[dt.datetime]
    valid_cutoff: dt.datetime
    test_cutoff: dt.datetime
    horizon_days: int
    first_event: dt.datetime | None = None
    last_event: dt.datetime | None = None
    valid_shared: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def horizon(self) -> dt.timedelta:
        """The horizon as a timedelta."""
        return dt.timedelta(days=self.horizon_days)

    def describe(self) -> str:
        """The plan in plain words, for the model card."""
        h = self.horizon_days
        lines = []
        if self.first_event is not None and self.last_event is not None:
            lines.append(f"Data window: {_fmt(self.first_event)} to {_fmt(self.last_event)}.")
        lines.append(
            f"Inputs are the events before a cutoff; targets are what the shopper does in the {h} "
            f"day{'s' if h != 1 else ''} from the cutoff."
        )
        train = ", ".join(_fmt(t) for t in self.train_cutoffs)
        lines.append(f"Training cutoffs ({len(self.train_cutoffs)}): {train}.")
        lines.append(
            f"Validation cutoff: {_fmt(self.valid_cutoff)} (targets to {_fmt(self.valid_cutoff + self.horizon)}; "
            "early stopping and calibration)."
        )
        lines.append(
            f"Held-out test cutoff: {_fmt(self.test_cutoff)} (targets to {_fmt(self.test_cutoff + self.horizon)}; "
            "never trained on; every metric is measured here)."
        )
        lines.extend(self.notes)
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready dict with the cutoffs as ISO strings."""
        iso = lambda t: t.isoformat() if t is not None else None  # noqa: E731
        return {
            "train_cutoffs": [iso(t) for t in self.train_cutoffs],
            "valid_cutoff": iso(self.valid_cutoff),
            "test_cutoff": iso(self.test_cutoff),
            "horizon_days": self.horizon_days,
            "first_event": iso(self.first_event),
            "last_event": iso(self.last_event),
            "valid_shared": self.valid_shared,
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: dict) -> CutoffPlan:
        """Inverse of :meth:`to_dict`."""
        parse = lambda s: dt.datetime.fromisoformat(s) if s else None  # noqa: E731
        return cls(
            train_cutoffs=[parse(s) for s in data["train_cutoffs"]],
            valid_cutoff=parse(data["valid_cutoff"]),
            test_cutoff=parse(data["test_cutoff"]),
            horizon_days=int(data["horizon_days"]),
            first_event=parse(data.get("first_event")),
            last_event=parse(data.get("last_event")),
            valid_shared=bool(data.get("valid_shared", False)),
            notes=list(data.get("notes", [])),
        )


def check_horizon(horizon_days: int) -> int:
    """Return ``horizon_days`` as an int; raise :class:`SchemaError` when outside the allowed range."""
    if isinstance(horizon_days, bool) or int(horizon_days) != horizon_days or not (
        config.MIN_HORIZON_DAYS <= horizon_days <= config.MAX_HORIZON_DAYS
    ):
        raise ParameterError(
            f"horizon_days must be a whole number of days from {config.MIN_HORIZON_DAYS} to "
            f"{config.MAX_HORIZON_DAYS}; got {horizon_days!r}.",
            parameter="horizon_days",
        )
    return int(horizon_days)


def _check_plan_options(n_train_cutoffs: int, stride_days: float | None) -> None:
    """Raise :class:`ParameterError` for a count of training cutoffs or a stride out of range."""
    if int(n_train_cutoffs) != n_train_cutoffs or n_train_cutoffs < 1:
        raise ParameterError(f"n_train_cutoffs must be a whole number >= 1; got {n_train_cutoffs!r}.",
                             parameter="n_train_cutoffs")
    if stride_days is not None and not stride_days > 0:
        raise ParameterError(f"stride_days must be > 0 days; got {stride_days!r}.", parameter="stride_days")


def _check_span(first_event: dt.datetime | None, last_event: dt.datetime | None, h_days: int) -> None:
    """Raise :class:`SchemaError` when there are no events, or they span too few days for a test horizon, a
    validation horizon and the least history; the message names the longest horizon that would fit."""
    if first_event is None or last_event is None:
        raise SchemaError("The dataset has no events, so no cutoff can be placed.", column="event_time",
                          reason="no_data")
    min_history = dt.timedelta(days=config.MIN_HISTORY_DAYS)
    span = last_event - first_event
    needed = 2 * dt.timedelta(days=h_days) + min_history
    if span >= needed:
        return
    span_days = span.total_seconds() / 86400
    longest = int((span - min_history) / dt.timedelta(days=2)) if span > min_history else 0
    hint = (
        f"Choose a horizon of at most {longest} day{'s' if longest != 1 else ''}, or load a longer history."
        if longest >= config.MIN_HORIZON_DAYS
        else "Load a longer history: even a 1-day horizon needs 3 days of events."
    )
    raise SchemaError(
        f"The data spans {span_days:.1f} days ({_fmt(first_event)} to {_fmt(last_event)}); a {h_days}-day "
        f"horizon needs at least {needed.days} days (one horizon held out for the test, one for validation, "
        f"plus {config.MIN_HISTORY_DAYS} day of history). {hint}",
        column="event_time",
        cases=[first_event, last_event], reason="too_little_data",
    )


def _note_short_history(plan: CutoffPlan, n_found: int, n_train_cutoffs: int) -> None:
    """Make the validation cutoff the only training cutoff when none fits, and note fewer cutoffs than asked."""
    if not n_found:
        plan.train_cutoffs = [plan.valid_cutoff]
        plan.valid_shared = True
        plan.notes.append(
            f"The history is too short for a training window before the validation window "
            f"({3 * plan.horizon_days + config.MIN_HISTORY_DAYS} days would be needed), so the model trains on the "
            "validation cutoff's shoppers, split between fitting and early stopping; the test window stays held out."
        )
    elif n_found < n_train_cutoffs:
        plan.notes.append(
            f"Only {n_found} of the {n_train_cutoffs} training cutoffs asked for fit in the history."
        )


def plan_cutoffs(
    first_event: dt.datetime,
    last_event: dt.datetime,
    horizon_days: int,
    n_train_cutoffs: int = config.DEFAULT_N_TRAIN_CUTOFFS,
    stride_days: float | None = None,
) -> CutoffPlan:
    """Place the held-out test cutoff, the validation cutoff and up to ``n_train_cutoffs`` training cutoffs.

    ``test_cutoff`` = ``last_event - H`` rounded down to a whole hour; ``valid_cutoff`` =
    ``test_cutoff - H``; training cutoffs step back from ``valid_cutoff - H`` by
    ``stride_days`` (default ``max(1, H / 2)``) while at least ``config.MIN_HISTORY_DAYS``
    of history lies before them. When none fits, the validation cutoff doubles as the only
    training cutoff (``valid_shared``, with a note).

    Raises :class:`SchemaError` when the data spans less than ``2 * H + 1`` days (the
    message gives the span found, the span needed and the longest horizon that would
    fit); :class:`ParameterError` when ``horizon_days``, ``n_train_cutoffs`` or ``stride_days``
    is out of range.
    """
    h_days = check_horizon(horizon_days)
    _check_plan_options(n_train_cutoffs, stride_days)
    _check_span(first_event, last_event, h_days)
    horizon = dt.timedelta(days=h_days)
    min_history = dt.timedelta(days=config.MIN_HISTORY_DAYS)
    test_cutoff = _floor_hour(last_event - horizon)
    valid_cutoff = test_cutoff - horizon
    stride = dt.timedelta(days=stride_days if stride_days is not None else max(1.0, h_days / 2))
    train: list[dt.datetime] = []
    cutoff = valid_cutoff - horizon
    while len(train) < n_train_cutoffs and cutoff - first_event >= min_history:
        train.append(_floor_hour(cutoff))
        cutoff -= stride
    plan = CutoffPlan(
        train_cutoffs=sorted(train), valid_cutoff=valid_cutoff, test_cutoff=test_cutoff,
        horizon_days=h_days, first_event=first_event, last_event=last_event,
    )
    _note_short_history(plan, len(train), n_train_cutoffs)
    return plan


def make_targets(
    window_events: pd.DataFrame, users: Sequence[str], cutoff: dt.datetime, horizon_days: int
) -> pd.DataFrame:
    """The targets of each shopper in ``users`` for the window ``[cutoff, cutoff + horizon_days)``.

    ``window_events`` has canonical columns (at least ``user_id``, ``event_time``,
    ``event_type``, ``item_id``, ``category``); rows outside the window and of other users
    are ignored; rows with the same time keep their given order. Returns one row per user,
    in the order of ``users``, with the columns ``user_id``, ``purchased`` (int 0/1),
    ``next_event_type`` (one of :data:`NEXT_EVENT_CLASSES`), ``next_category`` (str or
    None), ``next_item`` (str or None), ``window_items`` (list of str) and ``cutoff``.
    Raises :class:`SchemaError` when a needed column is missing.
    """
    needed = ["user_id", "event_time", "event_type", "item_id", "category"]
    missing = [c for c in needed if c not in window_events.columns]
    if missing:
        raise SchemaError(
            f"make_targets: column(s) {missing} not in the window's events. Columns found: {list(window_events.columns)}",
            column=missing[0], reason="missing_column",
        )
    users = [str(u) for u in users]
    end = cutoff + dt.timedelta(days=horizon_days)
    ev = window_events.loc[:, needed]
    ev = ev[(ev["event_time"] >= cutoff) & (ev["event_time"] < end)]
    ev = ev.assign(user_id=ev["user_id"].astype(str), _pos=range(len(ev)))
    ev = ev[ev["user_id"].isin(set(users))].sort_values(["user_id", "event_time", "_pos"], kind="stable")

    out = pd.DataFrame({"user_id": users})
    if ev.empty:
        out["purchased"] = 0
        out["next_event_type"] = "none"
        out["next_category"] = None
        out["next_item"] = None
        out["window_items"] = [[] for _ in users]
        out["cutoff"] = cutoff
        return out.astype({"next_category": object, "next_item": object})

    # purchase, cart and remove_from_cart keep their rank; every other type (wishlist, unknown) counts as view
    rank = ev["event_type"].map({t: FUNNEL_RANK[t] for t in ("purchase", "cart", "remove_from_cart")})
    rank = rank.fillna(FUNNEL_RANK["view"]).astype(int)
    by_user = ev.assign(_rank=rank.to_numpy()).groupby("user_id", sort=False)
    top_rank = by_user["_rank"].max()
    rank_to_class = {r: c for c, r in FUNNEL_RANK.items()}

    cat = ev[ev["category"].notna()].groupby("user_id", sort=False)["category"].first()
    items = ev[ev["item_id"].notna()]
    first_item = items.groupby("user_id", sort=False)["item_id"].first()
    distinct = items.drop_duplicates(["user_id", "item_id"])

    out["purchased"] = out["user_id"].map(top_rank).eq(FUNNEL_RANK["purchase"]).astype(int)
    out["next_event_type"] = out["user_id"].map(top_rank).fillna(0).astype(int).map(rank_to_class)
    out["next_category"] = _objects(out["user_id"].map(cat))
    out["next_item"] = _objects(out["user_id"].map(first_item))
    wi: dict[str, list[str]] = {}
    for user, item in zip(distinct["user_id"].tolist(), distinct["item_id"].astype(str).tolist()):
        wi.setdefault(user, []).append(item)
    out["window_items"] = [wi.get(u, []) for u in users]
    out["cutoff"] = cutoff
    return out


def _objects(s: pd.Series) -> pd.Series:
    """Strings as Python str, missing as None (not NaN), object dtype."""
    return pd.Series([str(v) if pd.notna(v) else None for v in s], index=s.index, dtype=object)


def load_window(
    engine: sa.Engine, dataset_id: int, start: dt.datetime, end: dt.datetime, users: Sequence[str] | None = None
) -> pd.DataFrame:
    """The dataset's events with ``start <= event_time < end`` (optionally only ``users``).

    Returns the canonical columns (:data:`CANONICAL_COLUMNS`) sorted by ``user_id``,
    ``event_time``; an empty frame with those columns when nothing matches. Queries use
    SQLAlchemy Core with bound parameters; a long ``users`` list is queried in chunks.
    """
    ev = store.events
    cols = [ev.c[c] for c in CANONICAL_COLUMNS]
    base = sa.select(*cols).where(ev.c.dataset_id == dataset_id, ev.c.event_time >= start, ev.c.event_time < end)
    if users is None:
        queries = [base]
    else:
        ids = [str(u) for u in users]
        queries = [base.where(ev.c.user_id.in_(ids[i : i + _USERS_PER_QUERY]))
                   for i in range(0, len(ids), _USERS_PER_QUERY)]
    frames = []
    with engine.connect() as conn:
        for q in queries:
            rows = conn.execute(q).all()
            if rows:
                frames.append(pd.DataFrame(rows, columns=CANONICAL_COLUMNS))
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype="datetime64[us]" if c == "event_time" else object)
                             for c in CANONICAL_COLUMNS})
    out = pd.concat(frames, ignore_index=True)
    out["event_time"] = pd.to_datetime(out["event_time"])
    return out.sort_values(["user_id", "event_time"], kind="stable").reset_index(drop=True)
