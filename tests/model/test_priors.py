"""Transition priors: counts by hand, smoothing by hand, no event at or after the cutoff counted, and the model reading them."""
from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest

from core.model import sequences
from core.model.priors import TransitionPrior, build_prior, last_known
from tests.conftest import make_dataset

D = dt.datetime(2024, 1, 1)


def _ev(user, minutes, item, category):
    return {"user_id": user, "event_time": D + dt.timedelta(minutes=minutes), "event_type": "view", "item_id": item,
            "category": category, "brand": None, "price": None, "session_id": None}


ROWS = [
    # u1: a -> b -> a -> b (a->b twice, b->a once); the missing category is skipped, not a break
    _ev("u1", 0, "i1", "a"), _ev("u1", 1, "i2", "b"), _ev("u1", 2, "i9", None), _ev("u1", 3, "i1", "a"),
    _ev("u1", 4, "i2", "b"),
    # u2: a -> c; a transition never crosses shoppers (u1's last b does not lead to u2's a)
    _ev("u2", 0, "i1", "a"), _ev("u2", 1, "i3", "c"),
    # u3: c -> a only after the cutoff used below (minute 10): not counted before it
    _ev("u3", 5, "i3", "c"), _ev("u3", 20, "i1", "a"),
]


def _vocab(values):
    return sequences.Vocabulary("categories", list(values))


def test_category_counts_by_hand(engine):
    did = make_dataset(engine, "trans", ROWS)
    vocab = _vocab(["a", "b", "c"])  # ids a=2, b=3, c=4
    prior = build_prior(engine, did, "category", vocab, D + dt.timedelta(minutes=10), top_k=2, alpha=1.0)
    # a -> b twice, a -> c once; b -> a once; c -> nothing before minute 10
    assert prior.succ_ids[2].tolist() == [3, 4] and prior.succ_counts[2].tolist() == [2.0, 1.0]
    assert prior.succ_ids[3].tolist() == [2, 0] and prior.succ_counts[3].tolist() == [1.0, 0.0]
    assert prior.totals.tolist() == [0.0, 0.0, 3.0, 1.0, 0.0]
    # popularity of successors, add-one smoothed over the three real ids: a 1+1, b 2+1, c 1+1 of 7
    assert prior.popularity[2:].tolist() == pytest.approx([2 / 7, 3 / 7, 2 / 7])
    assert prior.popularity[:2].tolist() == [0.0, 0.0]
    # all events: c -> a of u3 now counts too
    later = build_prior(engine, did, "category", vocab, None, top_k=2, alpha=1.0)
    assert later.succ_ids[4].tolist() == [2, 0] and later.totals[4] == 1.0


def test_a_sample_of_shoppers_counts_only_theirs_chunk_by_chunk(engine):
    did = make_dataset(engine, "trans", ROWS)
    vocab = _vocab(["a", "b", "c"])
    everyone = build_prior(engine, did, "category", vocab, None, top_k=2, alpha=1.0)
    # every shopper named, one per query: the same counts as one query over all of them
    chunked = build_prior(engine, did, "category", vocab, None, 2, 1.0, users=["u1", "u2", "u3"], chunk_users=1)
    for name in ("succ_ids", "succ_counts", "totals", "popularity"):
        assert getattr(chunked, name).tolist() == getattr(everyone, name).tolist(), name
    # u1 alone: a -> b twice, b -> a once; u2's a -> c and u3's c -> a are not counted
    u1 = build_prior(engine, did, "category", vocab, None, 2, 1.0, users=["u1"], chunk_users=5)
    assert u1.succ_ids[2].tolist() == [3, 0] and u1.succ_counts[2].tolist() == [2.0, 0.0]
    assert u1.totals.tolist() == [0.0, 0.0, 2.0, 1.0, 0.0]


