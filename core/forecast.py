"""Forecasts end to end: train, evaluate against the baselines, choose, score every shopper, publish.

:func:`train` plans the cutoffs (``core.model.labels.plan_cutoffs``), builds sequences and
targets, trains the sequence model, calibrates its propensity on the validation window,
and measures the model AND every baseline on the held-out last window. For each head it
keeps the forecast with the better main metric (propensity ROC-AUC, next-type log loss,
category accuracy@1, items NDCG@10) and says so plainly in the :class:`ModelCard`. It then
scores every shopper at the data's end in chunks (the baseline's forecast fills the
columns of a head the model lost), writes the reasons, and publishes the version: weights
and JSON on disk, predictions and a ``ready`` row in the store, all or nothing. The card lives in
:mod:`core.model_card`, the chunked scoring in :mod:`core.scoring`.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import config as app_config
from core import sequences as seq
from core import store
from core.errors import NotFittedError, SchemaError
from core.model.config import EVENT_CLASSES, ModelConfig
from core.model.training import TrainProgress
from core.model_card import MODEL, RANK_K, ModelCard, _num
from core.scoring import _check_stop, _decode_ranked, _history_frame, _Progress, _score_all

# re-exported for callers that import them from here (pages/forecasts.py, bench/model.py, the tests)
from core.model_card import HEAD_METRICS, TARGET_TEXT  # noqa: F401, E402
from core.scoring import _chunk_ranker  # noqa: F401, E402


# --- helpers ---------------------------------------------------------------------------------


def _data_window(engine: Engine, dataset_id: int) -> tuple[dt.datetime, dt.datetime, int]:
    ev = store.events
    q = sa.select(sa.func.min(ev.c.event_time), sa.func.max(ev.c.event_time), sa.func.count()).where(
        ev.c.dataset_id == dataset_id)
    with engine.connect() as conn:
        first, last, n = conn.execute(q).one()
    if not n:
        raise SchemaError("The dataset has no events to learn from.", column="event_time", reason="no_data")
    return first, last, int(n)


def _load_history(engine: Engine, dataset_id: int, users: Sequence[str], exhaustive: bool, end: dt.datetime,
                  chunk_users: int) -> pd.DataFrame:
    frames = [seq.load_events(engine, dataset_id, c, None, end) for c in seq.user_chunks(list(users), chunk_users, exhaustive)]
    return _history_frame(pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=seq.EVENT_COLUMNS))


def _fit_rfm(history: pd.DataFrame, train_targets: list[pd.DataFrame]) -> dict:
    from core.model.baselines import RFMNextType, RFMPropensity

    examples = [(history[history["event_time"] < t["cutoff"].iloc[0]], t) for t in train_targets if len(t)]
    return {"propensity": RFMPropensity().fit(examples), "next_event_type": RFMNextType().fit(examples)}


def _priors(engine: Engine, dataset_id: int, vocabs: seq.Vocabularies, before: dt.datetime, cfg: ModelConfig,
            users: Sequence[str] | None):
    """The category and item transition priors counted on the events before ``before``.

    ``users``: the training sample when the dataset is sampled (None: every shopper). Counting
    the sample keeps this step's time and memory those of the sample: over every shopper it is
    a sort of all events per call (8 calls per training run), minutes and gigabytes at tens of
    millions of events.
    """
    from core.model.priors import build_prior

    args = (before, cfg.prior_top_k, cfg.prior_alpha, users, cfg.chunk_users)
    return (build_prior(engine, dataset_id, "category", vocabs.categories, *args),
            build_prior(engine, dataset_id, "item_id", vocabs.items, *args))


def _rfm_by_cutoff(rfm_propensity, history: pd.DataFrame, examples) -> np.ndarray:
    """The gradient-boosting propensity of each example, at the example's own cutoff."""
    out = np.zeros(len(examples))
    if not len(examples):
        return out
    cutoffs = examples.targets["cutoff"].to_numpy()
    users = np.asarray(examples.batch.user_ids, dtype=object)
    for cutoff in pd.unique(cutoffs):
        idx = np.flatnonzero(cutoffs == cutoff)
        out[idx] = rfm_propensity.predict_proba(history, pd.Timestamp(cutoff).to_pydatetime(), list(users[idx]))
    return out


