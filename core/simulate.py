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

import gzip
import io
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from core.config import SESSION_GAP_MINUTES
from core.errors import CartsightError

#: REES46 column order of ``Simulation.events``.
EVENT_COLUMNS = ("event_time", "event_type", "product_id", "category_id", "category_code",
                 "brand", "price", "user_id", "user_session")
#: Event type codes used internally; index = code.
EVENT_TYPE_NAMES = ("view", "cart", "remove_from_cart", "purchase", "wishlist")
_VIEW, _CART, _REMOVE, _PURCHASE, _WISHLIST = range(len(EVENT_TYPE_NAMES))
#: Price bands within a category, cheapest first (quartiles of the category's prices).
PRICE_BANDS = ("budget", "mid", "premium", "luxury")

_SECONDS_PER_DAY = 86_400
_SESSION_DIGITS = 3  # base-36 digits of the per-user session counter (46,656 sessions)
_USER_ID_BASE, _USER_ID_STEP, _USER_ID_SPAN = 510_000_000, 7_919, 10_000_000  # 9-digit ids
_PRODUCT_ID_BASE, _PRODUCT_ID_SPAN = 1_000_000, 99_000_000  # 7-8 digit ids, like REES46
_CATEGORY_ID_BASE, _CATEGORY_ID_SPAN = 2_053_013_550_000_000_000, 10**13  # 19 digits
#: gzip level of written files (6: twice as fast as 9 for 2 % more bytes)
GZIP_LEVEL = 6
_BASE36 = np.frombuffer(b"0123456789abcdefghijklmnopqrstuvwxyz", dtype=np.uint8)

# category code, base price (typical mid-range unit price), brand family
CATEGORIES: tuple[tuple[str, float, str], ...] = (
    ("electronics.smartphone", 320.0, "electronics"),
    ("electronics.audio.headphone", 70.0, "electronics"),
    ("electronics.video.tv", 480.0, "electronics"),
    ("electronics.clocks", 180.0, "electronics"),
    ("electronics.tablet", 290.0, "electronics"),
    ("computers.notebook", 720.0, "computers"),
    ("computers.peripherals.mouse", 22.0, "computers"),
    ("computers.components.videocard", 380.0, "computers"),
    ("appliances.kitchen.refrigerators", 560.0, "appliances"),
    ("appliances.kitchen.washer", 430.0, "appliances"),
    ("appliances.kitchen.kettle", 35.0, "appliances"),
    ("appliances.kitchen.coffee_machine", 190.0, "appliances"),
    ("appliances.environment.vacuum", 170.0, "appliances"),
    ("apparel.shoes.sneakers", 85.0, "apparel"),
    ("apparel.shoes.boots", 110.0, "apparel"),
    ("apparel.jeans", 55.0, "apparel"),
    ("apparel.dress", 65.0, "apparel"),
    ("apparel.jacket", 130.0, "apparel"),
    ("accessories.bag", 75.0, "accessories"),
    ("accessories.wallet", 38.0, "accessories"),
    ("furniture.living_room.sofa", 620.0, "furniture"),
    ("furniture.bedroom.bed", 460.0, "furniture"),
    ("furniture.kitchen.table", 210.0, "furniture"),
    ("kids.toys", 28.0, "kids"),
    ("kids.carriage", 260.0, "kids"),
    ("sport.bicycle", 410.0, "sport"),
    ("sport.ski", 310.0, "sport"),
    ("sport.tennis", 65.0, "sport"),
    ("beauty.skincare", 32.0, "beauty"),
    ("beauty.fragrance", 75.0, "beauty"),
    ("beauty.makeup", 21.0, "beauty"),
    ("auto.accessories.player", 95.0, "auto"),
    ("construction.tools.drill", 115.0, "construction"),
    ("country_yard.lawn_mower", 240.0, "country_yard"),
    ("stationery.cartrige", 26.0, "stationery"),
    ("medicine.tools.tonometer", 46.0, "medicine"),
)

