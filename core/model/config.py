"""Hyperparameters of the forecast model, in the style of Hugging Face configuration classes, and the settings of
the pipeline that trains and scores it.

Every number the sequence builder, the model and the trainer use lives here with its
default and the reason for it. :class:`ModelConfig` holds what is learned (architecture,
vocabularies, training); :class:`PipelineSettings` holds how a run is carried out on this
machine (query chunks, reasons written, progress reports, torch threads), which changes
no weight. Both reject inconsistent values when they are built, naming the parameter, the
value found and what is expected. This module imports no heavy library, so pages may read it.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from core.config import SESSION_GAP_MINUTES
from core.errors import ParameterError

#: Class order of the next-event-type head everywhere: the model's output, the labels, the baselines and the
#: prediction columns below all follow it, so a probability is read by position without a lookup.
EVENT_CLASSES = ("view", "cart", "purchase", "remove_from_cart", "none")
#: Prediction column for each class, same order.
EVENT_CLASS_COLUMNS = ("p_view", "p_cart", "p_purchase", "p_remove", "p_none")
#: Event-type token ids of the input sequence (0 is padding); wishlist and unknown types read as view.
EVENT_TYPE_IDS = {"view": 1, "cart": 2, "remove_from_cart": 3, "purchase": 4, "wishlist": 5}
EVENT_TYPE_UNKNOWN_ID = 6
N_EVENT_TYPE_IDS = 7
#: Upper edges (seconds) of the log-spaced buckets for "time since the previous event" and
#: "age of the event at the cutoff": 10 s, 1 min, 5 min, 30 min, 2 h, 12 h, 1 d, 3 d, 7 d, 14 d, 30 d, 60 d.
TIME_BUCKET_EDGES_S = (10, 60, 300, 1800, 7200, 43200, 86400, 259200, 604800, 1209600, 2592000, 5184000)
#: Number of time-bucket ids: padding 0, "no previous event" 1, then one per edge plus "longer".
N_TIME_BUCKETS = len(TIME_BUCKET_EDGES_S) + 3
#: Longest "days since" (the first event, the last purchase) the model's shopper features take: longer ones are
#: clipped to it, and a shopper who never bought reads as it. A year keeps the log-scaled feature's range small.
#: Not the gradient-boosting baseline's stand-in for "never" (``core.config.RFM_NEVER_DAYS``, ten years), which
#: clips nothing.
DAYS_SINCE_CAP = 365.0
#: Windows (days before the cutoff) of the recent-activity counts: the model's, taken from the sequence itself,
#: and the gradient-boosting baseline's.
RECENT_WINDOWS_DAYS = (1, 3, 7)
#: Names of those counts (events in each window, then carts, purchases and removals in the last 7 days).
RECENT_FEATURES = tuple(f"events_{d}d" for d in RECENT_WINDOWS_DAYS) + ("carts_7d", "purchases_7d", "removes_7d")
#: Gap (days) that separates sessions inside a sequence ("the last session"): the app's session gap.
SESSION_GAP_DAYS = SESSION_GAP_MINUTES / 1440
#: Aggregate per-shopper features fed beside the sequence (all log1p-scaled, over the whole history).
USER_FEATURES = ("n_events", "n_carts", "n_purchases", "days_since_first", "days_since_purchase", "active_days")


#: The config's vocabulary sizes, in the order of :meth:`ModelConfig.vocab_sizes`.
VOCAB_SIZES = ("item_vocab_size", "category_vocab_size", "brand_vocab_size")


#: The fields of :class:`PipelineSettings`, which configs saved by older versions still hold among their
#: hyperparameters: :meth:`ModelConfig.from_dict` ignores them there.
SETTINGS_KEYS = ("chunk_users", "n_reasons", "progress_every", "torch_threads", "scoring_threads")
#: Reasons a shopper can be given at most: there are five occlusion groups (``core.model.reasons.GROUPS``).
MAX_REASONS = 5


def _fail(name: str, value: Any, expected: str, owner: str = "ModelConfig") -> None:
    raise ParameterError(f"{owner} parameter {name!r} is {value!r}; expected {expected}.", parameter=name,
                         cases=[value])


def _check_whole(owner: str, values: dict[str, Any], least: int) -> None:
    """Raise :class:`ParameterError` for the first value that is not a whole number of at least ``least``."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            _fail(name, value, f"a whole number of at least {least}", owner)


def _reject_unknown(owner: str, values: dict, known: set[str]) -> None:
    unknown = sorted(set(values) - known)
    if unknown:
        raise ParameterError(f"{owner} has no parameter(s) {unknown}; known parameters: {sorted(known)}.",
                             parameter=unknown[0], cases=unknown)


