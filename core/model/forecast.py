"""Forecasts end to end: train, evaluate against the baselines, choose, score every shopper, publish.

:func:`train` plans the cutoffs (``core.model.labels.plan_cutoffs``), builds sequences and
targets, trains the sequence model, calibrates its propensity on the validation window,
and measures the model AND every baseline on the held-out last window. For each head it
keeps the forecast with the better main metric (propensity ROC-AUC, next-type log loss,
category accuracy@1, items NDCG@10) and says so plainly in the :class:`ModelCard`. It then
scores every shopper at the data's end in chunks (the baseline's forecast fills the
columns of a head the model lost), writes the reasons, and publishes the version: weights
and JSON on disk, predictions and a ``ready`` row in the store, all or nothing. The card lives in
:mod:`core.model.card`, the chunked scoring in :mod:`core.model.scoring`.
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
from core.model import sequences
from core import store
from core.errors import NotFittedError, SchemaError
from core.model import evaluation as ev
from core.model import executor_scoring, registry, scorings
from core.model.versions import baselines_from_saved as _baselines_from_saved
from core.model.versions import data_window as _data_window
from core.model.versions import resolve_version as _resolve_version
from core.store import executors
from core.model.beside import SideWork, after, import_model_library
from core.model.held_out import _evaluate
from core.model.baselines import MarkovChain, MostPopular, OwnMostFrequent, RFMNextType, RFMPropensity
from core.model.config import ModelConfig, PipelineSettings
from core.model.labels import CutoffPlan, make_targets, plan_cutoffs
from core.model.priors import build_prior
from core.model.rfm_baseline import PROPENSITY_BASELINE
from core.model.value import ValueForecast, fit_value
from core.model.training import (ExampleSet, TrainProgress, build_examples, fit_model, predict_examples,
                                 predict_prior_categories, seed_everything)
from core.model.card import MODEL, ModelCard, _num
from core.model.category_mix import choose_category_mix, choose_own_category_weight
from core.model.scoring import _check_stop, _decode_ranked, _history_frame, _Progress, _score_all

# re-exported for callers that import them from here (pages/forecasts.py, bench/model.py, the tests)


# --- helpers ---------------------------------------------------------------------------------


def _load_history(engine: Engine, dataset_id: int, users: Sequence[str], exhaustive: bool, end: dt.datetime,
                  chunk_users: int) -> pd.DataFrame:
    frames = [sequences.load_events(engine, dataset_id, c, None, end) for c in sequences.user_chunks(list(users), chunk_users, exhaustive)]
    return _history_frame(pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=sequences.EVENT_COLUMNS))


def _fit_rfm(history: pd.DataFrame, train_targets: list[pd.DataFrame]) -> dict:
    examples = [(history[history["event_time"] < t["cutoff"].iloc[0]], t) for t in train_targets if len(t)]
    return {"propensity": RFMPropensity(PROPENSITY_BASELINE).fit(examples), "next_event_type": RFMNextType().fit(examples)}


def _priors(engine: Engine, dataset_id: int, vocabs: sequences.Vocabularies, before: dt.datetime, cfg: ModelConfig,
            users: Sequence[str] | None, chunk_users: int):
    """The category and item transition priors counted on the events before ``before``.

    ``users``: the training sample when the dataset is sampled (None: every shopper). Counting
    the sample keeps this step's time and memory those of the sample: over every shopper it is
    a sort of all events per call (8 calls per training run), minutes and gigabytes at tens of
    millions of events.
    """
    args = (before, cfg.prior_top_k, cfg.prior_alpha, users, chunk_users)
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
    y = valid.labels["purchased"]
    p_rfm = _rfm_by_cutoff(rfm["propensity"], history, valid)
    stack = ev.fit_stacker(y, p_valid, p_rfm)
    if stack is None:
        return ev.fit_calibrator(y, p_valid), (
            "Propensity: the validation window has too few buyers to weigh the sequence model against gradient "
            "boosting, so the model's propensity is the transformer's alone, calibrated.")
    blended = ev.Calibrator(stack=stack).blend(p_valid, p_rfm)
    calibrator = ev.fit_calibrator(y, blended)
    calibrator.stack_ = stack
    return calibrator, (
        "Propensity: the model's final layer stacks the transformer's score with gradient boosting on recency, "
        "frequency and monetary features (a logistic regression fitted on the validation window: weight "
        f"{stack[0]:.2f} on the transformer's logit, {stack[1]:.2f} on gradient boosting's), then calibrates the "
        f"blend ({calibrator.kind} calibration, strictly increasing, so every shopper keeps their own rank); the "
        "card also shows the transformer alone.")


def _choose_category_terms(model, valid, valid_pred, vocabs, cfg: ModelConfig, should_stop) -> str:
    """Keep the category head's learned terms only if they beat its transition priors alone on the validation window.

    Training fits the terms on top of the priors by log loss; the forecast is judged by
    accuracy@1, which they can lower by moving the top choice. The held-out window plays no
    part in this choice. The priors alone need no transformer pass (``predict_prior_categories``).
    Returns a sentence for the card.
    """
    import torch

    true = valid.targets["next_category"].tolist() if len(valid) else []
    with_terms = ev.accuracy_at_k(true, _decode_ranked(vocabs.categories, valid_pred.category_ids), 1)
    priors_only = ev.accuracy_at_k(true, _decode_ranked(
        vocabs.categories, predict_prior_categories(model, valid.batch, cfg, should_stop)), 1)
    if with_terms is None or priors_only is None or with_terms >= priors_only:
        return ("Next category: the head's learned terms on top of its transition priors are kept (validation "
                f"accuracy@1 {_num(with_terms)} with them, {_num(priors_only)} with the priors alone).")
    # training shrank the priors' weights while the learned terms carried part of the forecast; alone, they are
    # rescaled to sum to 1 (same ranking), so the probabilities are on the priors' own scale, not flattened
    with torch.no_grad():
        model.category_learned.fill_(0.0)
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
    used = {info["used"] for info in heads.values()}
    keep_rfm = RFMPropensity.name in used or calibrator.stack_ is not None
    return {"rfm": {head: m.to_dict() for head, m in rfm.items()} if keep_rfm else {},
            "rankers": {name: r.to_dict(k) for name, r in rankers.items() if name in used}}


# --- training, stage by stage -----------------------------------------------------------------


@dataclasses.dataclass
class _Run:
    """What every stage of one :func:`train` call reads: the store, the plan, the shoppers, and the notes for the card."""

    engine: Engine
    dataset: str
    dataset_id: int
    cfg: ModelConfig
    settings: PipelineSettings
    plan: CutoffPlan
    first: dt.datetime
    last: dt.datetime
    sample: list
    sampled: bool
    report: _Progress
    should_stop: Callable[[], bool] | None
    notes: list[str]
    started: float
    side: SideWork = dataclasses.field(default_factory=SideWork)  # work started beside the fit

    @property
    def exhaustive(self) -> bool:
        return not self.sampled

    @property
    def end_cutoff(self) -> dt.datetime:
        return self.last + dt.timedelta(seconds=1)

    def priors(self, vocabs: sequences.Vocabularies, before: dt.datetime, ahead: bool = False):
        """The transition priors before ``before``, counted on the sample when the dataset is sampled (``ahead``:
        only started on the side thread, :class:`~core.model.beside.SideWork`)."""
        args = (self.engine, self.dataset_id, vocabs, before, self.cfg, self.sample if self.sampled else None,
                self.settings.chunk_users)
        return (self.side.ahead if ahead else self.side.result)(("priors", id(vocabs), before), _priors, *args)

    def vocabularies(self, before: dt.datetime | None) -> sequences.Vocabularies:
        cfg = self.cfg
        return sequences.build_vocabularies(self.engine, self.dataset_id, before=before, item_cap=cfg.item_vocab_cap,
                                      category_cap=cfg.category_vocab_cap, brand_cap=cfg.brand_vocab_cap,
                                      min_count=cfg.min_token_count)

    def examples(self, cutoffs, vocabs: sequences.Vocabularies, on_chunk=None) -> ExampleSet:
        return build_examples(self.engine, self.dataset_id, cutoffs, self.sample, self.exhaustive, vocabs, self.cfg,
                              self.plan.horizon_days, self.should_stop, on_chunk, self.settings)


def _plan_run(engine: Engine, dataset: str, horizon_days: int, cfg: ModelConfig, settings: PipelineSettings,
              progress, should_stop) -> _Run:
    """The dataset's window and cutoffs, the shoppers trained on (a seeded sample above ``max_train_users``)."""
    started = time.perf_counter()
    did = store.get_dataset(engine, dataset)["dataset_id"]
    first, last, _ = _data_window(engine, did)
    plan = plan_cutoffs(first, last, horizon_days, cfg.n_train_cutoffs)
    seed_everything(cfg.seed, settings.torch_threads)
    report = _Progress(progress)
    report("sequences", 0.0, "reading shoppers and vocabularies")
    all_users = sequences.list_users(engine, did)
    sample, sampled = sequences.sample_users(all_users, cfg.max_train_users, cfg.seed)
    notes = list(plan.notes)
    if sampled:
        notes.append(f"{len(all_users)} shoppers is above max_train_users={cfg.max_train_users}: training and "
                     f"evaluation use a seeded sample of {len(sample)} shoppers; every shopper is scored.")
        notes.append("The transition priors of the category and item heads are counted on the sampled shoppers' "
                     "events, like the Markov chain baseline.")
    return _Run(engine, dataset, did, cfg, settings, plan, first, last, sample, sampled, report, should_stop, notes, started)


