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
