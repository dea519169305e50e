"""The CLI journey (ingest, overview, train, score, segment, export) on a Spark store, its scoring and segment
assignment on the executors, gives what the same journey gives on DuckDB: the same dataset counts, the same
forecasts within float tolerance and the same segments' sizes for the same seed.

Needs a Spark Thrift Server with Spark Connect (``bash .ci/start-spark.sh`` prints the SQLAlchemy URL; set it as
``CARTSIGHT_TEST_SPARK_URL`` and the Connect URL, ``sc://127.0.0.1:15002`` there, as
``CARTSIGHT_TEST_SPARK_CONNECT``); skipped otherwise.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from core import cli
from core.model import executor_scoring
from tests.test_cli_model import TINY, run
from tests.conftest import write_simulated_shop

pytestmark = [pytest.mark.spark, pytest.mark.slow]


@pytest.fixture(scope="module")
def small_shop(tmp_path_factory):
    files = write_simulated_shop(tmp_path_factory.mktemp("spark-journey"), 120, 6, 5, {"tiny": TINY})
    return {**files, "config": files["tiny"]}


def _journey(capsys, db: str, shop: dict, out) -> dict:
    """The journey on the store ``db``; what it reported and wrote."""
    out.mkdir()
    report = json.loads(run(capsys, "ingest", shop["events"], "--name", "shop", "--db", db, "--json")[0])
    overview = run(capsys, "overview", "--dataset", "shop", "--db", db)[0]
    card = json.loads(run(capsys, "train", "--dataset", "shop", "--db", db, "--config", shop["config"], "--seed", "2",
                          "--json")[0])
    run(capsys, "score", "--dataset", "shop", "--db", db, "--out", out / "scores.csv")
    run(capsys, "segment", "--dataset", "shop", "--db", db, "--k", "3", "--seed", "4", "--out", out / "segments.csv")
    counts = json.loads(run(capsys, "export", "--dataset", "shop", "--db", db, "--top-percent", "20", "--holdout",
                            "0.1", "--format", "csv", "--out", out / "targets.csv", "--json")[0])
    read = lambda name: pd.read_csv(out / name, dtype={"user_id": str}).sort_values("user_id", ignore_index=True)  # noqa: E731
    return {"report": report, "overview": overview, "card": card, "scores": read("scores.csv"),
            "segments": read("segments.csv"), "export": counts}


def test_the_journey_on_spark_equals_the_journey_on_duckdb(capsys, small_shop, tmp_path, monkeypatch, request):
    remote = os.environ.get("CARTSIGHT_TEST_SPARK_CONNECT")
    if not (remote and os.environ.get("CARTSIGHT_TEST_SPARK_URL")):
        pytest.skip("no Spark server: set CARTSIGHT_TEST_SPARK_URL and CARTSIGHT_TEST_SPARK_CONNECT "
                    "(.ci/start-spark.sh starts one)")
    spark_store_url = request.getfixturevalue("spark_store_url")  # a database of this session's own on it
    monkeypatch.setenv("CARTSIGHT_HOME", str(tmp_path / "home"))
    on_executors, real = [], executor_scoring.score_into_store

    def counted(engine, session, package):
        on_executors.append("train" if len(on_executors) == 0 else "score")
        return real(engine, session, package)

    monkeypatch.setattr(executor_scoring, "score_into_store", counted)
    local = _journey(capsys, f"duckdb:///{tmp_path / 'journey.duckdb'}", small_shop, tmp_path / "duckdb")
    assert on_executors == []
    monkeypatch.setenv("CARTSIGHT_SPARK_CONNECT", remote)  # scoring and segment assignment on the executors
    spark = _journey(capsys, spark_store_url, small_shop, tmp_path / "spark")
    assert on_executors == ["train", "score"]  # the Spark journey's two scorings ran there, the DuckDB one's not
    for key in ("rows_read", "rows_loaded", "rows_quarantined"):
        assert spark["report"][key] == local["report"][key], key
    assert spark["overview"] == local["overview"]
    assert spark["card"]["heads"] == local["card"]["heads"] and spark["card"]["lift"] == local["card"]["lift"]
    a, b = spark["scores"], local["scores"]
    assert a["user_id"].tolist() == b["user_id"].tolist() and len(a) == small_shop["users"]
    numbers = [c for c in b.columns if c.startswith(("p_", "next_step_p", "next_category_p", "expected"))]
    np.testing.assert_allclose(a[numbers].to_numpy(float), b[numbers].to_numpy(float), atol=1e-6)
    assert (a["reasons"].fillna("") == b["reasons"].fillna("")).all()
    sizes = lambda frame: frame["segment"].value_counts().sort_index().tolist()  # noqa: E731
    assert sizes(spark["segments"]) == sizes(local["segments"])
    assert spark["export"]["matched"] == local["export"]["matched"]
