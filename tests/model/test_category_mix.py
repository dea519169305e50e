"""The shopper's own category mix in the next-category forecast: its weight chosen on validation, applied, saved."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from core.model import registry
from core.model.category_mix import choose_own_category_weight, own_weight_hits
from core.model.priors import own_category_logp
from core.model.evaluation import Calibrator
from core.model.modeling import ForecastModel, batch_tensors
from core.model.training import ExampleSet
from tests.model.test_model import _one_shopper_batch, tiny_config

PHONE, LAMP = 2, 3  # the vocabulary ids of _one_shopper_batch's categories


def _model_on_priors_alone() -> ForecastModel:
    """Empty transition priors and no learned terms: every category equally likely until the own mix is added."""
    model = ForecastModel(tiny_config(max_len=6).with_vocab_sizes(5, 4, 3)).eval()
    model.category_learned.fill_(0.0)
    return model


def _valid(next_category: str) -> ExampleSet:
    batch, _ = _one_shopper_batch()
    targets = pd.DataFrame({"user_id": ["u"], "next_category": [next_category]})
    return ExampleSet(batch=batch, labels={}, targets=targets, cutoff_index=np.zeros(1, dtype=np.int64))


def test_own_category_counts_are_the_shoppers_events():
    batch, _ = _one_shopper_batch()  # lamp 3 events, phone 2
    own = own_category_logp(batch_tensors(batch), 4)
    assert torch.allclose(own[0, [PHONE, LAMP]], torch.log(torch.tensor([2.5, 3.5])))
    assert float(own[0, 1]) == float(own[0, 0]) == float(torch.log(torch.tensor(0.5)))  # "other" (unvisited), padding


def test_the_weight_is_chosen_on_validation_and_moves_the_forecast():
    batch, vocabs = _one_shopper_batch()
    model = _model_on_priors_alone()
    before = model.predict(batch_tensors(batch), top_k_items=0, top_k_categories=2)
    assert np.isclose(before.category_p[0, 0], before.category_p[0, 1])  # a tie without the own mix
    hits = own_weight_hits(model, batch, np.array([LAMP]), tiny_config(max_len=6))
    assert hits.tolist() == [0, 1, 1, 1, 1, 1]  # the tie goes to the first id (phone); any weight picks lamp
    note = choose_own_category_weight(model, _valid("home.lamp"), vocabs, tiny_config(max_len=6))
    assert float(model.own_category_weight) == 0.25 and "weight 0.25" in note  # the smallest of the best
    after = model.predict(batch_tensors(batch), top_k_items=0, top_k_categories=2)
    assert after.category_ids[0, 0] == LAMP and after.category_p[0, 0] > 0.5


def test_a_mix_that_does_not_help_is_left_out():
    _, vocabs = _one_shopper_batch()
    model = _model_on_priors_alone()
    note = choose_own_category_weight(model, _valid("electronics.smartphone"), vocabs, tiny_config(max_len=6))
    assert float(model.own_category_weight) == 0.0 and "left out" in note


def test_the_weight_is_saved_with_the_version_and_older_versions_load_without_it(tmp_path):
    batch, vocabs = _one_shopper_batch()
    model = _model_on_priors_alone()
    model.own_category_weight.fill_(2.0)
    cfg = model.config
    registry.save_model(tmp_path / "v1", model, cfg, vocabs, Calibrator(), {})
    assert float(registry.load_model(tmp_path / "v1").model.own_category_weight) == 2.0
    from safetensors.torch import load_file, save_file

    weights = load_file(str(tmp_path / "v1" / registry.WEIGHTS_FILE))
    del weights["own_category_weight"]  # a version saved before the own mix existed
    save_file(weights, str(tmp_path / "v1" / registry.WEIGHTS_FILE))
    assert float(registry.load_model(tmp_path / "v1").model.own_category_weight) == 0.0


def _moved_to_lamp() -> tuple:
    """One shopper: phone 9, 2.5 and 2 days ago (three sessions), then one session of two lamp views 3 h ago."""
    batch, vocabs = _one_shopper_batch()
    batch.category[0] = [0, PHONE, PHONE, PHONE, LAMP, LAMP]
    return batch, vocabs


def test_sessions_back_and_own_shares_weigh_recent_sessions_more():
    from core.model.config import SESSION_GAP_DAYS
    from core.model.priors import own_category_share, sessions_back

    batch, _ = _moved_to_lamp()
    back = sessions_back(batch.event_type, batch.age_days, SESSION_GAP_DAYS)
    assert back[0, 1:].tolist() == [3, 2, 1, 0, 0]  # the two lamp views 7 minutes apart: one session
    inputs = batch_tensors(batch)
    all_time, n = own_category_share(inputs, 4, float("inf"))
    assert float(n[0]) == 5 and torch.allclose(all_time[0, [PHONE, LAMP]], torch.tensor([0.6, 0.4]))  # habit first
    recent, _ = own_category_share(inputs, 4, 1.0)  # weights 1/8, 1/4, 1/2 for the phone sessions, 1 for the lamp
    assert torch.allclose(recent[0, [PHONE, LAMP]], torch.tensor([0.875, 2.0]) / 2.875)
    last, _ = own_category_share(inputs, 4, 0.0)
    assert last[0, [PHONE, LAMP]].tolist() == [0.0, 1.0]


def test_a_shopper_who_moved_to_a_new_category_gets_it_first_once_the_mix_is_chosen():
    from core.model.category_mix import choose_category_mix

    batch, vocabs = _moved_to_lamp()
    model = _model_on_priors_alone()
    valid = _valid("home.lamp")
    valid.batch = batch
    choose_own_category_weight(model, valid, vocabs, tiny_config(max_len=6))
    assert float(model.own_category_weight) == 0.0  # all-time counts rank the old habit (phone) first
    note = choose_category_mix(model, valid, vocabs, tiny_config(max_len=6))
    assert "last session's (100%)" in note and "1.000 with the mix, 0.000 without" in note
    pred = model.predict(batch_tensors(batch), top_k_items=0, top_k_categories=2)
    assert pred.category_ids[0].tolist() == [LAMP, PHONE] and np.isclose(pred.category_p[0, 0], 1.0)


def test_a_mix_that_does_not_raise_the_likelihood_is_left_out():
    from core.model.category_mix import choose_category_mix

    batch, vocabs = _moved_to_lamp()
    batch.category[0] = [0, LAMP, LAMP, LAMP, LAMP, LAMP]  # only lamps, and the next category is a phone
    model = _model_on_priors_alone()
    valid = _valid("electronics.smartphone")
    valid.batch = batch
    note = choose_category_mix(model, valid, vocabs, tiny_config(max_len=6))
    assert model.category_mix[:2].tolist() == [0.0, 0.0] and "not used" in note
    assert model.predict(batch_tensors(batch), top_k_items=0, top_k_categories=1).category_ids[0, 0] == PHONE


def test_the_mix_is_saved_with_the_version_and_older_versions_load_without_it(tmp_path):
    batch, vocabs = _moved_to_lamp()
    model = _model_on_priors_alone()
    model.category_mix.copy_(torch.tensor([0.0, 1.0, 3.0, 2.0]))
    registry.save_model(tmp_path / "v1", model, model.config, vocabs, Calibrator(), {})
    loaded = registry.load_model(tmp_path / "v1").model
    assert loaded.category_mix.tolist() == [0.0, 1.0, 3.0, 2.0]
    assert loaded.predict(batch_tensors(batch), top_k_items=0, top_k_categories=1).category_ids[0, 0] == LAMP
    from safetensors.torch import load_file, save_file

    weights = load_file(str(tmp_path / "v1" / registry.WEIGHTS_FILE))
    del weights["category_mix"]  # a version saved before the mix existed: its forecast as it was (a tie: phone)
    save_file(weights, str(tmp_path / "v1" / registry.WEIGHTS_FILE))
    old = registry.load_model(tmp_path / "v1").model
    assert old.category_mix[:2].tolist() == [0.0, 0.0]
    assert old.predict(batch_tensors(batch), top_k_items=0, top_k_categories=1).category_ids[0, 0] == PHONE
