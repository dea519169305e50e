"""Model versions: save -> load gives identical forecasts; predictions bulk-written on DuckDB and PostgreSQL."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from core.model import sequences
from core.errors import CartsightError, NotFittedError
from core.model.evaluation import Calibrator
from tests.model.test_model import random_batch, tiny_config

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("CARTSIGHT_HOME", str(tmp_path / "home"))
    torch.set_num_threads(1)


def _vocabs(n_items: int, n_cats: int) -> sequences.Vocabularies:
    return sequences.Vocabularies(
        items=sequences.Vocabulary("items", [f"item{i}" for i in range(n_items - 2)]),
        categories=sequences.Vocabulary("categories", [f"cat{i}" for i in range(n_cats - 2)]),
        brands=sequences.Vocabulary("brands", ["b1", "b2"]),
        price_bands={"cat0": [1.0, 2.0, 3.0], sequences.ALL_CATEGORIES: [1.0, 5.0, 9.0]},
    )


def test_save_load_round_trip_gives_identical_predictions():
    from core.model import registry
    from core.model.modeling import ForecastModel, batch_tensors

    torch.manual_seed(3)
    cfg = tiny_config().with_vocab_sizes(30, 12, 4)
    model = ForecastModel(cfg).eval()
    vocabs = _vocabs(30, 12)
    calibrator = Calibrator("platt", a=0.5, b=-1.0)
    folder = registry.version_dir(7, registry.new_version(7))
    registry.save_model(folder, model, cfg, vocabs, calibrator, {"model_version": "x", "heads": {}})
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["model.safetensors", "config.json", "vocabularies.json", "calibrator.json", "card.json"])
    assert not folder.with_name(folder.name + ".partial").exists()

    loaded = registry.load_model(folder)
    batch = random_batch(8, cfg.max_len, 30, 12, seed=2)
    before = model.predict(batch_tensors(batch), 5, 3)
    after = loaded.model.predict(batch_tensors(batch), 5, 3)
    for name in ("propensity", "type_proba", "category_p", "item_p"):
        np.testing.assert_array_equal(getattr(before, name), getattr(after, name))
    np.testing.assert_array_equal(before.item_ids, after.item_ids)
    assert loaded.config == cfg
    assert json.loads((folder / "config.json").read_text())["config"]["item_vocab_size"] == 30
    assert loaded.vocabs.to_dict() == vocabs.to_dict()
    assert loaded.calibrator(np.array([0.2]))[0] == pytest.approx(calibrator(np.array([0.2]))[0])
    assert json.loads((folder / "vocabularies.json").read_text())["items"]["tokens"][0] == "item0"

    with pytest.raises(CartsightError, match="never overwritten"):
        registry.save_model(folder, model, cfg, vocabs, calibrator, {})


def test_loading_a_missing_version_says_so(tmp_path):
    from core.model import registry

    with pytest.raises(NotFittedError, match="missing or incomplete"):
        registry.load_model(tmp_path / "nothing")


def _prediction_frame(did: int, version: str) -> pd.DataFrame:
    return pd.DataFrame({
        "dataset_id": did, "model_version": version, "user_id": ["u1", "u2", "u3"],
        "purchase_propensity": [0.2, 0.9, 0.5], "next_event_type": ["view", "purchase", "none"],
        "p_view": [0.5, 0.1, 0.2], "p_cart": [0.2, 0.2, 0.1], "p_purchase": [0.1, 0.6, 0.1],
        "p_remove": [0.0, 0.0, 0.0], "p_none": [0.2, 0.1, 0.6], "next_category": ["a.b", None, "c"],
        "next_category_p": [0.4, np.nan, 0.3], "top_items": ["1 2 3", "4", ""],
        "reasons": ["carted 2 phones in the last 3 days (raises the chance)", "", "no visit for 20 days (lowers the chance)"],
        "expected_revenue": [12.5, 310.25, np.nan], "p_inactive": [0.3, 0.05, 0.81],
    })


def test_predictions_bulk_write_and_model_row(engine, tmp_path):
    from core.model import registry

    cfg = tiny_config()
    with engine.begin() as conn:
        registry.write_predictions(conn, _prediction_frame(1, "v1"))
        registry.insert_model_row(conn, "v1", 1, 7, tmp_path, cfg, {"model_version": "v1"})
    rows = registry.model_rows(engine, 1)
    assert [r["model_version"] for r in rows] == ["v1"] and rows[0]["status"] == "ready"
    got = registry.read_predictions(engine, 1, "v1")
    assert got["user_id"].tolist() == ["u2", "u3", "u1"]  # highest propensity first
    assert pd.isna(got.loc[0, "next_category"]) and pd.isna(got.loc[0, "next_category_p"])
    assert got.loc[1, "reasons"] == "no visit for 20 days (lowers the chance)"
    assert got.loc[2, "top_items"] == "1 2 3"
    assert got.loc[[0, 2], "expected_revenue"].tolist() == [310.25, 12.5] and pd.isna(got.loc[1, "expected_revenue"])
    assert got["p_inactive"].tolist() == [0.05, 0.81, 0.3]

    with engine.begin() as conn:
        registry.delete_predictions(conn, 1, "v1")
    assert registry.read_predictions(engine, 1, "v1").empty


def test_store_of_schema_3_gains_the_value_columns(engine, tmp_path):
    import sqlalchemy as sa

    from tests.conftest import NO_OLD_SPARK_STORES, skip_on_spark

    skip_on_spark(engine, NO_OLD_SPARK_STORES)

    from core import config, store
    from core.model import registry

    old = _prediction_frame(1, "v1").drop(columns=["expected_revenue", "p_inactive"])
    with engine.begin() as conn:  # the predictions table as schema 3 left it, with a version's rows
        conn.exec_driver_sql("ALTER TABLE cs_predictions DROP COLUMN p_inactive")
        conn.exec_driver_sql("ALTER TABLE cs_predictions DROP COLUMN expected_revenue")
        conn.execute(sa.update(store.schema_info).values(version=3))
        conn.execute(store.predictions.insert(), old.to_dict("records"))
        registry.insert_model_row(conn, "v1", 1, 7, tmp_path, tiny_config(), {"model_version": "v1"})
    store.ensure_schema(engine)
    with engine.connect() as conn:
        assert conn.execute(sa.select(store.schema_info.c.version)).scalars().all() == [config.SCHEMA_VERSION]
    got = registry.read_predictions(engine, 1, "v1")
    assert got["user_id"].tolist() == ["u2", "u3", "u1"]
    assert got["expected_revenue"].isna().all() and got["p_inactive"].isna().all()
    with engine.begin() as conn:  # and the new version's rows carry them
        registry.write_predictions(conn, _prediction_frame(1, "v2"))
    assert registry.read_predictions(engine, 1, "v2")["p_inactive"].tolist() == [0.05, 0.81, 0.3]


def test_a_failed_publish_leaves_no_rows(engine):
    from core.model import registry
    from tests.conftest import skip_on_spark

    skip_on_spark(engine, "Spark has no transactions: a failed publish removes its version's rows itself "
                          "(core.model.forecast._publish)")

    with pytest.raises(RuntimeError):
        with engine.begin() as conn:
            registry.write_predictions(conn, _prediction_frame(1, "v2"))
            raise RuntimeError("killed half way")
    assert registry.read_predictions(engine, 1, "v2").empty
    assert registry.model_rows(engine, 1) == []


def _saved_tiny_version():
    """``(config, model, folder)`` of a tiny model (seed 3, 30 items, 12 categories) saved as a version of dataset 7."""
    from core.model import registry
    from core.model.modeling import ForecastModel

    torch.manual_seed(3)
    cfg = tiny_config().with_vocab_sizes(30, 12, 4)
    model = ForecastModel(cfg).eval()
    folder = registry.version_dir(7, registry.new_version(7))
    registry.save_model(folder, model, cfg, _vocabs(30, 12), Calibrator("platt", a=0.5, b=-1.0), {})
    return cfg, model, folder


def test_a_version_saved_before_the_session_prior_keeps_its_category_forecast():
    """Weights without ``session_prior_scale`` load with that weight at zero: the category logits are as before."""
    from safetensors.torch import load_file, save_file

    from core.model import registry
    from core.model.modeling import batch_tensors

    cfg, model, folder = _saved_tiny_version()
    weights = load_file(str(folder / registry.WEIGHTS_FILE))
    assert weights.pop("session_prior_scale") is not None
    save_file(weights, str(folder / registry.WEIGHTS_FILE))

    loaded = registry.load_model(folder)
    assert float(loaded.model.session_prior_scale.detach()) == 0.0
    inputs = batch_tensors(random_batch(6, cfg.max_len, 30, 12, seed=2))
    with torch.no_grad():
        model.session_prior_scale.zero_()
        np.testing.assert_allclose(loaded.model(inputs).category_logits.detach().numpy(),
                                   model(inputs).category_logits.detach().numpy(), rtol=1e-6)


def test_a_version_saved_before_the_config_held_its_vocabulary_sizes_loads_as_saved():
    """config.json without the sizes, with the "shape" beside it (the earlier format): the same model, sizes filled."""
    from core.model import registry
    from core.model.config import VOCAB_SIZES
    from core.model.modeling import batch_tensors

    cfg, model, folder = _saved_tiny_version()
    meta = json.loads((folder / registry.CONFIG_FILE).read_text())
    old = {k: v for k, v in meta["config"].items() if k not in VOCAB_SIZES}
    (folder / registry.CONFIG_FILE).write_text(json.dumps(
        {"config": old, "shape": {"n_items": 30, "n_categories": 12, "n_brands": 4}}))

    loaded = registry.load_model(folder)
    assert loaded.config == cfg and loaded.config.vocab_sizes() == (30, 12, 4)
    inputs = batch_tensors(random_batch(6, cfg.max_len, 30, 12, seed=2))
    with torch.no_grad():
        np.testing.assert_array_equal(loaded.model(inputs).category_logits.numpy(),
                                      model(inputs).category_logits.numpy())


def test_a_version_keeps_the_settings_it_was_trained_with():
    """config.json holds the hyperparameters and the run's settings apart; they come back as saved."""
    from core.model import registry
    from core.model.config import SETTINGS_KEYS, PipelineSettings
    from core.model.modeling import ForecastModel

    cfg = tiny_config().with_vocab_sizes(30, 12, 4)
    settings = PipelineSettings(chunk_users=70, n_reasons=1, progress_every=4, torch_threads=2, scoring_threads=3)
    folder = registry.version_dir(7, registry.new_version(7))
    registry.save_model(folder, ForecastModel(cfg).eval(), cfg, _vocabs(30, 12), Calibrator("platt", a=0.5, b=-1.0),
                        {}, settings=settings)
    meta = json.loads((folder / registry.CONFIG_FILE).read_text())
    assert meta["settings"] == {"chunk_users": 70, "n_reasons": 1, "progress_every": 4, "torch_threads": 2,
                                "scoring_threads": 3}
    assert not set(SETTINGS_KEYS) & set(meta["config"])
    loaded = registry.load_model(folder)
    assert loaded.config == cfg and loaded.settings == settings


def test_a_version_saved_with_the_settings_among_its_hyperparameters_loads():
    """An older config.json holds the four settings inside "config": the model loads, and they are its settings."""
    from core.model import registry
    from core.model.config import PipelineSettings
    from core.model.modeling import batch_tensors

    cfg, model, folder = _saved_tiny_version()
    meta = json.loads((folder / registry.CONFIG_FILE).read_text())
    legacy = {**meta["config"], "chunk_users": 150, "n_reasons": 0, "progress_every": 10, "torch_threads": 1}
    (folder / registry.CONFIG_FILE).write_text(json.dumps({"config": legacy}))

    loaded = registry.load_model(folder)
    assert loaded.config == cfg
    assert loaded.settings == PipelineSettings(chunk_users=150, n_reasons=0, progress_every=10, torch_threads=1)
    inputs = batch_tensors(random_batch(6, cfg.max_len, 30, 12, seed=2))
    with torch.no_grad():
        np.testing.assert_array_equal(loaded.model(inputs).propensity_logit.numpy(), model(inputs).propensity_logit.numpy())
