"""Forecasts end to end on simulated shoppers: train, choose, score, publish; cancel; reproduce; planted structure."""
from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from core import store
from core.model import forecast
from core.model import scoring
from core.store import derived
from core.errors import NotFittedError, ParameterError, TrainingCancelled
from core.model.config import EVENT_CLASS_COLUMNS, ModelConfig, PipelineSettings
from core.model.evaluation import Calibrator
from tests.conftest import make_dataset

torch = pytest.importorskip("torch")
simulate = pytest.importorskip("core.simulate")
from core.simulate.files import to_canonical  # noqa: E402

PREDICTION_COLUMNS = ["user_id", "purchase_propensity", "next_event_type", "p_view", "p_cart", "p_purchase",
                      "p_remove", "p_none", "next_category", "next_category_p", "top_items", "reasons",
                      "expected_revenue", "p_inactive", "model_version"]


def canonical(events: pd.DataFrame) -> pd.DataFrame:
    """Simulated REES46 rows in the store's canonical columns (what ingest would produce)."""
    return to_canonical(events)


def load_events(engine: sa.Engine, name: str, frame: pd.DataFrame) -> int:
    """Put canonical events in the store: DuckDB's native insert from a registered frame, else make_dataset."""
    if not store.is_duckdb(engine):
        rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
        for r in rows:
            r["event_time"] = pd.Timestamp(r["event_time"]).to_pydatetime()
        return make_dataset(engine, name, rows)
    did = make_dataset(engine, name, [])
    with engine.begin() as conn:
        conn.execute(store.datasets.update().where(store.datasets.c.dataset_id == did).values(
            rows_read=len(frame), rows_loaded=len(frame), n_users=int(frame["user_id"].nunique()),
            first_event=frame["event_time"].min().to_pydatetime(), last_event=frame["event_time"].max().to_pydatetime()))
        raw = store.driver_connection(conn)
        cols = ", ".join(frame.columns)
        raw.register("incoming_events", frame.assign(dataset_id=did))
        raw.execute(f"INSERT INTO cs_events (dataset_id, {cols}) SELECT dataset_id, {cols} FROM incoming_events")
        raw.unregister("incoming_events")
        derived.derive_dataset(conn, did)
    return did


def tiny(**kw) -> ModelConfig:
    base = dict(max_len=20, hidden_size=16, n_layers=1, n_heads=2, epochs=2, min_train_steps=30, batch_size=64,
                max_train_examples=3000, n_train_cutoffs=2, item_vocab_cap=500)
    base.update(kw)
    return ModelConfig(**base)


def settings(**kw) -> PipelineSettings:
    """The tiny model's run settings: small query chunks, one torch thread."""
    return PipelineSettings(**{"chunk_users": 150, "torch_threads": 1, **kw})


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("CARTSIGHT_HOME", str(tmp_path / "home"))
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def sim_small():
    return simulate.simulate(250, weeks=5, seed=3)


def _store(tmp_path, name="db"):
    return store.make_engine(f"duckdb:///{tmp_path / (name + '.duckdb')}")


