"""Training examples by time, and the training loop of the forecast model.

An example is one shopper at one cutoff ``T``: inputs are their last events before ``T``
(:mod:`core.model.sequences`), targets come from ``core.model.labels.make_targets`` on the
window ``[T, T + H)``. Examples of several past cutoffs are stacked for training; the
validation cutoff's examples drive early stopping and calibration; the test cutoff's are
only ever evaluated. Training uses AdamW on ``settings.torch_threads`` CPU threads, is
reproducible for a seed, reports progress every few steps and stops with
:class:`~core.errors.TrainingCancelled` as soon as ``should_stop()`` turns True.
"""
from __future__ import annotations

import copy
import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from core.model import sequences
from core.errors import SchemaError, TrainingCancelled
from core.model.config import EVENT_CLASSES, ModelConfig, PipelineSettings

IGNORE = -100


@dataclass
class TrainProgress:
    """One progress report: stage ("sequences", "training", "evaluating", "scoring", "saving"), overall fraction 0..1."""

    stage: str
    fraction: float
    epoch: int = 0
    step: int = 0
    train_loss: float | None = None
    valid_loss: float | None = None
    message: str = ""


@dataclass
class ExampleSet:
    """Stacked examples: model inputs, encoded labels and the raw targets (one row per example)."""

    batch: sequences.SequenceBatch
    labels: dict  # purchased float32, next_event_type int64 (class index), next_category / next_item int64 ids
    targets: pd.DataFrame  # make_targets columns + cutoff
    cutoff_index: np.ndarray  # which of the given cutoffs each example belongs to

    def __len__(self) -> int:
        return len(self.batch)

    def take(self, index) -> "ExampleSet":
        """The examples ``index`` (integer array)."""
        idx = np.asarray(index)
        return ExampleSet(
            batch=self.batch.take(idx), labels={k: v[idx] for k, v in self.labels.items()},
            targets=self.targets.iloc[idx].reset_index(drop=True), cutoff_index=self.cutoff_index[idx],
        )


def encode_labels(targets: pd.DataFrame, vocabs: sequences.Vocabularies) -> dict:
    """Label arrays from ``make_targets`` output: class index of ``next_event_type``; vocabulary ids (-100 when absent or "other")."""
    class_index = {c: i for i, c in enumerate(EVENT_CLASSES)}
    unknown = sorted(set(targets["next_event_type"]) - set(class_index))
    if unknown:
        raise SchemaError(f"next_event_type holds {unknown}; expected one of {list(EVENT_CLASSES)}.",
                          column="next_event_type", cases=unknown, reason="bad_value")

    def ids(vocab: sequences.Vocabulary, values: pd.Series) -> np.ndarray:
        out = vocab.encode(values)
        return np.where(out == sequences.OTHER_ID, IGNORE, out)

    return {
        "purchased": targets["purchased"].to_numpy(dtype=np.float32),
        "next_event_type": targets["next_event_type"].map(class_index).to_numpy(dtype=np.int64),
        "next_category": ids(vocab=vocabs.categories, values=targets["next_category"]),
        "next_item": ids(vocab=vocabs.items, values=targets["next_item"]),
    }


def build_examples(engine: Engine, dataset_id: int, cutoffs: Sequence[dt.datetime], users: Sequence[str],
                   exhaustive: bool, vocabs: sequences.Vocabularies, config: ModelConfig, horizon_days: int,
                   should_stop: Callable[[], bool] | None = None,
                   on_chunk: Callable[[int, int], None] | None = None,
                   settings: PipelineSettings | None = None) -> ExampleSet:
    """Examples of ``users`` (database order) at every cutoff, read ``settings.chunk_users`` at a time.

    Inputs at cutoff ``T`` are events before ``T`` only; targets are ``make_targets`` on
    the events of ``[T, T + horizon_days)``. ``exhaustive`` says ``users`` is every shopper
    of the dataset (range queries suffice). Raises :class:`TrainingCancelled` when
    ``should_stop()`` turns True and :class:`SchemaError` when no shopper has an event
    before any cutoff.
    """
    from core.model.labels import make_targets

    chunks = sequences.user_chunks(list(users), (settings or PipelineSettings()).chunk_users, exhaustive)
    horizon = dt.timedelta(days=horizon_days)
    batches, targets, owners = [], [], []
    done, total = 0, len(chunks) * len(cutoffs)
    for ci, cutoff in enumerate(cutoffs):
        for chunk in chunks:
            if should_stop is not None and should_stop():
                raise TrainingCancelled("Training was cancelled while reading sequences; nothing was written.")
            batch = sequences.build_sequences(engine, dataset_id, chunk, cutoff, vocabs, config.max_len)
            done += 1
            if on_chunk is not None:
                on_chunk(done, total)
            if not len(batch):
                continue
            window = sequences.load_events(engine, dataset_id, chunk, cutoff, cutoff + horizon)
            if len(window):
                window["event_time"] = pd.to_datetime(window["event_time"])
            batches.append(batch)
            targets.append(make_targets(window, batch.user_ids, cutoff, horizon_days))
            owners.append(np.full(len(batch), ci, dtype=np.int64))
    if not batches:
        raise SchemaError(f"No shopper has an event before the cutoff(s) {[str(c) for c in cutoffs]}.",
                          column="event_time", reason="no_data")
    all_targets = pd.concat(targets, ignore_index=True)
    return ExampleSet(sequences.SequenceBatch.concat(batches), encode_labels(all_targets, vocabs), all_targets,
                      np.concatenate(owners))


