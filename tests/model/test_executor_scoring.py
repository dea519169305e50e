"""Scoring on a cluster's executors (core.model.executor_scoring) gives the app's forecasts for the same version.

The executor's function is tested here without Spark, on events read back from the store in another order
and split in groups as Spark splits them; the Spark run itself (marked ``spark``) needs a Spark server with
Spark Connect (``CARTSIGHT_TEST_SPARK_CONNECT``, e.g. ``sc://127.0.0.1:15002``, as ``.ci/start-spark.sh``
starts it) and shows from Spark's own status that the work ran in executor tasks.
"""
from __future__ import annotations

import json
import os
import urllib.request

import numpy as np
import pandas as pd
import pytest

from core import store
from core.errors import NotFittedError
from core.model import executor_scoring, forecast, sequences, versions
from tests.model.test_forecast import _store, canonical, load_events, settings, tiny

torch = pytest.importorskip("torch")
simulate = pytest.importorskip("core.simulate")

NUMBERS = ["purchase_propensity", "p_view", "p_cart", "p_purchase", "p_remove", "p_none", "next_category_p",
           "expected_revenue", "p_inactive"]
WORDS = ["user_id", "next_event_type", "next_category", "top_items", "reasons"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A two-layer tiny version trained on 150 simulated shoppers, its store, and its app-side predictions."""
    home = tmp_path_factory.mktemp("executor")
    mp = pytest.MonkeyPatch()
    mp.setenv("CARTSIGHT_HOME", str(home / "home"))
    engine = _store(home)
    load_events(engine, "sim", canonical(simulate.simulate(150, weeks=5, seed=8).events))
    card = forecast.train(engine, "sim", horizon_days=7, config=tiny(n_layers=2), seed=4, settings=settings())
    pred = forecast.load_predictions(engine, "sim", card.model_version)
    yield engine, card, pred.sort_values("user_id", ignore_index=True)
    mp.undo()


def _events(engine, package) -> pd.DataFrame:
    users = sequences.list_users(engine, package.dataset_id, before=package.end_cutoff)
    chunk = sequences.user_chunks(users, len(users), exhaustive=True)[0]
    return sequences.load_events(engine, package.dataset_id, chunk, None, package.end_cutoff)


def _assert_same_forecasts(got: pd.DataFrame, app: pd.DataFrame) -> None:
    got = got.sort_values("user_id", ignore_index=True)
    assert list(got["user_id"]) == list(app["user_id"])
    np.testing.assert_allclose(got[NUMBERS].to_numpy(float), app[NUMBERS].to_numpy(float), atol=1e-6, rtol=1e-6)
    pd.testing.assert_frame_equal(got[WORDS].fillna("").astype(object), app[WORDS].fillna("").astype(object))


@pytest.mark.slow
def test_shoppers_scored_in_shuffled_groups_get_the_apps_forecasts_and_reasons(trained):
    engine, card, app = trained
    package = executor_scoring.package_version(engine, "sim")
    assert package.version == card.model_version
    events = _events(engine, package).sample(frac=1.0, random_state=1)  # Spark hands rows in no order
    group = pd.util.hash_array(events["user_id"].to_numpy(dtype=object)) % 3
    parts = [executor_scoring.score_events(package, events[group == g]) for g in range(3)]
    got = pd.concat(parts, ignore_index=True)
    assert len(got) == len(app) == card.n_users
    assert set(got["model_version"]) == {card.model_version}
    assert list(got.columns) == list(executor_scoring.PREDICTION_COLUMNS)
    _assert_same_forecasts(got, app)


@pytest.mark.slow
def test_a_version_saved_before_its_baselines_were_kept_is_refused_by_name(trained, tmp_path):
    import shutil

    engine, card, _ = trained
    row = versions.resolve_version(engine, store.get_dataset(engine, "sim")["dataset_id"], "sim", None)
    folder = tmp_path / "kept"
    shutil.copytree(row["path"], folder)
    (tmp_path / "kept" / "baselines.json").unlink()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(versions, "resolve_version", lambda *args: {**row, "path": str(folder)})
        with pytest.raises(NotFittedError, match=card.model_version):
            executor_scoring.package_version(engine, "sim")


def test_the_spark_schema_names_every_prediction_column_with_its_type():
    fields = dict(f.split(" ") for f in executor_scoring.spark_schema().split(", "))
    assert list(fields) == list(executor_scoring.PREDICTION_COLUMNS)
    assert fields["dataset_id"] == "int" and fields["purchase_propensity"] == "double"
    assert fields["reasons"] == "string" and fields["p_inactive"] == "double"


def _stages(ui: str) -> list[dict]:
    with urllib.request.urlopen(f"{ui}/api/v1/applications", timeout=10) as r:
        app_id = json.load(r)[0]["id"]
    with urllib.request.urlopen(f"{ui}/api/v1/applications/{app_id}/stages", timeout=10) as r:
        return json.load(r)


@pytest.mark.spark
@pytest.mark.slow
def test_scoring_on_spark_runs_in_executor_tasks_and_equals_the_apps(trained, monkeypatch):
    remote = os.environ.get("CARTSIGHT_TEST_SPARK_CONNECT")
    if not remote:
        pytest.skip("no Spark Connect server (set CARTSIGHT_TEST_SPARK_CONNECT; .ci/start-spark.sh starts one)")
    from pyspark.sql import SparkSession

    engine, card, app = trained
    package = executor_scoring.package_version(engine, "sim")
    session = SparkSession.builder.remote(remote).getOrCreate()
    events = _events(engine, package).assign(dataset_id=package.dataset_id)
    session.createDataFrame(events).write.mode("overwrite").saveAsTable("cartsight_test_executor_events")

    def in_the_app(*args, **kwargs):
        raise AssertionError("scored in the app's process, not on an executor")

    monkeypatch.setattr(executor_scoring, "score_events", in_the_app)  # the executors import their own copy
    before = {s["stageId"] for s in _stages(os.environ["CARTSIGHT_TEST_SPARK_UI"])} \
        if os.environ.get("CARTSIGHT_TEST_SPARK_UI") else set()
    got = executor_scoring.score_on_spark(session, "cartsight_test_executor_events", package, len(events)).toPandas()
    _assert_same_forecasts(got, app)
    if os.environ.get("CARTSIGHT_TEST_SPARK_UI"):
        new = [s for s in _stages(os.environ["CARTSIGHT_TEST_SPARK_UI"]) if s["stageId"] not in before]
        # the stage of the grouped map (applyInPandas) ran as completed tasks on the executors, with their run time
        scored = [s for s in new if "group_map" in s.get("details", "") and s["status"] == "COMPLETE"]
        assert scored and sum(s["numCompleteTasks"] for s in scored) >= 1
        assert sum(s["executorRunTime"] for s in scored) > 0