# brand families: "brand:tier" with tier 0 budget .. 3 luxury (a brand may sit in several)
BRAND_FAMILIES: dict[str, tuple[str, ...]] = {
    "electronics": ("apple:3", "samsung:2", "xiaomi:0", "huawei:1", "oppo:1", "sony:2", "lg:1",
                    "jbl:1", "bose:3", "sennheiser:3", "philips:1", "tcl:0", "hisense:0",
                    "garmin:2", "honor:0", "realme:0", "vivo:1", "nokia:0", "marshall:3",
                    "beats:2"),
    "computers": ("apple:3", "asus:1", "acer:0", "lenovo:1", "hp:1", "dell:2", "msi:2",
                  "logitech:1", "razer:3", "gigabyte:1", "palit:0", "a4tech:0", "defender:0",
                  "microsoft:2"),
    "appliances": ("bosch:2", "indesit:0", "beko:0", "atlant:0", "electrolux:2", "miele:3",
                   "delonghi:2", "tefal:1", "polaris:0", "redmond:0", "dyson:3", "karcher:1",
                   "krups:1", "smeg:3", "gorenje:1", "samsung:2", "lg:1", "philips:1"),
    "apparel": ("nike:2", "adidas:2", "puma:1", "reebok:1", "newbalance:2", "asics:1",
                "converse:1", "vans:1", "timberland:2", "levis:2", "wrangler:1", "mango:1",
                "zara:1", "hugo:3", "guess:2", "tommyhilfiger:3", "gant:3", "ostin:0",
                "gloria:0", "incity:0", "lacoste:3", "columbia:2"),
    "accessories": ("michaelkors:3", "furla:3", "coach:3", "samsonite:2", "tosca:1",
                    "eleganzza:1", "pierrecardin:1", "wenger:1", "guess:2"),
    "furniture": ("askona:1", "ormatek:1", "hoff:0", "divan:1", "ikea:0", "stolline:1",
                  "shatura:0", "bellona:2", "natuzzi:3"),
    "kids": ("lego:2", "hasbro:1", "mattel:1", "chicco:2", "cybex:3", "happybaby:1", "tutis:1",
             "polesie:0", "bestway:0", "hotwheels:0"),
    "sport": ("stels:0", "forward:0", "merida:2", "giant:2", "trek:3", "cube:2", "head:2",
              "wilson:2", "babolat:3", "fischer:2", "atomic:2", "rossignol:3", "nordway:0"),
    "beauty": ("loreal:1", "nivea:0", "garnier:0", "maybelline:0", "shiseido:3", "clinique:2",
               "lancome:3", "dior:3", "chanel:3", "esteelauder:3", "vichy:2", "bourjois:1",
               "essence:0", "kiko:1"),
    "auto": ("pioneer:1", "kenwood:1", "alpine:2", "jvc:0", "prology:0"),
    "construction": ("makita:2", "bosch:2", "dewalt:3", "metabo:2", "interskol:0", "ryobi:1",
                     "hammer:0"),
    "country_yard": ("husqvarna:2", "stihl:3", "champion:0", "greenworks:1", "patriot:0"),
    "stationery": ("canon:1", "hp:1", "epson:1", "brother:1", "cactus:0"),
    "medicine": ("omron:2", "and:1", "microlife:1", "littledoctor:0"),
}