@dataclass
class FitResult:
    """A trained model, its loss curve and how training went."""

    model: object
    loss_curve: list = field(default_factory=list)
    best_epoch: int = 0
    best_valid_loss: float | None = None
    epochs_run: int = 0
    seconds: float = 0.0
    n_train_examples: int = 0


def seed_everything(seed: int, threads: int) -> None:
    """Seed torch and numpy and set torch's CPU thread count (training and scoring are then reproducible)."""
    import torch

    torch.manual_seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.set_num_threads(threads)


def _label_tensors(labels: dict, idx: np.ndarray) -> dict:
    import torch

    return {k: torch.from_numpy(np.ascontiguousarray(v[idx])) for k, v in labels.items()}


def evaluate_loss(model, examples: ExampleSet, batch_size: int) -> float:
    """Mean weighted loss of ``model`` over ``examples`` (no gradient, dropout off)."""
    import torch

    from core.model.modeling import batch_tensors

    was_training = model.training
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            idx = np.arange(start, min(start + batch_size, len(examples)))
            out = model(batch_tensors(examples.batch, idx), _label_tensors(examples.labels, idx))
            total += float(out.loss) * len(idx)
            n += len(idx)
    model.train(was_training)
    return total / max(n, 1)


def fit_model(train: ExampleSet, valid: ExampleSet, vocabs: sequences.Vocabularies, config: ModelConfig,
              progress: Callable[[TrainProgress], None] | None = None,
              should_stop: Callable[[], bool] | None = None,
              fraction_range: tuple[float, float] = (0.0, 1.0), epochs: int | None = None,
              priors=None, settings: PipelineSettings | None = None) -> FitResult:
    """Train a :class:`~core.model.modeling.ForecastModel` on ``train``, early-stopping on ``valid``.

    Each epoch draws at most ``config.max_train_examples`` examples (seeded) and runs them in
    batches of similar length, in random order (:func:`epoch_batches`); AdamW with
    ``config.lr``; the weights of the epoch with the lowest validation loss are kept
    (``config.patience`` epochs without improvement stop training; the validation loss is
    measured on at most ``config.max_valid_examples`` of them). ``epochs`` overrides
    ``config.epochs`` and turns early stopping off (used to refit for a known number of
    epochs). ``priors`` (category, item :class:`~core.model.priors.TransitionPrior`) are set on the
    model before training (built before the earliest training cutoff). ``progress`` is called every
    ``settings.progress_every`` steps and after each epoch; torch runs on ``settings.torch_threads``
    threads (:class:`PipelineSettings`, defaults when None). Raises :class:`TrainingCancelled` when
    ``should_stop()`` turns True (checked every step).
    """
    settings = settings or PipelineSettings()
    seed_everything(config.seed, settings.torch_threads)
    rng = np.random.default_rng(config.seed)
    n_epochs = _n_epochs(len(train), config, epochs)
    loop = _Loop(_new_model(vocabs, config, priors), config, progress, should_stop, fraction_range,
                 n_epochs * _steps_per_epoch(len(train), config), settings.progress_every)
    if len(valid) > config.max_valid_examples:
        valid = valid.take(np.sort(rng.choice(len(valid), size=config.max_valid_examples, replace=False)))
    lengths = (train.batch.event_type != sequences.PAD_ID).sum(axis=1)
    result = FitResult(model=loop.model, n_train_examples=len(train))
    started = time.perf_counter()
    for epoch in range(1, n_epochs + 1):
        batches = epoch_batches(rng, lengths, config.max_train_examples, config.batch_size)
        train_loss = loop.run_epoch(train, batches, epoch, n_epochs)
        valid_loss = evaluate_loss(loop.model, valid, config.batch_size) if len(valid) else None
        result.loss_curve.append({"epoch": epoch, "step": loop.step, "train_loss": train_loss, "valid_loss": valid_loss})
        result.epochs_run = epoch
        loop.report(epoch, train_loss, valid_loss, f"epoch {epoch}/{n_epochs} done")
        if loop.keep_best(result, epoch, valid_loss, early_stopping=epochs is None):
            break
    if loop.best_state is not None:
        loop.model.load_state_dict(loop.best_state)
    loop.model.eval()
    result.best_valid_loss = loop.best_loss
    result.seconds = time.perf_counter() - started
    return result


