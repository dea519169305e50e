"""``cartsight connect``: a team's events table read in place, then the same journey as a file's dataset (overview,
train, score, segment) from the command line, with the same counts as the same events loaded from the file."""
import json

import pandas as pd
import pytest
import sqlalchemy as sa

from core import store
from tests.test_cli_model import TINY, run
from tests.conftest import write_simulated_shop


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    return write_simulated_shop(tmp_path_factory.mktemp("cli-connect"), 150, 6, 5, {"tiny": TINY})


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("CARTSIGHT_HOME", str(tmp_path / "home"))


def _team_table(db: str, events_csv) -> None:
    """The simulated events as a team's table ``team.events`` of the store's DuckDB file (times as DuckDB reads
    them from the file)."""
    engine = store.make_engine(db)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE SCHEMA team")
        conn.exec_driver_sql(f"CREATE TABLE team.events AS SELECT * FROM read_csv('{events_csv}')")
    engine.dispose()


@pytest.mark.slow
def _rounded(value):
    """``value`` (a report's JSON) with every float to 10 significant digits (NaN as text, to compare equal)."""
    if isinstance(value, float):
        return "nan" if value != value else float(f"{value:.10g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def test_connect_then_the_whole_journey_matches_the_file(capsys, shop, tmp_path):
    db = f"duckdb:///{tmp_path / 'cli.duckdb'}"
    _team_table(db, shop["events"])
    out, _ = run(capsys, "connect", "--table", "team.events", "--name", "team", "--db", db, "--json", "--quiet")
    connected = json.loads(out)
    out, _ = run(capsys, "ingest", shop["events"], "--name", "file", "--db", db, "--json", "--quiet")
    loaded = json.loads(out)
    for key in ("rows_read", "rows_loaded", "rows_quarantined", "users", "events_by_type", "first_event",
                "last_event", "quarantine_by_reason"):
        assert connected[key] == loaded[key], key
    assert connected["layout"] == "connected" and connected["users"] == shop["users"]
    overview = {name: json.loads(run(capsys, "overview", "--dataset", name, "--db", db, "--json")[0])
                for name in ("team", "file")}
    # the same figures; sums of prices only to float rounding (DuckDB adds in parallel, in no fixed order)
    assert _rounded(overview["team"]) == _rounded(overview["file"])

    run(capsys, "train", "--dataset", "team", "--db", db, "--config", shop["tiny"], "--quiet")
    scores = tmp_path / "scores.csv"
    run(capsys, "score", "--dataset", "team", "--db", db, "--out", scores, "--quiet")
    frame = pd.read_csv(scores, dtype={"user_id": str})
    assert len(frame) == shop["users"] and frame["p_buy_within_7d"].between(0, 1).all()
    sizes = {}
    for name in ("team", "file"):
        seg = tmp_path / f"{name}-segments.csv"
        run(capsys, "segment", "--dataset", name, "--db", db, "--k", "3", "--seed", "1", "--out", seg)
        sizes[name] = sorted(pd.read_csv(seg)["segment"].value_counts().tolist())
    assert sizes["team"] == sizes["file"] and sum(sizes["team"]) == shop["users"]
    engine = store.make_engine(db)
    with engine.connect() as conn:  # the team's events stayed where they were: none was copied
        assert conn.execute(sa.select(sa.func.count()).select_from(store.stored_events)
                            .where(store.stored_events.c.dataset_id == connected["dataset_id"])).scalar() == 0
    engine.dispose()


def test_connect_refuses_a_missing_table_and_a_bad_map_in_one_line(capsys, tmp_path):
    db = f"duckdb:///{tmp_path / 'cli.duckdb'}"
    from core import cli

    assert cli.main(["connect", "--table", "team.events", "--name", "x", "--db", db]) == 2
    assert "No table 'team.events' can be read in the store's database" in capsys.readouterr().err
    assert cli.main(["connect", "--table", "t", "--name", "x", "--db", db, "--map", "user_id"]) == 2
    assert "--map 'user_id': expected FIELD=COLUMN" in capsys.readouterr().err
    assert cli.main(["connect", "--name", "x", "--db", db]) == 2
    assert "connect needs --table SCHEMA.TABLE (or --refresh" in capsys.readouterr().err
