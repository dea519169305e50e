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
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from core.errors import TrainingCancelled
from core.model import sequences
from core.model.config import ModelConfig
from core.model.priors import own_category_logp

#: The weights tried, smallest first (0: the forecast without the shopper's own mix).
OWN_CATEGORY_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)


def own_weight_hits(model, batch: sequences.SequenceBatch, true_ids: np.ndarray, config: ModelConfig,
                    weights: Sequence[float] = OWN_CATEGORY_WEIGHTS,
                    should_stop: Callable[[], bool] | None = None) -> np.ndarray:
    """How many rows of ``batch`` each weight of ``weights`` ranks first correctly (``true_ids``: the vocabulary id
    of each row's next category, negative where it has none). One pass of the model over the rows."""
    import torch

    from core.model.modeling import batch_tensors

    hits = np.zeros(len(weights), dtype=np.int64)
    saved = float(model.own_category_weight)
    size = config.batch_size * 4
    try:
        model.own_category_weight.fill_(0.0)
        with torch.inference_mode(), model.evaluating():
            for start in range(0, len(batch), size):
                if should_stop is not None and should_stop():
                    raise TrainingCancelled("Training was cancelled; no model version was written.")
                idx = np.arange(start, min(start + size, len(batch)))
                inputs = batch_tensors(batch, idx)
                learned = float(model.category_learned) != 0.0
                logits = model(inputs).category_logits if learned else model.category_prior_logits(inputs)
                own = own_category_logp(inputs, model.n_categories)
                logits[:, [sequences.PAD_ID, sequences.OTHER_ID]] = float("-inf")
                truth = torch.from_numpy(true_ids[idx])
                for j, w in enumerate(weights):
                    hits[j] += int(((logits + w * own).argmax(dim=1) == truth).sum())
    finally:
        model.own_category_weight.fill_(saved)
    return hits


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
