"""How much the next-category forecast leans on the shopper's own category mix, chosen on the validation window.

The category head ranks by transitions (after the last event's category and the last
session's main one) plus terms learned on the shopper's representation. Where shoppers keep
returning to their own favourite categories rather than following the last click, the
simplest forecast (their own most frequent category) can tie or beat that. The model's
category logits therefore add ``own_category_weight`` times the log of the shopper's own
category counts (:func:`core.model.priors.own_category_logp`): 0 while training, then the weight
of :data:`OWN_CATEGORY_WEIGHTS` with the best accuracy@1 on the validation window (the smallest
on a tie, so the weight stays 0 where the mix does not help). The held-out window plays no
part in the choice; the weight is saved with the model's weights, so scoring applies it too.

That log-linear weight is one number for every shopper and counts all their events alike.
:func:`choose_category_mix` then tries a mix in probability space instead (:func:`mixed`):
the model's distribution, the shopper's own shares with recent sessions weighing more (a
half-life in sessions), trusted in proportion to how many events they have (``n / (n + k)``:
a shopper with a few events leans on the model), and the last session's shares (people
continue what they were looking at). Half-life, ``k`` and the two weights are the candidate
with the best validation log-likelihood, a smooth criterion that a few thousand shoppers
measure more steadily than accuracy@1; the mix replaces the log-linear weight where its
validation log-likelihood is higher (the plain model is one of the candidates, so a mix that
does not help is left out).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from core.errors import TrainingCancelled
from core.model import sequences
from core.model.config import ModelConfig
from core.model.priors import own_category_logp, own_category_share

#: The weights tried, smallest first (0: the forecast without the shopper's own mix).
OWN_CATEGORY_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
#: The probability mix's candidates: half-lives of the own shares in sessions (inf: all events alike), events at
#: which the own shares get half their weight (0: full weight from the first event), and a grid of the own and
#: last-session weights (the model keeps the rest), tried in this order, the plain model first.
MIX_HALF_LIVES = (float("inf"), 10.0, 3.0, 1.0)
MIX_HALF_TRUST_EVENTS = (0.0, 2.0, 5.0)
MIX_WEIGHTS = tuple((a / 10, b / 10) for a in range(11) for b in range(11 - a))


def own_weight_hits(model, batch: sequences.SequenceBatch, true_ids: np.ndarray, config: ModelConfig,
                    weights: Sequence[float] = OWN_CATEGORY_WEIGHTS,
                    should_stop: Callable[[], bool] | None = None) -> np.ndarray:
    """How many rows of ``batch`` each weight of ``weights`` ranks first correctly (``true_ids``: the vocabulary id
    of each row's next category, negative where it has none). One pass of the model over the rows."""
    import torch

    hits = np.zeros(len(weights), dtype=np.int64)
    for idx, inputs, logits in _plain_category_logits(model, batch, np.arange(len(batch)), config, should_stop):
        own = own_category_logp(inputs, model.n_categories)
        truth = torch.from_numpy(true_ids[idx])
        for j, w in enumerate(weights):
            hits[j] += int(((logits + w * own).argmax(dim=1) == truth).sum())
    return hits


def _plain_category_logits(model, batch, rows: np.ndarray, config: ModelConfig, should_stop, start: int | None = None):
    """``(row indices, inputs, logits)`` per chunk of ``rows``: the model's next-category logits without any own
    mix (its log-linear weight set to 0 while they are read, then restored), padding and "other" never forecast.
    ``start``: as :func:`core.model.batches.batch_tensors` (0 gives every chunk one width)."""
    import torch

    from core.model.batches import batch_tensors

    size, saved = config.batch_size * 4, float(model.own_category_weight)
    try:
        model.own_category_weight.fill_(0.0)
        with torch.inference_mode(), model.evaluating():
            for first in range(0, len(rows), size):
                if should_stop is not None and should_stop():
                    raise TrainingCancelled("Training was cancelled; no model version was written.")
                idx = rows[first:first + size]
                inputs = batch_tensors(batch, idx, start=start)
                learned = float(model.category_learned) != 0.0
                logits = model(inputs).category_logits if learned else model.category_prior_logits(inputs)
                logits[:, [sequences.PAD_ID, sequences.OTHER_ID]] = float("-inf")
                yield idx, inputs, logits
    finally:
        model.own_category_weight.fill_(saved)


def choose_own_category_weight(model, valid, vocabs: sequences.Vocabularies, config: ModelConfig,
                               should_stop: Callable[[], bool] | None = None) -> str:
    """Set ``model.own_category_weight`` to the weight with the best validation accuracy@1 (``valid``: the
    validation :class:`~core.model.training.ExampleSet`); returns a sentence for the card."""
    import torch

    targets = valid.targets["next_category"] if len(valid) else []
    has = np.array([t is not None and t == t for t in targets], dtype=bool)
    if not has.any():
        return "Next category: no validation shopper had a next category, so the shopper's own mix is not weighed in."
    true_ids = np.where(has, vocabs.categories.encode(list(targets)), -1).astype(np.int64)
    hits = own_weight_hits(model, valid.batch, true_ids, config, should_stop=should_stop)
    best = int(np.argmax(hits))  # the first of the best: the smallest weight
    weight = OWN_CATEGORY_WEIGHTS[best]
    with torch.no_grad():
        model.own_category_weight.fill_(weight)
    n = int(has.sum())
    if weight == 0.0:
        return (f"Next category: adding the shopper's own category mix did not raise validation accuracy@1 "
                f"({hits[0] / n:.3f} without it), so it is left out.")
    return (f"Next category: the forecast adds the shopper's own category mix with weight {weight:g} (validation "
            f"accuracy@1 {hits[best] / n:.3f} with it, {hits[0] / n:.3f} without).")


def mixed(p, inputs: dict, n_categories: int, own: float, last: float, half_life: float, k: float):
    """[n, n_categories] ``(1 - own - last) * p + own * trust * shares + last * last-session shares``, renormalised
    per row; ``shares`` are the shopper's own with ``half_life`` sessions (:func:`own_category_share`) and
    ``trust`` is ``n / (n + k)`` for a shopper with ``n`` known events."""
    shares, n = own_category_share(inputs, n_categories, half_life)
    recent, _ = own_category_share(inputs, n_categories, 0.0)
    trust = (n / (n + k).clamp(min=1e-12)).unsqueeze(1)
    out = (1.0 - own - last) * p + own * trust * shares + last * recent
    return out / out.sum(dim=1, keepdim=True).clamp(min=1e-12)


def _validation_parts(model, batch, true_ids: np.ndarray, config: ModelConfig, should_stop):
    """The model's category probabilities without any own mix and its inputs, for the rows with a next category,
    and how many rows the forecast as it stands (the chosen log-linear weight) ranks first correctly, and its mean
    log-likelihood of their next categories."""
    import torch

    rows = np.flatnonzero(true_ids > sequences.OTHER_ID)  # a category outside the vocabulary is never forecast
    probs, inputs_kept, hits, log_lik = [], [], 0, 0.0
    weight = float(model.own_category_weight)
    # one width for every chunk (start=0): they are joined below
    for idx, inputs, logits in _plain_category_logits(model, batch, rows, config, should_stop, start=0):
        now = logits + weight * own_category_logp(inputs, model.n_categories)
        truth = torch.from_numpy(true_ids[idx])
        hits += int((now.argmax(dim=1) == truth).sum())
        log_lik += float(torch.log_softmax(now, dim=1).gather(1, truth.unsqueeze(1)).sum())
        probs.append(torch.softmax(logits, dim=1))
        inputs_kept.append({k: inputs[k] for k in ("category", "attention_mask", "sessions_back")})
    joined = {k: torch.cat([part[k] for part in inputs_kept]) for k in inputs_kept[0]}
    return torch.cat(probs), joined, torch.from_numpy(true_ids[rows]), hits, log_lik / max(len(rows), 1)


def _best_mix(p, inputs: dict, truth, n_categories: int) -> tuple[tuple, float]:
    """The candidate (own, last, half-life, k) with the highest mean log-likelihood of the next categories, and it."""
    import torch

    at = lambda m: m.gather(1, truth.unsqueeze(1)).squeeze(1)  # noqa: E731  each row's probability of its truth
    p_true = at(p)
    recent, _ = own_category_share(inputs, n_categories, 0.0)
    recent_true, has_recent = at(recent), (recent.sum(dim=1) > 0).to(torch.float32)
    best, best_ll = (0.0, 0.0, float("inf"), 0.0), float(torch.log(p_true.clamp(min=1e-12)).mean())
    for half_life in MIX_HALF_LIVES:
        shares, n = own_category_share(inputs, n_categories, half_life)
        share_true, has = at(shares), (shares.sum(dim=1) > 0).to(torch.float32)
        for k in MIX_HALF_TRUST_EVENTS:
            trust = n / (n + k).clamp(min=1e-12)
            for own, last in MIX_WEIGHTS:
                num = (1 - own - last) * p_true + own * trust * share_true + last * recent_true
                den = (1 - own - last) + own * trust * has + last * has_recent
                ll = float(torch.log((num / den.clamp(min=1e-12)).clamp(min=1e-12)).mean())
                if ll > best_ll + 1e-9:
                    best, best_ll = (own, last, half_life, k), ll
    return best, best_ll


def choose_category_mix(model, valid, vocabs: sequences.Vocabularies, config: ModelConfig,
                        should_stop: Callable[[], bool] | None = None) -> str:
    """Set ``model.category_mix`` to the probability mix with the best validation log-likelihood when it beats the
    forecast as it stands (the log-linear own weight, which is then set to 0); returns a sentence for the card.
    ``valid``: the validation :class:`~core.model.training.ExampleSet`."""
    import torch

    targets = valid.targets["next_category"] if len(valid) else []
    has = np.array([t is not None and t == t for t in targets], dtype=bool)
    true_ids = np.where(has, vocabs.categories.encode([t if h else "" for t, h in zip(targets, has)]), -1) \
        if has.any() else np.zeros(0)
    if not (true_ids > sequences.OTHER_ID).any():
        return "Next category: no validation shopper had a next category the model forecasts; no own mix is tried."
    p, inputs, truth, hits_now, ll_now = _validation_parts(model, valid.batch, true_ids.astype(np.int64), config,
                                                           should_stop)
    (own, last, half_life, k), ll_mix = _best_mix(p, inputs, truth, model.n_categories)
    if not (own or last) or ll_mix <= ll_now:
        return (f"Next category: no mix with the shopper's own shares raised the validation log-likelihood "
                f"({ll_now:.3f} as it stands); not used.")
    n = len(truth)
    with torch.no_grad():
        hits_mix = int((mixed(p, inputs, model.n_categories, own, last, half_life, k).argmax(dim=1) == truth).sum())
        model.category_mix.copy_(torch.tensor([own, last, half_life, k]))
        model.own_category_weight.fill_(0.0)
    decay = "every event alike" if half_life == float("inf") else f"a half-life of {half_life:g} sessions"
    trust = "from the first event" if k == 0 else f"half of it at {k:g} events"
    return (f"Next category: the forecast mixes the model ({1 - own - last:.0%}) with the shopper's own category "
            f"shares ({own:.0%}: {decay}, {trust}) and their last session's ({last:.0%}); validation accuracy@1 "
            f"{hits_mix / n:.3f} with the mix, {hits_now / n:.3f} without (log-likelihood {ll_mix:.3f}, "
            f"{ll_now:.3f}).")