# brands sold in a category, where not every brand of its family makes it (no sennheiser phones)
CATEGORY_BRANDS: dict[str, tuple[str, ...]] = {
    "electronics.smartphone": ("apple", "samsung", "xiaomi", "huawei", "oppo", "honor", "realme", "vivo",
                               "nokia"),
    "electronics.audio.headphone": ("apple", "samsung", "xiaomi", "sony", "jbl", "bose", "sennheiser",
                                    "marshall", "beats", "philips"),
    "electronics.video.tv": ("samsung", "lg", "sony", "philips", "tcl", "hisense", "xiaomi"),
    "electronics.clocks": ("apple", "samsung", "xiaomi", "huawei", "garmin", "honor"),
    "electronics.tablet": ("apple", "samsung", "xiaomi", "huawei", "honor", "realme"),
    "computers.notebook": ("apple", "asus", "acer", "lenovo", "hp", "dell", "msi", "microsoft", "razer"),
    "computers.peripherals.mouse": ("logitech", "razer", "a4tech", "defender", "microsoft", "hp"),
    "computers.components.videocard": ("asus", "msi", "gigabyte", "palit"),
    "appliances.kitchen.refrigerators": ("bosch", "indesit", "beko", "atlant", "electrolux", "miele",
                                         "smeg", "gorenje", "samsung", "lg"),
    "appliances.kitchen.washer": ("bosch", "indesit", "beko", "atlant", "electrolux", "miele", "gorenje",
                                  "samsung", "lg"),
    "appliances.kitchen.kettle": ("bosch", "tefal", "polaris", "redmond", "philips", "smeg", "delonghi"),
    "appliances.kitchen.coffee_machine": ("delonghi", "krups", "philips", "bosch", "smeg", "polaris"),
    "appliances.environment.vacuum": ("dyson", "karcher", "philips", "samsung", "lg", "bosch", "polaris",
                                      "redmond", "tefal"),
    "apparel.shoes.sneakers": ("nike", "adidas", "puma", "reebok", "newbalance", "asics", "converse", "vans"),
    "apparel.shoes.boots": ("timberland", "columbia", "hugo", "gant", "guess", "ostin", "lacoste"),
    "apparel.jeans": ("levis", "wrangler", "mango", "zara", "guess", "gloria", "incity", "ostin",
                      "tommyhilfiger", "hugo"),
    "apparel.dress": ("mango", "zara", "guess", "hugo", "gloria", "incity", "ostin", "lacoste"),
    "apparel.jacket": ("columbia", "tommyhilfiger", "hugo", "gant", "lacoste", "adidas", "nike", "puma",
                       "zara"),
    "kids.toys": ("lego", "hasbro", "mattel", "hotwheels", "bestway", "polesie"),
    "kids.carriage": ("chicco", "cybex", "happybaby", "tutis"),
    "sport.bicycle": ("stels", "forward", "merida", "giant", "trek", "cube"),
    "sport.ski": ("fischer", "atomic", "rossignol", "head", "nordway"),
    "sport.tennis": ("head", "wilson", "babolat", "nordway"),
}

@dataclass(frozen=True)
class TasteGroup:
    """One planted group of shoppers: its core categories, price-band taste and population share."""

    name: str
    core_categories: tuple[str, ...]
    band_preference: tuple[float, float, float, float]  # budget, mid, premium, luxury
    share: float


TASTE_GROUPS: tuple[TasteGroup, ...] = (
    TasteGroup("premium electronics",
               ("electronics.smartphone", "electronics.audio.headphone", "electronics.video.tv",
                "electronics.clocks", "electronics.tablet", "computers.notebook",
                "computers.components.videocard"), (0.03, 0.12, 0.35, 0.50), 0.18),
    TasteGroup("budget tech",
               ("electronics.smartphone", "electronics.audio.headphone", "electronics.tablet",
                "computers.peripherals.mouse", "auto.accessories.player", "stationery.cartrige"),
               (0.55, 0.30, 0.12, 0.03), 0.20),
    TasteGroup("fashion",
               ("apparel.shoes.sneakers", "apparel.shoes.boots", "apparel.jeans", "apparel.dress",
                "apparel.jacket", "accessories.bag", "accessories.wallet"),
               (0.15, 0.45, 0.30, 0.10), 0.18),
    TasteGroup("home & kitchen",
               ("appliances.kitchen.refrigerators", "appliances.kitchen.washer",
                "appliances.kitchen.kettle", "appliances.kitchen.coffee_machine",
                "appliances.environment.vacuum", "furniture.living_room.sofa",
                "furniture.bedroom.bed", "furniture.kitchen.table"),
               (0.10, 0.35, 0.40, 0.15), 0.16),
    TasteGroup("beauty & care",
               ("beauty.skincare", "beauty.fragrance", "beauty.makeup", "apparel.dress",
                "accessories.bag", "medicine.tools.tonometer"),
               (0.20, 0.45, 0.25, 0.10), 0.14),
    TasteGroup("family & outdoors",
               ("kids.toys", "kids.carriage", "sport.bicycle", "sport.ski", "sport.tennis",
                "country_yard.lawn_mower", "construction.tools.drill"),
               (0.35, 0.40, 0.20, 0.05), 0.14),
)


