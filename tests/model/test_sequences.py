"""Sequences by time: hand-made shoppers, hand-checked ids, buckets and price bands; no target leaks into inputs."""
from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from core import store
from core.model import sequences
from core.store.price_bands import PRICE_BANDS
from core.errors import SchemaError
from core.model.config import EVENT_TYPE_IDS, ModelConfig, PipelineSettings
from core.model.training import build_examples
from tests.conftest import make_dataset

T = dt.datetime(2024, 1, 2)  # the cutoff
H_DAYS = 2


def _ev(user, when, kind, item, category, price):
    return {"user_id": user, "event_time": when, "event_type": kind, "item_id": item, "category": category,
            "brand": "acme", "price": price, "session_id": None}


THREE_USERS = [
    # a: views and carts before the cutoff, buys after it
    _ev("a", dt.datetime(2024, 1, 1, 10, 0), "view", "i1", "c.x", 10.0),
    _ev("a", dt.datetime(2024, 1, 1, 10, 5), "cart", "i1", "c.x", 10.0),
    _ev("a", dt.datetime(2024, 1, 3, 12, 0), "purchase", "i1", "c.x", 10.0),
    # b: one view before; a view exactly AT the cutoff belongs to the target window, not the inputs
    _ev("b", dt.datetime(2024, 1, 1, 9, 0), "view", "i2", "c.y", 100.0),
    _ev("b", dt.datetime(2024, 1, 2, 0, 0), "view", "i3", "c.y", 200.0),
    # c: nothing before the cutoff, so no example
    _ev("c", dt.datetime(2024, 1, 2, 5, 0), "view", "i1", "c.x", 10.0),
]


def _config(**kw) -> ModelConfig:
    base = dict(max_len=4, min_token_count=1, batch_size=2, max_train_examples=2)
    base.update(kw)
    return ModelConfig(**base)


def _vocabs(engine, did, before=None):
    return sequences.build_vocabularies(engine, did, before=before, item_cap=10, category_cap=10, brand_cap=10, min_count=1)


def test_examples_take_inputs_before_the_cutoff_and_targets_after(duck_engine):
    did = make_dataset(duck_engine, "three", THREE_USERS)
    vocabs = _vocabs(duck_engine, did)
    users = sequences.list_users(duck_engine, did)
    ex = build_examples(duck_engine, did, [T], users, True, vocabs, _config(), H_DAYS,
                        settings=PipelineSettings(chunk_users=2))

    assert ex.batch.user_ids == ["a", "b"]  # c has no event before T
    # inputs: a = view, cart (left-padded to max_len 4); b = one view; never the purchase or the view at T
    assert ex.batch.event_type.tolist() == [[0, 0, EVENT_TYPE_IDS["view"], EVENT_TYPE_IDS["cart"]],
                                            [0, 0, 0, EVENT_TYPE_IDS["view"]]]
    assert not (ex.batch.event_type == EVENT_TYPE_IDS["purchase"]).any()
    i3 = vocabs.items.encode(["i3"])[0]
    assert not (ex.batch.item == i3).any()
    assert vocabs.items.decode(ex.batch.item[0, 2:]) == ["i1", "i1"]
    # targets from [T, T + 2 days)
    assert ex.targets["purchased"].tolist() == [1, 0]
    assert ex.targets["next_event_type"].tolist() == ["purchase", "view"]
    assert ex.targets["next_item"].tolist() == ["i1", "i3"]
    assert ex.labels["purchased"].tolist() == [1.0, 0.0]
    assert ex.labels["next_event_type"].tolist() == [2, 0]  # purchase, view in EVENT_CLASSES order
    assert ex.labels["next_item"].tolist() == [vocabs.items.encode(["i1"])[0], i3]
    assert ex.labels["next_category"].tolist() == vocabs.categories.encode(["c.x", "c.y"]).tolist()


