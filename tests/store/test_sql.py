"""The shared SQL pieces (core.store.sql) on both stores, against hand-counted tiny datasets."""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from core import store
from core.store import sql
from tests.conftest import make_dataset

T0 = dt.datetime(2024, 3, 1, 10, 0)
_e = store.events.c


def _event(user: str, kind: str, minute: int, price=None, quantity=None) -> dict:
    return {"user_id": user, "event_time": T0 + dt.timedelta(minutes=minute), "event_type": kind, "item_id": "i1",
            "price": price, "quantity": quantity, "session_id": f"{user}-s"}


ROWS = [
    _event("a", "view", 0, price=5.0),
    _event("a", "purchase", 1, price=10.0),  # NULL quantity: one unit, 10
    _event("a", "purchase", 2, price=4.0, quantity=3),  # 12
    _event("b", "purchase", 3, price=4.0, quantity=-2),  # a cancellation: -8, no purchase
    _event("b", "purchase", 4, price=None, quantity=1),  # a purchase without an amount
    _event("b", "cart", 5, price=7.0, quantity=2),  # not a purchase: no amount
    _event("c", "purchase", 6, price=2.5, quantity=0),  # quantity 0 is a purchase (not negative) of amount 0
]


def test_purchase_cancellation_and_amount_count_as_defined(engine):
    did = make_dataset(engine, "sqlideas", ROWS)
    query = sa.select(
        sa.func.sum(sql.flag(sql.is_purchase())), sa.func.sum(sql.flag(sql.is_cancellation())),
        sa.func.sum(sql.amount()), sa.func.count(sql.amount()),
    ).where(_e.dataset_id == did)
    purchases, cancellations, revenue, n_amounts = sql.fetch(engine, query)[0]
    assert (int(purchases), int(cancellations)) == (4, 1)
    assert float(revenue) == 10.0 + 12.0 - 8.0 + 0.0
    assert n_amounts == 4  # the three priced purchases and the cancellation; NULL for the unpriced one


def test_fetch_and_frame_run_on_an_engine_or_an_open_connection(engine):
    did = make_dataset(engine, "sqlideas", ROWS)
    query = sa.select(_e.user_id, sa.func.count().label("n")).where(_e.dataset_id == did) \
        .group_by(_e.user_id).order_by(_e.user_id)
    with engine.connect() as conn:
        assert [tuple(r) for r in sql.fetch(conn, query)] == [("a", 3), ("b", 3), ("c", 1)]
        assert not conn.closed  # a connection passed in is left open for the caller
        with sql.connect(conn) as same:
            got = sql.frame(same.execute(query))
    assert got.to_dict("list") == {"user_id": ["a", "b", "c"], "n": [3, 3, 1]}
    with sql.connect(engine) as conn:
        empty = sql.frame(conn.execute(query.where(_e.user_id == "nobody")))
    assert list(empty.columns) == ["user_id", "n"] and empty.empty and (empty.dtypes == object).all()


def _model_row(version: str, did: int, minute: int, status: str = sql.READY) -> dict:
    return {"model_version": version, "dataset_id": did, "created_at": T0 + dt.timedelta(minutes=minute),
            "horizon_days": 7, "path": f"/models/{version}", "config_json": "{}", "metrics_json": "{}",
            "status": status}


def test_newest_ready_model_is_the_latest_created_ready_row_of_that_dataset(engine):
    did = make_dataset(engine, "sqlideas", ROWS)
    other = make_dataset(engine, "other", ROWS)
    assert sql.newest_ready_model_version(engine, did) is None
    with engine.begin() as conn:
        conn.execute(store.models.insert(), [
            _model_row("v-old", did, 0), _model_row("v-new", did, 5), _model_row("v-training", did, 9, "training"),
            _model_row("v-other", other, 20), _model_row("v-tie-a", did, 1), _model_row("v-tie-b", did, 1),
        ])
    assert sql.newest_ready_model_version(engine, did) == "v-new"
    with engine.connect() as conn:
        listed = [r.model_version for r in conn.execute(sql.ready_models(did))]
    assert listed == ["v-new", "v-tie-b", "v-tie-a", "v-old"]  # newest first; a tie by version, highest first
    assert sql.newest_ready_model_version(engine, other) == "v-other"