@dataclass(frozen=True)
class SimConfig:
    """Every rate of the simulator, with the defaults the sample data was made with.

    Rates are per view, per cart or per day as named; "mode_" variants apply on days the
    shopper is in buying mode.
    """

    n_products: int = 4000                  # catalogue size (spread over all categories)
    category_size_range: tuple[float, float] = (0.5, 1.5)  # relative number of products per category
    min_products_per_category: int = 10
    core_category_share: float = 0.85       # a group's interest on its core categories
    taste_concentration: float = 30.0       # Dirichlet strength of a shopper's mix around the group's
    favoured_brand_share: float = 0.25      # share of the brands in each core category a group favours
    favoured_brand_weight: float = 6.0      # how much more often a favoured brand is picked
    price_sigma: float = 0.35               # log-normal spread of prices around brand tier x base
    tier_price_factor: tuple[float, float, float, float] = (0.45, 0.8, 1.4, 2.6)
    item_popularity_sigma: float = 1.0      # log-normal spread of item popularity
    brand_popularity_sigma: float = 0.8     # log-normal spread of brands' share of a category
    blank_category_share: float = 0.06      # products exported without category_code (about 5 % of rows)
    blank_brand_share: float = 0.10         # products exported without brand
    sessions_per_day: float = 0.2           # mean daily sessions of an active shopper, outside buying mode
    activity_sigma: float = 0.8             # log-normal spread of shoppers' activity
    late_join_share: float = 0.15           # shoppers whose first day is after the start
    late_join_until: float = 0.8            # ... at most this far into the period
    churn_share: float = 0.20               # shoppers who stop for good during the period
    churn_min_days: int = 7                 # ... at least this many days after they start
    mode_enter: float = 0.035               # mean daily chance of entering buying mode
    mode_enter_sigma: float = 0.6           # log-normal spread of that chance across shoppers
    mode_exit: float = 0.25                 # daily chance of leaving buying mode
    mode_session_factor: float = 2.5        # more sessions per day in buying mode
    views_per_session: float = 2.5          # Poisson mean of views after the first
    mode_views_per_session: float = 4.5
    view_gap_seconds: float = 70.0          # mean gap between views in a session
    max_view_gap_seconds: int = 900
    session_return: float = 0.5             # a session keeps the previous session's category
    session_focus: float = 0.8              # a view stays in its session's main category
    review_share: float = 0.2               # a view goes back to an item seen in the session
    wishlist_rate: float = 0.008
    wishlist_delay_seconds: tuple[int, int] = (3, 30)
    cart_rate: float = 0.025
    mode_cart_rate: float = 0.13
    cart_delay_seconds: float = 40.0        # mean time from the view to the cart
    buy_after_cart: float = 0.2
    mode_buy_after_cart: float = 0.6
    buy_same_session: float = 0.5           # a cart bought within minutes, else hours to days later
    same_session_buy_seconds: float = 240.0
    later_buy_min_hours: float = 1.0        # a later purchase comes at least this long after the cart
    later_buy_hours: float = 10.0           # median delay on top of that
    later_buy_sigma: float = 1.0
    later_buy_max_days: float = 10.0
    revisit_view_seconds: tuple[int, int] = (20, 300)  # the view of the item before a later purchase
    remove_after_cart: float = 0.35         # of carts not bought
    remove_delay_seconds: float = 900.0
    direct_buy_rate: float = 0.0015         # a view bought without a cart
    mode_direct_buy_rate: float = 0.006
    direct_buy_delay_seconds: tuple[int, int] = (30, 300)
    weekday_factor: tuple[float, ...] = (0.95, 0.92, 0.93, 0.97, 1.05, 1.18, 1.25)  # Mon..Sun
    hour_weights: tuple[float, ...] = (0.35, 0.2, 0.12, 0.08, 0.08, 0.12, 0.25, 0.45, 0.65, 0.8,
                                       0.9, 0.95, 1.0, 0.95, 0.9, 0.9, 0.95, 1.05, 1.25, 1.45,
                                       1.55, 1.4, 1.05, 0.65)
    block_users: int = 1000                 # shoppers drawn per random block (chunks align to it)
    session_gap_minutes: int = SESSION_GAP_MINUTES