def test_log_proba_smoothing_by_hand(engine):
    did = make_dataset(engine, "trans", ROWS)
    prior = build_prior(engine, did, "category", _vocab(["a", "b", "c"]), D + dt.timedelta(minutes=10), 2, 1.0)
    logp = prior.log_proba(np.array([2, 4, 0]))
    pop_b, pop_c, pop_a = 3 / 7, 2 / 7, 2 / 7
    # after a: b (2 + pop_b) / (3 + 1), c (1 + pop_c) / 4, a (0 + pop_a) / 4
    assert logp[0, 3] == pytest.approx(math.log((2 + pop_b) / 4), rel=1e-5)
    assert logp[0, 4] == pytest.approx(math.log((1 + pop_c) / 4), rel=1e-5)
    assert logp[0, 2] == pytest.approx(math.log(pop_a / 4), rel=1e-5)
    # after c (no transitions) and with no last category: popularity itself
    assert np.exp(logp[1, 2:]).tolist() == pytest.approx([pop_a, pop_b, pop_c], rel=1e-5)
    assert np.exp(logp[2, 2:]).tolist() == pytest.approx([pop_a, pop_b, pop_c], rel=1e-5)
    # a proper distribution over the real ids after a
    assert np.exp(logp[0, 2:]).sum() == pytest.approx(1.0, rel=1e-5)


def test_rare_values_fold_into_other_and_are_never_successors(engine):
    did = make_dataset(engine, "trans", ROWS)
    prior = build_prior(engine, did, "category", _vocab(["a"]), None, top_k=3, alpha=1.0)  # b, c -> "other" (1)
    # a -> other three times (b, b, c): "other" is a row of its own but never a ranked successor
    assert prior.totals[2] == 3.0 and prior.succ_counts[2].sum() == 0.0
    assert prior.succ_ids[1].tolist()[0] == 2  # other -> a: b->a and c->a


def test_item_prior_and_empty_store(engine):
    did = make_dataset(engine, "trans", ROWS)
    items = sequences.Vocabulary("items", ["i1", "i2", "i3", "i9"])  # i1=2, i2=3, i3=4, i9=5
    prior = build_prior(engine, did, "item_id", items, D + dt.timedelta(minutes=10), 4, 1.0)
    # u1: i1 -> i2 -> i9 -> i1 -> i2 (items are never missing here)
    assert dict(zip(prior.succ_ids[2].tolist(), prior.succ_counts[2].tolist())) == {3: 2.0, 4: 1.0, 0: 0.0}
    assert prior.succ_ids[3].tolist()[0] == 5
    empty = build_prior(engine, did, "item_id", items, D, 4, 1.0)  # nothing before the first event
    assert empty.totals.sum() == 0.0
    assert np.exp(empty.log_proba(np.array([2]))[0, 2:]).sum() == pytest.approx(1.0, rel=1e-5)


def test_last_known_skips_padding_and_other():
    ids = np.array([[0, 0, 5, 1], [0, 0, 0, 0], [3, 4, 1, 1], [0, 0, 0, 7]])
    assert last_known(ids).tolist() == [5, 0, 4, 7]


def _tiny_model_with_category_prior():
    """A one-layer model whose category head has a hand-made first-order prior (items: an empty one)."""
    import torch

    from core.model.config import ModelConfig
    from core.model.modeling import ForecastModel

    torch.manual_seed(0)
    cfg = ModelConfig(hidden_size=8, n_heads=2, n_layers=1, max_len=4, prior_top_k=2)
    model = ForecastModel(cfg.with_vocab_sizes(6, 5, 3))
    prior = TransitionPrior(
        succ_ids=np.array([[0, 0], [0, 0], [3, 4], [2, 0], [0, 0]]),
        succ_counts=np.array([[0, 0], [0, 0], [2, 1], [1, 0], [0, 0]], dtype=np.float32),
        totals=np.array([0, 0, 3, 1, 0], dtype=np.float32),
        popularity=np.array([0, 0, 2 / 7, 3 / 7, 2 / 7], dtype=np.float32), alpha=1.0)
    model.set_priors(prior, TransitionPrior.empty(6, 2, 1.0))
    return model, prior


def test_model_logits_start_from_the_prior():
    import torch

    model, prior = _tiny_model_with_category_prior()
    got = model.prior_logp("category", torch.tensor([2, 4, 0])).numpy()
    assert got[:, 2:] == pytest.approx(prior.log_proba(np.array([2, 4, 0]))[:, 2:], rel=1e-5)
    # saved with the weights
    assert {"category_succ_ids", "item_totals", "prior_scale"} <= set(model.state_dict())


def test_last_session_is_the_trailing_run_of_close_events():
    from core.model.priors import last_session_mask

    event_type = np.array([[0, 1, 1, 1, 1], [0, 0, 0, 0, 2]])
    age = np.array([[np.nan, 5.0, 1.0, 1.01, 1.0], [np.nan] * 4 + [3.0]])  # days before the cutoff
    got = last_session_mask(event_type, age, gap_days=0.02)
    assert got.tolist() == [[False, False, True, True, True], [False, False, False, False, True]]


