"""Seeded, vectorised shopper simulator: REES46-layout events with known planted structure.

The sample data that ships with the app, the model and segment tests, and the benchmarks
all come from here. Everything is drawn from numpy generators seeded by ``seed``, so the
same arguments give byte-identical frames.

What is planted (and returned in ``Simulation.truth`` / ``Simulation.groups``)
-------------------------------------------------------------------------------
1. **Taste groups** (``TASTE_GROUPS``, column ``group``): six groups of shoppers, each with
   its own category mix (about 85 % of a group's interest falls on its core categories,
   each shopper's own mix drawn around the group's), its favoured brands (a quarter of the
   brands in each core category, drawn among those whose tier suits the group's price
   taste, picked 6x as often; listed in ``Simulation.groups``) and its price band within a
   category (budget / mid / premium / luxury: the quartile of the item's price in its
   category): "premium electronics" (mostly premium and luxury), "budget tech" (mostly
   budget), "fashion" (mid), "home & kitchen" (mid to premium), "beauty & care" (mid) and
   "family & outdoors" (budget to mid).
2. **Buying mode**: a hidden per-shopper state, a two-state Markov chain over days
   (enters with a per-shopper daily chance around 3.5 %, leaves with 25 % a day, so a
   spell lasts about 4 days and about one active day in ten is spent in it). In buying mode a
   shopper opens 2.5x the sessions, views more per session, carts about 5x as often,
   buys 3x as often what they cart, and buys more without carting.
   ``buying_mode_at(sim, when)`` gives the state of every shopper on the day of ``when``;
   ``Simulation.buying_mode`` holds the whole users x days matrix.
3. **Habits a sequence model can use**:
   - a session keeps the previous session's main category half the time (shoppers return
     to categories they viewed recently); 80 % of a session's views stay in its main
     category and a fifth of views go back to an item already seen in the session;
   - every cart follows a view of the same item; a carted item is bought (half the time in
     the same session within minutes, otherwise hours to days later, after a fresh view of
     it), removed from the cart (35 % of the rest), or abandoned; about nine purchases in
     ten follow a cart of the same item;
   - a small share of views add the item to a wishlist;
   - activity follows an hour-of-day rhythm (evening peak, quiet nights) and a weekly one
     (busier weekends);
   - 20 % of shoppers churn (stop for good) at a random day at least a week after they
     start, 15 % join late; both dates are in ``truth``.

Events carry the REES46 columns in REES46 order. Sessions are derived from the events as
the real data has them: a gap of more than ``core.config.SESSION_GAP_MINUTES`` starts a
new ``user_session``. About 5 % of rows have no ``category_code`` and about 10 % no
``brand`` (whole products lack them, like the real file).
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pandas as pd

from core.errors import CartsightError
from core.simulate.catalogue import (CATEGORIES, EVENT_COLUMNS, EVENT_TYPE_NAMES, PRICE_BANDS, TASTE_GROUPS,
                                SimConfig, Simulation, _build_catalogue, _Catalogue)

_VIEW, _CART, _REMOVE, _PURCHASE, _WISHLIST = range(len(EVENT_TYPE_NAMES))

_SECONDS_PER_DAY = 86_400
_SESSION_DIGITS = 3  # base-36 digits of the per-user session counter (46,656 sessions)
_USER_ID_BASE, _USER_ID_STEP, _USER_ID_SPAN = 510_000_000, 7_919, 10_000_000  # 9-digit ids
_BASE36 = np.frombuffer(b"0123456789abcdefghijklmnopqrstuvwxyz", dtype=np.uint8)


# --------------------------------------------------------------------------- one block of shoppers
def _sample_rows(cdf_rows: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Index drawn from each row's CDF (rows x k) with uniforms ``u``."""
    return np.minimum((cdf_rows < u[:, None]).sum(axis=1), cdf_rows.shape[1] - 1)