def _fit_propensity_calibration(valid, p_valid: np.ndarray, rfm: dict, history: pd.DataFrame):
    """Stack the sequence model with gradient boosting on the validation window, then calibrate the blend.

    Returns the :class:`~core.model.evaluation.Calibrator` and a sentence for the card.
    """
    from core.model.evaluation import fit_calibrator, fit_stacker

    y = valid.labels["purchased"]
    p_rfm = _rfm_by_cutoff(rfm["propensity"], history, valid)
    stack = fit_stacker(y, p_valid, p_rfm)
    if stack is None:
        return fit_calibrator(y, p_valid), (
            "Propensity: the validation window has too few buyers to weigh the sequence model against gradient "
            "boosting, so the model's propensity is the transformer's alone, calibrated.")
    calibrator = fit_calibrator(y, p_valid)
    calibrator.stack_ = stack
    blended = calibrator.blend(p_valid, p_rfm)
    calibrator = fit_calibrator(y, blended)
    calibrator.stack_ = stack
    return calibrator, (
        "Propensity: the model's final layer stacks the transformer's score with gradient boosting on recency, "
        "frequency and monetary features (a logistic regression fitted on the validation window: weight "
        f"{stack[0]:.2f} on the transformer's logit, {stack[1]:.2f} on gradient boosting's), then calibrates the "
        "blend; the card also shows the transformer alone.")


def _choose_category_terms(model, valid, valid_pred, vocabs, cfg: ModelConfig, should_stop) -> str:
    """Keep the category head's learned terms only if they beat its transition priors alone on the validation window.

    Training fits the terms on top of the priors by log loss; the forecast is judged by
    accuracy@1, which they can lower by moving the top choice. The held-out window plays no
    part in this choice. Returns a sentence for the card.
    """
    import torch

    from core.model.evaluation import accuracy_at_k
    from core.model.training import predict_examples

    true = valid.targets["next_category"].tolist() if len(valid) else []
    with_terms = accuracy_at_k(true, _decode_ranked(vocabs.categories, valid_pred.category_ids), 1)
    with torch.no_grad():
        model.category_learned.fill_(0.0)
    priors_only = accuracy_at_k(true, _decode_ranked(
        vocabs.categories, predict_examples(model, valid.batch, cfg, should_stop).category_ids), 1)
    if with_terms is None or priors_only is None or with_terms >= priors_only:
        with torch.no_grad():
            model.category_learned.fill_(1.0)
        return ("Next category: the head's learned terms on top of its transition priors are kept (validation "
                f"accuracy@1 {_num(with_terms)} with them, {_num(priors_only)} with the priors alone).")
    # training shrank the priors' weights while the learned terms carried part of the forecast; alone, they are
    # rescaled to sum to 1 (same ranking), so the probabilities are on the priors' own scale, not flattened
    with torch.no_grad():
        total = model.prior_scale[0] + model.session_prior_scale[0]
        if float(total) > 0:
            model.prior_scale[0] /= total
            model.session_prior_scale[0] /= total
    return ("Next category: the forecast is the head's transition priors alone (after the last event's category, "
            f"weight {float(model.prior_scale[0].detach()):.2f}; after the last session's main category, weight "
            f"{float(model.session_prior_scale[0].detach()):.2f}); the learned terms on top lowered validation "
            "accuracy@1 "
            f"({_num(with_terms)} with them, {_num(priors_only)} without).")


def _rankers(history: pd.DataFrame, cutoff: dt.datetime, horizon_days: int,
             names: Sequence[str] | None = None) -> dict:
    """The rankers (those of ``names``, default all) fitted on ``history`` before ``cutoff``."""
    from core.model.baselines import MarkovChain, MostPopular, OwnMostFrequent

    h = history[history["event_time"] < cutoff]
    kinds = {"most_popular": lambda: MostPopular(window_days=horizon_days),
             "own_most_frequent": lambda: OwnMostFrequent(popular_window_days=horizon_days),
             "markov_chain": lambda: MarkovChain(popular_window_days=horizon_days)}
    return {name: make().fit(h, cutoff) for name, make in kinds.items() if names is None or name in names}


