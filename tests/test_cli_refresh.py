"""The refresh from the command line, on both stores: train on the first weeks, add a week, score the dataset again
with the same version (its earlier forecasts kept beside the new ones, each scoring with its as-of time), segment
twice (both runs kept, the moves reported), every step readable as JSON."""
import datetime as dt
import json

import pandas as pd
import pytest
import sqlalchemy as sa

from core import cli, simulate, store
from core.analysis import forecast_history
from core.simulate import files
from tests.conftest import add_events, make_dataset
from tests.test_cli_model import TINY, run


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("CARTSIGHT_HOME", str(tmp_path / "home"))


@pytest.mark.slow
def test_score_again_after_an_append_keeps_the_earlier_forecasts(capsys, engine, tmp_path):
    events = files.to_canonical(simulate.simulate(n_users=160, weeks=6, seed=5).events)
    split = events["event_time"].max() - pd.Timedelta(days=7)
    first, later = events[events["event_time"] <= split], events[events["event_time"] > split]
    make_dataset(engine, "shop", [])
    add_events(engine, "shop", first)
    db = engine.url.render_as_string(hide_password=False)
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))

    out, _ = run(capsys, "train", "--dataset", "shop", "--db", db, "--config", config, "--json")
    trained = json.loads(out)
    assert dt.datetime.fromisoformat(trained["as_of"]) == first["event_time"].max().to_pydatetime()
    did = trained["dataset_id"]
    before = forecast_history.scoring_forecasts(engine, did, forecast_history.list_scorings(engine, did)[0])

    add_events(engine, "shop", later)
    out, _ = run(capsys, "score", "--dataset", "shop", "--model", trained["model_version"], "--db", db, "--json")
    rescored = json.loads(out)
    assert rescored["model_version"] == trained["model_version"] and rescored["kind"] == "rescore"
    assert rescored["scoring_id"] != trained["scoring_id"] and rescored["out"] is None
    assert dt.datetime.fromisoformat(rescored["as_of"]) == events["event_time"].max().to_pydatetime()
    assert rescored["n_users"] == events["user_id"].nunique()

    kept = forecast_history.list_scorings(engine, did)
    assert [(s.scoring_id, s.kind, s.current) for s in kept] == [
        (rescored["scoring_id"], "rescore", True), (trained["scoring_id"], "training", False)]
    then = forecast_history.scoring_forecasts(engine, did, kept[1])
    pd.testing.assert_frame_equal(then.sort_values("user_id", ignore_index=True),
                                  before.sort_values("user_id", ignore_index=True))
    now = forecast_history.scoring_forecasts(engine, did, kept[0]).set_index("user_id")["purchase_propensity"]
    assert len(now) == events["user_id"].nunique()
    assert (now.reindex(then["user_id"]).to_numpy() != then["purchase_propensity"].to_numpy()).any()
    shopper = later["user_id"].iloc[0]
    history = forecast_history.shopper_forecast_history(engine, did, shopper)
    assert list(history["kind"]) == (["training", "rescore"] if shopper in set(first["user_id"]) else ["rescore"])
    assert history["purchase_propensity"].iloc[-1] == pytest.approx(now[shopper])

    from core.errors import TrainingCancelled
    from core.model import forecast

    with pytest.raises(TrainingCancelled):  # a cancelled rescore leaves both scorings as they were
        forecast.score(engine, "shop", should_stop=lambda: True)
    assert forecast_history.list_scorings(engine, did) == kept
    assert len(forecast_history.scoring_forecasts(engine, did, kept[1])) == len(then)

    for k in ("3", "2"):
        out, _ = run(capsys, "segment", "--dataset", "shop", "--db", db, "--k", k, "--out", tmp_path / f"s{k}.csv",
                     "--json")
    run_json = json.loads(out)
    assert run_json["runs_kept"] == 2 and run_json["n_segments"] == 2
    moved = run_json["moved_since_previous"]
    assert moved["stayed"] + moved["moved"] == events["user_id"].nunique() and moved["new"] == moved["gone"] == 0
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count(sa.distinct(store.segments.c.run_id)))).scalar() == 2


def test_one_shot_score_still_needs_out(capsys, tmp_path):
    code = cli.main(["score", str(tmp_path / "events.csv"), "--db", f"duckdb:///{tmp_path / 'x.duckdb'}"])
    assert code == cli.EXIT_USER_ERROR
    assert "score EVENTS.csv needs --out FILE for the forecasts" in capsys.readouterr().err
