import datetime as dt

import pandas as pd
import pytest

from core.errors import ParameterError, SchemaError
from core.model import labels
from core.model.labels import CutoffPlan, load_window, make_targets, plan_cutoffs
from tests.conftest import make_dataset

T = dt.datetime(2024, 3, 10, 0, 0)
H = 2  # window [Mar 10 00:00, Mar 12 00:00)


def _e(user, t, etype, item=None, cat=None, price=None):
    return {"user_id": user, "event_time": t, "event_type": etype, "item_id": item, "category": cat, "price": price}


def d(day, hour=0, minute=0):
    return dt.datetime(2024, 3, day, hour, minute)


# Three shoppers, written so that each target rule has a case that would break it.
ROWS = [
    # u1: history, then view -> cart -> remove -> purchase in the window, a purchase exactly at T+H (outside)
    _e("u1", d(9, 10), "view", "i1", "A", 5.0),
    _e("u1", d(9, 12), "cart", "i1", "A", 5.0),
    _e("u1", d(10, 1), "view", "i2", "B", 7.0),
    _e("u1", d(10, 2), "cart", "i2", "B", 7.0),
    _e("u1", d(10, 3), "remove_from_cart", "i2", "B", 7.0),
    _e("u1", d(11, 0), "purchase", "i3", "C", 9.0),
    _e("u1", d(12, 0), "purchase", "i9", "Z", 1.0),
    # u2: first window event exactly at T with no category; remove beats view and wishlist; i4 repeated
    _e("u2", d(8, 9), "view", "i7", "A"),
    _e("u2", d(10, 0), "view", "i4", None),
    _e("u2", d(10, 5), "remove_from_cart", "i5", "D"),
    _e("u2", d(10, 6), "wishlist", "i6", "E"),
    _e("u2", d(10, 7), "view", "i4", None),
    # u3: bought one minute before T and carted exactly at T+H: nothing in the window
    _e("u3", d(9, 23, 59), "purchase", "i8", "F", 3.0),
    _e("u3", d(12, 0), "cart", "i8", "F", 3.0),
]


def frame(rows=ROWS):
    return pd.DataFrame(rows)


def test_make_targets_by_hand():
    out = make_targets(frame(), ["u3", "u1", "u2"], T, H)
    assert list(out["user_id"]) == ["u3", "u1", "u2"]
    assert list(out["purchased"]) == [0, 1, 0]
    assert list(out["next_event_type"]) == ["none", "purchase", "remove_from_cart"]
    assert list(out["next_category"]) == [None, "B", "D"]
    assert list(out["next_item"]) == [None, "i2", "i4"]
    assert list(out["window_items"]) == [[], ["i2", "i3"], ["i4", "i5", "i6"]]
    assert (out["cutoff"] == T).all()
    assert out["purchased"].dtype.kind == "i"


@pytest.mark.parametrize(
    "types, expected",
    [
        (["view", "cart"], "cart"),
        (["cart", "remove_from_cart"], "cart"),  # cart is further down the funnel than remove
        (["remove_from_cart", "view"], "remove_from_cart"),
        (["wishlist"], "view"),
        (["click", "zoom"], "view"),  # unknown types count as view
        (["purchase", "view"], "purchase"),
        ([], "none"),
    ],
)
def test_funnel_order(types, expected):
    rows = [_e("u", T + dt.timedelta(hours=i), t, "i", "c") for i, t in enumerate(types)]
    rows.append(_e("other", T, "purchase", "x", "y"))
    out = make_targets(pd.DataFrame(rows) if rows else frame([]), ["u"], T, H)
    assert out.loc[0, "next_event_type"] == expected
    assert out.loc[0, "purchased"] == (1 if expected == "purchase" else 0)


def test_same_time_events_keep_given_order():
    rows = [_e("u", T, "view", "b", "Y"), _e("u", T, "view", "a", "X")]
    out = make_targets(pd.DataFrame(rows), ["u"], T, H)
    assert out.loc[0, "next_item"] == "b" and out.loc[0, "next_category"] == "Y"
    assert out.loc[0, "window_items"] == ["b", "a"]


def test_empty_window_gives_none_for_everyone():
    out = make_targets(frame()[frame()["event_time"] < T], ["u1", "u2"], T, H)
    assert list(out["next_event_type"]) == ["none", "none"]
    assert list(out["purchased"]) == [0, 0]
    assert list(out["next_category"]) == [None, None]


def test_make_targets_missing_column():
    with pytest.raises(SchemaError, match=r"\['category'\] not in the window's events"):
        make_targets(frame().drop(columns=["category"]), ["u1"], T, H)