@pytest.mark.slow
def test_train_scores_every_shopper_and_publishes_a_version(tmp_path, sim_small):
    from core import config
    from core.model import registry

    engine = _store(tmp_path)
    load_events(engine, "sim", canonical(sim_small.events))
    reports = []
    card = forecast.train(engine, "sim", horizon_days=7, config=tiny(), settings=settings(), progress=reports.append,
                          seed=1)

    n_users = sim_small.events["user_id"].nunique()
    assert card.n_users == n_users and card.n_users_trained == n_users and not card.sampled
    assert set(card.heads) == {"propensity", "next_event_type", "next_category", "next_items"}
    assert set(card.heads["next_category"]["metrics"]) == {"model", "most_popular", "own_most_frequent", "markov_chain"}
    assert set(card.heads["propensity"]["metrics"]) == {"model", "gradient_boosting_rfm"}
    for info in card.heads.values():
        assert info["used"] in info["metrics"] and info["note"]
    assert card.loss_curve and all(r["train_loss"] > 0 for r in card.loss_curve)
    assert reports[-1].fraction == 1.0 and any(r.stage == "training" and r.train_loss for r in reports)
    plan = card.plan
    assert plan["test_cutoff"] > plan["valid_cutoff"] > plan["train_cutoffs"][-1]

    preds = forecast.load_predictions(engine, "sim")
    assert list(preds.columns) == PREDICTION_COLUMNS
    assert len(preds) == n_users and preds["user_id"].is_unique
    assert (preds["model_version"] == card.model_version).all()
    assert preds["purchase_propensity"].between(0, 1).all()
    assert np.allclose(preds[list(EVENT_CLASS_COLUMNS)].sum(axis=1), 1.0, atol=1e-4)
    assert preds["top_items"].str.split().map(len).max() <= tiny().top_k_items
    assert preds["reasons"].str.len().gt(0).mean() > 0.5  # most shoppers get words

    assert forecast.latest_model(engine, "sim").model_version == card.model_version
    folder = config.models_dir() / str(card.dataset_id) / card.model_version
    assert (folder / "model.safetensors").is_file() and (folder / "vocabularies.json").is_file()
    again = forecast.ModelCard.from_dict(card.to_dict())
    assert again.to_dict() == card.to_dict() and "propensity" in again.to_text()

    # rescoring rewrites the same rows
    assert forecast.score(engine, "sim") == n_users
    rescored = forecast.load_predictions(engine, "sim")
    pd.testing.assert_frame_equal(rescored.sort_values("user_id").reset_index(drop=True),
                                  preds.sort_values("user_id").reset_index(drop=True), check_exact=False, atol=1e-6)
    with pytest.raises(NotFittedError, match="no ready model version"):
        forecast.load_predictions(engine, "sim", model_version="nope")
    assert [c.model_version for c in forecast.list_models(engine, "sim")] == [card.model_version]
    assert registry.model_rows(engine, card.dataset_id)[0]["status"] == "ready"


@pytest.mark.slow
def test_same_seed_gives_the_same_forecasts(tmp_path, sim_small):
    frames = []
    for name in ("one", "two"):
        engine = _store(tmp_path, name)
        load_events(engine, "sim", canonical(sim_small.events))
        forecast.train(engine, "sim", config=tiny(epochs=1, min_train_steps=5), settings=settings(), seed=4)
        frames.append(forecast.load_predictions(engine, "sim").drop(columns="model_version")
                      .sort_values("user_id").reset_index(drop=True))
    pd.testing.assert_frame_equal(frames[0], frames[1])


@pytest.mark.slow
def test_cancelling_leaves_no_model(tmp_path, sim_small):
    from core import config

    engine = _store(tmp_path)
    load_events(engine, "sim", canonical(sim_small.events))
    calls = {"n": 0}

    def stop_after_a_few_steps() -> bool:
        calls["n"] += 1
        return calls["n"] > 12

    with pytest.raises(TrainingCancelled):
        forecast.train(engine, "sim", config=tiny(), settings=settings(), should_stop=stop_after_a_few_steps)
    assert forecast.latest_model(engine, "sim") is None
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(store.models)).scalar() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(store.predictions)).scalar() == 0
    root = config.models_dir()
    assert not root.exists() or not any(p for p in root.rglob("*") if p.is_file())


@pytest.mark.slow
def test_a_cancel_during_scoring_keeps_the_previous_version(tmp_path, sim_small):
    engine = _store(tmp_path)
    load_events(engine, "sim", canonical(sim_small.events))
    first = forecast.train(engine, "sim", config=tiny(epochs=1, min_train_steps=5), settings=settings())
    reports = []

    def stop_when_scoring() -> bool:
        return any(r.stage == "scoring" for r in reports)

    with pytest.raises(TrainingCancelled):
        forecast.train(engine, "sim", config=tiny(epochs=1, min_train_steps=5), settings=settings(chunk_users=50),
                       progress=reports.append, should_stop=stop_when_scoring)
    assert [c.model_version for c in forecast.list_models(engine, "sim")] == [first.model_version]
    preds = forecast.load_predictions(engine, "sim")
    assert set(preds["model_version"]) == {first.model_version}


