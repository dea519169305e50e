"""Transition priors: what usually follows a shopper's last category (item), counted in the database.

The first-order Markov chain is the strongest baseline for the next category and items on
real and simulated shoppers (the first event after a gap often continues the last
category). Rather than ask the transformer to rediscover those counts from a few thousand
examples, the model reads them as an input: for each shopper the log-probability of every
category (item) given their last one, smoothed towards popularity, is added to the head's
logits with a learned weight. The category head reads the same table a second time from the
last session's most frequent category (:func:`session_main`): a session mostly keeps one
category, so its main one often says more about the next visit than the last click does.
The model starts from an even mix of the two and learns how the weights, the sequence, the
time gaps and the shopper's own history should move it.

Counts are taken in SQL (a ``LAG`` window per shopper, grouped by pair), so only the pairs
travel to Python; each category (item) keeps its ``top_k`` most frequent successors. A
prior is always built from events before the cutoff of the examples it serves, so no
target transition is counted in its own input.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import store
from core.model import sequences


@dataclass
class TransitionPrior:
    """Smoothed ``log P(next | last)`` over one vocabulary, stored sparsely.

    ``succ_ids``/``succ_counts`` [vocab, top_k]: the most frequent successors of each id
    and their counts (id 0 and count 0 where fewer); ``totals`` [vocab]: all transitions
    out of each id; ``popularity`` [vocab]: the smoothed share of each id among successors.
    ``alpha`` is the weight of popularity in the smoothing.
    """

    succ_ids: np.ndarray
    succ_counts: np.ndarray
    totals: np.ndarray
    popularity: np.ndarray
    alpha: float

    @classmethod
    def empty(cls, vocab_size: int, top_k: int, alpha: float) -> "TransitionPrior":
        """A prior with no transitions (uniform popularity over the real ids)."""
        pop = np.zeros(vocab_size, dtype=np.float32)
        pop[sequences.OTHER_ID + 1:] = 1.0
        pop = pop / max(pop.sum(), 1.0)
        return cls(np.zeros((vocab_size, top_k), np.int64), np.zeros((vocab_size, top_k), np.float32),
                   np.zeros(vocab_size, np.float32), pop.astype(np.float32), alpha)

    def log_proba(self, last: np.ndarray) -> np.ndarray:
        """Dense [len(last), vocab] smoothed log-probabilities after each id of ``last`` (0: no last id)."""
        tot = self.totals[last][:, None]
        pop = np.maximum(self.popularity, 1e-12)
        out = np.log(self.alpha * pop)[None, :] - np.log(tot + self.alpha)  # [n, vocab]
        ids, cnt = self.succ_ids[last], self.succ_counts[last]
        rows = np.repeat(np.arange(len(last)), ids.shape[1])
        vals = np.log(cnt + self.alpha * pop[ids]) - np.log(tot + self.alpha)
        keep = (cnt > 0).ravel()
        out[rows[keep], ids.ravel()[keep]] = vals.ravel()[keep]
        return out


def _pair_counts(engine: Engine, dataset_id: int, column: str, before: dt.datetime | None,
                 users: Sequence[str] | None, chunk_users: int):
    ev = store.events
    col = ev.c[column]
    prev = sa.func.lag(col).over(
        partition_by=ev.c.user_id, order_by=(ev.c.event_time, ev.c.event_type, ev.c.item_id)).label("prev")
    where = [ev.c.dataset_id == dataset_id, col.is_not(None)]
    if before is not None:
        where.append(ev.c.event_time < before)
    n = sa.func.count().label("n")
    # every shopper in one query; a sample chunk by chunk (each chunk's pairs summed below)
    parts = [[]] if users is None else [sequences.chunk_where(c) for c in sequences.user_chunks(users, chunk_users, False)]
    rows = []
    with engine.connect() as conn:
        for part in parts:
            inner = sa.select(col.label("nxt"), prev).where(*where, *part).subquery()
            query = (sa.select(inner.c.prev, inner.c.nxt, n).where(inner.c.prev.is_not(None))
                     .group_by(inner.c.prev, inner.c.nxt))
            rows.extend(conn.execute(query).fetchall())
    if not rows:
        return [], [], np.zeros(0)
    prev_v, next_v, counts = zip(*rows)
    return list(prev_v), list(next_v), np.asarray(counts, dtype=np.float64)


def build_prior(engine: Engine, dataset_id: int, column: str, vocab: sequences.Vocabulary, before: dt.datetime | None,
                top_k: int, alpha: float, users: Sequence[str] | None = None,
                chunk_users: int = 5_000) -> TransitionPrior:
    """Transition prior of ``column`` ("category" or "item_id") from the events before ``before`` (all when None).

    ``users``: count only these shoppers' transitions (a training sample, read ``chunk_users`` at
    a time), so the cost stays that of the sample however large the dataset; None counts every
    shopper in one query. Values outside ``vocab`` count as its "other" id (pairs that collapse
    onto the same ids are summed). Errors: none beyond the database's.
    """
    size = len(vocab)
    prev_v, next_v, counts = _pair_counts(engine, dataset_id, column, before, users, chunk_users)
    if not len(counts):
        return TransitionPrior.empty(size, top_k, alpha)
    p = vocab.encode(prev_v)
    q = vocab.encode(next_v)
    # merge pairs that collapse onto the same ids (rare values -> "other")
    key = p * size + q
    uniq, inv = np.unique(key, return_inverse=True)
    summed = np.bincount(inv, weights=counts)
    p_u, q_u = uniq // size, uniq % size
    totals = np.bincount(p_u, weights=summed, minlength=size).astype(np.float32)
    pop = np.bincount(q_u, weights=summed, minlength=size)
    pop[: sequences.OTHER_ID + 1] = 0.0  # padding and "other" are never forecast
    pop[sequences.OTHER_ID + 1:] += 1.0  # add-one over the real ids: unseen ones keep a small chance
    pop = pop / max(pop.sum(), 1.0)
    # successors of each id, most frequent first ("other" excluded: it is not a forecast)
    real = q_u > sequences.OTHER_ID
    p_r, q_r, c_r = p_u[real], q_u[real], summed[real]
    order = np.lexsort((q_r, -c_r, p_r))
    p_r, q_r, c_r = p_r[order], q_r[order], c_r[order]
    starts = np.searchsorted(p_r, p_r, side="left")
    rank = np.arange(len(p_r)) - starts
    keep = rank < top_k
    succ_ids = np.zeros((size, top_k), np.int64)
    succ_counts = np.zeros((size, top_k), np.float32)
    succ_ids[p_r[keep], rank[keep]] = q_r[keep]
    succ_counts[p_r[keep], rank[keep]] = c_r[keep]
    return TransitionPrior(succ_ids, succ_counts, totals, pop.astype(np.float32), alpha)


def last_known(ids: np.ndarray) -> np.ndarray:
    """Per row of a left-padded [n, L] id array, the last id that is a known value (>= 2); 0 when none."""
    known = ids > sequences.OTHER_ID
    if ids.shape[1] == 0:
        return np.zeros(len(ids), np.int64)
    pos = ids.shape[1] - 1 - np.argmax(known[:, ::-1], axis=1)
    out = ids[np.arange(len(ids)), pos]
    return np.where(known.any(axis=1), out, 0).astype(np.int64)


def last_session_mask(event_type: np.ndarray, age_days: np.ndarray, gap_days: float) -> np.ndarray:
    """Boolean [n, L] mask of each row's last session: the trailing events each within ``gap_days`` of the next one."""
    mask = event_type != sequences.PAD_ID
    age = np.nan_to_num(age_days, nan=1e9)
    out = np.zeros_like(mask)
    if mask.shape[1]:
        out[:, -1] = mask[:, -1]
        for j in range(mask.shape[1] - 2, -1, -1):
            out[:, j] = out[:, j + 1] & mask[:, j] & (age[:, j] - age[:, j + 1] <= gap_days)
    return out