def _read_examples(run: _Run) -> tuple[sequences.Vocabularies, ExampleSet, ExampleSet, ExampleSet]:
    """Vocabularies before the test cutoff, and the training, validation and held-out examples."""
    plan = run.plan
    vocabs = run.vocabularies(plan.test_cutoff)
    run.priors(vocabs, min(plan.train_cutoffs), ahead=True)
    _check_stop(run.should_stop)
    n_cut = len(plan.train_cutoffs) + 2

    def on_chunk(offset: int):
        return lambda done, total: run.report("sequences", 0.15 * (offset + done / total) / n_cut, "reading sequences")

    train_ex = run.examples(plan.train_cutoffs, vocabs, on_chunk(0))
    if plan.valid_shared:
        is_valid = np.random.default_rng(run.cfg.seed).random(len(train_ex)) < 0.2
        valid_ex, train_ex = train_ex.take(np.flatnonzero(is_valid)), train_ex.take(np.flatnonzero(~is_valid))
    else:
        valid_ex = run.examples([plan.valid_cutoff], vocabs, on_chunk(len(plan.train_cutoffs)))
    test_ex = run.examples([plan.test_cutoff], vocabs, on_chunk(n_cut - 1))
    return vocabs, train_ex, valid_ex, test_ex


def _calibrate(run: _Run, model, valid_ex: ExampleSet, vocabs, rfm: dict, history: pd.DataFrame):
    """The propensity's stacking and calibration, and the category head's terms, chosen on the validation window;
    returns the calibrator and the model's predictions on that window."""
    valid_cutoffs = sorted(set(valid_ex.targets["cutoff"])) if len(valid_ex) else [run.plan.valid_cutoff]
    model.set_priors(*run.priors(vocabs, min(valid_cutoffs)))
    valid_pred = predict_examples(model, valid_ex.batch, run.cfg, run.should_stop)
    calibrator, stack_note = _fit_propensity_calibration(valid_ex, valid_pred.propensity, rfm, history)
    run.notes.append(stack_note)
    run.notes.append(_choose_category_terms(model, valid_ex, valid_pred, vocabs, run.cfg, run.should_stop))
    run.notes.append(choose_own_category_weight(model, valid_ex, vocabs, run.cfg, run.should_stop))
    run.notes.append(choose_category_mix(model, valid_ex, vocabs, run.cfg, run.should_stop))
    return calibrator, valid_pred