@dataclass
class Simulation:
    """Result of ``simulate``: the events and what was planted in them.

    ``events``: REES46 columns (``EVENT_COLUMNS``), sorted by event time.
    ``truth``: one row per shopper: user_id, group, group_id, preferred_band, top_category,
    sessions_per_day, join_date, churn_date (NaT if none), buying_days, buying_share.
    ``catalogue``: one row per product (ids, category, brand, brand tier, price, price_band).
    ``groups``: one row per taste group (core categories, favoured brands, band preference).
    ``buying_mode``: bool array users x days (row order of ``truth``).
    """

    events: pd.DataFrame
    truth: pd.DataFrame
    catalogue: pd.DataFrame
    groups: pd.DataFrame
    buying_mode: np.ndarray
    start: pd.Timestamp
    weeks: int
    seed: int
    config: SimConfig = field(default_factory=SimConfig)

    @property
    def days(self) -> pd.DatetimeIndex:
        """Midnight (UTC) of every simulated day, the columns of ``buying_mode``."""
        return pd.date_range(self.start, periods=self.buying_mode.shape[1], freq="D")


# --------------------------------------------------------------------------- catalogue
@dataclass
class _Catalogue:
    frame: pd.DataFrame
    groups: pd.DataFrame
    cat_of: np.ndarray          # product -> category index
    flat_cdf: np.ndarray        # per (group, category) segment CDFs, offset by segment index
    n_products: int
    n_categories: int
    group_mix: np.ndarray       # groups x categories
    band_pref: np.ndarray       # groups x 4
    # export columns as arrays indexed by product
    product_id: np.ndarray
    category_id: np.ndarray
    category_code: np.ndarray   # object, None where blanked
    brand: np.ndarray           # object, None where blanked
    price: np.ndarray


def _brand_table() -> tuple[list[str], dict[str, int], dict[str, list[int]]]:
    names: list[str] = []
    tier: dict[str, int] = {}
    family_members: dict[str, list[int]] = {}
    for family, members in BRAND_FAMILIES.items():
        ids = []
        for entry in members:
            name, t = entry.split(":")
            if name not in tier:
                tier[name] = int(t)
                names.append(name)
            ids.append(names.index(name))
        family_members[family] = ids
    return names, tier, family_members


