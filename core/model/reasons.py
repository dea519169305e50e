"""Per-shopper reasons for the purchase propensity, by occluding groups of events.

For every shopper the model's propensity is recomputed with one group of their history
hidden at a time: the last session, the carts, the purchases, the events of their most
recent category, and the "time since the last visit" (replaced by "just now"). The drop
(or rise) in propensity measures how much the group moved the forecast; the two or three
largest moves are written in words ("carted 2 smartphones in the last 3 days", "bought 3
times in 8 weeks", "no visit for 20 days"). Only the shoppers who have events in a group
are re-run for it (most have no carts or purchases).

The transformer is causal, so hiding events changes nothing before the first hidden one:
each occlusion reuses the full pass's keys and values up to there and recomputes only the
events that stay after it (``ForecastModel.occluded_hidden``; a hidden event is a masked key,
so its column is skipped); an event that stays keeps its token, so the first block's input
and projections are reused at every column too. The same numbers as a whole new pass at a
fraction of the cost (the last session, hidden for every shopper, is one column).
Scoring hands the full pass of each mini-batch to :func:`occlusion_effects`, so no pass is
run twice.
"""
from __future__ import annotations

import math

import numpy as np

from core.model import sequences
from core.model.config import DAYS_SINCE_CAP, EVENT_TYPE_IDS, SESSION_GAP_DAYS, USER_FEATURES
from core.model.priors import last_session_mask

GROUPS = ("last_session", "carts", "purchases", "recent_category", "recency")
#: Moves of the propensity smaller than this are not worth a reason.
MIN_EFFECT = 0.005


def _hide(batch: sequences.SequenceBatch, hide: np.ndarray) -> sequences.SequenceBatch:
    """A copy of ``batch`` with the positions in ``hide`` turned into padding (rows that would lose everything keep it)."""
    keep_row = (batch.mask & ~hide).any(axis=1)
    hide = hide & keep_row[:, None]
    values = {}
    for name in sequences.SequenceBatch.TOKEN_FIELDS:
        arr = getattr(batch, name).copy()
        arr[hide] = sequences.PAD_ID
        values[name] = arr
    age = batch.age_days.copy()
    age[hide] = np.nan
    return sequences.SequenceBatch(user_ids=batch.user_ids, cutoff=batch.cutoff, **values, age_days=age,
                             recency_bucket=batch.recency_bucket.copy(), features=batch.features.copy())


def group_masks(batch: sequences.SequenceBatch) -> dict[str, np.ndarray]:
    """Boolean [shoppers, positions] masks of the events in each occlusion group (``recency`` has none)."""
    mask = batch.mask
    n, length = mask.shape
    last_session = last_session_mask(batch.event_type, batch.age_days, SESSION_GAP_DAYS)
    last_cat = batch.category[:, -1:] if length else np.zeros((n, 1), dtype=np.int64)
    return {
        "last_session": last_session,
        "carts": mask & (batch.event_type == EVENT_TYPE_IDS["cart"]),
        "purchases": mask & (batch.event_type == EVENT_TYPE_IDS["purchase"]),
        "recent_category": mask & (batch.category == last_cat) & (last_cat > sequences.OTHER_ID),
        "recency": np.zeros_like(mask),
    }


def _occlude(batch: sequences.SequenceBatch, group: str, hide: np.ndarray) -> sequences.SequenceBatch:
    """``batch`` with the events of ``group`` (positions ``hide``) hidden and the history counts adjusted."""
    b = _hide(batch, hide)
    if group == "carts":
        b.features[:, USER_FEATURES.index("n_carts")] = 0.0
    elif group == "purchases":
        b.features[:, USER_FEATURES.index("n_purchases")] = 0.0
        b.features[:, USER_FEATURES.index("days_since_purchase")] = math.log1p(DAYS_SINCE_CAP)
    elif group == "recency":
        b.recency_bucket = np.full_like(b.recency_bucket, sequences.time_bucket_ids([0.0])[0])
    return b


def occluded_batches(batch: sequences.SequenceBatch) -> dict[str, sequences.SequenceBatch]:
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


