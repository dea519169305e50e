"""Per-shopper reasons for the purchase propensity, by occluding groups of events.

For every shopper the model's propensity is recomputed with one group of their history
hidden at a time: the last session, the carts, the purchases, the events of their most
recent category, and the "time since the last visit" (replaced by "just now"). The drop
(or rise) in propensity measures how much the group moved the forecast; the two or three
largest moves are written in words ("carted 2 smartphones in the last 3 days", "bought 3
times in 8 weeks", "no visit for 20 days"). Only the shoppers who have events in a group
are re-run for it (most have no carts or purchases), in large length-sorted batches under
``torch.inference_mode``, which keeps this affordable for every shopper.
"""
from __future__ import annotations

import math

import numpy as np

from core import sequences as seq
from core.model.config import EVENT_TYPE_IDS, NEVER_DAYS, USER_FEATURES

GROUPS = ("last_session", "carts", "purchases", "recent_category", "recency")
#: Gap (days) that separates sessions inside a sequence when judging "the last session".
SESSION_GAP_DAYS = 30 / 1440
#: Moves of the propensity smaller than this are not worth a reason.
MIN_EFFECT = 0.005


def _hide(batch: seq.SequenceBatch, hide: np.ndarray) -> seq.SequenceBatch:
    """A copy of ``batch`` with the positions in ``hide`` turned into padding (rows that would lose everything keep it)."""
    keep_row = (batch.mask & ~hide).any(axis=1)
    hide = hide & keep_row[:, None]
    values = {}
    for name in seq.SequenceBatch.TOKEN_FIELDS:
        arr = getattr(batch, name).copy()
        arr[hide] = seq.PAD_ID
        values[name] = arr
    age = batch.age_days.copy()
    age[hide] = np.nan
    return seq.SequenceBatch(user_ids=batch.user_ids, cutoff=batch.cutoff, **values, age_days=age,
                             recency_bucket=batch.recency_bucket.copy(), features=batch.features.copy())


def group_masks(batch: seq.SequenceBatch) -> dict[str, np.ndarray]:
    """Boolean [shoppers, positions] masks of the events in each occlusion group (``recency`` has none)."""
    mask = batch.mask
    age = np.nan_to_num(batch.age_days, nan=1e9)
    # last session: trailing events each within SESSION_GAP_DAYS of the next one
    n, length = mask.shape
    last_session = np.zeros_like(mask)
    if length:
        last_session[:, -1] = mask[:, -1]
        for j in range(length - 2, -1, -1):
            last_session[:, j] = last_session[:, j + 1] & mask[:, j] & (age[:, j] - age[:, j + 1] <= SESSION_GAP_DAYS)
    last_cat = batch.category[:, -1:] if length else np.zeros((n, 1), dtype=np.int64)
    return {
        "last_session": last_session,
        "carts": mask & (batch.event_type == EVENT_TYPE_IDS["cart"]),
        "purchases": mask & (batch.event_type == EVENT_TYPE_IDS["purchase"]),
        "recent_category": mask & (batch.category == last_cat) & (last_cat > seq.OTHER_ID),
        "recency": np.zeros_like(mask),
    }


def _occlude(batch: seq.SequenceBatch, group: str, hide: np.ndarray) -> seq.SequenceBatch:
    """``batch`` with the events of ``group`` (positions ``hide``) hidden and the history counts adjusted."""
    b = _hide(batch, hide)
    if group == "carts":
        b.features[:, USER_FEATURES.index("n_carts")] = 0.0
    elif group == "purchases":
        b.features[:, USER_FEATURES.index("n_purchases")] = 0.0
        b.features[:, USER_FEATURES.index("days_since_purchase")] = math.log1p(NEVER_DAYS)
    elif group == "recency":
        b.recency_bucket = np.full_like(b.recency_bucket, seq.time_bucket_ids([0.0])[0])
    return b


def occluded_batches(batch: seq.SequenceBatch) -> dict[str, seq.SequenceBatch]:
    """One modified copy of ``batch`` per group in :data:`GROUPS` (history counts adjusted to match)."""
    masks = group_masks(batch)
    return {group: _occlude(batch, group, masks[group]) for group in GROUPS}


def _plural(word: str, n: int) -> str:
    if n == 1:
        return word
    if word.endswith(("ss", "x", "ch", "sh")):
        return word + "es"
    # category leaves are often plural already ("clocks", "shoes", "jeans")
    return word if word.endswith("s") else word + "s"


def _category_word(name: str | None) -> str:
    return name.rsplit(".", 1)[-1].replace("_", " ") if name else "item"