def _build_catalogue(seed: int, cfg: SimConfig) -> _Catalogue:
    """Products, prices, bands and each group's item-choice distribution (depends on seed only)."""
    rng = np.random.default_rng([seed, 0])
    brand_names, brand_tier, family_members = _brand_table()
    n_cat = len(CATEGORIES)
    size_weight = rng.uniform(*cfg.category_size_range, n_cat)
    per_cat = np.round(cfg.n_products * size_weight / size_weight.sum()).astype(int)
    per_cat = np.maximum(cfg.min_products_per_category, per_cat)
    tier_factor = np.asarray(cfg.tier_price_factor)

    cat_of, brand_of, price, band = [], [], [], []
    for c, (code, base, family) in enumerate(CATEGORIES):
        members = np.asarray(family_members[family])
        if code in CATEGORY_BRANDS:
            members = np.array([brand_names.index(b) for b in CATEGORY_BRANDS[code]])
        weights = rng.lognormal(0.0, cfg.brand_popularity_sigma, len(members))
        b = rng.choice(members, size=per_cat[c], p=weights / weights.sum())
        tiers = np.array([brand_tier[brand_names[i]] for i in b])
        p = base * tier_factor[tiers] * rng.lognormal(0.0, cfg.price_sigma, per_cat[c])
        p = np.round(np.maximum(p, 0.5), 2)
        rank = np.argsort(np.argsort(p, kind="stable"), kind="stable")
        cat_of.append(np.full(per_cat[c], c))
        brand_of.append(b)
        price.append(p)
        band.append(rank * len(PRICE_BANDS) // per_cat[c])
    cat_of = np.concatenate(cat_of)
    brand_of = np.concatenate(brand_of)
    price = np.concatenate(price)
    band = np.concatenate(band)
    n_prod = len(cat_of)
    popularity = rng.lognormal(0.0, cfg.item_popularity_sigma, n_prod)

    product_id = _PRODUCT_ID_BASE + rng.choice(_PRODUCT_ID_SPAN, size=n_prod, replace=False)
    category_ids = _CATEGORY_ID_BASE + rng.choice(_CATEGORY_ID_SPAN, size=n_cat, replace=False)
    codes = np.array([c[0] for c in CATEGORIES], dtype=object)
    code_col = codes[cat_of].copy()
    code_col[rng.random(n_prod) < cfg.blank_category_share] = None
    brand_col = np.array(brand_names, dtype=object)[brand_of]
    brand_col[rng.random(n_prod) < cfg.blank_brand_share] = None

    code_index = {c[0]: i for i, c in enumerate(CATEGORIES)}
    n_groups = len(TASTE_GROUPS)
    mix = np.zeros((n_groups, n_cat))
    brand_aff = np.ones((n_groups, len(brand_names)))
    favoured_names = []
    for g, grp in enumerate(TASTE_GROUPS):
        core = [code_index[c] for c in grp.core_categories]
        mix[g] = (1.0 - cfg.core_category_share) / (n_cat - len(core))
        mix[g, core] = cfg.core_category_share / len(core)
        fav_parts = []
        for c in core:  # favoured brands in each core category, those whose tier suits the group
            present = np.unique(brand_of[cat_of == c])
            suits = np.array([grp.band_preference[brand_tier[brand_names[i]]] for i in present])
            n_fav = max(1, round(cfg.favoured_brand_share * len(present)))
            fav_parts.append(rng.choice(present, size=n_fav, replace=False, p=suits / suits.sum()))
        fav = np.unique(np.concatenate(fav_parts))
        brand_aff[g, fav] = cfg.favoured_brand_weight
        favoured_names.append(" ".join(brand_names[i] for i in fav))
    band_pref = np.array([grp.band_preference for grp in TASTE_GROUPS])

    # one CDF per (group, category) segment; segment k's values lie in (k, k + 1]
    weight = popularity[None, :] * brand_aff[:, brand_of] * band_pref[:, band]
    flat = np.empty(n_groups * n_prod)
    bounds = np.r_[0, np.cumsum(per_cat)]
    for g in range(n_groups):
        for c in range(n_cat):
            w = weight[g, bounds[c]:bounds[c + 1]]
            cdf = np.cumsum(w) / w.sum()
            cdf[-1] = 1.0
            flat[g * n_prod + bounds[c]: g * n_prod + bounds[c + 1]] = g * n_cat + c + cdf

    frame = pd.DataFrame({
        "product_id": product_id.astype(np.int64),
        "category_id": category_ids[cat_of].astype(np.int64),
        "category": codes[cat_of],
        "category_code": code_col,
        "brand_name": np.array(brand_names, dtype=object)[brand_of],
        "brand": brand_col,
        "brand_tier": np.array(PRICE_BANDS, dtype=object)[[brand_tier[brand_names[i]] for i in brand_of]],
        "price": price,
        "price_band": np.array(PRICE_BANDS, dtype=object)[band],
        "popularity": popularity,
    })
    groups = pd.DataFrame({
        "group_id": np.arange(n_groups),
        "group": [g.name for g in TASTE_GROUPS],
        "core_categories": [" ".join(g.core_categories) for g in TASTE_GROUPS],
        "favoured_brands": favoured_names,
        "preferred_band": [PRICE_BANDS[int(np.argmax(g.band_preference))] for g in TASTE_GROUPS],
        "band_preference": [tuple(g.band_preference) for g in TASTE_GROUPS],
        "share": [g.share for g in TASTE_GROUPS],
    })
    return _Catalogue(frame=frame, groups=groups, cat_of=cat_of, flat_cdf=flat,
                      n_products=n_prod, n_categories=n_cat, group_mix=mix, band_pref=band_pref,
                      product_id=product_id.astype(np.int64),
                      category_id=category_ids[cat_of].astype(np.int64),
                      category_code=code_col, brand=brand_col, price=price)


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


def _buying_mode(rng: np.random.Generator, active: np.ndarray, cfg: SimConfig) -> np.ndarray:
    """Two-state daily Markov chain per shopper (users x days, False on inactive days)."""
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
    return mode & active


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
    mode = _buying_mode(rng, shop["active"], cfg)
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
    }
    return {"time": times, "user": users + first_user, "item": items, "kind": kinds,
            "session": sess_no, "truth": truth, "mode": mode}


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
    })