@pytest.mark.slow
def test_a_publish_stopped_after_some_forecasts_were_written_leaves_none_on_any_store(engine):
    """Cancelled after a first chunk of forecasts was written: none of them stays, on a store with transactions
    (rolled back) and on Spark, which has none (the publish removes them itself)."""
    sim = simulate.simulate(100, weeks=4, seed=5)
    load_events(engine, "small", canonical(sim.events))
    reports = []

    def stop_after_a_chunk() -> bool:
        return any(r.stage == "scoring" and r.message.startswith("scored ") for r in reports)

    with pytest.raises(TrainingCancelled):
        forecast.train(engine, "small", config=tiny(epochs=1, min_train_steps=5), settings=settings(chunk_users=30),
                       progress=reports.append, should_stop=stop_after_a_chunk)
    assert any(r.message.startswith("scored 30 of 100") for r in reports)  # a chunk was written first
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(store.models)).scalar() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(store.predictions)).scalar() == 0


@pytest.mark.slow
def test_one_hundred_shoppers_get_forecasts_and_an_honest_card(engine):
    sim = simulate.simulate(100, weeks=4, seed=5)
    load_events(engine, "small", canonical(sim.events))
    card = forecast.train(engine, "small", config=tiny(epochs=1, min_train_steps=10), settings=settings())
    prop = card.heads["propensity"]
    buyers = prop["metrics"]["model"]["buyers"]
    if buyers < 20:
        assert prop["metrics"]["model"]["roc_auc"] is None and "Too few buyers" in prop["note"]
        assert card.lift == []
    preds = forecast.load_predictions(engine, "small")
    assert len(preds) == 100 and preds["purchase_propensity"].notna().all()


@pytest.mark.slow
def test_value_and_churn_are_measured_stored_and_rescored(engine):
    """Every shopper gets an expected revenue and a chance of no activity, chosen on the held-out window beside
    their baselines; re-scoring writes the same; a version saved before them scores them empty."""
    from core.model import registry
    from core.model.rfm_baseline import rfm_features

    sim = simulate.simulate(200, weeks=5, seed=3)
    load_events(engine, "sim", canonical(sim.events))
    card = forecast.train(engine, "sim", horizon_days=7, config=tiny(epochs=1, min_train_steps=10), seed=1)
    revenue, churn = card.value["expected_revenue"], card.value["p_inactive"]
    assert set(revenue["metrics"]) == {"model", "propensity_x_spend", "gradient_boosting_rfm", "gamma_gamma_x_propensity",
                                      "past_spend_rate"}
    assert set(revenue["reference"]) == {"propensity_alone"} and revenue["used"] in revenue["metrics"]
    assert set(churn["metrics"]) == {"model", "gradient_boosting_rfm", "recency"} and churn["used"] in churn["metrics"]
    assert "expected_revenue" in card.to_text() and "recency:" in card.to_text()
    assert forecast.ModelCard.from_dict(card.to_dict()).value == card.value

    preds = forecast.load_predictions(engine, "sim").sort_values("user_id", ignore_index=True)
    assert preds["expected_revenue"].notna().all() and (preds["expected_revenue"] >= 0).all()
    assert preds["p_inactive"].between(0, 1).all() and preds["p_inactive"].nunique() > 5
    # shoppers unseen for longer are likelier to stay away: the forecast must say so
    history = canonical(sim.events)
    recency = rfm_features(history, history["event_time"].max() + dt.timedelta(seconds=1),
                           users=preds["user_id"].tolist())["recency_days"].to_numpy()
    assert np.corrcoef(recency, preds["p_inactive"])[0, 1] > 0.3
    bought = history[history["event_type"] == "purchase"].groupby("user_id")["price"].sum()
    spend = preds["user_id"].map(bought).fillna(0.0)
    assert preds.loc[spend > 0, "expected_revenue"].mean() > preds.loc[spend == 0, "expected_revenue"].mean()

    forecast.score(engine, "sim")
    again = forecast.load_predictions(engine, "sim").sort_values("user_id", ignore_index=True)
    pd.testing.assert_frame_equal(again, preds, check_exact=False, atol=1e-9)
    (registry.version_dir(card.dataset_id, card.model_version) / registry.VALUE_FILE).unlink()
    forecast.score(engine, "sim")
    older = forecast.load_predictions(engine, "sim")
    assert older["expected_revenue"].isna().all() and older["p_inactive"].isna().all()
    assert older["purchase_propensity"].notna().all()


