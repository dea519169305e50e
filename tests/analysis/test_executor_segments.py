"""Assigning shoppers to a fitted segmentation from rows of the per-shopper query (what a Spark executor does)
gives every shopper the segment the app gave them, on both stores; the Spark run itself is marked ``spark``."""
from __future__ import annotations

import datetime as dt
import os
import pickle

import pandas as pd
import pytest
import sqlalchemy as sa

from core import store
from core.analysis import executor_segments, segments
from core.store import sql
from tests.analysis.test_segments import _hand_users
from tests.conftest import make_dataset

simulate = pytest.importorskip("core.simulate")


def _scored(engine, tmp_path, name: str, users) -> int:
    """A dataset of ``users``' events with a ready model version whose predictions cover all but the last shopper."""
    did = make_dataset(engine, name, users)
    ids = sorted({u["user_id"] for u in users})
    with engine.begin() as conn:
        conn.execute(store.models.insert().values(
            model_version="v1", dataset_id=did, created_at=dt.datetime(2024, 4, 1), horizon_days=7,
            path=str(tmp_path / "gone"), status="ready"))
        conn.execute(store.predictions.insert(), [
            {"dataset_id": did, "model_version": "v1", "user_id": u, "purchase_propensity": (i % 7) / 7}
            for i, u in enumerate(ids[:-1])])
    return did


def _rows(engine, package, version) -> pd.DataFrame:
    with engine.connect() as conn:
        return sql.frame(conn.execute(executor_segments.per_shopper_query(package, version)))


def test_shoppers_assigned_in_batches_get_the_segment_the_app_gave_them(engine, tmp_path):
    _scored(engine, tmp_path, "shop", _hand_users(40))
    run = segments.run_segmentation(engine, "shop", n_segments=3, seed=1, use_embedding=False)
    assert "propensity" in run.feature_names
    package = executor_segments.package_run(run.segmenter, run.features, run.feature_names, run.dataset_id,
                                            run.run_id, run.names())
    package = pickle.loads(pickle.dumps(package))  # what Spark ships to each task
    rows = _rows(engine, package, run.model_version).sample(frac=1.0, random_state=2)
    got = pd.concat([executor_segments.assign_rows(package, part) for part in (rows[:17], rows[17:])])
    got = got.sort_values("user_id", ignore_index=True)
    app = segments.load_assignments(engine, "shop", run_id=run.run_id).sort_values("user_id", ignore_index=True)
    assert got["user_id"].tolist() == app["user_id"].tolist()
    assert got["segment"].tolist() == app["segment"].tolist()
    assert got["segment_name"].tolist() == app["segment_name"].tolist()
    assert set(got["run_id"]) == {run.run_id} and list(got.columns) == list(executor_segments.SEGMENT_COLUMNS)
    # the features themselves, not only the labels: the unscored shopper took the median propensity
    features = executor_segments.features_of_rows(package, rows).sort_index()
    pd.testing.assert_frame_equal(features[run.feature_names], run.features.loc[features.index, run.feature_names],
                                  check_exact=False, rtol=1e-9, check_names=False)


def test_a_segmentation_that_reads_the_embedding_cannot_be_packed(engine, tmp_path):
    _scored(engine, tmp_path, "shop", _hand_users(20))
    run = segments.run_segmentation(engine, "shop", n_segments=2, seed=0, use_embedding=False)
    names = run.feature_names + ["embedding_1"]
    with pytest.raises(ValueError, match="embedding_1"):
        executor_segments.package_run(run.segmenter, run.features.assign(embedding_1=0.0), names, run.dataset_id,
                                      run.run_id, run.names())