def _measure(run: _Run, model, test_ex: ExampleSet, vocabs, calibrator, rfm: dict, history: pd.DataFrame):
    """The model and every baseline on the held-out window, with a note for each head a baseline serves; returns
    the :class:`Evaluation` and the model's predictions on that window."""
    model.set_priors(*run.priors(vocabs, run.plan.test_cutoff))
    test_pred = predict_examples(model, test_ex.batch, run.cfg, run.should_stop)
    rankers = run.side.result(("rankers", run.plan.test_cutoff), _rankers, history, run.plan.test_cutoff,
                              run.plan.horizon_days)
    result = _evaluate(test_ex, test_pred, calibrator, rfm, rankers, history, run.plan, vocabs, RFMPropensity.name)
    _check_stop(run.should_stop)
    for head, info in result.heads.items():
        if info.used != MODEL:
            run.notes.append(f"{head}: the model lost to {info.used} on the held-out window, so the forecasts "
                             f"written for this head are {info.used}'s.")
    return result, test_pred


def _final_model(run: _Run, fit, vocabs: sequences.Vocabularies):
    """The model that scores (the evaluated one, or its refit on every window when ``refit_on_latest``), its
    vocabularies and the number of examples it was trained on."""
    if not run.cfg.refit_on_latest:
        run.notes.append("The forecasts come from the evaluated model (not refit on the latest window); scoring reads "
                         "every event up to the data's end.")
        return fit.model, vocabs, fit.n_train_examples
    plan, epochs = run.plan, max(fit.best_epoch, 1)
    run.report("training", 0.75, "refitting on every window, the latest included")
    refit_cutoffs = [*plan.train_cutoffs, plan.valid_cutoff, plan.test_cutoff]
    vocabs = run.vocabularies(None)
    all_ex = run.examples(sorted(set(refit_cutoffs)), vocabs)
    empty = all_ex.take(np.array([], dtype=np.int64))
    refit = fit_model(all_ex, empty, vocabs, run.cfg, None, run.should_stop, epochs=epochs,
                      priors=run.priors(vocabs, min(refit_cutoffs)), settings=run.settings)
    refit.model.category_learned.copy_(fit.model.category_learned)  # the choices made on the validation window
    refit.model.own_category_weight.copy_(fit.model.own_category_weight)
    refit.model.category_mix.copy_(fit.model.category_mix)
    run.notes.append(f"The forecasts come from a refit on all windows, the latest included ({epochs} epochs, the best "
                     "number found with validation); the metrics above are those of the evaluated model, and the "
                     "calibration fitted on the validation window is reused.")
    return refit.model, vocabs, refit.n_train_examples