def session_main(ids: np.ndarray, session: np.ndarray) -> np.ndarray:
    """Per row, the known id (>= 2) most frequent among the positions ``session`` (ties: the most recent).

    Falls back to :func:`last_known` of the whole row when the session has no known id. A
    session mostly keeps one category, so its most frequent one says more about what comes
    next than its last click.
    """
    known = session & (ids > sequences.OTHER_ID)
    if ids.shape[1] == 0:
        return np.zeros(len(ids), np.int64)
    same = (ids[:, :, None] == ids[:, None, :]) & known[:, None, :]
    count = same.sum(axis=2)
    score = np.where(known, count * ids.shape[1] + np.arange(ids.shape[1])[None, :], -1)
    pos = np.argmax(score, axis=1)
    out = ids[np.arange(len(ids)), pos]
    return np.where(known.any(axis=1), out, last_known(ids)).astype(np.int64)


def own_category_logp(inputs: dict, n_categories: int):
    """[n, n_categories] log of each shopper's own category counts in their events (``inputs`` as
    :func:`core.model.modeling.batch_tensors` gives them), plus a half so a category they never visited stays
    possible; up to a per-shopper constant, which no ranking or softmax sees."""
    import torch

    counts = torch.zeros(inputs["category"].shape[0], n_categories)
    counts.scatter_add_(1, inputs["category"], inputs["attention_mask"].to(counts.dtype))
    return torch.log(counts + 0.5)


def sessions_back(event_type: np.ndarray, age_days: np.ndarray, gap_days: float) -> np.ndarray:
    """[n, L] how many sessions before the row's last one each event falls (0: the last session, as
    :func:`last_session_mask` draws it; padding counts as the session of the event after it)."""
    live = event_type != sequences.PAD_ID
    age = np.nan_to_num(age_days, nan=1e9)
    breaks = np.zeros(live.shape, dtype=np.int64)
    if live.shape[1] > 1:  # a break after position j: more than ``gap_days`` before the next event
        breaks[:, :-1] = (live[:, :-1] & (age[:, :-1] - age[:, 1:] > gap_days))
    return np.cumsum(breaks[:, ::-1], axis=1)[:, ::-1].copy()


def own_category_share(inputs: dict, n_categories: int, half_life_sessions: float):
    """Each shopper's own category shares among the known categories of the events they have (``inputs`` as
    :func:`core.model.modeling.batch_tensors` gives them), each event weighted ``0.5 ** (sessions back /
    half_life_sessions)``: ``inf`` weighs every event alike (all-time shares), 0 keeps the last session only.

    Returns ([n, n_categories] shares, summing to 1 where the shopper has a known category and to 0 where
    not; [n] the number of known events). A recent move to a new category outranks an old habit when the
    half-life is short, where all-time counts keep ranking the habit first.
    """
    import torch

    cat = inputs["category"]
    known = (inputs["attention_mask"] > 0) & (cat > sequences.OTHER_ID)
    back = inputs["sessions_back"].to(torch.float32)
    if half_life_sessions == 0:
        weight = (back == 0).to(torch.float32)
    else:
        weight = torch.pow(0.5, back / half_life_sessions)
    weight = weight * known
    counts = torch.zeros(cat.shape[0], n_categories).scatter_add_(1, cat, weight)
    return counts / counts.sum(dim=1, keepdim=True).clamp(min=1e-12), known.sum(dim=1).to(torch.float32)
