"""The forecast model: a small causal transformer (Hugging Face ``GPT2Model``) over shopper events.

Each event's token is the sum of learned embeddings of its item, category, brand, event
type, price band, time since the previous event and age at the cutoff; ``GPT2Model`` (built
from a ``GPT2Config`` in code, randomly initialised, no hub download) reads them as
``inputs_embeds``. The hidden state at the last position, plus the time since the last event
at the cutoff and a few whole-history counts, is the shopper's representation
(``user_embedding``), read by four heads: purchase within the horizon (binary), the
furthest funnel step in the horizon (5 classes, ``EVENT_CLASSES`` order), the next category
(full category vocabulary) and the next items (tied to the item embeddings; sampled
softmax in training when the catalogue is large, full softmax when scoring).
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from core.model import kernels
from core.model.config import EVENT_CLASSES, N_EVENT_TYPE_IDS, N_TIME_BUCKETS, RECENT_FEATURES, USER_FEATURES, ModelConfig
from core.store.price_bands import PRICE_BANDS
from core.model.priors import own_category_logp
from core.model.sequences import OTHER_ID, PAD_ID
# re-exported: the model's input tensors are built there, so that modules the model imports can build them too
from core.model.batches import batch_tensors, recent_counts  # noqa: F401
from core.model.category_mix import mixed

IGNORE = -100
N_PRICE_IDS = len(PRICE_BANDS) + 2


@dataclass
class ForecastOutput:
    """What :meth:`ForecastModel.forward` returns; ``loss`` and ``losses`` only when labels were given."""

    propensity_logit: torch.Tensor  # [n]
    type_logits: torch.Tensor  # [n, 5]
    category_logits: torch.Tensor  # [n, n_categories]
    user_embedding: torch.Tensor  # [n, hidden]
    hidden: torch.Tensor | None = None  # [n, hidden] before the recency and history features
    loss: torch.Tensor | None = None
    losses: dict = field(default_factory=dict)


def _query(block, z: torch.Tensor) -> torch.Tensor:
    """A GPT-2 block's query projection alone (its ``c_attn`` is a Conv1D: ``z @ w + b``, queries first)."""
    return kernels.conv1d(block.attn.c_attn, z, 0, z.shape[-1])


def _keys_values(block, z: torch.Tensor) -> torch.Tensor:
    """A GPT-2 block's key and value projections alone, [..., 2 * hidden]: the last block's queries are read at
    one column only, so they are not projected at the others."""
    return kernels.conv1d(block.attn.c_attn, z, z.shape[-1])