def _baselines_to_save(rfm: dict, rankers: dict, heads: dict, calibrator, k: int) -> dict:
    """The fitted baselines a version scores with, as JSON (saved with it, so re-scoring refits nothing).

    The gradient boosting is kept when a head or the stacked propensity uses it, a ranker when a
    head uses it, cut to the ``k`` it ranks (the shoppers' own state is read when they are scored).
    """
    from core.model.baselines import RFMPropensity

    used = {info["used"] for info in heads.values()}
    keep_rfm = RFMPropensity.name in used or calibrator.stack_ is not None
    return {"rfm": {head: m.to_dict() for head, m in rfm.items()} if keep_rfm else {},
            "rankers": {name: r.to_dict(k) for name, r in rankers.items() if name in used}}


def _baselines_from_saved(saved: dict) -> dict:
    from core.model.baselines import baseline_from_dict

    return {"rfm": {head: baseline_from_dict(s) for head, s in saved["rfm"].items()},
            "rankers": {name: baseline_from_dict(s) for name, s in saved["rankers"].items()}}


# --- evaluation -------------------------------------------------------------------------------


def _evaluate(test, pred, calibrator, rfm: dict, rankers: dict, history: pd.DataFrame, plan, vocabs,
              rfm_name: str) -> tuple[dict, list, list]:
    from core.model import evaluation as ev

    users = test.batch.user_ids
    targets = test.targets
    y = targets["purchased"].to_numpy()
    cutoff = plan.test_cutoff
    heads: dict = {}

    p_rfm = rfm["propensity"].predict_proba(history, cutoff, users)
    p_model = calibrator(pred.propensity, p_rfm)
    prop = {MODEL: ev.evaluate_propensity(y, p_model), rfm_name: ev.evaluate_propensity(y, p_rfm)}
    alone = ev.evaluate_propensity(y, pred.propensity) if calibrator.stack_ is not None else None
    measurable = prop[MODEL]["measurable"]
    if measurable:
        used, note = ev.pick_forecast(prop, "roc_auc", True)
    else:
        used, note = MODEL, prop[MODEL]["note"] + " The model's propensity is used; its quality could not be measured."
    heads["propensity"] = {"metrics": prop, "used": used, "note": note}
    if alone is not None and alone.get("roc_auc") is not None:
        heads["propensity"]["transformer_alone"] = {k: alone[k] for k in ("roc_auc", "pr_auc")}
        heads["propensity"]["note"] = (f"{note} The transformer alone, before stacking: ROC-AUC {alone['roc_auc']:.3f}, "
                                       f"PR-AUC {alone['pr_auc']:.3f}.")
    p_used = p_model if used == MODEL else p_rfm
    lift = ev.lift_by_decile(y, p_used).to_dict("records") if measurable else []
    calibration = ev.calibration_table(y, p_used).to_dict("records") if measurable else []

    true_type = targets["next_event_type"].tolist()
    classes = list(EVENT_CLASSES)
    types = {MODEL: ev.evaluate_next_type(true_type, pred.type_proba, classes),
             rfm_name: ev.evaluate_next_type(true_type, rfm["next_event_type"].predict_proba(history, cutoff, users), classes)}
    used, note = ev.pick_forecast(types, "log_loss", False)
    heads["next_event_type"] = {"metrics": types, "used": used, "note": note}

    true_cat = targets["next_category"].tolist()
    cats = {MODEL: ev.evaluate_ranking(true_cat, _decode_ranked(vocabs.categories, pred.category_ids))}
    for name, ranker in rankers.items():
        cats[name] = ev.evaluate_ranking(true_cat, ranker.rank_categories(users, RANK_K))
    used, note = ev.pick_forecast(cats, "accuracy@1", True)
    heads["next_category"] = {"metrics": cats, "used": used, "note": note}

    true_item = targets["next_item"].tolist()
    items = {MODEL: ev.evaluate_ranking(true_item, _decode_ranked(vocabs.items, pred.item_ids))}
    for name, ranker in rankers.items():
        items[name] = ev.evaluate_ranking(true_item, ranker.rank_items(users, RANK_K))
    used, note = ev.pick_forecast(items, "ndcg@10", True)
    heads["next_items"] = {"metrics": items, "used": used, "note": note}
    return heads, lift, calibration


