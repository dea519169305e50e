"""Scorings kept side by side, one shopper's forecast history and the propensity distribution then and now, on
hand-built model versions and forecasts (no training), on both stores."""
from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest
import sqlalchemy as sa

from core import config, store
from core.analysis import forecast_history as fh
from core.model import registry, scorings
from tests.conftest import make_dataset

T0 = dt.datetime(2024, 3, 10, 23, 0)


def add_version(engine, did: int, version: str, created: dt.datetime, horizon: int = 7) -> None:
    with engine.begin() as conn:
        conn.execute(store.models.insert().values(
            model_version=version, dataset_id=did, created_at=created, horizon_days=horizon, path=f"/nowhere/{version}",
            config_json="{}", metrics_json=json.dumps({"data_window": [None, str(T0)]}), status="ready"))


def score_by_hand(engine, did: int, version: str, as_of: dt.datetime, values: dict[str, tuple], kind: str) -> int:
    """Write ``values`` (user -> (propensity, revenue, category)) as ``version``'s forecasts as a scoring would:
    the earlier ones retired first, the scoring recorded after."""
    frame = pd.DataFrame([{"dataset_id": did, "model_version": version, "user_id": u, "purchase_propensity": p,
                           "expected_revenue": r, "next_category": c, "p_inactive": 0.5}
                          for u, (p, r, c) in values.items()])
    for col in registry.PREDICTION_COLUMNS:
        if col not in frame:
            frame[col] = None
    with engine.begin() as conn:
        if kind == scorings.RESCORE:
            scorings.retire_predictions(conn, did, version)
        registry.write_predictions(conn, frame)
        return scorings.record_scoring(conn, did, version, as_of, kind, len(frame))


@pytest.fixture
def history_store(engine):
    """Version A trained at T0 and rescored a week later; version B trained on the later data."""
    did = make_dataset(engine, "shop", [])
    add_version(engine, did, "vA", T0)
    score_by_hand(engine, did, "vA", T0, {"u1": (0.10, 5.0, "shoes"), "u2": (0.40, 20.0, "bags")}, scorings.TRAINING)
    score_by_hand(engine, did, "vA", T0 + dt.timedelta(days=7),
                  {"u1": (0.30, 9.0, "bags"), "u2": (0.20, 8.0, "bags"), "u3": (0.05, 1.0, "hats")}, scorings.RESCORE)
    add_version(engine, did, "vB", T0 + dt.timedelta(days=8), horizon=7)
    score_by_hand(engine, did, "vB", T0 + dt.timedelta(days=7), {"u1": (0.35, 11.0, "shoes")}, scorings.TRAINING)
    return engine, did


def test_a_rescore_keeps_the_earlier_forecasts_beside_the_new(history_store):
    engine, did = history_store
    found = fh.list_scorings(engine, did)
    assert [(s.model_version, s.kind, s.current, s.n_users) for s in found] == [
        ("vB", "training", True, 1), ("vA", "rescore", True, 3), ("vA", "training", False, 2)]
    old = fh.scoring_forecasts(engine, did, found[2]).set_index("user_id")["purchase_propensity"].sort_index()
    assert old.to_dict() == {"u1": 0.10, "u2": 0.40}
    now = fh.scoring_forecasts(engine, did, found[1]).set_index("user_id")["purchase_propensity"].sort_index()
    assert now.to_dict() == {"u1": 0.30, "u2": 0.20, "u3": 0.05}
    assert found[1].as_of == T0 + dt.timedelta(days=7) and found[2].as_of == T0


def test_one_shoppers_history_is_every_scoring_oldest_first(history_store):
    engine, did = history_store
    h = fh.shopper_forecast_history(engine, did, "u1")
    assert list(h.columns) == fh.HISTORY_COLUMNS
    assert list(h["model_version"]) == ["vA", "vA", "vB"]
    assert list(h["kind"]) == ["training", "rescore", "training"]
    assert list(h["purchase_propensity"]) == [0.10, 0.30, 0.35]
    assert list(h["expected_revenue"]) == [5.0, 9.0, 11.0]
    assert list(h["next_category"]) == ["shoes", "bags", "shoes"]
    week = pd.Timestamp(T0 + dt.timedelta(days=7))
    assert list(h["as_of"]) == [pd.Timestamp(T0), week, week]
    assert list(fh.shopper_forecast_history(engine, did, "u3")["purchase_propensity"]) == [0.05]
    assert fh.shopper_forecast_history(engine, did, "nobody").empty


def test_a_version_keeps_its_newest_scorings_only(engine, monkeypatch):
    monkeypatch.setattr(config, "SCORINGS_KEPT_PER_VERSION", 2)
    did = make_dataset(engine, "shop", [])
    add_version(engine, did, "vA", T0)
    for week in range(4):
        score_by_hand(engine, did, "vA", T0 + dt.timedelta(days=7 * week), {"u1": (0.1 * (week + 1), 1.0, "x")},
                      scorings.TRAINING if week == 0 else scorings.RESCORE)
    h = fh.shopper_forecast_history(engine, did, "u1")
    assert list(h["purchase_propensity"].round(3)) == [0.3, 0.4]
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(store.past_predictions)).scalar() == 1
        assert conn.execute(sa.select(sa.func.count()).select_from(store.scorings)).scalar() == 2


def test_dropping_a_dataset_drops_its_scorings(history_store):
    engine, did = history_store
    store.drop_dataset(engine, "shop")
    with engine.connect() as conn:
        for table in (store.scorings, store.past_predictions):
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() == 0


def test_deciles_rank_the_top_tenth_first():
    p = pd.Series([0.9, 0.1, 0.5, 0.5] + [0.01] * 16, index=[f"u{i:02d}" for i in range(20)])
    d = fh.deciles(p)
    assert d["u00"] == 1 and d["u02"] == 1 and d["u03"] == 2 and d["u01"] == 2  # ties broken by id
    assert d.value_counts().sort_index().tolist() == [2] * 10


def test_propensity_shift_counts_the_moves_and_the_bands():
    then = pd.Series({f"u{i}": 0.01 * i for i in range(10)})  # u9 top, u0 bottom
    now = then.copy()
    now["u0"], now["u9"] = 0.5, 0.0  # u0 rises from decile 10 to 1, u9 falls from 1 to 10
    now = now.drop("u5")  # gone: u4 and u3 rise a decile into its place...
    now["new"] = 0.02  # ...and the newcomer ranks just above u2 (ties by id), which keeps its decile 8
    shift = fh.propensity_shift(then, now, n_bins=10)
    assert (shift.new, shift.gone) == (1, 1)
    assert (shift.moved_up, shift.stayed, shift.moved_down) == (3, 5, 1)
    assert shift.bins["upper"].iloc[-1] == pytest.approx(0.5)
    assert shift.bins["n_then"].sum() == 10 and shift.bins["n_now"].sum() == 10
    assert shift.bins["n_then"].tolist()[:2] == [5, 5]  # bands of 5 points up to 50 %: 0-4 % and 5-9 %
    assert shift.bins["n_now"].iloc[-1] == 1
    assert shift.expected_buyers_then == pytest.approx(0.45)
    top = shift.deciles.set_index("decile").loc[1]
    assert (top["shoppers"], top["moved_down"], top["mean_then"], top["mean_now"]) == (1, 1, 0.09, 0.0)
    assert shift.deciles["shoppers"].sum() == 9
