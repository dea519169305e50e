"""The forecast model: config validation, shapes of every head, losses only with labels, sampled softmax."""
from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pytest

from core.model import sequences
from core.errors import ParameterError
from core.model.config import EVENT_CLASSES, EVENT_TYPE_IDS, SETTINGS_KEYS, ModelConfig, PipelineSettings, split_config

EVENT_TYPE_IDS_CART = EVENT_TYPE_IDS["cart"]

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)
    torch.manual_seed(0)


def tiny_config(**kw) -> ModelConfig:
    base = dict(max_len=6, hidden_size=8, n_layers=1, n_heads=2, batch_size=4, max_train_examples=4,
                n_negatives=5, sampled_softmax_threshold=50)
    base.update(kw)
    return ModelConfig(**base)


def random_batch(n: int, length: int, n_items: int, n_cats: int, seed: int = 0) -> sequences.SequenceBatch:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, length + 1, size=n)
    mask = np.arange(length)[None, :] >= (length - lengths)[:, None]

    def ids(high):
        return np.where(mask, rng.integers(1, high, size=(n, length)), 0).astype(np.int64)

    age = np.where(mask, np.sort(rng.random((n, length)) * 10, axis=1)[:, ::-1], np.nan).astype(np.float32)
    return sequences.SequenceBatch(
        user_ids=[f"u{i}" for i in range(n)], cutoff=dt.datetime(2024, 1, 1), item=ids(n_items), category=ids(n_cats),
        brand=ids(4), event_type=ids(6), price_band=ids(6), gap_bucket=ids(15), age_bucket=ids(15), age_days=age,
        recency_bucket=rng.integers(2, 15, size=n).astype(np.int64),
        features=rng.random((n, 6)).astype(np.float32),
    )


def labels(n, n_items, n_cats, seed=1):
    rng = np.random.default_rng(seed)
    item = rng.integers(2, n_items, size=n)
    item[0] = -100  # a shopper without a next item
    return {
        "purchased": torch.tensor(rng.integers(0, 2, size=n), dtype=torch.float32),
        "next_event_type": torch.tensor(rng.integers(0, 5, size=n)),
        "next_category": torch.tensor(rng.integers(2, n_cats, size=n)),
        "next_item": torch.tensor(item),
    }


@pytest.mark.parametrize("n_items", [30, 200])  # full softmax, then sampled softmax (threshold 50)
def test_every_head_has_its_shape(n_items):
    from core.model.modeling import ForecastModel, batch_tensors

    cfg = tiny_config()
    model = ForecastModel(cfg.with_vocab_sizes(n_items, 12, 4))
    batch = random_batch(5, cfg.max_len, n_items, 12)
    inputs = batch_tensors(batch)
    out = model(inputs)
    assert out.loss is None and out.losses == {}
    assert out.propensity_logit.shape == (5,)
    assert out.type_logits.shape == (5, len(EVENT_CLASSES))
    assert out.category_logits.shape == (5, 12)
    assert out.user_embedding.shape == (5, cfg.hidden_size)

    with_labels = model(inputs, labels(5, n_items, 12))
    assert with_labels.loss is not None and torch.isfinite(with_labels.loss)
    assert set(with_labels.losses) == {"propensity", "next_event_type", "next_category", "next_items"}
    with_labels.loss.backward()  # gradients flow through every head

    pred = model.predict(inputs, top_k_items=7, top_k_categories=3)
    assert pred.propensity.shape == (5,) and ((pred.propensity > 0) & (pred.propensity < 1)).all()
    assert pred.type_proba.shape == (5, 5) and np.allclose(pred.type_proba.sum(axis=1), 1.0, atol=1e-5)
    assert pred.category_ids.shape == (5, 3) and pred.item_ids.shape == (5, 7)
    assert (pred.category_ids >= 2).all() and (pred.item_ids >= 2).all()  # padding and "other" never ranked
    assert (np.diff(pred.item_p, axis=1) <= 1e-7).all()  # best first
    no_items = model.predict(inputs, top_k_items=0, top_k_categories=3)  # scoring when items come from a baseline
    assert no_items.item_ids.shape == (5, 0) and no_items.item_p.shape == (5, 0)
    assert np.array_equal(no_items.propensity, pred.propensity)
    assert np.array_equal(no_items.category_ids, pred.category_ids)