# --- scoring ----------------------------------------------------------------------------------


# --- public API ---------------------------------------------------------------------------------


def train(engine: Engine, dataset: str, horizon_days: int = app_config.DEFAULT_HORIZON_DAYS,
          config: ModelConfig | None = None, progress: Callable[[TrainProgress], None] | None = None,
          should_stop: Callable[[], bool] | None = None, seed: int = 0) -> ModelCard:
    """Train, evaluate, choose, score and publish a model version for ``dataset``.

    Inputs: the store ``engine``; the dataset name; the horizon in days (1..60); a
    :class:`ModelConfig` (defaults when None; its ``seed`` is replaced by ``seed``);
    ``progress`` receives :class:`TrainProgress` reports; ``should_stop`` is polled at every
    step. Output: the :class:`ModelCard` of the new version, which is then the latest
    ``ready`` model. Errors: ``DatasetNotFoundError``; ``SchemaError`` when the data span
    is too short for the horizon (the message gives the span found and needed);
    :class:`TrainingCancelled` when ``should_stop()`` turns True (nothing is written).
    """
    from core.model import registry
    from core.model.evaluation import fit_calibrator
    from core.model.labels import plan_cutoffs
    from core.model.training import build_examples, fit_model, predict_examples, seed_everything
    from core.model.value import fit_value

    cfg = dataclasses.replace(config or ModelConfig(), seed=seed)
    report = _Progress(progress)
    started = time.perf_counter()
    ds = store.get_dataset(engine, dataset)
    did = ds["dataset_id"]
    first, last, _ = _data_window(engine, did)
    plan = plan_cutoffs(first, last, horizon_days, cfg.n_train_cutoffs)
    h = plan.horizon_days
    seed_everything(cfg.seed, cfg.torch_threads)
    notes: list[str] = list(plan.notes)

    report("sequences", 0.0, "reading shoppers and vocabularies")
    all_users = seq.list_users(engine, did)
    sample, sampled = seq.sample_users(all_users, cfg.max_train_users, cfg.seed)
    if sampled:
        notes.append(f"{len(all_users)} shoppers is above max_train_users={cfg.max_train_users}: training and "
                     f"evaluation use a seeded sample of {len(sample)} shoppers; every shopper is scored.")
    exhaustive = not sampled
    prior_users = None if exhaustive else sample
    if sampled:
        notes.append("The transition priors of the category and item heads are counted on the sampled shoppers' "
                     "events, like the Markov chain baseline.")
    vocabs = seq.build_vocabularies(engine, did, before=plan.test_cutoff, item_cap=cfg.item_vocab_cap,
                                    category_cap=cfg.category_vocab_cap, brand_cap=cfg.brand_vocab_cap,
                                    min_count=cfg.min_token_count)
    _check_stop(should_stop)
    n_cut = len(plan.train_cutoffs) + 2

    def on_chunk(offset: int):
        return lambda done, total: report("sequences", 0.15 * (offset + done / total) / n_cut, "reading sequences")

    train_ex = build_examples(engine, did, plan.train_cutoffs, sample, exhaustive, vocabs, cfg, h, should_stop, on_chunk(0))
    if plan.valid_shared:
        rng = np.random.default_rng(cfg.seed)
        is_valid = rng.random(len(train_ex)) < 0.2
        valid_ex, train_ex = train_ex.take(np.flatnonzero(is_valid)), train_ex.take(np.flatnonzero(~is_valid))
    else:
        valid_ex = build_examples(engine, did, [plan.valid_cutoff], sample, exhaustive, vocabs, cfg, h, should_stop,
                                  on_chunk(len(plan.train_cutoffs)))
    test_ex = build_examples(engine, did, [plan.test_cutoff], sample, exhaustive, vocabs, cfg, h, should_stop,
                             on_chunk(n_cut - 1))

    fit = fit_model(train_ex, valid_ex, vocabs, cfg, progress, should_stop, fraction_range=(0.15, 0.7),
                    priors=_priors(engine, did, vocabs, min(plan.train_cutoffs), cfg, prior_users))
    report("evaluating", 0.72, "calibrating on the validation window and measuring on the held-out window")
    end_cutoff = last + dt.timedelta(seconds=1)
    history = _load_history(engine, did, sample, exhaustive, end_cutoff, cfg.chunk_users)
    train_targets = [g for _, g in train_ex.targets.groupby("cutoff", sort=True)]
    rfm = _fit_rfm(history, train_targets)
    _check_stop(should_stop)
    valid_cutoffs = sorted(set(valid_ex.targets["cutoff"])) if len(valid_ex) else [plan.valid_cutoff]
    fit.model.set_priors(*_priors(engine, did, vocabs, min(valid_cutoffs), cfg, prior_users))
    valid_pred = predict_examples(fit.model, valid_ex.batch, cfg, should_stop)
    calibrator, stack_note = _fit_propensity_calibration(valid_ex, valid_pred.propensity, rfm, history)
    notes.append(stack_note)
    notes.append(_choose_category_terms(fit.model, valid_ex, valid_pred, vocabs, cfg, should_stop))
    fit.model.set_priors(*_priors(engine, did, vocabs, plan.test_cutoff, cfg, prior_users))
    test_pred = predict_examples(fit.model, test_ex.batch, cfg, should_stop)

    from core.model.baselines import RFMPropensity

    rfm_name = RFMPropensity.name
    heads, lift, calibration = _evaluate(test_ex, test_pred, calibrator, rfm,
                                         _rankers(history, plan.test_cutoff, h), history, plan, vocabs, rfm_name)
    value = fit_value(history, train_targets, valid_ex, valid_pred, test_ex, test_pred, calibrator=calibrator,
                      rfm_propensity=rfm["propensity"], propensity_used=heads["propensity"]["used"], horizon_days=h,
                      seed=cfg.seed)
    _check_stop(should_stop)
    for head, info in heads.items():
        if info["used"] != MODEL:
            notes.append(f"{head}: the model lost to {info['used']} on the held-out window, so the forecasts "
                         f"written for this head are {info['used']}'s.")

    model, n_examples = fit.model, fit.n_train_examples
    if cfg.refit_on_latest:
        report("training", 0.75, "refitting on every window, the latest included")
        refit_cutoffs = [*plan.train_cutoffs, plan.valid_cutoff, plan.test_cutoff]
        vocabs = seq.build_vocabularies(engine, did, before=None, item_cap=cfg.item_vocab_cap,
                                        category_cap=cfg.category_vocab_cap, brand_cap=cfg.brand_vocab_cap,
                                        min_count=cfg.min_token_count)
        all_ex = build_examples(engine, did, sorted(set(refit_cutoffs)), sample, exhaustive, vocabs, cfg, h, should_stop)
        empty = all_ex.take(np.array([], dtype=np.int64))
        refit = fit_model(all_ex, empty, vocabs, cfg, None, should_stop, epochs=max(fit.best_epoch, 1),
                          priors=_priors(engine, did, vocabs, min(refit_cutoffs), cfg, prior_users))
        model, n_examples = refit.model, refit.n_train_examples
        model.category_learned.copy_(fit.model.category_learned)  # the choice made on the validation window
        notes.append(f"The forecasts come from a refit on all windows, the latest included ({max(fit.best_epoch, 1)} "
                     "epochs, the best number found with validation); the metrics above are those of the evaluated "
                     "model, and the calibration fitted on the validation window is reused.")
    else:
        notes.append("The forecasts come from the evaluated model (not refit on the latest window); scoring reads "
                     "every event up to the data's end.")
    rankers_end = _rankers(history, end_cutoff, h, names=[info["used"] for info in heads.values()])
    # scored with what is saved, so that re-scoring the version writes what training wrote
    saved_baselines = _baselines_to_save(rfm, rankers_end, heads, calibrator, cfg.top_k_items)
    baselines = _baselines_from_saved(saved_baselines)
    if saved_baselines["rankers"] and sampled:
        notes.append(f"The baselines used for scoring are fitted once on the {len(sample)} sampled shoppers' history "
                     "(popular fill, Markov transitions); each scored shopper's own history supplies their own lists.")

    version = registry.new_version(did)
    folder = registry.version_dir(did, version)
    card = ModelCard(
        model_version=version, dataset=dataset, dataset_id=did,
        created_at=dt.datetime.now(dt.UTC).replace(tzinfo=None), horizon_days=h, data_window=(first, last),
        plan=plan.to_dict(), n_users=0, n_users_trained=len(sample), sampled=sampled, n_train_examples=n_examples,
        training_seconds=0.0, heads=heads, lift=lift, calibration=calibration, loss_curve=fit.loss_curve,
        refit_on_latest=cfg.refit_on_latest, notes=notes, config=model.config.to_dict(),  # vocabulary sizes set
        value=value.card,
    )
    model.set_priors(*_priors(engine, did, vocabs, end_cutoff, cfg, prior_users))  # transitions up to the end
    loaded = {"model": model, "config": cfg, "vocabs": vocabs, "calibrator": calibrator, "value": value}
    try:
        with engine.begin() as conn:
            card.n_users = _score_all(engine, conn, loaded, heads, baselines, did, version, end_cutoff, report,
                                      should_stop, (0.8, 0.97))
            card.training_seconds = round(time.perf_counter() - started, 2)
            report("saving", 0.98, "writing the model version")
            registry.save_model(folder, model, cfg, vocabs, calibrator, card.to_dict(), saved_baselines,
                                value.to_dict())
            registry.insert_model_row(conn, version, did, h, folder, model.config, card.to_dict())
    except BaseException:
        registry.remove_folder(folder)
        raise
    store.analyze(engine, store.predictions, store.models)
    report("done", 1.0, f"model {version} is ready")
    return card