def _scoring_baselines(run: _Run, rfm: dict, history: pd.DataFrame, heads: dict, calibrator) -> tuple[dict, dict]:
    """The baselines scoring uses, as saved with the version and as read back from that form (so that re-scoring
    the version writes what training writes)."""
    names = [info["used"] for info in heads.values()]
    fitted = run.side.result(("rankers", run.end_cutoff), _rankers, history, run.end_cutoff, run.plan.horizon_days, names)
    rankers = {name: r for name, r in fitted.items() if name in names}  # those fitted ahead are all of them
    saved = _baselines_to_save(rfm, rankers, heads, calibrator, run.cfg.top_k_items)
    if saved["rankers"] and run.sampled:
        run.notes.append(f"The baselines used for scoring are fitted once on the {len(run.sample)} sampled shoppers' "
                         "history (popular fill, Markov transitions); each scored shopper's own history supplies their "
                         "own lists.")
    return saved, _baselines_from_saved(saved)


def _score_everyone(run: _Run, conn, card: ModelCard, loaded: dict, saved_baselines: dict, baselines: dict) -> int:
    """Score every shopper with the new version: on the Spark cluster's executors when the store is Spark with
    Spark Connect configured (:mod:`core.model.executor_scoring`), else in the app, chunk by chunk."""
    session = executors.spark_session(run.engine)
    if session is None:
        return _score_all(run.engine, conn, loaded, card.heads, baselines, run.dataset_id, card.model_version,
                          run.end_cutoff, run.report, run.should_stop, (0.8, 0.97))
    run.report("scoring", 0.8, "scoring every shopper on the Spark cluster's executors")
    package = executor_scoring.package_in_memory(
        loaded["model"], run.cfg, loaded["vocabs"], loaded["calibrator"], card.to_dict(), saved_baselines,
        loaded["value"].to_dict(), run.settings, run.dataset_id, card.model_version, run.end_cutoff)
    return executor_scoring.score_into_store(run.engine, session, package)


def _publish(run: _Run, card: ModelCard, loaded: dict, saved_baselines: dict, baselines: dict) -> ModelCard:
    """Score every shopper and write the version (weights and JSON on disk, predictions and its row), all or nothing."""
    did, version, model = run.dataset_id, card.model_version, loaded["model"]
    folder = registry.version_dir(did, version)
    model.set_priors(*run.priors(loaded["vocabs"], run.end_cutoff))  # transitions up to the end
    try:
        with run.engine.begin() as conn:
            card.n_users = _score_everyone(run, conn, card, loaded, saved_baselines, baselines)
            card.training_seconds = round(time.perf_counter() - run.started, 2)
            run.report("saving", 0.98, "writing the model version")
            registry.save_model(folder, model, run.cfg, loaded["vocabs"], loaded["calibrator"], card.to_dict(),
                                saved_baselines, loaded["value"].to_dict(), settings=run.settings)
            registry.insert_model_row(conn, version, did, run.plan.horizon_days, folder, model.config, card.to_dict(),
                                      settings=run.settings)
            scorings.record_scoring(conn, did, version, run.last, scorings.TRAINING, card.n_users)
    except BaseException:
        registry.remove_folder(folder)
        executors.undo_without_transactions(run.engine, lambda conn: registry.delete_predictions(conn, did, version))
        raise
    store.analyze(run.engine, store.predictions, store.models)
    run.report("done", 1.0, f"model {version} is ready")
    return card


