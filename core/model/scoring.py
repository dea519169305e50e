"""Scoring every shopper of a dataset with a version, in chunks: the model's forecast per head, or the saved
baseline's where the model lost, and the reasons; plus the progress reports and stop checks that training and
scoring share. The predictions are written in the caller's transaction (see :func:`core.model.forecast.train` and
:func:`core.model.forecast.score`).
"""
from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from core.model import sequences
from core.errors import TrainingCancelled
from core.model.config import EVENT_CLASS_COLUMNS, EVENT_CLASSES
from core.model.training import TrainProgress
from core.model.card import MODEL



class _Progress:
    def __init__(self, callback: Callable[[TrainProgress], None] | None):
        self.callback = callback

    def __call__(self, stage: str, fraction: float, message: str) -> None:
        if self.callback is not None:
            self.callback(TrainProgress(stage=stage, fraction=min(max(fraction, 0.0), 1.0), message=message))


def _check_stop(should_stop: Callable[[], bool] | None) -> None:
    if should_stop is not None and should_stop():
        raise TrainingCancelled("Training was cancelled; no model version was written.")


def _history_frame(frame: pd.DataFrame) -> pd.DataFrame:
    from core.model.rfm_baseline import _str_array

    frame["event_time"] = pd.to_datetime(frame["event_time"])
    # Python strings, not pandas' Arrow strings (``astype(str)``): the readers of the history zip and group
    # them as objects, and each conversion back cost more than the read (scoring 100,000 shoppers, measured)
    frame["user_id"] = pd.Series(_str_array(frame["user_id"]), index=frame.index, dtype=object)
    return frame


def _decode_ranked(vocab: sequences.Vocabulary, ids: np.ndarray) -> list[list[str]]:
    return [[t for t in vocab.decode(row) if t is not None] for row in ids]


def _baseline_forecasts(loaded, batch: sequences.SequenceBatch, heads: dict, baselines: dict,
                        chunk_history: pd.DataFrame | None, rfm_x: pd.DataFrame | None, cutoff: dt.datetime) -> dict:
    """What the saved baselines forecast for a chunk's shoppers, for the heads (and the stacked propensity) that
    use them: ``p_rfm``, ``type_p``, ``next_cat`` and ``next_cat_p``, ``top_items`` (absent: the model's).
    None of it reads the model, so it is computed with the chunk's reads, beside the model's work on another."""
    used = {h: info["used"] for h, info in heads.items()}
    users, out = batch.user_ids, {}
    if used["propensity"] != MODEL or loaded["calibrator"].stack_ is not None:
        out["p_rfm"] = baselines["rfm"]["propensity"].predict_from_features(rfm_x)
    if used["next_event_type"] != MODEL:
        out["type_p"] = baselines["rfm"]["next_event_type"].predict_from_features(rfm_x)
    if used["next_category"] != MODEL:
        ranked = _chunk_ranker(baselines, used["next_category"], chunk_history, cutoff).rank_categories(users, 1)
        out["next_cat"] = [r[0] if r else None for r in ranked]
        out["next_cat_p"] = np.full(len(users), _hit_rate(heads["next_category"]))
    if used["next_items"] != MODEL:
        ranker = _chunk_ranker(baselines, used["next_items"], chunk_history, cutoff)
        out["top_items"] = [" ".join(r) for r in ranker.rank_items(users, loaded["config"].top_k_items)]
    return out