@pytest.mark.slow
def test_propensity_ranks_shoppers_in_buying_mode_first(tmp_path):
    """The simulator plants a hidden buying mode; the model's propensity must find it without being told."""
    from core.model import sequences
    from core.model import evaluation, registry
    from core.model.training import predict_examples

    sim = simulate.simulate(800, weeks=6, seed=11)
    engine = _store(tmp_path)
    load_events(engine, "planted", canonical(sim.events))
    card = forecast.train(engine, "planted", config=tiny(epochs=3, min_train_steps=60, max_len=30), settings=settings(),
                          seed=0)
    lm = registry.load_model(registry.version_dir(card.dataset_id, card.model_version))
    _, last, _ = forecast._data_window(engine, card.dataset_id)
    end = last + dt.timedelta(seconds=1)
    batch = sequences.SequenceBatch.concat(list(sequences.iter_sequences(engine, card.dataset_id, end, lm.vocabs, lm.config.max_len, 400)))
    p = predict_examples(lm.model, batch, lm.config).propensity
    # the state on the last day carries into the (unseen) days after the data's end
    mode = simulate.buying_mode_at(sim, last)
    mode = mode.set_axis(mode.index.astype(str)).reindex(batch.user_ids).fillna(False).astype(int).to_numpy()
    assert mode.sum() >= 20
    auc = evaluation.roc_auc(mode, p)
    assert auc > 0.65, f"ROC-AUC of the model's propensity against the planted buying mode: {auc:.3f}"


@pytest.mark.slow
def test_refit_on_the_latest_window_is_stated_in_the_card(tmp_path):
    sim = simulate.simulate(120, weeks=4, seed=8)
    engine = _store(tmp_path)
    load_events(engine, "refit", canonical(sim.events))
    card = forecast.train(engine, "refit", config=tiny(epochs=1, min_train_steps=5, refit_on_latest=True),
                          settings=settings())
    assert card.refit_on_latest
    assert any("refit on all windows, the latest included" in n for n in card.notes)
    assert "Refit on the latest window: yes" in card.to_text()
    assert len(forecast.load_predictions(engine, "refit")) == 120


def test_chunk_rankers_keep_the_saved_popular_fill_and_read_each_shoppers_own_state():
    """Scoring a chunk uses the rankers as saved (fitted once, here on a sample): the popular fill and the
    transitions are not the chunk's own, while each shopper's own lists and last item come from the chunk."""
    import datetime as dt

    import pandas as pd

    from core.model import forecast
    from core.model import scoring

    t = dt.datetime(2024, 1, 1)
    rows = [("a", 0, "i1", "c1"), ("a", 1, "i2", "c2"), ("b", 2, "i1", "c1"), ("b", 3, "i1", "c1"),
            ("c", 4, "i3", "c3"), ("c", 5, "i2", "c2"), ("c", 6, None, "c3")]
    history = pd.DataFrame([{"user_id": u, "event_time": t + dt.timedelta(hours=h), "item_id": i, "category": c}
                            for u, h, i, c in rows])
    end = t + dt.timedelta(days=1)
    sample = history[history["user_id"].isin(["a", "b"])]  # "c" is not in the fitted sample
    fitted = forecast._rankers(sample, end, 7)
    heads = {"next_items": {"used": "markov_chain"}, "next_category": {"used": "own_most_frequent"}}
    saved = forecast._baselines_to_save({}, fitted, heads, Calibrator("identity"), k=3)
    assert set(saved["rankers"]) == {"markov_chain", "own_most_frequent"} and saved["rfm"] == {}
    baselines = forecast._baselines_from_saved(json.loads(json.dumps(saved)))
    chunk = history[history["user_id"] == "c"]
    own = scoring._chunk_ranker(baselines, "own_most_frequent", chunk, end)
    # c's own items (i2 last, ties to the latest), then the popular fill of the sample: i1 (3 events), i2
    assert own.rank_items(["c"], 3) == [["i2", "i3", "i1"]]
    assert own.rank_categories(["c"], 1) == [["c3"]]
    markov = scoring._chunk_ranker(baselines, "markov_chain", chunk, end)
    # c's last item is i2; the sample never saw a transition from i2, so the sample's popular order follows
    assert markov.rank_items(["c"], 2) == [["i1", "i2"]]
    assert markov.last_item_ == {"c": "i2"} and markov.last_category_ == {"c": "c3"}
    assert markov.item_transitions_ == {"i1": ["i1", "i2"]}  # fitted once, on the sample (a tie: popular first)
    with pytest.raises(ParameterError, match="k=4 is more than this saved ranker keeps"):
        markov.rank_items(["c"], 4)