def _new_model(vocabs: sequences.Vocabularies, config: ModelConfig, priors):
    from core.model.modeling import ForecastModel

    model = ForecastModel(config.with_vocab_sizes(len(vocabs.items), len(vocabs.categories), len(vocabs.brands)))
    if priors is not None:
        model.set_priors(*priors)
    return model


def _n_epochs(n_train: int, config: ModelConfig, epochs: int | None) -> int:
    """``epochs`` when given, else ``config.epochs`` raised until small data gets ``config.min_train_steps`` steps."""
    if epochs is not None:
        return epochs
    return max(config.epochs, -(-config.min_train_steps // _steps_per_epoch(n_train, config)))


def _steps_per_epoch(n_train: int, config: ModelConfig) -> int:
    return max(1, -(-min(n_train, config.max_train_examples) // config.batch_size))


def epoch_batches(rng: np.random.Generator, lengths: np.ndarray, max_examples: int,
                  batch_size: int) -> list[np.ndarray]:
    """One epoch's batches of example indices: at most ``max_examples`` drawn at random, grouped by their number
    of events, the batches in random order, each batch's indices sorted.

    A batch runs at the width of its longest sequence: grouping similar lengths leaves out
    most of the padding a random batch carries (a third of a training step's work on the
    simulated shoppers, where half the sequences are under 30 events and a quarter are 50).
    """
    chosen = rng.permutation(len(lengths))[:max_examples]
    chosen = chosen[np.argsort(lengths[chosen], kind="stable")]
    batches = [np.sort(chosen[s:s + batch_size]) for s in range(0, len(chosen), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


class _Loop:
    """The optimiser, the step count and the best weights so far of one :func:`fit_model` run."""

    def __init__(self, model, config: ModelConfig, progress, should_stop, fraction_range, total_steps: int,
                 progress_every: int):
        import torch

        self.model, self.config, self.total_steps, self.progress_every = model, config, total_steps, progress_every
        self.optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.progress, self.should_stop, self.fraction_range = progress, should_stop, fraction_range
        self.step, self.valid_loss = 0, None
        self.best_state, self.best_loss, self.bad_epochs = None, None, 0

    def run_epoch(self, train: ExampleSet, batches: list[np.ndarray], epoch: int, n_epochs: int) -> float:
        """One pass over ``batches`` of ``train``; returns the mean training loss."""
        import torch

        from core.model.modeling import batch_tensors

        self.model.train()
        running, seen = 0.0, 0
        for idx in batches:
            if self.should_stop is not None and self.should_stop():
                raise TrainingCancelled("Training was cancelled; no model version was written.")
            out = self.model(batch_tensors(train.batch, idx), _label_tensors(train.labels, idx))
            self.optimiser.zero_grad()
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.optimiser.step()
            self.step += 1
            running += float(out.loss.detach()) * len(idx)
            seen += len(idx)
            if self.step % self.progress_every == 0:
                self.report(epoch, running / seen, self.valid_loss, f"epoch {epoch}/{n_epochs}, step {self.step}")
        return running / max(seen, 1)

    def report(self, epoch: int, train_loss: float | None, valid_loss: float | None, message: str) -> None:
        """A :class:`TrainProgress` at the current step, its fraction within ``fraction_range``."""
        if valid_loss is not None:
            self.valid_loss = valid_loss
        if self.progress is None:
            return
        lo, hi = self.fraction_range
        self.progress(TrainProgress("training", lo + (hi - lo) * self.step / max(self.total_steps, 1), epoch,
                                    self.step, train_loss, valid_loss, message))

    def keep_best(self, result: FitResult, epoch: int, valid_loss: float | None, early_stopping: bool) -> bool:
        """Keep the weights when this epoch is the best so far (every epoch without early stopping or without a
        validation loss); True when early stopping ends training here."""
        if not early_stopping or valid_loss is None:
            self.best_state, result.best_epoch, self.best_loss = copy.deepcopy(self.model.state_dict()), epoch, valid_loss
            return False
        if self.best_loss is None or valid_loss < self.best_loss - 1e-6:
            self.best_state, self.best_loss, result.best_epoch = copy.deepcopy(self.model.state_dict()), valid_loss, epoch
            self.bad_epochs = 0
            return False
        self.bad_epochs += 1
        return self.bad_epochs >= self.config.patience


def predict_prior_categories(model, batch: sequences.SequenceBatch, config: ModelConfig,
                             should_stop: Callable[[], bool] | None = None) -> np.ndarray:
    """[n, top categories] category ids ranked by the transition priors alone: what :func:`predict_examples`
    ranks when ``model.category_learned`` is 0, without the transformer pass."""
    import torch

    from core.model.modeling import batch_tensors

    k = min(config.top_k_categories, max(model.n_categories - 2, 1))
    parts = [np.zeros((0, k), dtype=np.int64)]
    with torch.inference_mode():
        size = config.batch_size * 4
        for start in range(0, len(batch), size):
            if should_stop is not None and should_stop():
                raise TrainingCancelled("Training was cancelled; no model version was written.")
            logits = model.category_prior_logits(batch_tensors(batch, np.arange(start, min(start + size, len(batch)))))
            logits[:, [sequences.PAD_ID, sequences.OTHER_ID]] = float("-inf")
            parts.append(torch.softmax(logits, dim=-1).topk(k, dim=-1).indices.numpy())
    return np.concatenate(parts)


def predict_examples(model, batch: sequences.SequenceBatch, config: ModelConfig,
                     should_stop: Callable[[], bool] | None = None, on_batch: Callable | None = None,
                     items: bool = True, threads: int = 1):
    """Run :meth:`ForecastModel.predict` over ``batch`` in mini-batches; returns one concatenated Prediction.

    Rows are run in length order (each mini-batch of ``4 * batch_size`` rows trims to its own
    width) under ``torch.inference_mode``; the result is in the rows' original order.
    ``on_batch``, when given, is called after each mini-batch with (row indices, their tensors,
    the last hidden states, the pass's ``PassStates``) so that the reasons reuse the pass.
    ``items`` False leaves the item head out (``item_ids`` and ``item_p`` have no columns).
    ``threads`` above 1 runs that many mini-batches at once, each in its own thread (torch,
    on one thread each, releases the interpreter while it computes, so they share the cores;
    ``on_batch`` is then called from those threads, for disjoint rows). The model must be in
    eval mode then (see :meth:`ForecastModel.evaluating`), so that no pass switches it.

    Each mini-batch runs ``batch_size`` rows at a time: on 2 CPU cores the activations of 1,024
    rows (tens of MB a tensor) spill out of the cache and every elementwise op pays for fresh
    memory (a GELU of 36k x 256 values: 20 ms, against 8 ms in four pieces; measured). The
    occlusions still get the whole mini-batch, so they group its rows by their first hidden event.
    """
    from core.model.modeling import Prediction

    size = config.batch_size * 4
    order = np.argsort((batch.event_type != sequences.PAD_ID).sum(axis=1), kind="stable")
    groups = [np.sort(order[start:start + size]) for start in range(0, len(batch), size)]

    def run(idx: np.ndarray):
        if should_stop is not None and should_stop():
            raise TrainingCancelled("Training was cancelled; no model version was written.")
        return _predict_rows(model, batch, idx, config, on_batch, items)

    if threads > 1 and len(groups) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="cartsight-predict") as pool:
            parts = list(pool.map(run, groups))
    else:
        parts = [run(idx) for idx in groups]
    where = np.concatenate(groups) if groups else np.array([], dtype=np.int64)
    inverse = np.empty_like(where)
    inverse[where] = np.arange(len(where))
    return Prediction.concat(parts, inverse)


def _predict_rows(model, batch: sequences.SequenceBatch, idx: np.ndarray, config: ModelConfig,
                  on_batch: Callable | None, items: bool):
    """One mini-batch of :func:`predict_examples`: rows ``idx``, ``batch_size`` at a time, in inference mode
    (a per-thread switch, so it is set here, in the thread that runs the pass)."""
    import torch

    from core.model.modeling import PassStates, Prediction, batch_tensors

    step, k_items = config.batch_size, config.top_k_items if items else 0
    with torch.inference_mode():
        inputs = batch_tensors(batch, idx)
        pieces, states = [], []
        for lo in range(0, len(idx), step):
            rows = {name: t[lo:lo + step] for name, t in inputs.items()}
            if on_batch is None:
                pieces.append(model.predict(rows, k_items, config.top_k_categories))
                continue
            with model.keeping_projections() as kept:
                pieces.append(model.predict(rows, k_items, config.top_k_categories))
            states.append(kept)
        part = Prediction.concat(pieces)
        if on_batch is not None:
            on_batch(idx, inputs, part.hidden, PassStates.concat(states))
    return part
