"""The command line's journey on a Spark SQL store gives the counts it gives on DuckDB: ingest, datasets, train,
score, segment and export, the same simulated shop and seed on both (needs CARTSIGHT_TEST_SPARK_URL)."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from core import cli
from tests.conftest import write_simulated_shop
from tests.test_cli_model import TINY

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def _run(capsys, *argv) -> str:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def _journey(capsys, db: str, shop: dict, out) -> dict:
    """Counts of one journey: the dataset's, the model's shoppers scored, the segments' sizes, the list's."""
    _run(capsys, "ingest", shop["events"], "--name", "shop", "--db", db, "--quiet")
    (dataset,) = json.loads(_run(capsys, "datasets", "--db", db, "--json"))
    card = json.loads(_run(capsys, "train", "--dataset", "shop", "--db", db, "--config", shop["tiny"], "--json"))
    _run(capsys, "score", "--dataset", "shop", "--db", db, "--out", out / "scores.csv")
    scores = pd.read_csv(out / "scores.csv", dtype={"user_id": str})
    _run(capsys, "segment", "--dataset", "shop", "--db", db, "--k", "3", "--out", out / "segments.csv")
    segments = pd.read_csv(out / "segments.csv", dtype={"user_id": str})
    counts = json.loads(_run(capsys, "export", "--dataset", "shop", "--db", db, "--top-percent", "20", "--holdout",
                             "0.1", "--format", "csv", "--out", out / "targets.csv", "--json"))
    return {"dataset": {k: dataset[k] for k in ("rows_read", "rows_loaded", "rows_quarantined", "n_users")},
            "horizon": card["horizon_days"], "scored": len(scores), "scored_users": sorted(scores["user_id"]),
            "segment_sizes": sorted(segments["segment"].value_counts().tolist()),
            "export": {k: counts[k] for k in ("matched", "exported", "holdout")}}


def test_the_journey_on_spark_counts_what_it_counts_on_duckdb(capsys, tmp_path, monkeypatch, spark_engine,
                                                              spark_store_url):
    shop = write_simulated_shop(tmp_path, 120, 5, 3, {"tiny": TINY})
    results = {}
    for kind, db in (("duckdb", f"duckdb:///{tmp_path / 'cli.duckdb'}"), ("spark", spark_store_url)):
        monkeypatch.setenv("CARTSIGHT_HOME", str(tmp_path / f"home-{kind}"))
        (tmp_path / kind).mkdir()
        results[kind] = _journey(capsys, db, shop, tmp_path / kind)
    assert results["spark"]["dataset"]["n_users"] == shop["users"]
    assert results["spark"] == results["duckdb"]