def test_load_window_and_no_leak(engine):
    did = make_dataset(engine, "labels", ROWS)
    history = load_window(engine, did, d(1), T)
    assert list(history.columns) == labels.CANONICAL_COLUMNS
    assert (history["event_time"] < T).all()
    # u3's purchase at 23:59 is input, not a target; sorted by user then time
    assert list(zip(history["user_id"], history["event_type"])) == [
        ("u1", "view"), ("u1", "cart"), ("u2", "view"), ("u3", "purchase"),
    ]
    window = load_window(engine, did, T, T + dt.timedelta(days=H))
    assert len(window) == 8  # the two events at exactly T+H are excluded, u2's event at T is in
    assert window["event_time"].min() == T and window["event_time"].max() < T + dt.timedelta(days=H)
    out = make_targets(window, sorted(history["user_id"].unique()), T, H)
    assert list(out["purchased"]) == [1, 0, 0]
    assert list(out["next_event_type"]) == ["purchase", "remove_from_cart", "none"]
    only_u2 = load_window(engine, did, T, T + dt.timedelta(days=H), users=["u2", "nobody"])
    assert set(only_u2["user_id"]) == {"u2"} and len(only_u2) == 4
    empty = load_window(engine, did, d(20), d(21))
    assert empty.empty and list(empty.columns) == labels.CANONICAL_COLUMNS


def test_plan_cutoffs_arithmetic():
    first, last = dt.datetime(2024, 1, 1), dt.datetime(2024, 2, 1, 10, 30)
    plan = plan_cutoffs(first, last, 7)
    assert plan.test_cutoff == dt.datetime(2024, 1, 25, 10)  # last - 7 days, rounded down to the hour
    assert plan.valid_cutoff == dt.datetime(2024, 1, 18, 10)
    # from valid - 7 days back by 3.5 days while one day of history remains: Dec 31 22:00 does not fit
    assert plan.train_cutoffs == [dt.datetime(2024, 1, 4, 10), dt.datetime(2024, 1, 7, 22), dt.datetime(2024, 1, 11, 10)]
    assert all(t + plan.horizon <= plan.valid_cutoff for t in plan.train_cutoffs)
    assert not plan.valid_shared and "Only 3 of the 4" in plan.notes[0]
    text = plan.describe()
    assert "2024-01-25 10:00" in text and "Training cutoffs (3)" in text
    assert CutoffPlan.from_dict(plan.to_dict()) == plan


def test_plan_cutoffs_stride_and_count():
    first, last = dt.datetime(2024, 1, 1), dt.datetime(2024, 3, 1)
    plan = plan_cutoffs(first, last, 1, n_train_cutoffs=2, stride_days=10)
    assert plan.test_cutoff == dt.datetime(2024, 2, 29)
    assert plan.valid_cutoff == dt.datetime(2024, 2, 28)
    assert plan.train_cutoffs == [dt.datetime(2024, 2, 17), dt.datetime(2024, 2, 27)]
    assert plan.notes == []
    # the default stride for a 1-day horizon is max(1, 0.5) = 1 day
    assert plan_cutoffs(first, last, 1, n_train_cutoffs=3).train_cutoffs == [
        dt.datetime(2024, 2, 25), dt.datetime(2024, 2, 26), dt.datetime(2024, 2, 27)]


def test_plan_cutoffs_short_history_shares_validation():
    plan = plan_cutoffs(dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 17), 7)
    assert plan.test_cutoff == dt.datetime(2024, 1, 10) and plan.valid_cutoff == dt.datetime(2024, 1, 3)
    assert plan.train_cutoffs == [plan.valid_cutoff] and plan.valid_shared
    assert "too short for a training window" in plan.notes[0]


def test_plan_cutoffs_too_short_data():
    with pytest.raises(SchemaError) as info:
        plan_cutoffs(dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 10), 7)
    msg = str(info.value)
    assert "spans 9.0 days" in msg and "needs at least 15 days" in msg and "at most 4 days" in msg
    assert info.value.column == "event_time"
    # exactly 2H + 1 day is enough
    assert plan_cutoffs(dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 10), 4).test_cutoff == dt.datetime(2024, 1, 6)
    with pytest.raises(SchemaError, match="even a 1-day horizon needs 3 days"):
        plan_cutoffs(dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 2, 12), 1)


@pytest.mark.parametrize("bad", [0, 61, 2.5, True])
def test_plan_cutoffs_bad_horizon(bad):
    with pytest.raises(ParameterError, match=f"horizon_days must be .* got {bad!r}"):
        plan_cutoffs(dt.datetime(2024, 1, 1), dt.datetime(2024, 6, 1), bad)


@pytest.mark.parametrize("kwargs, param", [({"n_train_cutoffs": 0}, "n_train_cutoffs"), ({"stride_days": 0}, "stride_days")])
def test_plan_cutoffs_bad_params(kwargs, param):
    with pytest.raises(ParameterError, match=param):
        plan_cutoffs(dt.datetime(2024, 1, 1), dt.datetime(2024, 6, 1), 7, **kwargs)