def _score_chunk(loaded, batch: sequences.SequenceBatch, heads: dict, base: dict, rfm_x: pd.DataFrame | None,
                 dataset_id: int, version: str) -> pd.DataFrame:
    """The rows of a chunk's shoppers: the model's pass and reasons, with ``base`` (:func:`_baseline_forecasts`)
    filling the heads the model lost."""
    from core.model.evaluation import break_ties
    from core.model.reasons import GROUPS, explain, occlusion_effects
    from core.model.training import predict_examples

    cfg, vocabs, n_reasons = loaded["config"], loaded["vocabs"], loaded["settings"].n_reasons
    effects = np.zeros((len(batch), len(GROUPS)))

    def occlude(idx, inputs, hidden, states):  # the reasons reuse each mini-batch's transformer pass
        effects[idx] = occlusion_effects(loaded["model"], batch, idx, inputs, hidden, states, cfg.batch_size)

    used = {h: info["used"] for h, info in heads.items()}
    with loaded["model"].evaluating():  # one mode for every thread of the pass
        pred = predict_examples(loaded["model"], batch, cfg, on_batch=occlude if n_reasons else None,
                                items=used["next_items"] == MODEL, threads=loaded["settings"].scoring_threads)
    users = batch.user_ids
    p_rfm = base.get("p_rfm")
    propensity = loaded["calibrator"](pred.propensity, p_rfm)
    if used["propensity"] != MODEL:  # the trees' ties are ordered by the model, so every shopper has a rank
        propensity = break_ties(p_rfm, propensity)
    type_p = base.get("type_p", pred.type_proba)
    if used["next_category"] == MODEL:
        next_cat = vocabs.categories.decode(pred.category_ids[:, 0])
        next_cat_p = pred.category_p[:, 0].astype(float)
    else:
        next_cat, next_cat_p = base["next_cat"], base["next_cat_p"]
    if used["next_items"] == MODEL:
        top_items = [" ".join(r) for r in _decode_ranked(vocabs.items, pred.item_ids)]
    else:
        top_items = base["top_items"]
    reasons = explain(loaded["model"], batch, vocabs, n_reasons, cfg.batch_size * 4, effects=effects)
    frame = pd.DataFrame({
        "dataset_id": dataset_id, "model_version": version, "user_id": users,
        "purchase_propensity": np.asarray(propensity, dtype=float),
        "next_event_type": [EVENT_CLASSES[i] for i in np.asarray(type_p).argmax(axis=1)],
    })
    for j, col in enumerate(EVENT_CLASS_COLUMNS):
        frame[col] = np.asarray(type_p, dtype=float)[:, j]
    frame["next_category"] = next_cat
    frame["next_category_p"] = next_cat_p
    frame["top_items"] = top_items
    frame["reasons"] = reasons
    frame["expected_revenue"], frame["p_inactive"] = _value_columns(loaded.get("value"), rfm_x, propensity, pred)
    return frame


def _hit_rate(info: dict) -> float:
    """The chance a baseline's first category is right: its accuracy@1 on the held-out window (NaN if unmeasured)."""
    value = (info["metrics"].get(info["used"]) or {}).get("accuracy@1")
    return float("nan") if value is None else float(value)


def _value_columns(value, rfm_x: pd.DataFrame | None, propensity, pred) -> tuple[np.ndarray, np.ndarray]:
    """Expected revenue and chance of no activity of a chunk (NaN for a version saved without them)."""
    if value is None:
        empty = np.full(len(pred.propensity), np.nan)
        return empty, empty.copy()
    from core.model.value import p_none_of

    return value.predict(rfm_x, np.asarray(propensity, dtype=float), p_none_of(pred))


def _chunk_ranker(baselines: dict, name: str, chunk_history: pd.DataFrame, cutoff: dt.datetime):
    """The saved ranker ``name`` (popular fill and transitions fitted once, see :func:`_baselines_to_save`) with
    the chunk's shoppers' own state (their own lists, their last category/item) read from ``chunk_history``
    (in :func:`core.model.sequences.load_events` order: by shopper, then time)."""
    from core.model.baselines import MarkovChain, OwnMostFrequent, last_known

    ranker = baselines["rankers"][name]
    if name == "most_popular":
        return ranker
    own = copy.copy(ranker)
    if isinstance(ranker, OwnMostFrequent):
        fitted = OwnMostFrequent(ranker.popular_window_days).fit(chunk_history, cutoff)
        own.categories_, own.items_ = fitted.categories_, fitted.items_
    elif isinstance(ranker, MarkovChain):
        users = chunk_history["user_id"].to_numpy(dtype=object)
        own.last_category_ = last_known(users, chunk_history["category"])
        own.last_item_ = last_known(users, chunk_history["item_id"])
    return own


#: What scoring reads of a chunk's history when it needs it: the sequences' fields, which hold the rankers'
#: (the RFM features come grouped from the database).
SCORING_HISTORY_COLUMNS = sequences.SEQUENCE_COLUMNS


def _chunk_inputs(engine: Engine, loaded: dict, heads: dict, baselines: dict, dataset_id: int,
                  chunk: sequences.UserChunk, end_cutoff: dt.datetime, need_history: bool, need_rfm: bool):
    """What scoring reads for one chunk of shoppers and what the baselines forecast from it: ``(batch, baseline
    forecasts, RFM features or None)`` (see :func:`_baseline_forecasts`)."""
    from core.model.rfm_baseline import rfm_features_from_store

    cfg = loaded["config"]
    if need_history:  # one query: the sequences come from the chunk's history
        history = _history_frame(sequences.load_events(engine, dataset_id, chunk, None, end_cutoff,
                                                       columns=SCORING_HISTORY_COLUMNS))
        batch = sequences.sequences_from_events(history, end_cutoff, loaded["vocabs"], cfg.max_len)
    else:
        history = None
        batch = sequences.build_sequences(engine, dataset_id, chunk, end_cutoff, loaded["vocabs"], cfg.max_len)
    rfm_x = None
    if need_rfm:
        rfm_x = rfm_features_from_store(engine, dataset_id, chunk, end_cutoff, batch.user_ids, _rfm_config(baselines))
    return batch, _baseline_forecasts(loaded, batch, heads, baselines, history, rfm_x, end_cutoff), rfm_x