def test_session_main_is_the_most_frequent_known_category_of_the_session():
    from core.model.priors import session_main

    ids = np.array([
        [3, 5, 5, 4],  # session = last three: 5 twice beats the last click 4
        [3, 4, 5, 1],  # all once: the most recent known one (5; "other" never counts)
        [6, 6, 1, 1],  # session holds only "other": the last known id of the whole row
        [0, 0, 0, 0],  # nothing: 0
    ])
    session = np.array([[0, 1, 1, 1], [0, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 0]], dtype=bool)
    assert session_main(ids, session).tolist() == [5, 5, 6, 0]


def test_category_logits_mix_the_last_event_and_the_last_session_priors():
    import torch

    model, prior = _tiny_model_with_category_prior()
    model.eval()
    zeros = torch.zeros((1, 2), dtype=torch.long)
    inputs = {name: zeros for name in ("item", "category", "brand", "event_type", "price_band", "gap_bucket",
                                       "age_bucket")}
    inputs.update(attention_mask=torch.ones((1, 2), dtype=torch.long), position_ids=torch.tensor([[2, 3]]),
                  recency_bucket=torch.tensor([2]), features=torch.zeros((1, 12)),
                  last_category=torch.tensor([2]), session_category=torch.tensor([3]), last_item=torch.tensor([0]))
    got = model(inputs).category_logits[0, 2:].detach().numpy()
    expected = 0.5 * prior.log_proba(np.array([2]))[0, 2:] + 0.5 * prior.log_proba(np.array([3]))[0, 2:]
    assert got == pytest.approx(expected, rel=1e-5)  # head and copy votes start at zero: an even mix of both priors


@pytest.mark.parametrize("truth, kept", [("c3", 0.0), ("c4", 1.0)])
def test_learned_category_terms_are_kept_only_when_they_win_on_validation(truth, kept):
    """The priors favour c3, the learned head c4: whichever the validation targets agree with is used."""
    import pandas as pd
    import torch

    from core.model import forecast
    from core.model import sequences
    from core.model.modeling import ForecastModel
    from core.model.training import ExampleSet, predict_examples
    from tests.model.test_model import random_batch, tiny_config

    torch.manual_seed(0)
    cfg = tiny_config(prior_top_k=2)
    model = ForecastModel(cfg.with_vocab_sizes(6, 5, 4)).eval()
    prior = TransitionPrior(
        succ_ids=np.array([[0, 0], [0, 0], [3, 0], [3, 0], [3, 0]]),
        succ_counts=np.array([[0, 0], [0, 0], [9, 0], [9, 0], [9, 0]], dtype=np.float32),
        totals=np.array([0, 0, 9, 9, 9], dtype=np.float32),
        popularity=np.array([0, 0, 1 / 3, 1 / 3, 1 / 3], dtype=np.float32), alpha=1.0)
    model.set_priors(prior, TransitionPrior.empty(6, 2, 1.0))
    with torch.no_grad():
        model.category_head.bias[4] = 20.0
        model.prior_scale[0], model.session_prior_scale[0] = 0.1, 0.2  # as shrunk by training
    batch = random_batch(6, cfg.max_len, 6, 5, seed=1)
    vocabs = sequences.Vocabularies(items=sequences.Vocabulary("items", list("abcd")),
                              categories=sequences.Vocabulary("categories", ["c2", "c3", "c4"]),
                              brands=sequences.Vocabulary("brands", []), price_bands={})
    valid = ExampleSet(batch=batch, labels={}, targets=pd.DataFrame({"next_category": [truth] * 6}),
                       cutoff_index=np.zeros(6, dtype=np.int64))
    note = forecast._choose_category_terms(model, valid, predict_examples(model, batch, cfg), vocabs, cfg, None)
    assert float(model.category_learned) == kept
    assert ("are kept" in note) == bool(kept)
    top = predict_examples(model, batch, cfg).category_ids[:, 0]
    assert (top == (4 if kept else 3)).all()
    # the priors alone get weights rescaled to sum to 1 (same ranking, probabilities on their own scale)
    weights = (float(model.prior_scale[0].detach()), float(model.session_prior_scale[0].detach()))
    assert weights == pytest.approx((0.1, 0.2) if kept else (1 / 3, 2 / 3))