def test_trimmed_padding_does_not_change_the_forecast():
    from core.model.modeling import ForecastModel, batch_tensors

    cfg = tiny_config(dropout=0.0)
    model = ForecastModel(cfg.with_vocab_sizes(30, 12, 4)).eval()
    batch = random_batch(6, cfg.max_len, 30, 12, seed=3)
    alone = np.concatenate([model.predict_propensity(batch_tensors(batch, [i])) for i in range(6)])
    together = model.predict_propensity(batch_tensors(batch))
    assert np.allclose(alone, together, atol=1e-5)


@pytest.mark.parametrize("kwargs, parameter, expected", [
    ({"hidden_size": 10, "n_heads": 3}, "n_heads", "a divisor of hidden_size=10"),
    ({"max_len": 0}, "max_len", "at least 1"),
    ({"dropout": 1.0}, "dropout", "in [0, 1)"),
    ({"lr": 0.0}, "lr", "in (0, 1]"),
    ({"epochs": 2.5}, "epochs", "whole number"),
    ({"batch_size": 512, "max_train_examples": 100}, "max_train_examples", "at least batch_size=512"),
    ({"loss_weights": {"propensity": 1.0}}, "loss_weights", "exactly the keys"),
    ({"patience": -1}, "patience", "at least 0"),
    ({"item_vocab_size": 1}, "item_vocab_size", "at least 2"),
    ({"brand_vocab_size": 3.0}, "brand_vocab_size", "whole number"),
])
def test_config_rejects_inconsistent_values(kwargs, parameter, expected):
    with pytest.raises(ParameterError) as err:
        ModelConfig(**kwargs)
    message = str(err.value)
    assert repr(parameter) in message and expected in message
    assert repr(kwargs[parameter]) in message  # the value found
    assert err.value.parameter == parameter


def test_config_round_trip_and_unknown_keys():
    cfg = ModelConfig(hidden_size=32, n_heads=4, seed=5)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ParameterError, match="no parameter"):
        ModelConfig.from_dict({"hiden_size": 3})


@pytest.mark.parametrize("kwargs, parameter, expected", [
    ({"n_reasons": 9}, "n_reasons", "at most 5"),
    ({"n_reasons": -1}, "n_reasons", "a whole number of at least 0"),
    ({"chunk_users": 0}, "chunk_users", "a whole number of at least 1"),
    ({"chunk_users": 2.5}, "chunk_users", "a whole number of at least 1"),
    ({"progress_every": True}, "progress_every", "a whole number of at least 1"),
    ({"torch_threads": 0}, "torch_threads", "a whole number of at least 1"),
])
def test_pipeline_settings_reject_inconsistent_values(kwargs, parameter, expected):
    with pytest.raises(ParameterError) as err:
        PipelineSettings(**kwargs)
    message = str(err.value)
    assert message.startswith(f"PipelineSettings parameter {parameter!r} is {kwargs[parameter]!r}; expected")
    assert expected in message and err.value.parameter == parameter and err.value.cases == [kwargs[parameter]]


def test_pipeline_settings_are_apart_from_the_model_config():
    settings = PipelineSettings(chunk_users=70, n_reasons=0, progress_every=4, torch_threads=2)
    assert PipelineSettings() == PipelineSettings(chunk_users=5_000, n_reasons=3, progress_every=10, torch_threads=1)
    assert PipelineSettings.from_dict(settings.to_dict()) == settings
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.torch_threads = 4  # type: ignore[misc]
    assert not set(SETTINGS_KEYS) & set(ModelConfig().to_dict())
    for name in SETTINGS_KEYS:
        with pytest.raises(TypeError):
            ModelConfig(**{name: 1})
    with pytest.raises(ParameterError, match=r"PipelineSettings has no parameter\(s\) \['hidden_size'\]"):
        PipelineSettings.from_dict({"hidden_size": 8})


