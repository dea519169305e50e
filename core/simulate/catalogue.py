"""What the shopper simulator (:mod:`core.simulate`) draws from and returns: the REES46 event columns, the
catalogue of categories, brands and prices, the planted taste groups, every rate (:class:`SimConfig`) and
the :class:`Simulation` result."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.config import SESSION_GAP_MINUTES

#: REES46 column order of ``Simulation.events``.
EVENT_COLUMNS = ("event_time", "event_type", "product_id", "category_id", "category_code",
                 "brand", "price", "user_id", "user_session")
#: Event type codes used internally; index = code.
EVENT_TYPE_NAMES = ("view", "cart", "remove_from_cart", "purchase", "wishlist")
#: Price bands within a category, cheapest first (quartiles of the category's prices).
PRICE_BANDS = ("budget", "mid", "premium", "luxury")

_PRODUCT_ID_BASE, _PRODUCT_ID_SPAN = 1_000_000, 99_000_000  # 7-8 digit ids, like REES46
_CATEGORY_ID_BASE, _CATEGORY_ID_SPAN = 2_053_013_550_000_000_000, 10**13  # 19 digits

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
    sessions_per_day, join_date, churn_date (NaT if none), buying_days, buying_share, mode_enter
    (the shopper's daily chance of entering buying mode; it leaves with ``config.mode_exit``).
    ``catalogue``: one row per product (ids, category, brand, brand tier, price, price_band).
    ``groups``: one row per taste group (core categories, favoured brands, band preference).
    ``buying_mode``: bool array users x days (row order of ``truth``).
    ``taste``: each shopper's category mix, users x ``CATEGORIES`` (rows sum to 1), the chance that a
    session's fresh main category, or a view off its main category, is each category.
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
    taste: np.ndarray | None = None

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


@dataclass
class _Products:
    """The catalogue's products, category by category: each one's category, brand, price and price band."""

    per_cat: np.ndarray  # products in each category
    cat_of: np.ndarray
    brand_of: np.ndarray
    price: np.ndarray
    band: np.ndarray  # index into PRICE_BANDS: the price's quartile within its category


def _draw_products(rng, cfg: SimConfig, brands: tuple[list[str], dict[str, int], dict[str, list[int]]]) -> _Products:
    """Products per category (sized at random), their brands (from the category's family, popular ones more
    often) and prices (the category's base price times the brand tier's factor, scattered)."""
    brand_names, brand_tier, family_members = brands
    size_weight = rng.uniform(*cfg.category_size_range, len(CATEGORIES))
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
    return _Products(per_cat, *(np.concatenate(parts) for parts in (cat_of, brand_of, price, band)))


def _draw_tastes(rng, cfg: SimConfig, brands, products: _Products) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(category mix [groups, categories], brand affinity [groups, brands], favoured brands' names)`` of
    each taste group: its core categories take most of its visits, and in each it favours brands of a tier
    that suits it."""
    brand_names, brand_tier, _ = brands
    n_cat = len(CATEGORIES)
    code_index = {c[0]: i for i, c in enumerate(CATEGORIES)}
    mix = np.zeros((len(TASTE_GROUPS), n_cat))
    brand_aff = np.ones((len(TASTE_GROUPS), len(brand_names)))
    favoured_names = []
    for g, grp in enumerate(TASTE_GROUPS):
        core = [code_index[c] for c in grp.core_categories]
        mix[g] = (1.0 - cfg.core_category_share) / (n_cat - len(core))
        mix[g, core] = cfg.core_category_share / len(core)
        fav_parts = []
        for c in core:  # favoured brands in each core category, those whose tier suits the group
            present = np.unique(products.brand_of[products.cat_of == c])
            suits = np.array([grp.band_preference[brand_tier[brand_names[i]]] for i in present])
            n_fav = max(1, round(cfg.favoured_brand_share * len(present)))
            fav_parts.append(rng.choice(present, size=n_fav, replace=False, p=suits / suits.sum()))
        fav = np.unique(np.concatenate(fav_parts))
        brand_aff[g, fav] = cfg.favoured_brand_weight
        favoured_names.append(" ".join(brand_names[i] for i in fav))
    return mix, brand_aff, favoured_names


def _choice_cdfs(weight: np.ndarray, per_cat: np.ndarray) -> np.ndarray:
    """One CDF of item choice per (group, category) segment, laid end to end: segment k's values lie in
    (k, k + 1]. ``weight`` is [groups, products], products grouped by category."""
    n_groups, n_prod = weight.shape
    n_cat = len(per_cat)
    flat = np.empty(n_groups * n_prod)
    bounds = np.r_[0, np.cumsum(per_cat)]
    for g in range(n_groups):
        for c in range(n_cat):
            w = weight[g, bounds[c]:bounds[c + 1]]
            cdf = np.cumsum(w) / w.sum()
            cdf[-1] = 1.0
            flat[g * n_prod + bounds[c]: g * n_prod + bounds[c + 1]] = g * n_cat + c + cdf
    return flat


def _groups_frame(favoured_names: list[str]) -> pd.DataFrame:
    """The planted taste groups, one row each, with the brands each favours."""
    return pd.DataFrame({
        "group_id": np.arange(len(TASTE_GROUPS)),
        "group": [g.name for g in TASTE_GROUPS],
        "core_categories": [" ".join(g.core_categories) for g in TASTE_GROUPS],
        "favoured_brands": favoured_names,
        "preferred_band": [PRICE_BANDS[int(np.argmax(g.band_preference))] for g in TASTE_GROUPS],
        "band_preference": [tuple(g.band_preference) for g in TASTE_GROUPS],
        "share": [g.share for g in TASTE_GROUPS],
    })


def _build_catalogue(seed: int, cfg: SimConfig) -> _Catalogue:
    """Products, prices, bands and each group's item-choice distribution (depends on seed only)."""
    rng = np.random.default_rng([seed, 0])  # the stages draw from it in this order
    brands = _brand_table()
    brand_names, brand_tier, _ = brands
    n_cat = len(CATEGORIES)
    products = _draw_products(rng, cfg, brands)
    cat_of, brand_of, price, band = products.cat_of, products.brand_of, products.price, products.band
    n_prod = len(cat_of)
    popularity = rng.lognormal(0.0, cfg.item_popularity_sigma, n_prod)
    product_id = _PRODUCT_ID_BASE + rng.choice(_PRODUCT_ID_SPAN, size=n_prod, replace=False)
    category_ids = _CATEGORY_ID_BASE + rng.choice(_CATEGORY_ID_SPAN, size=n_cat, replace=False)
    codes = np.array([c[0] for c in CATEGORIES], dtype=object)
    code_col = codes[cat_of].copy()
    code_col[rng.random(n_prod) < cfg.blank_category_share] = None
    brand_col = np.array(brand_names, dtype=object)[brand_of]
    brand_col[rng.random(n_prod) < cfg.blank_brand_share] = None
    mix, brand_aff, favoured_names = _draw_tastes(rng, cfg, brands, products)
    band_pref = np.array([grp.band_preference for grp in TASTE_GROUPS])
    flat = _choice_cdfs(popularity[None, :] * brand_aff[:, brand_of] * band_pref[:, band], products.per_cat)
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
    return _Catalogue(frame=frame, groups=_groups_frame(favoured_names), cat_of=cat_of, flat_cdf=flat,
                      n_products=n_prod, n_categories=n_cat, group_mix=mix, band_pref=band_pref,
                      product_id=product_id.astype(np.int64),
                      category_id=category_ids[cat_of].astype(np.int64),
                      category_code=code_col, brand=brand_col, price=price)