# --- public API ---------------------------------------------------------------------------------


def train(engine: Engine, dataset: str, horizon_days: int = app_config.DEFAULT_HORIZON_DAYS,
          config: ModelConfig | None = None, progress: Callable[[TrainProgress], None] | None = None,
          should_stop: Callable[[], bool] | None = None, seed: int = 0,
          settings: PipelineSettings | None = None) -> ModelCard:
    """Train, evaluate, choose, score and publish a model version for ``dataset``.

    Inputs: the store ``engine``; the dataset name; the horizon in days (1..60); a
    :class:`ModelConfig` (defaults when None; its ``seed`` is replaced by ``seed``);
    ``progress`` receives :class:`TrainProgress` reports; ``should_stop`` is polled at every
    step; ``settings`` say how the run uses this machine (:class:`PipelineSettings`, defaults
    when None), and are kept with the version. Output: the :class:`ModelCard` of the new version, which is then the latest
    ``ready`` model. Errors: ``DatasetNotFoundError``; ``SchemaError`` when the data span
    is too short for the horizon (the message gives the span found and needed);
    :class:`TrainingCancelled` when ``should_stop()`` turns True (nothing is written).
    """
    cfg = dataclasses.replace(config or ModelConfig(), seed=seed)
    settings = settings or PipelineSettings()
    run = _plan_run(engine, dataset, horizon_days, cfg, settings, progress, should_stop)
    run.side.open().ahead("model library", import_model_library)
    try:
        vocabs, train_ex, valid_ex, test_ex = _read_examples(run)
        train_targets = [g for _, g in train_ex.targets.groupby("cutoff", sort=True)]
        _start_beside_fit(run, vocabs, train_targets, valid_ex)
        fit = fit_model(train_ex, valid_ex, vocabs, cfg, progress, should_stop, fraction_range=(0.15, 0.7),
                        priors=run.priors(vocabs, min(run.plan.train_cutoffs)), settings=settings)
        run.report("evaluating", 0.72, "calibrating on the validation window and measuring on the held-out window")
        history, rfm = run.side.result("history and gradient boosting", _history_and_rfm, run, train_targets)
        _check_stop(should_stop)
        return _evaluate_and_publish(run, fit, vocabs, valid_ex, test_ex, train_targets, history, rfm)
    except BaseException:  # a cancelled or failed run drops what has not started beside it
        run.side.close(cancel=True)
        raise
    finally:
        run.side.close()


def _history_and_rfm(run: _Run, train_targets: list[pd.DataFrame]) -> tuple[pd.DataFrame, dict]:
    """The trained shoppers' history up to the data's end and gradient boosting fitted on the training windows."""
    history = _load_history(run.engine, run.dataset_id, run.sample, run.exhaustive, run.end_cutoff,
                            run.settings.chunk_users)
    return history, _fit_rfm(history, train_targets)


def _start_beside_fit(run: _Run, vocabs: sequences.Vocabularies, train_targets: list[pd.DataFrame], valid_ex) -> None:
    """Start on the side thread what evaluation and scoring need and the fitted model does not change: the history
    and gradient boosting, the priors of the validation, held-out and last cutoffs, every ranker at the last two."""
    plan = run.plan
    history = run.side.ahead("history and gradient boosting", _history_and_rfm, run, train_targets)
    valid = min(sorted(set(valid_ex.targets["cutoff"]))) if len(valid_ex) else plan.valid_cutoff
    for cutoff in [valid, plan.test_cutoff] + ([] if run.cfg.refit_on_latest else [run.end_cutoff]):
        if cutoff != min(plan.train_cutoffs):  # those the fit read
            run.priors(vocabs, cutoff, ahead=True)
    for cutoff in [plan.test_cutoff, run.end_cutoff] if history is not None else []:
        run.side.ahead(("rankers", cutoff), after, history, lambda got, c: _rankers(got[0], c, plan.horizon_days), cutoff)