def _rfm_config(baselines: dict):
    fitted = baselines["rfm"].get("propensity")
    return None if fitted is None else fitted.config


def inputs_from_history(loaded: dict, heads: dict, baselines: dict, history: pd.DataFrame, end_cutoff: dt.datetime,
                        need_rfm: bool):
    """:func:`_chunk_inputs` of the shoppers in ``history`` (every event of theirs before ``end_cutoff``, the
    :data:`core.model.sequences.EVENT_COLUMNS`, in :func:`core.model.sequences.load_events` order), without a
    database: the batch, the RFM features and the rankers' state all come from the frame (the same numbers as
    the grouped queries, tested). What a Spark executor runs on the events of its shoppers."""
    from core.model.rfm_baseline import rfm_features

    history = _history_frame(history)
    batch = sequences.sequences_from_events(history, end_cutoff, loaded["vocabs"], loaded["config"].max_len)
    rfm_x = rfm_features(history, end_cutoff, batch.user_ids, _rfm_config(baselines)) if need_rfm else None
    return batch, _baseline_forecasts(loaded, batch, heads, baselines, history, rfm_x, end_cutoff), rfm_x


def scoring_needs(loaded: dict, heads: dict) -> tuple[bool, bool]:
    """``(need_history, need_rfm)``: whether scoring reads each chunk's whole history (a ranker serves a head)
    and its RFM features (a gradient-boosting head, the stacked propensity or the value forecasts)."""
    from core.model.baselines import RFMPropensity

    used = {info["used"] for info in heads.values()} - {MODEL, "most_popular"}
    need_rfm = RFMPropensity.name in used or loaded["calibrator"].stack_ is not None or loaded.get("value") is not None
    return bool(used - {RFMPropensity.name}), need_rfm


#: Shoppers in the first chunk scored: nothing runs beside its read, so it is kept small.
FIRST_SCORING_CHUNK = 1_000


def _scoring_chunks(users: list[str], chunk_users: int) -> list[sequences.UserChunk]:
    """Chunks of at most ``chunk_users`` shoppers, the first one of at most :data:`FIRST_SCORING_CHUNK`: the
    model waits for that read alone, while every later read overlaps the model's work on the chunk before."""
    first = min(chunk_users, FIRST_SCORING_CHUNK)
    return (sequences.user_chunks(users[:first], first, exhaustive=True)
            + sequences.user_chunks(users[first:], chunk_users, exhaustive=True))


def _score_all(engine: Engine, conn, loaded: dict, heads: dict, baselines: dict, dataset_id: int, version: str,
               end_cutoff: dt.datetime, report: _Progress, should_stop, fraction_range: tuple[float, float]) -> int:
    """Score every shopper at ``end_cutoff`` chunk by chunk and write the rows in ``conn``; returns how many.

    The next chunk's reads (its history or sequences and RFM features: database queries and
    pandas) and its baselines' forecasts run in another thread while the model scores the
    current one (itself in ``settings.scoring_threads`` threads), so that they share the
    cores; torch and the database release the interpreter while they work.
    """
    from concurrent.futures import ThreadPoolExecutor

    from core.model.registry import write_predictions

    need_history, need_rfm = scoring_needs(loaded, heads)
    users = sequences.list_users(engine, dataset_id, before=end_cutoff)
    chunks = _scoring_chunks(users, loaded["settings"].chunk_users)
    lo, hi = fraction_range
    written = 0
    report("scoring", lo, f"scoring {len(users):,} shoppers")

    def read(i: int):
        return _chunk_inputs(engine, loaded, heads, baselines, dataset_id, chunks[i], end_cutoff, need_history,
                             need_rfm)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="cartsight-scoring-read") as reader:
        ahead = reader.submit(read, 0) if chunks else None
        for i in range(len(chunks)):
            _check_stop(should_stop)
            batch, base, rfm_x = ahead.result()
            ahead = reader.submit(read, i + 1) if i + 1 < len(chunks) else None
            frame = _score_chunk(loaded, batch, heads, base, rfm_x, dataset_id, version)
            written += write_predictions(conn, frame)
            report("scoring", lo + (hi - lo) * (i + 1) / len(chunks), f"scored {written:,} of {len(users):,} shoppers")
    return written