def _days_phrase(days: float) -> str:
    if days < 1:
        return "the last day"
    d = max(1, math.ceil(days))
    return f"the last {d} {_plural('day', d)}"


def describe(group: str, batch: seq.SequenceBatch, row: int, masks: dict, vocabs: seq.Vocabularies) -> str:
    """The words for one group of one shopper (what the hidden events were)."""
    hidden = masks[group][row]
    ages = batch.age_days[row][hidden]
    cats = vocabs.categories.decode(batch.category[row][hidden])
    named = [c for c in cats if c]
    top = max(set(named), key=named.count) if named else None
    n = int(hidden.sum())
    if group == "carts":
        return f"carted {n} {_plural(_category_word(top), n)} in {_days_phrase(float(ages.max()))}"
    if group == "purchases":
        n_total = int(round(math.expm1(batch.features[row, USER_FEATURES.index("n_purchases")])))
        span_days = math.expm1(batch.features[row, USER_FEATURES.index("days_since_first")])
        weeks = max(1, math.ceil(span_days / 7))
        return f"bought {n_total} {_plural('time', n_total)} in {weeks} {_plural('week', weeks)}"
    if group == "last_session":
        when = float(ages.min())
        ago = "today" if when < 1 else f"{math.floor(when)} {_plural('day', math.floor(when))} ago"
        return f"{n} {_plural('event', n)} in the last visit ({ago}), mostly {_category_word(top)}"
    if group == "recent_category":
        return f"kept coming back to {_category_word(top)} ({n} {_plural('event', n)} in {_days_phrase(float(ages.max()))})"
    last = float(np.nanmin(batch.age_days[row])) if batch.mask[row].any() else float("nan")
    if last >= 1:
        d = math.floor(last)
        return f"no visit for {d} {_plural('day', d)}"
    hours = max(1, math.ceil(last * 24))
    return f"visited in the last {hours} {_plural('hour', hours)}"


def explain(model, batch: seq.SequenceBatch, vocabs: seq.Vocabularies, n_reasons: int, batch_size: int,
            base: np.ndarray | None = None, hidden: np.ndarray | None = None) -> list[str]:
    """Reasons for each shopper of ``batch``: the ``n_reasons`` groups that moved the propensity most, "; "-joined.

    Each reason ends with whether it raises or lowers the chance of a purchase. ``base``
    is the model's uncalibrated propensity of ``batch`` when already known; ``hidden`` its
    transformer's last hidden states (then "recency", which changes nothing the transformer
    reads, costs no transformer pass).
    """
    from core.model.modeling import batch_tensors

    if n_reasons == 0 or not len(batch):
        return [""] * len(batch)

    import torch

    def propensity(b: seq.SequenceBatch, known_hidden: np.ndarray | None = None) -> np.ndarray:
        # rows ordered by length so each mini-batch trims to its own width (less padding to run)
        order = np.argsort((b.event_type != seq.PAD_ID).sum(axis=1), kind="stable")
        out = np.empty(len(b), dtype=np.float64)
        with torch.inference_mode():
            for s in range(0, len(b), batch_size):
                idx = np.sort(order[s:s + batch_size])
                if known_hidden is None:
                    out[idx] = model.predict_propensity(batch_tensors(b, idx))
                else:
                    out[idx] = model.propensity_from_hidden(known_hidden[idx], batch_tensors(b, idx))
        return out

    full = propensity(batch) if base is None else np.asarray(base, dtype=np.float64)
    masks = group_masks(batch)
    effects = np.zeros((len(batch), len(GROUPS)))
    for g, group in enumerate(GROUPS):
        # only shoppers with events in the group move when it is hidden: run just those rows
        rows = np.arange(len(batch)) if group == "recency" else np.flatnonzero(masks[group].any(axis=1))
        if not len(rows):
            continue
        sub = batch.take(rows)
        reuse = hidden[rows] if group == "recency" and hidden is not None else None
        effects[rows, g] = full[rows] - propensity(_occlude(sub, group, masks[group][rows]), reuse)
    reasons = []
    for row in range(len(batch)):
        order = np.argsort(-np.abs(effects[row]), kind="stable")[:n_reasons]
        words = []
        for g in order:
            if abs(effects[row, g]) < MIN_EFFECT:
                continue
            direction = "raises" if effects[row, g] > 0 else "lowers"
            words.append(f"{describe(GROUPS[g], batch, row, masks, vocabs)} ({direction} the chance)")
        reasons.append("; ".join(words))
    return reasons