def _evaluate_and_publish(run: _Run, fit, vocabs: sequences.Vocabularies, valid_ex, test_ex,
                          train_targets: list[pd.DataFrame], history: pd.DataFrame, rfm: dict) -> ModelCard:
    """Calibrate, measure the model and every baseline, fit value and churn, then score and publish."""
    cfg, settings, dataset, should_stop = run.cfg, run.settings, run.dataset, run.should_stop
    calibrator, valid_pred = _calibrate(run, fit.model, valid_ex, vocabs, rfm, history)
    result, test_pred = _measure(run, fit.model, test_ex, vocabs, calibrator, rfm, history)
    value = fit_value(history, train_targets, valid_ex, valid_pred, test_ex, test_pred, calibrator=calibrator,
                      rfm_propensity=rfm["propensity"], propensity_used=result.heads["propensity"].used,
                      horizon_days=run.plan.horizon_days, seed=cfg.seed)
    _check_stop(should_stop)
    model, vocabs, n_examples = _final_model(run, fit, vocabs)
    heads = result.card_heads()
    saved_baselines, baselines = _scoring_baselines(run, rfm, history, heads, calibrator)
    card = ModelCard(
        model_version=registry.new_version(run.dataset_id), dataset=dataset, dataset_id=run.dataset_id,
        created_at=dt.datetime.now(dt.UTC).replace(tzinfo=None), horizon_days=run.plan.horizon_days,
        data_window=(run.first, run.last), plan=run.plan.to_dict(), n_users=0, n_users_trained=len(run.sample),
        sampled=run.sampled, n_train_examples=n_examples, training_seconds=0.0, heads=heads, lift=result.lift,
        calibration=result.calibration, loss_curve=fit.loss_curve, refit_on_latest=cfg.refit_on_latest,
        notes=run.notes, config=model.config.to_dict(),  # vocabulary sizes set
        value=value.card,
        settings=settings.to_dict(),
    )
    loaded = {"model": model, "config": cfg, "settings": settings, "vocabs": vocabs, "calibrator": calibrator,
              "value": value}
    return _publish(run, card, loaded, saved_baselines, baselines)


def score(engine: Engine, dataset: str, model_version: str | None = None,
          should_stop: Callable[[], bool] | None = None,
          progress: Callable[[TrainProgress], None] | None = None,
          settings: PipelineSettings | None = None) -> int:
    """Score every shopper again with a model version (the latest when None), in chunks, at the data's current end.

    The version's earlier forecasts are kept beside the new ones (:mod:`core.model.scorings`): the new scoring
    is recorded with its as-of time (the data's last event) and becomes the version's current forecasts.

    Shoppers are scored at the data's current end with the saved vocabularies, calibration,
    transition priors and baselines: nothing is refitted. A version saved before its
    baselines were kept refits those it uses once, the same way as in training.
    ``progress`` receives a :class:`TrainProgress` per chunk of shoppers written (stage
    ``scoring``); ``should_stop`` is polled between chunks (:class:`TrainingCancelled`:
    the previous predictions stay). ``settings``: how the run uses this machine, the version's
    own (those it was trained with) when None. Returns the number of shoppers scored.
    Errors: ``DatasetNotFoundError``; :class:`NotFittedError` when there is no such ready version.
    """
    did = store.get_dataset(engine, dataset)["dataset_id"]
    row = _resolve_version(engine, did, dataset, model_version)
    lm = registry.load_model(row["path"])
    card = ModelCard.from_dict(lm.card)
    cfg, settings = lm.config, settings or lm.settings
    seed_everything(cfg.seed, settings.torch_threads)
    _, last, _ = _data_window(engine, did)
    end_cutoff = last + dt.timedelta(seconds=1)
    saved = lm.baselines
    report = _Progress(progress)
    if saved is None or not lm.priors_saved:
        report("scoring", 0.0, f"version {row['model_version']} predates its saved baselines: fitting them again")
        sample, sampled = sequences.sample_users(sequences.list_users(engine, did), cfg.max_train_users, cfg.seed)
        if saved is None:
            saved = _refit_baselines(engine, did, card, lm.calibrator, cfg, sample, sampled, end_cutoff,
                                     settings.chunk_users)
        if not lm.priors_saved:
            lm.model.set_priors(*_priors(engine, did, lm.vocabs, end_cutoff, cfg, sample if sampled else None,
                                         settings.chunk_users))
    loaded = {"model": lm.model, "config": cfg, "settings": settings, "vocabs": lm.vocabs, "calibrator": lm.calibrator,
              "value": None if lm.value is None else ValueForecast.from_dict(lm.value)}
    with engine.begin() as conn:
        scorings.retire_predictions(conn, did, row["model_version"])  # kept, beside the new ones
        session = executors.spark_session(engine) if saved is lm.baselines and lm.priors_saved else None
        if session is not None:  # the executors score with the version as saved
            report("scoring", 0.0, "scoring every shopper on the Spark cluster's executors")
            n = executor_scoring.score_into_store(engine, session, executor_scoring.package_version(
                engine, dataset, row["model_version"]))
        else:
            n = _score_all(engine, conn, loaded, card.heads, _baselines_from_saved(saved), did, row["model_version"],
                           end_cutoff, report, should_stop, (0.0, 1.0))
        scorings.record_scoring(conn, did, row["model_version"], last, scorings.RESCORE, n)
    store.analyze(engine, store.predictions, store.past_predictions)
    return n