@dataclass
class ModelConfig:
    """Every hyperparameter of the sequence model, its inputs and its training (how a run is carried out is
    :class:`PipelineSettings`).

    Args:
        max_len: events per shopper the model reads (the last ones before the cutoff). Default 50.
        hidden_size: width of the transformer. Default 64 (trains on 2 CPU cores).
        n_layers: transformer blocks. Default 2.
        n_heads: attention heads; must divide ``hidden_size``. Default 2.
        dropout: dropout on embeddings, attention and residuals. Default 0.1.
        item_vocab_cap: most frequent items kept, the rest share one "other" id. Default 20,000.
        min_token_count: items, categories and brands seen fewer times share the "other" id. Default 2.
        category_vocab_cap: most frequent categories kept. Default 5,000.
        brand_vocab_cap: most frequent brands kept. Default 5,000.
        item_vocab_size, category_vocab_size, brand_vocab_size: ids in the vocabularies the model embeds
            and ranks over (padding and "other" included), as transformers' ``vocab_size``. They come from
            the data, so they are None until :meth:`with_vocab_sizes` sets them, before a model is built.
        sampled_softmax_threshold: above this many items the item head trains with a sampled softmax. Default 5,000.
        n_negatives: items sampled (shared by the batch) for the sampled softmax. Default 1,024.
        prior_top_k: successors kept per category (item) in the transition priors (``core.model.priors``). Default 32.
        prior_alpha: weight of popularity when smoothing the transition counts. Default 1.0.
        loss_weights: weight of each head's loss (propensity, next_event_type, next_category, next_items).
        lr: AdamW learning rate. Default 3e-3.
        weight_decay: AdamW weight decay. Default 0.01.
        epochs: maximum passes over the training examples. Default 5.
        min_train_steps: small data gets more epochs until at least this many steps (early stopping still applies). Default 300.
        patience: epochs without a better validation loss before stopping early. Default 1: the validation loss
            falls to one lowest epoch and rises after it, so a second epoch past it only costs time.
        batch_size: examples per step. Default 256.
        max_train_users: shoppers above this are sampled (seeded) for training and evaluation. Default 20,000.
        max_train_examples: cap on stacked (shopper, cutoff) examples per epoch, sampled afresh each epoch.
            Default 16,000 (with 5 epochs, about 3 minutes on 2 CPU cores).
        max_valid_examples: validation examples (seeded sample) whose loss drives early stopping. Default 5,000.
        n_train_cutoffs: past cutoffs stacked for training (fewer when history is short). Default 4.
        top_k_items: items written per shopper in ``top_items``. Default 10.
        top_k_categories: categories ranked per shopper for the metrics. Default 10.
        refit_on_latest: after evaluation, retrain including the latest (held-out) window. Default False.
        seed: seed of every random choice (sampling, initialisation, batches). Default 0.
    """

    max_len: int = 50
    hidden_size: int = 64
    n_layers: int = 2
    n_heads: int = 2
    dropout: float = 0.1
    item_vocab_cap: int = 20_000
    min_token_count: int = 2
    category_vocab_cap: int = 5_000
    brand_vocab_cap: int = 5_000
    item_vocab_size: int | None = None
    category_vocab_size: int | None = None
    brand_vocab_size: int | None = None
    sampled_softmax_threshold: int = 5_000
    n_negatives: int = 1_024
    prior_top_k: int = 32
    prior_alpha: float = 1.0
    loss_weights: dict = field(
        default_factory=lambda: {"propensity": 1.0, "next_event_type": 1.0, "next_category": 1.0, "next_items": 0.5}
    )
    lr: float = 3e-3
    weight_decay: float = 0.01
    epochs: int = 5
    min_train_steps: int = 300
    patience: int = 1
    batch_size: int = 256
    max_train_users: int = 20_000
    max_train_examples: int = 16_000
    max_valid_examples: int = 5_000
    n_train_cutoffs: int = 4
    top_k_items: int = 10
    top_k_categories: int = 10
    refit_on_latest: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        positive_ints = (
            "max_len", "hidden_size", "n_layers", "n_heads", "item_vocab_cap", "min_token_count",
            "category_vocab_cap", "brand_vocab_cap", "sampled_softmax_threshold", "n_negatives", "prior_top_k", "epochs", "min_train_steps",
            "batch_size", "max_train_users", "max_train_examples", "max_valid_examples", "n_train_cutoffs",
            "top_k_items", "top_k_categories",
        )
        _check_whole("ModelConfig", {name: getattr(self, name) for name in positive_ints}, 1)
        _check_whole("ModelConfig", {name: getattr(self, name) for name in ("patience", "seed")}, 0)
        for name in VOCAB_SIZES:
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 2):
                _fail(name, value, "None or a whole number of at least 2 (padding and 'other')")
        if self.hidden_size % self.n_heads:
            _fail("n_heads", self.n_heads, f"a divisor of hidden_size={self.hidden_size}")
        if not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            _fail("dropout", self.dropout, "a number in [0, 1)")
        if isinstance(self.prior_alpha, bool) or not isinstance(self.prior_alpha, (int, float)) or self.prior_alpha <= 0:
            _fail("prior_alpha", self.prior_alpha, "a number above 0")
        if not isinstance(self.lr, (int, float)) or not 0.0 < self.lr <= 1.0:
            _fail("lr", self.lr, "a number in (0, 1]")
        if not isinstance(self.weight_decay, (int, float)) or self.weight_decay < 0:
            _fail("weight_decay", self.weight_decay, "a number of at least 0")
        heads = {"propensity", "next_event_type", "next_category", "next_items"}
        if not isinstance(self.loss_weights, dict) or set(self.loss_weights) != heads:
            _fail("loss_weights", self.loss_weights, f"a dict with exactly the keys {sorted(heads)}")
        if any((not isinstance(w, (int, float))) or w < 0 for w in self.loss_weights.values()):
            _fail("loss_weights", self.loss_weights, "weights of at least 0")
        if self.max_train_examples < self.batch_size:
            _fail("max_train_examples", self.max_train_examples, f"at least batch_size={self.batch_size}")

    def with_vocab_sizes(self, items: int, categories: int, brands: int) -> "ModelConfig":
        """A copy with the vocabulary sizes of the data set (ids, padding and "other" included)."""
        return dataclasses.replace(self, item_vocab_size=items, category_vocab_size=categories, brand_vocab_size=brands)

    def vocab_sizes(self) -> tuple[int, int, int]:
        """(items, categories, brands) ids; raises :class:`ParameterError` naming the first size not yet set."""
        for name in VOCAB_SIZES:
            if getattr(self, name) is None:
                _fail(name, None, "the size of the data's vocabulary: build the model from config.with_vocab_sizes(...)")
        return self.item_vocab_size, self.category_vocab_size, self.brand_vocab_size

    def to_dict(self) -> dict:
        """The hyperparameters as a JSON-serialisable dict."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """The hyperparameters as JSON text."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        """Build (and validate) a config from a dict; unknown keys raise :class:`ParameterError` naming them.

        The keys of :data:`SETTINGS_KEYS` are skipped: configs saved before the pipeline's
        settings had their own class hold them, and they change nothing learned.
        """
        values = {k: v for k, v in values.items() if k not in SETTINGS_KEYS}
        _reject_unknown("ModelConfig", values, {f.name for f in dataclasses.fields(cls)})
        return cls(**values)


@dataclass(frozen=True)
class PipelineSettings:
    """How a training or scoring run is carried out on this machine; none of it changes what the model learns.

    Args:
        chunk_users: shoppers per database query when reading sequences, histories and priors, and when
            scoring. Default 5,000.
        n_reasons: reasons written per shopper (0 to 5; 0 skips the occlusion pass). Default 3.
        progress_every: training steps between progress callbacks. Default 10.
        torch_threads: CPU threads torch may use. Default 1: on a 2-core machine shared with other work, two
            threads wait on each other whenever a core is taken, and a training step or a scoring pass runs
            3-5x slower than on one thread (it uses 3-5x the CPU time too).
        scoring_threads: chunks of shoppers scored at once, each in its own thread (reading its events, the
            model's pass on ``torch_threads`` threads, the reasons): Python threads that each run torch on one
            thread use a second core without the waits of torch's own threads. Default 2.
    """

    chunk_users: int = 5_000
    n_reasons: int = 3
    progress_every: int = 10
    torch_threads: int = 1
    scoring_threads: int = 2

    def __post_init__(self) -> None:
        owner = "PipelineSettings"
        _check_whole(owner, {"chunk_users": self.chunk_users, "progress_every": self.progress_every,
                             "torch_threads": self.torch_threads, "scoring_threads": self.scoring_threads}, 1)
        _check_whole(owner, {"n_reasons": self.n_reasons}, 0)
        if self.n_reasons > MAX_REASONS:
            _fail("n_reasons", self.n_reasons, f"at most {MAX_REASONS} (there are five occlusion groups)", owner)

    def to_dict(self) -> dict:
        """The settings as a JSON-serialisable dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "PipelineSettings":
        """Build (and validate) settings from a dict; unknown keys raise :class:`ParameterError` naming them."""
        _reject_unknown("PipelineSettings", values, set(SETTINGS_KEYS))
        return cls(**values)


def split_config(values: dict) -> tuple[ModelConfig, PipelineSettings]:
    """The :class:`ModelConfig` and the :class:`PipelineSettings` of one dict that may hold fields of both (a
    ``--config`` file, an older saved config); a key of neither raises :class:`ParameterError` naming it."""
    settings = {k: v for k, v in values.items() if k in SETTINGS_KEYS}
    return ModelConfig.from_dict(values), PipelineSettings.from_dict(settings)