@pytest.mark.spark
@pytest.mark.slow
def test_assignment_on_spark_runs_the_per_shopper_query_there_and_equals_the_apps(engine, tmp_path):
    remote, url = os.environ.get("CARTSIGHT_TEST_SPARK_CONNECT"), os.environ.get("CARTSIGHT_TEST_SPARK_URL")
    if not (remote and url):
        pytest.skip("no Spark server (CARTSIGHT_TEST_SPARK_URL and CARTSIGHT_TEST_SPARK_CONNECT; .ci/start-spark.sh)")
    if not store.is_duckdb(engine):
        pytest.skip("the app's run is made once, on DuckDB")
    from pyspark.sql import SparkSession

    did = _scored(engine, tmp_path, "shop", _hand_users(40))
    run = segments.run_segmentation(engine, "shop", n_segments=3, seed=1, use_embedding=False)
    package = executor_segments.package_run(run.segmenter, run.features, run.feature_names, did, run.run_id,
                                            run.names())
    session = SparkSession.builder.remote(remote).getOrCreate()
    spark_engine = sa.create_engine(url)
    for table in (store.events, store.predictions):  # the dataset's rows, as a Spark store holds them
        with engine.connect() as conn:
            frame = sql.frame(conn.execute(sa.select(table).where(table.c.dataset_id == did)))
        session.createDataFrame(frame).write.mode("overwrite").saveAsTable(table.name)
    got = executor_segments.assign_on_spark(session, spark_engine, package, run.model_version).toPandas()
    app = segments.load_assignments(engine, "shop", run_id=run.run_id)
    merged = app.merge(got, on="user_id", suffixes=("", "_spark"))
    assert len(merged) == len(app) == len(got)
    assert (merged["segment"] == merged["segment_spark"]).all()


def test_the_statement_sent_to_spark_names_the_store_s_database_and_quotes_as_spark_reads():
    """The per-shopper query goes to a Spark Connect session, which has no current database of the store's: its
    tables are named ``database.table``, and a quote in a category is escaped as Spark SQL reads it (two
    quotes in a row are two adjacent literals there, joined without the quote)."""
    from core.store.engine import spark_url

    url = sa.engine.make_url(spark_url("hive://127.0.0.1:1/default?auth=NOSASL")).set(database="cs_shop")
    package = executor_segments.AssignmentPackage(
        3, 1, None, ("n_events",), ("kids' toys", "home"), ("kids' toys",), (0.5,), dt.datetime(2024, 3, 1), 0.2,
        {0: "all"})

    class Session:  # records the statement; what runs on the executors is not this test's
        def sql(self, text):
            self.text = text
            return self

        def mapInPandas(self, function, schema):
            return self

    session = Session()
    executor_segments.assign_on_spark(session, sa.create_engine(url), package, "v'1")
    assert "FROM `cs_shop`.`cs_all_events`" in session.text and "JOIN `cs_shop`.`cs_predictions`" in session.text
    assert "= 'kids\\' toys'" in session.text and "= 'v\\'1'" in session.text and "''" not in session.text


def test_a_sample_keeps_the_same_shoppers_on_every_store_and_all_of_their_events(engine):
    import hashlib

    users = [_ev_row(f"s{i:03d}", i) for i in range(300)] + [_ev_row(f"s{i:03d}", i + 1000) for i in range(300)]
    did = make_dataset(engine, "many", users)
    features, _ = segments.shopper_features(engine, did, top_categories=1, sample=(0.25, 7))
    expected = {f"s{i:03d}" for i in range(300)
                if hashlib.md5(f"s{i:03d}#7".encode()).hexdigest()[:4] < f"{int(0.25 * 65536):04x}"}
    assert set(features.index) == expected and 50 < len(expected) < 100
    assert (features["n_events"] == 2).all()  # both of each kept shopper's events
    assert features.attrs["last_event"] == max(u["event_time"] for u in users)  # recency to the dataset's end


def _ev_row(user: str, minutes: int) -> dict:
    return {"user_id": user, "event_time": dt.datetime(2024, 3, 1) + dt.timedelta(minutes=minutes),
            "event_type": "view", "item_id": "i1", "category": "home", "brand": "zen", "price": 5.0,
            "session_id": f"{user}-{minutes}"}


def test_where_executors_assign_a_large_dataset_is_fitted_on_a_sample_without_the_embedding():
    session = object()  # any session: what matters is that there is one
    assert segments._fit_sample(None, 10_000_000, 3, True) == (None, True, None)
    sample, embedding, note = segments._fit_sample(session, 2_000_000, 3, True)
    assert sample == (0.25, 3) and embedding is False and "seeded sample of about 500,000 of 2,000,000" in note
    assert segments._fit_sample(session, 1_000, 3, True) == (None, True, None)  # as on any store
