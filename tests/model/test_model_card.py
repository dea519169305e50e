"""The model card's first words: how the top 10 % bought beside the RFM baseline, and a verdict with thresholds."""
import datetime as dt

import pytest

from core import config
from core.model.card import ModelCard


def _card(model_lift, rfm_lift, used="model", lift_table=None) -> ModelCard:
    metrics = {"model": {"roc_auc": 0.7, "top_decile_lift": model_lift},
               "gradient_boosting_rfm": {"roc_auc": 0.65, "top_decile_lift": rfm_lift}}
    return ModelCard(model_version="v1", dataset="shop", dataset_id=1, created_at=dt.datetime(2024, 3, 1),
                     horizon_days=7, data_window=(dt.datetime(2024, 1, 1), dt.datetime(2024, 3, 1)), plan={},
                     n_users=100, n_users_trained=100, sampled=False, n_train_examples=300, training_seconds=1.0,
                     heads={"propensity": {"metrics": metrics, "used": used, "note": ""}}, lift=lift_table or [])


def test_headline_compares_the_top_ten_percent_with_the_rfm_baseline():
    card = _card(2.43, 1.91)
    assert card.headline() == (
        "Your top 10 % by this forecast bought 2.4× as often as average in the held-out 7-day window; the simple "
        "RFM baseline (gradient boosting on recency, frequency and spend): 1.9×.")
    assert _card(1.2, 1.6, used="gradient_boosting_rfm").headline().startswith(
        "Your top 10 % by this forecast bought 1.6× as often as average in the held-out 7-day window (the simple "
        "RFM baseline is in use: the sequence model did not beat it); the sequence model: 1.2×")


@pytest.mark.parametrize("lift, word", [(3.0, "strong"), (config.VERDICT_STRONG_LIFT, "strong"), (2.0, "useful"),
                                        (config.VERDICT_USEFUL_LIFT, "useful"), (1.2, "weak"), (None, "not measured")])
def test_verdict_in_words_with_its_thresholds(lift, word):
    got, sentence = _card(lift, 1.5).verdict()
    assert got == word
    assert f"at least {config.VERDICT_STRONG_LIFT:g}× as often as average" in sentence
    assert f"useful from {config.VERDICT_USEFUL_LIFT:g}×" in sentence


def test_older_cards_take_the_lift_of_the_forecast_in_use_from_their_lift_table():
    card = _card(None, None, lift_table=[{"decile": 1, "lift": 2.7}, {"decile": 2, "lift": 1.4}])
    assert card.top_decile_lifts() == {"model": 2.7}
    assert card.verdict()[0] == "strong" and "2.7×" in card.headline()
    assert card.to_text().splitlines()[:2] == [card.headline(), card.verdict()[1]]