def _resolve_version(engine: Engine, dataset_id: int, dataset: str, model_version: str | None) -> dict:
    from core.model import registry

    rows = registry.model_rows(engine, dataset_id)
    if not rows:
        raise NotFittedError(f"Dataset {dataset!r} has no trained model yet: train one first.")
    if model_version is None:
        return rows[0]
    for row in rows:
        if row["model_version"] == model_version:
            return row
    raise NotFittedError(f"Dataset {dataset!r} has no ready model version {model_version!r}; versions: "
                         f"{[r['model_version'] for r in rows]}.")


def score(engine: Engine, dataset: str, model_version: str | None = None,
          should_stop: Callable[[], bool] | None = None,
          progress: Callable[[TrainProgress], None] | None = None) -> int:
    """(Re)write the predictions of a model version (the latest when None) for every shopper, in chunks.

    Shoppers are scored at the data's current end with the saved vocabularies, calibration,
    transition priors and baselines: nothing is refitted. A version saved before its
    baselines were kept refits those it uses once, the same way as in training.
    ``progress`` receives a :class:`TrainProgress` per chunk of shoppers written (stage
    ``scoring``); ``should_stop`` is polled between chunks (:class:`TrainingCancelled`:
    the previous predictions stay). Returns the number of shoppers scored.
    Errors: ``DatasetNotFoundError``; :class:`NotFittedError` when there is no such ready version.
    """
    from core.model import registry
    from core.model.training import seed_everything

    did = store.get_dataset(engine, dataset)["dataset_id"]
    row = _resolve_version(engine, did, dataset, model_version)
    lm = registry.load_model(row["path"])
    card = ModelCard.from_dict(lm.card)
    cfg = lm.config
    seed_everything(cfg.seed, cfg.torch_threads)
    _, last, _ = _data_window(engine, did)
    end_cutoff = last + dt.timedelta(seconds=1)
    saved = lm.baselines
    report = _Progress(progress)
    if saved is None or not lm.priors_saved:
        report("scoring", 0.0, f"version {row['model_version']} predates its saved baselines: fitting them again")
        sample, sampled = seq.sample_users(seq.list_users(engine, did), cfg.max_train_users, cfg.seed)
        if saved is None:
            saved = _refit_baselines(engine, did, card, lm.calibrator, cfg, sample, sampled, end_cutoff)
        if not lm.priors_saved:
            lm.model.set_priors(*_priors(engine, did, lm.vocabs, end_cutoff, cfg, sample if sampled else None))
    from core.model.value import ValueForecast

    loaded = {"model": lm.model, "config": cfg, "vocabs": lm.vocabs, "calibrator": lm.calibrator,
              "value": None if lm.value is None else ValueForecast.from_dict(lm.value)}
    with engine.begin() as conn:
        registry.delete_predictions(conn, did, row["model_version"])
        n = _score_all(engine, conn, loaded, card.heads, _baselines_from_saved(saved), did, row["model_version"],
                       end_cutoff, report, should_stop, (0.0, 1.0))
    store.analyze(engine, store.predictions)
    return n


