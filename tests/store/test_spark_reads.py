"""Large reads of a Spark store come through Spark Connect as Arrow batches (``core.store.executors.select_frame``)
and give the rows the Thrift Server gives for the same statement.

The SQL text is checked without a server; the round trip needs a Spark Thrift Server with Spark Connect
(``CARTSIGHT_TEST_SPARK_URL`` and ``CARTSIGHT_TEST_SPARK_CONNECT``; ``.ci/start-spark.sh`` starts both).
"""
from __future__ import annotations

import datetime as dt
import os

import pandas as pd
import pytest
import sqlalchemy as sa

from core import store
from core.model import sequences
from core.store import executors, sql
from core.store.engine import spark_url


def _spark_engine(database: str = "cs_shop") -> sa.Engine:
    url = sa.engine.make_url(spark_url("hive://127.0.0.1:1/default?auth=NOSASL"))
    return sa.create_engine(url.set(database=database))


@pytest.fixture
def connected(monkeypatch) -> str:
    """The test Spark Connect server's address, set as the store's ``CARTSIGHT_SPARK_CONNECT`` (skips without one)."""
    remote = os.environ.get("CARTSIGHT_TEST_SPARK_CONNECT")
    if not remote:
        pytest.skip("no Spark Connect server (CARTSIGHT_TEST_SPARK_CONNECT; .ci/start-spark.sh)")
    monkeypatch.setenv("CARTSIGHT_SPARK_CONNECT", remote)
    return remote


def test_the_statement_names_the_store_s_database_and_renders_its_parameters_as_the_thrift_path_does():
    ev = store.events.c
    chunk = sequences.UserChunk("a", "z", ("o'brien", "c"))
    query = sa.select(ev.user_id, ev.price).where(*sequences.chunk_where(chunk), ev.dataset_id == 3,
                                                  ev.event_time < dt.datetime(2020, 1, 2, 3, 4, 5), ev.brand.like("a%"))
    text = executors.compiled_text(_spark_engine(), query)
    assert "FROM `cs_shop`.`cs_all_events`" in text
    assert "IN ('o\\'brien', 'c')" in text  # the list expanded, the quote escaped as Spark reads it
    assert "< TIMESTAMP_NTZ '2020-01-02 03:04:05'" in text and "= 3" in text and "LIKE 'a%'" in text
    assert "%(" not in text


def test_without_a_connect_session_nothing_is_read_through_it(monkeypatch):
    monkeypatch.delenv("CARTSIGHT_SPARK_CONNECT", raising=False)
    assert executors.select_frame(_spark_engine(), sa.select(store.shoppers.c.user_id)) is None


def test_releasing_the_sessions_at_exit_waits_a_bounded_time_for_a_server_that_is_gone(monkeypatch):
    import threading
    import time

    released = threading.Event()

    class Stuck:  # a client retrying against a server that no longer answers
        def stop(self):
            released.wait(30)

    monkeypatch.setattr(executors, "_sessions", {"sc://gone:15002": Stuck()})
    monkeypatch.setattr(executors, "RELEASE_WAIT_S", 0.2)
    started = time.monotonic()
    executors.release_all()
    assert time.monotonic() - started < 5 and executors._sessions == {}
    released.set()


@pytest.mark.spark
def test_arrow_reads_give_the_rows_the_thrift_server_gives(spark_engine, connected):
    sh = store.shoppers
    rows = [dict(dataset_id=1, user_id=f"u{i}'{i % 3}", n_events=i, n_orders=i % 3, n_amounts=i % 2,
                 revenue=i * 1.5 if i % 4 else None, first_event=dt.datetime(2024, 1, 1, i),
                 last_event=dt.datetime(2024, 1, 2, i),
                 last_purchase=dt.datetime(2024, 1, 3) if i % 2 else None) for i in range(1, 9)]
    counts = {c.name: 0 for c in sh.columns if isinstance(c.type, sa.BigInteger)}
    with spark_engine.begin() as conn:
        conn.execute(sh.insert(), [{c.name: None for c in sh.columns} | counts | r for r in rows])
    query = (sa.select(sh.c.user_id, sh.c.n_orders, sh.c.revenue, sh.c.last_purchase, sh.c.last_event)
             .where(sh.c.dataset_id == 1, sh.c.user_id.in_([r["user_id"] for r in rows[:6]])).order_by(sh.c.user_id))
    arrow = sequences.read_frame(spark_engine, query)
    # the session keeps no plans: a load's batches would otherwise stay in the server's heap
    assert executors.spark_session(spark_engine).conf.get(executors.PLAN_CACHE_CONF) == "false"
    with spark_engine.connect() as conn:
        thrift = sql.frame(conn.execute(query))
    assert list(arrow.columns) == list(thrift.columns)
    assert list(arrow["user_id"]) == list(thrift["user_id"]) == sorted(r["user_id"] for r in rows[:6])
    for column in ("n_orders", "revenue"):
        pd.testing.assert_series_equal(pd.to_numeric(arrow[column]).astype(float),
                                       pd.to_numeric(thrift[column]).astype(float), check_names=False)
    for column in ("last_purchase", "last_event"):
        assert list(pd.to_datetime(arrow[column])) == list(pd.to_datetime(thrift[column]))


@pytest.mark.spark
def test_a_large_bulk_insert_goes_as_arrow_batches_and_stores_every_row(spark_engine, connected, monkeypatch):
    from core.store import engine as store_engine

    sent = []
    monkeypatch.setattr(executors, "insert_frame", lambda *a: sent.append(len(a[2])) or _insert(*a))
    seg = store.segments
    n = store_engine.SPARK_ARROW_ROWS + 500
    frame = pd.DataFrame({"dataset_id": 1, "run_id": 1, "user_id": [f"u{i}" for i in range(n)],
                          "segment": [i % 3 for i in range(n)],
                          "segment_name": [None if i % 7 else "o'k" for i in range(n)]})
    with spark_engine.begin() as conn:
        assert store.bulk_insert(conn, seg, frame) == n
    assert sent == [n]
    with spark_engine.connect() as conn:
        rows = conn.execute(sa.select(seg.c.segment, seg.c.segment_name, sa.func.count()).group_by(
            seg.c.segment, seg.c.segment_name).order_by(seg.c.segment, seg.c.segment_name)).all()
    expected = frame.groupby(["segment", "segment_name"], dropna=False).size()
    got = {(int(s), name or "", int(c)) for s, name, c in rows}
    assert got == {(int(s), "" if pd.isna(name) else name, int(c)) for (s, name), c in expected.items()}


_insert = executors.insert_frame