def test_a_config_saved_with_the_run_settings_still_loads():
    """Configs saved before the settings had their own class hold the four keys: from_dict skips exactly those."""
    legacy = {**ModelConfig(hidden_size=32, n_heads=4).to_dict(),
              "chunk_users": 150, "n_reasons": 2, "progress_every": 5, "torch_threads": 3}
    assert ModelConfig.from_dict(legacy) == ModelConfig(hidden_size=32, n_heads=4)
    with pytest.raises(ParameterError, match="no parameter") as err:
        ModelConfig.from_dict({**legacy, "chunk_user": 150})  # any other unknown key is still refused
    assert err.value.cases == ["chunk_user"]


def test_split_config_parts_a_dict_of_both_kinds():
    config, settings = split_config({"hidden_size": 16, "n_heads": 2, "chunk_users": 70, "torch_threads": 2})
    assert (config.hidden_size, config.n_heads, config.max_len) == (16, 2, 50)
    assert settings == PipelineSettings(chunk_users=70, torch_threads=2)
    with pytest.raises(ParameterError) as err:
        split_config({"n_reasons": 9})
    assert err.value.parameter == "n_reasons" and "at most 5" in str(err.value)
    with pytest.raises(ParameterError, match="ModelConfig has no parameter"):
        split_config({"hiden_size": 16})


def test_the_model_takes_its_vocabulary_sizes_from_the_config():
    from core.model.modeling import ForecastModel

    with pytest.raises(ParameterError) as err:
        ForecastModel(tiny_config())  # sizes not set: the data's vocabularies are not known yet
    assert "'item_vocab_size' is None" in str(err.value) and "with_vocab_sizes" in str(err.value)
    cfg = tiny_config().with_vocab_sizes(30, 12, 4)
    model = ForecastModel(cfg)
    assert (model.item_emb.num_embeddings, model.category_emb.num_embeddings, model.brand_emb.num_embeddings) == (
        30, 12, 4)
    assert (model.category_head.out_features, model.item_bias.numel()) == (12, 30)
    assert model.config.vocab_sizes() == (30, 12, 4) and tiny_config().item_vocab_size is None
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


def test_defaults_are_sized_for_two_cpu_cores():
    cfg = ModelConfig()
    assert (cfg.hidden_size, cfg.n_layers, cfg.max_len, PipelineSettings().torch_threads) == (64, 2, 50, 1)
    assert 2 <= cfg.n_heads <= 4


def _one_shopper_batch() -> tuple[sequences.SequenceBatch, sequences.Vocabularies]:
    """One shopper: a view 9 days ago, two smartphone carts 2.5 and 2 days ago, a session of two views 3 h ago."""
    from core.model.config import EVENT_TYPE_IDS as E

    vocabs = sequences.Vocabularies(
        items=sequences.Vocabulary("items", ["p1", "p2", "p3"]),
        categories=sequences.Vocabulary("categories", ["electronics.smartphone", "home.lamp"]),
        brands=sequences.Vocabulary("brands", []), price_bands={},
    )
    phone, lamp = 2, 3
    ages = np.array([[np.nan, 9.0, 2.5, 2.0, 0.13, 0.125]], dtype=np.float32)
    kinds = np.array([[0, E["view"], E["cart"], E["cart"], E["view"], E["view"]]])
    cats = np.array([[0, lamp, phone, phone, lamp, lamp]])
    zeros = np.where(kinds > 0, 2, 0)
    features = np.log1p(np.array([[5, 2, 3, 40, 10, 4]], dtype=np.float32))  # 3 purchases over 40 days
    batch = sequences.SequenceBatch(
        user_ids=["u"], cutoff=dt.datetime(2024, 1, 10), item=zeros, category=cats, brand=zeros, event_type=kinds,
        price_band=zeros, gap_bucket=zeros, age_bucket=zeros, age_days=ages, recency_bucket=np.array([6]),
        features=features)
    return batch, vocabs


