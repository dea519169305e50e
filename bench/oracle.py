"""The simulator's own answers for a held-out window: the true purchase probability and the true next-category mix.

Used by ``bench/quality.py`` to say how much of the achievable lift a forecast reaches.

Purchase within ``[T, T + H)`` (the oracle's propensity) is computed, not sampled, from the
rates that drew the events (``Simulation.config``) and each shopper's true state at ``T``:
their buying mode on the day of ``T`` (``Simulation.buying_mode``), their own daily chance of
entering buying mode (``truth.mode_enter``; it leaves with ``mode_exit``), their session rate
(``truth.sessions_per_day``), whether they have churned (and, when not yet, the simulator's
chance that they churn within the window), and the carts they left open before ``T``. Over the
window's days a two-state forward pass sums over every buying-mode path; on each day sessions
are Poisson, views per session 1 + Poisson and each view leads to a purchase with the
mode's cart x buy-after-cart or direct-buy chance, so the chance of no purchase in a day is
exact given the mode. Approximations: the part of a day inside the window is weighted by the
hour-of-day profile, and a later purchase's delay (hours to days after its cart) is measured
from the middle of that part; an open cart's purchase follows the simulator's delay laws,
conditioned on it being neither bought nor removed before ``T``.

The next category (the category of the first event in the window): the session that opens the
window keeps the previous session's main category with ``session_return``, else draws it from
the shopper's true taste mix (``Simulation.taste``); its first view stays in that main category
with ``session_focus``, else it is drawn from the taste mix. The previous session's main
category is not in ``truth``; it is read as the most frequent category of the shopper's last
session before ``T`` (80 % of a session's views are in its main category), so this oracle
knows the tastes exactly and the last session's topic nearly so.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.special import ndtr

from core.simulate import CATEGORIES, Simulation

_DAY_S = 86_400.0


def _later_delay_cdf(cfg, seconds: np.ndarray) -> np.ndarray:
    """P(a later purchase's delay after its cart < ``seconds``)."""
    s = np.asarray(seconds, dtype=float) - cfg.later_buy_min_hours * 3600
    cap = cfg.later_buy_max_days * _DAY_S
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (np.log(np.maximum(s, 1e-9)) - math.log(cfg.later_buy_hours * 3600)) / cfg.later_buy_sigma
    out = np.where(s <= 0, 0.0, ndtr(z))
    return np.where(s > cap, 1.0, out)


def _exp_cdf(scale: float, seconds: np.ndarray, shift: float = 0.0) -> np.ndarray:
    s = np.asarray(seconds, dtype=float) - shift
    return np.where(s <= 0, 0.0, 1.0 - np.exp(-s / scale))


def _day_parts(sim: Simulation, cutoff: pd.Timestamp, horizon_days: int) -> list[tuple[int, float, float]]:
    """(day index, share of that day's sessions inside the window, seconds from the part's middle to the window's
    end) for every day the window touches."""
    cfg = sim.config
    w = np.asarray(cfg.hour_weights, dtype=float)
    cum = np.r_[0.0, np.cumsum(w)] / w.sum()
    start_s = (cutoff - sim.start).total_seconds()
    end_s = start_s + horizon_days * _DAY_S
    parts = []
    day = int(start_s // _DAY_S)
    while day * _DAY_S < end_s and day < sim.buying_mode.shape[1]:
        lo, hi = max(start_s, day * _DAY_S), min(end_s, (day + 1) * _DAY_S)
        h_lo, h_hi = (lo - day * _DAY_S) / 3600, (hi - day * _DAY_S) / 3600
        share = float(np.interp(h_hi, np.arange(25), cum) - np.interp(h_lo, np.arange(25), cum))
        parts.append((day, share, end_s - (lo + hi) / 2))
        day += 1
    return parts


def _no_buy_in_day(sim: Simulation, rows: np.ndarray, day: int, share: float, to_end: float) -> np.ndarray:
    """P(no purchase from that day's sessions inside the window | mode), users x 2 (normal, buying mode)."""
    cfg, truth = sim.config, sim.truth
    weekday = cfg.weekday_factor[(sim.start.weekday() + day) % 7]
    base = truth["sessions_per_day"].to_numpy()[rows] * weekday * share
    late = cfg.buy_same_session + (1 - cfg.buy_same_session) * float(_later_delay_cdf(cfg, to_end))
    out = np.empty((len(rows), 2))
    for m, (cart, buy, direct, views, factor) in enumerate((
            (cfg.cart_rate, cfg.buy_after_cart, cfg.direct_buy_rate, cfg.views_per_session, 1.0),
            (cfg.mode_cart_rate, cfg.mode_buy_after_cart, cfg.mode_direct_buy_rate, cfg.mode_views_per_session,
             cfg.mode_session_factor))):
        q = cart * buy * late + (1 - cart) * direct  # one view's chance to end in a purchase inside the window
        no_buy_session = (1 - q) * math.exp(-views * q)  # views = 1 + Poisson(views)
        out[:, m] = np.exp(-base * factor * (1 - no_buy_session))
    return out


def _churn_weights(sim: Simulation, rows: np.ndarray, days: list[int]) -> np.ndarray:
    """users x (len(days) + 1): P(the shopper churns at the start of each window day | alive on the first), and
    P(they do not churn within the window) in the last column."""
    cfg, truth, n_days = sim.config, sim.truth, sim.buying_mode.shape[1]
    join = ((truth["join_date"] - sim.start) // pd.Timedelta(days=1)).to_numpy()[rows]
    earliest = join + cfg.churn_min_days
    can = earliest < n_days
    first = days[0]
    per_day = np.where(can, cfg.churn_share / np.maximum(n_days - earliest, 1), 0.0)
    alive = (1 - cfg.churn_share * can) + per_day * np.maximum(n_days - np.maximum(earliest, first + 1), 0)
    out = np.zeros((len(rows), len(days) + 1))
    for j, d in enumerate(days[1:], start=1):
        out[:, j] = np.where(earliest <= d, per_day, 0.0) / alive
    out[:, -1] = 1 - out[:, 1:-1].sum(axis=1)
    return out


def _open_carts_no_buy(sim: Simulation, events: pd.DataFrame, users: pd.Index, cutoff: pd.Timestamp,
                       horizon_days: int) -> np.ndarray:
    """P(no purchase in the window from carts left open before the cutoff), per shopper of ``users``."""
    cfg = sim.config
    ev = events[events["event_time"] < cutoff]
    carts = ev[ev["event_type"] == "cart"]
    closed = ev[ev["event_type"].isin(["purchase", "remove_from_cart"])]
    last_close = closed.groupby(["user_id", "item_id"])["event_time"].max()
    key = pd.MultiIndex.from_frame(carts[["user_id", "item_id"]])
    closed_after = last_close.reindex(key).to_numpy() > carts["event_time"].to_numpy()
    carts = carts[~np.nan_to_num(closed_after, nan=0).astype(bool)]
    age = (cutoff - carts["event_time"]).dt.total_seconds().to_numpy()
    day = ((carts["event_time"] - sim.start) // pd.Timedelta(days=1)).to_numpy()
    row = sim.truth.reset_index().set_index("user_id")["index"].reindex(carts["user_id"].astype(np.int64)).to_numpy()
    mode = sim.buying_mode[row, day]
    b = np.where(mode, cfg.mode_buy_after_cart, cfg.buy_after_cart)
    s, r, h = cfg.buy_same_session, cfg.remove_after_cart, horizon_days * _DAY_S
    soon = lambda x: _exp_cdf(cfg.same_session_buy_seconds, x, 5.0)  # noqa: E731
    later = lambda x: _later_delay_cdf(cfg, x)  # noqa: E731
    in_window = b * (s * (soon(age + h) - soon(age)) + (1 - s) * (later(age + h) - later(age)))
    still_open = (b * (s * (1 - soon(age)) + (1 - s) * (1 - later(age)))
                  + (1 - b) * r * (1 - _exp_cdf(cfg.remove_delay_seconds, age, 5.0)) + (1 - b) * (1 - r))
    p = np.clip(in_window / np.maximum(still_open, 1e-12), 0, 1)
    log_no = pd.Series(np.log1p(-np.minimum(p, 1 - 1e-12)), index=carts["user_id"].to_numpy()).groupby(level=0).sum()
    return np.exp(log_no.reindex(users).fillna(0.0).to_numpy())


def sim_events(sim: Simulation) -> pd.DataFrame:
    """The simulation's events with parsed times and the category as the store holds it (code, else id)."""
    e = sim.events
    return pd.DataFrame({
        "user_id": e["user_id"].astype(np.int64), "item_id": e["product_id"].to_numpy(),
        "event_time": pd.to_datetime(e["event_time"].str.removesuffix(" UTC")),
        "event_type": e["event_type"].to_numpy(), "session": e["user_session"].to_numpy(),
        "category": e["category_code"].astype(object).where(e["category_code"].notna(),
                                                              e["category_id"].astype(str)),
    })


def purchase_probability(sim: Simulation, events: pd.DataFrame, user_ids, cutoff, horizon_days: int) -> np.ndarray:
    """The true chance that each shopper of ``user_ids`` (text ids) buys at least once in ``[cutoff, cutoff + H)``."""
    cutoff = pd.Timestamp(cutoff)
    users = pd.Index(np.asarray(user_ids).astype(np.int64))
    rows = sim.truth.reset_index().set_index("user_id")["index"].reindex(users).to_numpy()
    parts = _day_parts(sim, cutoff, horizon_days)
    days = [d for d, _, _ in parts]
    churn_day = ((sim.truth["churn_date"] - sim.start) // pd.Timedelta(days=1)).to_numpy()[rows]
    alive = np.isnan(churn_day) | (churn_day > days[0])
    enter = sim.truth["mode_enter"].to_numpy()[rows]
    exit_ = sim.config.mode_exit
    mode0 = sim.buying_mode[rows, days[0]]
    alpha = np.stack([~mode0, mode0], axis=1).astype(float)  # P(mode today, no purchase so far)
    weights = _churn_weights(sim, rows, days)
    no_buy = np.zeros(len(rows))
    for j, (day, share, to_end) in enumerate(parts):
        if j > 0:
            no_buy += weights[:, j] * alpha.sum(axis=1)  # churned at the start of this day
            alpha = np.stack([alpha[:, 0] * (1 - enter) + alpha[:, 1] * exit_,
                              alpha[:, 0] * enter + alpha[:, 1] * (1 - exit_)], axis=1)
        alpha = alpha * _no_buy_in_day(sim, rows, day, share, to_end)
    no_buy += weights[:, -1] * alpha.sum(axis=1)
    no_buy *= _open_carts_no_buy(sim, events, users, cutoff, horizon_days)
    return np.where(alive, 1 - no_buy, 0.0)


def category_ranking(sim: Simulation, events: pd.DataFrame, user_ids, cutoff, k: int = 10) -> list[list[str]]:
    """Each shopper's categories ranked by the true chance that the window's first event falls in them."""
    cfg = sim.config
    cutoff = pd.Timestamp(cutoff)
    users = pd.Index(np.asarray(user_ids).astype(np.int64))
    rows = sim.truth.reset_index().set_index("user_id")["index"].reindex(users).to_numpy()
    codes = np.array([c[0] for c in CATEGORIES], dtype=object)
    ev = events[(events["event_time"] < cutoff) & events["category"].isin(set(codes))]
    last_session = ev.groupby("user_id")["session"].transform("last")
    topic = ev[ev["session"] == last_session].groupby("user_id")["category"].agg(lambda s: s.value_counts().index[0])
    p = sim.taste[rows] * (1 - cfg.session_focus * cfg.session_return)
    index = {c: i for i, c in enumerate(codes)}
    prev = topic.reindex(users).map(index).to_numpy()
    has = ~pd.isna(prev)
    p[np.flatnonzero(has), prev[has].astype(int)] += cfg.session_focus * cfg.session_return
    top = np.argsort(-p, axis=1)[:, :k]
    return [list(codes[t]) for t in top]
