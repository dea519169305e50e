"""The held-out measurement of a trained version: the model and every baseline, head by head, on the last window.

:func:`_evaluate` measures each head's forecasts (the model's and every baseline's) on the
held-out examples and picks the one each head uses (:func:`core.model.evaluation.pick_forecast`);
the propensity's lift by decile and calibration table come with it. :mod:`core.model.forecast`
calls it once per training run.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from core.model import evaluation as ev
from core.model.card import MODEL, RANK_K
from core.model.config import EVENT_CLASSES
from core.model.scoring import _decode_ranked


@dataclasses.dataclass
class HeadResult:
    """One head's held-out measurement: each forecast's metrics (the model's and every baseline's), the forecast
    used for scoring and the sentence that says why; ``transformer_alone`` when the propensity is stacked."""

    metrics: dict[str, dict]
    used: str
    note: str
    transformer_alone: dict | None = None

    def to_dict(self) -> dict:
        """The card's form of the head (``ModelCard.heads`` values)."""
        out = {"metrics": self.metrics, "used": self.used, "note": self.note}
        if self.transformer_alone is not None:
            out["transformer_alone"] = self.transformer_alone
        return out


@dataclasses.dataclass
class Evaluation:
    """The held-out window's results: every head's, and the propensity's lift by decile and calibration table."""

    heads: dict[str, HeadResult]
    lift: list
    calibration: list

    def card_heads(self) -> dict:
        """``ModelCard.heads``: each head as its dict."""
        return {head: result.to_dict() for head, result in self.heads.items()}


def _evaluate(test, pred, calibrator, rfm: dict, rankers: dict, history: pd.DataFrame, plan, vocabs,
              rfm_name: str) -> Evaluation:
    """The model and every baseline measured on the held-out examples ``test``, head by head."""
    users, cutoff = test.batch.user_ids, plan.test_cutoff
    p_rfm = rfm["propensity"].predict_proba(history, cutoff, users)
    y = test.targets["purchased"].to_numpy()
    propensity, p_used = _evaluate_propensity(y, pred.propensity, calibrator, p_rfm, rfm_name)
    measurable = propensity.metrics[MODEL]["measurable"]
    true_type = test.targets["next_event_type"].tolist()
    types = {MODEL: ev.evaluate_next_type(true_type, pred.type_proba, list(EVENT_CLASSES)),
             rfm_name: ev.evaluate_next_type(true_type, rfm["next_event_type"].predict_proba(history, cutoff, users),
                                             list(EVENT_CLASSES))}
    heads = {"propensity": propensity, "next_event_type": HeadResult(types, *ev.pick_forecast(types, "log_loss", False))}
    for head, target, vocab, ranked, rank, key in (
            ("next_category", "next_category", vocabs.categories, pred.category_ids, "rank_categories", "accuracy@1"),
            ("next_items", "next_item", vocabs.items, pred.item_ids, "rank_items", "ndcg@10")):
        true = test.targets[target].tolist()
        metrics = {MODEL: ev.evaluate_ranking(true, _decode_ranked(vocab, ranked))}
        for name, ranker in rankers.items():
            metrics[name] = ev.evaluate_ranking(true, getattr(ranker, rank)(users, RANK_K))
        heads[head] = HeadResult(metrics, *ev.pick_forecast(metrics, key, True))
    return Evaluation(heads, ev.lift_by_decile(y, p_used).to_dict("records") if measurable else [],
                      ev.calibration_table(y, p_used).to_dict("records") if measurable else [])


def _evaluate_propensity(purchased: np.ndarray, p_transformer: np.ndarray, calibrator, p_rfm: np.ndarray,
                         rfm_name: str) -> tuple[HeadResult, np.ndarray]:
    """The propensity head's result and the propensities of the forecast it uses."""
    y = np.asarray(purchased)
    p_model = calibrator(p_transformer, p_rfm)
    metrics = {MODEL: ev.evaluate_propensity(y, p_model), rfm_name: ev.evaluate_propensity(y, p_rfm)}
    if metrics[MODEL]["measurable"]:
        used, note = ev.pick_forecast(metrics, "roc_auc", True)
    else:
        used, note = MODEL, metrics[MODEL]["note"] + " The model's propensity is used; its quality could not be measured."
    result = HeadResult(metrics, used, note)
    alone = ev.evaluate_propensity(y, p_transformer) if calibrator.stack_ is not None else None
    if alone is not None and alone.get("roc_auc") is not None:
        result.transformer_alone = {k: alone[k] for k in ("roc_auc", "pr_auc")}
        result.note = (f"{note} The transformer alone, before stacking: ROC-AUC {alone['roc_auc']:.3f}, "
                       f"PR-AUC {alone['pr_auc']:.3f}.")
    return result, (p_model if used == MODEL else ev.break_ties(p_rfm, p_model))