def test_occlusion_groups_and_their_words():
    from core.model import reasons

    batch, vocabs = _one_shopper_batch()
    masks = reasons.group_masks(batch)
    assert masks["carts"][0].tolist() == [False, False, True, True, False, False]
    assert masks["last_session"][0].tolist() == [False, False, False, False, True, True]  # 7 min apart
    assert masks["recent_category"][0].tolist() == [False, True, False, False, True, True]  # the lamp events
    assert not masks["purchases"].any()
    assert reasons.describe("carts", batch, 0, masks, vocabs) == "carted 2 smartphones in the last 3 days"
    assert reasons.describe("purchases", batch, 0, masks, vocabs) == "bought 3 times in 6 weeks"
    assert reasons.describe("recency", batch, 0, masks, vocabs) == "visited in the last 3 hours"
    assert reasons.describe("recent_category", batch, 0, masks, vocabs) == "kept coming back to lamp (3 events in the last 9 days)"
    hidden = reasons.occluded_batches(batch)["carts"]
    assert (hidden.event_type[0] == EVENT_TYPE_IDS_CART).sum() == 0 and hidden.features[0, 1] == 0.0


def test_explain_gives_words_with_a_direction():
    from core.model import reasons
    from core.model.modeling import ForecastModel

    batch, vocabs = _one_shopper_batch()
    model = ForecastModel(tiny_config(max_len=6).with_vocab_sizes(5, 4, 3)).eval()
    words = reasons.explain(model, batch, vocabs, n_reasons=2, batch_size=8)
    assert len(words) == 1
    parts = [w for w in words[0].split("; ") if w]
    assert 1 <= len(parts) <= 2
    assert all(p.endswith(("(raises the chance)", "(lowers the chance)")) for p in parts)


def test_equal_effects_keep_the_groups_order_whatever_the_rounding():
    """Two groups that hide the same events move the propensity equally; float noise does not reorder them."""
    from core.model import reasons
    from core.model.modeling import ForecastModel

    batch, vocabs = _one_shopper_batch()
    model = ForecastModel(tiny_config(max_len=6).with_vocab_sizes(5, 4, 3)).eval()
    first, later = reasons.GROUPS.index("last_session"), reasons.GROUPS.index("recent_category")
    for noise in (0.0, 3e-9, -3e-9):
        effects = np.zeros((1, len(reasons.GROUPS)))
        effects[0, first], effects[0, later] = 0.05, 0.05 + noise
        words = reasons.explain(model, batch, vocabs, n_reasons=1, batch_size=8, effects=effects)[0]
        assert words.startswith(reasons._words("last_session", reasons.group_facts(
            batch, reasons.group_masks(batch), vocabs), 0)), noise


def test_explain_runs_only_affected_rows_and_matches_full_occlusion(monkeypatch):
    """Occluding only the shoppers with events in a group gives the same reasons as occluding everyone."""
    from core.model import reasons
    from core.model.modeling import ForecastModel, batch_tensors

    monkeypatch.setattr(reasons, "MIN_EFFECT", 1e-12)  # every real move counts: the ranking is compared
    cfg = tiny_config()
    batch = random_batch(9, cfg.max_len, 7, 5, seed=3)
    masks = reasons.group_masks(batch)
    assert not masks["carts"].any(axis=1).all()  # some shoppers have no carts: their rows are skipped
    vocabs = sequences.Vocabularies(items=sequences.Vocabulary("items", list("abcde")),
                              categories=sequences.Vocabulary("categories", ["x.one", "x.two", "x.three"]),
                              brands=sequences.Vocabulary("brands", []), price_bands={})
    model = ForecastModel(cfg.with_vocab_sizes(7, 5, 4)).eval()
    got = reasons.explain(model, batch, vocabs, n_reasons=3, batch_size=4)

    # reference: the former algorithm, every group's occlusion run for every shopper, one row at a time
    def p(b):
        return np.array([model.predict_propensity(batch_tensors(b, np.array([i])))[0] for i in range(len(b))])

    full = p(batch)
    occluded = reasons.occluded_batches(batch)
    effects = np.zeros((len(batch), len(reasons.GROUPS)))
    for g, group in enumerate(reasons.GROUPS):
        present = masks[group].any(axis=1) if group != "recency" else np.ones(len(batch), dtype=bool)
        effects[:, g] = np.where(present, full - p(occluded[group]), 0.0)
    for row in range(len(batch)):
        strength = np.sort(np.abs(effects[row]))[::-1]
        words = {reasons.describe(grp, batch, row, masks, vocabs): g for g, grp in enumerate(reasons.GROUPS)
                 if abs(effects[row, g]) > 0}
        parts = [x for x in got[row].split("; ") if x]
        assert len(parts) == min(3, int((strength > 0).sum()))
        for part in parts:
            text, direction = part.rsplit(" (", 1)
            g = words[text]
            assert abs(effects[row, g]) >= strength[len(parts) - 1] - 1e-6  # among the largest moves (ties aside)
            assert direction == ("raises the chance)" if effects[row, g] > 0 else "lowers the chance)")