def _split_heads(z: torch.Tensor, n_heads: int) -> torch.Tensor:
    """[n, t, hidden] -> [n, heads, t, hidden / heads] for ``scaled_dot_product_attention``."""
    n, t, h = z.shape
    return z.reshape(n, t, n_heads, h // n_heads).transpose(1, 2)


@dataclass
class PassStates:
    """What an eval pass keeps for the occlusions (:meth:`ForecastModel.keeping_projections`).

    ``embeds`` is the first block's input [n, width, hidden] (event tokens plus positions) and
    ``qkv`` each layer's query/key/value projection [n, width, 3 * hidden], layer order; the last
    layer's holds the keys and values only [n, width, 2 * hidden] (its queries are never read).
    """

    embeds: torch.Tensor | None = None
    qkv: list[torch.Tensor] = field(default_factory=list)

    @staticmethod
    def concat(parts: list["PassStates"]) -> "PassStates":
        """The states of several passes over consecutive rows (the same columns), as one."""
        return PassStates(embeds=torch.cat([p.embeds for p in parts]),
                          qkv=[torch.cat(layer) for layer in zip(*(p.qkv for p in parts))])



@dataclass
class Prediction:
    """Probabilities for a batch of shoppers (numpy), as returned by :meth:`ForecastModel.predict`."""

    propensity: np.ndarray  # [n] uncalibrated P(purchase within horizon)
    type_proba: np.ndarray  # [n, 5] in EVENT_CLASSES order
    category_ids: np.ndarray  # [n, k] best first
    category_p: np.ndarray  # [n, k]
    item_ids: np.ndarray  # [n, k] best first
    item_p: np.ndarray  # [n, k]
    hidden: np.ndarray  # [n, hidden] the transformer's last hidden state (reasons reuse it)

    @staticmethod
    def concat(parts: list["Prediction"], order: np.ndarray | None = None) -> "Prediction":
        """The rows of several predictions, one after the other (then taken in ``order`` when given)."""
        out = {}
        for name in Prediction.__dataclass_fields__:
            values = np.concatenate([getattr(p, name) for p in parts])
            out[name] = values if order is None else values[order]
        return Prediction(**out)


def _gpt2(config: ModelConfig):
    """A randomly initialised ``GPT2Model`` built in code from ``config`` (no hub download)."""
    from transformers import GPT2Config, GPT2Model  # transformers takes seconds to import: only with a model

    h = config.hidden_size
    return GPT2Model(GPT2Config(
        vocab_size=1, n_positions=config.max_len, n_embd=h, n_layer=config.n_layers, n_head=config.n_heads,
        n_inner=4 * h, resid_pdrop=config.dropout, embd_pdrop=config.dropout, attn_pdrop=config.dropout,
        bos_token_id=None, eos_token_id=None, use_cache=False,
        # torch's fused tanh-GELU: the same function as GPT-2's "gelu_new", which transformers computes in
        # Python ops (a third of the whole forward pass on 2 CPU cores, measured)
        activation_function="gelu_pytorch_tanh",
    ))


def _attend_biased(block, x: torch.Tensor, q, k, v, bias: torch.Tensor, n_heads: int) -> torch.Tensor:
    """The rest of a GPT-2 block after its projections: attention under the additive ``bias``, then the MLP."""
    dropout = block.attn.attn_dropout.p if block.training else 0.0
    out = F.scaled_dot_product_attention(*(_split_heads(z, n_heads) for z in (q, k, v)), attn_mask=bias,
                                         dropout_p=dropout)
    return kernels.attention_out_and_mlp(block, x, out.transpose(1, 2).reshape(x.shape[0], x.shape[1], x.shape[-1]))


def _attend(block, x: torch.Tensor, q, k, v, allowed: torch.Tensor, n_heads: int) -> torch.Tensor:
    """:func:`_attend_biased` with the keys each query may read given as booleans [n, queries, keys]."""
    bias = torch.zeros(allowed.shape, dtype=x.dtype).masked_fill_(~allowed, float("-inf"))[:, None]
    return _attend_biased(block, x, q, k, v, bias, n_heads)


def _gather(t: torch.Tensor, flat: torch.Tensor, n: int, c: int) -> torch.Tensor:
    """[N, width, d] at each row's slots (``flat``: row * width + column): [n, c, d]."""
    return t.reshape(-1, t.shape[-1]).index_select(0, flat).reshape(n, c, -1)


def _packed_slots(live: torch.Tensor, first: torch.Tensor, rows: torch.Tensor,
                  several_layers: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(slot_col, valid, flat)`` of the occluded pass: the column in each row's slot [n, c] (the last column
    in the last slot, unused leading slots repeat it), which slots are used, and the slots' flat indices into
    the full pass's rows ``rows``. With one layer only the last column is recomputed."""
    n, width = live.shape
    col = torch.arange(width)
    need = live & (col[None, :] >= first[:, None]) if several_layers else torch.zeros_like(live)
    need[:, -1] = True
    c = int(need.sum(dim=1).max())
    slot_col = torch.where(need, col, -1).sort(dim=1).values[:, -c:]  # [n, c], -1: unused
    valid = slot_col >= 0
    slot_col = torch.where(valid, slot_col, width - 1)
    return slot_col, valid, (rows[:, None] * width + slot_col).reshape(-1)


class ForecastModel(nn.Module):
    """Causal transformer over event tokens with four forecast heads; takes only the config (vocabulary sizes
    included: :meth:`ModelConfig.with_vocab_sizes`)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.n_items, self.n_categories, self.n_brands = config.vocab_sizes()
        # the modules are made in this order, which fixes what a seed draws for each
        self._add_event_embeddings(config.hidden_size)
        self.transformer = _gpt2(config)
        # per thread id, the PassStates the eval pass fills inside keeping_projections() (scoring runs chunks of
        # shoppers in several threads at once on the one model)
        self._kept: dict[int, PassStates] = {}
        self._add_heads(config.hidden_size)
        self._add_priors(config.prior_top_k)
        self._start_at_priors()

    def _add_event_embeddings(self, h: int) -> None:
        """One embedding table per event field, padding id 0 all zeros."""
        self.item_emb = nn.Embedding(self.n_items, h, padding_idx=PAD_ID)
        self.category_emb = nn.Embedding(self.n_categories, h, padding_idx=PAD_ID)
        self.brand_emb = nn.Embedding(self.n_brands, h, padding_idx=PAD_ID)
        self.type_emb = nn.Embedding(N_EVENT_TYPE_IDS, h, padding_idx=PAD_ID)
        self.price_emb = nn.Embedding(N_PRICE_IDS, h, padding_idx=PAD_ID)
        self.gap_emb = nn.Embedding(N_TIME_BUCKETS, h, padding_idx=PAD_ID)
        self.age_emb = nn.Embedding(N_TIME_BUCKETS, h, padding_idx=PAD_ID)

    def _add_heads(self, h: int) -> None:
        """The recency and history features, the copy votes and the four heads on the shopper representation."""
        self.recency_emb = nn.Embedding(N_TIME_BUCKETS, h)
        self.feature_proj = nn.Sequential(nn.Linear(len(USER_FEATURES) + len(RECENT_FEATURES), h), nn.GELU(), nn.Linear(h, h))
        # copy scores: each event votes for its own category / item, weighted by its type, age and position
        self.copy_type = nn.Embedding(N_EVENT_TYPE_IDS, 2)
        self.copy_age = nn.Embedding(N_TIME_BUCKETS, 2)
        self.copy_pos = nn.Embedding(self.config.max_len, 2)
        self.copy_scale = nn.Parameter(torch.zeros(2))
        self.norm = nn.LayerNorm(h)
        self.propensity_head = nn.Linear(h, 1)
        self.type_head = nn.Linear(h, len(EVENT_CLASSES))
        self.category_head = nn.Linear(h, self.n_categories)
        self.item_proj = nn.Linear(h, h)
        self.item_bias = nn.Parameter(torch.zeros(self.n_items))

    def _add_priors(self, k: int) -> None:
        """The transition priors' buffers (top ``k`` successors of each id) and the weights that mix them in."""
        # transition priors (core.model.priors): log P(next | last category/item), set from the data before
        # the examples' cutoff with set_priors(); added to the logits with a learned weight (starts at 1)
        for kind, size in (("category", self.n_categories), ("item", self.n_items)):
            self.register_buffer(f"{kind}_succ_ids", torch.zeros(size, k, dtype=torch.long))
            self.register_buffer(f"{kind}_succ_counts", torch.zeros(size, k))
            self.register_buffer(f"{kind}_totals", torch.zeros(size))
            pop = torch.zeros(size)
            pop[OTHER_ID + 1:] = 1.0
            self.register_buffer(f"{kind}_popularity", pop / pop.sum().clamp(min=1.0))
        self.prior_scale = nn.Parameter(torch.ones(2))
        # the category head reads the transitions from two states: the last event's category and the last
        # session's most frequent one (a session mostly keeps one category, its last click may be off topic);
        # an even mix to start, the weights learned
        self.prior_scale.data[0] = 0.5
        self.session_prior_scale = nn.Parameter(torch.full((1,), 0.5))
        # 1: the category logits add the learned terms (head, copy votes) to the priors; 0: the priors alone.
        # Chosen on the validation window after fitting (core.model.forecast), saved with the weights.
        self.register_buffer("category_learned", torch.ones(()))
        # weight of the shopper's own category counts (their history's mix) in the category logits; 0 while
        # training, chosen on the validation window after fitting (core.model.category_mix), saved with the weights
        self.register_buffer("own_category_weight", torch.zeros(()))
        # the shopper's own shares mixed into the category probabilities (core.model.category_mix): weight of the
        # decayed own shares, weight of the last session's shares, half-life in sessions, events at half trust;
        # zero weights (while training, and in versions saved before it) leave the forecast as it was
        self.register_buffer("category_mix", torch.tensor([0.0, 0.0, float("inf"), 0.0]))

    def _start_at_priors(self) -> None:
        """Zero the learned terms over the category and item priors, so the forecast starts at the prior's."""
        # The category and item logits start exactly at the prior's forecast (the Markov chain's): the terms
        # learned on top of it (head, item projection, copy votes) start at zero, so training moves the
        # forecast only where the examples show a gain. With nn.Linear's default init they added logit
        # noise of about 0.6 that training did not fully remove: accuracy@1 0.375 against the prior's 0.390
        # (15,000 simulated shoppers, seed 1).
        for module in (self.category_head, self.item_proj):
            nn.init.zeros_(module.weight)
            nn.init.zeros_(module.bias)
        nn.init.zeros_(self.copy_scale)

    # -- transition priors ------------------------------------------------------------
    def set_priors(self, category_prior, item_prior) -> None:
        """Use these :class:`~core.model.priors.TransitionPrior` s (built before the cutoff of what comes next)."""
        for kind, prior in (("category", category_prior), ("item", item_prior)):
            getattr(self, f"{kind}_succ_ids").copy_(torch.from_numpy(prior.succ_ids))
            getattr(self, f"{kind}_succ_counts").copy_(torch.from_numpy(prior.succ_counts))
            getattr(self, f"{kind}_totals").copy_(torch.from_numpy(prior.totals))
            getattr(self, f"{kind}_popularity").copy_(torch.from_numpy(prior.popularity))

    def prior_logp(self, kind: str, last: torch.Tensor) -> torch.Tensor:
        """[n, vocab] smoothed log P(next | last id) of ``kind`` ("category" or "item"); last id 0 = none."""
        alpha = self.config.prior_alpha
        pop = getattr(self, f"{kind}_popularity").clamp(min=1e-12)
        log_norm = torch.log(getattr(self, f"{kind}_totals")[last] + alpha).unsqueeze(1)
        out = torch.log(alpha * pop).unsqueeze(0) - log_norm
        ids = getattr(self, f"{kind}_succ_ids")[last]
        counts = getattr(self, f"{kind}_succ_counts")[last]
        vals = torch.where(counts > 0, torch.log(counts + alpha * pop[ids]) - log_norm, out.gather(1, ids))
        return out.scatter(1, ids, vals)

    # -- representation ---------------------------------------------------------------
    def _embed(self, inputs: dict, start: int = 0) -> torch.Tensor:
        """[n, width - start, hidden] the event tokens from column ``start`` on (padding is all zeros)."""
        names = ("item", "category", "brand", "event_type", "price_band", "gap_bucket", "age_bucket")
        tables = (self.item_emb, self.category_emb, self.brand_emb, self.type_emb, self.price_emb, self.gap_emb,
                  self.age_emb)
        return sum(table(inputs[name][:, start:]) for table, name in zip(tables, names))

    def last_hidden(self, inputs: dict) -> torch.Tensor:
        """[n, hidden] the transformer's hidden state at the last position (the events alone).

        ``GPT2Model``'s blocks run one by one and the last one only at the last position, the one
        read (:meth:`_blocks`): the numbers of ``GPT2Model`` itself (in training, with dropout
        where it puts it), at about a third less work when scoring every shopper and when
        training (the last block's query, attention and MLP at the other positions, and their
        gradients, were computed and thrown away).
        """
        return self._blocks(inputs)

    # -- occlusion (reasons) ------------------------------------------------------------
    @contextmanager
    def keeping_projections(self) -> Iterator[PassStates]:
        """Within the block, the eval pass (:meth:`last_hidden`) fills the yielded :class:`PassStates`: the
        first block's input and each layer's projections; :meth:`occluded_hidden` reuses them."""
        states, key = PassStates(), threading.get_ident()
        self._kept[key] = states
        try:
            yield states
        finally:
            self._kept.pop(key, None)

    def states_for_occlusion(self, inputs: dict) -> tuple[torch.Tensor, PassStates]:
        """The last hidden state [n, hidden] and the :class:`PassStates` of the pass over ``inputs``."""
        with self.keeping_projections() as states:
            hidden = self.last_hidden(inputs)
        return hidden, states

    def occluded_hidden(self, inputs: dict, states: PassStates, first, rows=None) -> torch.Tensor:
        """[n, hidden] the last hidden state of ``inputs``, recomputing only the events that stay after each row's first hidden one.

        ``inputs`` is a copy of rows ``rows`` (all when None) of the batch whose ``states``
        (:meth:`states_for_occlusion`, same columns) came from, with some events turned into
        padding, none before column ``first`` (an int, or one per row). The transformer is
        causal, so the keys and values before ``first`` are those of the full pass; an event
        that stays keeps its token, so the first block's input and projections are the full
        pass's at every column; and a hidden event is a masked key in every layer, so only the
        events that stay from ``first`` on (and the last column, the one read) go through the
        blocks, packed side by side (:meth:`_occluded_blocks`). This equals :meth:`last_hidden`
        of ``inputs`` up to rounding. Eval mode only.
        """
        rows = torch.arange(len(states.qkv[0])) if rows is None else torch.as_tensor(rows)
        first = torch.as_tensor(first).expand(len(rows)) if np.ndim(first) == 0 else torch.as_tensor(first)
        return self._occluded_blocks(inputs, states, first, rows)

    def _pad_embed(self, inputs: dict, column: int) -> torch.Tensor:
        """[hidden] the first block's input of a padding position at ``column``."""
        tables = (self.item_emb, self.category_emb, self.brand_emb, self.type_emb, self.price_emb, self.gap_emb,
                  self.age_emb)
        return sum(t.weight[PAD_ID] for t in tables) + self.transformer.wpe(inputs["position_ids"][0, column])

    def _occluded_blocks(self, inputs: dict, states: PassStates, first: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """GPT-2's blocks over the events that stay from each row's ``first`` column on, packed.

        Each row's recomputed columns (events that stay at or after ``first``, and the last
        column) sit in ``c`` slots, the last column in the last slot; a row with fewer leaves
        its leading slots unused (they repeat the last column and are masked as keys).
        Attention reads keys by their mask, not their order, so the packing changes nothing
        but the work: the columns of hidden events (a third of the recomputed ones on
        simulated data: the recent category is most of a session) are skipped.
        """
        live = inputs["attention_mask"].bool()
        several_layers = len(self.transformer.h) > 1
        slot_col, valid, flat = _packed_slots(live, first, rows, several_layers)
        x = self._occluded_first_block(inputs, states, live, slot_col, flat, rows)
        if not several_layers:
            return self.transformer.ln_f(x)[:, -1]
        return self._occluded_later_blocks(x, states, live, first, slot_col, valid, rows)

    def _occluded_first_block(self, inputs: dict, states: PassStates, live: torch.Tensor, slot_col: torch.Tensor,
                              flat: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """The first block at the slots: the full pass's projections (keys and values at every column, masked
        where hidden), the last column's query projected again (its event may be hidden)."""
        h, (n, c), width = self.config.hidden_size, slot_col.shape, live.shape[1]
        several_layers = len(self.transformer.h) > 1
        x = _gather(states.embeds, flat, n, c)
        last_live = live[:, -1:]
        if not bool(last_live.all()):  # a hidden last event: a padding position's input there
            x[:, -1] = torch.where(last_live, x[:, -1], self._pad_embed(inputs, width - 1))
        block = self.transformer.h[0]
        q_last = _query(block, block.ln_1(x[:, -1:]))
        q = torch.cat([_gather(states.qkv[0], flat, n, c)[:, :-1, :h], q_last], dim=1) if several_layers else q_last
        kv = states.qkv[0][..., -2 * h:].index_select(0, rows)
        col = torch.arange(width)
        allowed = (col[None, None, :] <= slot_col[:, :, None]) & live[:, None, :]
        return _attend(block, x, q, kv[..., :h], kv[..., h:], allowed, self.config.n_heads)

    def _occluded_later_blocks(self, x: torch.Tensor, states: PassStates, live: torch.Tensor, first: torch.Tensor,
                               slot_col: torch.Tensor, valid: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """The blocks after the first: keys and values before each row's first hidden event from the full
        pass, the rest new; the last block at the last slot only."""
        tr, h, n_heads = self.transformer, self.config.hidden_size, self.config.n_heads
        (n, c), col, last_layer = slot_col.shape, torch.arange(live.shape[1]), len(tr.h) - 1
        pmax = int(first.max())
        past_ok = live[:, :pmax] & (col[None, :pmax] < first[:, None])
        key_ok = valid & live.gather(1, slot_col)  # a hidden last event is a query, never a key
        new_ok = key_ok[:, None, :] & (slot_col[:, None, :] <= slot_col[:, :, None])  # [n, c, c]
        for layer in range(1, last_layer + 1):
            block = tr.h[layer]
            z = block.ln_1(x)
            past = states.qkv[layer][:, :pmax].index_select(0, rows)
            if layer < last_layer:
                q, k, v = kernels.conv1d(block.attn.c_attn, z).split(h, dim=2)
                allowed = torch.cat([past_ok[:, None, :].expand(n, c, pmax), new_ok], dim=2)
            else:  # the last block: keys and values at every slot, the query and the rest at the last one only
                k, v = _keys_values(block, z).split(h, dim=2)
                q, x = _query(block, z[:, -1:]), x[:, -1:]
                allowed = torch.cat([past_ok, key_ok], dim=1)[:, None, :]
            x = _attend(block, x, q, torch.cat([past[..., -2 * h:-h], k], dim=1), torch.cat([past[..., -h:], v], dim=1),
                        allowed, n_heads)
        return tr.ln_f(x)[:, -1]

    def _blocks(self, inputs: dict) -> torch.Tensor:
        """GPT-2's blocks (pre-norm attention and MLP), the last one only at the last position: its keys and
        values at every column, its query, attention and MLP at the last one. Dropout in training mode. Inside
        :meth:`keeping_projections` the first block's input and each layer's projections are kept."""
        tr, h, n_heads = self.transformer, self.config.hidden_size, self.config.n_heads
        live = inputs["attention_mask"].bool()
        x = tr.drop(self._embed(inputs) + tr.wpe(inputs["position_ids"]))
        kept = self._kept.get(threading.get_ident())
        if kept is not None:
            kept.embeds = x
        t = x.shape[1]
        col = torch.arange(t)
        allowed = (col[None, :] <= col[:, None])[None] & live[:, None, :]  # [n, t, t]
        # a padding query with no event before it is never read by a real position; it looks at itself (no NaN)
        alone = ~allowed.any(dim=-1)
        allowed[alone.nonzero(as_tuple=True) + (alone.nonzero(as_tuple=True)[1],)] = True
        # an additive mask: scaled_dot_product_attention on CPU runs a third faster with it than with booleans
        bias = torch.zeros(allowed.shape, dtype=x.dtype).masked_fill_(~allowed, float("-inf"))[:, None]

        last_layer = len(tr.h) - 1
        for layer, block in enumerate(tr.h):
            z = block.ln_1(x)
            if layer < last_layer:
                projected = kernels.conv1d(block.attn.c_attn, z)
                q, k, v = projected.split(h, dim=2)
            else:  # keys and values at every column, the query at the last one (the only one read)
                projected = _keys_values(block, z)
                k, v = projected.split(h, dim=2)
                q, x, bias = _query(block, z[:, -1:]), x[:, -1:], bias[:, :, -1:]
            if kept is not None:
                kept.qkv.append(projected)
            x = _attend_biased(block, x, q, k, v, bias, n_heads)
        return tr.ln_f(x)[:, -1]

    def combine(self, hidden: torch.Tensor, inputs: dict) -> torch.Tensor:
        """The shopper representation from the last hidden state plus recency and history features."""
        return self.norm(hidden + self.recency_emb(inputs["recency_bucket"]) + self.feature_proj(inputs["features"]))

    def user_embedding(self, inputs: dict) -> torch.Tensor:
        """The shopper representation [n, hidden]: last hidden state plus recency and history features."""
        return self.combine(self.last_hidden(inputs), inputs)

    def copy_scores(self, inputs: dict, field: str, size: int) -> torch.Tensor:
        """[n, size] log1p of the weighted votes of each shopper's events for their own categories or items."""
        k = 0 if field == "category" else 1
        w = (self.copy_type(inputs["event_type"])[..., k] + self.copy_age(inputs["age_bucket"])[..., k]
             + self.copy_pos(inputs["position_ids"])[..., k])
        w = F.softplus(w) * inputs["attention_mask"]
        votes = torch.zeros(w.shape[0], size, dtype=w.dtype).scatter_add_(1, inputs[field], w)
        return self.copy_scale[k] * torch.log1p(votes)

    def category_prior_logits(self, inputs: dict) -> torch.Tensor:
        """[n, n_categories] the category logits' transition-prior terms (the whole logits when
        ``category_learned`` is 0); they read only ``last_category``, ``session_category`` and the shopper's own
        categories (weighted by ``own_category_weight``), no transformer pass."""
        out = (self.prior_scale[0] * self.prior_logp("category", inputs["last_category"])
               + self.session_prior_scale[0] * self.prior_logp("category", inputs["session_category"]))
        if float(self.own_category_weight):
            out = out + self.own_category_weight * own_category_logp(inputs, self.n_categories)
        return out

    def mix_own_categories(self, p: torch.Tensor, inputs: dict) -> torch.Tensor:
        """[n, n_categories] the category probabilities ``p`` mixed with the shopper's own shares as
        ``category_mix`` sets them (:func:`core.model.category_mix.mixed`); ``p`` itself when its weights are 0."""
        own, last, half_life, k = (float(v) for v in self.category_mix)
        if not (own or last):
            return p
        return mixed(p, inputs, self.n_categories, own, last, half_life, k)

    def _item_extra(self, inputs: dict) -> torch.Tensor:
        """[n, n_items] the item logits' terms that do not come from the representation: copy votes and prior."""
        return (self.copy_scores(inputs, "item", self.n_items)
                + self.prior_scale[1] * self.prior_logp("item", inputs["last_item"]))

    def _item_logits(self, rep: torch.Tensor, copy: torch.Tensor, item_ids: torch.Tensor | None = None) -> torch.Tensor:
        weights = self.item_emb.weight if item_ids is None else self.item_emb.weight[item_ids]
        bias = self.item_bias if item_ids is None else self.item_bias[item_ids]
        extra = copy if item_ids is None else copy[:, item_ids]
        return self.item_proj(rep) @ weights.T + bias + extra

    # -- training ---------------------------------------------------------------------
    def forward(self, inputs: dict, labels: dict | None = None) -> ForecastOutput:
        """Head outputs for ``inputs`` (see :func:`batch_tensors`); the loss only when ``labels`` are given.

        ``labels``: ``purchased`` float [n], ``next_event_type`` long [n] (class index),
        ``next_category`` and ``next_item`` long [n] (vocabulary id, -100 when absent).
        """
        hidden = self.last_hidden(inputs)
        rep = self.combine(hidden, inputs)
        out = ForecastOutput(
            propensity_logit=self.propensity_head(rep).squeeze(-1),
            type_logits=self.type_head(rep),
            category_logits=(self.category_learned * (self.category_head(rep)
                                                      + self.copy_scores(inputs, "category", self.n_categories))
                             + self.category_prior_logits(inputs)),
            user_embedding=rep, hidden=hidden,
        )
        if labels is not None:
            w = self.config.loss_weights
            losses = {
                "propensity": F.binary_cross_entropy_with_logits(out.propensity_logit, labels["purchased"]),
                "next_event_type": F.cross_entropy(out.type_logits, labels["next_event_type"]),
                "next_category": _masked_ce(out.category_logits, labels["next_category"]),
                "next_items": self._item_loss(rep, self._item_extra(inputs), labels["next_item"]),
            }
            out.losses = {k: float(v.detach()) for k, v in losses.items()}
            out.loss = sum(w[k] * v for k, v in losses.items())
        return out

    def _item_loss(self, rep: torch.Tensor, copy: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        valid = target != IGNORE
        if not bool(valid.any()):
            return rep.sum() * 0.0
        rep, copy, target = rep[valid], copy[valid], target[valid]
        if self.n_items <= self.config.sampled_softmax_threshold:
            return F.cross_entropy(self._item_logits(rep, copy), target)
        # sampled softmax: the batch's own targets plus shared uniform negatives; accidental hits masked
        negatives = torch.randint(2, self.n_items, (self.config.n_negatives,))
        candidates = torch.cat([target, negatives])
        logits = self._item_logits(rep, copy, candidates)
        own = torch.arange(len(target))
        hit = (candidates.unsqueeze(0) == target.unsqueeze(1)) & (torch.arange(len(candidates)).unsqueeze(0) != own.unsqueeze(1))
        return F.cross_entropy(logits.masked_fill(hit, float("-inf")), own)

    # -- inference --------------------------------------------------------------------
    @contextmanager
    def evaluating(self) -> Iterator[None]:
        """Eval mode within the block, the previous mode after it. A model already in eval mode is not
        switched: ``train()``/``eval()`` walk every submodule, a tenth of the occlusions' time (measured)."""
        was_training = self.training
        if was_training:
            self.eval()
        try:
            yield
        finally:
            if was_training:
                self.train()

    @torch.no_grad()
    def predict(self, inputs: dict, top_k_items: int, top_k_categories: int) -> Prediction:
        """Probabilities (uncalibrated propensity, next-type distribution, top categories and items).

        Categories and items are ranked over the full vocabularies, padding and "other" excluded.
        ``top_k_items`` 0 skips the item head (a softmax over the whole catalogue for every shopper:
        scoring leaves it out when the items forecast is a baseline's); ``item_ids`` is then [n, 0].
        """
        with self.evaluating():
            out = self.forward(inputs)
        cat_logits = out.category_logits.clone()
        cat_logits[:, [PAD_ID, OTHER_ID]] = float("-inf")
        cat_p = self.mix_own_categories(torch.softmax(cat_logits, dim=-1), inputs)
        k_cat = min(top_k_categories, max(self.n_categories - 2, 1))
        cat_top = cat_p.topk(k_cat, dim=-1)
        if top_k_items:
            item_logits = self._item_logits(out.user_embedding, self._item_extra(inputs))
            item_logits[:, [PAD_ID, OTHER_ID]] = float("-inf")
            item_p = torch.softmax(item_logits, dim=-1)
            k_item = min(top_k_items, max(self.n_items - 2, 1))
            top = item_p.topk(k_item, dim=-1)
            item_ids, item_top_p = top.indices.numpy(), top.values.numpy()
        else:
            item_ids, item_top_p = np.zeros((len(out.hidden), 0), np.int64), np.zeros((len(out.hidden), 0), np.float32)
        return Prediction(
            propensity=torch.sigmoid(out.propensity_logit).numpy(),
            type_proba=torch.softmax(out.type_logits, dim=-1).numpy(),
            category_ids=cat_top.indices.numpy(), category_p=cat_top.values.numpy(),
            item_ids=item_ids, item_p=item_top_p, hidden=out.hidden.numpy(),
        )

    @torch.no_grad()
    def propensity_from_hidden(self, hidden: np.ndarray | torch.Tensor, inputs: dict) -> np.ndarray:
        """Uncalibrated purchase probability from a known last hidden state (no transformer pass)."""
        if not isinstance(hidden, torch.Tensor):
            hidden = torch.from_numpy(np.ascontiguousarray(hidden, dtype=np.float32))
        with self.evaluating():
            return torch.sigmoid(self.propensity_head(self.combine(hidden, inputs)).squeeze(-1)).numpy()

    @torch.no_grad()
    def predict_propensity(self, inputs: dict) -> np.ndarray:
        """Uncalibrated purchase probability only (cheap: used by the occlusion reasons)."""
        with self.evaluating():
            return torch.sigmoid(self.propensity_head(self.user_embedding(inputs)).squeeze(-1)).numpy()


def _masked_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if not bool((target != IGNORE).any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits, target, ignore_index=IGNORE)