@pytest.mark.slow
def test_rescoring_uses_the_saved_baselines_and_writes_what_training_wrote(tmp_path, sim_small, monkeypatch):
    """Every head served by a baseline: re-scoring refits nothing (the fits are switched off) and writes exactly
    the rows training wrote; a version saved before its baselines were kept refits them and agrees too."""
    from core.model import registry

    engine = _store(tmp_path)
    load_events(engine, "sim", canonical(sim_small.events))
    real_evaluate = forecast._evaluate

    def served_by_baselines(*args, **kwargs):
        result = real_evaluate(*args, **kwargs)
        result.heads["next_items"].used = "markov_chain"
        result.heads["next_category"].used = "own_most_frequent"
        result.heads["next_event_type"].used = "gradient_boosting_rfm"
        return result

    monkeypatch.setattr(forecast, "_evaluate", served_by_baselines)
    card = forecast.train(engine, "sim", horizon_days=7, config=tiny(), settings=settings(chunk_users=70), seed=1)
    trained = forecast.load_predictions(engine, "sim").sort_values("user_id", ignore_index=True)
    assert trained["next_category"].notna().all() and trained["top_items"].str.len().gt(0).all()
    # the baseline's chance of its category: its hit rate (accuracy@1) on the held-out window, never empty
    hit_rate = card.heads["next_category"]["metrics"]["own_most_frequent"]["accuracy@1"]
    assert hit_rate is not None and np.allclose(trained["next_category_p"].to_numpy(dtype=float), hit_rate)
    folder = registry.version_dir(card.dataset_id, card.model_version)
    saved = json.loads((folder / registry.BASELINES_FILE).read_text())
    assert set(saved["rankers"]) == {"markov_chain", "own_most_frequent"}
    assert set(saved["rfm"]) == {"propensity", "next_event_type"}

    def refit(*args, **kwargs):
        raise AssertionError("re-scoring refitted a baseline or the priors")

    def scored() -> pd.DataFrame:
        forecast.score(engine, "sim")
        return forecast.load_predictions(engine, "sim").sort_values("user_id", ignore_index=True)

    with monkeypatch.context() as m:
        for name in ("_fit_rfm", "_rankers", "_priors"):
            m.setattr(forecast, name, refit)
        pd.testing.assert_frame_equal(scored(), trained, check_exact=True)
    (folder / registry.BASELINES_FILE).unlink()
    pd.testing.assert_frame_equal(scored(), trained, check_exact=True)