def test_time_features_are_hand_checked(duck_engine):
    did = make_dataset(duck_engine, "three", THREE_USERS)
    vocabs = _vocabs(duck_engine, did)
    chunk = sequences.user_chunks(["a", "b"], 10, exhaustive=False)[0]
    batch = sequences.build_sequences(duck_engine, did, chunk, T, vocabs, 4)
    # a's cart came 5 minutes (300 s) after the view: bucket "<= 300 s is past the 3rd edge" -> id 2 + 3
    assert batch.gap_bucket[0, 2:].tolist() == [sequences.NO_PREVIOUS_ID, 5]
    # a's last event is 13 h 55 min before the cutoff
    assert batch.age_days[0, 3] == pytest.approx((13 + 55 / 60) / 24, rel=1e-6)
    assert np.isnan(batch.age_days[0, 0])
    # 13.9 h lies between the 12 h and 1 d edges: 2 + 6
    assert batch.recency_bucket.tolist() == [8, 8]  # b's last event: 15 h before
    # whole-history counts: a has 2 events, 1 cart, 0 purchases before T
    assert np.expm1(batch.features[0, :3]).round(6).tolist() == [2.0, 1.0, 0.0]


def test_inputs_at_or_after_the_cutoff_are_refused():
    import pandas as pd

    events = pd.DataFrame([THREE_USERS[4]])
    with pytest.raises(SchemaError, match="before the cutoff"):
        sequences.encode_sequences(events, pd.DataFrame(), T, None, 4)


def test_max_len_keeps_the_last_events(duck_engine):
    rows = [_ev("u", dt.datetime(2024, 1, 1, h), "view", f"i{h}", "c", 1.0) for h in range(6)]
    did = make_dataset(duck_engine, "long", rows)
    vocabs = _vocabs(duck_engine, did)
    batch = sequences.build_sequences(duck_engine, did, sequences.user_chunks(["u"], 5, True)[0], T, vocabs, 3)
    assert vocabs.items.decode(batch.item[0]) == ["i3", "i4", "i5"]