def _check_args(n_users: int, weeks: int, seed: int, start: str) -> pd.Timestamp:
    for name, value, low in (("n_users", n_users, 1), ("weeks", weeks, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise CartsightError(f"{name} must be an integer >= {low}; got {value!r}")
    if n_users > _USER_ID_SPAN:
        raise CartsightError(f"n_users must be at most {_USER_ID_SPAN:,} (user ids are 9 digits); "
                             f"got {n_users}")
    try:
        ts = pd.Timestamp(start)
    except (ValueError, TypeError) as exc:
        raise CartsightError(f"start must be a date such as '2024-01-01'; got {start!r}") from exc
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.normalize()


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
    return Simulation(events=events, truth=truth, catalogue=cat.frame, groups=cat.groups,
                      buying_mode=mode, start=ts, weeks=weeks, seed=seed, config=cfg)


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
    try:
        ts = pd.Timestamp(when)
    except (ValueError, TypeError) as exc:
        raise CartsightError(f"when must be a time such as '2024-02-01 12:00'; got {when!r}") from exc
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    day = (ts - sim.start) // pd.Timedelta(days=1)
    n_days = sim.buying_mode.shape[1]
    if not 0 <= day < n_days:
        last = sim.start + pd.Timedelta(days=n_days)
        raise CartsightError(f"when must fall in the simulated period {sim.start} .. {last}; got {ts}")
    return pd.Series(sim.buying_mode[:, day], index=pd.Index(sim.truth["user_id"], name="user_id"),
                     name="buying_mode")


def _arrow_safe(frame: pd.DataFrame) -> bool:
    """True when no value needs CSV quoting and every price is a finite non-negative number."""
    import pyarrow.compute as pc

    price = frame["price"].to_numpy(dtype=float, na_value=np.nan)
    if not (np.isfinite(price).all() and (price >= 0).all()):
        return False
    for col in frame.columns:
        if frame[col].dtype.kind in "iuf":
            continue
        values = pa.array(frame[col].astype(str) if frame[col].dtype == object else frame[col],
                          from_pandas=True)
        if pc.any(pc.match_substring_regex(values, '[,"\\r\\n]')).as_py():
            return False
    return True


def _csv_bytes(frame: pd.DataFrame, header: bool) -> bytes:
    """CSV text of ``frame`` (REES46 columns): pyarrow's writer, 20x faster than pandas here."""
    if not _arrow_safe(frame):
        return frame.to_csv(index=False, header=header, float_format="%.2f",
                            lineterminator="\n").encode("utf-8")
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
    # prices as exact 2-decimal text (the float's shortest repr would drop a trailing zero)
    cents = pa.array(np.round(frame["price"].to_numpy(dtype=float) * 100).astype(np.int64))
    whole = pc.divide(cents, 100)
    frac = pc.utf8_lpad(pc.cast(pc.subtract(cents, pc.multiply(whole, 100)), pa.string()), 2, "0")
    price = pc.binary_join_element_wise(pc.cast(whole, pa.string()), frac, ".")
    table = table.set_column(table.schema.get_field_index("price"), "price", price)
    sink = io.BytesIO()
    if header:
        sink.write((",".join(frame.columns) + "\n").encode("utf-8"))
    pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    return sink.getvalue()


def to_canonical(events: pd.DataFrame) -> pd.DataFrame:
    """Simulated REES46-layout rows in the store's canonical columns, as ingest would store them.

    user_id, item_id and session_id as text; event_time parsed from the ``... UTC`` text (naive
    UTC); category the readable code, else the category id; brand None when empty; price float.
    For tests and benchmarks that fill a store without going through a CSV.
    """
    category = events["category_code"].astype(object).where(events["category_code"].notna(),
                                                            events["category_id"].astype(str))
    return pd.DataFrame({
        "user_id": events["user_id"].astype(str),
        "event_time": pd.to_datetime(events["event_time"].str.removesuffix(" UTC")),
        "event_type": events["event_type"].astype(str),
        "item_id": events["product_id"].astype(str),
        "category": category,
        "brand": events["brand"].astype(object).where(events["brand"].notna(), None),
        "price": events["price"].astype(float),
        "session_id": events["user_session"].astype(str),
    })


def write_csv(sim_or_events: Simulation | pd.DataFrame | Iterable[pd.DataFrame], path: str | Path,
              compress: str | None = None) -> int:
    """Write events as a REES46-layout CSV (prices with 2 decimals, empty fields for missing).

    Inputs: a ``Simulation``, an events frame, or an iterable of frames (e.g. ``iter_chunks``),
    written one after another under one header; ``path``; ``compress`` ``"gzip"`` or None
    (None: gzip when the path ends in ``.gz``). Gzip output has a fixed header time, so the
    same events give the same bytes.
    Output: the number of rows written.
    Errors: ``CartsightError`` for an unknown ``compress`` value or frames without the
    REES46 columns.
    """
    path = Path(path)
    if compress is None:
        compress = "gzip" if path.suffix == ".gz" else "none"
    if compress not in ("gzip", "none"):
        raise CartsightError(f"compress must be 'gzip' or None; got {compress!r}")
    if isinstance(sim_or_events, Simulation):
        frames: Iterable[pd.DataFrame] = [sim_or_events.events]
    elif isinstance(sim_or_events, pd.DataFrame):
        frames = [sim_or_events]
    else:
        frames = sim_or_events
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    raw = open(path, "wb")
    try:
        out = (gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=GZIP_LEVEL)
               if compress == "gzip" else raw)
        with out:
            for i, frame in enumerate(frames):
                missing = [c for c in EVENT_COLUMNS if c not in frame.columns]
                if missing:
                    raise CartsightError(f"events frame lacks columns {missing}; columns found: "
                                         f"{list(frame.columns)}")
                out.write(_csv_bytes(frame.loc[:, list(EVENT_COLUMNS)], header=i == 0))
                rows += len(frame)
    finally:
        raw.close()
    return rows


__all__ = ["BRAND_FAMILIES", "CATEGORIES", "CATEGORY_BRANDS", "EVENT_COLUMNS", "EVENT_TYPE_NAMES",
           "GZIP_LEVEL", "PRICE_BANDS", "TASTE_GROUPS", "SimConfig", "Simulation", "TasteGroup",
           "buying_mode_at", "iter_chunks", "simulate", "write_csv"]