def _refit_baselines(engine: Engine, dataset_id: int, card: ModelCard, calibrator, cfg: ModelConfig,
                     sample: Sequence[str], sampled: bool, end_cutoff: dt.datetime) -> dict:
    """The saved form of the baselines a version uses, fitted again as training fitted them."""
    from core.model.labels import CutoffPlan

    used = {info["used"] for info in card.heads.values()}
    if used == {MODEL} and calibrator.stack_ is None:
        return {"rfm": {}, "rankers": {}}
    plan = CutoffPlan.from_dict(card.plan)
    history = _load_history(engine, dataset_id, sample, not sampled, end_cutoff, cfg.chunk_users)
    rfm = _fit_rfm(history, _train_targets(engine, dataset_id, plan, sample, not sampled, history, cfg))
    rankers = _rankers(history, end_cutoff, card.horizon_days, names=used)
    return _baselines_to_save(rfm, rankers, card.heads, calibrator, cfg.top_k_items)


def _train_targets(engine: Engine, dataset_id: int, plan, users: Sequence[str], exhaustive: bool,
                   history: pd.DataFrame, cfg: ModelConfig) -> list[pd.DataFrame]:
    from core.model.labels import make_targets

    out = []
    firsts = history.groupby("user_id")["event_time"].min()
    for cutoff in plan.train_cutoffs:
        before = [u for u in users if u in firsts.index and firsts[u] < pd.Timestamp(cutoff)]
        window = history[(history["event_time"] >= cutoff) & (history["event_time"] < cutoff + plan.horizon)]
        out.append(make_targets(window, before, cutoff, plan.horizon_days))
    return out