def _forward_fill(values: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Where ``keep`` is true, repeat the last value at which it was false."""
    idx = np.where(keep, 0, np.arange(len(values)))
    return values[np.maximum.accumulate(idx)]


def _within_runs_cumsum(x: np.ndarray, run_start: np.ndarray) -> np.ndarray:
    """Cumulative sum of ``x`` restarting at each index flagged in ``run_start``."""
    c = np.cumsum(x)
    first = np.flatnonzero(run_start)
    run_id = np.cumsum(run_start) - 1
    return c - (c[first] - x[first])[run_id]


def _shoppers(rng: np.random.Generator, cat: _Catalogue, n: int, n_days: int, cfg: SimConfig) -> dict:
    """Group, category taste, activity and active days of ``n`` new shoppers."""
    shares = np.array([g.share for g in TASTE_GROUPS])
    group = rng.choice(len(TASTE_GROUPS), size=n, p=shares / shares.sum())
    taste = rng.gamma(cat.group_mix[group] * cfg.taste_concentration) + 1e-12
    taste /= taste.sum(axis=1, keepdims=True)
    sigma = cfg.activity_sigma
    activity = rng.lognormal(math.log(cfg.sessions_per_day) - sigma ** 2 / 2, sigma, n)
    late = rng.random(n) < cfg.late_join_share
    join = np.where(late, rng.integers(1, max(2, int(n_days * cfg.late_join_until)), n), 0)
    join = np.minimum(join, n_days - 1)
    earliest_churn = join + cfg.churn_min_days
    churns = (rng.random(n) < cfg.churn_share) & (earliest_churn < n_days)
    churn = np.where(churns, earliest_churn + (rng.random(n) * (n_days - earliest_churn)).astype(int),
                     n_days)
    day = np.arange(n_days)
    active = (day[None, :] >= join[:, None]) & (day[None, :] < churn[:, None])
    return {"group": group, "taste": taste, "taste_cdf": np.cumsum(taste, axis=1),
            "activity": activity, "join": join, "churn": churn, "active": active}


def _buying_mode(rng: np.random.Generator, active: np.ndarray, cfg: SimConfig) -> tuple[np.ndarray, np.ndarray]:
    """Two-state daily Markov chain per shopper (users x days, False on inactive days), and each shopper's
    daily chance of entering it."""
    n, n_days = active.shape
    s = cfg.mode_enter_sigma
    enter = np.minimum(cfg.mode_enter * rng.lognormal(-s ** 2 / 2, s, n), 0.9)
    draws = rng.random((n, n_days))
    mode = np.zeros((n, n_days), dtype=bool)
    state = draws[:, 0] < enter / (enter + cfg.mode_exit)  # start in the stationary share
    mode[:, 0] = state
    for d in range(1, n_days):
        state = np.where(state, draws[:, d] >= cfg.mode_exit, draws[:, d] < enter)
        mode[:, d] = state
    return mode & active, enter


def _sessions(rng: np.random.Generator, shop: dict, mode: np.ndarray, cfg: SimConfig,
              start_weekday: int) -> dict:
    """Planned sessions ordered by shopper and start: start second, mode, main category."""
    n_days = mode.shape[1]
    day = np.arange(n_days)
    weekday = np.asarray(cfg.weekday_factor)[(start_weekday + day) % 7]
    rate = shop["activity"][:, None] * weekday[None, :] * np.where(mode, cfg.mode_session_factor, 1.0)
    n_sess = rng.poisson(rate * shop["active"])
    silent = np.flatnonzero(n_sess.sum(axis=1) == 0)
    n_sess[silent, shop["join"][silent]] = 1  # everyone in the data shows up at least once
    n_sess = n_sess.ravel()
    cells = np.repeat(np.flatnonzero(n_sess), n_sess[n_sess > 0])
    user, s_day = cells // n_days, cells % n_days
    in_mode = mode.ravel()[cells]
    hour_cdf = np.cumsum(cfg.hour_weights) / np.sum(cfg.hour_weights)
    hour = np.minimum(np.searchsorted(hour_cdf, rng.random(len(cells)), side="right"), 23)
    start = s_day * _SECONDS_PER_DAY + hour * 3600 + rng.integers(0, 3600, len(cells))
    order = np.argsort(user.astype(np.int64) * (n_days * _SECONDS_PER_DAY) + start, kind="stable")
    user, start, in_mode = user[order], start[order], in_mode[order]
    user_first = np.r_[True, user[1:] != user[:-1]]
    fresh = _sample_rows(shop["taste_cdf"][user], rng.random(len(user)))
    stay = (rng.random(len(user)) < cfg.session_return) & ~user_first
    return {"user": user, "start": start, "mode": in_mode, "category": _forward_fill(fresh, stay)}


def _views(rng: np.random.Generator, cat: _Catalogue, shop: dict, sess: dict, cfg: SimConfig) -> dict:
    """The views of every session: time, shopper, item, buying mode."""
    n_views = 1 + rng.poisson(np.where(sess["mode"], cfg.mode_views_per_session, cfg.views_per_session))
    v_sess = np.repeat(np.arange(len(n_views)), n_views)
    n_v = len(v_sess)
    first = np.zeros(n_v, dtype=bool)
    first[np.cumsum(n_views) - n_views] = True
    gap = np.minimum(rng.exponential(cfg.view_gap_seconds, n_v) + 1, cfg.max_view_gap_seconds)
    gap[first] = 0
    time = sess["start"][v_sess] + _within_runs_cumsum(gap, first).astype(np.int64)
    user = sess["user"][v_sess]
    off_topic = _sample_rows(shop["taste_cdf"][user], rng.random(n_v))
    category = np.where(rng.random(n_v) < cfg.session_focus, sess["category"][v_sess], off_topic)
    group = shop["group"][user]
    segment = group * cat.n_categories + category
    item = np.searchsorted(cat.flat_cdf, segment + rng.random(n_v), side="right") - group * cat.n_products
    revisit = (rng.random(n_v) < cfg.review_share) & ~first
    return {"time": time, "user": user, "item": _forward_fill(item, revisit), "mode": sess["mode"][v_sess]}


def _funnel(rng: np.random.Generator, views: dict, cfg: SimConfig) -> list[tuple]:
    """Views plus the wishlist adds, carts, purchases and removals they lead to, as
    (times, users, items, event type) parts."""
    t, user, item, in_mode = views["time"], views["user"], views["item"], views["mode"]
    n_v = len(t)
    wish = rng.random(n_v) < cfg.wishlist_rate
    carted = rng.random(n_v) < np.where(in_mode, cfg.mode_cart_rate, cfg.cart_rate)
    c_time = t[carted] + 2 + rng.exponential(cfg.cart_delay_seconds, carted.sum()).astype(np.int64)
    c_user, c_item, c_mode = user[carted], item[carted], in_mode[carted]
    n_c = len(c_time)
    bought = rng.random(n_c) < np.where(c_mode, cfg.mode_buy_after_cart, cfg.buy_after_cart)
    soon = rng.random(n_c) < cfg.buy_same_session
    later = np.minimum(rng.lognormal(math.log(cfg.later_buy_hours * 3600), cfg.later_buy_sigma, n_c),
                       cfg.later_buy_max_days * _SECONDS_PER_DAY)
    delay = np.where(soon, 5 + rng.exponential(cfg.same_session_buy_seconds, n_c),
                     cfg.later_buy_min_hours * 3600 + later)
    p_time = c_time[bought] + delay[bought].astype(np.int64)
    p_user, p_item = c_user[bought], c_item[bought]
    back = ~soon[bought]  # a later purchase is preceded by a fresh view of the item
    back_time = p_time[back] - rng.integers(*cfg.revisit_view_seconds, back.sum())
    removed = ~bought & (rng.random(n_c) < cfg.remove_after_cart)
    r_time = c_time[removed] + 5 + rng.exponential(cfg.remove_delay_seconds, removed.sum()).astype(np.int64)
    direct = ~carted & (rng.random(n_v) < np.where(in_mode, cfg.mode_direct_buy_rate, cfg.direct_buy_rate))
    d_time = t[direct] + rng.integers(*cfg.direct_buy_delay_seconds, direct.sum())
    w_time = t[wish] + rng.integers(*cfg.wishlist_delay_seconds, wish.sum())
    return [(t, user, item, _VIEW), (w_time, user[wish], item[wish], _WISHLIST),
            (c_time, c_user, c_item, _CART), (p_time, p_user, p_item, _PURCHASE),
            (back_time, p_user[back], p_item[back], _VIEW),
            (r_time, c_user[removed], c_item[removed], _REMOVE),
            (d_time, user[direct], item[direct], _PURCHASE)]


def _simulate_block(cat: _Catalogue, block: int, first_user: int, n: int, n_days: int,
                    seed: int, cfg: SimConfig, start_weekday: int) -> dict:
    """Events (numeric arrays sorted by shopper and time), truth and buying-mode matrix of ``n`` shoppers."""
    rng = np.random.default_rng([seed, 1, block])
    shop = _shoppers(rng, cat, n, n_days, cfg)
    mode, enter = _buying_mode(rng, shop["active"], cfg)
    views = _views(rng, cat, shop, _sessions(rng, shop, mode, cfg, start_weekday), cfg)
    parts = _funnel(rng, views, cfg)
    times = np.concatenate([p[0] for p in parts])
    users = np.concatenate([p[1] for p in parts])
    items = np.concatenate([p[2] for p in parts])
    kinds = np.concatenate([np.full(len(p[0]), p[3], dtype=np.int8) for p in parts])
    keep = (times < shop["churn"][users] * _SECONDS_PER_DAY) & (times < n_days * _SECONDS_PER_DAY)
    order = np.lexsort((times[keep], users[keep]))
    times, users, items, kinds = (a[keep][order] for a in (times, users, items, kinds))

    # sessions as the data shows them: a new one after a long enough gap
    new_user = np.r_[True, users[1:] != users[:-1]]
    new_sess = new_user | np.r_[True, np.diff(times) > cfg.session_gap_minutes * 60]
    sess_no = _within_runs_cumsum(new_sess.astype(np.int64), new_user) - 1

    churn = shop["churn"]
    truth = {
        "user": np.arange(first_user, first_user + n),
        "group_id": shop["group"], "top_category": np.argmax(shop["taste"], axis=1),
        "sessions_per_day": shop["activity"],
        "join_day": shop["join"], "churn_day": np.where(churn < n_days, churn, -1),
        "buying_days": mode.sum(axis=1),
        "buying_share": mode.sum(axis=1) / np.maximum(shop["active"].sum(axis=1), 1),
        "mode_enter": enter,
    }
    return {"time": times, "user": users + first_user, "item": items, "kind": kinds,
            "session": sess_no, "truth": truth, "mode": mode, "taste": shop["taste"]}


# --------------------------------------------------------------------------- assembling frames
def _user_ids(user_index: np.ndarray) -> np.ndarray:
    """REES46-looking 9-digit user ids, a fixed bijection of the shopper's index."""
    return _USER_ID_BASE + (user_index.astype(np.int64) * _USER_ID_STEP) % _USER_ID_SPAN


def _base36(values: np.ndarray, width: int) -> np.ndarray:
    """Fixed-width lower-case base-36 text of non-negative integers (uint8 matrix rows)."""
    digits = np.empty((len(values), width), dtype=np.uint8)
    v = values.astype(np.int64).copy()
    for i in range(width - 1, -1, -1):
        digits[:, i] = _BASE36[v % 36]
        v //= 36
    return digits


def _session_width(n_users: int) -> int:
    return max(4, math.ceil(math.log(max(n_users, 2), 36)))


def _event_frame(cat: _Catalogue, blk: dict, start: pd.Timestamp, n_users: int) -> pd.DataFrame:
    """REES46-layout frame (sorted by time) from a block's numeric arrays."""
    order = np.argsort(blk["time"], kind="stable")
    t = blk["time"][order]
    item = blk["item"][order]
    user = blk["user"][order]
    stamps = (np.datetime64(start.tz_localize(None).to_datetime64(), "s") + t.astype("timedelta64[s]"))
    text = np.datetime_as_string(stamps, unit="s").astype("S19").view(np.uint8).reshape(-1, 19)
    text = np.concatenate([text, np.broadcast_to(np.frombuffer(b" UTC", np.uint8), (len(t), 4))], axis=1)
    text[:, 10] = ord(" ")
    sess = np.concatenate([_base36(user, _session_width(n_users)),
                           _base36(np.minimum(blk["session"][order], 36 ** _SESSION_DIGITS - 1),
                                   _SESSION_DIGITS)], axis=1)
    return pd.DataFrame({
        "event_time": np.ascontiguousarray(text).view(f"S{text.shape[1]}").ravel().astype(str),
        "event_type": np.array(EVENT_TYPE_NAMES, dtype=object)[blk["kind"][order]],
        "product_id": cat.product_id[item],
        "category_id": cat.category_id[item],
        "category_code": cat.category_code[item],
        "brand": cat.brand[item],
        "price": cat.price[item],
        "user_id": _user_ids(user),
        "user_session": np.ascontiguousarray(sess).view(f"S{sess.shape[1]}").ravel().astype(str),
    }, columns=list(EVENT_COLUMNS))


def _truth_frame(cat: _Catalogue, truths: list[dict], start: pd.Timestamp) -> pd.DataFrame:
    t = {k: np.concatenate([d[k] for d in truths]) for k in truths[0]}
    day = pd.Timedelta(days=1)
    churn = pd.Series(start + t["churn_day"] * day).where(t["churn_day"] >= 0)
    return pd.DataFrame({
        "user_id": _user_ids(t["user"]),
        "group": cat.groups["group"].to_numpy()[t["group_id"]],
        "group_id": t["group_id"],
        "preferred_band": cat.groups["preferred_band"].to_numpy()[t["group_id"]],
        "top_category": np.array([c[0] for c in CATEGORIES], dtype=object)[t["top_category"]],
        "sessions_per_day": t["sessions_per_day"],
        "join_date": start + t["join_day"] * day,
        "churn_date": churn.to_numpy(),
        "buying_days": t["buying_days"],
        "buying_share": t["buying_share"],
        "mode_enter": t["mode_enter"],
    })


def _check_args(n_users: int, weeks: int, seed: int, start: str) -> pd.Timestamp:
    for name, value, low in (("n_users", n_users, 1), ("weeks", weeks, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise CartsightError(f"{name} must be an integer >= {low}; got {value!r}")
    if n_users > _USER_ID_SPAN:
        raise CartsightError(f"n_users must be at most {_USER_ID_SPAN:,} (user ids are 9 digits); "
                             f"got {n_users}")
    return _naive_utc(start, "start", "a date such as '2024-01-01'").normalize()


def _naive_utc(value, name: str, expected: str) -> pd.Timestamp:
    """``value`` as a naive UTC time (naive input means UTC); a :class:`CartsightError` naming the argument
    ``name`` and what was ``expected`` when it is no time."""
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise CartsightError(f"{name} must be {expected}; got {value!r}") from exc
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


_BLOCK_ARRAYS = ("time", "user", "item", "kind", "session")


def _blocks(n_users: int, cfg: SimConfig) -> list[tuple[int, int, int]]:
    size = cfg.block_users
    return [(b, lo, min(size, n_users - lo)) for b, lo in enumerate(range(0, n_users, size))]


def simulate(n_users: int = 3000, weeks: int = 10, seed: int = 7, start: str = "2024-01-01",
             config: SimConfig | None = None) -> Simulation:
    """Simulate ``n_users`` shoppers over ``weeks`` weeks from ``start`` (UTC midnight).

    Inputs: ``n_users`` >= 1, ``weeks`` >= 1, ``seed`` >= 0, ``start`` a date, ``config`` the
    rates (``SimConfig()`` by default). About 65 events per shopper over 10 weeks by default.
    Output: a ``Simulation`` whose ``events`` are REES46-layout rows sorted by time and whose
    ``truth``/``groups``/``buying_mode`` describe what was planted (see the module docstring).
    The same arguments always give identical frames.
    Errors: ``CartsightError`` naming the parameter when an argument is out of range.
    """
    cfg = config or SimConfig()
    ts = _check_args(n_users, weeks, seed, start)
    cat = _build_catalogue(seed, cfg)
    n_days = 7 * weeks
    blocks = [_simulate_block(cat, b, lo, size, n_days, seed, cfg, ts.weekday())
              for b, lo, size in _blocks(n_users, cfg)]
    merged = {k: np.concatenate([blk[k] for blk in blocks]) for k in _BLOCK_ARRAYS}
    events = _event_frame(cat, merged, ts, n_users)
    truth = _truth_frame(cat, [blk["truth"] for blk in blocks], ts)
    mode = np.concatenate([blk["mode"] for blk in blocks], axis=0)
    taste = np.concatenate([blk["taste"] for blk in blocks], axis=0)
    return Simulation(events=events, truth=truth, catalogue=cat.frame, groups=cat.groups,
                      buying_mode=mode, start=ts, weeks=weeks, seed=seed, config=cfg, taste=taste)


def iter_chunks(n_users: int, weeks: int = 10, seed: int = 7, users_per_chunk: int = 20_000,
                start: str = "2024-01-01", config: SimConfig | None = None) -> Iterator[pd.DataFrame]:
    """Yield the events of ``simulate(n_users, weeks, seed, start)`` a range of shoppers at a time.

    Inputs: as ``simulate``, plus ``users_per_chunk`` (rounded up to whole blocks of
    ``config.block_users`` shoppers). Output: REES46-layout frames, each sorted by time, for
    disjoint, consecutive shopper ranges; together they hold exactly the rows of
    ``simulate(...).events``, so 20 million events can be written without holding them all.
    Errors: ``CartsightError`` naming the parameter when an argument is out of range.
    """
    cfg = config or SimConfig()
    ts = _check_args(n_users, weeks, seed, start)
    if isinstance(users_per_chunk, bool) or not isinstance(users_per_chunk, (int, np.integer)) \
            or users_per_chunk < 1:
        raise CartsightError(f"users_per_chunk must be an integer >= 1; got {users_per_chunk!r}")
    cat = _build_catalogue(seed, cfg)
    n_days = 7 * weeks
    per_chunk = max(1, math.ceil(users_per_chunk / cfg.block_users))
    blocks = _blocks(n_users, cfg)
    for i in range(0, len(blocks), per_chunk):
        parts = [_simulate_block(cat, b, lo, size, n_days, seed, cfg, ts.weekday())
                 for b, lo, size in blocks[i:i + per_chunk]]
        merged = {k: np.concatenate([p[k] for p in parts]) for k in _BLOCK_ARRAYS}
        yield _event_frame(cat, merged, ts, n_users)


def buying_mode_at(sim: Simulation, when) -> pd.Series:
    """Whether each shopper is in buying mode on the (UTC) day of ``when``.

    Inputs: a ``Simulation`` and a time (text, ``datetime`` or ``Timestamp``; naive means UTC).
    Output: bool Series indexed by ``user_id`` (order of ``sim.truth``), named ``buying_mode``;
    shoppers not active that day (not joined yet, churned) are False.
    Errors: ``CartsightError`` when ``when`` is not a time or falls outside the simulated days.
    """
    ts = _naive_utc(when, "when", "a time such as '2024-02-01 12:00'")
    day = (ts - sim.start) // pd.Timedelta(days=1)
    n_days = sim.buying_mode.shape[1]
    if not 0 <= day < n_days:
        last = sim.start + pd.Timedelta(days=n_days)
        raise CartsightError(f"when must fall in the simulated period {sim.start} .. {last}; got {ts}")
    return pd.Series(sim.buying_mode[:, day], index=pd.Index(sim.truth["user_id"], name="user_id"),
                     name="buying_mode")


# re-exported for callers that import them from here (sample_data/generate.py, bench/, the tests)
from core.simulate.catalogue import BRAND_FAMILIES, CATEGORY_BRANDS, TasteGroup  # noqa: F401, E402
from core.simulate.files import GZIP_LEVEL, write_csv

__all__ = ["BRAND_FAMILIES", "CATEGORIES", "CATEGORY_BRANDS", "EVENT_COLUMNS", "EVENT_TYPE_NAMES",
           "GZIP_LEVEL", "PRICE_BANDS", "TASTE_GROUPS", "SimConfig", "Simulation", "TasteGroup",
           "buying_mode_at", "iter_chunks", "simulate", "write_csv"]