def test_predict_examples_keeps_the_row_order():
    """Rows run in length order are returned in the batch's order, equal to one row at a time."""
    from core.model.modeling import ForecastModel, batch_tensors
    from core.model.training import predict_examples

    cfg = tiny_config(batch_size=1)
    batch = random_batch(7, cfg.max_len, 9, 6, seed=5)
    model = ForecastModel(cfg.with_vocab_sizes(9, 6, 4)).eval()
    pred = predict_examples(model, batch, cfg)
    for i in range(len(batch)):
        one = model.predict(batch_tensors(batch, np.array([i])), cfg.top_k_items, cfg.top_k_categories)
        assert pred.propensity[i] == pytest.approx(float(one.propensity[0]), abs=1e-5)
        assert pred.type_proba[i] == pytest.approx(one.type_proba[0], abs=1e-5)


@pytest.mark.parametrize("word, n, expected", [
    ("smartphone", 2, "smartphones"), ("clocks", 4, "clocks"), ("dress", 3, "dresses"),
    ("box", 2, "boxes"), ("couch", 2, "couches"), ("kettle", 1, "kettle"), ("day", 3, "days"),
])
def test_reason_words_are_pluralised_once(word, n, expected):
    from core.model.reasons import _plural

    assert _plural(word, n) == expected


def test_batch_tensors_keep_every_event_of_a_row_with_holes():
    """Trimming looks at the columns: a row whose last events were hidden keeps its earlier ones."""
    from core.model.modeling import batch_tensors

    batch = random_batch(2, 6, 9, 5, seed=1)
    batch.event_type[0] = [0, 1, 2, 1, 0, 0]  # events in columns 1-3, the last two hidden
    batch.event_type[1] = [0, 0, 0, 1, 1, 1]
    t = batch_tensors(batch)
    assert t["event_type"].shape[1] == 5  # column 0 is padding in both rows, nothing else is cut
    assert t["event_type"][0].tolist() == [1, 2, 1, 0, 0]
    assert t["position_ids"][0].tolist() == [1, 2, 3, 4, 5]
    assert batch_tensors(batch, start=3)["event_type"].shape[1] == 3


@pytest.mark.parametrize("n_layers", [1, 2, 3])
def test_occlusion_reusing_the_full_pass_equals_a_new_pass(n_layers):
    """Each group's effect from the reused keys and values equals hiding the group and running the model again."""
    from core.model import reasons
    from core.model.modeling import ForecastModel, batch_tensors

    cfg = tiny_config(n_layers=n_layers, max_len=10, hidden_size=16)
    model = ForecastModel(cfg.with_vocab_sizes(30, 12, 4)).eval()
    with torch.no_grad():  # padding tokens that are not zero vectors: a hidden event's input must be rebuilt
        for table in (model.item_emb, model.category_emb, model.brand_emb, model.type_emb, model.age_emb):
            table.weight[0].normal_()
    batch = random_batch(24, cfg.max_len, 30, 12, seed=4)
    masks = reasons.group_masks(batch)
    idx = np.arange(3, 24)  # a mini-batch of some rows
    inputs = batch_tensors(batch, idx)
    hidden, states = model.states_for_occlusion(inputs)
    got = reasons.occlusion_effects(model, batch, idx, inputs, hidden, states, batch_size=5)

    sub = batch.take(idx)
    base = model.predict_propensity(inputs)
    for g, group in enumerate(reasons.GROUPS):
        present = masks[group][idx].any(axis=1) | (group == "recency")
        assert present.any()
        hidden_group = reasons._occlude(sub, group, masks[group][idx])
        again = np.array([model.predict_propensity(batch_tensors(hidden_group, [i]))[0] for i in range(len(idx))])
        expected = np.where(present, base - again, 0.0)
        assert np.abs(got[:, g] - expected).max() < 1e-5, group
        assert np.abs(expected).max() > 1e-4  # the groups do move this model's propensity