def _one_popular_item_rows() -> list[dict]:
    """24 items of one category priced 10 .. 240; the cheapest is viewed 40 times (quartiles over events would put
    three of four edges at its price), one item has no price, one event no category."""
    rows = [_ev(f"u{k}", dt.datetime(2024, 1, 1, k % 24, k // 24), "view", f"i{k}", "c.z", 10.0 * (k + 1))
            for k in range(24)]
    rows += [_ev(f"p{k}", dt.datetime(2024, 1, 1, 5, k), "view", "i0", "c.z", 10.0) for k in range(40)]
    rows.append(_ev("q", dt.datetime(2024, 1, 1, 6), "view", "free", "c.z", None))
    rows.append(_ev("q", dt.datetime(2024, 1, 1, 7), "view", "i9", None, 1000.0))
    return rows


def test_the_model_reads_the_stores_price_band_of_every_event(engine):
    did = make_dataset(engine, "prices", _one_popular_item_rows())
    bands = sequences.price_bands(engine, did)
    row = bands[bands["category"] == "c.z"].iloc[0]
    assert row["p25"] < row["p50"] < row["p75"]  # over distinct items: the popular item fills one band only
    vocabs = _vocabs(engine, did)
    with engine.connect() as conn:
        stored = pd.DataFrame(conn.execute(sa.select(store.events.c.category, store.events.c.price,
                                                     store.events.c.price_band)
                                           .where(store.events.c.dataset_id == did)).all())
    ids = sequences.price_band_ids(stored["category"], stored["price"], vocabs.price_bands)
    names = [None, None, *PRICE_BANDS]
    assert [names[i] for i in ids] == [b if isinstance(b, str) else None for b in stored["price_band"]]
    assert (row["p25"], row["p50"], row["p75"]) == (60.0, 120.0, 180.0)
    assert sum(b == "budget" for b in stored["price_band"]) == 41 + 4  # the popular item's events, i1 .. i4
    # saved with a version and read back, the edges give the same bands
    again = sequences.Vocabularies.from_dict(json.loads(json.dumps(vocabs.to_dict())))
    assert sequences.price_band_ids(stored["category"], stored["price"], again.price_bands).tolist() == ids.tolist()


def test_price_bands_without_stored_edges_are_computed_the_stores_way_before_the_cutoff(duck_engine):
    rows = _one_popular_item_rows() + [_ev("late", dt.datetime(2024, 1, 5), "view", "dear", "c.z", 5000.0)]
    did = make_dataset(duck_engine, "prices", rows)
    stored = sequences.price_bands(duck_engine, did).set_index("category", drop=False)
    with duck_engine.begin() as conn:
        conn.execute(store.price_edges.delete().where(store.price_edges.c.dataset_id == did))
    before = sequences.price_bands(duck_engine, did, before=dt.datetime(2024, 1, 2))
    cz = before[before["category"] == "c.z"].iloc[0]
    assert (cz["p25"], cz["p50"], cz["p75"]) == (60.0, 120.0, 180.0)  # the 24 items before the cutoff, once each
    assert stored.loc["c.z", "p75"] > cz["p75"]  # the stored edges also count the later, dearer item


def test_a_dataset_without_prices_has_no_bands_and_every_band_unknown(engine):
    rows = [{**r, "price": None} for r in _one_popular_item_rows()]  # Taobao's layout has no prices
    did = make_dataset(engine, "no_prices", rows)
    assert sequences.price_bands(engine, did, before=dt.datetime(2024, 1, 2)).empty
    vocabs = _vocabs(engine, did)
    assert vocabs.price_bands == {}
    ids = sequences.price_band_ids(["c.z", None], [None, None], vocabs.price_bands)
    assert ids.tolist() == [sequences.PRICE_UNKNOWN_ID] * 2


def test_a_missing_edge_ends_the_bands_below_it():
    bands = {"few": [10.0, math.nan, math.nan], sequences.ALL_CATEGORIES: [1.0, 2.0, 3.0]}
    ids = sequences.price_band_ids(["few", "few", "other", "few"], [5.0, 50.0, 2.5, 0.0], bands)
    assert ids.tolist() == [2, 3, 4, sequences.PRICE_UNKNOWN_ID]
    assert sequences.price_band_ids(["x"], [5.0], {}).tolist() == [sequences.PRICE_UNKNOWN_ID]


def test_vocabulary_caps_and_round_trip():
    vocab = sequences.Vocabulary("items", ["x", "y"])
    assert vocab.encode(["y", "x", "zzz", None]).tolist() == [3, 2, sequences.OTHER_ID, sequences.OTHER_ID]
    assert vocab.decode([3, 1, 0]) == ["y", None, None]
    assert sequences.Vocabulary.from_dict(vocab.to_dict()).encode(["y"]).tolist() == [3]


def test_vocabulary_frequency_cut(duck_engine):
    rows = [_ev("u", dt.datetime(2024, 1, 1, k), "view", item, "c", 1.0) for k, item in enumerate(["a", "a", "a", "b", "b", "c"])]
    did = make_dataset(duck_engine, "freq", rows)
    vocabs = sequences.build_vocabularies(duck_engine, did, item_cap=1, category_cap=5, brand_cap=5, min_count=2)
    assert vocabs.items.tokens == ["a"]  # capped to the most frequent
    vocabs = sequences.build_vocabularies(duck_engine, did, item_cap=5, category_cap=5, brand_cap=5, min_count=2)
    assert vocabs.items.tokens == ["a", "b"]  # "c" seen once falls under min_count


def test_sampled_chunks_read_the_same_sequences_as_full_ranges(duck_engine):
    rows = [_ev(f"u{k}", dt.datetime(2024, 1, 1, k), "view", "i", "c", 1.0) for k in range(7)]
    did = make_dataset(duck_engine, "chunks", rows)
    vocabs = _vocabs(duck_engine, did)
    users = sequences.list_users(duck_engine, did)
    full = [u for b in sequences.iter_sequences(duck_engine, did, T, vocabs, 3, chunk_users=3) for u in b.user_ids]
    assert full == users
    sample, sampled = sequences.sample_users(users, 4, seed=1)
    assert sampled and len(sample) == 4 and sample == sorted(sample)
    assert sequences.sample_users(users, 4, seed=1)[0] == sample  # seeded
    part = [u for b in sequences.iter_sequences(duck_engine, did, T, vocabs, 3, chunk_users=3, users=sample) for u in b.user_ids]
    assert part == sample


def test_time_buckets():
    ids = sequences.time_bucket_ids([np.nan, 0, 9.9, 10, 59, 86400, 1e9])
    assert ids.tolist() == [1, 2, 2, 3, 3, 9, 14]


def test_sequences_from_a_loaded_history_equal_the_sql_ones(engine):
    """Scoring builds each chunk's sequences from the history it has read: the same batch as the two queries,
    with shoppers past ``max_len``, ties on the time (broken by type, then item, a missing item first),
    purchases, several days and events at or after the cutoff left out."""
    rng = np.random.default_rng(11)
    kinds = ["view", "cart", "purchase", "remove_from_cart"]
    rows = []
    for u in range(40):
        t = dt.datetime(2023, 12, 28) + dt.timedelta(hours=int(rng.integers(0, 96)))
        for _ in range(int(rng.integers(1, 14))):
            if rng.random() > 0.3:  # else a tie: the same second as the previous event
                t += dt.timedelta(minutes=int(rng.integers(1, 900)))
            item = None if rng.random() < 0.1 else f"i{int(rng.integers(0, 30)):02d}"
            rows.append(_ev(f"u{u:02d}", t, kinds[int(rng.integers(0, 4))], item, f"c.k{int(rng.integers(0, 5))}",
                            float(rng.integers(1, 500))))
    rows = list({(r["user_id"], r["event_time"], r["event_type"], r["item_id"]): r for r in rows}.values())
    did = make_dataset(engine, "from_history", rows)
    vocabs = _vocabs(engine, did)
    users = sequences.list_users(engine, did)
    chunk = sequences.user_chunks(users, len(users), exhaustive=True)[0]
    assert any(r["event_time"] >= T for r in rows) and any(r["item_id"] is None for r in rows)
    want = sequences.build_sequences(engine, did, chunk, T, vocabs, max_len=6)
    got = sequences.sequences_from_events(sequences.load_events(engine, did, chunk, None, T), T, vocabs, max_len=6)
    assert got.user_ids == want.user_ids and len(want) > 30
    assert (want.mask.sum(axis=1) == 6).any()  # some shoppers were cut to the window
    for name in (*sequences.SequenceBatch.TOKEN_FIELDS, "recency_bucket", "features"):
        assert np.array_equal(getattr(got, name), getattr(want, name)), name
    assert np.allclose(got.age_days, want.age_days, equal_nan=True)


def test_never_and_long_ago_read_differently_for_the_model_and_the_baseline():
    """The model's days-since features stop at a year (never = a year); the baseline keeps real recencies and
    gives a never-buyer ten years: two ideas under two names, each with its own number."""
    import pandas as pd

    from core import config
    from core.model import baselines
    from core.model import rfm_baseline
    from core.model.config import DAYS_SINCE_CAP, USER_FEATURES

    cutoff = dt.datetime(2024, 1, 1)
    history = pd.DataFrame([  # "old" bought 500 days before the cutoff; "never" only viewed
        _ev("never", cutoff - dt.timedelta(days=10), "view", "i1", "c.x", 10.0),
        _ev("old", cutoff - dt.timedelta(days=500), "purchase", "i1", "c.x", 10.0),
        _ev("old", cutoff - dt.timedelta(days=2), "view", "i1", "c.x", 10.0),
    ])
    vocabs = sequences.Vocabularies(items=sequences.Vocabulary("items", ["i1"]), categories=sequences.Vocabulary("categories", ["c.x"]),
                              brands=sequences.Vocabulary("brands", ["acme"]))
    batch = sequences.sequences_from_events(history, cutoff, vocabs, max_len=4)
    since_purchase = np.expm1(batch.features[:, USER_FEATURES.index("days_since_purchase")])
    assert batch.user_ids == ["never", "old"]
    assert (DAYS_SINCE_CAP, config.RFM_NEVER_DAYS) == (365.0, 3650.0)
    assert since_purchase.tolist() == pytest.approx([365.0, 365.0])  # never, and 500 days clipped to the cap
    rfm = rfm_baseline.rfm_features(history, cutoff)
    assert rfm.loc[["never", "old"], "days_since_last_purchase"].tolist() == pytest.approx([3650.0, 500.0])
