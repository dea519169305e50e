"""Loads into a Spark SQL store, which has no transactions and no sequences: what a killed load left is no part
of the next dataset, and staged rewrites a killed process left are finished when the store is opened."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from core import store
from core.ingest.load import ingest_file

pytestmark = pytest.mark.spark
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_rows_a_killed_load_left_under_an_unrecorded_id_are_no_part_of_the_next_dataset(spark_engine):
    # a load killed after writing its events and quarantine, before its dataset's row (its last step)
    leftover = {"dataset_id": 1, "user_id": "ghost", "event_time": dt.datetime(2024, 1, 1), "event_type": "view"}
    with spark_engine.begin() as conn:
        conn.execute(store.stored_events.insert().values(**leftover))
        conn.execute(store.quarantine.insert().values(dataset_id=1, reason="truncated_row", raw_line="x"))
    assert store.list_datasets(spark_engine) == []  # nothing of it is visible

    report = ingest_file(spark_engine, FIXTURES / "bad_values.csv", "b")
    assert report.dataset_id == 1  # the id the killed load had: no sequence on Spark
    e, q = store.events.c, store.quarantine.c
    with spark_engine.connect() as conn:
        users = conn.execute(sa.select(e.user_id).where(e.dataset_id == 1)).scalars().all()
        n_quarantined = conn.execute(sa.select(sa.func.count()).where(q.dataset_id == 1)).scalar()
    assert len(users) == report.rows_loaded == 2 and "ghost" not in users
    assert n_quarantined == report.rows_quarantined


def test_a_rewrite_killed_after_its_staging_table_was_complete_is_finished_when_the_store_is_opened(
        spark_engine, spark_store_url):
    m = store.mappings
    with spark_engine.begin() as conn:
        conn.execute(m.insert().values(signature="a", mapping_json="{}", updated_at=dt.datetime(2024, 1, 1)))
        # the rewrite's complete copy, renamed "restore", and then the table cut off mid-copy (here: emptied)
        conn.exec_driver_sql("CREATE TABLE cs_mappings__restore_1 USING parquet AS SELECT * FROM cs_mappings")
        conn.exec_driver_sql("CREATE TABLE cs_mappings__stage_2 USING parquet AS SELECT * FROM cs_mappings")
        conn.exec_driver_sql("TRUNCATE TABLE cs_mappings")
    spark_engine.dispose()
    reopened = store.make_engine(spark_store_url)
    with reopened.connect() as conn:
        assert conn.execute(sa.select(m.c.signature)).scalars().all() == ["a"]
        assert not [n for n in conn.dialect.get_table_names(conn) if "__" in n]
    reopened.dispose()
