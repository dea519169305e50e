"""The model's input tensors for rows of a :class:`core.model.sequences.SequenceBatch`: the token fields, the
recent counts and the ids the category and item priors read. Kept apart from :mod:`core.model.modeling` so that the
modules the model imports (e.g. :mod:`core.model.category_mix`) can build them without importing the model."""
from __future__ import annotations

import numpy as np
import torch

from core.model.config import EVENT_TYPE_IDS, RECENT_FEATURES, RECENT_WINDOWS_DAYS, SESSION_GAP_DAYS
from core.model.priors import last_known, last_session_mask, session_main, sessions_back
from core.model.sequences import PAD_ID, SequenceBatch


def recent_counts(batch: SequenceBatch) -> np.ndarray:
    """log1p counts of ``RECENT_FEATURES`` read from the sequence arrays (so hiding events changes them too)."""
    age = np.nan_to_num(batch.age_days, nan=np.inf)
    live = batch.mask
    cols = [((age < d) & live).sum(axis=1) for d in RECENT_WINDOWS_DAYS]
    week = (age < max(RECENT_WINDOWS_DAYS)) & live
    for kind in ("cart", "purchase", "remove_from_cart"):
        cols.append((week & (batch.event_type == EVENT_TYPE_IDS[kind])).sum(axis=1))
    return np.log1p(np.stack(cols, axis=1).astype(np.float32)) if len(batch) else np.zeros((0, len(RECENT_FEATURES)), np.float32)


def batch_tensors(batch: SequenceBatch, index=None, start: int | None = None, priors: bool = True) -> dict:
    """Tensors of ``batch`` rows ``index`` for the model, from column ``start`` on.

    ``start`` None trims the leading columns that are padding in every row (an occluded
    batch has holes, so the trim looks at the columns, not at the number of events).
    ``priors`` False leaves out the last and session ids that only the category and item
    heads read (the propensity alone, as the reasons need, does without them).
    """
    b = batch if index is None else batch.take(index)
    if start is None:
        live = (b.event_type != PAD_ID).any(axis=0)
        start = int(np.argmax(live)) if live.any() else b.event_type.shape[1] - 1
    width = b.event_type.shape[1] - start
    out = {name: torch.from_numpy(np.ascontiguousarray(getattr(b, name)[:, start:])) for name in SequenceBatch.TOKEN_FIELDS}
    out["attention_mask"] = (out["event_type"] != PAD_ID).long()
    out["position_ids"] = torch.arange(start, start + width).unsqueeze(0).expand(len(b), -1)
    out["recency_bucket"] = torch.from_numpy(b.recency_bucket)
    out["features"] = torch.from_numpy(np.concatenate([b.features, recent_counts(b)], axis=1))
    if priors:
        out["last_category"] = torch.from_numpy(last_known(b.category))
        out["session_category"] = torch.from_numpy(
            session_main(b.category, last_session_mask(b.event_type, b.age_days, SESSION_GAP_DAYS)))
        out["sessions_back"] = torch.from_numpy(sessions_back(b.event_type, b.age_days, SESSION_GAP_DAYS)[:, start:])
        out["last_item"] = torch.from_numpy(last_known(b.item))
    return out