@pytest.mark.slow
@pytest.mark.parametrize("propensity_from", ["model", "gradient_boosting_rfm"])
def test_shoppers_with_different_model_scores_never_share_a_propensity(tmp_path, sim_small, monkeypatch,
                                                                        propensity_from):
    """Through the real train and score path: the stored propensity keeps the model's order strictly (the
    calibration is strictly increasing), with no band of shoppers at one rounded value; when gradient boosting
    fills the head, its trees' ties are ordered by the model, so a top-k list never cuts through a tie."""
    from core.model import scoring

    real_evaluate, real_chunk = forecast._evaluate, scoring._score_chunk
    raw: dict[str, float] = {}

    def choose(*args, **kwargs):
        result = real_evaluate(*args, **kwargs)
        result.heads["propensity"].used = propensity_from
        return result

    def chunk(loaded, batch, *args, **kwargs):  # what the calibration read for each scored shopper
        calls, cls = [], type(loaded["calibrator"])
        real_call = cls.__call__
        with monkeypatch.context() as m:
            m.setattr(cls, "__call__", lambda self, p, other=None: calls.append(self.blend(p, other))
                      or real_call(self, p, other))
            frame = real_chunk(loaded, batch, *args, **kwargs)
        assert calls, "scoring did not read the model's score"
        raw.update(zip(frame["user_id"], calls[-1]))
        return frame

    monkeypatch.setattr(forecast, "_evaluate", choose)
    monkeypatch.setattr(scoring, "_score_chunk", chunk)
    engine = _store(tmp_path)
    load_events(engine, "sim", canonical(sim_small.events))
    forecast.train(engine, "sim", horizon_days=7, config=tiny(), settings=settings(), seed=1)
    preds = forecast.load_predictions(engine, "sim")
    preds["raw"] = preds["user_id"].map(raw)
    assert preds["raw"].notna().all() and preds["raw"].nunique() > 0.9 * len(preds)
    # two shoppers with different model scores never share a propensity
    assert preds.groupby("purchase_propensity")["raw"].nunique().max() == 1
    if propensity_from == "model":
        by_raw = preds.sort_values("raw")
        steps = by_raw["purchase_propensity"].diff()[by_raw["raw"].diff() > 0]
        assert (steps > 0).all()  # the model's order, strictly
        widest = lambda s: s.round(4).value_counts().max()  # noqa: E731
        assert widest(preds["purchase_propensity"]) <= max(3, 3 * widest(preds["raw"]))


@pytest.mark.slow
def test_the_run_settings_reach_training_and_scoring_and_stay_with_the_version(tmp_path, sim_small):
    """No reasons and a report every 3 steps when the settings say so; re-scoring uses the version's own settings
    unless given others; the card, config.json and the cs_models row record them."""
    from core.model import registry

    engine = _store(tmp_path)
    load_events(engine, "sim", canonical(sim_small.events))
    reports = []
    run = settings(n_reasons=0, progress_every=3)
    card = forecast.train(engine, "sim", horizon_days=7, config=tiny(epochs=1, min_train_steps=12), settings=run,
                          progress=reports.append, seed=1)
    steps = [r.step for r in reports if r.stage == "training" and r.message and "step" in r.message]
    assert steps and all(s % 3 == 0 for s in steps) and len(steps) == card.loss_curve[-1]["step"] // 3
    assert (forecast.load_predictions(engine, "sim")["reasons"] == "").all()
    assert card.settings == {"chunk_users": 150, "n_reasons": 0, "progress_every": 3, "torch_threads": 1,
                             "scoring_threads": 2}
    assert "torch_threads" not in card.config and card.config["hidden_size"] == 16
    folder = registry.version_dir(card.dataset_id, card.model_version)
    assert json.loads((folder / registry.CONFIG_FILE).read_text())["settings"] == card.settings
    with engine.connect() as conn:
        row = json.loads(conn.execute(sa.select(store.models.c.config_json)).scalar_one())
    assert (row["torch_threads"], row["n_reasons"], row["chunk_users"], row["hidden_size"]) == (1, 0, 150, 16)

    forecast.score(engine, "sim")  # the version's settings: still no reasons
    assert (forecast.load_predictions(engine, "sim")["reasons"] == "").all()
    forecast.score(engine, "sim", settings=settings(n_reasons=1))
    reasons = forecast.load_predictions(engine, "sim")["reasons"]
    assert reasons.str.len().gt(0).mean() > 0.5 and not reasons.str.contains(";").any()
