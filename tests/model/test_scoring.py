"""Scoring's fast path against a plain reference on a tiny trained model: the same forecasts and the same reasons.

The fast path fuses the blocks' linear layers, reuses the scoring pass's keys and values for
the occlusions, runs every group's occlusions together (one shared by two groups once) and
reads the next chunk of shoppers while the model works. The reference runs the library's
``GPT2Model`` on one shopper at a time, once with everything and once per hidden group, and
words the reasons with a plain loop.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from core.model import beside, forecast, reasons, registry, sequences
from core.model.card import MODEL
from core.model.config import EVENT_CLASS_COLUMNS, EVENT_CLASSES
from tests.model.test_forecast import _store, canonical, load_events, settings, tiny

torch = pytest.importorskip("torch")
simulate = pytest.importorskip("core.simulate")


def _plain_outputs(model, batch: sequences.SequenceBatch, row: int) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """One shopper through ``GPT2Model`` itself and the heads: propensity, next-type probabilities, category and
    item probabilities (padding and "other" excluded; the category's mixed with the shopper's own shares as chosen)."""
    from core.model.modeling import batch_tensors
    from core.model.sequences import OTHER_ID, PAD_ID

    inputs = batch_tensors(batch, np.array([row]))
    with torch.no_grad():
        hidden = model.transformer(inputs_embeds=model._embed(inputs), attention_mask=inputs["attention_mask"],
                                   position_ids=inputs["position_ids"]).last_hidden_state[:, -1]
        rep = model.combine(hidden, inputs)
        category = model.category_learned * (model.category_head(rep) + model.copy_scores(
            inputs, "category", model.n_categories)) + model.category_prior_logits(inputs)
        items = model._item_logits(rep, model._item_extra(inputs))
        for logits in (category, items):
            logits[:, [PAD_ID, OTHER_ID]] = float("-inf")
        category_p = model.mix_own_categories(torch.softmax(category, -1), inputs)
        return (float(torch.sigmoid(model.propensity_head(rep))[0, 0]), torch.softmax(model.type_head(rep), -1)[0].numpy(),
                category_p[0].numpy(), torch.softmax(items, -1)[0].numpy())


def _plain_reasons(model, batch: sequences.SequenceBatch, vocabs, n_reasons: int, base: np.ndarray) -> list[str]:
    """Each shopper's reasons by hiding each group and running the plain pass again: the largest moves first
    (moves within 1e-6 of each other in ``GROUPS`` order), those under ``MIN_EFFECT`` left out."""
    masks = reasons.group_masks(batch)
    effects = np.zeros((len(batch), len(reasons.GROUPS)))
    for g, group in enumerate(reasons.GROUPS):
        hidden = reasons._occlude(batch, group, masks[group])
        for row in range(len(batch)):
            if group == "recency" or masks[group][row].any():
                effects[row, g] = base[row] - _plain_outputs(model, hidden, row)[0]
    out = []
    for row in range(len(batch)):
        ranked = []
        for g in range(len(reasons.GROUPS)):
            at = next((i for i, h in enumerate(ranked) if abs(effects[row, g]) > abs(effects[row, h]) + 1e-6), len(ranked))
            ranked.insert(at, g)
        words = [f"{reasons.describe(reasons.GROUPS[g], batch, row, masks, vocabs)} "
                 f"({'raises' if effects[row, g] > 0 else 'lowers'} the chance)"
                 for g in ranked[:n_reasons] if abs(effects[row, g]) >= reasons.MIN_EFFECT]
        out.append("; ".join(words))
    return out


@pytest.mark.slow
def test_scored_forecasts_and_reasons_equal_a_plain_reference(tmp_path, monkeypatch):
    """Every shopper's stored propensity, next step, category, items and reasons, from a trained two-layer
    model served by the model on every head, equal what the plain reference computes."""
    from core.model.rfm_baseline import rfm_features_from_store

    engine = _store(tmp_path)
    load_events(engine, "sim", canonical(simulate.simulate(120, weeks=5, seed=4).events))
    real_evaluate = forecast._evaluate

    def served_by_the_model(*args, **kwargs):
        result = real_evaluate(*args, **kwargs)
        for head in result.heads.values():
            head.used = MODEL
        return result

    monkeypatch.setattr(forecast, "_evaluate", served_by_the_model)
    card = forecast.train(engine, "sim", horizon_days=7, config=tiny(n_layers=2, max_len=12), seed=2,
                          settings=settings(chunk_users=45))
    stored = forecast.load_predictions(engine, "sim").set_index("user_id")
    lm = registry.load_model(registry.version_dir(card.dataset_id, card.model_version))
    cfg = lm.config
    _, last, _ = forecast._data_window(engine, card.dataset_id)
    cutoff = last + dt.timedelta(seconds=1)
    users = sequences.list_users(engine, card.dataset_id, before=cutoff)
    chunk = sequences.user_chunks(users, len(users), exhaustive=True)[0]
    batch = sequences.build_sequences(engine, card.dataset_id, chunk, cutoff, lm.vocabs, cfg.max_len)
    assert len(batch) == len(stored) == len(users) > 100

    plain = [_plain_outputs(lm.model, batch, row) for row in range(len(batch))]
    base = np.array([p[0] for p in plain])
    p_rfm = None
    if lm.calibrator.stack_ is not None:
        rfm = forecast._baselines_from_saved(lm.baselines)["rfm"]["propensity"]
        p_rfm = rfm.predict_from_features(rfm_features_from_store(engine, card.dataset_id, chunk, cutoff,
                                                                  batch.user_ids, rfm.config))
    got = stored.loc[batch.user_ids]
    np.testing.assert_allclose(got["purchase_propensity"], lm.calibrator(base, p_rfm), atol=1e-5)
    type_p = np.stack([p[1] for p in plain])
    np.testing.assert_allclose(got[list(EVENT_CLASS_COLUMNS)].to_numpy(dtype=float), type_p, atol=1e-5)
    assert got["next_event_type"].tolist() == [EVENT_CLASSES[i] for i in type_p.argmax(axis=1)]
    # the stored category and items are the reference's most likely ones (equally likely ones in either order)
    category_p = np.stack([p[2] for p in plain])
    got_category = lm.vocabs.categories.encode(got["next_category"].to_numpy(dtype=object))
    np.testing.assert_allclose(category_p[np.arange(len(batch)), got_category], category_p.max(axis=1), atol=1e-6)
    np.testing.assert_allclose(got["next_category_p"], category_p.max(axis=1), atol=1e-5)
    item_p = np.stack([p[3] for p in plain])
    got_items = np.stack([lm.vocabs.items.encode(items.split(" ")) for items in got["top_items"]])
    assert got_items.shape == (len(batch), cfg.top_k_items)
    np.testing.assert_allclose(np.take_along_axis(item_p, got_items, axis=1),
                               -np.sort(-item_p, axis=1)[:, :cfg.top_k_items], atol=1e-6)

    expected = _plain_reasons(lm.model, batch, lm.vocabs, lm.settings.n_reasons, base)
    assert sum(bool(r) for r in expected) > len(expected) // 2  # most shoppers have a reason worth stating
    mismatched = [(u, g, e) for u, g, e in zip(batch.user_ids, got["reasons"], expected) if g != e]
    assert not mismatched, mismatched[:3]


def test_a_last_visit_all_in_one_category_moves_both_groups_exactly_equally():
    """Hiding the last session and hiding the recent category are the same occlusion when the last visit holds
    every event of its category: the two effects are equal to the bit, whatever other shoppers run beside
    them, so float noise cannot reorder the two reasons."""
    from core.model.modeling import ForecastModel, batch_tensors
    from tests.model.test_model import random_batch, tiny_config

    torch.manual_seed(0)
    cfg = tiny_config(n_layers=2, max_len=10, hidden_size=16)
    model = ForecastModel(cfg.with_vocab_sizes(30, 12, 4)).eval()
    batch = random_batch(40, cfg.max_len, 30, 12, seed=6)
    batch.age_days[:, -3:] = np.array([0.02, 0.01, 0.0])  # one last visit of three events ...
    batch.category[:, -3:] = 11  # ... all in a category that no earlier event has
    batch.category[:, :-3] = np.where(batch.category[:, :-3] == 11, 10, batch.category[:, :-3])
    batch.category[::2, -6] = 11  # half of them saw that category before: their recent category is wider
    masks = reasons.group_masks(batch)
    same = (masks["last_session"] == masks["recent_category"]).all(axis=1)
    assert 10 < same.sum() < len(batch) - 10
    idx = np.arange(len(batch))
    inputs = batch_tensors(batch, idx)
    hidden, states = model.states_for_occlusion(inputs)
    got = reasons.occlusion_effects(model, batch, idx, inputs, hidden, states, batch_size=7)
    session, category = reasons.GROUPS.index("last_session"), reasons.GROUPS.index("recent_category")
    earlier = same & batch.mask[:, :-3].any(axis=1)  # a shopper with only the last visit keeps it (nothing hidden)
    assert earlier.sum() > 10 and np.abs(got[earlier, session]).min() > 1e-6
    assert (got[same, session] == got[same, category]).all()


def test_mini_batches_in_several_threads_give_the_forecasts_and_occlusions_of_one_thread():
    """``predict_examples`` with two threads: the same predictions, and every mini-batch's occlusion effects
    (each thread's pass keeps its own projections), as one thread."""
    from core.model.modeling import ForecastModel
    from core.model.training import predict_examples
    from tests.model.test_model import random_batch, tiny_config

    torch.manual_seed(0)
    cfg = tiny_config(n_layers=2, max_len=8, hidden_size=16, batch_size=3)
    batch = random_batch(61, cfg.max_len, 9, 6, seed=7)  # 6 mini-batches of 12 rows
    model = ForecastModel(cfg.with_vocab_sizes(9, 6, 4)).eval()

    def run(threads: int):
        effects, seen = np.zeros((len(batch), len(reasons.GROUPS))), []

        def occlude(idx, inputs, hidden, states):
            seen.append(len(idx))
            effects[idx] = reasons.occlusion_effects(model, batch, idx, inputs, hidden, states, cfg.batch_size)

        return predict_examples(model, batch, cfg, on_batch=occlude, threads=threads), effects, sorted(seen)

    one, one_effects, one_seen = run(1)
    two, two_effects, two_seen = run(2)
    assert one_seen == two_seen == [1, 12, 12, 12, 12, 12]
    np.testing.assert_allclose(two.propensity, one.propensity, atol=1e-6)
    np.testing.assert_allclose(two.type_proba, one.type_proba, atol=1e-6)
    np.testing.assert_array_equal(two.category_ids[:, 0], one.category_ids[:, 0])
    np.testing.assert_array_equal(two.item_ids[:, 0], one.item_ids[:, 0])
    np.testing.assert_allclose(two_effects, one_effects, atol=1e-6)
    assert np.abs(one_effects).max() > 1e-3  # the occlusions moved something


def test_the_first_chunk_scored_is_small_and_every_shopper_is_in_one_chunk():
    """Scoring reads a small first chunk (nothing overlaps its read), then chunks of ``chunk_users``."""
    from core.model import scoring

    users = [f"u{i:05d}" for i in range(12_345)]
    chunks = scoring._scoring_chunks(users, 5_000)
    assert [(c.first, c.last) for c in chunks] == [("u00000", "u00999"), ("u01000", "u05999"),
                                                   ("u06000", "u10999"), ("u11000", "u12344")]
    assert all(c.users is None for c in chunks)
    assert [(c.first, c.last) for c in scoring._scoring_chunks(users[:700], 5_000)] == [("u00000", "u00699")]
    assert [(c.first, c.last) for c in scoring._scoring_chunks(users[:9], 4)] == [("u00000", "u00003"),
                                                                                  ("u00004", "u00007"),
                                                                                  ("u00008", "u00008")]


@pytest.mark.slow
def test_work_done_beside_the_fit_gives_the_version_computed_in_place(tmp_path, monkeypatch):
    """Training starts the history, gradient boosting, later priors and rankers on a side thread while the
    model fits: the card and every forecast equal those of a run that computes each where it is used."""
    import threading

    engine = _store(tmp_path)
    load_events(engine, "sim", canonical(simulate.simulate(150, weeks=5, seed=6).events))
    threads, real_fit_rfm = [], forecast._fit_rfm

    def fit_rfm(*args):
        threads.append(threading.current_thread().name)
        return real_fit_rfm(*args)

    monkeypatch.setattr(forecast, "_fit_rfm", fit_rfm)

    def trained() -> tuple:
        card = forecast.train(engine, "sim", horizon_days=7, config=tiny(), seed=3, settings=settings())
        pred = forecast.load_predictions(engine, "sim", card.model_version).sort_values("user_id", ignore_index=True)
        return card, pred.drop(columns="model_version")

    ahead, ahead_pred = trained()
    assert threads[-1].startswith("cartsight-beside-fit")
    monkeypatch.setattr(beside.SideWork, "ahead", lambda self, *args: None)  # everything computed in place
    in_place, in_place_pred = trained()
    assert threads[-1] == threading.main_thread().name
    assert ahead.heads == in_place.heads and ahead.lift == in_place.lift and ahead.loss_curve == in_place.loss_curve
    numbers = ["purchase_propensity", "p_view", "p_cart", "p_purchase", "p_remove", "p_none", "next_category_p",
               "expected_revenue", "p_inactive"]
    np.testing.assert_allclose(ahead_pred[numbers].to_numpy(float), in_place_pred[numbers].to_numpy(float), atol=1e-6)
    words = ["user_id", "next_event_type", "next_category", "top_items", "reasons"]
    pd.testing.assert_frame_equal(ahead_pred[words], in_place_pred[words])