def list_models(engine: Engine, dataset: str) -> list[ModelCard]:
    """Cards of every ready model version of ``dataset``, newest first (``DatasetNotFoundError`` if no such dataset)."""
    from core.model import registry

    did = store.get_dataset(engine, dataset)["dataset_id"]
    return [ModelCard.from_dict(json.loads(r["metrics_json"])) for r in registry.model_rows(engine, did)]


def latest_model(engine: Engine, dataset: str) -> ModelCard | None:
    """Card of the newest ready model version of ``dataset``, or None when none was trained."""
    cards = list_models(engine, dataset)
    return cards[0] if cards else None


def load_predictions(engine: Engine, dataset: str, model_version: str | None = None,
                     limit: int | None = None) -> pd.DataFrame:
    """Predictions of a version (the latest when None), highest propensity first.

    Columns: user_id, purchase_propensity, next_event_type, p_view, p_cart, p_purchase,
    p_remove, p_none, next_category, next_category_p, top_items (space-separated),
    reasons ("; "-separated), expected_revenue (within the horizon; empty without prices or for
    a version trained before it), p_inactive (chance of no activity within the horizon), model_version. An empty frame with those columns when the
    dataset has no ready model. Errors: ``DatasetNotFoundError``; :class:`NotFittedError`
    for an unknown ``model_version``.
    """
    from core.model import registry

    did = store.get_dataset(engine, dataset)["dataset_id"]
    cols = [c for c in registry.PREDICTION_COLUMNS if c not in ("dataset_id", "model_version")] + ["model_version"]
    if model_version is None and not registry.model_rows(engine, did):
        return pd.DataFrame(columns=cols)
    row = _resolve_version(engine, did, dataset, model_version)
    return registry.read_predictions(engine, did, row["model_version"], limit).loc[:, cols]