@pytest.mark.parametrize("n_layers", [1, 2, 3])
def test_eval_pass_block_by_block_equals_gpt2_model(n_layers):
    """Scoring's pass (last block at the last position only) gives GPT2Model's last hidden state, padding and all."""
    from core.model.modeling import ForecastModel, batch_tensors

    cfg = tiny_config(n_layers=n_layers, max_len=10, hidden_size=16)
    model = ForecastModel(cfg.with_vocab_sizes(30, 12, 4)).eval()
    inputs = batch_tensors(random_batch(12, cfg.max_len, 30, 12, seed=7))
    assert (inputs["attention_mask"] == 0).any()  # some rows are shorter than the window
    with torch.no_grad():
        library = model.transformer(inputs_embeds=model._embed(inputs), attention_mask=inputs["attention_mask"],
                                    position_ids=inputs["position_ids"]).last_hidden_state[:, -1]
        ours = model.last_hidden(inputs)
    assert torch.allclose(ours, library, atol=1e-5)


def test_epoch_batches_group_similar_lengths_and_draw_each_example_once():
    from core.model.training import epoch_batches

    lengths = np.array([5, 1, 9, 3, 7, 2, 8, 4, 6, 10, 1, 9])
    batches = epoch_batches(np.random.default_rng(0), lengths, max_examples=10, batch_size=3)
    drawn = np.concatenate(batches)
    assert len(drawn) == 10 and len(set(drawn.tolist())) == 10  # 10 of the 12, none twice
    assert [len(b) for b in sorted(batches, key=len)] == [1, 3, 3, 3]
    assert all((np.diff(b) > 0).all() for b in batches)  # each batch's rows in their stored order
    # the batches cut the drawn examples sorted by length: no two batches' length ranges overlap
    spans = sorted((lengths[b].min(), lengths[b].max()) for b in batches)
    assert all(hi <= next_lo for (_, hi), (next_lo, _) in zip(spans, spans[1:]))


def test_prior_categories_rank_as_the_model_does_with_its_learned_terms_off():
    """predict_prior_categories (no transformer pass) ranks what predict_examples ranks with category_learned 0."""
    from core.model.modeling import ForecastModel
    from core.model.priors import TransitionPrior
    from core.model.training import predict_examples, predict_prior_categories

    cfg = tiny_config(top_k_categories=4, prior_top_k=3)
    model = ForecastModel(cfg.with_vocab_sizes(30, 12, 4)).eval()
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 9, size=(12, 3)).astype(np.float32)
    prior = TransitionPrior(succ_ids=rng.integers(2, 12, size=(12, 3)), succ_counts=counts, totals=counts.sum(axis=1),
                            popularity=np.r_[0, 0, rng.random(10)].astype(np.float32) / 5, alpha=1.0)
    model.set_priors(prior, TransitionPrior.empty(30, 3, 1.0))
    with torch.no_grad():
        model.category_head.bias.copy_(torch.from_numpy(rng.normal(size=12).astype(np.float32)) * 5)
        model.category_learned.fill_(0.0)
    batch = random_batch(40, cfg.max_len, 30, 12, seed=4)
    ranked = predict_prior_categories(model, batch, cfg)
    assert ranked.shape == (40, 4)
    np.testing.assert_array_equal(ranked[:, 0], predict_examples(model, batch, cfg).category_ids[:, 0])
    with torch.no_grad():
        model.category_learned.fill_(1.0)  # the head's large bias then moves the top choice of some rows
    assert (ranked[:, 0] != predict_examples(model, batch, cfg).category_ids[:, 0]).any()