def _refit_baselines(engine: Engine, dataset_id: int, card: ModelCard, calibrator, cfg: ModelConfig,
                     sample: Sequence[str], sampled: bool, end_cutoff: dt.datetime, chunk_users: int) -> dict:
    """The saved form of the baselines a version uses, fitted again as training fitted them."""
    used = {info["used"] for info in card.heads.values()}
    if used == {MODEL} and calibrator.stack_ is None:
        return {"rfm": {}, "rankers": {}}
    plan = CutoffPlan.from_dict(card.plan)
    history = _load_history(engine, dataset_id, sample, not sampled, end_cutoff, chunk_users)
    rfm = _fit_rfm(history, _train_targets(engine, dataset_id, plan, sample, not sampled, history, cfg))
    rankers = _rankers(history, end_cutoff, card.horizon_days, names=used)
    return _baselines_to_save(rfm, rankers, card.heads, calibrator, cfg.top_k_items)


def _train_targets(engine: Engine, dataset_id: int, plan, users: Sequence[str], exhaustive: bool,
                   history: pd.DataFrame, cfg: ModelConfig) -> list[pd.DataFrame]:
    out = []
    firsts = history.groupby("user_id")["event_time"].min()
    for cutoff in plan.train_cutoffs:
        before = [u for u in users if u in firsts.index and firsts[u] < pd.Timestamp(cutoff)]
        window = history[(history["event_time"] >= cutoff) & (history["event_time"] < cutoff + plan.horizon)]
        out.append(make_targets(window, before, cutoff, plan.horizon_days))
    return out


def list_models(engine: Engine, dataset: str) -> list[ModelCard]:
    """Cards of every ready model version of ``dataset``, newest first (``DatasetNotFoundError`` if no such dataset)."""
    did = store.get_dataset(engine, dataset)["dataset_id"]
    return [ModelCard.from_dict(json.loads(r["metrics_json"])) for r in registry.model_rows(engine, did)]


def latest_model(engine: Engine, dataset: str) -> ModelCard | None:
    """Card of the newest ready model version of ``dataset``, or None when none was trained."""
    cards = list_models(engine, dataset)
    return cards[0] if cards else None


def load_predictions(engine: Engine, dataset: str, model_version: str | None = None) -> pd.DataFrame:
    """Every shopper's prediction of a version (the latest when None), highest propensity first
    (``cartsight predictions``; the Forecasts page reads :mod:`core.model.forecast_rows`).

    Columns: user_id, purchase_propensity, next_event_type, p_view, p_cart, p_purchase,
    p_remove, p_none, next_category, next_category_p, top_items (space-separated),
    reasons ("; "-separated), expected_revenue (within the horizon; empty without prices or for
    a version trained before it), p_inactive (chance of no activity within the horizon), model_version. An empty frame with those columns when the
    dataset has no ready model. Errors: ``DatasetNotFoundError``; :class:`NotFittedError`
    for an unknown ``model_version``.
    """
    did = store.get_dataset(engine, dataset)["dataset_id"]
    cols = [c for c in registry.PREDICTION_COLUMNS if c not in ("dataset_id", "model_version")] + ["model_version"]
    if model_version is None and not registry.model_rows(engine, did):
        return pd.DataFrame(columns=cols)
    row = _resolve_version(engine, did, dataset, model_version)
    return registry.read_predictions(engine, did, row["model_version"]).loc[:, cols]