def _top_categories(ids: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """Per row, the most frequent named category id among the ``hidden`` positions (ties: the smallest id; 0: none)."""
    rows, cols = np.nonzero(hidden & (ids > sequences.OTHER_ID))
    out = np.zeros(len(ids), dtype=np.int64)
    if not len(rows):
        return out
    width = int(ids.max()) + 1
    keys, counts = np.unique(rows.astype(np.int64) * width + ids[rows, cols], return_counts=True)
    key_rows, key_ids = keys // width, keys % width
    best = np.lexsort((key_ids, -counts, key_rows))  # per row: the most counted, then the smallest id
    first = np.ones(len(best), dtype=bool)
    first[1:] = key_rows[best][1:] != key_rows[best][:-1]
    out[key_rows[best][first]] = key_ids[best][first]
    return out


def group_facts(batch: sequences.SequenceBatch, masks: dict, vocabs: sequences.Vocabularies) -> dict[str, dict]:
    """Per group, the numbers its words need, for every row at once: events hidden, their oldest and newest age,
    their most frequent category (decoded), and the history counts the purchases and recency words read."""
    age = batch.age_days
    facts = {}
    for group in GROUPS:
        hidden = masks[group]
        with np.errstate(invalid="ignore"):
            ages = np.where(hidden, age, np.nan)
        any_hidden = hidden.any(axis=1)
        facts[group] = {
            "n": hidden.sum(axis=1),
            "oldest": np.where(any_hidden, np.nanmax(np.where(any_hidden[:, None], ages, 0.0), axis=1), np.nan),
            "newest": np.where(any_hidden, np.nanmin(np.where(any_hidden[:, None], ages, 0.0), axis=1), np.nan),
        }
        if group in ("carts", "last_session", "recent_category"):
            top = _top_categories(batch.category, hidden)
            names = vocabs.categories.decode(np.unique(top))
            lookup = dict(zip(np.unique(top).tolist(), names))
            facts[group]["top"] = [lookup[t] for t in top.tolist()]
    live = batch.mask
    with np.errstate(invalid="ignore"):
        facts["recency"]["last"] = np.where(live.any(axis=1), np.nanmin(np.where(live, age, np.inf), axis=1), np.nan)
    facts["purchases"]["n_total"] = np.rint(np.expm1(batch.features[:, USER_FEATURES.index("n_purchases")])).astype(int)
    facts["purchases"]["span_days"] = np.expm1(batch.features[:, USER_FEATURES.index("days_since_first")])
    return facts


def _words(group: str, facts: dict, row: int) -> str:
    f = facts[group]
    n = int(f["n"][row])
    if group == "carts":
        return f"carted {n} {_plural(_category_word(f['top'][row]), n)} in {_days_phrase(float(f['oldest'][row]))}"
    if group == "purchases":
        n_total = int(f["n_total"][row])
        weeks = max(1, math.ceil(float(f["span_days"][row]) / 7))
        return f"bought {n_total} {_plural('time', n_total)} in {weeks} {_plural('week', weeks)}"
    if group == "last_session":
        when = float(f["newest"][row])
        ago = "today" if when < 1 else f"{math.floor(when)} {_plural('day', math.floor(when))} ago"
        return f"{n} {_plural('event', n)} in the last visit ({ago}), mostly {_category_word(f['top'][row])}"
    if group == "recent_category":
        return (f"kept coming back to {_category_word(f['top'][row])} ({n} {_plural('event', n)} in "
                f"{_days_phrase(float(f['oldest'][row]))})")
    last = float(f["last"][row])
    if last >= 1:
        d = math.floor(last)
        return f"no visit for {d} {_plural('day', d)}"
    hours = max(1, math.ceil(last * 24))
    return f"visited in the last {hours} {_plural('hour', hours)}"


def describe(group: str, batch: sequences.SequenceBatch, row: int, masks: dict, vocabs: sequences.Vocabularies) -> str:
    """The words for one group of one shopper (what the hidden events were)."""
    one = batch.take(np.array([row]))
    return _words(group, group_facts(one, {g: m[[row]] for g, m in masks.items()}, vocabs), 0)


def _rerun_occlusions(sub: sequences.SequenceBatch, masks: dict) -> tuple[sequences.SequenceBatch, np.ndarray,
                                                                           np.ndarray, np.ndarray, np.ndarray]:
    """Every occlusion that runs the transformer again, one row each, all groups together: the occluded rows,
    which row of ``sub`` and which group each is, its first hidden column, and how many events it recomputes.

    Only shoppers with events in a group are occluded for it. A recent category that hides exactly the
    events of the last session is the same occlusion (neither adjusts a history count): it is left
    out, and :func:`occlusion_effects` gives it the last session's effect.
    """
    parts, rows, groups, hides = [], [], [], []
    for g, group in enumerate(GROUPS):
        if group == "recency":  # changes nothing the transformer reads
            continue
        hide = masks[group]
        r = np.flatnonzero(hide.any(axis=1))
        if group == "recent_category":
            r = r[~(hide[r] == masks["last_session"][r]).all(axis=1)]
        parts.append(_occlude(sub.take(r), group, hide[r]))
        rows.append(r)
        groups.append(np.full(len(r), g))
        hides.append(hide[r])
    hide = np.concatenate(hides)
    first = np.argmax(hide, axis=1)
    rows = np.concatenate(rows)
    stay = (sub.mask[rows] & ~hide & (np.arange(hide.shape[1]) >= first[:, None])).sum(axis=1)
    return sequences.SequenceBatch.concat(parts), rows, np.concatenate(groups), first, stay


def occlusion_effects(model, batch: sequences.SequenceBatch, index: np.ndarray, inputs: dict, hidden, states,
                      batch_size: int) -> np.ndarray:
    """[len(index), len(GROUPS)] change of the uncalibrated propensity of rows ``index`` when each group is hidden.

    ``inputs`` are ``batch_tensors(batch, index)``, ``hidden`` and ``states`` (``PassStates``) the
    model's full pass over them (``ForecastModel.states_for_occlusion`` or a pass inside
    ``keeping_projections``). Effect = propensity with everything minus propensity with the
    group hidden (positive: the group raises the chance); 0 for shoppers without the group.
    The occlusions of every group run together, ``batch_size`` at a time, in order of how many
    events each recomputes (so that few packed slots go unused).
    """
    import torch

    from core.model.modeling import batch_tensors

    sub = batch.take(index)
    offset = sub.event_type.shape[1] - inputs["event_type"].shape[1]  # columns the full pass trimmed
    hidden = torch.as_tensor(hidden)
    effects = np.zeros((len(sub), len(GROUPS)))
    masks = group_masks(sub)
    with model.evaluating(), torch.inference_mode():
        base = model.propensity_from_hidden(hidden, inputs)
        recency = GROUPS.index("recency")
        tensors = batch_tensors(_occlude(sub, "recency", masks["recency"]), start=offset, priors=False)
        effects[:, recency] = base - model.propensity_from_hidden(hidden, tensors)
        occluded, rows, groups, first, stay = _rerun_occlusions(sub, masks)
        order = np.argsort(stay, kind="stable")
        for s in range(0, len(rows), batch_size):
            part = order[s:s + batch_size]
            r = rows[part]
            tensors = batch_tensors(occluded, part, start=offset, priors=False)
            h = model.occluded_hidden(tensors, states, first[part] - offset, rows=r)
            effects[r, groups[part]] = base[r] - model.propensity_from_hidden(h, tensors)
    session, category = GROUPS.index("last_session"), GROUPS.index("recent_category")
    same = masks["recent_category"].any(axis=1)
    same[rows[groups == category]] = False
    effects[same, category] = effects[same, session]
    return effects


def explain(model, batch: sequences.SequenceBatch, vocabs: sequences.Vocabularies, n_reasons: int, batch_size: int,
            effects: np.ndarray | None = None) -> list[str]:
    """Reasons for each shopper of ``batch``: the ``n_reasons`` groups that moved the propensity most, "; "-joined.

    Each reason ends with whether it raises or lowers the chance of a purchase. ``effects``:
    the :func:`occlusion_effects` of every row when already computed (scoring does it inside
    its own pass); otherwise they are computed here, ``batch_size`` rows (length-sorted) at a time.
    """
    from core.model.modeling import batch_tensors

    if n_reasons == 0 or not len(batch):
        return [""] * len(batch)

    if effects is None:
        import torch

        effects = np.zeros((len(batch), len(GROUPS)))
        order = np.argsort((batch.event_type != sequences.PAD_ID).sum(axis=1), kind="stable")
        with model.evaluating(), torch.inference_mode():
            for s in range(0, len(batch), batch_size):
                idx = np.sort(order[s:s + batch_size])
                inputs = batch_tensors(batch, idx, priors=False)
                hidden, states = model.states_for_occlusion(inputs)
                effects[idx] = occlusion_effects(model, batch, idx, inputs, hidden, states, batch_size)
    facts = group_facts(batch, group_masks(batch), vocabs)
    reasons = []
    # two groups that hide the same events (a last visit all in one category) move the propensity equally;
    # rounding off the float noise keeps them in GROUPS order whichever way the sums were added up
    strongest = np.argsort(-np.round(np.abs(effects), 6), axis=1, kind="stable")[:, :n_reasons].tolist()
    for row, groups in enumerate(strongest):
        words = []
        for g in groups:
            effect = effects[row, g]
            if abs(effect) < MIN_EFFECT:
                continue
            words.append(f"{_words(GROUPS[g], facts, row)} ({'raises' if effect > 0 else 'lowers'} the chance)")
        reasons.append("; ".join(words))
    return reasons
